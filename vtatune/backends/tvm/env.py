"""Importing apache-tvm safely, and building targets the way TVM 0.27 accepts them.

Traps handled here (docs/tvm.md, shared platform notes):
* apache-tvm-ffi 0.1.15.x segfaults when TIR is serialised (MetaSchedule does so constantly):
  we refuse to run on it rather than crash mid-tuning;
* ``import tvm.s_tir.tensor_intrin`` takes 60-75 s (its CUDA part builds hundreds of
  TVMScript functions) and MetaSchedule imports it in every TuneContext; on an llvm target only
  the CPU intrinsics can ever be used, so we register just those (0.2 s);
* target strings with flags are rejected: targets are dicts, and MetaSchedule needs
  ``num-cores``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from typing import Any

# The backend's error classes live in vtatune.errors with every other typed error; they are
# re-exported here, where they were defined before (``from .env import BackendUnavailableError``).
from ...errors import BackendUnavailableError, ConfigurationError
from ...errors import TuningFailedError  # noqa: F401  (re-exported)


def require_device(target: Any) -> None:
    """Refuse to measure on a target whose device this machine does not have."""
    if not gpu_available(target):
        raise BackendUnavailableError(f"no {target.kind.name} device on this machine: code for "
                                      "it can be built (vtatune tvm tasks, tvm.compile) but not "
                                      "measured or run")


#: tvm-ffi versions known to segfault in ToJSONGraph (TIR serialisation).
_BAD_FFI_PREFIXES = ("0.1.15",)
_INSTALL_HINT = "pip install 'vtatune[tvm]'"


def require_tvm() -> Any:
    """Import and return ``tvm``; a clear ``BackendUnavailableError`` when it is missing or is
    paired with a tvm-ffi that crashes MetaSchedule."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            ffi = version("apache-tvm-ffi")
        except PackageNotFoundError:
            ffi = None
        if ffi and ffi.startswith(_BAD_FFI_PREFIXES) and not os.environ.get("VTATUNE_ALLOW_FFI"):
            raise BackendUnavailableError(
                f"apache-tvm-ffi {ffi} segfaults when MetaSchedule serialises TIR; "
                f"install apache-tvm-ffi==0.1.14.post1 ({_INSTALL_HINT} pins it)")
        import tvm
    except ImportError as exc:
        raise BackendUnavailableError(f"the TVM backend needs apache-tvm 0.27: {_INSTALL_HINT} "
                                      f"({exc})") from None
    return tvm


def load_cpu_intrinsics_only() -> None:
    """Register only the CPU tensor intrinsics (x86, arm) instead of the whole
    ``tvm.s_tir.tensor_intrin`` package, unless it is imported already.  MetaSchedule then
    finds the package in ``sys.modules`` and skips the 60-75 s import of its CUDA part.
    Call before the first TuneContext of an llvm target; never for cuda."""
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    require_tvm()
    import tvm.s_tir  # noqa: F401
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return
    pkg = types.ModuleType(name)
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__package__ = name
    pkg.__doc__ = "vtatune: CPU-only view of tvm.s_tir.tensor_intrin (see vtatune.backends.tvm.env)"
    sys.modules[name] = pkg
    try:
        importlib.import_module(name + ".x86")
        importlib.import_module(name + ".arm_cpu")
    except Exception:  # noqa: BLE001 - fall back to the real package
        del sys.modules[name]
        for key in [k for k in sys.modules if k.startswith(name + ".")]:
            del sys.modules[key]


def load_intrinsics_for(target: Any) -> None:
    """Tensor intrinsics a TuneContext of ``target`` may use: the CPU ones only for llvm;
    for cuda the CUDA ones too (also after the CPU-only view was installed)."""
    if str(target.kind.name) == "llvm":
        load_cpu_intrinsics_only()
        return
    name = "tvm.s_tir.tensor_intrin"
    pkg = sys.modules.get(name)
    if pkg is not None and (pkg.__doc__ or "").startswith("vtatune:"):
        importlib.import_module(name + ".cuda")
    else:
        importlib.import_module(name)


