"""PrunerTuner (issue 15 item 3): the learned model verifies only the drafted candidates
(∪ the random share), the draft is refreshed every 2 rounds, and the tuner runs end to end
through ``vtatune.autotune.tune`` and the database."""
import time

import numpy as np
import pytest

from vtatune.space import ConfigSpace
from vtatune.tuning import MeasureOutcome, create_tuner

pytestmark = pytest.mark.requires("xgboost", "tune")


def grid_space() -> ConfigSpace:
    s = ConfigSpace(name="grid")
    s.define_knob("x", list(range(20)))
    s.define_knob("y", list(range(20)))
    return s


def outcome(i: int) -> MeasureOutcome:
    x, y = i % 20, i // 20
    return MeasureOutcome(i, (1.0 + (x - 9) ** 2 + (y - 9) ** 2,), 0, 1.0)


class FixedDraft:
    """A draft model that always proposes the same ranked list (minus the excluded)."""

    def __init__(self, ranked):
        self.ranked = list(ranked)
        self.calls = 0

    def top(self, k, exclude=()):
        self.calls += 1
        ex = set(exclude)
        return np.asarray([i for i in self.ranked if i not in ex][:k], dtype=np.int64)


def run(tuner, rounds, plan):
    for _ in range(rounds):
        b = tuner.next_batch(plan)
        tuner.update([outcome(i) for i in b])


def spy(tuner):
    seen: list[np.ndarray] = []
    inner = tuner.cost_model.predict_digits

    def predict_digits(d):
        seen.append(np.asarray(d).copy())
        return inner(d)
    tuner.cost_model.predict_digits = predict_digits
    return seen


def test_verify_scores_only_drafted_candidates():
    space = grid_space()
    drafted = list(range(0, 400, 3))            # 134 drafted configurations
    draft = FixedDraft(drafted)
    t = create_tuner("pruner", space, seed=1, draft=draft, n_draft=200, n_random=0,
                     plan_size=8)
    seen = spy(t)
    run(t, 4, 8)
    assert len(seen) == 4                       # one verify per round (after each fit)
    for d in seen:
        assert set((d @ np.array([1, 20])).tolist()) <= set(drafted)
    assert t.model_calls == [len(d) for d in seen]
    # each verify scores the drafted configurations not measured yet, nothing else
    assert all(n <= len(drafted) for n in t.model_calls) and t.model_calls[0] > 100
    # the first plan is the draft's best minus the ε-greedy share (0.1 * 8 -> 0)
    assert t.proposed[:8] == drafted[:8]
    assert all(t.sources[i] == "draft" for i in drafted[:8])
    # drafted at the first plan, then at rounds 0 and 2 (every 2 rounds)
    assert draft.calls == 3


def test_random_share_is_bounded():
    space = grid_space()
    drafted = list(range(0, 400, 5))
    t = create_tuner("pruner", space, seed=2, draft=FixedDraft(drafted), n_random=7,
                     plan_size=8)
    seen = spy(t)
    run(t, 3, 8)
    for d in seen:
        idx = set((d @ np.array([1, 20])).tolist())
        assert len(idx - set(drafted)) == 7
    assert len(t.model_calls) == 3 and max(t.model_calls) < 400


def test_pruner_needs_a_draft_model():
    from vtatune.errors import ConfigurationError
    with pytest.raises(ConfigurationError):
        create_tuner("pruner", grid_space())


def test_tune_with_pruner_through_the_database(tmp_path, verdict_pool):
    from vtatune.autotune import tune
    from vtatune.db import open_db
    from vtatune.task import VtaTask
    db = open_db(f"sqlite:///{tmp_path / 'p.db'}")
    task = VtaTask.create("resnet18.C10", "pynq_1x16_i8w8a32_15_15_18_17")
    s = tune(task, db=db, tuner="pruner", n_trial=24, pool=verdict_pool,
             tuner_options={"plan_size": 8})
    recs = db.records(workload_key=task.key, source="measured")
    assert s.new == 24 == len(recs)
    # the first plan is drafted with the compiler's verdict: its 8 configurations are valid
    first = sorted(recs, key=lambda r: r.timestamp)[:8]
    assert all(r.error_no == 0 for r in first)
    again = tune(task, db=db, tuner="pruner", n_trial=24, pool=verdict_pool,
                 tuner_options={"plan_size": 8})
    assert again.resumed == 24 and again.new == 0
    db.close()


# ------------------------------------------------------------------------------ MoA
def test_momentum_update_is_exact():
    from vtatune.tuning.moa import momentum_update
    s = [np.array([1.0, 2.0]), np.array([[4.0]])]
    n = [np.array([3.0, -2.0]), np.array([[0.0]])]
    out = momentum_update(s, n, 0.99)
    assert np.allclose(out[0], [0.99 * 1 + 0.01 * 3, 0.99 * 2 - 0.01 * 2])
    assert np.allclose(out[1], [[3.96]])


def test_moa_adapts_every_4_updates_from_the_siamese_copy():
    from vtatune.tuning.moa import MLPRankModel, MoACostModel
    space = grid_space()
    feat = lambda d: d.astype(float)
    src = MLPRankModel(2, hidden=8, seed=3)
    src.set_normalisation(np.array([[0.0, 0.0], [19.0, 19.0]]))
    before = [p.copy() for p in src.params]
    m = MoACostModel(src, feat, space.dims, momentum=0.99, period=4, epochs=3)
    idx = list(range(0, 400, 7))
    ys = [outcome(i).throughput for i in idx]
    for k in range(3):                       # updates 1..3: the predictor stays the source
        m.fit(idx, ys, 8)
        assert all(np.array_equal(a, b) for a, b in zip(m.predictor.params, before))
        assert all(np.array_equal(a, b) for a, b in zip(m.siamese.params, before))
    m.fit(idx, ys, 8)                        # update 4: re-init from siamese, train, momentum
    new = m.predictor.params
    assert any(not np.array_equal(a, b) for a, b in zip(new, before))
    for s_after, s0, n in zip(m.siamese.params, before, new):
        assert np.allclose(s_after, 0.99 * s0 + 0.01 * n)
    assert m.adaptations == 1
    assert all(np.array_equal(a, b) for a, b in zip(src.params, before))  # source untouched


def test_moa_tuner_verifies_with_the_source_model():
    from vtatune.tuning.moa import MLPRankModel, MoATuner
    space = grid_space()
    src = MLPRankModel(2, hidden=8, seed=0)
    t = MoATuner(space, seed=0, source=src, draft=FixedDraft(range(0, 400, 2)), plan_size=8,
                 feature_fn=lambda d: d.astype(float), epochs=2)
    run(t, 5, 8)
    assert t.cost_model.updates == 5 and t.cost_model.adaptations == 1
    assert len(t.model_calls) == 5 and max(t.model_calls) <= 200 + 64
