"""Itervar / knob features: documented length, finite values, agreement with the compiler."""
import numpy as np
import pytest

from vtatune.compiler.sweep import verdict
from vtatune.errors import ConfigurationError
from vtatune.hardware.config import HwConfig
from vtatune.space import space_for
from vtatune.autotune.features import (
    CONV_FEATURES,
    DENSE_FEATURES,
    itervar_feature_fn,
    itervar_feature_names,
    itervar_features,
    itervar_features_batch,
)
from vtatune.space.indexing import digits_of
from vtatune.tuning.features import knob_feature_fn
from vtatune.workloads import get_workload

HW = HwConfig.load()


def all_knobs(space):
    d = digits_of(np.arange(space.size), space.dims)
    return d, {n: np.asarray(space[n].candidates)[d[:, j]] for j, n in enumerate(space.names)}


def test_documented_lengths():
    assert len(CONV_FEATURES) == 50 and len(set(CONV_FEATURES)) == 50
    assert len(DENSE_FEATURES) == 34 and len(set(DENSE_FEATURES)) == 34


def test_resnet18_c2_every_config_finite_and_documented_length():
    wl = get_workload("resnet18.C2")
    space = space_for(wl, HW)
    assert space.size == 2304
    _, knobs = all_knobs(space)
    feats = itervar_features_batch(wl, HW, knobs)
    assert feats.shape == (space.size, len(CONV_FEATURES)) == (2304, 50)
    assert feats.dtype == np.float32 and np.isfinite(feats).all() and (feats >= 0).all()
    # one configuration at a time gives the same rows
    for i in (0, 1, 777, 2303):
        one = itervar_features(wl, HW, space.get(i).knobs)
        assert one.shape == (50,) and np.array_equal(one, feats[i])
    # the features tell configurations apart
    assert len({row.tobytes() for row in feats}) == space.size


@pytest.mark.parametrize("name", ["resnet18.C11", "mobilenet.D3", "dcgan.CT1", "dense.0",
                                  "dense.2.bias", "deepbench.0"])
def test_every_template_finite(name):
    wl = get_workload(name)
    space = space_for(wl, HW)
    digits, _ = all_knobs(space)
    feats = itervar_feature_fn(space, wl, HW)(digits)
    assert feats.shape == (space.size, len(itervar_feature_names(wl)))
    assert np.isfinite(feats).all()


@pytest.mark.parametrize("name", ["resnet18.C2", "resnet18.C11", "mobilenet.D3", "dcgan.CT2",
                                  "dense.0"])
def test_sram_occupancy_agrees_with_the_compiler(name):
    """An SRAM occupancy above 1 always means an invalid configuration, and every
    configuration the compiler rejects for SRAM overflow has one."""
    wl = get_workload(name).bind(HW)
    space = space_for(wl, HW)
    _, knobs = all_knobs(space)
    names = itervar_feature_names(wl)
    raw = np.exp2(itervar_features_batch(wl, HW, knobs).astype(np.float64)) - 1
    frac = raw[:, [names.index(f"{b}_sram_frac") for b in ("inp", "wgt", "acc")]].max(axis=1)
    uop = raw[:, names.index("uop_frac")]
    step = max(1, space.size // 300)
    for i in range(0, space.size, step):
        valid, _, reason, _ = verdict(wl, space.get(i).knobs, HW)
        over = frac[i] > 1 + 1e-4
        if over or uop[i] > 1 + 1e-4:
            assert not valid, (i, space.get(i).knobs)
        if reason.endswith("sram_overflow"):
            assert over, (i, reason)


def test_missing_knob_is_an_error():
    wl = get_workload("resnet18.C2")
    with pytest.raises(ConfigurationError, match="missing knob"):
        itervar_features(wl, HW, {"tile_h": 1})


def test_knob_features_are_knob_values():
    wl = get_workload("resnet18.C2")
    space = space_for(wl, HW)
    digits, _ = all_knobs(space)
    feats = knob_feature_fn(space)(digits[[5, 900]])
    for row, i in zip(feats, (5, 900)):
        assert list(row) == [float(v) for v in space.get(i).knobs.values()]
