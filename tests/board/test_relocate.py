"""Relocation of a bundle's stream to new buffers (vtatune.board.relocate).

Expected instruction words are built here by hand from the dossier's §2.3 bit layout of
LOAD/STORE (opcode 0-2, dependence flags 3-6, memory_type 7-9, sram_base 10-25, dram_base
26-57, y_size 64-79, x_size 80-95, x_stride 96-111, pads 112-127), never with the encoder."""
import numpy as np
import pytest

from vtatune.board.relocate import PAGE, placed_base, plan_relocation, relocate
from vtatune.errors import BoardBundleError, BoardDmaRangeError
from vtatune.sim.dram import Dram
from vtatune.sim.simulators import create_simulator

from .conftest import HW

LOAD, STORE, FINISH = 0, 1, 3
UOP, WGT, INP, ACC, OUT = 0, 1, 2, 3, 4


def mem_word(opcode, mtype, sram, dram, y, x, stride, pads=(0, 0, 0, 0), deps=0):
    y0, y1, x0, x1 = pads
    return (opcode | deps << 3 | mtype << 7 | sram << 10 | dram << 26 | y << 64 | x << 80
            | stride << 96 | y0 << 112 | y1 << 116 | x0 << 120 | x1 << 124)


def stream(*words) -> bytes:
    return b"".join(w.to_bytes(16, "little") for w in words)


def dram_base_of(raw: bytes, i: int) -> int:
    w = int.from_bytes(raw[16 * i:16 * i + 16], "little")
    return (w >> 26) & 0xFFFFFFFF


# regions of a hand-made bundle: 0 insns, 1 INP data, 2 WGT, 3 ACC, 4 UOP, 5 OUT
OLD = [0x1000, 0x3000, 0x8000, 0xC000, 0xD000, 0xE000]
SIZE = [0x100, 0x400, 0x1000, 0x400, 0x40, 0x200]
NEW = [0x9_0000, 0x20_0000, 0x30_0000, 0x40_0000, 0x50_0000, 0x60_0000]


def regions():
    return list(zip(OLD, SIZE))


