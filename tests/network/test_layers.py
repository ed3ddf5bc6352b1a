"""VTA layers of a network: packed outputs against numpy written out here (fsim, tsim and a
loopback board server), and configuration selection against a SQLite database with records
inserted by hand (the best chosen, a best that does not fit the requant epilogue skipped,
fsim costs never ranked, the fallback reported)."""
import dataclasses
import io
import threading

import numpy as np
import pytest

from vtatune.compiler.sweep import verdict
from vtatune.hardware.config import HwConfig
from vtatune.network.layers import (
    FALLBACK,
    TUNED,
    VtaLayer,
    default_config,
    select_config,
    task_keys,
    tuning_task,
)
from vtatune.workloads.workload import CONV2D, DENSE, GROUP_CONV2D, Requant, Workload

HW = HwConfig.load()
HW48 = HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18")


# ------------------------------------------------------------------ numpy, written out
def pack_nchw(x, B, BL):
    """NCHW -> (N/B, C/BL, H, W, B, BL) (vta-spec §6.2)."""
    n, c, h, w = x.shape
    return x.reshape(n // B, B, c // BL, BL, h, w).transpose(0, 2, 4, 5, 1, 3).copy()


def unpack_nchw(p):
    nb, cb, h, w, B, BL = p.shape
    return p.transpose(0, 4, 1, 5, 2, 3).reshape(nb * B, cb * BL, h, w)


def conv_requant(x, wt, bias, stride, pad, groups, q):
    n, _, h, w = x.shape
    o, cg, kh, kw = wt.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    acc = np.zeros((n, o, oh, ow), dtype=np.int64)
    opg = o // groups
    for oc in range(o):
        g = oc // opg
        for ci in range(cg):
            for i in range(kh):
                for j in range(kw):
                    acc[:, oc] += (xp[:, g * cg + ci, i:i + stride * oh:stride, j:j + stride * ow:stride]
                                   * int(wt[oc, ci, i, j]))
    v = acc + bias.astype(np.int64)[None, :, None, None]
    v = (v + 2 ** 31) % 2 ** 32 - 2 ** 31          # int32 wrap
    return np.clip(v >> q.shift, q.lo, q.hi).astype(np.int8)


def layer(wl, hw, seed, target="fsim", out_channels=None):
    rng = np.random.default_rng(seed)
    o = out_channels or wl.out_channels
    cin = wl.in_channels // wl.groups
    shape = (o, wl.in_channels) if wl.template == DENSE else (o, cin, wl.kernel_h, wl.kernel_w)
    wt = rng.integers(-127, 128, shape, dtype=np.int8)
    bias = rng.integers(-3000, 3000, o, dtype=np.int32)
    task = tuning_task(wl, hw)
    _, knobs = default_config(task, wl, hw)
    return VtaLayer(wl.name or "l", wl, knobs, hw, wt, bias, target=target), wt, bias


def test_conv_layer_with_padded_output_channels_matches_numpy():
    q = Requant(7, -127, 127)
    # 24 output channels padded to 32 (BLOCK_OUT 16): zero weight rows, result sliced
    wl = Workload(CONV2D, 8, 8, 32, 32, 3, 3, 1, 1, 1, 1, batch=1, epilogue="requant",
                  requant=q, name="c")
    lay, wt, bias = layer(wl, HW, 1, out_channels=24)
    x = np.random.default_rng(2).integers(-128, 128, (1, 32, 8, 8), dtype=np.int8)
    out, timing = lay.run(pack_nchw(x, 1, 16))
    assert out.shape == (1, 2, 8, 8, 1, 16) and out.dtype == np.int8
    got = unpack_nchw(out)
    assert np.array_equal(got[:, :24], conv_requant(x, wt, bias, 1, 1, 1, q))
    assert not got[:, 24:].any()  # clip(0 >> shift): the padded channels are zero
    assert timing.vta_s is None and timing.wall_s > 0  # fsim: no hardware time
    assert lay.timings == [timing]
    with pytest.raises(Exception, match="expected packed int8"):
        lay.run(x)


def test_group_conv_and_dense_layers_at_batch_4_on_4x8():
    q = Requant(8, 0, 127)
    wl = Workload(GROUP_CONV2D, 6, 6, 32, 32, 3, 3, 1, 1, 2, 2, groups=2, batch=4,
                  epilogue="requant", requant=q, name="g")
    lay, wt, bias = layer(wl, HW48, 3)
    x = np.random.default_rng(4).integers(-128, 128, (4, 32, 6, 6), dtype=np.int8)
    out, _ = lay.run(pack_nchw(x, 4, 8))
    assert np.array_equal(unpack_nchw(out), conv_requant(x, wt, bias, 2, 1, 2, q))

    q = Requant(6, -127, 127)
    wl = Workload(DENSE, 1, 1, 64, 40, batch=8, epilogue="requant", requant=q, name="fc")
    lay, wt, bias = layer(wl, HW48, 5, out_channels=36)
    x = np.random.default_rng(6).integers(-128, 128, (8, 64), dtype=np.int8)
    xp = x.reshape(2, 4, 8, 8).transpose(0, 2, 1, 3).copy()  # (N/B, I/BI, B, BI)
    out, _ = lay.run(xp)
    got = out.transpose(0, 2, 1, 3).reshape(8, 40)
    v = x.astype(np.int64) @ wt.astype(np.int64).T + bias
    assert np.array_equal(got[:, :36], np.clip(v >> 6, -127, 127).astype(np.int8))
    assert not got[:, 36:].any()


def test_tsim_layer_gives_the_simulated_latency_and_the_same_bytes():
    q = Requant(9, 0, 127)
    wl = Workload(CONV2D, 8, 8, 16, 32, 3, 3, 1, 1, 1, 1, batch=1, epilogue="requant",
                  requant=q, name="t")
    fs, _, _ = layer(wl, HW, 7)
    ts, _, _ = layer(wl, HW, 7, target="tsim")
    x = pack_nchw(np.random.default_rng(8).integers(-128, 128, (1, 16, 8, 8), dtype=np.int8), 1, 16)
    a, _ = fs.run(x)
    b, timing = ts.run(x)
    assert np.array_equal(a, b)
    assert timing.vta_s > 0 and timing.cycles > 0
    assert ts.time_only() == pytest.approx(timing.vta_s, rel=1e-9)


def test_layer_on_a_loopback_board_server(tmp_path):
    from vtatune.board.backends import create_backend
    from vtatune.board.server import BoardServer
    from vtatune.measure.board_runner import BoardRunner

    server = BoardServer(create_backend("fsim", hw=HW), log_file=io.StringIO())
    th = threading.Thread(target=server.serve_forever, kwargs={"poll_s": 0.05}, daemon=True)
    th.start()
    try:
        runner = BoardRunner.from_target(f"pynq://127.0.0.1:{server.port}",
                                         lease_url=f"sqlite:///{tmp_path / 'leases.db'}")
        q = Requant(8, -127, 127)
        wl = Workload(CONV2D, 4, 4, 16, 16, 1, 1, 0, 0, 1, 1, batch=1, epilogue="requant",
                      requant=q, name="b")
        lay, wt, bias = layer(wl, HW, 9, target=runner)
        x = np.random.default_rng(10).integers(-128, 128, (1, 16, 4, 4), dtype=np.int8)
        out, timing = lay.run(pack_nchw(x, 1, 16))
        assert np.array_equal(unpack_nchw(out), conv_requant(x, wt, bias, 1, 0, 1, q))
        assert timing.vta_s is not None and timing.vta_s >= 0
    finally:
        server.stop()
        th.join(10)


# ------------------------------------------------------------------ configuration selection
@pytest.fixture
def db(tmp_path):
    pytest.importorskip("sqlalchemy")
    from vtatune.db import open_db
    d = open_db(f"sqlite:///{tmp_path / 'records.db'}")
    yield d
    d.close()


# a 32x32 layer: configuration 71 (32x32 tile of 2 channel blocks) fills the accumulator
# buffer exactly; with the bias loaded beside it, it overflows (acc_sram_overflow)
BIG = Workload(CONV2D, 32, 32, 16, 32, 3, 3, 1, 1, 1, 1, batch=1, epilogue="requant",
               requant=Requant(8, 0, 127), name="big")
NO_FIT = 71


def add(db, task, index, cost, runner, source="measured", error_no=0):
    cfg = task.config(index)
    db.add([task.record(cfg, costs=[cost] if error_no == 0 else [1e9], error_no=error_no,
                        runner=runner, source=source)])


def test_the_tuning_task_has_the_autotvm_key():
    task = tuning_task(BIG, HW)
    assert task.workload.epilogue == "shift_clip" and task.workload.requant is None
    assert task.key.startswith('["conv2d_packed.vta",')
    plain = dataclasses.replace(BIG, epilogue="shift_clip", requant=None, name="")
    from vtatune.task import VtaTask
    assert VtaTask.create(plain, HW).key == task.key


def tsim_label(task):
    """The tsim runner label written out: tsim/<sync>/<profile>/<timing fingerprint>."""
    from vtatune.measure.runners import timing_fingerprint
    return f"tsim/{task.sync}/{task.profile}/{timing_fingerprint(task.hw)}"


def stale(task):
    return f"tsim/{task.sync}/{task.profile}/0123abcd"  # an older timing model


def test_the_best_record_is_chosen_boards_first(db):
    task = tuning_task(BIG, HW)
    valid = [i for i in range(task.space.size)
             if verdict(BIG, task.config(i).knobs, HW, task.profile, task.sync)[0]][:7]
    a, b, c, d, e, f, g = valid
    add(db, task, a, 0.003, tsim_label(task))
    add(db, task, b, 0.002, tsim_label(task))   # the best tsim record
    add(db, task, g, 0.0015, stale(task))        # cheaper, but an older timing model: later tier
    add(db, task, c, 0.0001, f"fsim/{task.sync}/{task.profile}")    # fsim: never ranked
    add(db, task, d, 0.00001, tsim_label(task), error_no=4)  # failed
    add(db, task, e, 0.004, "import", source="imported")
    choice = select_config(db, task, BIG, HW)
    assert (choice.kind, choice.index) == (TUNED, b)
    assert choice.record["runner"].startswith("tsim/") and choice.record["cost_s"] == 0.002
    assert choice.knobs == task.config(b).knobs and not choice.skipped
    # a board's measurement wins over any simulated cost
    add(db, task, f, 0.009, f"pynq/1x16_i8w8a32_15_15_18_17/100MHz/{task.sync}/{task.profile}")
    add(db, task, a, 0.0005, "pynq[fsim]/pynq_1x16_i8w8a32_15_15_18_17/unclocked/"
                             f"{task.sync}/{task.profile}")  # a simulator server: not a board
    add(db, task, c, 0.0004, f"pynq/1x16_i8w8a32_15_15_18_17/100MHz/tvm-0.14-other/x")
    choice = select_config(db, task, BIG, HW)
    assert (choice.kind, choice.index) == (TUNED, f) and choice.record["runner"].startswith("pynq/")
    # without current tsim records, the stale one is the best simulated cost
    choice = select_config(db, task, BIG, HW, sources=("tsim-other", "import"))
    assert (choice.index, choice.record["runner"]) == (g, stale(task))
    # only imported records: the imported one
    choice = select_config(db, task, BIG, HW, sources=("import",))
    assert (choice.kind, choice.index, choice.record["source"]) == (TUNED, e, "imported")


def test_a_best_that_does_not_fit_the_requant_epilogue_is_skipped(db):
    task = tuning_task(BIG, HW)
    assert verdict(task.workload, task.config(NO_FIT).knobs, HW, task.profile, task.sync)[0]
    assert not verdict(BIG, task.config(NO_FIT).knobs, HW, task.profile, task.sync)[0]
    default_index, _ = default_config(task, BIG, HW)
    second = next(i for i in range(default_index + 1, task.space.size)
                  if verdict(BIG, task.config(i).knobs, HW, task.profile, task.sync)[0])
    add(db, task, NO_FIT, 0.001, tsim_label(task))
    add(db, task, second, 0.002, tsim_label(task))
    choice = select_config(db, task, BIG, HW)
    assert (choice.kind, choice.index) == (TUNED, second)
    assert len(choice.skipped) == 1 and "acc_sram_overflow" in choice.skipped[0]["reason"]
    assert choice.skipped[0]["index"] == NO_FIT and "do not fit" in choice.note
    # only the misfit: the fallback, saying why
    db2 = select_config(db, task, BIG, HW, sources=("tsim",), limit=1)
    assert (db2.kind, db2.index) == (FALLBACK, default_index)
    assert "no record compiles with the requant epilogue" in db2.note


def test_no_records_falls_back_to_the_first_valid_configuration(db):
    task = tuning_task(BIG, HW)
    choice = select_config(db, task, BIG, HW)
    index, knobs = default_config(task, BIG, HW)
    assert (choice.kind, choice.index, choice.knobs) == (FALLBACK, index, knobs)
    assert choice.record is None and "no successful record" in choice.note
    assert "default configuration" in choice.note
    none = select_config(None, task, BIG, HW)
    assert none.kind == FALLBACK and "no records database" in none.note
    # records of another hardware configuration do not apply
    other = tuning_task(dataclasses.replace(BIG, batch=4), HW48)
    add(db, other, 0, 0.001, tsim_label(other))
    assert select_config(db, task, BIG, HW).kind == FALLBACK


def test_tophub_records_without_times_apply_in_log_order(db):
    """TopHub's log ships here with its times withheld (cost 0: never a best record); its
    configurations still apply, after every timed record, as AutoTVM would apply them."""
    import pathlib

    from vtatune.db import import_log
    from vtatune.workloads.suites import get_workload
    log = pathlib.Path(__file__).parents[1] / "data" / "autotvm" / "tophub_vta_v0.10.log"
    import_log(db, log)
    c2 = dataclasses.replace(get_workload("resnet18.C2", HW), epilogue="requant",
                             requant=Requant(8, 0, 127), name="layer1.0.conv1")
    task = tuning_task(c2, HW)
    choice = select_config(db, task, c2, HW)
    assert choice.kind == TUNED and choice.record["source"] == "imported"
    assert choice.record["cost_s"] is None and "withheld" in choice.note
    tophub = [r for r in db.records(task.key, HW.name) if r.ok]
    entity, _ = task.space.apply_entity(tophub[0].config)
    assert choice.index == entity.index
    # a timed record of any kind ranks before it
    other = next(i for i in range(task.space.size) if i != choice.index and
                 verdict(c2, task.config(i).knobs, HW, task.profile, task.sync)[0])
    add(db, task, other, 0.5, "import", source="imported")
    assert select_config(db, task, c2, HW).index == other
    # TopHub's 4x8 strided layers are logged with the older 8-argument conv2d signature
    c3 = dataclasses.replace(get_workload("resnet18.C3", HW48), batch=4, epilogue="requant",
                             requant=Requant(8, 0, 127))
    task = tuning_task(c3, HW48)
    assert not db.records(task.key, HW48.name) and len(task_keys(task)) == 2
    assert '"NCHW4n8c","NCHW4n8c"' in task_keys(task)[1]
    choice = select_config(db, task, c3, HW48)
    assert choice.kind == TUNED and choice.record["source"] == "imported"
