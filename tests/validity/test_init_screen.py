"""Validity-driven initialisation and screens (vtatune.validity.init / .screen)."""
import numpy as np
import pytest

from vtatune.compiler.sweep import verdict
from vtatune.errors import ErrorCategory, ValidityModelError
from vtatune.hardware.config import HwConfig
from vtatune.space import ConfigSpace
from vtatune.space.indexing import digits_of
from vtatune.task import VtaTask
from vtatune.tuning import MeasureOutcome
from vtatune.validity import ValidityModel, sweep_set
from vtatune.validity.features import features as validity_features
from vtatune.validity.init import (
    ProbeThenClassify,
    ValidityInit,
    allocate,
    grid_components,
    spread_select,
)
from vtatune.validity.screen import ExactScreen, LearnedScreen
from vtatune.workloads.suites import resolve_workload

HW = HwConfig.load()


def tiny_space():
    s = ConfigSpace()
    s.define_knob("a", [1, 2, 3, 4, 5, 6])
    s.define_knob("b", [10, 20, 30, 40])
    return s


def at(a, b):
    return a + 6 * b  # first knob least significant


# three predicted-valid clusters on the 6 x 4 grid:
#   A = the 2x3 block a in {0,1,2}, b in {0,1}       (6 points)
#   B = a = 5, b in {1,2,3}                           (3 points)
#   C = (3, 3)                                        (1 point; (4,3) is not valid, so C and B
#                                                       are not neighbours; (3,2) neither)
A = {at(a, b) for a in (0, 1, 2) for b in (0, 1)}
B = {at(5, b) for b in (1, 2, 3)}
C = {at(3, 3)}
VALID = A | B | C


def p_tiny(indices):
    return np.array([0.9 if i in VALID else 0.1 for i in np.asarray(indices)], dtype=float)


def comp_of(i):
    return "A" if i in A else "B" if i in B else "C" if i in C else None


def bfs_components(mask, space):
    """Reference: breadth-first search with +-1 candidate-position neighbours."""
    label = {}
    comp = 0
    for start in np.flatnonzero(mask):
        if start in label:
            continue
        stack = [int(start)]
        label[int(start)] = comp
        while stack:
            i = stack.pop()
            d = space.point2knob(i)
            for j, size in enumerate(space.dims):
                for step in (-1, 1):
                    e = list(d)
                    e[j] += step
                    if 0 <= e[j] < size:
                        k = space.knob2point(e)
                        if mask[k] and k not in label:
                            label[k] = comp
                            stack.append(k)
        comp += 1
    return label, comp


def test_grid_components_tiny_and_against_bfs():
    s = tiny_space()
    mask = np.zeros(s.size, bool)
    mask[list(VALID)] = True
    comp = grid_components(mask, s.dims)
    assert len({comp[i] for i in A}) == 1 and len({comp[i] for i in B}) == 1
    assert len({comp[i] for i in (min(A), min(B), min(C))}) == 3
    assert (comp[~mask] == -1).all()
    # a real space: the compile-valid set of resnet18.C9, against a plain BFS
    task = VtaTask.create("resnet18.C9", HW)
    space = task.space
    rng = np.random.default_rng(3)
    mask = rng.random(space.size) < 0.3
    comp = grid_components(mask, space.dims)
    ref, n = bfs_components(mask, space)
    assert comp.max() + 1 == n
    pairs = {(comp[i], ref[i]) for i in ref}
    assert len(pairs) == n  # the same partition (a bijection between labels)


def test_allocate_proportional_with_one_each():
    order, slots = allocate([6, 3, 1], 5, np.random.default_rng(0))
    # ideal shares 3, 1.5, 0.5; one slot each first -> 3, 1, 1
    assert slots.tolist() == [3, 1, 1]
    assert order.tolist() == [0, 1, 2]
    _, slots = allocate([6, 3, 1], 2, np.random.default_rng(0))
    assert slots.tolist() == [1, 1, 0]            # fewer slots than components: largest first
    _, slots = allocate([2, 1], 10, np.random.default_rng(0))
    assert slots.tolist() == [2, 1]               # never more than a component holds