def test_every_kind_of_transfer_is_relocated_to_the_same_offset():
    words = [
        # LOAD INP: 3 rows of 4 elements (16 B) at pitch 8, starting 2 elements into region 1
        mem_word(LOAD, INP, 5, 0x3000 // 16 + 2, 3, 4, 8, pads=(1, 1, 1, 1), deps=0b0101),
        mem_word(LOAD, WGT, 0, 0x8000 // 256 + 1, 2, 3, 3),           # 256 B elements
        mem_word(LOAD, ACC, 7, 0xC000 // 64 + 4, 1, 2, 2),            # 64 B elements
        mem_word(LOAD, UOP, 0, 0xD000 // 4 + 3, 0, 5, 0),             # HLS ignores y_size
        mem_word(STORE, OUT, 9, 0xE000 // 16 + 1, 2, 4, 6),           # 16 B OUT elements
        mem_word(LOAD, UOP, 0, 0, 0, 0, 0, deps=0b1000),              # token-only NOP
        FINISH,
    ]
    raw = stream(*words)
    before = bytes(raw)
    res = relocate(HW, regions(), 0x1000, len(words), raw, NEW)
    assert raw == before  # the caller's bytes are untouched
    want = [
        mem_word(LOAD, INP, 5, (0x20_0000 + 2 * 16) // 16, 3, 4, 8, pads=(1, 1, 1, 1), deps=0b0101),
        mem_word(LOAD, WGT, 0, (0x30_0000 + 256) // 256, 2, 3, 3),
        mem_word(LOAD, ACC, 7, (0x40_0000 + 4 * 64) // 64, 1, 2, 2),
        mem_word(LOAD, UOP, 0, (0x50_0000 + 3 * 4) // 4, 0, 5, 0),
        mem_word(STORE, OUT, 9, (0x60_0000 + 16) // 16, 2, 4, 6),
        mem_word(LOAD, UOP, 0, 0, 0, 0, 0, deps=0b1000),
        FINISH,
    ]
    assert res.stream == stream(*want)
    assert res.insn_addr == 0x9_0000 and res.insn_region == 0 and res.insn_offset == 0
    assert res.moved == 5


def test_stream_inside_a_region_at_an_offset():
    words = [mem_word(LOAD, INP, 0, 0x3000 // 16, 1, 1, 1), FINISH]
    res = relocate(HW, regions(), 0x1040, 2, stream(*words), NEW)
    assert res.insn_addr == 0x9_0040 and res.insn_offset == 0x40


def test_a_transfer_ending_exactly_at_the_region_end_is_accepted():
    # rows at element 0, 40 of region 1 (64 elements of 16 B): last row ends at element 64
    last = mem_word(LOAD, INP, 0, 0x3000 // 16, 2, 24, 40)
    relocate(HW, regions(), 0x1000, 2, stream(last, FINISH), NEW)
    one_more = mem_word(LOAD, INP, 0, 0x3000 // 16, 2, 25, 40)
    with pytest.raises(BoardDmaRangeError) as err:
        relocate(HW, regions(), 0x1000, 2, stream(one_more, FINISH), NEW)
    assert err.value.insn_index == 0 and err.value.region == 1
    assert err.value.code == "dma_out_of_range"


def test_padding_is_not_read_from_dram():
    # 4 rows of 16 elements fill region 1 exactly; pads of 15 on every side add no reads
    padded = mem_word(LOAD, INP, 0, 0x3000 // 16, 4, 16, 16, pads=(15, 15, 15, 15))
    relocate(HW, regions(), 0x1000, 2, stream(padded, FINISH), NEW)


def test_the_stride_counts_between_rows():
    # 2 rows of 1 element at pitch 64 -> the second row is element 64: just outside
    wide = mem_word(LOAD, INP, 0, 0x3000 // 16, 2, 1, 64)
    with pytest.raises(BoardDmaRangeError) as err:
        relocate(HW, regions(), 0x1000, 2, stream(FINISH, wide), NEW)
    assert err.value.insn_index == 1 and err.value.region == 1


def test_uop_load_reads_x_size_micro_ops_only():
    # region 4 holds 16 micro-ops; y_size 9 and a huge stride are ignored by HLS
    ok = mem_word(LOAD, UOP, 0, 0xD000 // 4, 9, 16, 5000)
    relocate(HW, regions(), 0x1000, 2, stream(ok, FINISH), NEW)
    too_many = mem_word(LOAD, UOP, 0, 0xD000 // 4, 1, 17, 17)
    with pytest.raises(BoardDmaRangeError) as err:
        relocate(HW, regions(), 0x1000, 3, stream(FINISH, FINISH, too_many), NEW)
    assert err.value.insn_index == 2 and err.value.region == 4


def test_store_uses_out_elements_whatever_its_memory_type():
    # HLS store ignores memory_type: 16-byte elements, region 5 holds 32
    st = mem_word(STORE, ACC, 0, 0xE000 // 16 + 31, 1, 1, 1)
    res = relocate(HW, regions(), 0x1000, 2, stream(st, FINISH), NEW)
    assert dram_base_of(res.stream, 0) == (0x60_0000 + 31 * 16) // 16
    with pytest.raises(BoardDmaRangeError):
        relocate(HW, regions(), 0x1000, 2, stream(mem_word(STORE, ACC, 0, 0xE000 // 16 + 31, 1, 2, 2),
                                                   FINISH), NEW)


def test_a_transfer_starting_outside_every_region():
    stray = mem_word(LOAD, WGT, 0, 0x2000 // 256, 1, 1, 1)
    with pytest.raises(BoardDmaRangeError) as err:
        relocate(HW, regions(), 0x1000, 2, stream(FINISH, stray), NEW)
    assert err.value.insn_index == 1 and err.value.region is None


def test_a_transfer_crossing_into_the_next_region_is_refused():
    # adjacent regions: one element in each is still refused
    regs = [(0x1000, 0x100), (0x2000, 0x1000), (0x3000, 0x1000)]
    cross = mem_word(LOAD, INP, 0, 0x2000 // 16 + 255, 1, 2, 2)  # one element in each
    with pytest.raises(BoardDmaRangeError) as err:
        relocate(HW, regs, 0x1000, 2, stream(cross, FINISH), [0x10000, 0x20000, 0x30000])
    assert err.value.region == 1


def test_nothing_moves_for_empty_transfers():
    # x_size 0 (tokens only) and y_size 0 (INP padding only) keep their dram_base
    nop = mem_word(LOAD, INP, 0, 0x7777, 3, 0, 3)
    pad_only = mem_word(LOAD, INP, 0, 0x8888, 0, 4, 4, pads=(2, 0, 0, 0))
    res = relocate(HW, regions(), 0x1000, 3, stream(nop, pad_only, FINISH), NEW)
    assert dram_base_of(res.stream, 0) == 0x7777 and dram_base_of(res.stream, 1) == 0x8888
    assert res.moved == 0


def test_the_instruction_stream_must_lie_in_one_region():
    with pytest.raises(BoardDmaRangeError) as err:
        relocate(HW, regions(), 0x1000 + 0xF0, 2, stream(FINISH, FINISH), NEW)
    assert err.value.field == "insn_addr" and err.value.region == 0
    with pytest.raises(BoardDmaRangeError) as err:
        relocate(HW, regions(), 0x2000, 1, stream(FINISH), NEW)
    assert err.value.field == "insn_addr" and err.value.region is None


def test_a_new_base_that_breaks_element_alignment_is_refused():
    words = [mem_word(LOAD, WGT, 0, 0x8000 // 256, 1, 1, 1), FINISH]
    bad = list(NEW)
    bad[2] += 128  # WGT elements are 256 B
    with pytest.raises(BoardBundleError) as err:
        relocate(HW, regions(), 0x1000, 2, stream(*words), bad)
    assert not isinstance(err.value, BoardDmaRangeError)
    assert err.value.field == "dram_base" and err.value.region == 2 and err.value.insn_index == 0


def test_placement_keeps_the_offset_within_a_page():
    for old, phys in [(0x1234, 0x10000), (0x5000, 0x7000), (0xFFF, 0x1000)]:
        new = placed_base(old, phys)
        assert phys <= new < phys + PAGE and new % PAGE == old % PAGE


def test_plan_once_apply_anywhere(prog):
    b = prog.bundle
    spans = [(a, d.size) for a, d in b.regions]
    k = next(i for i, (a, n) in enumerate(spans) if a <= b.insn_addr < a + n)
    raw = b.regions[k][1][b.insn_addr - spans[k][0]:][:16 * b.insn_count]
    plan = plan_relocation(HW, spans, b.insn_addr, b.insn_count, raw)
    same = plan.apply([a for a, _ in spans])
    assert same.stream == raw.tobytes()  # placed where it was: nothing changes
    assert same.moved > 0


def _run_at(prog, bases):
    """Place the bundle's regions at ``bases``, relocate, run on fsim; the output region."""
    b = prog.bundle
    spans = [(a, d.size) for a, d in b.regions]
    k = next(i for i, (a, n) in enumerate(spans) if a <= b.insn_addr < a + n)
    raw = b.regions[k][1][b.insn_addr - spans[k][0]:][:16 * b.insn_count]
    res = relocate(HW, spans, b.insn_addr, b.insn_count, raw, bases)
    dram = Dram()
    for base, (_, data) in zip(bases, b.regions):
        dram.map(base, data)
    dram.write(res.insn_addr, res.stream)
    create_simulator("fsim", HW, dram).run(res.insn_addr, b.insn_count)
    return np.frombuffer(dram.read(bases[prog.out_index], b.regions[prog.out_index][1].size), np.uint8)


def test_relocated_program_computes_the_same_output(prog):
    b = prog.bundle
    # unrelocated run (the bundle's own addresses)
    dram = b.to_dram()
    create_simulator("fsim", HW, dram).run(b.insn_addr, b.insn_count)
    base_out = np.frombuffer(dram.read(*[(a, d.size) for a, d in b.regions][prog.out_index]), np.uint8)
    assert np.array_equal(prog.output(base_out), prog.expected)
    # shifted far away, in reverse order, each at its offset within a page
    shifted = [0x7000_0000 - (i + 1) * 0x10_0000 + a % PAGE for i, (a, _) in enumerate(b.regions)]
    out = _run_at(prog, shifted)
    assert np.array_equal(out, base_out)
    assert np.array_equal(prog.output(out), prog.expected)


def test_a_wrong_relocation_is_caught_by_the_output_check(prog, monkeypatch):
    """The end-to-end check above fails when relocation is broken: a relocation that
    forgets the data region's new base reads stale memory."""
    import vtatune.board.relocate as R
    orig = R.RelocationPlan.apply

    def broken(self, new_bases):
        res = orig(self, new_bases)
        raw = bytearray(res.stream)
        # undo the move of one INP load: point it back at the bundle's address
        cols = [i for i in range(len(raw) // 16)
                if int.from_bytes(raw[16 * i:16 * i + 16], "little") & 0x387 == (INP << 7)
                and (int.from_bytes(raw[16 * i:16 * i + 16], "little") >> 80) & 0xFFFF]
        i = cols[0]
        w = int.from_bytes(raw[16 * i:16 * i + 16], "little")
        w = (w & ~(0xFFFFFFFF << 26)) | ((dram_base_of(raw, i) + 1) << 26)
        raw[16 * i:16 * i + 16] = w.to_bytes(16, "little")
        res.stream = bytes(raw)
        return res

    monkeypatch.setattr(R.RelocationPlan, "apply", broken)
    shifted = [0x6000_0000 + i * 0x10_0000 + a % PAGE for i, (a, _) in enumerate(prog.bundle.regions)]
    out = _run_at(prog, shifted)
    assert not np.array_equal(prog.output(out), prog.expected)
