"""TVM's ``InjectCopyIntrin`` (``MatchCopyPattern``), the two tests the ``tvm-0.14`` profile
adds to the DMA lowering (src/tir/transforms/inject_copy_intrin.cc, v0.14.0).

Every DMA statement is a loop nest whose body must be a single ``BufferStore``; its value may
be a pad ``if_then_else(cond, load, pad)``, and then ``DetectClipBound`` must turn ``cond``
into a [min, max] per copy loop.

1. **Guarded body.**  TE's ``MakeBoundCheck`` wraps a stage's innermost statement in
   ``if (likely(...))`` when its iteration can leave its tensor: the output stage when one of
   its splits does not divide (a ``cthread`` split of ``n`` tiles by 2 with ``n`` odd), and
   every stage attached inside that split whose region moves with the split axis (at the
   extra "ghost" tile the region starts past the tensor's end).  The loop-stripping match
   then finds an ``IfThenElse``: "the body is not a 'BufferStoreNode'".
2. **Clip bound.**  ``DetectClipBound`` accepts a conjunct only if it mentions exactly one
   copy-loop variable.  TE drops unit loops, so when a padded axis of the input tile has
   extent 1 (one row: ``kernel_h == 1`` and ``tile_h`` inner 1) the row test mentions only
   the outer tile variable: "the size of clip bound is 0".  When even the tile variable is
   gone (a single tile) the test is a constant: the simplifier folds the select to the pad
   value and no load is left ("the 'BufferLoadNode' of body is a nullptr").

Statements are checked in program order; the first failure is the pass's ``ICHECK``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .dma import lowering_error


@dataclass(frozen=True)
class PadAxis:
    """One padded axis of a padded copy: its copy-loop extent and whether the tile's
    position along it is a variable (a loop or thread with more than one value)."""

    name: str
    extent: int
    tile_var: bool


@dataclass(frozen=True)
class CopyStmt:
    name: str                        # "pad_data -> local.inp_buffer" ...
    guarded: bool                    # a bound check wraps the store
    pad_axes: tuple[PadAxis, ...] = ()


def _fail(reason: str, stmt: CopyStmt, error: str, why: str):
    return lowering_error(reason, f"Cannot match copy pattern of {stmt.name}. The error is "
                                  f"{error} ({why})")


def match_copy_pattern(stmt: CopyStmt) -> None:
    """Raise the pass's failure for ``stmt``, or return when it lowers."""
    if stmt.guarded:
        raise _fail("copy_pattern_guarded", stmt, "the body is not a 'BufferStoreNode'",
                    "a bound check of a virtual-thread split that does not divide its axis "
                    "guards the copy")
    # a constant pad test folds the whole select first (earlier Simplify passes)
    for axis in stmt.pad_axes:
        if axis.extent == 1 and not axis.tile_var:
            raise _fail("copy_pattern_no_load", stmt, "the 'BufferLoadNode' of body is a nullptr.",
                        f"the only tile's single padded {axis.name[:-1]} lies in the padding")
    for axis in stmt.pad_axes:
        if axis.extent == 1:
            raise _fail("copy_pattern_clip_bound", stmt, "the size of clip bound is 0.",
                        f"the pad condition on {axis.name} names no copy loop: the tile has one "
                        f"padded {axis.name[:-1]}")


def check_copies(stmts) -> None:
    for stmt in stmts:
        match_copy_pattern(stmt)
