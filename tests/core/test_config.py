"""Hardware configuration tests against vta-spec.md §1 (and the §2.2/§2.4/§2.8 fit rules).

All expected numbers are literals taken from (or worked out by hand with) the §1.2
formulas and the §1.5 table; none is computed by the package.
"""
from __future__ import annotations

import json

import pytest

from vtatune.errors import ConfigurationError, UnsupportedError
from vtatune.hardware.config import DEFAULT_NAME, HwConfig, shipped_configs

SHIPPED = [
    "de10nano_1x16_i8w8a32_15_15_18_17",
    "pynq_1x16_i8w8a32_15_15_18_17",
    "pynq_4x8_i8w8a32_15_16_16_18",
    "ultra96_1x16_i8w8a32_15_15_18_17",
    "zcu104_1x16_i8w8a32_15_15_18_17",
]

# §1.1 default vta_config.json values (pynq_sample.json: TARGET "pynq").
DEFAULT_JSON = {
    "TARGET": "pynq", "HW_VER": "0.0.2", "LOG_INP_WIDTH": 3, "LOG_WGT_WIDTH": 3,
    "LOG_ACC_WIDTH": 5, "LOG_BATCH": 0, "LOG_BLOCK": 4, "LOG_UOP_BUFF_SIZE": 15,
    "LOG_INP_BUFF_SIZE": 15, "LOG_WGT_BUFF_SIZE": 18, "LOG_ACC_BUFF_SIZE": 17,
}


def _with(**changes):
    d = dict(DEFAULT_JSON)
    d.update(changes)
    return d


# ----------------------------------------------------------------------------- shipped / names
def test_shipped_names():
    assert sorted(shipped_configs()) == SHIPPED
    assert DEFAULT_NAME == "pynq_1x16_i8w8a32_15_15_18_17"


@pytest.mark.parametrize("name", SHIPPED)
def test_name_matches_shipped_name(name):
    hw = HwConfig.load(name)
    assert hw.name == name                       # §1.4 MODEL = {TARGET}_{BITSTREAM}
    target, bitstream = name.split("_", 1)
    assert hw.bitstream == bitstream
    assert hw.to_dict()["TARGET"] == target
    assert hw.to_dict()["HW_VER"] == "0.0.2"


def test_default_load_is_pynq_1x16():
    hw = HwConfig.load()
    assert hw.name == "pynq_1x16_i8w8a32_15_15_18_17"
    assert hw.bitstream == "1x16_i8w8a32_15_15_18_17"   # §1.4 default BITSTREAM
    vta_fields = {k: v for k, v in hw.to_dict().items() if k not in ("timing", "acc_load_pad")}
    assert vta_fields == DEFAULT_JSON          # VTA's own fields unchanged
    assert hw.to_dict()["acc_load_pad"] is False   # the published bitstream's revision
    assert hw.to_dict()["timing"]["mem_latency"] == hw.timing.mem_latency
    assert HwConfig.load(None) == hw
    assert HwConfig.load(DEFAULT_NAME) == hw


def test_bitstream_strings():
    # §1.4: "{B}x{K}_i{I}w{W}a{A}_{lu}_{li}_{lw}_{la}"
    assert HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18").bitstream == "4x8_i8w8a32_15_16_16_18"
    hw = HwConfig.from_dict(_with(TARGET="sim", LOG_BLOCK=5))
    assert hw.bitstream == "1x32_i8w8a32_15_15_18_17"
    assert hw.name == "sim_1x32_i8w8a32_15_15_18_17"
    hw = HwConfig.from_dict(_with(TARGET="tsim", LOG_BATCH=1, LOG_UOP_BUFF_SIZE=14,
                                  LOG_INP_BUFF_SIZE=16, LOG_ACC_BUFF_SIZE=18))
    assert hw.name == "tsim_2x16_i8w8a32_14_16_18_18"


