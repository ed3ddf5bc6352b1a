"""2-D DMA pattern detection of TVM's ``InjectDMAIntrin`` (vta/python/vta/transform.py).

A DMA statement copies a region described by its loop nest: ``shape`` (loop extents, unit
loops removed) and ``strides`` (index coefficients, in scalars).  VTA can only move one 2-D
pattern of whole elements per instruction; these functions decide whether a region is such
a pattern and compute (x_size, y_size, x_stride) in elements, raising the lowering error
the original compiler raises (category COMPILE_HOST).
"""
from __future__ import annotations

from ..errors import ErrorCategory, InvalidConfigError


def lowering_error(reason: str, message: str) -> InvalidConfigError:
    return InvalidConfigError(ErrorCategory.COMPILE_HOST, reason, message)


def fold_buffer_dim(shape: list[int], strides: list[int], scope: str, elem_block: int):
    """Merge dimensions that are contiguous in memory (``_fold_buffer_dim``)."""
    ndim = len(shape)
    x_size, base = 1, 0
    for i in range(1, ndim + 1):
        if strides[ndim - i] != x_size:
            raise lowering_error("dma_not_2d", f"scope {scope} needs to have block={elem_block}")
        x_size *= shape[ndim - i]
        if x_size == elem_block:
            base = i + 1
            break
    if base == 0:
        raise lowering_error("dma_not_2d", f"scope {scope} need to have block={elem_block}, shape={shape}")
    out_shape, out_strides = [elem_block], [1]
    if base < ndim + 1 and strides[ndim - base] != elem_block:
        out_shape.append(1)
        out_strides.append(elem_block)
    while base < ndim + 1:
        x_size = 1
        x_stride = strides[ndim - base]
        next_base = base
        if x_stride % elem_block:
            raise lowering_error("dma_not_2d", f"scope {scope} need to have block={elem_block}, "
                                               f"shape={shape}, strides={strides}")
        for i in range(base, ndim + 1):
            k = ndim - i
            if x_size * x_stride != strides[k]:
                break
            x_size *= shape[k]
            next_base = i + 1
        out_shape.append(x_size)
        out_strides.append(x_stride)
        base = next_base
    return out_shape[::-1], out_strides[::-1]


def get_2d_pattern(shape: list[int], strides: list[int], elem_block: int, scope: str,
                   allow_fold: bool):
    """(x_size, y_size, x_stride) in elements, or the lowering error (``_get_2d_pattern``).
    Symbolic sizes (padded regions) are passed as None; only strides and static sizes are
    inspected, as in the original."""
    if allow_fold:
        shape, strides = fold_buffer_dim(shape, strides, scope, elem_block)
    shape, strides = list(shape), list(strides)

    def fail():
        return lowering_error("dma_not_2d", f"scope {scope}: cannot detect 2d pattern with "
                                            f"elem_block={elem_block}: shape={shape}, strides={strides}")

    ndim = len(shape)
    flat = shape[-1] == elem_block
    if flat:
        if strides[-1] != 1:
            raise fail()
        if ndim == 1:
            return 1, 1, 1
        if strides[-2] != elem_block:
            raise fail()
        if ndim == 2:
            return shape[-2], 1, shape[-2]
        if strides[-3] % elem_block:
            raise fail()
        if ndim == 3:
            return shape[-2], shape[-3], strides[-3] // elem_block
    else:
        if strides[-1] != 1:
            raise fail()
        if ndim < 2 or strides[-2] != shape[-1]:
            raise fail()
        if shape[-1] * shape[-2] != elem_block:
            raise fail()
        if ndim == 2:
            return 1, 1, 1
        if strides[-3] != elem_block:
            raise fail()
        if ndim == 3:
            return shape[-3], 1, shape[-3]
        if strides[-4] % elem_block:
            raise fail()
        if ndim == 4:
            return shape[-3], shape[-4], strides[-4] // elem_block
    raise fail()


def padded_load_dims(ndim: int, pads_nonzero: list[bool]):
    """Which loop dimensions carry the y and x padding of a padded load, or the error of
    ``_inject_copy`` ("Limitation of 2D pad load", "pad on the innermost block")."""
    if ndim <= 2 or ndim > 5:
        raise lowering_error("pad_not_supported", f"Limitation of 2D pad load forbid ndim={ndim}")
    y_dim, x_dim, first_inner = (1, 2, 3) if ndim == 5 else (0, 1, 2)
    for d in range(first_inner, ndim):
        if pads_nonzero[d]:
            raise lowering_error("pad_not_supported", "Do not support pad on the innermost block "
                                                      f"(padding on loop dimension {d} of {ndim})")
    return y_dim, x_dim


def strides_of(extents: list[int]) -> list[int]:
    """Row-major strides of a dense array."""
    out, acc = [], 1
    for e in reversed(extents):
        out.append(acc)
        acc *= e
    return out[::-1]


def drop_unit(dims: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """(extent, stride) pairs without the unit loops TVM's simplifier removes."""
    kept = [(e, s) for e, s in dims if e != 1]
    return [e for e, _ in kept], [s for _, s in kept]