def host_cpu() -> str:
    tvm = require_tvm()
    return str(tvm.get_global_func("tvm.codegen.llvm.GetHostCPUName")())


def physical_cores() -> int:
    try:
        import psutil
        n = psutil.cpu_count(logical=False)
    except ImportError:
        n = None
    return int(n or os.cpu_count() or 1)


def target_cores(target: Any) -> int:
    """``num-cores`` of an llvm target, or of a cuda target's llvm host: the worker count for
    building and MetaSchedule's search threads."""
    t = target.host if str(target.kind.name) == "cuda" and target.host is not None else target
    return int(dict(t.attrs).get("num-cores", 1))


def make_target(spec: str | dict | None = "llvm", *, num_cores: int | None = None) -> Any:
    """A ``tvm.target.Target`` from ``"llvm"``, ``"cuda"``, ``"cuda:sm_80"`` or a JSON/dict
    target.  llvm targets get ``num-cores`` (MetaSchedule needs it) and the host ``mcpu``
    unless given; cuda targets get an llvm host and ``arch`` (default sm_80, so code can be
    generated without a GPU)."""
    tvm = require_tvm()
    if spec is None:
        spec = "llvm"
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("{"):
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigurationError("target", f"not JSON: {exc}") from None
        elif text == "llvm":
            spec = {"kind": "llvm"}
        elif text == "cuda" or text.startswith("cuda:"):
            spec = {"kind": "cuda", "arch": text.partition(":")[2] or "sm_80"}
        else:
            raise ConfigurationError("target", f"expected llvm, cuda, cuda:ARCH or a JSON dict, "
                                               f"got {spec!r}")
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigurationError("target", f"expected a dict with a 'kind', got {spec!r}")
    spec = dict(spec)
    kind = spec["kind"]
    if kind == "llvm":
        spec.setdefault("mcpu", host_cpu())
        spec.setdefault("num-cores", int(num_cores or physical_cores()))
        host = None
    elif kind == "cuda":
        spec.setdefault("arch", "sm_80")
        # MetaSchedule's AutoBind / VerifyGPUCode read these; the CUDA defaults of every arch
        # since sm_30 (a GPU's own values win when the spec gives them)
        spec.setdefault("max_threads_per_block", 1024)
        spec.setdefault("max_shared_memory_per_block", 49152)
        host = {"kind": "llvm", "mcpu": host_cpu(), "num-cores": int(num_cores or physical_cores())}
    else:
        raise ConfigurationError("target", f"kind {kind!r} is not supported (llvm, cuda)")
    if num_cores is not None and kind == "llvm":
        spec["num-cores"] = int(num_cores)
    try:
        return tvm.target.Target(spec, host=host) if host else tvm.target.Target(spec)
    except Exception as exc:  # noqa: BLE001 - TVM raises its own error types
        raise ConfigurationError("target", f"TVM rejected {spec!r}: {exc}") from None


def target_json(target: Any) -> dict:
    """The target as a plain dict (as stored in MetaSchedule records)."""
    return json.loads(str(target))


def target_label(target: Any) -> str:
    """Short hardware label of a target for the ``hw`` column: ``llvm-znver4-2c``,
    ``cuda-sm_80``.  Records of different labels are never compared."""
    kind = str(target.kind.name)
    attrs = dict(target.attrs)
    if kind == "llvm":
        return f"llvm-{attrs.get('mcpu', 'generic')}-{int(attrs.get('num-cores', 1))}c"
    if kind == "cuda":
        return f"cuda-{attrs.get('arch', 'unknown')}"
    return kind


def gpu_available(target: Any) -> bool:
    tvm = require_tvm()
    return str(target.kind.name) != "cuda" or bool(tvm.cuda(0).exist)