# ----------------------------------------------------------------------------- derived numbers
def test_default_derived_constants():
    hw = HwConfig.load()
    # §1.2 default column
    assert (hw.batch, hw.block_in, hw.block_out) == (1, 16, 16)
    assert hw.inp_elem_bytes == 16          # 128 bits
    assert hw.wgt_elem_bytes == 256         # 2048 bits
    assert hw.acc_elem_bytes == 64          # 512 bits
    assert hw.out_elem_bytes == 16          # 128 bits
    assert hw.uop_buff_depth == 8192 and hw.log_uop_buff_depth == 13
    assert hw.inp_buff_depth == 2048 and hw.log_inp_buff_depth == 11
    assert hw.wgt_buff_depth == 1024 and hw.log_wgt_buff_depth == 10
    assert hw.acc_buff_depth == 2048 and hw.log_acc_buff_depth == 11
    assert hw.out_buff_depth == 2048 and hw.log_out_buff_depth == 11
    assert hw.out_buff_size == 32 * 1024
    assert (hw.uop_dst_bits, hw.uop_src_bits, hw.uop_wgt_bits) == (11, 11, 10)
    assert hw.bus_width == 64
    d = hw.derived
    expect = {
        "INP_WIDTH": 8, "WGT_WIDTH": 8, "ACC_WIDTH": 32, "OUT_WIDTH": 8,
        "BATCH": 1, "BLOCK_IN": 16, "BLOCK_OUT": 16, "INS_WIDTH": 128, "UOP_WIDTH": 32,
        "INP_ELEM_BITS": 128, "WGT_ELEM_BITS": 2048, "ACC_ELEM_BITS": 512, "OUT_ELEM_BITS": 128,
        "INP_ELEM_BYTES": 16, "WGT_ELEM_BYTES": 256, "ACC_ELEM_BYTES": 64, "OUT_ELEM_BYTES": 16,
        "UOP_BUFF_SIZE": 32768, "INP_BUFF_SIZE": 32768, "WGT_BUFF_SIZE": 262144,
        "ACC_BUFF_SIZE": 131072, "OUT_BUFF_SIZE": 32768,
        "UOP_BUFF_DEPTH": 8192, "INP_BUFF_DEPTH": 2048, "WGT_BUFF_DEPTH": 1024,
        "ACC_BUFF_DEPTH": 2048, "OUT_BUFF_DEPTH": 2048,
        "LOG_UOP_BUFF_DEPTH": 13, "LOG_INP_BUFF_DEPTH": 11, "LOG_WGT_BUFF_DEPTH": 10,
        "LOG_ACC_BUFF_DEPTH": 11,
        "UOP_DST_BITS": 11, "UOP_SRC_BITS": 11, "UOP_WGT_BITS": 10,
        "BUS_WIDTH": 64,
        # *_MAT_AXI_RATIO = element bits / BUS_WIDTH: INP 2, WGT 32, ACC 8, OUT 2 (PYNQ)
        "INP_MAT_AXI_RATIO": 2, "WGT_MAT_AXI_RATIO": 32, "ACC_MAT_AXI_RATIO": 8,
        "OUT_MAT_AXI_RATIO": 2,
        # HLS SRAM banking (default PYNQ): INP 128 b/1 bank/2048/2, WGT 1024 b/2 banks/1024/16,
        # OUT 128 b/1 bank/2048/2
        "INP_MEM_WIDTH": 128, "INP_MEM_BANKS": 1, "INP_MEM_DEPTH": 2048, "INP_MEM_AXI_RATIO": 2,
        "WGT_MEM_WIDTH": 1024, "WGT_MEM_BANKS": 2, "WGT_MEM_DEPTH": 1024,
        "WGT_MEM_AXI_RATIO": 16,
        "OUT_MEM_WIDTH": 128, "OUT_MEM_BANKS": 1, "OUT_MEM_DEPTH": 2048, "OUT_MEM_AXI_RATIO": 2,
        "MODEL": "pynq_1x16_i8w8a32_15_15_18_17", "BITSTREAM": "1x16_i8w8a32_15_15_18_17",
    }
    assert {k: d.get(k) for k in expect} == expect


def test_4x8_derived_constants():
    hw = HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18")
    # §1.5 table, 4x8_…_15_16_16_18 column
    assert (hw.batch, hw.block_in, hw.block_out) == (4, 8, 8)
    assert (hw.inp_elem_bytes, hw.inp_buff_depth) == (32, 2048)
    assert (hw.wgt_elem_bytes, hw.wgt_buff_depth) == (64, 1024)
    assert (hw.acc_elem_bytes, hw.acc_buff_depth) == (128, 2048)
    assert hw.out_elem_bytes == 32
    assert hw.uop_buff_depth == 8192
    assert (hw.uop_dst_bits, hw.uop_src_bits, hw.uop_wgt_bits) == (11, 11, 10)
    # §1.2 formulas by hand: logs 13/11/10/11; LOG_OUT_BUFF_SIZE = 18 + 3 - 5 = 16 -> 64 KiB
    assert (hw.log_uop_buff_depth, hw.log_inp_buff_depth, hw.log_wgt_buff_depth,
            hw.log_acc_buff_depth) == (13, 11, 10, 11)
    assert hw.out_buff_size == 64 * 1024 and hw.out_buff_depth == 2048
    d = hw.derived
    # MAT_AXI_RATIO = elem bits / 64: INP 256/64, WGT 512/64, ACC 1024/64, OUT 256/64
    assert (d["INP_MAT_AXI_RATIO"], d["WGT_MAT_AXI_RATIO"], d["ACC_MAT_AXI_RATIO"],
            d["OUT_MAT_AXI_RATIO"]) == (4, 8, 16, 4)
    assert (d["INP_ELEM_BYTES"], d["WGT_ELEM_BYTES"], d["ACC_ELEM_BYTES"],
            d["OUT_ELEM_BYTES"]) == (32, 64, 128, 32)
    assert (d["UOP_BUFF_DEPTH"], d["INP_BUFF_DEPTH"], d["WGT_BUFF_DEPTH"],
            d["ACC_BUFF_DEPTH"]) == (8192, 2048, 1024, 2048)