def test_validity_init_one_per_component_first_and_only_predicted_valid():
    s = tiny_space()
    vi = ValidityInit(p_tiny, threshold=0.5)
    for seed in range(5):
        out = vi.first_batch(s, 3, np.random.default_rng(seed))
        assert sorted(comp_of(i) for i in out) == ["A", "B", "C"]
        out = vi.first_batch(s, 6, np.random.default_rng(seed))
        assert len(set(out)) == 6 and all(i in VALID for i in out)
        assert sorted(comp_of(i) for i in out[:3]) == ["A", "B", "C"]   # round-robin prefix
        # 6 slots over sizes 6/3/1 (ideal 3.6, 1.8, 0.6): one each, then the 3 left split
        # 6:3 between the components with room (C is full) -> 2 and 1 more
        counts = {c: sum(comp_of(i) == c for i in out) for c in "ABC"}
        assert counts == {"A": 3, "B": 2, "C": 1}
        out2 = vi.first_batch(s, 2, np.random.default_rng(seed))
        assert sorted(comp_of(i) for i in out2) == ["A", "B"]          # the two largest
    # deterministic given the generator
    assert vi.first_batch(s, 6, np.random.default_rng(9)) == vi.first_batch(s, 6, np.random.default_rng(9))


def test_validity_init_uniform_fill_and_exclusion():
    s = tiny_space()
    vi = ValidityInit(p_tiny, spread=False)
    out = vi.first_batch(s, 10, np.random.default_rng(0))
    assert set(out) == VALID
    # more slots than predicted-valid configurations: ranked fill by probability
    p = np.linspace(0.0, 0.4, s.size)
    p[list(VALID)] = 0.9
    vi = ValidityInit(lambda idx: p[idx])
    out = vi.first_batch(s, 13, np.random.default_rng(0))
    assert set(out[:10]) == VALID
    rest = [i for i in np.argsort(-p) if i not in VALID][:3]
    assert out[10:] == [int(i) for i in rest]
    assert len(ValidityInit(lambda idx: p[idx], fill="none").first_batch(
        s, 13, np.random.default_rng(0))) == 10
    # probed configurations are never in the plan
    probed = [MeasureOutcome(i, (1.0,)) for i in sorted(A)[:4]]
    out = ValidityInit(p_tiny).first_batch(s, 10, np.random.default_rng(0), probed)
    assert not set(out) & {o.index for o in probed}
    assert ValidityInit(p_tiny).probe(s, np.random.default_rng(0)) == []


def test_typed_errors():
    with pytest.raises(ValidityModelError) as e:
        ValidityInit(p_tiny, threshold=1.5)
    assert e.value.field == "threshold"
    with pytest.raises(ValidityModelError) as e:
        ValidityInit("not callable")
    assert e.value.field == "p_valid_fn"
    with pytest.raises(ValidityModelError) as e:
        ValidityInit(p_tiny, fill="zeros")
    assert e.value.field == "fill"
    task = VtaTask.create("resnet18.C9", HW)
    with pytest.raises(ValidityModelError) as e:
        ProbeThenClassify(task, probe_size=-1)
    assert e.value.field == "probe_size"
    with pytest.raises(ValidityModelError) as e:
        ProbeThenClassify(task, kind="svm")
    assert e.value.field == "kind"
    with pytest.raises(ValidityModelError) as e:
        LearnedScreen(None, task, probabilities=np.zeros(3))
    assert e.value.field == "probabilities"
    with pytest.raises(ValidityModelError) as e:
        ExactScreen("resnet18.C9")
    assert e.value.field == "task"
    with pytest.raises(ValidityModelError) as e:
        spread_select(np.zeros(5), 2, np.random.default_rng(0), [6, 4])
    assert e.value.field == "mask"


# ----------------------------------------------------------------------------- probe
@pytest.fixture(scope="module")
def c9():
    task = VtaTask.create("resnet18.C9", HW)
    s = sweep_set(task.workload, HW)
    valid = np.zeros(task.space.size, bool)
    valid[s.indices[s.labels == 1]] = True
    return task, valid


def _outcomes(indices, valid):
    return [MeasureOutcome(int(i), (1e-3,), 0) if valid[i] else
            MeasureOutcome(int(i), (), int(ErrorCategory.COMPILE_HOST)) for i in indices]


