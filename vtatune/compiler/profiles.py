"""Compiler profiles: which configurations the compiler accepts.

* ``tvm-0.14`` (default) — the original stack's verdicts, failures included.  Besides the
  checks every profile shares (SRAM, 2-D DMA patterns, micro-op kernels, field widths), TVM's
  ``InjectCopyIntrin`` pass (``MatchCopyPattern``) refuses two kinds of DMA copy that
  vtatune's own lowering can express (``copy_pattern.py``): a copy whose body a bound check
  guards (every virtual-thread split that does not divide its axis), and a padded input
  copy whose pad condition names no copy loop (an input tile one row or one column wide).
  The rule is the same in the TVM 0.7-era stack (its pass has the same two tests).
* ``native`` — vtatune's own lowering: the guarded tiles of a ragged thread split become
  a host-side bound check around the tile, and one-row/one-column padded tiles are plain
  padded loads.  Every configuration it accepts beyond ``tvm-0.14`` is checked on fsim
  against numpy and by tsim's race check (``scripts/profile_safety.py``, docs/compiler.md).

The profile is part of a record's runner identity (``measure.runners``), like the token scheme.
"""
from __future__ import annotations

from typing import Any

from ..errors import check_known

PROFILES = ("tvm-0.14", "native")
DEFAULT_PROFILE = "tvm-0.14"


def check_profile(profile: Any) -> str:
    """A profile name, refused (``ConfigurationError`` on ``profile``) unless known."""
    return check_known("profile", profile, PROFILES, "compiler profile")