def test_1x32_hypothetical_derived_constants():
    hw = HwConfig.from_dict(_with(TARGET="sim", LOG_BLOCK=5))
    # §1.5 table, hypothetical 1x32_…_15_15_18_17 column
    assert (hw.inp_elem_bytes, hw.inp_buff_depth) == (32, 1024)
    assert (hw.wgt_elem_bytes, hw.wgt_buff_depth) == (1024, 256)
    assert (hw.acc_elem_bytes, hw.acc_buff_depth) == (128, 1024)
    assert hw.out_elem_bytes == 32
    assert hw.uop_buff_depth == 8192
    assert (hw.uop_dst_bits, hw.uop_src_bits, hw.uop_wgt_bits) == (10, 10, 8)


def test_uop_src_bits_is_max_of_acc_and_inp():
    # §2.8: S = max(A, I).  LOG_ACC_BUFF_SIZE 16 -> A = 16-0-4-5+3 = 10,
    # LOG_INP_BUFF_SIZE 16 -> I = 16-0-4-3+3 = 12; uop = 10 + 12 + 10 = 32 bits (fits)
    hw = HwConfig.from_dict(_with(LOG_ACC_BUFF_SIZE=16, LOG_INP_BUFF_SIZE=16))
    assert (hw.uop_dst_bits, hw.uop_src_bits, hw.uop_wgt_bits) == (10, 12, 10)


@pytest.mark.parametrize("name,bus", [
    ("pynq_1x16_i8w8a32_15_15_18_17", 64), ("pynq_4x8_i8w8a32_15_16_16_18", 64),
    ("de10nano_1x16_i8w8a32_15_15_18_17", 64), ("ultra96_1x16_i8w8a32_15_15_18_17", 128),
    ("zcu104_1x16_i8w8a32_15_15_18_17", 128),
])
def test_bus_width(name, bus):
    # §1.2 / §1.3: 64 bits on PYNQ/DE10, 128 on Ultra96/ZCU104
    hw = HwConfig.load(name)
    assert hw.bus_width == bus
    assert hw.derived["BUS_WIDTH"] == bus


# ----------------------------------------------------------------------------- rejections
def test_hw_ver_001_unsupported():
    with pytest.raises(UnsupportedError):
        HwConfig.from_dict(_with(HW_VER="0.0.1"))


def test_hw_ver_unknown():
    with pytest.raises(ConfigurationError) as ei:
        HwConfig.from_dict(_with(HW_VER="9.9"))
    assert ei.value.field == "HW_VER"


@pytest.mark.parametrize("key", list(DEFAULT_JSON))
def test_missing_key(key):
    d = dict(DEFAULT_JSON)
    del d[key]
    with pytest.raises(ConfigurationError) as ei:
        HwConfig.from_dict(d)
    assert ei.value.field == key


@pytest.mark.parametrize("key", ["HW_FREQ", "ACC_DEP_DISTANCE", "log_block"])
def test_unknown_key(key):
    # §1.1: HW_FREQ / ACC_DEP_DISTANCE are not vta_config.json keys; keys are upper case
    with pytest.raises(ConfigurationError) as ei:
        HwConfig.from_dict(_with(**{key: 1}))
    assert ei.value.field == key


