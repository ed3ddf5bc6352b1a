"""Tuner base class, measurement outcomes as tuners see them, and the tuner registry.

The tuners are backend-agnostic: they propose flat ``ConfigSpace`` indices and learn from
``MeasureOutcome`` objects; who builds, runs and stores the configurations is not their
business.  The batch protocol is AutoTVM v0.14's (``next_batch`` / ``update``), with two
guarantees AutoTVM does not give: a tuner never proposes an index twice (nor an index it
was told about through ``update``), and ``next_batch(n)`` returns exactly
``min(n, remaining)`` indices.

The ``init`` hook
-----------------
Every tuner accepts ``init``, a callable ``init(space, n, rng) -> list[int]`` that chooses
the configurations the tuner would otherwise choose *without any feedback* — AutoTVM's
random first plan.  It is called once, by the first ``next_batch`` call, and only if nothing
has been proposed or told (``update``) before; never again.

* ``n`` = ``max(requested batch size, tuner.init_size)``: ``init_size`` is the tuner's own
  feedback-free batch (``plan_size`` for ``"xgb"``, ``pop_size`` for ``"ga"``, 0 for
  ``"random"``/``"grid"``), so the hook chooses the whole first plan even when the driver
  asks for smaller batches.  Indices beyond the first batch are queued and handed out by the
  following ``next_batch`` calls before anything else (an index told through ``update`` in
  the meantime is skipped).
* ``rng`` is a ``numpy.random.Generator`` derived from the tuner's seed and used by nothing
  else, so what the hook draws does not change the tuner's own random stream.
* It returns at most ``n`` distinct integers in ``[0, space.size)``; fewer is fine (the
  tuner's own policy fills the rest).  Anything else raises ``ConfigurationError("init")``.
* Proposals from the hook are labelled ``"init"`` in ``Tuner.sources``.
"""
from __future__ import annotations

import abc
import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

from ..errors import ConfigurationError
from ..space.config import ConfigSpace
from ..space.knobs import SpaceError

#: ``init(space, n, rng) -> list[int]``: chooses the feedback-free first batch (module doc).
InitFn = Callable[[ConfigSpace, int, np.random.Generator], Sequence[int]]


@dataclass(frozen=True)
class MeasureOutcome:
    """The result of measuring one configuration, as a tuner needs it.

    Parameters
    ----------
    index
        Flat index of the configuration in the tuner's ``ConfigSpace``.
    costs
        Run times in seconds (AutoTVM ``MeasureResult.costs``).
    error_no
        AutoTVM ``MeasureErrorNo`` value (``vtatune.errors.ErrorCategory``); 0 = success.
    flops
        Floating-point (or integer) operations of the task (AutoTVM ``task.flop``), or
        ``None`` when unknown; then ``throughput`` falls back to ``1 / mean_cost``, which
        ranks the configurations of one task identically.
    """

    index: int
    costs: tuple[float, ...]
    error_no: int = 0
    flops: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.index, (int, np.integer)) or isinstance(self.index, bool):
            raise ConfigurationError("index", f"must be an integer, got {self.index!r}")
        object.__setattr__(self, "index", int(self.index))
        object.__setattr__(self, "costs", tuple(float(c) for c in self.costs))
        object.__setattr__(self, "error_no", int(self.error_no))

    @property
    def valid(self) -> bool:
        """``error_no == 0`` with at least one finite, positive cost."""
        if self.error_no != 0 or not self.costs:
            return False
        m = sum(self.costs) / len(self.costs)
        return math.isfinite(m) and m > 0

    @property
    def mean_cost(self) -> float:
        """Mean run time in seconds; ``inf`` if invalid."""
        return sum(self.costs) / len(self.costs) if self.valid else math.inf

    @property
    def gflops(self) -> float:
        """``flops / mean_cost / 1e9``; 0 if invalid, NaN if valid but ``flops`` is unknown."""
        if not self.valid:
            return 0.0
        if self.flops is None:
            return math.nan
        return self.flops / self.mean_cost / 1e9

    @property
    def throughput(self) -> float:
        """The fitness every tuner maximises: ``flops / mean_cost`` (AutoTVM), or
        ``1 / mean_cost`` when ``flops`` is unknown; 0 for an invalid outcome."""
        if not self.valid:
            return 0.0
        return (self.flops if self.flops is not None else 1.0) / self.mean_cost


