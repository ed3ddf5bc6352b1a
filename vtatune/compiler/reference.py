"""Independent numpy references of the fused operators (int64 arithmetic, then the epilogue
exactly as TVM's benchmark pipeline defines it)."""
from __future__ import annotations

import numpy as np

from ..workloads.workload import CONV2D_TRANSPOSE, DENSE, GROUP_CONV2D, REQUANT, SHIFT, Workload


def conv2d_nchw(x: np.ndarray, k: np.ndarray, stride: tuple[int, int], pad: tuple[int, int],
                groups: int = 1) -> np.ndarray:
    n, c, h, w = x.shape
    o, cg, kh, kw = k.shape
    sh, sw = stride
    ph, pw = pad
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=np.int64)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, oh, ow), dtype=np.int64)
    opg = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ks = k[g * opg:(g + 1) * opg].astype(np.int64)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                out[:, g * opg:(g + 1) * opg] += np.einsum("nchw,oc->nohw", patch, ks[:, :, i, j])
    return out


def conv2d_transpose_nchw(x: np.ndarray, k_iohw: np.ndarray, stride, pad) -> np.ndarray:
    """Transposed convolution with kernel in (I, O, KH, KW), by scattering each input."""
    n, c, h, w = x.shape
    _, o, kh, kw = k_iohw.shape
    sh, sw = stride
    ph, pw = pad
    full = np.zeros((n, o, (h - 1) * sh + kh, (w - 1) * sw + kw), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            full[:, :, i:i + sh * (h - 1) + 1:sh, j:j + sw * (w - 1) + 1:sw] += np.einsum(
                "nchw,co->nohw", x.astype(np.int64), k_iohw[:, :, i, j].astype(np.int64))
    oh, ow = (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw
    return full[:, :, ph:ph + oh, pw:pw + ow]


def epilogue(acc: np.ndarray, wl: Workload, bias: np.ndarray | None = None) -> np.ndarray:
    """int32-wrapped accumulator -> int8 output of the fused operator."""
    a = acc.astype(np.int64).astype(np.int32)  # the accumulator wraps modulo 2^32
    if wl.epilogue == REQUANT:  # bias (wrapping), shift, clip, low byte
        q = wl.requant
        shape = (1, -1, 1, 1) if a.ndim == 4 else (1, -1)
        a = (a.astype(np.int64) + bias.reshape(shape)).astype(np.int32) >> q.shift
        return np.clip(a, q.lo, q.hi).astype(np.int8)
    a = a >> SHIFT
    if wl.epilogue == "bias":
        shape = (1, -1, 1, 1) if a.ndim == 4 else (1, -1)
        a = (a.astype(np.int64) + bias.reshape(shape)).astype(np.int32)
    if wl.epilogue == "relu":
        a = np.maximum(a, 0)
    else:
        a = np.clip(a, 0, 127)
    return a.astype(np.int8)  # cast keeps the low byte


def reference(wl: Workload, x: np.ndarray, k: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """The operator in plain layouts: x NCHW (or (N, I) for dense), k OIHW (dense (O, I);
    conv2d_transpose (I, O, KH, KW))."""
    if wl.template == DENSE:
        acc = x.astype(np.int64) @ k.astype(np.int64).T
    elif wl.template == CONV2D_TRANSPOSE:
        acc = conv2d_transpose_nchw(x, k, (wl.stride_h, wl.stride_w), (wl.pad_h, wl.pad_w))
    else:
        acc = conv2d_nchw(x, k, (wl.stride_h, wl.stride_w), (wl.pad_h, wl.pad_w),
                          wl.groups if wl.template == GROUP_CONV2D else 1)
    return epilogue(acc, wl, bias)
