"""Config spaces: AutoTVM index arithmetic, VTA template knobs, sampling, neighbours, log parsing."""
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtatune.hardware.config import HwConfig
from vtatune.space import (ConfigEntity, ConfigSpace, OtherOptionSpace, SpaceError, SplitSpace,
                           get_factors, space_for)
from vtatune.workloads import get_workload

HW = HwConfig.load()
HW4x8 = HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18")


def space(name, hw=HW):
    return space_for(get_workload(name), hw)


# ---------------------------------------------------------------------- knobs
def test_get_factors_ascending():
    assert get_factors(1) == [1]
    assert get_factors(56) == [1, 2, 4, 7, 8, 14, 28, 56]
    assert get_factors(49) == [1, 7, 49]
    assert get_factors(97) == [1, 97]


def test_split_space_entities():
    sp = SplitSpace("tile_h", 56)
    assert len(sp) == 8 and list(sp) == [1, 2, 4, 7, 8, 14, 28, 56]
    assert sp.entity(6) == ["tile_h", "sp", [-1, 28]]
    assert sp.index_of_entity([-1, 28]) == 6
    assert sp.index_of_entity([2, 28]) == 6          # resolved TopHub form
    with pytest.raises(SpaceError) as e:
        sp.index_of_entity([3, 28])
    assert e.value.field == "tile_h"
    with pytest.raises(SpaceError):
        sp.index_of_entity([-1, 5])
    with pytest.raises(SpaceError):
        sp.index_of_entity([-1, 2, 28])


def test_other_option_space():
    ot = OtherOptionSpace("oc_nthread", [1, 2])
    assert ot.entity(1) == ["oc_nthread", "ot", 2]
    with pytest.raises(SpaceError):
        ot.index_of(3)


# ---------------------------------------------------------------------- index facts
def test_resnet18_c2_index_1584():
    s = space("resnet18.C2")
    assert s.size == 2304
    assert s.get(1584).knobs == {"tile_b": 1, "tile_h": 1, "tile_w": 28, "tile_ci": 1,
                                 "tile_co": 4, "oc_nthread": 1, "h_nthread": 2}


def test_resnet18_c10_index_203():
    s = space("resnet18.C10")
    assert s.size == 480
    c = s.get(203)
    assert c.knobs == {"tile_b": 1, "tile_h": 7, "tile_w": 7, "tile_ci": 1, "tile_co": 16,
                       "oc_nthread": 2, "h_nthread": 1}
    assert c.to_json_dict() == {"index": 203, "code_hash": None, "entity": [
        ["tile_b", "sp", [-1, 1]], ["tile_h", "sp", [-1, 7]], ["tile_w", "sp", [-1, 7]],
        ["tile_ci", "sp", [-1, 1]], ["tile_co", "sp", [-1, 16]], ["oc_nthread", "ot", 2],
        ["h_nthread", "ot", 1]]}


def test_resnet18_c11_index_241():
    s = space("resnet18.C11")
    assert s.get(241).knobs == {"tile_b": 1, "tile_h": 7, "tile_w": 1, "tile_ci": 1,
                                "tile_co": 16, "oc_nthread": 2, "h_nthread": 1}


def test_resnet18_space_sizes():
    sizes = {f"C{i}": space(f"resnet18.C{i}").size for i in range(2, 12)}
    assert sizes == {"C2": 2304, "C3": 1728, "C4": 1728, "C5": 2304, "C6": 1280, "C7": 1280,
                     "C8": 1600, "C9": 480, "C10": 480, "C11": 576}
    assert sum(sizes.values()) == 13760


def test_knob_order_and_kinds():
    s = space("resnet18.C2")
    assert s.names == ["tile_b", "tile_h", "tile_w", "tile_ci", "tile_co", "oc_nthread", "h_nthread"]
    assert [k.kind for k in s.knobs.values()] == ["sp"] * 5 + ["ot"] * 2
    d = space("dense.0")
    assert d.names == ["tile_b", "tile_ci", "tile_co", "oc_nthread"]
    # dense.0: batch 128 -> 128 batch blocks (8 divisors), 128/16 = 8 (4), 8 (4), 2 threads
    assert d.dims == [8, 4, 4, 2] and d.size == 256
    g = space("mobilenet.D1")  # 32 channels in 2 groups: 16 per group -> 1 input block
    assert g["tile_ci"].length == 1 and g["tile_co"].length == 2
    assert g.names == s.names
    t = space("dcgan.CT1")     # 4x4 -> (4-1)*2 - 2 + 4 = 8
    assert t["tile_h"].length == 8 and t["tile_ci"].length == 64 and t["tile_co"].length == 32


def test_4x8_axes():
    s = space("resnet18.C2", HW4x8)
    assert s["tile_b"].length == 1                       # batch resolved to 4: 4/4 blocks
    assert s["tile_ci"].length == 8 and s["tile_co"].length == 8
    assert space_for(get_workload("conv2d:B,8,8,16,16,3,1,1"), HW4x8)["tile_ci"].length == 2


def test_index_errors():
    s = space("resnet18.C2")
    for bad in (-1, 2304, 1.5, True):
        with pytest.raises(SpaceError) as e:
            s.get(bad)
        assert e.value.field == "index"
    with pytest.raises(SpaceError) as e:
        s.index_of({"tile_h": 1})
    assert e.value.field == "tile_b"
    with pytest.raises(SpaceError) as e:
        s.index_of({**s.get(0).knobs, "tile_h": 3})
    assert e.value.field == "tile_h"
    with pytest.raises(SpaceError) as e:
        s.index_of({**s.get(0).knobs, "bogus": 1})
    assert e.value.field == "bogus"


