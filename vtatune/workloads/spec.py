"""Spec strings: the text form of a workload (grammar in docs/workloads.md)::

    conv2d:N,H,W,CI,CO,K,PAD,STRIDE
    group_conv2d:N,H,W,CI,CO,GROUPS,K,PAD,STRIDE
    conv2d_transpose:N,H,W,CI,CO,K,PAD,STRIDE
    dense:N,IN,OUT
    ...;epilogue=bias|relu|shift_clip

``N`` is an integer or ``B`` (the hardware BATCH); ``K`` is ``K`` or ``KHxKW``; ``PAD`` and
``STRIDE`` are one value or ``H/W`` (``PAD`` also ``T/L/B/R`` if top = bottom and
left = right).  Every malformed or unsupported description raises ``WorkloadError`` whose
``field`` names the offending spec field.  The canonical text of a workload
(``format_spec``) lives with ``Workload`` itself.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from .workload import (CONV2D, CONV2D_TRANSPOSE, DENSE, EPILOGUES, GROUP_CONV2D, SPEC_TEMPLATES,
                       TEMPLATES, Workload, WorkloadError, format_spec)

_SHORT = {v: k for k, v in SPEC_TEMPLATES.items()}
SPEC_FIELDS = {
    CONV2D: ("N", "H", "W", "CI", "CO", "K", "PAD", "STRIDE"),
    GROUP_CONV2D: ("N", "H", "W", "CI", "CO", "GROUPS", "K", "PAD", "STRIDE"),
    CONV2D_TRANSPOSE: ("N", "H", "W", "CI", "CO", "K", "PAD", "STRIDE"),
    DENSE: ("N", "IN", "OUT"),
}
#: Workload field -> spec field (to re-label errors raised by ``Workload``).
_TO_SPEC = {"batch": "N", "height": "H", "width": "W", "in_channels": "CI", "out_channels": "CO",
            "kernel_h": "K", "kernel_w": "K", "pad_h": "PAD", "pad_w": "PAD",
            "stride_h": "STRIDE", "stride_w": "STRIDE", "groups": "GROUPS", "epilogue": "epilogue"}
_INT = re.compile(r"[0-9]+\Z")


def _relabel(exc: WorkloadError, template: str) -> WorkloadError:
    field = _TO_SPEC.get(exc.field, exc.field)
    if template == DENSE:
        field = {"CI": "IN", "CO": "OUT"}.get(field, field)
    msg = str(exc)[len(exc.field) + 2:] if str(exc).startswith(exc.field + ": ") else str(exc)
    return WorkloadError(field, msg)


def _int(text: str, field: str, *, minimum: int = 1) -> int:
    t = text.strip()
    if not _INT.match(t):
        raise WorkloadError(field, f"expected an integer, got {text.strip()!r}")
    v = int(t)
    if v < minimum:
        raise WorkloadError(
            field, f"must be {'positive' if minimum == 1 else '>= ' + str(minimum)}, got {v}")
    return v


def _pair(text: str, field: str, *, minimum: int, seps: str) -> tuple[int, int]:
    form = {"K": "K or KHxKW", "PAD": "PAD or PH/PW", "STRIDE": "STRIDE or SH/SW"}[field]
    if not re.fullmatch(rf"\s*[0-9]+(\s*[{re.escape(seps)}]\s*[0-9]+)*\s*", text):
        raise WorkloadError(field, f"expected {form} (integers), got {text.strip()!r}")
    parts = re.split(f"[{re.escape(seps)}]", text.strip())
    if len(parts) == 1:
        v = _int(parts[0], field, minimum=minimum)
        return v, v
    if len(parts) == 2:
        return _int(parts[0], field, minimum=minimum), _int(parts[1], field, minimum=minimum)
    if field == "PAD" and len(parts) == 4:
        t, l, b, r = (_int(p, field, minimum=minimum) for p in parts)
        if (t, l) != (b, r):
            raise WorkloadError(field, f"asymmetric padding top/left/bottom/right {t}/{l}/{b}/{r} "
                                       "is unsupported (VTA pads top = bottom and left = right)")
        return t, l
    raise WorkloadError(field, f"expected {form}, got {text.strip()!r}")


def check_tvm_limits(w: Workload, *, pad_field: str = "PAD") -> None:
    """Restrictions of the TVM VTA templates that ``Workload`` itself does not express."""
    if w.template in (CONV2D, GROUP_CONV2D) and w.pad_h == 0 and w.pad_w != 0:
        raise WorkloadError(pad_field, f"padding {w.pad_h}/{w.pad_w}: the VTA conv templates "
                                       "pad only when the row padding is non-zero (pad_w would "
                                       "be ignored)")
    if w.template == CONV2D_TRANSPOSE:
        if w.pad_h > w.kernel_h - 1 or w.pad_w > w.kernel_w - 1:
            raise WorkloadError(pad_field, f"conv2d_transpose padding {w.pad_h}/{w.pad_w} must "
                                           f"be at most kernel - 1 "
                                           f"({w.kernel_h - 1}/{w.kernel_w - 1})")
        if w.out_height < 1 or w.out_width < 1:
            raise WorkloadError(pad_field, "conv2d_transpose output would be empty")


# ---------------------------------------------------------------------- spec strings
def parse_spec(text: str) -> Workload:
    """A ``Workload`` from a spec string (batch ``None`` when ``N`` is ``B``)."""
    if not isinstance(text, str) or ":" not in text:
        raise WorkloadError(
            "spec", f"expected TEMPLATE:FIELDS (e.g. conv2d:1,56,56,64,64,3,1,1), got {text!r}")
    head, _, rest = text.strip().partition(":")
    key = head.strip().lower()
    template = SPEC_TEMPLATES.get(key) or (key if key in TEMPLATES else None)
    if template is None:
        raise WorkloadError(
            "template", f"unknown template {head.strip()!r}; known: {', '.join(SPEC_TEMPLATES)}")
    body, *options = rest.split(";")
    epilogue = "shift_clip"
    for opt in options:
        if not opt.strip():
            continue
        k, eq, v = opt.partition("=")
        if not eq or k.strip() != "epilogue":
            raise WorkloadError(
                "option", f"unknown option {opt.strip()!r}; only epilogue=... is supported")
        epilogue = v.strip()
        if epilogue not in EPILOGUES:
            raise WorkloadError(
                "epilogue", f"unknown epilogue {epilogue!r}; known: {', '.join(EPILOGUES)}")
    names = SPEC_FIELDS[template]
    vals = body.split(",")
    if len(vals) != len(names):
        raise WorkloadError("spec", f"{_SHORT[template]} takes {len(names)} fields "
                                    f"{','.join(names)}; got {len(vals)} in {body.strip()!r}")
    f = dict(zip(names, vals))
    batch = None if f["N"].strip().upper() == "B" else _int(f["N"], "N")
    kw: dict[str, Any] = {}
    if template == DENSE:
        kw.update(height=1, width=1, in_channels=_int(f["IN"], "IN"),
                  out_channels=_int(f["OUT"], "OUT"))
    else:
        kh, kwid = _pair(f["K"], "K", minimum=1, seps="xX")
        ph, pw = _pair(f["PAD"], "PAD", minimum=0, seps="/xX")
        sh, sw = _pair(f["STRIDE"], "STRIDE", minimum=1, seps="/xX")
        kw.update(height=_int(f["H"], "H"), width=_int(f["W"], "W"),
                  in_channels=_int(f["CI"], "CI"), out_channels=_int(f["CO"], "CO"),
                  kernel_h=kh, kernel_w=kwid, pad_h=ph, pad_w=pw,
                  stride_h=sh, stride_w=sw)
        if template == GROUP_CONV2D:
            kw["groups"] = _int(f["GROUPS"], "GROUPS")
    try:
        w = Workload(template, batch=batch, epilogue=epilogue, **kw)
    except WorkloadError as exc:
        raise _relabel(exc, template) from None
    check_tvm_limits(w)
    return replace(w, name=format_spec(w))