class Tuner(abc.ABC):
    """Proposes configurations of ``space`` in batches and learns from their outcomes.

    Parameters
    ----------
    space
        The configuration space (``vtatune.space.ConfigSpace``).
    seed
        Seed of every random choice the tuner makes (``None``: fresh entropy).  Two tuners
        built with the same arguments and seed propose the same sequence when told the same
        outcomes.
    init
        Optional hook choosing the feedback-free first batch (see the module docstring).

    Attributes
    ----------
    visited : set[int]
        Every index proposed or told through ``update``; never proposed (again).
    proposed : list[int]
        Proposed indices, in order.
    sources : dict[int, str]
        How each proposed index was chosen: ``"init"``, ``"random"`` (including ε-greedy
        and fill-ins), ``"grid"``, ``"ga"`` or ``"model"``.
    history : list[MeasureOutcome]
        Outcomes in the order they were told.
    """

    #: Registry name (set by subclasses).
    name: ClassVar[str] = ""

    def __init__(self, space: ConfigSpace, *, seed: int | None = None,
                 init: InitFn | None = None):
        if not isinstance(space, ConfigSpace):
            raise ConfigurationError("space",
                                     f"expected a ConfigSpace, got {type(space).__name__}")
        if init is not None and not callable(init):
            raise ConfigurationError("init", f"must be callable, got {type(init).__name__}")
        self.space = space
        self.seed = seed
        self.init = init
        self._seed_seq = np.random.SeedSequence(seed)
        own, hook = self._seed_seq.spawn(2)
        self.rng = np.random.default_rng(own)
        self._init_rng = np.random.default_rng(hook)
        self.visited: set[int] = set()
        self.proposed: list[int] = []
        self.sources: dict[int, str] = {}
        self.history: list[MeasureOutcome] = []
        self._best: MeasureOutcome | None = None
        self._init_done = init is None
        self._queue: list[int] = []
        self._batch: list[int] = []

    # ------------------------------------------------------------------ public protocol
    @property
    def init_size(self) -> int:
        """How many configurations the tuner proposes before it uses any feedback (the
        minimum ``n`` the ``init`` hook is asked for)."""
        return 0

    @property
    def remaining(self) -> int:
        """Configurations neither proposed nor told."""
        return self.space.size - len(self.visited)

    def has_next(self) -> bool:
        """Whether an unvisited configuration is left."""
        return self.remaining > 0

    @property
    def best(self) -> MeasureOutcome | None:
        """The valid outcome with the highest throughput so far (``None`` if none)."""
        return self._best

    def next_batch(self, n: int) -> list[int]:
        """The next ``min(n, remaining)`` indices to measure, all distinct and unvisited."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ConfigurationError("n", f"batch size must be a non-negative integer, got {n!r}")
        n = min(int(n), self.remaining)
        self._batch = []
        if not self._init_done and n > 0:
            self._init_done = True
            if not self.proposed and not self.history:
                self._queue = self._call_init(max(n, self.init_size))
        while self._queue and len(self._batch) < n:
            self._take(self._queue.pop(0), "init")
        if len(self._batch) < n:
            self._propose(n - len(self._batch))
        if len(self._batch) < n:
            self._take_random(n - len(self._batch))
        batch, self._batch = self._batch, []
        return batch

    def update(self, outcomes: Iterable[MeasureOutcome]) -> None:
        """Learn from measured outcomes (of proposed indices, or of any index of the space,
        e.g. records loaded to resume a session; those become visited)."""
        outcomes = list(outcomes)
        size = self.space.size
        for o in outcomes:
            if not isinstance(o, MeasureOutcome):
                raise ConfigurationError("outcomes",
                                         f"expected MeasureOutcome, got {type(o).__name__}")
            if not 0 <= o.index < size:
                raise SpaceError("index", f"{o.index} is out of range for a space of size {size}")
        for o in outcomes:
            self.visited.add(o.index)
            self.history.append(o)
            if o.valid and (self._best is None or o.throughput > self._best.throughput):
                self._best = o
        self._update(outcomes)

    # ------------------------------------------------------------------ for subclasses
    def _spawn_rng(self) -> np.random.Generator:
        """A new generator derived from the tuner's seed (independent of ``self.rng``);
        successive calls give different, reproducible streams."""
        return np.random.default_rng(self._seed_seq.spawn(1)[0])

    @abc.abstractmethod
    def _propose(self, n: int) -> None:
        """Choose up to ``n`` new indices by calling ``self._take(index, source)``; the base
        class fills any shortfall with uniformly random unvisited indices."""

    def _update(self, outcomes: list[MeasureOutcome]) -> None:
        """React to new outcomes (already recorded in ``history``/``visited``/``best``)."""

    def _take(self, index: int, source: str) -> bool:
        """Add ``index`` to the batch being built unless it is visited; True if taken."""
        index = int(index)
        if index in self.visited:
            return False
        self.visited.add(index)
        self.proposed.append(index)
        self.sources[index] = source
        self._batch.append(index)
        return True

    def _take_random(self, k: int, source: str = "random") -> None:
        """Take ``k`` uniformly random unvisited indices (fewer if fewer remain)."""
        if k <= 0:
            return
        for i in self.space.sample(k, self.rng, exclude=self.visited):
            self._take(i, source)

    def _call_init(self, n: int) -> list[int]:
        assert self.init is not None
        out = self.init(self.space, n, self._init_rng)
        try:
            chosen = [int(i) for i in out]
        except (TypeError, ValueError):
            raise ConfigurationError("init",
                                     f"must return a list of indices, got {out!r}") from None
        if len(chosen) > n:
            raise ConfigurationError("init", f"returned {len(chosen)} indices for a batch of {n}")
        if len(set(chosen)) != len(chosen):
            raise ConfigurationError("init", "returned duplicate indices")
        bad = [i for i in chosen if not 0 <= i < self.space.size]
        if bad:
            raise ConfigurationError("init", f"index {bad[0]} is out of range for a space of "
                                             f"size {self.space.size}")
        return chosen


# ---------------------------------------------------------------------------- registry
#: name -> factory (a Tuner subclass or any callable ``(space, **kw) -> Tuner``), or a lazy
#: ``"module:attribute"`` reference resolved on first use (keeps xgboost out of imports).
_REGISTRY: dict[str, Any] = {
    "random": "vtatune.tuning.random:RandomTuner",
    "grid": "vtatune.tuning.grid:GridSearchTuner",
    "ga": "vtatune.tuning.ga:GATuner",
    "xgb": "vtatune.tuning.xgb:XGBTuner",
    "oneshot": "vtatune.autotune.oneshot:OneShotTuner",
    "pruner": "vtatune.tuning.pruner:PrunerTuner",
}


def register_tuner(name: str, factory: Callable[..., Tuner] | str) -> None:
    """Register a tuner factory under ``name`` (replacing any previous one)."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError("name", f"a tuner name must be a non-empty string, got {name!r}")
    _REGISTRY[name] = factory


def tuner_names() -> list[str]:
    """Registered tuner names, sorted."""
    return sorted(_REGISTRY)


def _resolve(name: str) -> Callable[..., Tuner]:
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        _REGISTRY[name] = factory
    return factory


def create_tuner(name: str | Tuner, space: ConfigSpace | None = None, **kwargs: Any) -> Tuner:
    """A tuner by registry name (``"random"``, ``"grid"``, ``"ga"``, ``"xgb"``), or ``name``
    itself if it already is a ``Tuner`` (then ``space`` and ``kwargs`` must be omitted or
    match).  ``kwargs`` go to the tuner's constructor (``seed=``, ``init=``, ...)."""
    if isinstance(name, Tuner):
        if kwargs or (space is not None and space != name.space):
            raise ConfigurationError("tuner", "a Tuner instance takes no space or options")
        return name
    if name not in _REGISTRY:
        raise ConfigurationError("tuner",
                                 f"unknown tuner {name!r}; known: {', '.join(tuner_names())}")
    if space is None:
        raise ConfigurationError("space", "a space is required to create a tuner by name")
    return _resolve(name)(space, **kwargs)
