"""MeasureOutcome, the Tuner protocol shared by every tuner, the init hook and the registry."""
import math

import numpy as np
import pytest
from tuning_synth import Objective, run, synthetic_space

from vtatune.errors import ConfigurationError
from vtatune.space import ConfigSpace, SpaceError
from vtatune.tuning import (
    GATuner,
    GridSearchTuner,
    MeasureOutcome,
    RandomTuner,
    Tuner,
    XGBTuner,
    create_tuner,
    register_tuner,
    tuner_names,
)

# the xgb tuner needs xgboost (the [tune] extra); the other tuners' tests must run without it
XGB = pytest.mark.requires("xgboost", "tune")

TUNER_KW = {"random": {}, "grid": {}, "ga": {"pop_size": 20},
            "xgb": {"feature_type": "knob", "plan_size": 16}}


def small_space() -> ConfigSpace:
    s = ConfigSpace(name="small")
    s.define_split("x", 12)   # 6 candidates
    s.define_split("y", 8)    # 4
    s.define_knob("t", [1, 2])
    return s  # 48 configurations


# ---------------------------------------------------------------------------- outcome
def test_measure_outcome_properties():
    ok = MeasureOutcome(3, (0.002, 0.004), 0, 6e6)
    assert ok.valid and ok.mean_cost == pytest.approx(0.003)
    assert ok.gflops == pytest.approx(2.0) and ok.throughput == pytest.approx(2e9)
    bad = MeasureOutcome(4, (1e9,), 2, 6e9)
    assert not bad.valid and bad.mean_cost == math.inf and bad.gflops == 0.0
    assert bad.throughput == 0.0
    assert not MeasureOutcome(5, (), 0, 1.0).valid           # no cost: not a success
    unknown = MeasureOutcome(6, (0.5,), 0, None)
    assert unknown.valid and math.isnan(unknown.gflops) and unknown.throughput == 2.0
    assert MeasureOutcome(np.int64(7), [1], 0).index == 7
    with pytest.raises(ConfigurationError):
        MeasureOutcome("7", (1.0,))


# ---------------------------------------------------------------------------- registry
@XGB
def test_registry_names_and_factories():
    assert {"random", "grid", "ga", "xgb"} <= set(tuner_names())
    s = small_space()
    classes = {"random": RandomTuner, "grid": GridSearchTuner, "ga": GATuner, "xgb": XGBTuner}
    for name, cls in classes.items():
        t = create_tuner(name, s, seed=0, **TUNER_KW[name])
        assert type(t) is cls and t.name == name and t.space is s
    t = create_tuner("random", s)
    assert create_tuner(t) is t
    with pytest.raises(ConfigurationError, match="unknown tuner"):
        create_tuner("annealing", s)
    with pytest.raises(ConfigurationError):
        create_tuner(t, seed=1)


def test_register_custom_tuner():
    class FirstTuner(Tuner):
        name = "first"

        def _propose(self, n):
            for i in range(self.space.size):
                if len(self._batch) >= n:
                    break
                self._take(i, "first")
    register_tuner("first-test", FirstTuner)
    t = create_tuner("first-test", small_space())
    assert t.next_batch(3) == [0, 1, 2]


# ---------------------------------------------------------------------------- protocol
@pytest.mark.parametrize("name", ["random", "grid", "ga", pytest.param("xgb", marks=XGB)])
def test_no_duplicates_and_full_coverage(name):
    s = small_space()
    obj = Objective(s, fn=lambda k: k["x"] * k["y"] * (0 if k["t"] * k["x"] > 8 else 1))
    t = create_tuner(name, s, seed=1, **TUNER_KW[name])
    seen = run(t, obj, s.size + 10, batch=5)
    assert len(seen) == len(set(seen)) == s.size
    assert sorted(seen) == list(range(s.size))
    assert not t.has_next() and t.next_batch(4) == []
    assert t.visited == set(range(s.size)) and len(t.history) == s.size


@pytest.mark.parametrize("name", ["random", "grid"])
def test_everything_in_one_batch(name):
    s = small_space()
    t = create_tuner(name, s, seed=0)
    batch = t.next_batch(s.size)
    assert sorted(batch) == list(range(s.size))
    if name == "grid":
        assert batch == list(range(s.size))
    assert not t.has_next()


def test_batch_size_is_exact_and_checked():
    s = small_space()
    t = RandomTuner(s, seed=0)
    assert len(t.next_batch(10)) == 10 and t.remaining == 38
    assert t.next_batch(0) == []
    assert len(t.next_batch(100)) == 38
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigurationError):
            RandomTuner(s).next_batch(bad)


