"""Bit-exact tests of the VTA ISA codec against the spec (vta-spec.md §2.1-§2.8).

Every expected constant in this file was worked out by hand from the bit tables of
§2.3-§2.8 (explicit shifts at the table positions, in a scratch session that did not
import vtatune) and pasted here as a literal.  The comment next to each literal lists the
field positions used.  The round-trip tests draw field values whose widths come from the
spec formulas (§1.2, §2.4, §2.5, §2.8) applied to the configuration's log buffer depths,
and compare against an independent packer written from the §2.2 rule.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtatune.errors import DecodeError, FieldOverflowError
from vtatune.hardware import isa
from vtatune.hardware.config import DEFAULT_NAME, HwConfig

SHIPPED = [
    "pynq_1x16_i8w8a32_15_15_18_17",
    "pynq_4x8_i8w8a32_15_16_16_18",
    "ultra96_1x16_i8w8a32_15_15_18_17",
    "zcu104_1x16_i8w8a32_15_15_18_17",
    "de10nano_1x16_i8w8a32_15_15_18_17",
]

HW = {name: HwConfig.load(name) for name in SHIPPED}


@pytest.fixture(scope="module")
def hw():
    h = HwConfig.load()
    assert h.name == DEFAULT_NAME
    return h


def _check_both_ways(insn, expected: bytes, hw):
    assert len(expected) == 16
    assert isa.encode(insn, hw) == expected
    assert isa.encode_int(insn, hw) == int.from_bytes(expected, "little")
    got = isa.decode(expected, hw)
    assert type(got) is type(insn)
    assert got == insn


# ----------------------------------------------------------------------------- hand-computed
# Default config (§2.4): U = 13, A = 11, I = 11, W = 10.

def test_load_inp_with_pads_and_deps(hw):
    insn = isa.MemInsn(opcode=isa.Opcode.LOAD, memory_type=isa.MemType.INP, sram_base=0x0123,
                       dram_base=0x00ABCDEF, y_size=14, x_size=14, x_stride=56,
                       y_pad_0=1, y_pad_1=2, x_pad_0=3, x_pad_1=15,
                       pop_prev=0, pop_next=1, push_prev=0, push_next=1)
    # §2.3: opcode 0<<0 | pop_next 1<<4 | push_next 1<<6 | memory_type 2<<7
    #       | sram_base 0x123<<10 | dram_base 0xABCDEF<<26 | y_size 14<<64 | x_size 14<<80
    #       | x_stride 56<<96 | y_pad_0 1<<112 | y_pad_1 2<<116 | x_pad_0 3<<120 | x_pad_1 15<<124
    # = 0xf3210038000e000e0002af37bc048d50
    expected = bytes.fromhex("508d04bc37af02000e000e00380021f3")
    _check_both_ways(insn, expected, hw)
    assert int.from_bytes(expected, "little") == 0xF3210038000E000E0002AF37BC048D50


def test_load_wgt(hw):
    insn = isa.MemInsn(opcode=isa.Opcode.LOAD, memory_type=isa.MemType.WGT, sram_base=1023,
                       dram_base=0x80000000, y_size=1, x_size=9, x_stride=9, pop_next=1)
    # §2.3: pop_next 1<<4 | memory_type 1<<7 | sram_base 1023<<10 | dram_base 0x80000000<<26
    #       (top dram bit lands on bit 57, the last used bit of the low word)
    #       | y_size 1<<64 | x_size 9<<80 | x_stride 9<<96
    # = 0x90009000102000000000ffc90
    expected = bytes.fromhex("90fc0f00000000020100090009000000")
    _check_both_ways(insn, expected, hw)
    assert int.from_bytes(expected, "little") == 0x90009000102000000000FFC90


def test_store(hw):
    insn = isa.MemInsn(opcode=isa.Opcode.STORE, memory_type=isa.MemType.OUT, sram_base=0x07FF,
                       dram_base=0xFFFFFFFF, y_size=0xFFFF, x_size=7, x_stride=0x1234,
                       pop_prev=1, push_prev=1)
    # §2.3: opcode 1<<0 | pop_prev 1<<3 | push_prev 1<<5 | memory_type 4<<7
    #       | sram_base 0x7FF<<10 | dram_base 0xFFFFFFFF<<26 (bits 26..57; 58..63 stay 0)
    #       | y_size 0xFFFF<<64 | x_size 7<<80 | x_stride 0x1234<<96
    # = 0x12340007ffff03fffffffc1ffe29
    expected = bytes.fromhex("29fe1ffcffffff03ffff070034120000")
    _check_both_ways(insn, expected, hw)
    # bits 58..63 unused -> the high 6 bits of byte 7 are zero
    assert expected[7] == 0x03


def test_gemm_reset_and_factors(hw):
    insn = isa.GemmInsn(reset_reg=1, uop_bgn=8191, uop_end=8192, iter_out=16383, iter_in=5,
                        dst_factor_out=2047, dst_factor_in=1, src_factor_out=0x555,
                        src_factor_in=2, wgt_factor_out=1023, wgt_factor_in=0x2AA,
                        pop_prev=1, pop_next=0, push_prev=1, push_next=1)
    # §2.4: opcode 2<<0 | pop_prev 1<<3 | push_prev 1<<5 | push_next 1<<6 | reset 1<<7
    #       | uop_bgn 8191<<8 | uop_end 8192<<21 | iter_out 16383<<35 | iter_in 5<<49
    #       (bit 63 unused) | dst_factor_out 2047<<64 | dst_factor_in 1<<75
    #       | src_factor_out 0x555<<86 | src_factor_in 2<<97 | wgt_factor_out 1023<<108
    #       | wgt_factor_in 0x2AA<<118
    # = 0xaabff00555400fff000bfffc001fffea
    expected = bytes.fromhex("eaff1f00fcff0b00ff0f405505f0bfaa")
    _check_both_ways(insn, expected, hw)
    assert int.from_bytes(expected, "little") == 0xAABFF00555400FFF000BFFFC001FFFEA


def test_alu_shr_negative_immediate(hw):
    insn = isa.AluInsn(uop_bgn=10, uop_end=11, iter_out=2, iter_in=3, dst_factor_out=4,
                       dst_factor_in=1, src_factor_out=4, src_factor_in=1,
                       alu_opcode=isa.AluOp.SHR, use_imm=1, imm=-5, push_next=1)
    # §2.5: opcode 4<<0 | push_next 1<<6 | uop_bgn 10<<8 | uop_end 11<<21 | iter_out 2<<35
    #       | iter_in 3<<49 | dst_factor_out 4<<64 | dst_factor_in 1<<75
    #       | src_factor_out 4<<86 | src_factor_in 1<<97 | alu_opcode 3<<108 | use_imm 1<<111
    #       | imm (-5 & 0xFFFF = 0xFFFB)<<112
    # = 0xfffbb002010008040006001001600a44
    expected = bytes.fromhex("440a6001100006000408000102b0fbff")
    _check_both_ways(insn, expected, hw)
    assert isa.decode(expected, hw).imm == -5


def test_alu_add_tensor_operand(hw):
    insn = isa.AluInsn(uop_bgn=0, uop_end=1, iter_out=1, iter_in=16, dst_factor_out=0x7FF,
                       dst_factor_in=3, src_factor_out=2047, src_factor_in=1024,
                       alu_opcode=isa.AluOp.ADD, use_imm=0, imm=0, pop_prev=1)
    # §2.5: opcode 4<<0 | pop_prev 1<<3 | uop_end 1<<21 | iter_out 1<<35 | iter_in 16<<49
    #       | dst_factor_out 0x7FF<<64 | dst_factor_in 3<<75 | src_factor_out 2047<<86
    #       | src_factor_in 1024<<97 (ALU src factors are A = 11 bits wide)
    #       | alu_opcode 2<<108 | use_imm 0<<111 | imm 0<<112
    # = 0x2801ffc01fff002000080020000c
    expected = bytes.fromhex("0c00200008002000ff1fc0ff01280000")
    _check_both_ways(insn, expected, hw)


def test_alu_max_most_negative_immediate(hw):
    insn = isa.AluInsn(uop_end=1, iter_out=1, iter_in=1, alu_opcode=isa.AluOp.MAX, use_imm=1,
                       imm=-32768)
    # §2.5: opcode 4 | uop_end 1<<21 | iter_out 1<<35 | iter_in 1<<49 | alu_opcode 1<<108
    #       | use_imm 1<<111 | imm 0x8000<<112
    # = 0x80009000000000000002000800200004
    expected = bytes.fromhex("04002000080002000000000000900080")
    _check_both_ways(insn, expected, hw)


def test_finish_with_flags(hw):
    insn = isa.FinishInsn(pop_prev=1, pop_next=1, push_prev=1, push_next=1)
    # §2.6/§2.4: opcode 3<<0 | pop_prev 1<<3 | pop_next 1<<4 | push_prev 1<<5 | push_next 1<<6
    # = 0x7b, everything else zero
    _check_both_ways(insn, bytes.fromhex("7b000000000000000000000000000000"), hw)
    # opcode 3 | push_prev 1<<5 = 0x23
    _check_both_ways(isa.FinishInsn(push_prev=1),
                     bytes.fromhex("23000000000000000000000000000000"), hw)
    _check_both_ways(isa.FinishInsn(), bytes.fromhex("03000000000000000000000000000000"), hw)


# Micro-ops, default config (§2.8): dst [0:10], src [11:21], wgt [22:31].
UOP_CASES = [
    (isa.Uop(2047, 0, 0), 0x000007FF),           # 2047<<0
    (isa.Uop(5, 1234, 1000), 0xFA269005),        # 5 | 1234<<11 | 1000<<22
    (isa.Uop(0, 2047, 1023), 0xFFFFF800),        # 2047<<11 | 1023<<22
    (isa.Uop(1, 1, 1), 0x00400801),              # 1 | 1<<11 | 1<<22
]


@pytest.mark.parametrize("uop,word", UOP_CASES)
def test_uop_hand_computed(hw, uop, word):
    assert isa.encode_uop(uop, hw) == word
    assert isa.encode_uops([uop], hw) == word.to_bytes(4, "little")
    assert isa.decode_uops(word.to_bytes(4, "little"), hw) == [uop]


def test_uops_stream_little_endian(hw):
    uops = [u for u, _ in UOP_CASES]
    # the four words above, each 4 bytes little-endian, back to back
    expected = bytes.fromhex("ff070000" "059026fa" "00f8ffff" "01084000")
    assert isa.encode_uops(uops, hw) == expected
    assert isa.decode_uops(expected, hw) == uops


def test_program_of_hand_computed_instructions(hw):
    insns = [
        isa.MemInsn(opcode=isa.Opcode.LOAD, memory_type=isa.MemType.WGT, sram_base=1023,
                    dram_base=0x80000000, y_size=1, x_size=9, x_stride=9, pop_next=1),
        isa.FinishInsn(pop_prev=1, pop_next=1, push_prev=1, push_next=1),
    ]
    expected = bytes.fromhex("90fc0f00000000020100090009000000"
                             "7b000000000000000000000000000000")
    assert isa.encode_program(insns, hw) == expected
    assert isa.decode_program(expected, hw) == insns


def test_malformed_lengths(hw):
    with pytest.raises(DecodeError):
        isa.decode(bytes(15), hw)
    with pytest.raises(DecodeError):
        isa.decode_program(bytes(17), hw)
    with pytest.raises(DecodeError):
        isa.decode_uops(bytes(5), hw)
    assert isa.decode_program(b"", hw) == []
    assert isa.encode_program([], hw) == b""
    assert isa.decode_uops(b"", hw) == []


# ----------------------------------------------------------------------------- other configs
def test_4x8_gemm_layout():
    hw = HW["pynq_4x8_i8w8a32_15_16_16_18"]
    # §1.2 formulas for 4x8 (LOG_BATCH 2, LOG_BLOCK 3, sizes 15/16/16/18):
    # U = 15-5+3 = 13, I = 16-2-3-3+3 = 11, W = 16-3-3-3+3 = 10, A = 18-2-3-5+3 = 11
    # -> §2.2 packing gives: uop_bgn 8, uop_end 21, iter_out 35, iter_in 49 (ends at 63),
    #    dst_factor_out 64, dst_factor_in 75, src_factor_out 86, src_factor_in 97,
    #    wgt_factor_out 108, wgt_factor_in 118 (ends at 128)
    assert isa.encode_int(isa.GemmInsn(wgt_factor_in=1), hw) == 2 | 1 << 118
    assert isa.encode_int(isa.GemmInsn(src_factor_in=1), hw) == 2 | 1 << 97
    assert isa.encode_int(isa.GemmInsn(iter_in=1), hw) == 2 | 1 << 49
    insn = isa.GemmInsn(uop_bgn=3, uop_end=4, iter_out=7, iter_in=2, dst_factor_out=1,
                        dst_factor_in=16, src_factor_out=2047, src_factor_in=0,
                        wgt_factor_out=0, wgt_factor_in=1, push_next=1)
    # 2 | push_next 1<<6 | 3<<8 | 4<<21 | 7<<35 | 2<<49 | 1<<64 | 16<<75 | 2047<<86 | 1<<118
    # = 0x400001ffc080010004003800800342
    _check_both_ways(insn, bytes.fromhex("42038000380004000180c0ff01004000"), hw)


def test_1x32_hypothetical_layout():
    # §1.5 hypothetical 1x32 config: U = 13, I = 15-0-5-3+3 = 10, W = 18-5-5-3+3 = 8,
    # A = 17-0-5-5+3 = 10.  Its upper word differs from the default layout.
    hw = HwConfig.from_dict({
        "TARGET": "sim", "HW_VER": "0.0.2", "LOG_INP_WIDTH": 3, "LOG_WGT_WIDTH": 3,
        "LOG_ACC_WIDTH": 5, "LOG_BATCH": 0, "LOG_BLOCK": 5, "LOG_UOP_BUFF_SIZE": 15,
        "LOG_INP_BUFF_SIZE": 15, "LOG_WGT_BUFF_SIZE": 18, "LOG_ACC_BUFF_SIZE": 17})
    gemm = isa.GemmInsn(uop_bgn=1, uop_end=2, iter_out=1, iter_in=1, dst_factor_out=1023,
                        dst_factor_in=1, src_factor_out=1023, src_factor_in=1,
                        wgt_factor_out=255, wgt_factor_in=1)
    # GEMM: 2 | 1<<8 | 2<<21 | 1<<35 | 1<<49 | dfo 1023<<64 | dfi 1<<74 | sfo 1023<<84
    #       | sfi 1<<94 | wfo 255<<104 | wfi 1<<112  (bits 120..127 unused)
    # = 0x1ff007ff007ff0002000800400102
    _check_both_ways(gemm, bytes.fromhex("0201400008000200ff07f07f00ff0100"), hw)
    alu = isa.AluInsn(uop_end=1, iter_out=1, iter_in=1, dst_factor_out=1,
                      alu_opcode=isa.AluOp.SHR, use_imm=1, imm=-1)
    # ALU: 4 | 1<<21 | 1<<35 | 1<<49 | dfo 1<<64 | alu_opcode 3<<104 | use_imm 1<<107
    #      | imm 0xFFFF<<108
    # = 0xffffb00000000010002000800200004
    _check_both_ways(alu, bytes.fromhex("04002000080002000100000000fbff0f"), hw)
    # uop: dst [0:9], src [10:19], wgt [20:27]
    assert isa.encode_uop(isa.Uop(1, 1, 1), hw) == 0x100401
    assert isa.encode_uop(isa.Uop(1023, 1023, 255), hw) == 0xFFFFFFF
    with pytest.raises(FieldOverflowError) as ei:
        isa.encode_uop(isa.Uop(0, 0, 256), hw)
    assert ei.value.field.split(".")[-1] == "wgt_idx"


# ----------------------------------------------------------------------------- overflow
def _mem(**kw):
    return isa.MemInsn(opcode=isa.Opcode.LOAD, memory_type=isa.MemType.INP, **kw)


OVERFLOWS = [
    ("x_size", lambda: _mem(x_size=65536), 65536, 16),
    ("x_size", lambda: _mem(x_size=-1), -1, 16),
    ("y_pad_0", lambda: _mem(y_pad_0=16), 16, 4),
    ("sram_base", lambda: _mem(sram_base=65536), 65536, 16),
    ("dram_base", lambda: _mem(dram_base=1 << 32), 1 << 32, 32),
    ("uop_end", lambda: isa.GemmInsn(uop_end=16384), 16384, 14),
    ("uop_bgn", lambda: isa.GemmInsn(uop_bgn=8192), 8192, 13),
    ("iter_in", lambda: isa.GemmInsn(iter_in=16384), 16384, 14),
    ("wgt_factor_in", lambda: isa.GemmInsn(wgt_factor_in=1024), 1024, 10),
    ("src_factor_out", lambda: isa.AluInsn(src_factor_out=2048), 2048, 11),
    ("imm", lambda: isa.AluInsn(imm=32768), 32768, 16),
    ("imm", lambda: isa.AluInsn(imm=-32769), -32769, 16),
    ("alu_opcode", lambda: isa.AluInsn(alu_opcode=8), 8, 3),
]


@pytest.mark.parametrize("name,make,value,width", OVERFLOWS,
                         ids=[f"{o[0]}={o[2]}" for o in OVERFLOWS])
def test_field_overflow(hw, name, make, value, width):
    with pytest.raises(FieldOverflowError) as ei:
        isa.encode(make(), hw)
    err = ei.value
    assert name in err.field
    assert err.field.split(".")[-1] == name
    assert err.value == value
    assert err.width == width


@pytest.mark.parametrize("uop,name,value", [
    (isa.Uop(dst_idx=2048), "dst_idx", 2048),
    (isa.Uop(src_idx=2048), "src_idx", 2048),
    (isa.Uop(wgt_idx=1024), "wgt_idx", 1024),
])
def test_uop_field_overflow(hw, uop, name, value):
    with pytest.raises(FieldOverflowError) as ei:
        isa.encode_uop(uop, hw)
    assert name in ei.value.field
    assert ei.value.value == value
    with pytest.raises(FieldOverflowError):
        isa.encode_uops([isa.Uop(), uop], hw)


def test_boundary_values_fit(hw):
    # the largest in-range values encode without error
    isa.encode(_mem(x_size=65535, y_pad_0=15, sram_base=65535, dram_base=(1 << 32) - 1), hw)
    isa.encode(isa.GemmInsn(uop_bgn=8191, uop_end=16383, iter_in=16383, iter_out=16383,
                            wgt_factor_in=1023), hw)
    isa.encode(isa.AluInsn(imm=32767), hw)
    isa.encode(isa.AluInsn(imm=-32768), hw)
    isa.encode_uop(isa.Uop(2047, 2047, 1023), hw)


# ----------------------------------------------------------------------------- round trips
def _spec_log_depths(hw) -> dict[str, int]:
    """§1.2 log depth formulas applied to the raw vta_config.json keys."""
    d = hw.to_dict()
    return {
        "U": d["LOG_UOP_BUFF_SIZE"] - 5 + 3,
        "I": d["LOG_INP_BUFF_SIZE"] - d["LOG_BATCH"] - d["LOG_BLOCK"] - d["LOG_INP_WIDTH"] + 3,
        "W": d["LOG_WGT_BUFF_SIZE"] - 2 * d["LOG_BLOCK"] - d["LOG_WGT_WIDTH"] + 3,
        "A": d["LOG_ACC_BUFF_SIZE"] - d["LOG_BATCH"] - d["LOG_BLOCK"] - d["LOG_ACC_WIDTH"] + 3,
    }


def _widths(hw) -> dict[str, int]:
    w = {"U": hw.log_uop_buff_depth, "I": hw.log_inp_buff_depth,
         "W": hw.log_wgt_buff_depth, "A": hw.log_acc_buff_depth}
    assert w == _spec_log_depths(hw)
    return w


_DEPS = [("opcode", 3), ("pop_prev", 1), ("pop_next", 1), ("push_prev", 1), ("push_next", 1)]


def _spec_fields(kind: str, w: dict[str, int]) -> list[tuple[str, int]]:
    """Field order and widths from the §2.3-§2.8 tables (generalised per §2.4/§2.5)."""
    U, A, I, W = w["U"], w["A"], w["I"], w["W"]
    if kind == "mem":
        return _DEPS + [("memory_type", 3), ("sram_base", 16), ("dram_base", 32),
                        ("y_size", 16), ("x_size", 16), ("x_stride", 16), ("y_pad_0", 4),
                        ("y_pad_1", 4), ("x_pad_0", 4), ("x_pad_1", 4)]
    head = _DEPS + [("reset_reg", 1), ("uop_bgn", U), ("uop_end", U + 1), ("iter_out", 14),
                    ("iter_in", 14)]
    if kind == "gemm":
        return head + [("dst_factor_out", A), ("dst_factor_in", A), ("src_factor_out", I),
                       ("src_factor_in", I), ("wgt_factor_out", W), ("wgt_factor_in", W)]
    if kind == "alu":
        return head + [("dst_factor_out", A), ("dst_factor_in", A), ("src_factor_out", A),
                       ("src_factor_in", A), ("alu_opcode", 3), ("use_imm", 1), ("imm", 16)]
    if kind == "uop":
        return [("dst_idx", A), ("src_idx", max(A, I)), ("wgt_idx", W)]
    raise KeyError(kind)


def _reference_pack(fields: list[tuple[str, int]], values: dict[str, int], total: int) -> int:
    """§2.2 generic encoder algorithm, written independently of the package."""
    pos, word = 0, 0
    for name, width in fields:
        if total == 128 and pos < 64 and pos + width > 64:
            pos = 64
        v = values.get(name, 0)
        assert -(1 << width) < v < (1 << width)
        word |= (v & ((1 << width) - 1)) << pos
        pos += width
    assert pos <= total
    return word


def _build_values(raw: bytes, modes: bytes, fields) -> dict[str, int]:
    """Cut random bytes into consecutive field values.  Each field also gets a mode byte that
    forces an edge value now and then: 0, all ones (max / -1) or only the top bit
    (2^(w-1) / -32768); otherwise the random slice is used.  imm is read as signed 16-bit."""
    bits = int.from_bytes(raw, "little")
    out = {}
    for (name, width), mode in zip(fields, modes):
        mask = (1 << width) - 1
        v = {0: 0, 1: mask, 2: 1 << (width - 1)}.get(mode % 8, (bits & mask))
        bits >>= width
        if name == "imm" and v >= 1 << 15:
            v -= 1 << 16
        out[name] = v
    return out


def _field_strategy(fields, skip=("opcode",)):
    """Random in-range values for every field, whose width comes from the spec formulas.
    Drawn as a block of random bytes (one draw per instruction keeps hypothesis fast and,
    unlike one huge integer, fills the high fields as well as the low ones)."""
    fields = [(n, w) for n, w in fields if n not in skip]
    nbytes = (sum(w for _, w in fields) + 7) // 8
    return st.tuples(st.binary(min_size=nbytes, max_size=nbytes),
                     st.binary(min_size=len(fields), max_size=len(fields))).map(
        lambda t: _build_values(t[0], t[1], fields))


_STRATEGIES: dict = {}


def insn_strategy(hw, kind):
    """Strategy of (instruction, reference 128-bit value) pairs for ``hw``."""
    key = (hw.name, kind)
    if key in _STRATEGIES:
        return _STRATEGIES[key]
    w = _widths(hw)
    if kind == "mem":
        fields = _spec_fields("mem", w)
        strat = st.tuples(_field_strategy(fields), st.sampled_from([0, 1])).map(
            lambda t: (isa.MemInsn(opcode=t[1], **t[0]),
                       _reference_pack(fields, {**t[0], "opcode": t[1]}, 128)))
    elif kind in ("gemm", "alu"):
        fields = _spec_fields(kind, w)
        cls, op = (isa.GemmInsn, 2) if kind == "gemm" else (isa.AluInsn, 4)
        strat = _field_strategy(fields).map(
            lambda v: (cls(**v), _reference_pack(fields, {**v, "opcode": op}, 128)))
    elif kind == "finish":
        fields = _spec_fields("gemm", w)
        strat = _field_strategy(_DEPS).map(
            lambda v: (isa.FinishInsn(**v), _reference_pack(fields, {**v, "opcode": 3}, 128)))
    elif kind == "any":
        strat = st.one_of([insn_strategy(hw, k) for k in ("mem", "gemm", "alu", "finish")])
    elif kind == "uop":
        fields = _spec_fields("uop", w)
        strat = _field_strategy(fields, skip=()).map(
            lambda v: (isa.Uop(**v), _reference_pack(fields, v, 32)))
    else:
        raise KeyError(kind)
    _STRATEGIES[key] = strat
    return strat


RT = settings(max_examples=200, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])


def _check_insn_roundtrip(insn, ref, hw):
    raw = isa.encode(insn, hw)
    assert isinstance(raw, bytes) and len(raw) == 16
    assert isa.encode_int(insn, hw) == ref, f"{insn}: bits differ from the spec packing"
    assert raw == ref.to_bytes(16, "little")
    back = isa.decode(raw, hw)
    assert type(back) is type(insn)
    assert back == insn


# One example draws one instruction of every kind (and a micro-op), so each kind gets
# max_examples random cases per configuration while the file stays fast.
@pytest.mark.parametrize("name", SHIPPED)
@RT
@given(data=st.data())
def test_roundtrip_every_kind(name, data):
    hw = HW[name]
    mem, gemm, alu, fin, uop = data.draw(st.tuples(
        *(insn_strategy(hw, k) for k in ("mem", "gemm", "alu", "finish", "uop"))))
    _check_insn_roundtrip(*mem, hw)
    _check_insn_roundtrip(*gemm, hw)
    _check_insn_roundtrip(*alu, hw)
    _check_insn_roundtrip(*fin, hw)
    u, ref = uop
    word = isa.encode_uop(u, hw)
    assert word == ref
    assert 0 <= word < 1 << 32
    raw = isa.encode_uops([u], hw)
    assert raw == word.to_bytes(4, "little")
    assert isa.decode_uops(raw, hw) == [u]


@pytest.mark.parametrize("name", SHIPPED)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip_program(name, data):
    hw = HW[name]
    pairs = data.draw(st.lists(insn_strategy(hw, "any"), max_size=12), label="program")
    insns = [p[0] for p in pairs]
    blob = isa.encode_program(insns, hw)
    assert len(blob) == 16 * len(insns)
    assert blob == b"".join(ref.to_bytes(16, "little") for _, ref in pairs)
    # concatenation of single encodes == encode_program
    assert blob == b"".join(isa.encode(i, hw) for i in insns)
    assert isa.decode_program(blob, hw) == insns


@pytest.mark.parametrize("name", SHIPPED)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip_uop_stream(name, data):
    hw = HW[name]
    pairs = data.draw(st.lists(insn_strategy(hw, "uop"), max_size=20), label="uops")
    uops = [p[0] for p in pairs]
    raw = isa.encode_uops(uops, hw)
    assert len(raw) == 4 * len(uops)
    assert raw == b"".join(ref.to_bytes(4, "little") for _, ref in pairs)
    assert isa.decode_uops(raw, hw) == uops
