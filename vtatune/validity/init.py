"""Validity-driven initialisation of a tuner (issue 11 item 3; methods.md §A.4).

Both strategies follow the ``autotune.search.InitStrategy`` protocol: ``probe(space, rng)``
(configurations measured before the first plan is chosen; they count as measurements) and
``first_batch(space, n, rng, probed)`` (the seeded first plan, disjoint from the probed
configurations, handed to the tuner through its ``init`` hook).  Everything random goes
through the ``rng`` they are given, so a strategy is deterministic given that generator.

``ValidityInit(p_valid_fn, threshold=0.5, spread=True)``
    No probe.  The first plan is drawn among the *predicted-valid* configurations
    (``p_valid_fn(indices) >= threshold``; e.g. ``LearnedScreen.p_valid`` or
    ``ExactScreen.p_valid``), spread over the **valid clusters of the knob grid**: the
    predicted-valid set is split into the connected components of the grid graph whose
    edges join configurations that differ in one knob by one candidate position (Rieber et
    al.'s clustering); the plan's ``n`` slots go to the components in proportion to their
    sizes with at least one slot per component while slots last (if there are more
    components than slots, the largest components get one each; ties in size are broken
    at random), uniformly at random inside each component.  The returned list is ordered
    round-robin over the components (largest first), so any prefix is spread too: its
    first ``min(n, #components)`` entries come from distinct components.
    ``spread=False`` draws uniformly from the predicted-valid set instead.
    If fewer than ``n`` configurations are predicted valid, all of them are taken and
    ``fill="ranked"`` (default) tops the plan up with the most probable of the rest (ties
    at random); ``fill="none"`` returns the shorter list (the tuner then fills at random).
    Spaces larger than ``max_space`` are not enumerated: a random pool of ``pool``
    configurations is predicted and the plan drawn uniformly among its predicted-valid
    members (no clustering).

``ProbeThenClassify(task, probe_size=16, features="knob", kind="rf", threshold=0.5)``
    The probe is ``probe_size`` configurations drawn uniformly at random.  ``first_batch``
    fits a classifier **on the probed outcomes only** (label 1 = ``error_no`` 0, label 0 =
    a configuration error — compile/device/runtime/wrong answer; timeouts and crashes are
    not labels), predicts P(valid) over the space and selects the plan like
    ``ValidityInit``.  The classifier is scikit-learn's random forest (``"rf"``) or
    histogram gradient boosting (``"gb"``) with balanced class weights (a probe of 16
    holds one or two valid configurations on most VTA layers), uncalibrated: 16 labels
    cannot calibrate anything, and only the ranking against the threshold is used.
    **Fallback** when the probe holds a single label (all invalid, all valid, or nothing
    labelled): with ``prior`` (a ``p_valid`` callable, e.g. a static classifier's) the
    plan is ``ValidityInit(prior)``'s; otherwise it is uniformly random among the
    unprobed configurations (AutoTVM's random first plan).  ``last_fit`` records what
    the last ``first_batch`` learned from (the probed indices and labels) and which path
    it took.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ErrorCategory, ValidityModelError
from ..space.indexing import index_strides
from .features import FEATURE_SETS
from .features import features as validity_features
from .screen import _check_task, _check_threshold

PValidFn = Callable[[np.ndarray], np.ndarray]

#: Error categories that mean "this configuration is invalid" (a label 0).
INVALID_ERRORS = frozenset({int(ErrorCategory.COMPILE_HOST), int(ErrorCategory.COMPILE_DEVICE),
                            int(ErrorCategory.RUNTIME_DEVICE), int(ErrorCategory.WRONG_ANSWER)})
FILLS = ("ranked", "none")
CLASSIFIERS = ("rf", "gb")


# ----------------------------------------------------------------------------- clustering
def grid_components(mask: np.ndarray, dims: Sequence[int]) -> np.ndarray:
    """Connected components of the configurations where ``mask`` is True (a bool array over
    the whole space) on the knob grid: two configurations are neighbours when they differ in
    exactly one knob, by one candidate position.  Returns an int64 array over the space:
    the component label (0, 1, ...) of each masked configuration, -1 elsewhere.  Labels are
    numbered in order of each component's smallest index."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    mask = np.asarray(mask, dtype=bool)
    size = int(np.prod(np.asarray(dims, dtype=np.int64))) if len(dims) else 1
    if mask.shape != (size,):
        raise ValidityModelError("mask", f"expected {size} bools (the space), got shape {mask.shape}")
    nodes = np.flatnonzero(mask)
    out = np.full(size, -1, dtype=np.int64)
    if nodes.size == 0:
        return out
    pos = np.full(size, -1, dtype=np.int64)
    pos[nodes] = np.arange(nodes.size)
    rows, cols = [], []
    for stride, d in zip(index_strides(dims).tolist(), dims):
        if d < 2:
            continue
        digit = (nodes // stride) % d
        a = nodes[digit < d - 1]
        b = a + stride
        ok = mask[b]
        rows.append(pos[a[ok]])
        cols.append(pos[b[ok]])
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(nodes.size, nodes.size))
    _, labels = connected_components(graph, directed=False)
    # renumber by smallest member index (nodes are sorted, so first occurrence order)
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    out[nodes] = rank[labels]
    return out