@pytest.mark.parametrize("changes,field", [
    ({"LOG_BLOCK": 7}, "LOG_BLOCK"),
    ({"LOG_INP_WIDTH": 4}, "LOG_INP_WIDTH"),
    ({"LOG_BATCH": "0"}, "LOG_BATCH"),
    ({"LOG_BLOCK": 4.0}, "LOG_BLOCK"),
    ({"LOG_BATCH": True}, "LOG_BATCH"),
    ({"LOG_UOP_BUFF_SIZE": None}, "LOG_UOP_BUFF_SIZE"),
])
def test_bad_values_name_the_field(changes, field):
    with pytest.raises(ConfigurationError) as ei:
        HwConfig.from_dict(_with(**changes))
    assert ei.value.field == field


def test_uop_fields_exceed_32_bits_acc():
    # LOG_ACC_BUFF_SIZE 18 -> A = 18-0-4-5+3 = 12; S = max(12, 11) = 12; W = 10:
    # 12 + 12 + 10 = 34 > 32 (§2.8).  (The upper GEMM word would also need 2*12+2*11+2*10
    # = 66 > 64 bits, so either error is a legitimate rejection; the package reports uop.)
    with pytest.raises(ConfigurationError) as ei:
        HwConfig.from_dict(_with(LOG_ACC_BUFF_SIZE=18))
    assert ei.value.field == "uop.wgt_idx"


def test_uop_fields_exceed_32_bits_only_violation():
    # A configuration where the micro-op is the *only* thing that does not fit:
    # LOG_ACC_BUFF_SIZE 18 -> A = 12, LOG_INP_BUFF_SIZE 14 -> I = 14-0-4-3+3 = 10,
    # W = 10, LOG_UOP_BUFF_SIZE 9 -> U = 9-5+3 = 7.
    # uop: 12 + max(12, 10) + 10 = 34 > 32.
    # GEMM (§2.2): head 3+4+1+7+8+14+14 = 51 bits, dst_factor_out 51..62 stays in the low
    #   word, upper word 12 + 10 + 10 + 10 + 10 = 52 <= 64 -> fits.
    # ALU: same head, dst_factor_out 51..62, upper 12 + 12 + 12 + 3 + 1 + 16 = 56 -> fits.
    with pytest.raises(ConfigurationError) as ei:
        HwConfig.from_dict(_with(LOG_ACC_BUFF_SIZE=18, LOG_INP_BUFF_SIZE=14,
                                 LOG_UOP_BUFF_SIZE=9))
    assert ei.value.field == "uop.wgt_idx"


def test_uop_fields_exceed_32_bits_wgt():
    # LOG_WGT_BUFF_SIZE 19 -> W = 19-4-4-3+3 = 11: uop 11 + 11 + 11 = 33 > 32
    with pytest.raises(ConfigurationError) as ei:
        HwConfig.from_dict(_with(LOG_WGT_BUFF_SIZE=19))
    assert ei.value.field == "uop.wgt_idx"


@pytest.mark.parametrize("lu", [16, 17, 18])
def test_gemm_cannot_fit_128_bits(lu):
    # §2.4 note.  U = lu - 5 + 3 (14, 15, 16).  Low word: 3+4+1 = 8, uop_bgn U, uop_end U+1,
    # iter_out 14 -> 8 + 2U + 15 = 51/53/55; iter_in (14) would end at 65/67/69 > 64, so it
    # moves to bit 64 and ends at 78.  The rest of GEMM needs 11+11+11+11+10+10 = 64 bits,
    # so dst_factor_out 78, dst_factor_in 89, src_factor_out 100, src_factor_in 111 (ends
    # 122), wgt_factor_out would need 122..132 > 128.
    with pytest.raises(ConfigurationError) as ei:
        HwConfig.from_dict(_with(LOG_UOP_BUFF_SIZE=lu))
    assert ei.value.field.startswith("GEMM.")
    assert ei.value.field == "GEMM.wgt_factor_out"


def test_largest_fitting_uop_buffer_accepted():
    # U = 13 (LOG_UOP_BUFF_SIZE 15) is the largest that fits: iter_in ends exactly at 63.
    hw = HwConfig.from_dict(_with(LOG_UOP_BUFF_SIZE=15))
    assert hw.uop_buff_depth == 8192
    # a smaller uop buffer is fine too: U = 14-5+3 = 12
    assert HwConfig.from_dict(_with(LOG_UOP_BUFF_SIZE=14)).uop_buff_depth == 4096


def test_unknown_name_rejected():
    with pytest.raises(ConfigurationError):
        HwConfig.load("pynq_1x32_i8w8a32_15_15_18_17")


