"""The validity classifier: P(configuration is valid) for workloads of one template.

``ValidityModel`` wraps a scikit-learn classifier:

* ``rf``: ``RandomForestClassifier`` — the feasibility model of BaCO (ASPLOS 2024);
* ``gb``: ``HistGradientBoostingClassifier``.

Probabilities are calibrated with ``CalibratedClassifierCV``.  The calibration folds are
**grouped by workload** (``GroupKFold``) when the model learns from two or more workloads:
the model will be used on workloads it never saw, so the calibration map is fitted on
scores for held-out workloads, which are less confident than scores for seen ones.
``calibration="auto"`` picks isotonic regression when every calibration fold has at least
1000 labelled configurations (one ResNet-18 layer has 480-2304) — isotonic is
non-parametric and fits the non-sigmoid score distortion of a random forest (its votes
rarely reach 0 or 1) — and Platt's sigmoid below that, where isotonic over-fits.

A model is tied to a template and to the hardware fields validity depends on
(``labels.hw_key``); it is saved as a versioned container (joblib) holding those keys, the
feature set and names, the library versions and the training workloads, and using or
loading it with another template or hardware raises ``ValidityModelError``.  Model files
are pickles: load only files you trust.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ValidityModelError
from ..hardware.config import HwConfig
from ..space import space_for
from ..workloads.workload import Workload
from .features import FEATURE_SETS, check_indices, feature_names, features
from .labels import hw_fields, hw_key, record_labels, sweep_labels

FORMAT = "vtatune-validity-model"
FORMAT_VERSION = 1
KINDS = ("rf", "gb")
CALIBRATIONS = ("auto", "isotonic", "sigmoid")
ISOTONIC_MIN_FOLD = 1000   # calibration points per fold below which isotonic over-fits


def workload_id(wl: Workload) -> str:
    """What identifies a workload's labels: its shape and epilogue (not its name)."""
    return json.dumps([list(wl.shape), wl.epilogue])


@dataclass
class LabelledSet:
    """Labelled configurations of one workload on one hardware configuration."""

    workload: Workload
    hw: HwConfig
    indices: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.workload = self.workload.bind(self.hw)
        self.indices = check_indices(space_for(self.workload, self.hw), self.indices)
        lab = np.asarray(self.labels)
        if lab.shape != self.indices.shape:
            raise ValidityModelError("labels", f"{lab.shape[0] if lab.ndim else 'scalar'} labels "
                                               f"for {self.indices.size} indices")
        if lab.size and not np.isin(lab, (0, 1)).all():
            raise ValidityModelError("labels", "labels must be 0 (invalid) or 1 (valid)")
        self.labels = lab.astype(np.int8)

    @property
    def name(self) -> str:
        return self.workload.name or self.workload.spec


def sweep_set(wl: Workload, hw: HwConfig, indices=None, cache_dir=None) -> LabelledSet:
    """Labels from the compile-only verdicts (all configurations unless ``indices``)."""
    wl = wl.bind(hw)
    idx, lab = sweep_labels(wl, hw, cache_dir).labels(indices)
    return LabelledSet(wl, hw, idx, lab)


def record_set(wl: Workload, hw: HwConfig, records: Iterable[Any],
               workload_name: str | None = None) -> LabelledSet:
    """Labels from database records (measured/imported only; see ``labels``)."""
    rl = record_labels(records, workload_name)
    return LabelledSet(wl, hw, rl.indices, rl.labels)


