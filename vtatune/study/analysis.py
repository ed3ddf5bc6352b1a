"""The three analyses of the invalid-configuration study (docs/study.md has the exact
definitions; ``../shared/methods.md`` §G.1 names them E1-E3).

E1 ``invalid_by_reason``: how the space splits into valid configurations and each
    invalid reason.
E2 ``clustering``: the knob-grid graph (``grid_edges``): P(neighbour valid | valid)
    against the base rate, and the connected components of the valid configurations.
E3 ``cost_model_study``: AutoTVM's XGB cost model on knob features, trained on random
    samples with the invalid configurations kept at throughput 0 (S1) or removed (S2),
    scored on all valid configurations with ``pairwise_accuracy``, ``precision_at_k``
    and ``ndcg_at_k``.

Every function here works on arrays (``StudyData`` or plain numpy), never on the database.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError, ErrorCategory, MissingDependencyError
from ..space.indexing import digits_of, index_strides
from .explore import INVALID, MISSING, NO_LABEL, VALID, StudyData

EDGE_MODES = ("adjacent", "any")
SCENARIOS = ("S1", "S2")
DEFAULT_SIZES = (64, 128, 256, 512)


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigurationError(name, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


# =============================================================================== E1
def invalid_by_reason(data: StudyData) -> dict:
    """Counts and shares of the space: valid, then each reason of the other records (most
    frequent first), then unmeasured configurations if any.  ``share`` is of the whole
    space; the invalid fraction is ``1 - valid share`` (every configuration that did not
    run, crashes included: those rows carry ``label`` "no label")."""
    size = data.size
    rows = []
    n_valid = int(np.sum(data.label == VALID))
    rows.append({"reason": "valid", "category": "NO_ERROR", "label": "valid",
                 "count": n_valid, "share": n_valid / size})
    counts: Counter = Counter()
    category: dict[str, str] = {}
    kind: dict[str, str] = {}
    for lab in (INVALID, NO_LABEL):
        idx = np.flatnonzero(data.label == lab)
        for i in idx:
            r = data.reason[i]
            counts[r] += 1
            if r not in category:
                try:
                    category[r] = ErrorCategory(int(data.error_no[i])).name
                except ValueError:
                    category[r] = str(int(data.error_no[i]))
                kind[r] = "invalid" if lab == INVALID else "no label"
    for r, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        rows.append({"reason": r, "category": category[r], "label": kind[r], "count": c,
                     "share": c / size})
    n_missing = data.n_missing
    if n_missing:
        rows.append({"reason": "missing", "category": "-", "label": "not measured",
                     "count": n_missing, "share": n_missing / size})
    n_invalid = int(np.sum(data.label == INVALID))
    n_nolabel = int(np.sum(data.label == NO_LABEL))
    return {"size": size, "valid": n_valid, "invalid": n_invalid, "no_label": n_nolabel,
            "missing": n_missing, "valid_fraction": n_valid / size,
            "invalid_fraction": (size - n_valid - n_missing) / size, "rows": rows}


# =============================================================================== E2
def grid_edges(dims: Sequence[int], mode: str = "adjacent") -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """Edges of the knob-grid graph of a space with knob sizes ``dims``: ``(src, dst,
    knob)`` with ``src < dst``, each undirected edge once.

    ``adjacent``: the two configurations differ in exactly one knob, by one candidate
    position (its neighbouring value).  ``any``: they differ in exactly one knob, by any
    candidate (``ConfigSpace.neighbours``)."""
    if mode not in EDGE_MODES:
        raise ConfigurationError("mode", f"expected one of {EDGE_MODES}, got {mode!r}")
    dims = [int(d) for d in dims]
    size = int(np.prod(dims)) if dims else 1
    idx = np.arange(size, dtype=np.int64)
    digits = digits_of(idx, dims)
    strides = index_strides(dims)
    src, dst, knob = [], [], []
    for k, d in enumerate(dims):
        deltas = range(1, 2) if mode == "adjacent" else range(1, d)
        for delta in deltas:
            m = digits[:, k] + delta < d
            s = idx[m]
            src.append(s)
            dst.append(s + delta * strides[k])
            knob.append(np.full(s.size, k, dtype=np.int64))
    if not src:
        e = np.empty(0, dtype=np.int64)
        return e, e, e
    return np.concatenate(src), np.concatenate(dst), np.concatenate(knob)


def neighbour_validity(valid: np.ndarray, src: np.ndarray, dst: np.ndarray) -> dict:
    """P(neighbour valid | valid), pooled over the ordered pairs (u, v) of neighbours with
    ``u`` valid: 2·E(valid, valid) / (2·E(valid, valid) + E(valid, invalid))."""
    vs, vd = valid[src], valid[dst]
    both = int(np.sum(vs & vd))
    one = int(np.sum(vs ^ vd))
    from_valid = 2 * both + one
    return {"edges": int(src.size), "valid_valid_edges": both, "valid_other_edges": one,
            "p_neighbour_valid": (2 * both / from_valid) if from_valid else math.nan}


def _nanmedian(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else math.nan


def _components(valid: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Sizes (descending) of the connected components of the subgraph induced by the valid
    configurations."""
    try:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
    except ImportError:
        raise MissingDependencyError("the clustering analysis needs scipy: "
                                     "pip install scipy") from None
    nodes = np.flatnonzero(valid)
    if nodes.size == 0:
        return np.empty(0, dtype=np.int64)
    pos = np.full(valid.size, -1, dtype=np.int64)
    pos[nodes] = np.arange(nodes.size)
    keep = valid[src] & valid[dst]
    a, b = pos[src[keep]], pos[dst[keep]]
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(nodes.size,) * 2)
    _, comp = connected_components(graph, directed=False)
    return np.sort(np.bincount(comp))[::-1]