# ----------------------------------------------------------------------------- files, round trip
def test_load_from_json_path(tmp_path):
    data = _with(TARGET="ultra96")
    path = tmp_path / "my_config.json"
    path.write_text(json.dumps(data, indent=2))
    hw = HwConfig.load(str(path))
    assert hw.name == "ultra96_1x16_i8w8a32_15_15_18_17"
    assert hw.to_dict() == {**data, "acc_load_pad": False}   # a VTA file: the default revision
    shipped = HwConfig.load("ultra96_1x16_i8w8a32_15_15_18_17")
    # same VTA configuration; the shipped file adds its timing section
    assert (hw.name, hw.derived) == (shipped.name, shipped.derived)
    # os.PathLike works as well
    assert HwConfig.load(path) == hw


def test_load_bad_json_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{ not json")
    with pytest.raises(ConfigurationError):
        HwConfig.load(str(path))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_with(LOG_BLOCK=7)))
    with pytest.raises(ConfigurationError) as ei:
        HwConfig.load(str(bad))
    assert ei.value.field == "LOG_BLOCK"


@pytest.mark.parametrize("name", SHIPPED)
def test_to_dict_from_dict_round_trip(name, tmp_path):
    hw = HwConfig.load(name)
    d = hw.to_dict()
    assert set(d) - {"timing"} == set(DEFAULT_JSON) | {"acc_load_pad"}
    again = HwConfig.from_dict(d)
    assert again == hw
    assert again.name == hw.name
    assert again.derived == hw.derived
    # through a JSON file as well
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(d))
    assert HwConfig.load(str(path)) == hw


# ----------------------------------------------------------------------------- ACC-load revision
# Which HLS revision each shipped file describes (docs/hardware.md): the published PYNQ and
# Ultra96 bitstreams were built before tvm-vta 6096ca0 (ACC pads ignored); a ZCU104
# bitstream can only be built from sources that have it; the DE10-Nano is the Chisel design,
# whose TensorLoad pads ACC like INP.
SHIPPED_ACC_PAD = {
    "de10nano_1x16_i8w8a32_15_15_18_17": True,
    "pynq_1x16_i8w8a32_15_15_18_17": False,
    "pynq_4x8_i8w8a32_15_16_16_18": False,
    "ultra96_1x16_i8w8a32_15_15_18_17": False,
    "zcu104_1x16_i8w8a32_15_15_18_17": True,
}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_acc_load_pad(name):
    hw = HwConfig.load(name)
    assert hw.acc_load_pad is SHIPPED_ACC_PAD[name]
    # the shipped file states it explicitly
    import vtatune.hardware.config as cfg
    assert cfg._read_shipped(name)["acc_load_pad"] is SHIPPED_ACC_PAD[name]


def test_acc_load_pad_defaults_to_the_published_bitstreams():
    assert "acc_load_pad" not in DEFAULT_JSON      # an upstream vta_config.json
    assert HwConfig.from_dict(DEFAULT_JSON).acc_load_pad is False


@pytest.mark.parametrize("value", [True, False])
def test_acc_load_pad_round_trips_through_json(value, tmp_path):
    hw = HwConfig.from_dict({**DEFAULT_JSON, "acc_load_pad": value})
    assert hw.acc_load_pad is value
    d = hw.to_dict()
    assert d["acc_load_pad"] is value
    text = json.dumps(d)
    assert f'"acc_load_pad": {"true" if value else "false"}' in text
    assert HwConfig.from_dict(json.loads(text)) == hw
    path = tmp_path / "rev.json"
    path.write_text(text)
    again = HwConfig.load(str(path))
    assert again == hw and again.acc_load_pad is value


def test_acc_load_pad_is_part_of_the_identity():
    base = HwConfig.from_dict(DEFAULT_JSON)
    padded = HwConfig.from_dict({**DEFAULT_JSON, "acc_load_pad": True})
    # same VTA name (the revision is not in the bitstream string) ...
    assert padded.name == base.name and padded.derived == base.derived
    # ... but a different configuration, as a different timing section would make it
    assert padded != base
    assert len({base, padded}) == 2
    assert hash(HwConfig.from_dict({**DEFAULT_JSON, "acc_load_pad": True})) == hash(padded)
    assert HwConfig.from_dict({**DEFAULT_JSON, "acc_load_pad": False}) == base


@pytest.mark.parametrize("value", [1, 0, "true", "false", None, [], {}, 1.0])
def test_acc_load_pad_must_be_a_json_boolean(value):
    with pytest.raises(ConfigurationError) as ei:
        HwConfig.from_dict({**DEFAULT_JSON, "acc_load_pad": value})
    assert ei.value.field == "acc_load_pad"
