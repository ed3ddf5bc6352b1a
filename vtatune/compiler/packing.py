"""Packed DRAM layouts of VTA tensors (vta-spec §6.2) and their inverses."""
from __future__ import annotations

import numpy as np

from ..hardware.config import HwConfig


def pack_data(x: np.ndarray, hw: HwConfig) -> np.ndarray:
    """NCHW -> (N/B, C/BI, H, W, B, BI)."""
    n, c, h, w = x.shape
    B, BI = hw.batch, hw.block_in
    return np.ascontiguousarray(x.reshape(n // B, B, c // BI, BI, h, w).transpose(0, 2, 4, 5, 1, 3))


def unpack_data(p: np.ndarray) -> np.ndarray:
    """(N/B, C/BO, H, W, B, BO) -> NCHW."""
    nb, cb, h, w, B, BO = p.shape
    return np.ascontiguousarray(p.transpose(0, 4, 1, 5, 2, 3).reshape(nb * B, cb * BO, h, w))


def pack_kernel(k: np.ndarray, hw: HwConfig) -> np.ndarray:
    """OIHW -> (O/BO, I/BI, KH, KW, BO, BI)."""
    o, i, kh, kw = k.shape
    BO, BI = hw.block_out, hw.block_in
    return np.ascontiguousarray(k.reshape(o // BO, BO, i // BI, BI, kh, kw).transpose(0, 2, 4, 5, 1, 3))


def pack_dense_data(x: np.ndarray, hw: HwConfig) -> np.ndarray:
    """(N, I) -> (N/B, I/BI, B, BI)."""
    n, i = x.shape
    B, BI = hw.batch, hw.block_in
    return np.ascontiguousarray(x.reshape(n // B, B, i // BI, BI).transpose(0, 2, 1, 3))


def unpack_dense(p: np.ndarray) -> np.ndarray:
    """(N/B, O/BO, B, BO) -> (N, O)."""
    nb, ob, B, BO = p.shape
    return np.ascontiguousarray(p.transpose(0, 2, 1, 3).reshape(nb * B, ob * BO))


def pack_dense_weight(wt: np.ndarray, hw: HwConfig) -> np.ndarray:
    """(O, I) -> (O/BO, I/BI, BO, BI)."""
    o, i = wt.shape
    BO, BI = hw.block_out, hw.block_in
    return np.ascontiguousarray(wt.reshape(o // BO, BO, i // BI, BI).transpose(0, 2, 1, 3))


def pack_bias(bias: np.ndarray, hw: HwConfig, batch: int) -> np.ndarray:
    """(C,) int32 -> (N/B, C/BO, B, BO) broadcast over the batch lanes."""
    B, BO = hw.batch, hw.block_out
    c = bias.shape[0]
    blk = bias.reshape(c // BO, BO)
    return np.ascontiguousarray(np.broadcast_to(blk[None, :, None, :], (batch // B, c // BO, B, BO)).astype(np.int32))
