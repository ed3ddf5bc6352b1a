"""TVM target strings of VTA (``ext_dev -keys=vta,cpu -device=vta -model=NAME``).

``HwConfig.tvm_target`` writes them; every reader of a target string (AutoTVM task inputs,
imported log lines) parses them here, so the ``-model=`` rule has one definition.
"""
from __future__ import annotations

import re

from ..errors import ConfigurationError

#: ``-model=NAME`` anywhere in a target string.
MODEL_OPTION = re.compile(r"(?:^|\s)-model=(\S+)")


class TargetError(ConfigurationError):
    """A TVM target string that is not a VTA target."""


def model_option(target: str) -> str | None:
    """The ``-model=`` of any TVM target string, or None if it has none."""
    m = MODEL_OPTION.search(target) if isinstance(target, str) else None
    return m.group(1) if m else None


def is_vta_target(target: str) -> bool:
    """Whether ``target`` is a VTA target (``ext_dev ...``, old TopHub forms included)."""
    return isinstance(target, str) and target.split()[:1] == ["ext_dev"]


def model_of_target(target: str) -> str:
    """The ``-model=`` of a VTA target string (old TopHub forms accepted); ``TargetError``
    (field ``target``) for anything else."""
    if not isinstance(target, str):
        raise TargetError("target", f"expected a target string, got {target!r}")
    if not is_vta_target(target):
        raise TargetError(
            "target", f"not a VTA target (expected 'ext_dev ... -model=...'): {target!r}")
    model = model_option(target)
    if model is None:
        raise TargetError("target", f"no -model= in target {target!r}")
    return model
