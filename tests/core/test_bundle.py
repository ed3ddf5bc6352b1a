"""Program bundles: replay of the original VTA stack's programs, format checks, DRAM model."""
import json

import numpy as np
import pytest

from vtatune.errors import BundleFormatError, DramRangeError
from vtatune.sim.bundle import Bundle, load_bundle, run_bundle, save_bundle
from vtatune.sim.dram import Dram

try:  # tests/core may become a package one day
    from .progs import REFERENCE_COUNTERS
except ImportError:  # pragma: no cover - rootdir-less layout (no __init__.py)
    from progs import REFERENCE_COUNTERS


@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTERS))
def test_reference_program_replays_bit_exactly(ref_dir, name):
    bundle = load_bundle(ref_dir / f"{name}.npz")
    after = load_bundle(ref_dir / f"{name}.after.npz")
    final, result = run_bundle(bundle)
    (out_base, expected), = after.regions
    assert np.array_equal(final.region_at(out_base), expected)
    assert result.counters == REFERENCE_COUNTERS[name]
    assert sum(result.executed.values()) == bundle.insn_count
    assert result.leftover_tokens == {}


def test_reference_output_is_the_fused_conv(ref_dir):
    """Independent check of C10_203: 1x1 stride-2 conv, >>8, clip [0,127], in numpy."""
    b = load_bundle(ref_dir / "C10_203.npz")
    regions = dict(b.regions)
    addrs = [a for a, _ in b.regions]
    data = regions[addrs[0]].view(np.int8).reshape(1, 16, 14, 14, 1, 16)   # NCHW1n16c
    kern = regions[addrs[1]].view(np.int8).reshape(32, 16, 1, 1, 16, 16)   # OIHW16o16i
    x = data.transpose(0, 4, 1, 5, 2, 3).reshape(1, 256, 14, 14).astype(np.int64)
    w = kern.transpose(0, 4, 1, 5, 2, 3).reshape(512, 256).astype(np.int64)
    conv = np.einsum("oc,chw->ohw", w, x[0, :, ::2, ::2])                # (512, 7, 7)
    ref = np.clip(conv.astype(np.int32) >> 8, 0, 127).astype(np.int8)
    final, _ = run_bundle(b)
    out = final.region_at(addrs[2]).view(np.int8).reshape(1, 32, 7, 7, 1, 16)
    got = out.transpose(0, 4, 1, 5, 2, 3).reshape(512, 7, 7)
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("compressed", [True, False])
def test_save_load_round_trip(tmp_path, compressed):
    regions = [(8192, np.arange(40, dtype=np.uint8)), (3, np.array([1, 2, 3], dtype=np.uint8))]
    b = Bundle("pynq_1x16_i8w8a32_15_15_18_17", 8192, 2, sorted(regions))
    path = tmp_path / "b.npz"
    save_bundle(path, b, counters={"gemm_counter": 7}, compressed=compressed)
    got = load_bundle(path)
    assert (got.config, got.insn_addr, got.insn_count) == (b.config, 8192, 2)
    assert [a for a, _ in got.regions] == [3, 8192]
    assert np.array_equal(got.region_at(8192), np.arange(40, dtype=np.uint8))
    assert got.extra["counters"] == {"gemm_counter": 7}
    with np.load(path, allow_pickle=False) as raw:
        assert raw["config"].dtype.kind == "U" and raw["config"].ndim == 0
        assert json.loads(str(raw["counters"][()])) == {"gemm_counter": 7}


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good():
    return dict(config=np.array("pynq_1x16_i8w8a32_15_15_18_17"), insn_addr=np.array(4096),
                insn_count=np.array(1), region_addrs=np.array([4096]),
                region_0=np.zeros(16, dtype=np.uint8))


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.pop("insn_addr"), "insn_addr"),
    (lambda d: d.update(config=np.array("pynq_9x9")), "config"),
    (lambda d: d.update(insn_count=np.array([1, 2])), "insn_count"),
    (lambda d: d.update(insn_count=np.array(0)), "insn_count"),
    (lambda d: d.update(region_0=np.zeros(16, dtype=np.int32)), "region_0"),
    (lambda d: d.update(region_addrs=np.array([4096, 4100])), "region_1"),
    (lambda d: d.update(region_addrs=np.array([4096, 4100]), region_1=np.zeros(4, np.uint8)),
     "region_addrs"),
    # an object array would need pickle: refused from its header, naming the member
    (lambda d: d.update(region_0=np.array([object()], dtype=object)), "region_0"),
])
def test_malformed_bundles_name_the_field(tmp_path, mutate, field):
    d = _good()
    mutate(d)
    path = tmp_path / "bad.npz"
    np.savez(path, **d)
    with pytest.raises(BundleFormatError) as err:
        load_bundle(path)
    assert err.value.field == field


def test_not_an_archive(tmp_path):
    p = tmp_path / "x.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(BundleFormatError):
        load_bundle(p)


def test_dram_allocator_follows_the_page_table_scheme():
    dram = Dram()
    a = dram.alloc(10)          # slot 0 -> (0 + 1) * 4096
    b = dram.alloc(5000)        # two pages, slots 1..2 -> 2 * 4096
    c = dram.alloc(1)           # slot 3 -> 4 * 4096
    assert (a, b, c) == (4096, 8192, 16384)
    dram.free(b)
    assert dram.alloc(8000) == 8192  # a freed two-page block is reused for two pages
    dram.write(a, b"\x01\x02")
    assert dram.read(a, 3) == b"\x01\x02\x00"
    with pytest.raises(DramRangeError):
        dram.read(a + 4090, 10)  # runs past the end of the one-page block
    with pytest.raises(DramRangeError):
        dram.map(4096 + 100, 10)  # overlaps
    with pytest.raises(DramRangeError):
        dram.map(0, 4)  # address 0 is never valid