def allocate(sizes: Sequence[int], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Slots per component: proportional to size, at least one each while slots last
    (largest components first, size ties in random order), never more than a component
    holds.  Returns (order of the components, largest first; slots per component)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    k = sizes.size
    slots = np.zeros(k, dtype=np.int64)
    if k == 0 or n <= 0:
        return np.arange(k), slots
    tiebreak = rng.permutation(k)
    order = np.lexsort((tiebreak, -sizes))          # by size desc, then the random tie-break
    n = min(int(n), int(sizes.sum()))
    first = order[:min(n, k)]
    slots[first] = 1
    left = n - first.size
    while left > 0:
        room = sizes - slots
        open_ = room > 0
        share = np.where(open_, sizes, 0).astype(np.float64)
        quota = left * share / share.sum()
        extra = np.minimum(np.floor(quota).astype(np.int64), room)
        if extra.sum() == 0:  # hand single slots out by largest remainder (then size order)
            rem = np.where(open_, quota - np.floor(quota), -1.0)
            pick = [c for c in sorted(order.tolist(), key=lambda c: -rem[c]) if open_[c]][:left]
            extra = np.zeros(k, dtype=np.int64)
            extra[pick] = 1
        slots += extra
        left -= int(extra.sum())
    return order, slots


def spread_select(p: np.ndarray, n: int, rng: np.random.Generator, dims: Sequence[int], *,
                  threshold: float = 0.5, exclude: Sequence[int] = (), spread: bool = True,
                  fill: str = "ranked") -> list[int]:
    """The selection rule of ``ValidityInit`` on a P(valid) array over the whole space."""
    p = np.asarray(p, dtype=np.float64)
    avail = np.ones(p.size, dtype=bool)
    ex = np.asarray(list(exclude), dtype=np.int64)
    if ex.size:
        avail[ex] = False
    pred = p >= threshold
    chosen: list[int] = []
    if spread:
        comp = grid_components(pred, dims)
        cand = np.flatnonzero(pred & avail)
        if cand.size:
            ids, counts = np.unique(comp[cand], return_counts=True)
            order, slots = allocate(counts, n, rng)
            picks = []
            for c in order.tolist():
                members = cand[comp[cand] == ids[c]]
                picks.append(rng.permutation(members)[:slots[c]].tolist())
            depth = max((len(x) for x in picks), default=0)
            for r in range(depth):          # round-robin over the components, largest first
                chosen += [x[r] for x in picks if r < len(x)]
    else:
        cand = np.flatnonzero(pred & avail)
        chosen = rng.permutation(cand)[:n].tolist()
    chosen = chosen[:n]
    if fill == "ranked" and len(chosen) < n:
        rest = np.flatnonzero(~pred & avail)
        if rest.size:
            tie = rng.random(rest.size)
            rest = rest[np.lexsort((tie, -p[rest]))]
            chosen += rest[:n - len(chosen)].tolist()
    return [int(i) for i in chosen]


def _check_fill(fill: str) -> str:
    if fill not in FILLS:
        raise ValidityModelError("fill", f"unknown fill {fill!r}; known: {', '.join(FILLS)}")
    return fill


# ----------------------------------------------------------------------------- strategies
class ValidityInit:
    """First plan among predicted-valid configurations, spread over the valid clusters of
    the knob grid (module docstring).  No probe."""

    def __init__(self, p_valid_fn: PValidFn, threshold: float = 0.5, spread: bool = True, *,
                 fill: str = "ranked", max_space: int = 1 << 20, pool: int = 1 << 16):
        if not callable(p_valid_fn):
            raise ValidityModelError("p_valid_fn", f"must be callable, got {type(p_valid_fn).__name__}")
        self.p_valid_fn = p_valid_fn
        self.threshold = _check_threshold(threshold)
        self.spread = bool(spread)
        self.fill = _check_fill(fill)
        self.max_space, self.pool = int(max_space), int(pool)

    def probe(self, space, rng: np.random.Generator) -> list[int]:
        return []

    def _p(self, idx: np.ndarray) -> np.ndarray:
        p = np.asarray(self.p_valid_fn(idx), dtype=np.float64)
        if p.shape != idx.shape:
            raise ValidityModelError("p_valid_fn", f"returned shape {p.shape} for {idx.size} indices")
        return p

    def first_batch(self, space, n: int, rng: np.random.Generator, probed=()) -> list[int]:
        probed_idx = [int(o.index) for o in probed]
        if space.size > self.max_space:  # sampled pool, uniform among its predicted-valid
            pool = np.unique(rng.integers(0, space.size, size=self.pool))
            pool = pool[~np.isin(pool, probed_idx)]
            p = self._p(pool)
            good = pool[p >= self.threshold]
            chosen = rng.permutation(good)[:n].tolist()
            if self.fill == "ranked" and len(chosen) < n:
                rest = pool[p < self.threshold]
                rest = rest[np.argsort(-p[p < self.threshold], kind="stable")]
                chosen += rest[:n - len(chosen)].tolist()
            return [int(i) for i in chosen]
        p = self._p(np.arange(space.size, dtype=np.int64))
        return spread_select(p, n, rng, space.dims, threshold=self.threshold,
                             exclude=probed_idx, spread=self.spread, fill=self.fill)


def outcome_label(o) -> int | None:
    """1 (ran), 0 (configuration error) or None (not a label: timeout, crash, unknown)."""
    if int(o.error_no) == 0:
        return 1
    if int(o.error_no) in INVALID_ERRORS:
        return 0
    return None


class ProbeThenClassify:
    """A random probe, a classifier fitted on the probed outcomes only, then a first plan
    selected like ``ValidityInit`` from its predictions (module docstring)."""

    def __init__(self, task, probe_size: int = 16, features: str = "knob", kind: str = "rf",
                 threshold: float = 0.5, *, prior: PValidFn | None = None, spread: bool = True,
                 fill: str = "ranked", n_estimators: int = 100):
        self.task = _check_task(task)
        if isinstance(probe_size, bool) or not isinstance(probe_size, int) or probe_size < 0:
            raise ValidityModelError("probe_size", f"must be a non-negative integer, got {probe_size!r}")
        if features not in FEATURE_SETS:
            raise ValidityModelError("features", f"unknown feature set {features!r}; known: "
                                                 f"{', '.join(FEATURE_SETS)}")
        if kind not in CLASSIFIERS:
            raise ValidityModelError("kind", f"unknown classifier {kind!r}; known: {', '.join(CLASSIFIERS)}")
        if prior is not None and not callable(prior):
            raise ValidityModelError("prior", f"must be callable, got {type(prior).__name__}")
        self.probe_size, self.features, self.kind = probe_size, features, kind
        self.threshold = _check_threshold(threshold)
        self.prior, self.spread, self.fill = prior, bool(spread), _check_fill(fill)
        self.n_estimators = n_estimators
        self._X: np.ndarray | None = None
        self.last_fit: dict | None = None

    def _check_space(self, space) -> None:
        if space.size != self.task.space.size or list(space.dims) != list(self.task.space.dims):
            raise ValidityModelError("space", "the space is not the task's")

    def _features(self) -> np.ndarray:
        if self._X is None:
            self._X = validity_features(self.task.workload, self.task.hw, None, self.features,
                                        space=self.task.space)
        return self._X

    def probe(self, space, rng: np.random.Generator) -> list[int]:
        self._check_space(space)
        k = min(self.probe_size, space.size)
        return [int(i) for i in rng.choice(space.size, size=k, replace=False)]

    def _classifier(self, seed: int):
        if self.kind == "rf":
            from sklearn.ensemble import RandomForestClassifier
            return RandomForestClassifier(n_estimators=self.n_estimators, class_weight="balanced",
                                          random_state=seed, n_jobs=1)
        from sklearn.ensemble import HistGradientBoostingClassifier
        return HistGradientBoostingClassifier(max_iter=self.n_estimators, min_samples_leaf=1,
                                              class_weight="balanced", random_state=seed)

    def first_batch(self, space, n: int, rng: np.random.Generator, probed=()) -> list[int]:
        self._check_space(space)
        pairs = [(int(o.index), outcome_label(o)) for o in probed]
        lab = [(i, y) for i, y in pairs if y is not None]
        idx = np.asarray([i for i, _ in lab], dtype=np.int64)
        y = np.asarray([y for _, y in lab], dtype=np.int64)
        probed_idx = [i for i, _ in pairs]
        self.last_fit = {"indices": idx, "labels": y, "fallback": None}
        if np.unique(y).size < 2:
            if self.prior is not None:
                self.last_fit["fallback"] = "prior"
                return ValidityInit(self.prior, self.threshold, self.spread, fill=self.fill
                                    ).first_batch(space, n, rng, probed)
            self.last_fit["fallback"] = "random"
            avail = np.setdiff1d(np.arange(space.size, dtype=np.int64), probed_idx)
            return [int(i) for i in rng.permutation(avail)[:n]]
        X = self._features()
        clf = self._classifier(int(rng.integers(2 ** 31 - 1)))
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=1, user_api="openmp"):
            clf.fit(X[idx], y)
            col = list(clf.classes_).index(1)
            p = clf.predict_proba(X)[:, col]
        self.last_fit["p"] = p
        return spread_select(p, n, rng, space.dims, threshold=self.threshold,
                             exclude=probed_idx, spread=self.spread, fill=self.fill)