# ----------------------------------------------------------------------------- metrics
def metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Precision, recall, F1 (class 'valid', predicted valid = p >= threshold), Brier
    score, ROC AUC, the base rate (share valid) and the predicted-valid rate."""
    if not 0.0 <= threshold <= 1.0:
        raise ValidityModelError("threshold", f"must be in [0, 1], got {threshold}")
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    pred = p >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * prec * rec / (prec + rec) if tp else 0.0
    auc = float("nan")
    if 0 < y.sum() < y.size:
        from sklearn.metrics import roc_auc_score
        auc = float(roc_auc_score(y, p))
    return {"n": int(y.size), "valid": int(y.sum()), "base_rate": float(y.mean()) if y.size else float("nan"),
            "predicted_valid_rate": float(pred.mean()) if y.size else float("nan"),
            "precision": prec, "recall": rec, "f1": f1,
            "brier": float(np.mean((p - y) ** 2)) if y.size else float("nan"), "auc": auc,
            "threshold": threshold}


# ----------------------------------------------------------------------------- model
class ValidityModel:
    """A calibrated validity classifier for one template on one hardware key."""

    def __init__(self, kind: str = "rf", features: str = "derived", calibration: str = "auto",
                 seed: int = 0, n_estimators: int = 200, n_jobs: int = 1):
        if kind not in KINDS:
            raise ValidityModelError("model", f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
        if features not in FEATURE_SETS:
            raise ValidityModelError("features", f"unknown feature set {features!r}; known: "
                                                 f"{', '.join(FEATURE_SETS)}")
        if calibration not in CALIBRATIONS:
            raise ValidityModelError("calibration", f"unknown calibration {calibration!r}; "
                                                    f"known: {', '.join(CALIBRATIONS)}")
        self.kind, self.features, self.calibration = kind, features, calibration
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise ValidityModelError("n_jobs", f"must be a positive integer, got {n_jobs!r}")
        self.seed, self.n_estimators, self.n_jobs = seed, n_estimators, n_jobs
        self.estimator = None
        self.template: str | None = None
        self.hw_name: str | None = None
        self.hw_key: str | None = None
        self.hw_fields: dict | None = None
        self.feature_names: tuple[str, ...] = ()
        self.method: str | None = None          # the calibration actually used
        self.trained_on: list[dict] = []
        self.versions: dict[str, str] = {}

    # ------------------------------------------------------------------ training
    def _base(self):
        if self.kind == "rf":
            from sklearn.ensemble import RandomForestClassifier
            return RandomForestClassifier(n_estimators=self.n_estimators, min_samples_leaf=1,
                                          n_jobs=self.n_jobs, random_state=self.seed)
        from sklearn.ensemble import HistGradientBoostingClassifier
        return HistGradientBoostingClassifier(max_iter=self.n_estimators, learning_rate=0.1,
                                              random_state=self.seed)

    def _folds(self, y: np.ndarray, groups: np.ndarray) -> list:
        """Calibration folds: by workload when there are several (each training part must
        hold both classes), else stratified."""
        from sklearn.model_selection import GroupKFold, StratifiedKFold
        n_groups = len(np.unique(groups))
        if n_groups >= 2:
            splits = list(GroupKFold(n_splits=min(3, n_groups)).split(y, y, groups))
            if all(len(np.unique(y[tr])) == 2 for tr, _ in splits):
                return splits
        n = min(3, int(np.bincount(y, minlength=2).min()))
        if n < 2:
            raise ValidityModelError("labels", "too few configurations of the rarer class "
                                               f"({n}) to calibrate; need at least 2")
        return list(StratifiedKFold(n_splits=n, shuffle=True, random_state=self.seed).split(y, y))

    def _threads(self):
        """Cap OpenMP (HistGradientBoosting) at ``n_jobs`` threads: with more threads than
        free cores, OpenMP's spinning workers made a fit ~100x slower on a loaded machine."""
        from threadpoolctl import threadpool_limits
        return threadpool_limits(limits=self.n_jobs, user_api="openmp")

    def fit(self, sets: Sequence[LabelledSet]) -> ValidityModel:
        """Train on labelled sets (one template, one hardware key)."""
        from sklearn.calibration import CalibratedClassifierCV

        sets = [s for s in sets if s.indices.size]
        if not sets:
            raise ValidityModelError("labels", "no labelled configurations to train on")
        templates = {s.workload.template for s in sets}
        if len(templates) > 1:
            raise ValidityModelError("template", "one model per template; got "
                                                 f"{', '.join(sorted(templates))}")
        keys = {hw_key(s.hw) for s in sets}
        if len(keys) > 1:
            raise ValidityModelError("hw", "training sets come from hardware configurations "
                                           "with different validity fields")
        X, y, g = [], [], []
        for i, s in enumerate(sets):
            X.append(features(s.workload, s.hw, s.indices, self.features))
            y.append(s.labels)
            g.append(np.full(s.indices.size, i))
        X, y, g = np.concatenate(X), np.concatenate(y).astype(int), np.concatenate(g)
        if len(np.unique(y)) < 2:
            raise ValidityModelError("labels", "the training labels hold one class only "
                                               f"({'valid' if y[0] else 'invalid'})")
        folds = self._folds(y, g)
        method = self.calibration
        if method == "auto":
            method = "isotonic" if min(len(te) for _, te in folds) >= ISOTONIC_MIN_FOLD else "sigmoid"
        est = CalibratedClassifierCV(self._base(), method=method, cv=folds, ensemble=True)
        with self._threads():
            est.fit(X, y)
        import sklearn

        from .._version import __version__
        s0 = sets[0]
        self.estimator, self.method = est, method
        self.template = s0.workload.template
        self.hw_name, self.hw_key, self.hw_fields = s0.hw.name, hw_key(s0.hw), hw_fields(s0.hw)
        self.feature_names = feature_names(self.template, self.features,
                                           space_for(s0.workload, s0.hw).names)
        self.trained_on = [{"name": s.name, "id": workload_id(s.workload), "n": int(s.indices.size),
                            "valid": int(s.labels.sum())} for s in sets]
        self.versions = {"sklearn": sklearn.__version__, "numpy": np.__version__,
                         "vtatune": __version__}
        return self

    # ------------------------------------------------------------------ use
    def check(self, wl: Workload, hw: HwConfig, allow_other_hw: bool = False) -> None:
        """``ValidityModelError`` unless the model applies to ``wl`` on ``hw``."""
        if self.estimator is None:
            raise ValidityModelError("model", "the model is not trained")
        if wl.template != self.template:
            raise ValidityModelError("template", f"the model is for {self.template}, the workload "
                                                 f"{wl.name or wl.spec} is {wl.template}")
        if hw_key(hw) != self.hw_key and not allow_other_hw:
            raise ValidityModelError("hw", f"the model was trained on {self.hw_name} (key "
                                           f"{self.hw_key}); {hw.name} has other buffer/width "
                                           f"fields (key {hw_key(hw)})")

    def predict_proba(self, wl: Workload, hw: HwConfig, indices=None,
                      allow_other_hw: bool = False) -> np.ndarray:
        """P(valid) of the configurations at ``indices`` (all if None) of ``wl`` on ``hw``.
        ``allow_other_hw`` uses the model on hardware with other validity fields (a
        cross-hardware experiment; the ``derived`` features are SRAM fractions, so they
        carry over, ``knob`` features do not)."""
        wl = wl.bind(hw)
        self.check(wl, hw, allow_other_hw)
        space = space_for(wl, hw)
        names = feature_names(wl.template, self.features, space.names)
        if tuple(names) != tuple(self.feature_names):
            raise ValidityModelError("features", "the model's feature columns differ from this "
                                                 "vtatune's (retrain the model)")
        X = features(wl, hw, indices, self.features, space=space)
        if X.shape[0] == 0:
            return np.zeros(0)
        col = list(self.estimator.classes_).index(1)
        with self._threads():
            return self.estimator.predict_proba(X)[:, col]

    def seen(self, wl: Workload) -> bool:
        """Was ``wl`` (same shape and epilogue) among the training workloads?"""
        return any(t["id"] == workload_id(wl) for t in self.trained_on)

    def evaluate(self, sets: Sequence[LabelledSet], threshold: float = 0.5,
                 allow_other_hw: bool = False) -> dict[str, Any]:
        """Metrics per labelled set and pooled over all of them; each row says whether the
        model saw that workload in training (then the figure is not a held-out one)."""
        rows, ys, ps = [], [], []
        for s in sets:
            p = self.predict_proba(s.workload, s.hw, s.indices, allow_other_hw)
            rows.append({"workload": s.name, "seen": self.seen(s.workload),
                         **metrics(s.labels, p, threshold)})
            ys.append(s.labels)
            ps.append(p)
        overall = metrics(np.concatenate(ys) if ys else np.zeros(0),
                          np.concatenate(ps) if ps else np.zeros(0), threshold)
        return {"per_workload": rows, "overall": overall}

    # ------------------------------------------------------------------ persistence
    def to_container(self) -> dict[str, Any]:
        if self.estimator is None:
            raise ValidityModelError("model", "the model is not trained")
        return {"format": FORMAT, "version": FORMAT_VERSION, "template": self.template,
                "hw_name": self.hw_name, "hw_key": self.hw_key, "hw_fields": self.hw_fields,
                "kind": self.kind, "features": self.features,
                "feature_names": list(self.feature_names), "calibration": self.calibration,
                "method": self.method, "seed": self.seed, "n_estimators": self.n_estimators,
                "trained_on": self.trained_on, "versions": self.versions,
                "estimator": self.estimator}

    def save(self, path) -> None:
        import joblib
        joblib.dump(self.to_container(), path)

    @classmethod
    def load(cls, path, template: str | None = None, hw: HwConfig | None = None) -> ValidityModel:
        """Load a saved model; with ``template`` / ``hw`` check that it applies to them."""
        import joblib
        try:
            c = joblib.load(path)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - unpickling junk raises anything
            raise ValidityModelError("format", f"{path}: not a validity model file ({exc})") from None
        if not isinstance(c, dict) or c.get("format") != FORMAT:
            raise ValidityModelError("format", f"{path}: not a validity model file")
        if c.get("version") != FORMAT_VERSION:
            raise ValidityModelError("version", f"{path}: model format version {c.get('version')}, "
                                                f"this vtatune reads {FORMAT_VERSION}")
        import sklearn
        saved = c["versions"].get("sklearn", "?")
        if saved.split(".")[:2] != sklearn.__version__.split(".")[:2]:
            warnings.warn(f"{path}: saved with scikit-learn {saved}, running {sklearn.__version__}; "
                          "predictions may differ", stacklevel=2)
        m = cls(kind=c["kind"], features=c["features"], calibration=c["calibration"],
                seed=c["seed"], n_estimators=c["n_estimators"])
        m.estimator, m.method, m.template = c["estimator"], c["method"], c["template"]
        m.hw_name, m.hw_key, m.hw_fields = c["hw_name"], c["hw_key"], c["hw_fields"]
        m.feature_names, m.trained_on = tuple(c["feature_names"]), c["trained_on"]
        m.versions = c["versions"]
        if template is not None and template != m.template:
            raise ValidityModelError("template", f"{path}: the model is for {m.template}, not {template}")
        if hw is not None and hw_key(hw) != m.hw_key:
            raise ValidityModelError("hw", f"{path}: the model was trained on {m.hw_name} (key "
                                           f"{m.hw_key}), not for {hw.name} (key {hw_key(hw)})")
        return m

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_container().items() if k != "estimator"}


