"""Models into Relax, and Relax into tuning tasks ("kernels").

A model spec is a zoo name with options (``resnet18``, ``resnet18:res=64,width=0.5``; see
``vtatune tvm models``) or the path of an ``.onnx`` file.  Zoo models are PyTorch modules
built in code (``zoo.py``) and imported with ``torch.export`` + Relax's
``from_exported_program``; ONNX files go through ``relax.frontend.onnx.from_onnx``.

A kernel is one fused TIR function of the model after Relax's LegalizeOps/FuseOps/FuseTIR
(MetaSchedule's task).  Its *class* is the fused-operator pattern without shapes: the task
name with the numeric suffixes FuseOps appends to tell shapes apart removed
(``fused_conv2d3_add2_relu1`` -> ``fused_conv2d_add_relu``), which is the analogue of the
Ansor task description the transfer-tuning artifact uses as its class.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigurationError
from .env import BackendUnavailableError, require_tvm

_SUFFIX = re.compile(r"(?<=[A-Za-z])\d+(?=_|$)")


def kernel_class(task_name: str) -> str:
    """Shape-independent class of a fused kernel from its task name (module docstring).
    Digits inside an operator name (``conv2d``, ``max_pool2d``) are kept: only a run of
    digits that ends a name component is a FuseOps de-duplication suffix."""
    return _SUFFIX.sub("", task_name)


@dataclass
class Kernel:
    """One tuning task of a model."""
    name: str        # task name (unique within the model)
    klass: str       # kernel class (fused-operator pattern, shape-independent)
    weight: int      # how many times the model calls it
    mod: Any         # IRModule with the PrimFunc ("main")
    flops: float = 0.0

    def describe(self) -> dict:
        return {"name": self.name, "class": self.klass, "weight": self.weight,
                "flops": self.flops}


@dataclass
class ImportedModel:
    """A Relax model with its example inputs (numpy) and where it came from."""
    spec: str
    mod: Any
    inputs: list = field(default_factory=list)       # numpy arrays, in parameter order
    reference: Any = None                            # framework output for the inputs (numpy)

    @property
    def name(self) -> str:
        return self.spec


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,key=value"`` -> (name, options) with values typed by the zoo's
    defaults.  Raises ``ConfigurationError`` naming the bad part."""
    from . import zoo

    if not isinstance(spec, str) or not spec.strip():
        raise ConfigurationError("model", f"expected a model name or an .onnx path, got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    if name not in zoo.MODELS:
        raise ConfigurationError("model", f"unknown model {name!r} (known: "
                                          f"{', '.join(sorted(zoo.MODELS))}; or an .onnx file)")
    defaults = zoo.MODELS[name].defaults
    opts: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq:
            raise ConfigurationError("model", f"option {part!r} of {spec!r} is not key=value")
        if key not in defaults:
            raise ConfigurationError(key, f"{name} has no option {key!r} (options: "
                                          f"{', '.join(sorted(defaults))})")
        kind = type(defaults[key])
        try:
            opts[key] = kind(value) if kind is not bool else value.lower() in ("1", "true", "yes")
        except ValueError:
            raise ConfigurationError(key, f"expected {kind.__name__}, got {value!r}") from None
    return name, opts


def load_model(spec: str, *, with_reference: bool = True) -> ImportedModel:
    """Import a zoo model or an ONNX file into Relax (weights bound as constants)."""
    require_tvm()
    if spec.lower().endswith(".onnx"):
        return _load_onnx(spec)
    name, opts = parse_spec(spec)
    from . import zoo

    model, example = zoo.build(name, **opts)
    try:
        import torch
        from tvm.relax.frontend.torch import from_exported_program
    except ImportError as exc:
        raise BackendUnavailableError(f"model import needs torch: pip install "
                                      f"'vtatune[models]' ({exc})") from None
    with torch.no_grad():
        ep = torch.export.export(model, tuple(example))
        ref = model(*example).numpy() if with_reference else None
    mod = from_exported_program(ep, keep_params_as_input=False)
    return ImportedModel(spec=spec, mod=mod, inputs=[t.numpy() for t in example], reference=ref)


def _load_onnx(path: str) -> ImportedModel:
    p = Path(path)
    if not p.is_file():
        raise ConfigurationError("model", f"{path}: no such ONNX file")
    try:
        import onnx
        from tvm.relax.frontend.onnx import from_onnx
    except ImportError as exc:
        raise BackendUnavailableError(f"ONNX import needs onnx: pip install 'vtatune[models]' "
                                      f"({exc})") from None
    try:
        proto = onnx.load(str(p))
    except Exception as exc:  # noqa: BLE001 - protobuf raises assorted errors
        raise ConfigurationError("model", f"{path}: not an ONNX model ({exc})") from None
    init = {i.name for i in proto.graph.initializer}
    rng = np.random.default_rng(0)
    inputs = []
    for vi in proto.graph.input:
        if vi.name in init:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.dim_value > 0 else 1 for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.issubdtype(dtype, np.integer):
            inputs.append(rng.integers(0, 2, size=shape).astype(dtype))
        else:
            inputs.append(rng.standard_normal(shape).astype(dtype))
    try:
        mod = from_onnx(proto, keep_params_in_input=False)
    except Exception as exc:  # noqa: BLE001
        raise ConfigurationError("model", f"{path}: the Relax ONNX frontend failed: {exc}") from None
    return ImportedModel(spec=str(p), mod=mod, inputs=inputs, reference=None)


def fused(mod: Any) -> Any:
    """The module after Relax's "zero" pipeline (LegalizeOps, FuseOps, FuseTIR): what task
    extraction and ``compile_relax`` see."""
    from tvm import relax
    return relax.get_pipeline("zero")(mod)


def extract_kernels(model: ImportedModel, target: Any) -> list[Kernel]:
    """The model's tuning tasks, in MetaSchedule's extraction order."""
    from tvm.s_tir import meta_schedule as ms

    tasks = ms.relax_integration.extract_tasks(fused(model.mod), target)
    out = []
    for t in tasks:
        mod = t.dispatched[0]
        try:
            flops = float(ms.utils._ffi_api.EstimateFlops(mod))  # not every build exposes it
        except Exception:  # noqa: BLE001
            flops = _estimate_flops(mod)
        out.append(Kernel(name=str(t.task_name), klass=kernel_class(str(t.task_name)),
                          weight=int(t.weight), mod=mod, flops=flops))
    return out


def _estimate_flops(mod: Any) -> float:
    try:
        from tvm.s_tir.analysis import estimate_tir_flops
        return float(estimate_tir_flops(mod))
    except Exception:  # noqa: BLE001
        return 0.0