def test_probe_then_classify_disjoint_and_fitted_on_probe_only(c9, monkeypatch):
    task, valid = c9
    ptc = ProbeThenClassify(task, probe_size=40, features="derived", n_estimators=20)
    rng = np.random.default_rng(1)
    probe = ptc.probe(task.space, rng)
    assert len(set(probe)) == 40
    probed = _outcomes(probe, valid)
    assert 0 < sum(o.valid for o in probed) < 40   # both labels (seed chosen for it)
    seen = {}
    from sklearn.ensemble import RandomForestClassifier
    real_fit = RandomForestClassifier.fit

    def spy(self, X, y, *a, **k):
        seen["X"], seen["y"] = np.array(X), np.array(y)
        return real_fit(self, X, y, *a, **k)
    monkeypatch.setattr(RandomForestClassifier, "fit", spy)
    out = ptc.first_batch(task.space, 64, rng, probed)
    assert not set(out) & set(probe)
    assert len(out) == 64 and len(set(out)) == 64
    # the classifier saw exactly the probed rows and their labels, nothing else
    X_probe = validity_features(task.workload, HW, np.asarray(probe), "derived")
    order = np.argsort(probe)
    got = np.argsort(ptc.last_fit["indices"])
    assert np.array_equal(np.sort(ptc.last_fit["indices"]), np.sort(probe))
    assert np.allclose(seen["X"][got], X_probe[order])
    assert np.array_equal(seen["y"][got], valid[np.asarray(probe)][order].astype(int))
    assert ptc.last_fit["fallback"] is None
    # a timeout is not a label
    probed2 = probed[:-1] + [MeasureOutcome(probe[-1], (), int(ErrorCategory.RUN_TIMEOUT))]
    ptc.first_batch(task.space, 64, np.random.default_rng(1), probed2)
    assert probe[-1] not in ptc.last_fit["indices"].tolist()


def test_probe_then_classify_fallbacks(c9):
    task, valid = c9
    invalid = np.flatnonzero(~valid)[:16]
    probed = _outcomes(invalid, valid)
    ptc = ProbeThenClassify(task)
    out = ptc.first_batch(task.space, 64, np.random.default_rng(0), probed)
    assert ptc.last_fit["fallback"] == "random"
    assert len(out) == 64 and not set(out) & set(invalid.tolist())
    # with a static prior, the plan is the prior's validity init
    prior = lambda idx: valid[idx].astype(float)
    ptc = ProbeThenClassify(task, prior=prior)
    out = ptc.first_batch(task.space, 64, np.random.default_rng(0), probed)
    assert ptc.last_fit["fallback"] == "prior"
    n_valid = int(valid.sum())
    assert len(out) == 64 and sum(bool(valid[i]) for i in out) == min(64, n_valid)
    # deterministic given the generator
    a = ProbeThenClassify(task).probe(task.space, np.random.default_rng(5))
    b = ProbeThenClassify(task).probe(task.space, np.random.default_rng(5))
    assert a == b


# ----------------------------------------------------------------------------- screens
def test_exact_screen_agrees_with_verdict():
    task = VtaTask.create("resnet18.C5", HW)
    scr = ExactScreen(task)
    idx = np.random.default_rng(0).choice(task.space.size, 120, replace=False)
    want = np.array([verdict(task.workload, task.space.get(int(i)).knobs, HW)[0] for i in idx])
    assert want.any() and not want.all()
    assert np.array_equal(scr.keep(idx), want)
    assert np.array_equal(scr.p_valid(idx), want.astype(float))
    # the acquisition weight maps digit rows to the same verdicts
    w = scr.acquisition_weight()(digits_of(idx, task.space.dims))
    assert np.array_equal(w, want.astype(float))


def test_learned_screen_is_the_threshold_on_the_model():
    w2, _ = resolve_workload("resnet18.C2", HW)
    w8, _ = resolve_workload("resnet18.C8", HW)
    model = ValidityModel("gb", "derived", n_estimators=20).fit([sweep_set(w2, HW), sweep_set(w8, HW)])
    task = VtaTask.create("resnet18.C11", HW)
    idx = np.random.default_rng(1).choice(task.space.size, 200, replace=False)
    p = model.predict_proba(task.workload, HW, idx)
    for thr in (0.2, 0.5, 0.9):
        whole = LearnedScreen(model, task, thr)
        per_batch = LearnedScreen(model, task, thr, table_limit=0)
        assert np.array_equal(whole.keep(idx), p >= thr)
        assert np.array_equal(per_batch.keep(idx), p >= thr)
        assert np.allclose(per_batch.p_valid(idx[::-1]), p[::-1])
    assert 0 < (p >= 0.5).sum() < p.size
    # precomputed probabilities are used as given
    table = np.random.default_rng(2).random(task.space.size)
    scr = LearnedScreen(None, task, 0.5, probabilities=table)
    assert np.array_equal(scr.keep(idx), table[idx] >= 0.5)
    assert np.allclose(scr.acquisition_weight()(digits_of(idx, task.space.dims)), table[idx])
    # a model for another template is refused
    dense = VtaTask.create("dense.0", HW)
    with pytest.raises(ValidityModelError) as e:
        LearnedScreen(model, dense)
    assert e.value.field == "template"
