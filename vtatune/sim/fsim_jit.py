"""fsim's optional compiled core (numba): a whole run — fetch, routing, the three module
queues, the token queues and every instruction — in one compiled function.

It is an implementation of exactly what ``fsim.FunctionalSimulator``'s numpy path does,
chosen by ``FunctionalSimulator(jit=...)`` (docs/fsim.md); the two give bit-identical SRAM,
DRAM, counters and results, and tests/core/test_fsim_fast*.py check it.  It is imported only
when numba is installed (the ``jit`` extra); nothing else in the package needs it.

Errors.  Before an instruction changes anything, the kernel checks everything the numpy
path would raise on for that instruction (ranges, caps, undefined ALU opcodes).  If one
would be raised, it stops there, leaving every buffer and counter as the numpy path would
have them just before that instruction, and reports its index: the caller re-executes that
one instruction with the numpy path, which raises the typed error with its message.  A
deadlock, a missing FINISH or unfinished work is reported with the scheduler's state so
the caller builds the same report.

This module imports nothing from ``fsim`` (no import circle): everything it needs comes in
as arrays and integers.  DRAM regions come as a tuple of ``MAX_REGIONS`` arrays (the
simulator's own, written in place; unused slots are empty arrays), so one compiled
signature serves every program; a DRAM with more regions runs on the numpy core.
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

MAX_REGIONS = 8  # DRAM regions the compiled core takes (a compiled program has at most 7)
#: element type of the INP and WGT buffers during a compiled run (int8 values: int16 was
#: faster than int32 and float32 on the development machine); the simulator's float32 SRAM
#: is converted to it before the run and back after it
SHADOW_DTYPE = np.int16

# ---------------------------------------------------------------- field table (rows of ftab)
(F_OPC, F_POP_PREV, F_POP_NEXT, F_PUSH_PREV, F_PUSH_NEXT, F_MT, F_SRAM, F_DRAM, F_YS, F_XS,
 F_XSTR, F_YP0, F_YP1, F_XP0, F_XP1,
 G_RESET, G_UBGN, G_UEND, G_IOUT, G_IIN, G_DFO, G_DFI, G_SFO, G_SFI, G_WFO, G_WFI,
 A_UBGN, A_UEND, A_IOUT, A_IIN, A_DFO, A_DFI, A_SFO, A_SFI, A_OP, A_USE_IMM, A_IMM,
 U_DST, U_SRC, U_WGT) = range(40)
N_FIELDS = 40

MEM_FIELDS = ("opcode", "pop_prev", "pop_next", "push_prev", "push_next", "memory_type",
              "sram_base", "dram_base", "y_size", "x_size", "x_stride", "y_pad_0", "y_pad_1",
              "x_pad_0", "x_pad_1")
GEMM_FIELDS = ("reset_reg", "uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out",
               "dst_factor_in", "src_factor_out", "src_factor_in", "wgt_factor_out",
               "wgt_factor_in")
ALU_FIELDS = ("uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out", "dst_factor_in",
              "src_factor_out", "src_factor_in", "alu_opcode", "use_imm", "imm")

# ---------------------------------------------------------------- configuration vector (cfg)
(C_UOP_DEPTH, C_INP_DEPTH, C_WGT_DEPTH, C_ACC_DEPTH, C_OUT_DEPTH, C_BATCH, C_BLOCK_IN,
 C_BLOCK_OUT, C_INP_E, C_WGT_E, C_ACC_E, C_OUT_E, C_CMD_CAP, C_DEP_CAP, C_MAX_ITER,
 C_MAX_WORK, C_CHUNK_WORK, C_ACC_PAD, C_OUT_STORE_UNIT) = range(19)
N_CFG = 19

# ---------------------------------------------------------------- state vector (st), results
(S_STATUS, S_IDX, S_MODULE, S_WORK, S_PC, S_TOK0, S_TOK1, S_TOK2, S_TOK3, S_EXEC0, S_EXEC1,
 S_EXEC2, S_HEAD0, S_HEAD1, S_HEAD2, S_LEN0, S_LEN1, S_LEN2, S_UOP_LOADED) = range(19)
N_STATE = 19
ST_FINISHED, ST_EXEC_ERROR, ST_STUCK = 0, 1, 2

# counters, in COUNTER_NAMES order
K_INP, K_WGT, K_ACC, K_UOP, K_OUT, K_GEMM, K_ALU = range(7)

# opcodes and memory types (isa.Opcode / isa.MemType)
LOAD, STORE, GEMM, FINISH, ALU = 0, 1, 2, 3, 4
M_UOP, M_WGT, M_INP, M_ACC, M_OUT, M_ACC8 = 0, 1, 2, 3, 4, 5
# token queues: l2g, g2l, s2g, g2s
T_L2G, T_G2L, T_S2G, T_G2S = 0, 1, 2, 3


def field_table(lay) -> np.ndarray:
    """(N_FIELDS, 4) int64: word (0 low, 1 high, 2 micro-op), shift, mask, width if signed."""
    rows = []
    for layout, names in ((lay.mem, MEM_FIELDS), (lay.gemm, GEMM_FIELDS), (lay.alu, ALU_FIELDS)):
        for name in names:
            f = layout.field(name)
            rows.append((1 if f.lo >= 64 else 0, f.lo % 64 if f.lo >= 64 else f.lo, f.mask,
                         f.width if f.signed else 0))
    for f in lay.uop.fields:
        rows.append((2, f.lo, f.mask, 0))
    assert len(rows) == N_FIELDS
    return np.array(rows, dtype=np.int64)


# ============================================================================ helpers
@njit(cache=True, inline="always")
def _fld(words, i, ftab, k):
    v = (words[i, ftab[k, 0]] >> ftab[k, 1]) & ftab[k, 2]
    w = ftab[k, 3]
    if w and (v >> (w - 1)) & 1:
        v -= 1 << w
    return v


@njit(cache=True, inline="always")
def _ufld(word, ftab, k):
    return (word >> ftab[k, 1]) & ftab[k, 2]


@njit(cache=True)
def _find(rb, re_, addr, nbytes):
    """Index of the DRAM region holding all of [addr, addr + nbytes) (Dram._find), or -1."""
    lo, hi = 0, rb.size
    while lo < hi:  # last region with base <= addr
        mid = (lo + hi) // 2
        if rb[mid] <= addr:
            lo = mid + 1
        else:
            hi = mid
    i = lo - 1
    if i >= 0 and addr + nbytes <= re_[i]:
        return i
    return -1


@njit(cache=True, inline="always")
def _rows_region(rb, re_, addr, rows, row_bytes, pitch):
    """Like Dram.rows' check: the region of a (rows, row_bytes) block of pitch ``pitch``;
    0 rows or 0 bytes is always fine (-2 = nothing to read), -1 = out of range."""
    if rows == 0 or row_bytes == 0:
        return -2
    return _find(rb, re_, addr, (rows - 1) * pitch + row_bytes)


@njit(cache=True, inline="always")
def _i8(b):
    v = np.int32(b)
    return v - 256 if v >= 128 else v


@njit(cache=True)
def _le_i32(dram, off, n):
    """n little-endian int32 at byte ``off`` of a DRAM region (any alignment)."""
    r = np.empty(n, np.int32)
    for j in range(n):
        r[j] = _i32(dram, off + 4 * j)
    return r


@njit(cache=True, inline="always")
def _i32(dram, off):
    v = (np.int64(dram[off]) | (np.int64(dram[off + 1]) << 8) | (np.int64(dram[off + 2]) << 16)
         | (np.int64(dram[off + 3]) << 24))
    return v - (1 << 32) if v >= (1 << 31) else v


# ============================================================================ instructions
@njit(cache=True)
def _load_mem(words, i, ftab, cfg, st, regs, rb, re_, uop, inp16, wgt16, acc, cnt):
    """LOAD (any memory type).  Returns False (nothing changed) if the numpy path would
    raise at this instruction."""
    mt = _fld(words, i, ftab, F_MT)
    sram = _fld(words, i, ftab, F_SRAM)
    dbase = _fld(words, i, ftab, F_DRAM)
    ys = _fld(words, i, ftab, F_YS)
    xs = _fld(words, i, ftab, F_XS)
    xstr = _fld(words, i, ftab, F_XSTR)
    if mt == M_INP or (mt == M_ACC and cfg[C_ACC_PAD]):
        yp0 = _fld(words, i, ftab, F_YP0)
        xp0 = _fld(words, i, ftab, F_XP0)
        xw = xp0 + xs + _fld(words, i, ftab, F_XP1)
        rows = yp0 + ys + _fld(words, i, ftab, F_YP1)
    else:
        yp0 = 0
        xp0 = 0
        xw = xs
        rows = ys
    if mt == M_INP or mt == M_ACC:
        e = cfg[C_INP_E] if mt == M_INP else cfg[C_ACC_E]
        depth = cfg[C_INP_DEPTH] if mt == M_INP else cfg[C_ACC_DEPTH]
        total = xw * rows
        if sram + total > depth:
            return False
        if total == 0:
            return True
        if st[S_WORK] + total > cfg[C_MAX_WORK]:
            return False
        reg = -2
        if xs and ys:
            reg = _rows_region(rb, re_, dbase * e, ys, xs * e, xstr * e)
            if reg == -1:
                return False
        st[S_WORK] += total
        if total != xs * ys:
            if mt == M_INP:
                inp16[sram:sram + total, :] = 0
            else:
                acc[sram:sram + total, :] = 0
        if reg >= 0:
            dram = regs[reg]
            off = dbase * e - rb[reg]
            pitch = xstr * e
            for r in range(ys):  # a DRAM row is xs consecutive elements
                row0 = sram + (yp0 + r) * xw + xp0
                src = off + r * pitch
                if mt == M_INP:
                    v8 = dram[src:src + xs * e].view(np.int8).reshape((xs, e))
                    inp16[row0:row0 + xs, :] = v8
                else:
                    acc[row0:row0 + xs, :] = _le_i32(dram, src, xs * e // 4).reshape((xs, e // 4))
        if xs:
            cnt[K_INP if mt == M_INP else K_ACC] += xs * ys * e
        return True
    if mt == M_WGT:
        e = cfg[C_WGT_E]
        total = xs * ys
        if sram + total > cfg[C_WGT_DEPTH]:
            return False
        if total == 0:
            return True
        if st[S_WORK] + total > cfg[C_MAX_WORK]:
            return False
        reg = _rows_region(rb, re_, dbase * e, ys, xs * e, xstr * e)
        if reg == -1:
            return False
        st[S_WORK] += total
        dram = regs[reg]
        off = dbase * e - rb[reg]
        pitch = xstr * e
        for r in range(ys):  # a DRAM row is xs consecutive elements
            j = sram + r * xs
            src = off + r * pitch
            v8 = dram[src:src + xs * e].view(np.int8).reshape((xs, e))
            wgt16[j:j + xs, :] = v8
        cnt[K_WGT] += total * e
        return True
    if mt == M_UOP:
        if sram + xs > cfg[C_UOP_DEPTH]:
            return False
        if xs == 0:
            return True
        if st[S_WORK] + xs > cfg[C_MAX_WORK]:
            return False
        reg = _find(rb, re_, dbase * 4, xs * 4)
        if reg == -1:
            return False
        st[S_WORK] += xs
        uop[sram:sram + xs] = _le_i32(regs[reg], dbase * 4 - rb[reg], xs)
        st[S_UOP_LOADED] = 1
        cnt[K_UOP] += xs * ys * 4
        return True
    if mt == M_ACC8:
        if xs:
            cnt[K_ACC] += xs * ys * cfg[C_ACC_E]
        return True
    return True  # OUT or an unknown memory type: nothing happens


@njit(cache=True)
def _store(words, i, ftab, cfg, st, regs, rb, re_, out, cnt):
    sram = _fld(words, i, ftab, F_SRAM)
    dbase = _fld(words, i, ftab, F_DRAM)
    ys = _fld(words, i, ftab, F_YS)
    xs = _fld(words, i, ftab, F_XS)
    xstr = _fld(words, i, ftab, F_XSTR)
    total = xs * ys
    if sram + total > cfg[C_OUT_DEPTH]:
        return False
    if total == 0:
        return True
    if st[S_WORK] + total > cfg[C_MAX_WORK]:
        return False
    e = cfg[C_OUT_E]
    reg = _rows_region(rb, re_, dbase * e, ys, xs * e, xstr * e)
    if reg == -1:
        return False
    st[S_WORK] += total
    dram = regs[reg]
    off = dbase * e - rb[reg]
    pitch = xstr * e
    row = xs * e
    for r in range(ys):  # in order: with overlapping rows the later one wins
        src = out[sram + r * xs:sram + (r + 1) * xs].reshape(row).view(np.uint8)
        dram[off + r * pitch:off + r * pitch + row] = src
    cnt[K_OUT] += total * cfg[C_OUT_STORE_UNIT]
    return True


@njit(cache=True, inline="always")
def _top(uop, ftab, kf, bgn, end, io, ii, fo, fi):
    """Largest index of a walk (factors are unsigned, so it is at the far corner)."""
    m = 0
    for u in range(bgn, end):
        v = _ufld(np.int64(uop[u]), ftab, kf)
        if v > m:
            m = v
    return m + (io - 1) * fo + (ii - 1) * fi


@njit(cache=True)
def _gemm(words, i, ftab, cfg, st, uop, inp16, wgt16, acc, out, cnt, walk, tmp):
    io = _fld(words, i, ftab, G_IOUT)
    ii = _fld(words, i, ftab, G_IIN)
    bgn = _fld(words, i, ftab, G_UBGN)
    end = _fld(words, i, ftab, G_UEND)
    if io == 0 or ii == 0 or end <= bgn:
        return True
    if end > cfg[C_UOP_DEPTH]:
        return False
    n = io * ii * (end - bgn)
    if n > cfg[C_MAX_ITER]:
        return False
    dfo = _fld(words, i, ftab, G_DFO)
    dfi = _fld(words, i, ftab, G_DFI)
    sfo = _fld(words, i, ftab, G_SFO)
    sfi = _fld(words, i, ftab, G_SFI)
    wfo = _fld(words, i, ftab, G_WFO)
    wfi = _fld(words, i, ftab, G_WFI)
    if (_top(uop, ftab, U_DST, bgn, end, io, ii, dfo, dfi) >= cfg[C_ACC_DEPTH]
            or _top(uop, ftab, U_SRC, bgn, end, io, ii, sfo, sfi) >= cfg[C_INP_DEPTH]
            or _top(uop, ftab, U_WGT, bgn, end, io, ii, wfo, wfi) >= cfg[C_WGT_DEPTH]):
        return False
    if st[S_WORK] + n > cfg[C_MAX_WORK]:
        return False
    st[S_WORK] += n
    reset = _fld(words, i, ftab, G_RESET)
    b_ = cfg[C_BATCH]
    bi = cfg[C_BLOCK_IN]
    bo = cfg[C_BLOCK_OUT]
    ubi = uint64(bi)
    ubo = uint64(bo)
    n_u = end - bgn
    # the walk's indices, decoded once (the inner loops then only compute)
    ud = walk[0]  # (3, UOP depth) scratch of the run
    us = walk[1]
    uw = walk[2]
    for u in range(n_u):
        w = np.int64(uop[bgn + u])
        ud[u] = _ufld(w, ftab, U_DST)
        us[u] = _ufld(w, ftab, U_SRC)
        uw[u] = _ufld(w, ftab, U_WGT)
    # tmp[c] = sum_k x[k] * W[c][k]: int16 values, exact int32 sums.  Unsigned indices keep
    # numba's negative-index handling out of the loops, so LLVM vectorises the k loop (a
    # multiply-add reduction).  The accumulator wraps modulo 2^32 (the int64 sum truncated on
    # assignment); the OUT shadow gets the low byte of (acc + product) (HLS), and a reset
    # GEMM then zeroes the accumulator.
    for o in range(io):
        for it in range(ii):
            d0 = o * dfo + it * dfi
            s0 = o * sfo + it * sfi
            g0 = o * wfo + it * wfi
            for u in range(n_u):
                d = uint64(ud[u] + d0)
                s = uint64(us[u] + s0)
                g = uint64(uw[u] + g0)
                for b in range(uint64(b_)):
                    x0 = b * ubi
                    for c in range(ubo):
                        a = np.int32(0)
                        base = c * ubi
                        for k in range(ubi):
                            a += np.int32(inp16[s, x0 + k]) * np.int32(wgt16[g, base + k])
                        tmp[c] = a
                    a0 = b * ubo
                    if reset:
                        for c in range(ubo):
                            out[d, a0 + c] = acc[d, a0 + c] + tmp[c]
                            acc[d, a0 + c] = 0
                    else:
                        for c in range(ubo):
                            v = acc[d, a0 + c] + tmp[c]
                            acc[d, a0 + c] = v
                            out[d, a0 + c] = v
    if not reset:
        cnt[K_GEMM] += n
    return True


@njit(cache=True, inline="always")
def _alu_lane(op, a, b):
    if op == 0:
        return min(a, b)
    if op == 1:
        return max(a, b)
    if op == 2:
        r = a + b
    else:  # SHR: low 5 bits of b as a signed number; negative shifts left
        sh = ((b & 31) ^ 16) - 16
        r = a >> sh if sh >= 0 else a << (-sh)
    return ((r & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


@njit(cache=True)
def _alu(words, i, ftab, cfg, st, uop, acc, out, cnt, stamp):
    io = _fld(words, i, ftab, A_IOUT)
    ii = _fld(words, i, ftab, A_IIN)
    bgn = _fld(words, i, ftab, A_UBGN)
    end = _fld(words, i, ftab, A_UEND)
    if io == 0 or ii == 0 or end <= bgn:
        return True
    op = _fld(words, i, ftab, A_OP)
    if op > 3:
        return False
    if end > cfg[C_UOP_DEPTH]:
        return False
    n = io * ii * (end - bgn)
    if n > cfg[C_MAX_ITER]:
        return False
    dfo = _fld(words, i, ftab, A_DFO)
    dfi = _fld(words, i, ftab, A_DFI)
    sfo = _fld(words, i, ftab, A_SFO)
    sfi = _fld(words, i, ftab, A_SFI)
    depth = cfg[C_ACC_DEPTH]
    if (_top(uop, ftab, U_DST, bgn, end, io, ii, dfo, dfi) >= depth
            or _top(uop, ftab, U_SRC, bgn, end, io, ii, sfo, sfi) >= depth):
        return False
    use_imm = _fld(words, i, ftab, A_USE_IMM)
    imm = _fld(words, i, ftab, A_IMM)
    # The numpy path charges one unit per iteration plus CHUNK_WORK per hazard-free run
    # (its vector steps); count the runs the same way: a new run starts at an iteration
    # whose destination, or tensor source, an earlier iteration of the run wrote.
    # stamp[a] = the run (numbered across the whole program, stamp[-1] holds the last
    # number used) that last wrote accumulator a
    first = stamp[-1] + 1
    run_id = first
    for o in range(io):
        for it in range(ii):
            for u in range(bgn, end):
                w = np.int64(uop[u])
                d = _ufld(w, ftab, U_DST) + o * dfo + it * dfi
                s = _ufld(w, ftab, U_SRC) + o * sfo + it * sfi
                if stamp[d] == run_id or (not use_imm and stamp[s] == run_id):
                    run_id += 1
                stamp[d] = run_id
    chunks = run_id - first + 1
    stamp[-1] = run_id
    units = n + cfg[C_CHUNK_WORK] * chunks
    if st[S_WORK] + units > cfg[C_MAX_WORK]:
        return False
    st[S_WORK] += units
    lanes = cfg[C_BATCH] * cfg[C_BLOCK_OUT]
    for o in range(io):
        for it in range(ii):
            for u in range(bgn, end):
                w = np.int64(uop[u])
                d = _ufld(w, ftab, U_DST) + o * dfo + it * dfi
                s = _ufld(w, ftab, U_SRC) + o * sfo + it * sfi
                for c in range(lanes):
                    b = imm if use_imm else np.int64(acc[s, c])
                    r = _alu_lane(op, np.int64(acc[d, c]), b)
                    acc[d, c] = np.int32(r)
                    out[d, c] = np.int8(((r & 0xFF) ^ 0x80) - 0x80)
    cnt[K_ALU] += n
    return True


# ============================================================================ the run
@njit(cache=True)
def route_all(words, ftab, acc_pad):
    """Per instruction: module (0 load, 1 compute, 2 store), whether it only carries tokens,
    its token needs/gives as bit sets (bit q = token queue q), and whether it is FINISH."""
    n = words.shape[0]
    route = np.empty(n, np.int8)
    noop = np.empty(n, np.bool_)
    need = np.empty(n, np.int8)
    give = np.empty(n, np.int8)
    fin = np.empty(n, np.bool_)
    for i in range(n):
        op = _fld(words, i, ftab, F_OPC)
        mt = _fld(words, i, ftab, F_MT)
        xs = _fld(words, i, ftab, F_XS)
        if op == STORE:
            m = 2
        elif op == LOAD and (mt == M_INP or mt == M_WGT):
            m = 0
        else:
            m = 1
        route[i] = m
        pads = (_fld(words, i, ftab, F_YP0) | _fld(words, i, ftab, F_YP1)
                | _fld(words, i, ftab, F_XP0) | _fld(words, i, ftab, F_XP1))
        padded = mt == M_INP or (acc_pad and op == LOAD and mt == M_ACC)
        nop = (op == LOAD or op == STORE) and xs == 0 and (not padded or pads == 0)
        noop[i] = nop or op > ALU
        pp = _fld(words, i, ftab, F_POP_PREV)
        pn = _fld(words, i, ftab, F_POP_NEXT)
        up = _fld(words, i, ftab, F_PUSH_PREV)
        un = _fld(words, i, ftab, F_PUSH_NEXT)
        if m == 0:
            need[i] = (pn << T_G2L)
            give[i] = (un << T_L2G)
        elif m == 1:
            need[i] = (pp << T_L2G) | (pn << T_S2G)
            give[i] = (up << T_G2L) | (un << T_G2S)
        else:
            need[i] = (pp << T_G2S)
            give[i] = (up << T_S2G)
        fin[i] = op == FINISH
    return route, noop, need, give, fin


@njit(cache=True)
def run(words, ftab, cfg, st, regs, rb, re_, uop, inp16, wgt16, acc, out, cnt):
    """Run the stream until FINISH (or an error, st[S_STATUS]); queue heads and lengths are
    left in ``st`` for the caller's reports."""
    n = words.shape[0]
    route, noop, need, give, fin = route_all(words, ftab, cfg[C_ACC_PAD] != 0)
    cap = cfg[C_CMD_CAP]
    dep_cap = cfg[C_DEP_CAP]
    size = min(cap, n) + 1
    ring = np.empty((3, size), np.int64)
    head = np.zeros(3, np.int64)
    length = np.zeros(3, np.int64)
    tok = np.zeros(4, np.int64)
    executed = np.zeros(3, np.int64)
    stamp = np.zeros(cfg[C_ACC_DEPTH] + 1, np.int64)
    walk = np.empty((3, cfg[C_UOP_DEPTH]), np.int64)
    tmp = np.empty(cfg[C_BLOCK_OUT], np.int32)
    pc = 0
    status = ST_STUCK
    err = -1
    err_m = -1
    finished = False
    while not finished:
        progress = False
        while pc < n and length[route[pc]] < cap:
            m = route[pc]
            ring[m, (head[m] + length[m]) % size] = pc
            length[m] += 1
            pc += 1
            progress = True
        for m in range(3):
            while length[m] > 0:
                idx = ring[m, head[m]]
                nd = need[idx]
                gv = give[idx]
                blocked = False
                for q in range(4):
                    if (nd >> q) & 1 and tok[q] == 0:
                        blocked = True
                    if (gv >> q) & 1 and tok[q] >= dep_cap:
                        blocked = True
                if blocked:
                    break
                for q in range(4):
                    if (nd >> q) & 1:
                        tok[q] -= 1
                if not noop[idx]:
                    op = _fld(words, idx, ftab, F_OPC)
                    ok = True
                    if op == LOAD:
                        ok = _load_mem(words, idx, ftab, cfg, st, regs, rb, re_, uop, inp16,
                                       wgt16, acc, cnt)
                    elif op == STORE:
                        ok = _store(words, idx, ftab, cfg, st, regs, rb, re_, out, cnt)
                    elif op == GEMM:
                        ok = _gemm(words, idx, ftab, cfg, st, uop, inp16, wgt16, acc, out, cnt,
                                   walk, tmp)
                    elif op == ALU:
                        ok = _alu(words, idx, ftab, cfg, st, uop, acc, out, cnt, stamp)
                    if not ok:
                        status = ST_EXEC_ERROR
                        err = idx
                        err_m = m
                        break
                for q in range(4):
                    if (gv >> q) & 1:
                        tok[q] += 1
                head[m] = (head[m] + 1) % size
                length[m] -= 1
                executed[m] += 1
                progress = True
                if fin[idx]:
                    finished = True
                    status = ST_FINISHED
                    break
            if finished or status == ST_EXEC_ERROR:
                break
        if finished or status == ST_EXEC_ERROR:
            break
        if not progress:
            status = ST_STUCK
            break
    st[S_STATUS] = status
    st[S_IDX] = err
    st[S_MODULE] = err_m
    st[S_PC] = pc
    for q in range(4):
        st[S_TOK0 + q] = tok[q]
    for m in range(3):
        st[S_EXEC0 + m] = executed[m]
        st[S_LEN0 + m] = length[m]
        st[S_HEAD0 + m] = ring[m, head[m]] if length[m] > 0 else -1