def clustering(valid: np.ndarray, dims: Sequence[int], names: Sequence[str] | None = None, *,
               mode: str = "adjacent", shuffles: int = 20, seed: int = 0) -> dict:
    """The E2 analysis of one validity pattern (a boolean array over the flat indices of a
    space with knob sizes ``dims``) on the ``mode`` graph (``grid_edges``).

    Returns the base rate (valid share of the space), P(neighbour valid | valid) overall
    and per knob, its lift over the base rate, the component sizes of the valid subgraph,
    and, as a null model, the median component count and P(neighbour valid | valid) of
    ``shuffles`` random placements of the same number of valid configurations (seeded)."""
    valid = np.asarray(valid, dtype=bool)
    size = int(np.prod(dims)) if len(dims) else 1
    if valid.shape != (size,):
        raise ConfigurationError("valid", f"expected {size} entries (the space), got "
                                          f"{valid.shape}")
    names = list(names) if names is not None else [f"knob{k}" for k in range(len(dims))]
    src, dst, knob = grid_edges(dims, mode)
    n_valid = int(valid.sum())
    base = n_valid / size
    overall = neighbour_validity(valid, src, dst)
    p = overall["p_neighbour_valid"]
    per_knob = []
    for k, name in enumerate(names):
        m = knob == k
        if not m.any():
            continue  # a knob with one candidate has no edges
        row = neighbour_validity(valid, src[m], dst[m])
        row["knob"] = name
        per_knob.append(row)
    sizes = _components(valid, src, dst)
    null_p, null_c, example = [], [], []
    rng = np.random.default_rng(seed)
    for _ in range(shuffles):
        perm = rng.permutation(valid)
        null_p.append(neighbour_validity(perm, src, dst)["p_neighbour_valid"])
        comps = _components(perm, src, dst)
        null_c.append(comps.size)
        if not example:
            example = [int(c) for c in comps]
    return {
        "mode": mode, "size": size, "valid": n_valid, "base_rate": base,
        # E[P] if the same number of valid configurations sat at random places
        "random_expectation": (n_valid - 1) / (size - 1) if size > 1 and n_valid else math.nan,
        **overall,
        "lift": p / base if base > 0 and not math.isnan(p) else math.nan,
        "per_knob": per_knob,
        "components": int(sizes.size),
        "component_sizes": [int(s) for s in sizes],
        "largest_component": int(sizes[0]) if sizes.size else 0,
        "largest_share": float(sizes[0] / n_valid) if sizes.size else math.nan,
        "isolated": int(np.sum(sizes == 1)),
        "shuffled": {"runs": shuffles,
                     "p_neighbour_valid": _nanmedian(null_p),
                     "components": float(np.median(null_c)) if null_c else math.nan,
                     "example_sizes": example},   # component sizes of the first shuffle
    }


