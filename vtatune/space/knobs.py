"""Knob spaces (AutoTVM ``TransformSpace`` subset): ``SplitSpace`` and ``OtherOptionSpace``.

Only what the VTA templates use: two-way splits under the default ``"factors"`` policy and
categorical knobs from ``define_knob``.  Each knob is an ordered list of candidates; its JSON
form (the ``entity`` items of an AutoTVM log line) uses the kind codes ``"sp"``/``"ot"``.
"""
from __future__ import annotations

import abc
import math
from typing import Any, Sequence

from ..errors import ConfigurationError


class SpaceError(ConfigurationError):
    """A bad configuration index, knob value or log ``config`` entry.

    ``field`` names the knob (``tile_h``) or the part of the record (``index``, ``entity``).
    """


def get_factors(n: int) -> list[int]:
    """All divisors of ``n`` in ascending order (AutoTVM's ``get_factors``)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise SpaceError("length", f"an axis length must be a positive integer, got {n!r}")
    small, large = [], []
    for i in range(1, math.isqrt(n) + 1):
        if n % i == 0:
            small.append(i)
            if i != n // i:
                large.append(n // i)
    return small + large[::-1]


class BaseKnobSpace(abc.ABC):
    """One knob: a name and an ordered tuple of candidate values."""

    kind: str = ""

    def __init__(self, name: str, candidates: Sequence[Any]):
        if not candidates:
            raise SpaceError(name, "a knob needs at least one candidate")
        self.name = name
        self.candidates: tuple[Any, ...] = tuple(candidates)

    def __len__(self) -> int:
        return len(self.candidates)

    def __getitem__(self, i: int) -> Any:
        return self.candidates[i]

    def __iter__(self):
        return iter(self.candidates)

    def index_of(self, value: Any) -> int:
        """Position of a candidate value (``SpaceError`` naming the knob if absent)."""
        for i, c in enumerate(self.candidates):
            if c == value and type(c) is type(value):
                return i
        raise SpaceError(
            self.name, f"{value!r} is not a candidate; candidates: {list(self.candidates)}")

    @abc.abstractmethod
    def entity(self, i: int) -> list:
        """The AutoTVM JSON entity item ``[name, kind, value]`` of candidate ``i``."""

    @abc.abstractmethod
    def index_of_entity(self, value: Any) -> int:
        """Position of the candidate an AutoTVM entity value denotes."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "candidates": list(self.candidates)}

    def __eq__(self, other: object) -> bool:
        return (type(self) is type(other) and self.name == other.name  # type: ignore[attr-defined]
                and self.candidates == other.candidates)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name, self.candidates))


class SplitSpace(BaseKnobSpace):
    """``define_split(name, axis, num_outputs=2)`` with the default ``"factors"`` policy.

    Candidates are the inner factors ``f`` (tile sizes): every divisor of ``length`` in
    ascending order.  The AutoTVM entity of ``f`` is ``[-1, f]`` (outer factor inferred).
    """

    kind = "sp"

    def __init__(self, name: str, length: int):
        self.length = length
        super().__init__(name, get_factors(length))

    def entity(self, i: int) -> list:
        return [self.name, self.kind, [-1, self.candidates[i]]]

    def index_of_entity(self, value: Any) -> int:
        """Accepts ``[-1, f]`` (AutoTVM v0.14) and resolved ``[length // f, f]`` (TopHub)."""
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise SpaceError(self.name, "a two-way split entity must be [outer, inner] integers, "
                                        f"got {value!r}")
        outer, inner = value
        if inner < 1 or self.length % inner:
            raise SpaceError(
                self.name, f"inner factor {inner} does not divide the axis length {self.length}")
        if outer != -1 and outer * inner != self.length:
            raise SpaceError(self.name, f"split {list(value)} does not multiply to the axis "
                                        f"length {self.length}")
        return self.candidates.index(inner)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "length": self.length}

    def __repr__(self) -> str:
        return f"SplitSpace({self.name!r}, length={self.length}) len={len(self)}"


class OtherOptionSpace(BaseKnobSpace):
    """``define_knob(name, values)``: a categorical knob with the listed values."""

    kind = "ot"

    def entity(self, i: int) -> list:
        return [self.name, self.kind, self.candidates[i]]

    def index_of_entity(self, value: Any) -> int:
        return self.index_of(value)

    def __repr__(self) -> str:
        return f"OtherOptionSpace({self.name!r}, {list(self.candidates)})"
