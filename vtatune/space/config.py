"""``ConfigSpace`` / ``ConfigEntity``: ordered knobs addressed by one flat index.

Index arithmetic is AutoTVM v0.14's (``ConfigSpace.get``): a mixed-radix number whose
**first-defined knob is the least-significant digit**::

    digit_k = (index // prod(len(knob_j) for j < k)) % len(knob_k)

so an index is only meaningful for a space with the same knobs in the same order.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

from .knobs import BaseKnobSpace, OtherOptionSpace, SpaceError, SplitSpace


@dataclass(frozen=True)
class ConfigEntity:
    """One point of a ``ConfigSpace``.

    ``knobs`` maps knob name -> value (for splits the inner factor, i.e. the tile size);
    ``entity`` is the AutoTVM JSON entity list (``[["tile_b", "sp", [-1, 1]], ...,
    ["oc_nthread", "ot", 2], ...]``).
    """

    index: int
    knobs: dict[str, Any]
    entity: list = field(repr=False)
    code_hash: str | None = None

    def __getitem__(self, name: str) -> Any:
        return self.knobs[name]

    def to_json_dict(self) -> dict[str, Any]:
        """The ``config`` object of an AutoTVM log line (keys in AutoTVM's order)."""
        return {"index": self.index, "code_hash": self.code_hash,
                "entity": [[n, k, list(v) if isinstance(v, (list, tuple)) else v]
                           for n, k, v in self.entity]}

    def __hash__(self) -> int:
        return hash((self.index, tuple(self.knobs.items())))

    @staticmethod
    def from_json_dict(config: Mapping[str, Any], space: "ConfigSpace", *,
                       check_index: bool = True) -> "ConfigEntity":
        """Parse a log line's ``config`` against ``space`` (see ``ConfigSpace.from_json_dict``)."""
        return space.from_json_dict(config, check_index=check_index)


class EntityNote(NamedTuple):
    """Something ``ConfigSpace.apply_entity`` applied differently from how the log wrote it.

    ``reason`` is ``split_outer_ignored`` (a split whose factors do not multiply to the axis
    length: its inner factor applied, as AutoTVM's ``SplitEntity.apply`` does) or
    ``index_mismatch`` (the log's index is not the index of the applied entity); ``field``
    names the knob or ``index``."""

    reason: str
    field: str
    message: str


#: ``EntityNote.reason`` values.
SPLIT_OUTER_IGNORED = "split_outer_ignored"
INDEX_MISMATCH = "index_mismatch"


def _as_rng(rng: Any) -> random.Random:
    """``None``/int seed/``random.Random``/numpy ``Generator`` -> a ``random.Random``."""
    if isinstance(rng, random.Random):
        return rng
    if rng is None or (isinstance(rng, int) and not isinstance(rng, bool)):
        return random.Random(rng)
    if hasattr(rng, "integers"):  # numpy.random.Generator: derive a seed, stay pure Python
        return random.Random(int(rng.integers(0, 2**63 - 1)))
    raise SpaceError("rng", "expected None, an int seed, random.Random or a numpy Generator, "
                            f"got {type(rng).__name__}")


class ConfigSpace:
    """An ordered set of knobs (definition order = index digit order)."""

    def __init__(self, knobs: Iterable[BaseKnobSpace] = (), *, name: str = ""):
        self.name = name
        self._knobs: dict[str, BaseKnobSpace] = {}
        for k in knobs:
            self._add(k)

    # ------------------------------------------------------------------ definition
    def _add(self, knob: BaseKnobSpace) -> BaseKnobSpace:
        if knob.name in self._knobs:
            raise SpaceError(knob.name, "knob defined twice")
        self._knobs[knob.name] = knob
        return knob

    def define_split(self, name: str, length: int) -> SplitSpace:
        """A two-way split of an axis of ``length`` (``"factors"`` policy)."""
        return self._add(SplitSpace(name, length))  # type: ignore[return-value]

    def define_knob(self, name: str, values: Iterable[Any]) -> OtherOptionSpace:
        return self._add(OtherOptionSpace(name, list(values)))  # type: ignore[return-value]

    # ------------------------------------------------------------------ structure
    @property
    def knobs(self) -> dict[str, BaseKnobSpace]:
        """Knob name -> knob space, in definition order (AutoTVM's ``space_map``)."""
        return dict(self._knobs)

    space_map = knobs

    @property
    def names(self) -> list[str]:
        return list(self._knobs)

    @property
    def dims(self) -> list[int]:
        """Number of candidates of each knob, in definition order."""
        return [len(k) for k in self._knobs.values()]

    @property
    def size(self) -> int:
        """Number of configurations (product of the knob sizes; an exact Python int)."""
        n = 1
        for d in self.dims:
            n *= d
        return n

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, name: str) -> BaseKnobSpace:
        return self._knobs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._knobs

    def __iter__(self) -> Iterator[ConfigEntity]:
        """Every configuration in index order (use ``names``/``knobs`` for the knobs)."""
        for i in range(self.size):
            yield self.get(i)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ConfigSpace)
                and list(self._knobs.values()) == list(other._knobs.values()))

    def __repr__(self) -> str:
        body = ", ".join(f"{n}:{len(k)}" for n, k in self._knobs.items())
        return f"ConfigSpace({self.name + ': ' if self.name else ''}{body}; size={self.size})"

    # ------------------------------------------------------------------ index arithmetic
    def _check_index(self, index: Any) -> int:
        if not isinstance(index, int) or isinstance(index, bool):
            raise SpaceError("index", f"must be an integer, got {index!r}")
        if not 0 <= index < self.size:
            raise SpaceError("index", f"{index} is out of range for a space of size {self.size}"
                                      f"{' (' + self.name + ')' if self.name else ''}")
        return index

    def point2knob(self, index: int) -> list[int]:
        """Candidate position of every knob for ``index`` (first knob = lowest digit)."""
        t = self._check_index(index)
        digits = []
        for d in self.dims:
            digits.append(t % d)
            t //= d
        return digits

    def knob2point(self, digits: Iterable[int]) -> int:
        """Inverse of ``point2knob``."""
        digits = list(digits)
        if len(digits) != len(self._knobs):
            raise SpaceError(
                "knobs", f"expected {len(self._knobs)} knob positions, got {len(digits)}")
        index, stride = 0, 1
        for (name, knob), d in zip(self._knobs.items(), digits):
            if not isinstance(d, int) or not 0 <= d < len(knob):
                raise SpaceError(name, f"candidate position {d!r} out of range 0..{len(knob) - 1}")
            index += d * stride
            stride *= len(knob)
        return index

    def index_of(self, values: Mapping[str, Any]) -> int:
        """The index of the configuration with these knob values (split: inner factor).

        Every knob must be given; unknown names are an error.
        """
        unknown = [k for k in values if k not in self._knobs]
        if unknown:
            raise SpaceError(unknown[0], f"unknown knob; knobs: {', '.join(self._knobs)}")
        missing = [k for k in self._knobs if k not in values]
        if missing:
            raise SpaceError(missing[0], "missing knob value")
        return self.knob2point(k.index_of(values[n]) for n, k in self._knobs.items())

    def get(self, index: int) -> ConfigEntity:
        """The configuration at ``index``."""
        digits = self.point2knob(index)
        knobs, entity = {}, []
        for (name, knob), d in zip(self._knobs.items(), digits):
            knobs[name] = knob[d]
            entity.append(knob.entity(d))
        return ConfigEntity(index=index, knobs=knobs, entity=entity)

    # ------------------------------------------------------------------ sampling / graph
    def sample(self, n: int, rng: Any = None, *, exclude: Iterable[int] = ()) -> list[int]:
        """``n`` distinct random indices (without replacement), in draw order.

        ``rng`` is ``None``, an int seed (reproducible), a ``random.Random`` or a numpy
        ``Generator``.  Indices in ``exclude`` are never returned.  If fewer than ``n``
        configurations remain, all of them are returned (shuffled) — no error.  Works for
        huge spaces: nothing of size ``self.size`` is materialised when ``n`` is small.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise SpaceError("n", f"sample size must be a non-negative integer, got {n!r}")
        r = _as_rng(rng)
        size = self.size
        excluded = {i for i in exclude if isinstance(i, int) and 0 <= i < size}
        remaining = size - len(excluded)
        if n >= remaining or 2 * (n + len(excluded)) > size:
            # Small space relative to the request: enumerate what remains and shuffle.
            pool = [i for i in range(size) if i not in excluded]
            r.shuffle(pool)
            return pool[:n]
        # Rejection sampling: at most half the space is taken, so < 2 draws per pick on average.
        taken: set[int] = set()
        out: list[int] = []
        while len(out) < n:
            i = r.randrange(size)
            if i in taken or i in excluded:
                continue
            taken.add(i)
            out.append(i)
        return out

    def neighbours(self, index: int) -> list[int]:
        """Indices of the configurations that differ from ``index`` in exactly one knob.

        Ordered by knob (definition order), then by candidate; there are
        ``sum(len(knob) - 1)`` of them.
        """
        digits = self.point2knob(index)
        out, stride = [], 1
        for d, size in zip(digits, self.dims):
            base = index - d * stride
            out.extend(base + c * stride for c in range(size) if c != d)
            stride *= size
        return out

    # ------------------------------------------------------------------ log records
    def from_json_dict(self, config: Mapping[str, Any], *,
                       check_index: bool = True) -> ConfigEntity:
        """Parse the ``config`` object of an AutoTVM log line against this space.

        Split values may be ``[-1, f]`` or resolved ``[outer, inner]`` (TopHub) with
        ``outer * inner`` = the axis length.  Knob names and kinds must match this space (any
        order).  With ``check_index`` the record's ``index`` must equal the index its entity
        decodes to (``SpaceError`` on "index" otherwise); a missing/``null`` index is filled
        in.  This is the strict reading; ``apply_entity`` applies a line as AutoTVM does
        (non-multiplying splits by their inner factor, any index), with notes.
        """
        index = self._entity_index(config, None)
        given = config.get("index")
        if given is not None and check_index:
            if not isinstance(given, int) or isinstance(given, bool):
                raise SpaceError("index", f"must be an integer, got {given!r}")
            if given != index:
                decoded = self.get(given).knobs if 0 <= given < self.size else "out of range"
                raise SpaceError(
                    "index", f"record index {given} does not match its entity, which is index "
                             f"{index} in this space ({self.get(index).knobs}); index {given} "
                             f"decodes to {decoded}")
        e = self.get(index)
        return ConfigEntity(index=index, knobs=e.knobs, entity=e.entity,
                            code_hash=config.get("code_hash"))

    def apply_entity(self, config: Mapping[str, Any]) -> tuple[ConfigEntity, list[EntityNote]]:
        """The configuration AutoTVM's ``ApplyHistoryBest`` runs for a log line's ``config``,
        and notes of where the line and that configuration disagree.

        AutoTVM applies the *entity*, never the index: the returned ``ConfigEntity`` is the
        point of this space whose knob values are the entity's (``index`` = that point's
        index).  A two-way split ``[outer, inner]`` is applied as ``SplitEntity.apply`` does —
        ``split(axis, factor=inner)``, the outer factor ignored — so a split whose factors do
        not multiply to the axis length takes the value ``inner`` (the outer factor is implied
        by the axis length) with an ``split_outer_ignored`` note; an inner factor that does not
        divide the axis length is no point of this space (``SpaceError`` naming the knob).  A
        log index other than the applied point's gives an ``index_mismatch`` note.  Knob names
        and kinds must match the space, as for ``from_json_dict``.
        """
        notes: list[EntityNote] = []
        index = self._entity_index(config, notes)
        given = config.get("index")
        if given is not None and (not isinstance(given, int) or isinstance(given, bool)):
            raise SpaceError("index", f"must be an integer, got {given!r}")
        if given is not None and given != index:
            notes.append(EntityNote(INDEX_MISMATCH, "index", (
                f"log index {given} is not the index of its entity; entity applied "
                f"(index {index})")))
        e = self.get(index)
        return (ConfigEntity(index=index, knobs=e.knobs, entity=e.entity,
                             code_hash=config.get("code_hash")), notes)

    def _entity_index(self, config: Mapping[str, Any], notes: list[EntityNote] | None) -> int:
        """The index of the point a log ``config``'s entity names; with ``notes`` (a list) a
        non-multiplying split is applied by its inner factor and noted there, without it
        such a split is a ``SpaceError``."""
        if not isinstance(config, Mapping):
            raise SpaceError("config", f"expected an object, got {type(config).__name__}")
        ent = config.get("entity")
        if not isinstance(ent, (list, tuple)):
            raise SpaceError("entity", f"expected a list of [name, kind, value], got {ent!r}")
        positions: dict[str, int] = {}
        for item in ent:
            if not isinstance(item, (list, tuple)) or len(item) != 3:
                raise SpaceError("entity", f"expected [name, kind, value], got {item!r}")
            name, kind, value = item
            if not isinstance(name, str):
                raise SpaceError("entity", f"a knob name is a string, got {name!r}")
            if name not in self._knobs:
                raise SpaceError(str(name), f"knob not in this space ({', '.join(self._knobs)})")
            if name in positions:
                raise SpaceError(name, "knob given twice in the entity")
            knob = self._knobs[name]
            if kind != knob.kind:
                raise SpaceError(name, f"kind {kind!r} does not match the space's {knob.kind!r}")
            if notes is not None and isinstance(knob, SplitSpace):
                value = self._applied_split(knob, value, notes)
            positions[name] = knob.index_of_entity(value)
        missing = [k for k in self._knobs if k not in positions]
        if missing:
            raise SpaceError(missing[0], "knob missing from the entity")
        return self.knob2point(positions[k] for k in self._knobs)

    @staticmethod
    def _applied_split(knob: SplitSpace, value: Any, notes: list[EntityNote]) -> Any:
        """``[outer, inner]`` as ``SplitEntity.apply`` uses it: ``[-1, inner]``, noted when
        ``outer * inner`` is not the axis length (malformed values are left to the knob)."""
        if (isinstance(value, (list, tuple)) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            outer, inner = value
            if outer != -1 and inner >= 1 and outer * inner != knob.length:
                if knob.length % inner == 0:
                    notes.append(EntityNote(SPLIT_OUTER_IGNORED, knob.name, (
                        f"split {list(value)} does not multiply to the axis length "
                        f"{knob.length}: applied as AutoTVM's SplitEntity does, inner factor "
                        f"{inner} (outer {knob.length // inner}), outer {outer} ignored")))
                return [-1, inner]
        return value

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size,
                "knobs": [k.to_dict() for k in self._knobs.values()]}