@pytest.mark.parametrize("name", ["random", "grid", "ga", pytest.param("xgb", marks=XGB)])
def test_told_indices_are_never_proposed(name):
    """update() with records of any index (resuming a session) marks them visited."""
    s = synthetic_space()
    obj = Objective(s)
    t = create_tuner(name, s, seed=2, **TUNER_KW[name])
    told = list(range(0, 7200, 7))[:300]
    t.update(obj.measure(told))
    seen = run(t, obj, 128, batch=16)
    assert not set(seen) & set(told)
    assert len(set(seen)) == len(seen) == 128
    with pytest.raises(SpaceError):
        t.update([MeasureOutcome(s.size, (1.0,))])


def test_best_tracks_highest_throughput():
    s = small_space()
    t = RandomTuner(s, seed=0)
    assert t.best is None
    t.update([MeasureOutcome(0, (2.0,), 0, 1.0), MeasureOutcome(1, (1e9,), 4, 1.0)])
    assert t.best.index == 0
    t.update([MeasureOutcome(2, (0.5,), 0, 1.0), MeasureOutcome(3, (0.1,), 7, 1.0)])
    assert t.best.index == 2


@pytest.mark.parametrize("name", ["random", "ga", pytest.param("xgb", marks=XGB)])
def test_seed_makes_runs_reproducible(name):
    s = synthetic_space()
    obj = Objective(s)
    kw = TUNER_KW[name]
    a = run(create_tuner(name, s, seed=11, **kw), obj, 80, batch=10)
    b = run(create_tuner(name, s, seed=11, **kw), obj, 80, batch=10)
    c = run(create_tuner(name, s, seed=12, **kw), obj, 80, batch=10)
    assert a == b
    assert a != c


# ---------------------------------------------------------------------------- init hook
class RecordingInit:
    def __init__(self, choose):
        self.calls = []
        self.choose = choose

    def __call__(self, space, n, rng):
        assert isinstance(rng, np.random.Generator)
        self.calls.append(n)
        return self.choose(space, n, rng)


@pytest.mark.parametrize("name", ["random", "grid", "ga", pytest.param("xgb", marks=XGB)])
def test_init_hook_chooses_the_first_batch(name):
    s = synthetic_space()
    kw = TUNER_KW[name]
    chosen = [7199 - 3 * i for i in range(40)]
    init = RecordingInit(lambda space, n, rng: chosen[:n])
    t = create_tuner(name, s, seed=3, init=init, **kw)
    first = t.next_batch(12)
    assert first == chosen[:12]
    assert all(t.sources[i] == "init" for i in first)
    # the hook is asked for the tuner's whole feedback-free batch, once
    assert init.calls == [max(12, t.init_size)]
    queued = chosen[12:max(12, t.init_size)]
    second = t.next_batch(len(queued) + 5) if queued else t.next_batch(5)
    assert second[:len(queued)] == queued
    assert all(t.sources[i] != "init" for i in second[len(queued):])
    assert init.calls == [max(12, t.init_size)]


def test_init_hook_shortfall_is_filled_and_rng_is_separate():
    s = synthetic_space()
    plain = RandomTuner(s, seed=5)
    hooked = RandomTuner(s, seed=5, init=lambda space, n, rng: [1, 2] + [] * int(rng.integers(9)))
    a, b = plain.next_batch(6), hooked.next_batch(6)
    assert b[:2] == [1, 2] and len(b) == 6 and len(set(b)) == 6
    # the hook's generator is independent: the tuner's own stream is unchanged
    assert b[2:] == [i for i in a if i not in (1, 2)][:4]


def test_init_hook_not_called_after_history():
    s = synthetic_space()
    obj = Objective(s)
    init = RecordingInit(lambda space, n, rng: [0])
    t = RandomTuner(s, seed=0, init=init)
    t.update(obj.measure([5, 6]))
    t.next_batch(4)
    assert init.calls == []


@pytest.mark.parametrize("bad, match", [
    (lambda s, n, r: list(range(n + 1)), "returned"),
    (lambda s, n, r: [1, 1], "duplicate"),
    (lambda s, n, r: [s.size], "out of range"),
    (lambda s, n, r: None, "list of indices"),
])
def test_init_hook_output_is_checked(bad, match):
    t = RandomTuner(small_space(), init=bad)
    with pytest.raises(ConfigurationError, match=match):
        t.next_batch(4)
