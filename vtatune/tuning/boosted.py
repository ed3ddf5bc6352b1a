"""The frozen-at-tuning-time predictor of both One-Shot tuners (VTA: ``autotune/oneshot.py``,
MetaSchedule: ``backends/tvm/oneshot.py``): XGBoost squared-error regression (the original's
MSE) of per-task normalised throughput, trained with label-frequency-balanced weights, saved
as one JSON file (the model as base64 UBJSON) and fingerprinted by its bytes, so a tuning run
can show that nothing updated it.  Subclasses say which feature layout a file must carry
(``layout``), which option a bad file is blamed on (``FIELD``) and how to install xgboost
(``INSTALL``).  xgboost is imported on first use only."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import time
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from .ranking import balanced_weights


class BoostedRegressor:
    FORMAT = "vtatune-boosted-regressor-1"
    FIELD = "predictor"
    INSTALL = "pip install 'vtatune[tune]'"

    def __init__(self, *, rounds: int = 300, max_depth: int = 6, eta: float = 0.1,
                 subsample: float = 0.8, colsample: float = 0.8, bins: int = 100,
                 balanced: bool = True, seed: int = 0, nthread: int = 1):
        self.params = {"objective": "reg:squarederror", "max_depth": int(max_depth),
                       "eta": float(eta), "subsample": float(subsample),
                       "colsample_bytree": float(colsample), "min_child_weight": 1.0,
                       "seed": int(seed), "nthread": int(nthread), "verbosity": 0,
                       "tree_method": "hist"}
        self.rounds, self.bins, self.balanced = int(rounds), int(bins), bool(balanced)
        self.bst = None
        self.info: dict[str, Any] = {}

    # -- what a subclass fixes
    def layout(self) -> dict:
        """Fields a saved file must carry unchanged (its feature layout)."""
        return {}

    @classmethod
    def _xgboost(cls):
        try:
            import xgboost
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigurationError(cls.FIELD, f"the one-shot predictor needs xgboost: "
                                                f"{cls.INSTALL}") from None
        return xgboost

    # -- training and prediction
    def _train(self, x: np.ndarray, y: np.ndarray, weights=None, feature_names=None,
               info: dict | None = None) -> None:
        """Fit on rows ``x`` and labels ``y``; ``weights`` default to the balanced ones."""
        xgb = self._xgboost()
        y = np.asarray(y, dtype=np.float64)
        if weights is None:
            weights = balanced_weights(y, self.bins) if self.balanced else np.ones(y.size)
        tic = time.perf_counter()
        d = xgb.DMatrix(x, label=y, weight=np.asarray(weights, dtype=np.float64),
                        feature_names=feature_names, nthread=self.params["nthread"])
        self.bst = xgb.train(self.params, d, num_boost_round=self.rounds)
        self.info = {**(info or {}), "fit_seconds": time.perf_counter() - tic}

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if self.bst is None:
            raise ConfigurationError("model", "predict before fit")
        return self.bst.inplace_predict(np.asarray(x, dtype=np.float32))

    # -- frozen-ness and files
    def _raw(self) -> bytes:
        if self.bst is None:
            raise ConfigurationError("model", "the predictor is not trained")
        return bytes(self.bst.save_raw("ubj"))

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the model bytes: equal before and after a tuning run
        when nothing updated the predictor."""
        return hashlib.sha256(self._raw()).hexdigest()[:16]

    def save(self, path: str | os.PathLike) -> None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"format": self.FORMAT, **self.layout(), "params": self.params,
               "rounds": self.rounds, "bins": self.bins, "balanced": self.balanced,
               "info": self.info, "model_ubj": base64.b64encode(self._raw()).decode()}
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike):
        xgb = cls._xgboost()
        path = pathlib.Path(path)
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(cls.FIELD, f"{path}: not a one-shot predictor ({exc})") from None
        bad = ConfigurationError(cls.FIELD, f"{path}: another format or feature layout; "
                                            "retrain it")
        if not isinstance(doc, dict) or doc.get("format") != cls.FORMAT:
            raise bad
        p = cls(rounds=doc["rounds"], bins=doc["bins"], balanced=doc["balanced"])
        if any(doc.get(k) != v for k, v in p.layout().items()):
            raise bad
        p.params = doc["params"]
        p.bst = xgb.Booster(params={"nthread": p.params.get("nthread", 1)})
        p.bst.load_model(bytearray(base64.b64decode(doc["model_ubj"])))
        p.info = doc.get("info", {})
        return p