# ---------------------------------------------------------------------- round trips
WORKLOADS = ["resnet18.C2", "resnet18.C9", "mobilenet.D2", "dcgan.CT2", "dense.0", "deepbench.25"]
SPACES = {n: space(n) for n in WORKLOADS}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(WORKLOADS), st.data())
def test_index_knobs_round_trip(name, data):
    s = SPACES[name]
    i = data.draw(st.integers(0, s.size - 1))
    c = s.get(i)
    assert c.index == i
    assert s.index_of(c.knobs) == i
    assert s.knob2point(s.point2knob(i)) == i
    assert s.from_json_dict(json.loads(json.dumps(c.to_json_dict()))).index == i


def test_digit_order_first_knob_least_significant():
    s = ConfigSpace()
    s.define_knob("a", [10, 20])
    s.define_split("b", 6)          # 1 2 3 6
    s.define_knob("c", ["x", "y", "z"])
    assert s.size == 24
    # digit_k = (index // prod(len(knob_j) for j < k)) % len(knob_k)
    assert s.get(1).knobs == {"a": 20, "b": 1, "c": "x"}
    assert s.get(2).knobs == {"a": 10, "b": 2, "c": "x"}
    assert s.get(8).knobs == {"a": 10, "b": 1, "c": "y"}
    assert [c.index for c in s] == list(range(24))


# ---------------------------------------------------------------------- log configs
def test_parse_log_config_both_split_forms():
    s = space("resnet18.C10")
    resolved = {"index": 203, "code_hash": None, "entity": [
        ["tile_b", "sp", [1, 1]], ["tile_h", "sp", [1, 7]], ["tile_w", "sp", [1, 7]],
        ["tile_ci", "sp", [16, 1]], ["tile_co", "sp", [2, 16]], ["oc_nthread", "ot", 2],
        ["h_nthread", "ot", 1]]}
    c = s.from_json_dict(resolved)
    assert c.index == 203 and c.knobs["tile_co"] == 16
    assert c.entity[4] == ["tile_co", "sp", [-1, 16]]   # normalised to the v0.14 form
    assert ConfigEntity.from_json_dict(resolved, s) == c


def test_parse_log_config_index_mismatch():
    s = space("resnet18.C10")
    cfg = s.get(203).to_json_dict()
    cfg["index"] = 87
    with pytest.raises(SpaceError) as e:
        s.from_json_dict(cfg)
    assert e.value.field == "index" and "87" in str(e.value) and "203" in str(e.value)
    assert s.from_json_dict(cfg, check_index=False).index == 203
    cfg["index"] = None
    assert s.from_json_dict(cfg).index == 203


def test_parse_log_config_errors():
    s = space("resnet18.C10")
    good = s.get(5).to_json_dict()
    bad_kind = json.loads(json.dumps(good))
    bad_kind["entity"][5][1] = "sp"
    bad_missing = json.loads(json.dumps(good))
    del bad_missing["entity"][6]
    bad_name = json.loads(json.dumps(good))
    bad_name["entity"][0][0] = "tile_x"
    bad_value = json.loads(json.dumps(good))
    bad_value["entity"][1][2] = [-1, 3]
    for cfg, field in ((bad_kind, "oc_nthread"), (bad_missing, "h_nthread"),
                       (bad_name, "tile_x"), (bad_value, "tile_h"), ({"index": 1}, "entity")):
        with pytest.raises(SpaceError) as e:
            s.from_json_dict(cfg)
        assert e.value.field == field


# ---------------------------------------------------------------------- sampling
def test_sample_without_replacement_and_reproducible():
    s = space("resnet18.C2")
    a = s.sample(500, 7)
    assert len(a) == 500 == len(set(a)) and all(0 <= i < s.size for i in a)
    assert a == s.sample(500, 7) and a != s.sample(500, 8)
    assert s.sample(10, random.Random(3)) == s.sample(10, 3)
    np = pytest.importorskip("numpy")
    g = s.sample(20, np.random.default_rng(5))
    assert g == s.sample(20, np.random.default_rng(5)) and len(set(g)) == 20
    # most of the space: enumerated and shuffled, still distinct
    b = s.sample(2000, 1)
    assert len(set(b)) == 2000
    excl = set(range(100))
    assert not set(s.sample(300, 2, exclude=excl)) & excl


def test_sample_more_than_size_returns_whole_space():
    s = space("mobilenet.D8")
    everything = s.sample(s.size + 10, 0)
    assert sorted(everything) == list(range(s.size))
    assert s.sample(0, 0) == []
    with pytest.raises(SpaceError):
        s.sample(-1)


def test_sample_huge_space():
    s = ConfigSpace()
    for i in range(12):
        s.define_split(f"k{i}", 720720)     # 240 divisors each: 240**12 ~ 3.6e28 points
    assert s.size > 2**64
    a = s.sample(50, 1)
    assert len(set(a)) == 50 and all(0 <= i < s.size for i in a)
    assert s.get(a[0]).index == a[0]


# ---------------------------------------------------------------------- neighbours
@pytest.mark.parametrize("name", WORKLOADS)
def test_neighbours_differ_in_exactly_one_knob(name):
    s = SPACES[name]
    rng = random.Random(0)
    for i in [0, s.size - 1] + [rng.randrange(s.size) for _ in range(5)]:
        nb = s.neighbours(i)
        assert len(nb) == sum(d - 1 for d in s.dims) == len(set(nb))
        base = s.point2knob(i)
        for j in nb:
            assert sum(a != b for a, b in zip(base, s.point2knob(j))) == 1
