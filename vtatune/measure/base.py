"""The runner protocol (``Runner``) and what one run returns (``Execution``): the base of
every measurement target (``runners.py``: fsim, tsim; ``board_runner.py``: boards), in a
module of its own so that targets in other modules need not import ``runners``."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..compiler.program import Program
from ..sim.fsim import RunResult
from ..task import VtaTask


@dataclass
class Execution:
    """One run of a program on a runner."""

    output: np.ndarray        # in the plain layout of ``compiler.reference``
    cost: float               # seconds, as the runner's ``cost_meaning`` says
    wall: float               # host wall time of the run (seconds)
    result: RunResult         # the simulator's counters (and timing, for tsim)
    extra: dict = field(default_factory=dict)


class Runner(abc.ABC):
    """A measurement target."""

    #: target name as users write it (``--target``)
    kind: ClassVar[str] = ""
    #: what ``Execution.cost`` means
    cost_meaning: ClassVar[str] = ""

    @abc.abstractmethod
    def label(self, task: VtaTask) -> str:
        """The ``runner`` column of this runner's records of ``task``."""

    @abc.abstractmethod
    def execute(self, program: Program, inputs: dict[str, np.ndarray], *,
                functional: bool = True, trace: bool = False) -> Execution:
        """Run ``program`` on ``inputs``.  ``functional=False`` lets a timing runner skip the
        data path when no output is wanted; ``trace`` asks for a pipeline trace."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))