# ----------------------------------------------------------------------------- helpers
def train(workloads: Sequence[Workload], hw: HwConfig, kind: str = "rf", features: str = "derived",
          calibration: str = "auto", seed: int = 0, cache_dir=None, **kw) -> ValidityModel:
    """A model trained on the compile-only verdicts of every configuration of ``workloads``."""
    sets = [sweep_set(w, hw, cache_dir=cache_dir) for w in workloads]
    return ValidityModel(kind, features, calibration, seed, **kw).fit(sets)


def leave_one_workload_out(workloads: Sequence[Workload], hw: HwConfig, kind: str = "rf",
                           features: str = "derived", threshold: float = 0.5, seed: int = 0,
                           cache_dir=None, **kw) -> dict[str, Any]:
    """For each workload, a model trained on the others' verdicts and evaluated on it.
    Returns per-workload rows and the pooled metrics over every held-out prediction."""
    sets = [sweep_set(w, hw, cache_dir=cache_dir) for w in workloads]
    rows, ys, ps = [], [], []
    for i, held in enumerate(sets):
        # same shape + epilogue under another name would leak the held-out labels
        others = [s for s in sets if workload_id(s.workload) != workload_id(held.workload)]
        m = ValidityModel(kind, features, seed=seed, **kw).fit(others)
        assert not m.seen(held.workload)  # the held-out labels never reach the model
        p = m.predict_proba(held.workload, held.hw, held.indices)
        rows.append({"workload": held.name, "calibration": m.method, **metrics(held.labels, p, threshold)})
        ys.append(held.labels)
        ps.append(p)
    return {"kind": kind, "features": features, "per_workload": rows,
            "overall": metrics(np.concatenate(ys), np.concatenate(ps), threshold)}