# =============================================================================== E3 metrics
def _check_scores(true: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(true, dtype=np.float64).ravel()
    p = np.asarray(pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ConfigurationError("pred", f"{p.size} predictions for {t.size} true values")
    if t.size == 0:
        raise ConfigurationError("true", "no values to score")
    return t, p


def pairwise_accuracy(true: Any, pred: Any, *, max_pairs: int = 4_000_000,
                      rng: np.random.Generator | None = None) -> float:
    """Share of the pairs (i, j) with ``true[i] != true[j]`` that ``pred`` orders the same
    way; a pair ``pred`` ties counts 1/2 (the expectation of a random tie-break).  Exact
    when there are at most ``max_pairs`` unordered pairs, else estimated on ``max_pairs``
    pairs drawn uniformly with replacement (``rng``, default seed 0).  NaN if every true
    value is equal."""
    t, p = _check_scores(true, pred)
    n = t.size
    if n * (n - 1) // 2 <= max_pairs:
        agree = ties = pairs = 0
        block = max(1, 500_000 // n)  # rows per block: bounded memory
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            dt = np.sign(t[lo:hi, None] - t[None, :])
            dp = np.sign(p[lo:hi, None] - p[None, :])
            # only i < j (upper triangle of the full matrix)
            upper = np.arange(lo, hi)[:, None] < np.arange(n)[None, :]
            m = upper & (dt != 0)
            pairs += int(m.sum())
            agree += int(np.sum(m & (dt == dp)))
            ties += int(np.sum(m & (dp == 0)))
    else:
        rng = rng if rng is not None else np.random.default_rng(0)
        i = rng.integers(0, n, max_pairs)
        j = rng.integers(0, n, max_pairs)
        dt, dp = np.sign(t[i] - t[j]), np.sign(p[i] - p[j])
        m = dt != 0
        pairs = int(m.sum())
        agree = int(np.sum(m & (dt == dp)))
        ties = int(np.sum(m & (dp == 0)))
    return (agree + 0.5 * ties) / pairs if pairs else math.nan


def _top_k_inclusion(scores: np.ndarray, k: int) -> np.ndarray:
    """Probability that each item is among the ``k`` highest ``scores`` when ties are broken
    uniformly at random: 1 above the k-th score, 0 below, (k - #above) / #tied at it."""
    s = np.sort(scores)[::-1]
    kth = s[k - 1]
    above = scores > kth
    tied = scores == kth
    out = above.astype(np.float64)
    out[tied] = (k - int(above.sum())) / int(tied.sum())
    return out


def _check_k(k: Any, n: int) -> int:
    k = _positive_int(k, "k")
    return min(k, n)


def precision_at_k(true: Any, pred: Any, k: int) -> float:
    """|predicted top-k ∩ true top-k| / k (``k`` capped at the number of items), with ties
    on either side broken uniformly at random (the expected overlap is returned)."""
    t, p = _check_scores(true, pred)
    k = _check_k(k, t.size)
    return float(np.sum(_top_k_inclusion(p, k) * _top_k_inclusion(t, k)) / k)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` (ascending), tied values sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    mean_rank = (starts + ends + 1) / 2.0          # mean of ranks starts+1 .. ends
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def validity_auc(valid: Any, score: Any) -> float:
    """P(score of a valid configuration > score of an invalid one), ties 1/2: the area
    under the ROC curve of ``score`` as a validity detector (Mann-Whitney from tie-averaged
    ranks).  NaN without both classes."""
    v = np.asarray(valid, dtype=bool).ravel()
    p = np.asarray(score, dtype=np.float64).ravel()
    if v.shape != p.shape:
        raise ConfigurationError("score", f"{p.size} scores for {v.size} labels")
    n_pos, n_neg = int(v.sum()), int((~v).sum())
    if not n_pos or not n_neg:
        return math.nan
    r = _average_ranks(p)
    return float((r[v].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def valid_at_k(valid: Any, score: Any, k: int) -> float:
    """Share of valid configurations among the ``k`` best-scored (ties broken at random:
    the expected share)."""
    v = np.asarray(valid, dtype=bool).ravel()
    p = np.asarray(score, dtype=np.float64).ravel()
    if v.shape != p.shape:
        raise ConfigurationError("score", f"{p.size} scores for {v.size} labels")
    k = _check_k(k, p.size)
    return float(np.sum(_top_k_inclusion(p, k)[v]) / k)


def _discounts(n: int, k: int) -> np.ndarray:
    d = 1.0 / np.log2(np.arange(n) + 2.0)
    d[k:] = 0.0
    return d


def ndcg_at_k(true: Any, pred: Any, k: int) -> float:
    """NDCG@k with linear gain: relevance ``rel = true / max(true)``, DCG = Σ_{r ≤ k}
    rel_(r) / log2(r + 1) over the items in ``pred`` order, divided by the DCG of the
    ``true`` order.  Items that ``pred`` ties share the mean discount of the positions
    they occupy (the expectation of a random tie-break; sklearn's ``ndcg_score``
    definition).  Requires non-negative ``true``; NaN if all are 0."""
    t, p = _check_scores(true, pred)
    if np.any(t < 0):
        raise ConfigurationError("true", "relevances must be non-negative")
    k = _check_k(k, t.size)
    top = t.max()
    if top <= 0:
        return math.nan
    rel = t / top
    disc = _discounts(t.size, k)
    ideal = float(np.sum(np.sort(rel)[::-1] * disc))
    order = np.argsort(-p, kind="stable")
    ps, rs = p[order], rel[order]
    # groups of equal predictions in sorted order
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    ends = np.r_[starts[1:], ps.size]
    cum = np.r_[0.0, np.cumsum(disc)]
    csum = np.r_[0.0, np.cumsum(rs)]
    dcg = np.sum((csum[ends] - csum[starts]) / (ends - starts) * (cum[ends] - cum[starts]))
    return float(dcg / ideal)


# =============================================================================== E3 study
def extra_metrics(ks: dict[str, int]) -> list[str]:
    """Metrics over the whole space (not in the paper): what a model knows about validity."""
    return ["validity_auc", f"valid@{next(iter(ks))}"]


@dataclass
class CostModelStudy:
    """Per-run rows and the summary of the E3 comparison."""

    sizes: list[int]
    seeds: int
    loss_type: str
    ks: dict[str, int]                 # metric suffix -> k ("64" -> 64, "1%" -> ...)
    n_test: int                        # valid configurations scored
    rows: list[dict] = field(default_factory=list)
    skipped: dict = field(default_factory=dict)   # n -> draws with < 2 valid samples
    seconds: float = 0.0
    pairs_note: str = ""

    @property
    def metrics(self) -> list[str]:
        return (["pairwise"] + [f"{m}@{s}" for m in ("precision", "ndcg") for s in self.ks]
                + extra_metrics(self.ks))

    def summary(self) -> list[dict]:
        """Per (n, scenario, metric): runs, median, quartiles, mean."""
        out = []
        for n in self.sizes:
            for sc in SCENARIOS:
                for m in self.metrics:
                    v = np.array([r[m] for r in self.rows if r["n"] == n and r["scenario"] == sc
                                  and not math.isnan(r[m])])
                    out.append({"n": n, "scenario": sc, "metric": m, "runs": int(v.size),
                                "median": float(np.median(v)) if v.size else math.nan,
                                "q25": float(np.percentile(v, 25)) if v.size else math.nan,
                                "q75": float(np.percentile(v, 75)) if v.size else math.nan,
                                "mean": float(v.mean()) if v.size else math.nan})
        return out

    def paired(self) -> list[dict]:
        """Per (n, metric): median of S1 - S2 over seeds where both ran, and the share of
        those seeds in which S1 scored higher (ties count 1/2)."""
        out = []
        by = {(r["seed"], r["n"], r["scenario"]): r for r in self.rows}
        for n in self.sizes:
            for m in self.metrics:
                d = []
                for s in range(self.seeds):
                    a, b = by.get((s, n, "S1")), by.get((s, n, "S2"))
                    if a and b and not (math.isnan(a[m]) or math.isnan(b[m])):
                        d.append(a[m] - b[m])
                d = np.array(d)
                out.append({"n": n, "metric": m, "runs": int(d.size),
                            "median_diff": float(np.median(d)) if d.size else math.nan,
                            "s1_wins": float((np.sum(d > 0) + 0.5 * np.sum(d == 0)) / d.size)
                            if d.size else math.nan})
        return out

    def as_dict(self) -> dict:
        return {"sizes": self.sizes, "seeds": self.seeds, "loss_type": self.loss_type,
                "ks": self.ks, "n_test": self.n_test, "skipped": self.skipped,
                "seconds": self.seconds, "pairs_note": self.pairs_note,
                "summary": self.summary(), "paired": self.paired(), "rows": self.rows}


def top_share_k(n_valid: int, share: float = 0.01) -> int:
    """k of "top 1 %": ceil(share × valid configurations), at least 1."""
    return max(1, math.ceil(share * n_valid))


def cost_model_study(data: StudyData, *, sizes: Sequence[int] = DEFAULT_SIZES,
                     seeds: int = 20, k: int = 64, top_share: float = 0.01,
                     loss_type: str = "rank", plan_size: int = 64,
                     max_pairs: int = 4_000_000, num_threads: int | None = 1,
                     on_progress: Callable[[int, int], None] | None = None) -> CostModelStudy:
    """E3: for each seed, draw max(sizes) distinct configurations uniformly from the space
    (the first n of the draw are the sample of size n, so the samples of one seed are
    nested); S1 fits AutoTVM's XGB model (``tuning.xgb.XGBoostCostModel``, knob features,
    ``loss_type``, early stop on a-recall@``plan_size``) on all n with invalid at
    throughput 0, S2 on the valid ones of the same n.  Both are scored on every valid
    configuration of the space.  A draw with fewer than 2 valid configurations is skipped
    in both scenarios (AutoTVM does not fit without a valid one; a ranking needs two).
    Sizes larger than the space are dropped."""
    from ..tuning.features import knob_feature_fn
    from ..tuning.xgb import XGBoostCostModel

    data.require_complete()
    seeds = _positive_int(seeds, "seeds")
    k = _positive_int(k, "k")
    if not 0 < top_share <= 1:
        raise ConfigurationError("top_share", f"must be in (0, 1], got {top_share!r}")
    if not sizes:
        raise ConfigurationError("sizes", "at least one training-set size is needed")
    sizes = sorted({_positive_int(n, "sizes", 2) for n in sizes})
    kept = [n for n in sizes if n <= data.size]
    valid_idx = np.flatnonzero(data.valid)
    true = data.throughput[valid_idx]
    ks = {str(k): k, f"{top_share * 100:g}%": top_share_k(valid_idx.size, top_share)}
    out = CostModelStudy(sizes=kept, seeds=seeds, loss_type=loss_type, ks=ks,
                         n_test=int(valid_idx.size))
    n_pairs = valid_idx.size * (valid_idx.size - 1) // 2
    out.pairs_note = (f"all {n_pairs} pairs" if n_pairs <= max_pairs
                      else f"{max_pairs} random pairs of {n_pairs}")
    if not kept or valid_idx.size < 2:
        return out
    space = data.space
    feature_fn = knob_feature_fn(space)
    tput = data.throughput
    valid = data.valid
    all_idx = np.arange(data.size, dtype=np.int64)
    total, done = seeds * len(kept), 0
    tic = time.perf_counter()
    for s in range(seeds):
        draw = np.random.default_rng([20240, s]).choice(data.size, size=max(kept),
                                                        replace=False)
        for n in kept:
            sample = draw[:n]
            vmask = valid[sample]
            if vmask.sum() < 2:
                out.skipped[n] = out.skipped.get(n, 0) + 1
            else:
                for sc in SCENARIOS:
                    idx = sample if sc == "S1" else sample[vmask]
                    # the same model seed in both scenarios: only the training set differs
                    model = XGBoostCostModel(feature_fn, space.dims,
                                             np.random.default_rng([20241, s, n]),
                                             loss_type=loss_type, num_threads=num_threads)
                    model.fit(idx, tput[idx], plan_size)
                    score = model.predict(all_idx)
                    pred = score[valid_idx]
                    row = {"seed": s, "n": n, "scenario": sc, "n_train": int(idx.size),
                           "n_valid_train": int(vmask.sum()), "rounds": model.rounds,
                           "fit_seconds": round(model.fit_seconds, 4),
                           "pairwise": pairwise_accuracy(true, pred, max_pairs=max_pairs,
                                                         rng=np.random.default_rng([s, n]))}
                    for suffix, kk in ks.items():
                        row[f"precision@{suffix}"] = precision_at_k(true, pred, kk)
                        row[f"ndcg@{suffix}"] = ndcg_at_k(true, pred, kk)
                    row["validity_auc"] = validity_auc(valid, score)
                    row[f"valid@{k}"] = valid_at_k(valid, score, k)
                    out.rows.append(row)
            done += 1
            if on_progress is not None:
                on_progress(done, total)
    out.seconds = time.perf_counter() - tic
    return out


# =============================================================================== grid map
def default_map_knobs(data: StudyData) -> tuple[str, str]:
    """The two knobs of the validity map: tile_h × tile_w when the space has them, else the
    two knobs with the most candidates."""
    names = data.space.names
    if "tile_h" in names and "tile_w" in names:
        return "tile_h", "tile_w"
    order = sorted(range(len(names)), key=lambda k: (-data.space.dims[k], k))
    if len(order) < 2:
        raise ConfigurationError("knobs", f"a validity map needs two knobs, {data.workload} "
                                          f"has {len(order)}")
    a, b = sorted(order[:2])
    return names[a], names[b]


def grid_map(data: StudyData, y_knob: str, x_knob: str) -> dict:
    """Per (y_knob value, x_knob value): configurations, valid share, best GOPS, aggregated
    over every other knob."""
    names = data.space.names
    for knob in (y_knob, x_knob):
        if knob not in names:
            raise ConfigurationError("knobs", f"{knob!r} is not a knob of {data.workload} "
                                              f"({', '.join(names)})")
    if y_knob == x_knob:
        raise ConfigurationError("knobs", f"two different knobs are needed, got {y_knob!r} twice")
    ky, kx = names.index(y_knob), names.index(x_knob)
    dims = data.space.dims
    digits = digits_of(np.arange(data.size, dtype=np.int64), dims)
    count = np.zeros((dims[ky], dims[kx]))
    nvalid = np.zeros_like(count)
    best = np.zeros_like(count)
    gops = data.throughput / 1e9
    np.add.at(count, (digits[:, ky], digits[:, kx]), 1)
    np.add.at(nvalid, (digits[:, ky], digits[:, kx]), data.valid.astype(float))
    np.maximum.at(best, (digits[:, ky], digits[:, kx]), gops)
    knobs = data.space.knobs
    return {"y_knob": y_knob, "x_knob": x_knob,
            "y_values": [str(v) for v in knobs[y_knob].candidates],
            "x_values": [str(v) for v in knobs[x_knob].candidates],
            "count": count, "valid_share": nvalid / count, "best_gops": best}


def best_config(data: StudyData) -> dict | None:
    """The fastest valid configuration (lowest index among equal costs)."""
    if not data.valid.any():
        return None
    i = int(np.argmin(np.where(data.valid, data.cost, np.inf)))
    return {"index": i, "knobs": data.space.get(i).knobs, "cost_s": float(data.cost[i]),
            "gops": float(data.flops / data.cost[i] / 1e9)}


__all__ = [
    "DEFAULT_SIZES",
    "EDGE_MODES",
    "MISSING",
    "SCENARIOS",
    "CostModelStudy",
    "best_config",
    "clustering",
    "cost_model_study",
    "default_map_knobs",
    "grid_edges",
    "grid_map",
    "invalid_by_reason",
    "ndcg_at_k",
    "neighbour_validity",
    "pairwise_accuracy",
    "precision_at_k",
    "top_share_k",
    "valid_at_k",
    "validity_auc",
]
