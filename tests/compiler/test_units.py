"""Unit tests of the compiler's building blocks, with expected values worked out by hand
from the TVM v0.14 / VTA runtime semantics (vta-spec §4, §6.3-§6.6, §7.1):

* ``ir.coproc_sync`` (TVM's CoProcInstDepDetector) on tiny hand-built IRs,
* ``runtime.Runtime`` token merging, NOPs and ``synchronize``,
* the micro-op kernel recorder and cache,
* the 2-D DMA pattern detection and padded-load rules,
* the ALU loop flattening, SRAM allocation checks and micro-op loop folding.

None of the expected values is produced by calling the function under test.
"""
from collections import Counter

import numpy as np
import pytest

from vtatune.compiler import ir
from vtatune.compiler.common import (Allocation, Loop, alu_kernel, check_allocations, closure_check,
                                     flatten_alu_loops, gemm_kernel)
from vtatune.compiler.dma import (drop_unit, fold_buffer_dim, get_2d_pattern, padded_load_dims,
                                  strides_of)
from vtatune.compiler.runtime import Runtime, UopKernel
from vtatune.errors import ErrorCategory, InvalidConfigError
from vtatune.hardware.config import HwConfig
from vtatune.hardware.isa import AluOp, MemType, Opcode

L, C, S = ir.LOAD_Q, ir.COMPUTE_Q, ir.STORE_Q


@pytest.fixture(scope="module")
def hw():
    return HwConfig.load()


# ============================================================================ helpers
def nop(name="p"):
    return ir.Payload(name, lambda env, rt: None)


def dep(node):
    """A Dep as a comparable tuple ('push'|'pop', from, to)."""
    return ("push" if node.push else "pop", node.frm, node.to)


def deps(items):
    return [dep(i) for i in items if isinstance(i, ir.Dep)]


def scope_view(scope):
    """A scope body as a list: Dep tuples and payload names."""
    return [dep(i) if isinstance(i, ir.Dep) else i.name for i in scope.body]


def executed_tokens(node, mult=1, acc=None):
    """How many times each (push/pop, from, to) token statement executes."""
    acc = Counter() if acc is None else acc
    if isinstance(node, ir.Seq):
        for i in node.items:
            executed_tokens(i, mult, acc)
    elif isinstance(node, ir.Scope):
        for i in node.body:
            executed_tokens(i, mult, acc)
    elif isinstance(node, ir.For):
        executed_tokens(node.body, mult * node.extent, acc)
    elif isinstance(node, ir.Bind):
        executed_tokens(node.body, mult, acc)
    elif isinstance(node, ir.If):
        executed_tokens(node.then, mult, acc)
    elif isinstance(node, ir.Dep):
        acc[dep(node)] += mult
    return acc


def assert_balanced(counts):
    pairs = {(f, t) for _, f, t in counts}
    for f, t in pairs:
        assert counts[("push", f, t)] == counts[("pop", f, t)], (f, t, dict(counts))


# ============================================================================ lift_attr_scope
def test_lift_attr_scope_merges_consecutive_same_queue_scopes():
    a, b, c, d, e = (nop(n) for n in "abcde")
    root = ir.Seq([ir.Scope(L, [a]), ir.Scope(L, [b]), ir.Scope(C, [c]), ir.Scope(L, [d]),
                   ir.For("k", 2, ir.Seq([ir.Scope(S, [e]), ir.Scope(S, [e])]))])
    out = ir.lift_attr_scope(root)
    assert [type(i).__name__ for i in out.items] == ["Scope", "Scope", "Scope", "For"]
    assert [(s.qid, [p.name for p in s.body]) for s in out.items[:3]] == [(L, ["a", "b"]), (C, ["c"]),
                                                                          (L, ["d"])]
    inner = out.items[3].body.items
    assert len(inner) == 1 and inner[0].qid == S and [p.name for p in inner[0].body] == ["e", "e"]


# ============================================================================ coproc_sync
def test_coproc_sync_two_scopes():
    """(a) Seq[load, compute]: RAW push(1,2) appended INSIDE the load scope, pop(1,2)
    prepended INSIDE the compute scope; nothing else (no loop, nothing to balance)."""
    s1, s2 = ir.Scope(L, [nop("ld")]), ir.Scope(C, [nop("gemm")])
    out = ir.coproc_sync(ir.Seq([s1, s2]))
    assert len(out.items) == 2 and all(isinstance(i, ir.Scope) for i in out.items)
    assert scope_view(out.items[0]) == ["ld", ("push", 1, 2)]
    assert scope_view(out.items[1]) == [("pop", 1, 2), "gemm"]
    counts = executed_tokens(out)
    assert counts == Counter({("push", 1, 2): 1, ("pop", 1, 2): 1})


def test_coproc_sync_same_queue_needs_no_token():
    out = ir.coproc_sync(ir.Seq([ir.Scope(C, [nop("a")]), ir.Scope(C, [nop("b")])]))
    assert executed_tokens(out) == Counter()
    assert [scope_view(s) for s in out.items] == [["a"], ["b"]]


def test_coproc_sync_loop_carried_and_balancing():
    """(b) For k: Seq[load, compute].  Inside the body the RAW pair as in (a); the loop
    carry (last scope -> first scope) adds push(2,1) at the end of the compute scope and
    pop(2,1) at the start of the load scope.  At top level the loop is the only state, so
    Plan's MatchFixEnterPop puts push(2,1) before the loop and MatchFixExitPush pop(2,1)
    after it."""
    n = 5
    s1, s2 = ir.Scope(L, [nop("ld")]), ir.Scope(C, [nop("gemm")])
    out = ir.coproc_sync(ir.Seq([ir.For("k", n, ir.Seq([s1, s2]))]))
    assert len(out.items) == 3
    before, loop, after = out.items
    assert dep(before) == ("push", 2, 1)
    assert isinstance(loop, ir.For) and loop.extent == n
    assert dep(after) == ("pop", 2, 1)
    b1, b2 = loop.body.items
    assert scope_view(b1) == [("pop", 2, 1), "ld", ("push", 1, 2)]
    assert scope_view(b2) == [("pop", 1, 2), "gemm", ("push", 2, 1)]
    counts = executed_tokens(out)
    assert counts == Counter({("push", 1, 2): n, ("pop", 1, 2): n,
                              ("push", 2, 1): n + 1, ("pop", 2, 1): n + 1})
    assert_balanced(counts)


def test_coproc_sync_scope_before_loop_complicated_path_same_exit_queue():
    """(c1) Seq[compute S0, For k: Seq[load S1, compute S2]].

    Loop: RAW (1,2) between S1 and S2, carry (2,1) from S2 to S1; the loop's state has
    exit_push = enter_pop = [(2,1)], enter_ctx {1}, exit_ctx {2}.
    S0 -> loop: next.enter_pop is non-empty -> complicated path.  vpush = [], vpop = [(2,1)],
    pending = [(2,1)]: not in prev.exit_push -> push(2,1) after S0 (inside it), vpush
    [(2,1)]; already in next.enter_pop -> no pop.  Fix-up: (2,1) is in both -> nothing.
    End of Plan: first state S0 has no enter_pop; last state (the loop) exit_push [(2,1)] ->
    pop(2,1) after the loop.  No token before the loop."""
    n = 3
    s0, s1, s2 = ir.Scope(C, [nop("reset")]), ir.Scope(L, [nop("ld")]), ir.Scope(C, [nop("gemm")])
    out = ir.coproc_sync(ir.Seq([s0, ir.For("k", n, ir.Seq([s1, s2]))]))
    kinds = [type(i).__name__ for i in out.items]
    assert kinds == ["Scope", "For", "Dep"]
    assert scope_view(out.items[0]) == ["reset", ("push", 2, 1)]
    assert dep(out.items[2]) == ("pop", 2, 1)
    b1, b2 = out.items[1].body.items
    assert scope_view(b1) == [("pop", 2, 1), "ld", ("push", 1, 2)]
    assert scope_view(b2) == [("pop", 1, 2), "gemm", ("push", 2, 1)]
    counts = executed_tokens(out)
    assert counts == Counter({("push", 1, 2): n, ("pop", 1, 2): n,
                              ("push", 2, 1): n + 1, ("pop", 2, 1): n + 1})
    assert_balanced(counts)


def test_coproc_sync_scope_before_loop_complicated_path_other_queue():
    """(c2) Seq[store S0, For k: Seq[load S1, compute S2]].

    S0 -> loop, complicated path: vpush = [], vpop = [(2,1)], pending = [(3,1)].
    (3,1) not in prev.exit_push -> push(3,1) after S0; not in next.enter_pop -> pop(3,1)
    before the loop; vpush = [(3,1)], vpop = [(2,1), (3,1)].  Fix-up: vpush (3,1) is in
    vpop -> kept; vpop (2,1) is not in vpush -> push(2,1) before the loop (after the
    pop(3,1)).  End of Plan: the loop is the last state with exit_push [(2,1)] ->
    pop(2,1) after it."""
    n = 4
    s0, s1, s2 = ir.Scope(S, [nop("st")]), ir.Scope(L, [nop("ld")]), ir.Scope(C, [nop("gemm")])
    out = ir.coproc_sync(ir.Seq([s0, ir.For("k", n, ir.Seq([s1, s2]))]))
    kinds = [type(i).__name__ for i in out.items]
    assert kinds == ["Scope", "Dep", "Dep", "For", "Dep"]
    assert scope_view(out.items[0]) == ["st", ("push", 3, 1)]
    assert deps(out.items[1:3]) == [("pop", 3, 1), ("push", 2, 1)]
    assert dep(out.items[4]) == ("pop", 2, 1)
    b1, b2 = out.items[3].body.items
    assert scope_view(b1) == [("pop", 2, 1), "ld", ("push", 1, 2)]
    assert scope_view(b2) == [("pop", 1, 2), "gemm", ("push", 2, 1)]
    counts = executed_tokens(out)
    assert counts == Counter({("push", 3, 1): 1, ("pop", 3, 1): 1, ("push", 1, 2): n,
                              ("pop", 1, 2): n, ("push", 2, 1): n + 1, ("pop", 2, 1): n + 1})
    assert_balanced(counts)


def test_coproc_sync_scope_after_loop_quick_path_reset():
    """Seq[For k: Seq[load, compute], store]: the loop -> store transition has
    prev.exit_push = [(2,1)] (non-empty) -> complicated path.  pending = [(2,3)]: push(2,3)
    after the loop, pop(2,3) before (inside) the store; vpush = [(2,1), (2,3)], vpop =
    [(2,3)]; fix-up: (2,1) not in vpop -> pop(2,1) after the loop (after the push(2,3)).
    End of Plan: first state = the loop with enter_pop [(2,1)] -> push(2,1) before it;
    last state = the store with an empty exit_push."""
    n = 2
    s1, s2, s3 = ir.Scope(L, [nop("ld")]), ir.Scope(C, [nop("gemm")]), ir.Scope(S, [nop("st")])
    out = ir.coproc_sync(ir.Seq([ir.For("k", n, ir.Seq([s1, s2])), s3]))
    kinds = [type(i).__name__ for i in out.items]
    assert kinds == ["Dep", "For", "Dep", "Dep", "Scope"]
    assert dep(out.items[0]) == ("push", 2, 1)
    assert deps(out.items[2:4]) == [("push", 2, 3), ("pop", 2, 1)]
    assert scope_view(out.items[4]) == [("pop", 2, 3), "st"]
    counts = executed_tokens(out)
    assert_balanced(counts)
    assert counts[("push", 2, 3)] == counts[("pop", 2, 3)] == 1


def test_coproc_sync_if_tokens_go_around_the_if():
    """A scope followed by an If: the If's state is a sequence-level node, so the pop goes
    before the If statement (outside it), the push inside the preceding scope."""
    s1, s2 = ir.Scope(L, [nop("ld")]), ir.Scope(C, [nop("gemm")])
    out = ir.coproc_sync(ir.Seq([s1, ir.If(lambda env: True, ir.Seq([s2]))]))
    kinds = [type(i).__name__ for i in out.items]
    assert kinds == ["Scope", "Dep", "If"]
    assert scope_view(out.items[0]) == ["ld", ("push", 1, 2)]
    assert dep(out.items[1]) == ("pop", 1, 2)
    assert scope_view(out.items[2].then.items[0]) == ["gemm"]


def test_finalize_with_two_virtual_threads():
    """VThread(2): Seq[load, compute].  Pass 1: push(1,2) in the load scope, pop(1,2) in the
    compute scope.  Injection replicates each scope per thread, consecutively:
    ld(t0), ld(t1), gemm(t0), gemm(t1).  Pass 2 sees load, load, compute, compute and adds
    one more pair at the single queue change: push(1,2) at the end of ld(t1), pop(1,2) at
    the start of gemm(t0).  Totals: 3 pushes, 3 pops."""
    root = ir.Seq([ir.VThread("t", 2, ir.Seq([ir.Scope(L, [nop("ld")]), ir.Scope(C, [nop("gemm")])]))])
    out = ir.finalize(root)
    scopes = out.items
    assert [s.qid for s in scopes] == [L, L, C, C]
    # each copy's statements run with its thread bound
    assert [{tuple(i.values.items()) for i in s.body if isinstance(i, ir.Bind)} for s in scopes] == [
        {(("t", 0),)}, {(("t", 1),)}, {(("t", 0),)}, {(("t", 1),)}]

    def view(s):  # unwrap the per-thread Binds
        return [dep(i) if isinstance(i, ir.Dep) else
                (dep(i.body) if isinstance(i.body, ir.Dep) else i.body.name) for i in s.body]
    assert view(scopes[0]) == ["ld", ("push", 1, 2)]
    assert view(scopes[1]) == ["ld", ("push", 1, 2), ("push", 1, 2)]
    assert view(scopes[2]) == [("pop", 1, 2), ("pop", 1, 2), "gemm"]
    assert view(scopes[3]) == [("pop", 1, 2), "gemm"]
    counts = executed_tokens(out)
    assert counts == Counter({("push", 1, 2): 3, ("pop", 1, 2): 3})

    # and the emitter binds the thread variable for each copy
    seen = []
    rec = ir.Seq([ir.VThread("t", 2, ir.Seq([ir.Scope(L, [ir.Payload("ld", lambda env, rt: seen.append(env["t"]))])]))])
    ir.emit(ir.finalize(rec), {}, Runtime(HwConfig.load()))
    assert seen == [0, 1]


# ============================================================================ runtime: tokens
def flags(ins):
    return tuple(ins.f[k] for k in ("pop_prev", "pop_next", "push_prev", "push_next"))


def test_double_pop_commits_a_nop(hw):
    rt = Runtime(hw)
    rt.dep_pop(2, 1)
    rt.dep_pop(2, 1)
    rt.load_2d(MemType.INP, 100, 0, 4, 2, 8)
    assert len(rt.insns) == 2
    n0, ld = rt.insns
    # the first pending pop was committed as a load-stage NOP (LOAD, INP, all sizes 0)
    assert n0.kind == "mem" and n0.f["opcode"] == Opcode.LOAD and n0.f["memory_type"] == MemType.INP
    assert n0.f.get("x_size", 0) == 0
    assert flags(n0) == (0, 1, 0, 0)
    # the second rides on the LOAD INP itself
    assert ld.f["opcode"] == Opcode.LOAD and ld.f["memory_type"] == MemType.INP
    assert (ld.f["x_size"], ld.f["y_size"], ld.f["x_stride"], ld.f["dram_base"]) == (4, 2, 8, 100)
    assert flags(ld) == (0, 1, 0, 0)


def test_pop_prev_and_pop_next_share_one_instruction(hw):
    rt = Runtime(hw)
    rt.dep_pop(1, 2)  # pop_prev on compute
    rt.dep_pop(3, 2)  # pop_next on compute
    rt.push_kernel("k", lambda: _kernel(1))
    assert [i.f["memory_type"] for i in rt.insns[:1]] == [MemType.UOP]
    assert flags(rt.insns[0]) == (1, 1, 0, 0)   # LOAD UOP takes both pending pops
    assert flags(rt.insns[1]) == (0, 0, 0, 0)   # the GEMM none


def test_push_merges_into_last_instruction_of_the_stage(hw):
    rt = Runtime(hw)
    rt.load_2d(MemType.WGT, 0, 0, 1, 1, 1)
    rt.dep_push(1, 2)
    assert len(rt.insns) == 1 and flags(rt.insns[0]) == (0, 0, 0, 1)
    rt.dep_push(1, 2)  # flag already set -> a load-stage NOP with push_next
    assert len(rt.insns) == 2
    n = rt.insns[1]
    assert n.f["opcode"] == Opcode.LOAD and n.f["memory_type"] == MemType.INP and flags(n) == (0, 0, 0, 1)


def test_push_after_other_stage_appends_nop(hw):
    rt = Runtime(hw)
    rt.load_2d(MemType.INP, 0, 0, 1, 1, 1)
    rt.dep_push(2, 1)  # compute -> load, but the last instruction is a load
    assert len(rt.insns) == 2
    n = rt.insns[1]
    assert n.f["opcode"] == Opcode.LOAD and n.f["memory_type"] == MemType.UOP and flags(n) == (0, 0, 1, 0)
    # the store stage: a STORE takes push_prev; a second push gets a STORE NOP
    rt.store_2d(0, 0, 1, 1, 1)
    rt.dep_push(3, 2)
    rt.dep_push(3, 2)
    assert flags(rt.insns[2]) == (0, 0, 1, 0)
    assert rt.insns[3].f["opcode"] == Opcode.STORE and flags(rt.insns[3]) == (0, 0, 1, 0)


def test_push_commits_pending_pops_of_its_stage_first(hw):
    """dep_pop(2,1) then dep_push(1,2): the pending load pop becomes a NOP, and that NOP
    (a LOAD with x_size 0, i.e. stage-less) cannot take the push -> a second NOP."""
    rt = Runtime(hw)
    rt.dep_pop(2, 1)
    rt.dep_push(1, 2)
    assert [flags(i) for i in rt.insns] == [(0, 1, 0, 0), (0, 0, 0, 1)]
    assert all(i.f["opcode"] == Opcode.LOAD and i.f["memory_type"] == MemType.INP for i in rt.insns)


def test_load_store_tokens_do_not_exist(hw):
    with pytest.raises(ValueError):
        Runtime(hw).dep_pop(1, 3)


def test_synchronize_on_empty_queue(hw):
    """push(3,2): STORE NOP push_prev; push(1,2): last is a store -> LOAD NOP (INP)
    push_next; pop(3,2) -> compute pop_next pending; pop(1,2) -> pop_prev pending; commit:
    compute NOP (LOAD, UOP) with both pops; FINISH without flags."""
    rt = Runtime(hw)
    rt.synchronize()
    k = rt.insns
    assert [i.kind for i in k] == ["mem", "mem", "mem", "finish"]
    assert (k[0].f["opcode"], flags(k[0])) == (Opcode.STORE, (0, 0, 1, 0))
    assert (k[1].f["opcode"], k[1].f["memory_type"], flags(k[1])) == (Opcode.LOAD, MemType.INP, (0, 0, 0, 1))
    assert (k[2].f["opcode"], k[2].f["memory_type"], flags(k[2])) == (Opcode.LOAD, MemType.UOP, (1, 1, 0, 0))
    assert flags(k[3]) == (0, 0, 0, 0)


def test_synchronize_merges_into_last_store_and_load(hw):
    """After a STORE, push(3,2) merges into it; the LOAD INP is not the last instruction
    any more, so push(1,2) needs a NOP."""
    rt = Runtime(hw)
    rt.load_2d(MemType.INP, 0, 0, 1, 1, 1)
    rt.store_2d(0, 0, 1, 1, 1)
    rt.synchronize()
    k = rt.insns
    assert len(k) == 5
    assert flags(k[0]) == (0, 0, 0, 0)
    assert k[1].f["opcode"] == Opcode.STORE and flags(k[1]) == (0, 0, 1, 0)
    assert (k[2].f["memory_type"], flags(k[2])) == (MemType.INP, (0, 0, 0, 1))
    assert (k[3].f["memory_type"], flags(k[3])) == (MemType.UOP, (1, 1, 0, 0))
    assert k[4].kind == "finish"


def _kernel(n_uops, mode=0, loops=()):
    k = UopKernel(mode=mode)
    for lp in loops:
        k.loop_begin(*lp)
    for i in range(n_uops):
        k.push(i % 3, i, i)
    return k


def test_loop_program_stream_by_hand_and_on_fsim(hw):
    """The IR of test (b) with n = 2 emitted through the runtime, then synchronised:

    0 NOP-C push_prev          (push(2,1) before the loop)
    1 LOAD INP pop_next push_next
    2 LOAD UOP pop_prev        (first use of the kernel)
    3 GEMM push_prev
    4 LOAD INP pop_next push_next
    5 GEMM pop_prev push_prev  (kernel resident)
    -- pop(2,1) after the loop stays pending on the load stage --
    6 NOP-S push_prev          (sync: push(3,2))
    7 NOP-L pop_next           (sync: push(1,2) commits the pending load pop ...)
    8 NOP-L push_next          (... and the stage-less NOP cannot take the push)
    9 NOP-C pop_prev pop_next
    10 FINISH
    Every token queue balances; fsim runs it to FINISH without leftover tokens."""
    from vtatune.sim.dram import Dram
    from vtatune.sim.simulators import create_simulator

    dram = Dram()
    data = dram.alloc(4096)

    def ld(env, rt):
        rt.load_2d(MemType.INP, data // 16 + env["k"], 0, 1, 1, 1)

    def gemm(env, rt):
        rt.push_kernel("g", lambda: _kernel(1))

    root = ir.coproc_sync(ir.Seq([ir.For("k", 2, ir.Seq([ir.Scope(L, [ir.Payload("ld", ld)]),
                                                          ir.Scope(C, [ir.Payload("gemm", gemm)])]))]))
    rt = Runtime(hw)
    ir.emit(root, {}, rt)
    rt.synchronize()
    got = [(i.kind, i.f.get("opcode"), i.f.get("memory_type"), i.f.get("x_size", 0), flags(i)) for i in rt.insns]
    LD, ST = Opcode.LOAD, Opcode.STORE
    assert got == [
        ("mem", LD, MemType.UOP, 0, (0, 0, 1, 0)),
        ("mem", LD, MemType.INP, 1, (0, 1, 0, 1)),
        ("mem", LD, MemType.UOP, 1, (1, 0, 0, 0)),
        ("gemm", None, None, 0, (0, 0, 1, 0)),
        ("mem", LD, MemType.INP, 1, (0, 1, 0, 1)),
        ("gemm", None, None, 0, (1, 0, 1, 0)),
        ("mem", ST, MemType.UOP, 0, (0, 0, 1, 0)),
        ("mem", LD, MemType.INP, 0, (0, 1, 0, 0)),
        ("mem", LD, MemType.INP, 0, (0, 0, 0, 1)),
        ("mem", LD, MemType.UOP, 0, (1, 1, 0, 0)),
        ("finish", None, None, 0, (0, 0, 0, 0)),
    ]
    uop_addr = dram.alloc(4 * len(rt.uop_words))
    dram.write(uop_addr, np.array(rt.uop_words, dtype="<u4").tobytes())
    blob = rt.encode(uop_addr // 4)
    insn_addr = dram.alloc(len(blob))
    dram.write(insn_addr, blob)
    result = create_simulator("fsim", hw, dram).run(insn_addr, len(blob) // 16)
    assert result.leftover_tokens == {}
    assert result.counters["gemm_counter"] == 2  # two GEMMs of one micro-op, one iteration each


# ============================================================================ micro-op cache
def test_same_kernel_key_loads_once(hw):
    calls = []

    def rec():
        calls.append(1)
        return _kernel(3)
    rt = Runtime(hw)
    rt.push_kernel("a", rec)
    rt.push_kernel("a", rec)
    assert len(calls) == 1
    kinds = [(i.kind, i.f.get("memory_type")) for i in rt.insns]
    assert kinds == [("mem", MemType.UOP), ("gemm", None), ("gemm", None)]
    lu = rt.insns[0].f
    assert (lu["sram_base"], lu["x_size"], lu["y_size"], lu["x_stride"], lu["dram_base"]) == (0, 3, 1, 3, 0)
    for g in rt.insns[1:]:
        assert (g.f["uop_bgn"], g.f["uop_end"]) == (0, 3)
    # micro-op words: dst bits [0,11), src [11,22), wgt [22,32) (default config)
    assert rt.uop_words == [0 | (0 << 11) | (0 << 22), 1 | (1 << 11) | (1 << 22), 2 | (2 << 11) | (2 << 22)]


def test_two_kernels_get_consecutive_ranges_and_reload_after_sync(hw):
    rt = Runtime(hw)
    rt.push_kernel("a", lambda: _kernel(3))
    rt.push_kernel("b", lambda: _kernel(2))
    loads = [i.f for i in rt.insns if i.kind == "mem"]
    gemms = [i.f for i in rt.insns if i.kind == "gemm"]
    assert [(f["sram_base"], f["x_size"], f["dram_base"]) for f in loads] == [(0, 3, 0), (3, 2, 3)]
    assert [(g["uop_bgn"], g["uop_end"]) for g in gemms] == [(0, 3), (3, 5)]
    rt.synchronize()
    n = len(rt.insns)
    calls = []
    rt.push_kernel("b", lambda: calls.append(1) or _kernel(2))
    # the cache was invalidated: LOAD UOP again (at SRAM 0, new DMA range), but the
    # recorded kernel is memoised (no re-recording)
    assert calls == []
    lu, g = rt.insns[n].f, rt.insns[n + 1].f
    assert (lu["memory_type"], lu["sram_base"], lu["x_size"], lu["dram_base"]) == (MemType.UOP, 0, 2, 5)
    assert (g["uop_bgn"], g["uop_end"]) == (0, 2)
    assert len(rt.uop_words) == 7


def test_uop_ring_wraps_and_evicts(hw):
    """Two 5000-uop kernels do not fit in 8192 slots together: the second restarts at 0
    and evicts the first, so using the first again reloads it (at 0, evicting the second)."""
    rt = Runtime(hw)
    a, b = _kernel(5000), _kernel(5000)
    rt.push_kernel("a", lambda: a)
    rt.push_kernel("b", lambda: b)
    rt.push_kernel("a", lambda: a)
    loads = [i.f for i in rt.insns if i.kind == "mem"]
    assert [(f["sram_base"], f["x_size"], f["dram_base"]) for f in loads] == [(0, 5000, 0), (0, 5000, 5000),
                                                                            (0, 5000, 10000)]
    assert len(rt.insns) == 6


def test_kernel_larger_than_uop_buffer(hw):
    rt = Runtime(hw)
    big = _kernel(hw.uop_buff_depth + 1)
    with pytest.raises(InvalidConfigError) as err:
        rt.push_kernel("big", lambda: big)
    assert err.value.reason == "uop_kernel_too_large"
    assert err.value.category == ErrorCategory.RUNTIME_DEVICE == 4
    # exactly the buffer size fits
    rt.push_kernel("full", lambda: _kernel(hw.uop_buff_depth))
    assert rt.insns[0].f["x_size"] == 8192


def test_third_uop_loop_and_loop_after_uop():
    k = UopKernel(mode=0)
    k.loop_begin(2, 1, 1, 1)
    k.loop_begin(3, 2, 2, 2)
    with pytest.raises(InvalidConfigError) as err:
        k.loop_begin(4, 3, 3, 3)
    assert (err.value.reason, int(err.value.category)) == ("uop_too_many_loops", 4)
    k2 = UopKernel(mode=0)
    k2.push(0, 0, 0)
    with pytest.raises(InvalidConfigError) as err:
        k2.loop_begin(2, 1, 1, 1)
    assert int(err.value.category) == 4


def test_uop_hazard_window_is_two():
    k = UopKernel(mode=0)
    k.push(5, 0, 0)
    k.push(6, 0, 0)
    with pytest.raises(InvalidConfigError) as err:
        k.push(5, 1, 1)  # same dst as two uops back
    assert (err.value.reason, int(err.value.category)) == ("uop_hazard", 4)
    k = UopKernel(mode=0)
    for d in (5, 6, 7, 5, 6, 7):  # three apart is fine
        k.push(d, 0, 0)
    assert len(k.uops) == 6
    with pytest.raises(InvalidConfigError):
        k.push(7, 0, 0)  # back-to-back


def test_alu_single_loop_is_the_inner_loop(hw):
    rt = Runtime(hw)
    k = UopKernel(mode=1, alu_opcode=AluOp.MAX, use_imm=1, imm=0)
    k.loop_begin(10, 1, 1, 0)
    k.push(4, 4, 0)
    rt.push_kernel("relu", lambda: k)
    alu = rt.insns[1].f
    assert rt.insns[1].kind == "alu"
    assert (alu["iter_out"], alu["dst_factor_out"], alu["src_factor_out"]) == (1, 0, 0)
    assert (alu["iter_in"], alu["dst_factor_in"], alu["src_factor_in"]) == (10, 1, 1)
    assert (alu["alu_opcode"], alu["use_imm"], alu["imm"], alu["uop_bgn"], alu["uop_end"]) == (AluOp.MAX, 1, 0, 0, 1)


def test_alu_two_loops_and_gemm_single_loop(hw):
    rt = Runtime(hw)
    k = UopKernel(mode=1, alu_opcode=AluOp.ADD)
    k.loop_begin(4, 49, 1, 0)
    k.loop_begin(49, 1, 0, 0)
    k.push(0, 196, 0)
    rt.push_kernel("bias", lambda: k)
    alu = rt.insns[1].f
    assert (alu["iter_out"], alu["dst_factor_out"], alu["src_factor_out"]) == (4, 49, 1)
    assert (alu["iter_in"], alu["dst_factor_in"], alu["src_factor_in"]) == (49, 1, 0)
    assert alu["use_imm"] == 0
    # a GEMM kernel's single loop is the OUTER loop (loop 0 -> iter_out)
    g = UopKernel(mode=0)
    g.loop_begin(7, 1, 2, 3)
    g.push(0, 0, 0)
    rt.push_kernel("g", lambda: g)
    gf = rt.insns[3].f
    assert (gf["iter_out"], gf["dst_factor_out"], gf["src_factor_out"], gf["wgt_factor_out"]) == (7, 1, 2, 3)
    assert (gf["iter_in"], gf["dst_factor_in"], gf["src_factor_in"], gf["wgt_factor_in"]) == (1, 0, 0, 0)
    assert (gf["uop_bgn"], gf["uop_end"]) == (1, 2)


# ============================================================================ DMA patterns
def test_strides_and_drop_unit():
    assert strides_of([2, 3, 4]) == [12, 4, 1]
    assert drop_unit([(1, 100), (3, 16), (1, 5), (16, 1)]) == ([3, 16], [16, 1])


def test_fold_dense_tile():
    # (3, 4, 16) row-major: every dimension contiguous -> one row of 12 elements
    assert fold_buffer_dim([3, 4, 16], [64, 16, 1], "inp", 16) == ([12, 16], [16, 1])
    assert get_2d_pattern([3, 4, 16], [64, 16, 1], 16, "inp", allow_fold=True) == (12, 1, 12)
    # (2, 8) with elem_block 16: the whole region is one element -> 1-D
    assert fold_buffer_dim([2, 8], [8, 1], "inp", 16) == ([16], [1])
    assert get_2d_pattern([2, 8], [8, 1], 16, "inp", allow_fold=True) == (1, 1, 1)


def test_fold_inserts_unit_dim_when_next_stride_is_not_elem_block():
    # (3, 16) with row stride 48: base stops after the element; the next stride 48 != 16
    # -> a unit dimension of stride 16 is inserted, then (3, 48)
    assert fold_buffer_dim([3, 16], [48, 1], "x", 16) == ([3, 1, 16], [48, 16, 1])
    # -> 3-D flat pattern: x = 1 element, y = 3 rows, stride 3 elements
    assert get_2d_pattern([3, 16], [48, 1], 16, "x", allow_fold=True) == (1, 3, 3)


def test_input_tile_rows_cols():
    rows, cols, W = 3, 30, 56
    shape, strides = [rows, cols, 16], [W * 16, 16, 1]
    assert get_2d_pattern(shape, strides, 16, "local.inp_buffer", allow_fold=False) == (cols, rows, W)
    assert get_2d_pattern(shape, strides, 16, "local.inp_buffer", allow_fold=True) == (cols, rows, W)
    # full-width rows fold to one contiguous row
    assert get_2d_pattern([rows, W, 16], [W * 16, 16, 1], 16, "i", allow_fold=True) == (rows * W, 1, rows * W)


def test_store_region_not_2d():
    """A (co, h, w) store tile with w < OW and h > 1: (h, w) do not merge (w·16 != OW·16)
    and co has a third stride -> 4 dimensions after folding -> no 2-D pattern."""
    OH, OW, co, h, w = 56, 56, 2, 2, 28
    shape, strides = [co, h, w, 16], [OH * OW * 16, OW * 16, 16, 1]
    assert fold_buffer_dim(shape, strides, "acc", 16) == (shape, strides)
    with pytest.raises(InvalidConfigError) as err:
        get_2d_pattern(shape, strides, 16, "local.acc_buffer", allow_fold=True)
    assert err.value.reason == "dma_not_2d"
    assert err.value.category == ErrorCategory.COMPILE_HOST == 2
    # w == OW: (h, w) merge -> (co, h*w) is 2-D: x = h*w, y = co, stride = OH*OW
    assert get_2d_pattern([co, h, OW, 16], [OH * OW * 16, OW * 16, 16, 1], 16, "a", True) == (h * OW, co, OH * OW)
    # co == 1 (unit loop dropped): (h, w) is 2-D with stride OW
    assert get_2d_pattern([h, w, 16], [OW * 16, 16, 1], 16, "a", True) == (w, h, OW)


def test_non_flat_innermost_4x8():
    """BATCH 4 x BLOCK_IN 8 (elem_block 32) without folding: innermost (4, 8) forms the
    element; (rows, cols) the 2-D pattern."""
    rows, cols, W = 3, 5, 14
    shape, strides = [rows, cols, 4, 8], [W * 32, 32, 8, 1]
    assert get_2d_pattern(shape, strides, 32, "local.inp_buffer", allow_fold=False) == (cols, rows, W)
    assert get_2d_pattern([cols, 4, 8], [32, 8, 1], 32, "i", allow_fold=False) == (cols, 1, cols)
    assert get_2d_pattern([4, 8], [8, 1], 32, "i", allow_fold=False) == (1, 1, 1)
    # folding merges (4, 8) into one flat element of 32
    assert fold_buffer_dim(shape, strides, "i", 32) == ([rows, cols, 32], [W * 32, 32, 1])
    # an innermost block that is not exactly one element
    with pytest.raises(InvalidConfigError) as err:
        get_2d_pattern([rows, cols, 2, 8], [W * 16, 16, 8, 1], 32, "i", allow_fold=False)
    assert err.value.reason == "dma_not_2d"


def test_fold_errors():
    # innermost stride is not 1
    with pytest.raises(InvalidConfigError) as err:
        fold_buffer_dim([4, 16], [32, 2], "x", 16)
    assert err.value.reason == "dma_not_2d" and int(err.value.category) == 2
    # contiguous dims never reach exactly one element (8 * 3 = 24 skips 16)
    with pytest.raises(InvalidConfigError):
        fold_buffer_dim([3, 8], [8, 1], "x", 16)
    # an outer stride that is not a multiple of the element
    with pytest.raises(InvalidConfigError):
        fold_buffer_dim([3, 16], [24, 1], "x", 16)


def test_padded_load_dims():
    with pytest.raises(InvalidConfigError) as err:
        padded_load_dims(2, [True, True])
    assert (err.value.reason, int(err.value.category)) == ("pad_not_supported", 2)
    assert padded_load_dims(3, [True, True, False]) == (0, 1)
    assert padded_load_dims(4, [True, True, False, False]) == (0, 1)
    with pytest.raises(InvalidConfigError) as err:
        padded_load_dims(4, [False, True, True, False])  # pad on dim 2: an inner dimension
    assert err.value.reason == "pad_not_supported"
    assert padded_load_dims(5, [False, True, True, False, False]) == (1, 2)
    with pytest.raises(InvalidConfigError):
        padded_load_dims(5, [False, True, True, True, False])
    with pytest.raises(InvalidConfigError):
        padded_load_dims(6, [False] * 6)


# ============================================================================ ALU loops
def test_flatten_dense_tile_to_one_loop():
    co, h, w = 4, 2, 7
    loops = [(co, h * w, h * w), (h, w, w), (w, 1, 1)]
    assert flatten_alu_loops(loops) == [(co * h * w, 1, 1)]


def test_flatten_bias_broadcast_to_two_loops():
    co, h, w = 4, 2, 7
    loops = [(co, h * w, 1), (h, w, 0), (w, 1, 0)]
    assert flatten_alu_loops(loops) == [(co, h * w, 1), (h * w, 1, 0)]


def test_flatten_drops_unit_loops_and_keeps_gaps():
    assert flatten_alu_loops([(1, 99, 99), (3, 8, 8), (1, 5, 5), (4, 1, 1)]) == [(3, 8, 8), (4, 1, 1)]
    assert flatten_alu_loops([(1, 0, 0)]) == []


def test_alu_kernel_bias():
    co, h, w = 2, 3, 5
    k = alu_kernel([(co, h * w, 1), (h, w, 0), (w, 1, 0)], 10, 60, AluOp.ADD, None)()
    assert k.mode == 1 and k.use_imm == 0 and k.alu_opcode == AluOp.ADD
    assert k.loops == [(co, h * w, 1, 0), (h * w, 1, 0, 0)]
    assert k.uops == [(10, 60, 0)]


def test_alu_kernel_three_loops_fail_at_record_time():
    # three loops whose coefficients are not contiguous cannot be flattened to two
    rec = alu_kernel([(2, 100, 100), (3, 20, 20), (4, 1, 1)], 0, 0, AluOp.SHR, 8)
    with pytest.raises(InvalidConfigError) as err:
        rec()
    assert err.value.reason == "uop_too_many_loops"


# ============================================================================ SRAM
def test_check_allocations_threads(hw):
    assert hw.inp_buff_depth == 2048
    one = [Allocation("inp", "pad_data", 1100)]
    check_allocations(one, hw, 1)
    with pytest.raises(InvalidConfigError) as err:
        check_allocations(one, hw, 2)
    assert (err.value.reason, err.value.category) == ("inp_sram_overflow", ErrorCategory.COMPILE_HOST)
    check_allocations([Allocation("inp", "pad_data", 1024)], hw, 2)  # exactly full
    check_allocations([Allocation("inp", "pad_data", 2048)], hw, 1)
    with pytest.raises(InvalidConfigError) as err:
        check_allocations([Allocation("inp", "pad_data", 2049)], hw, 1)
    assert err.value.reason == "inp_sram_overflow"


def test_check_allocations_sums_live_buffers_per_scope(hw):
    accs = [Allocation("acc", "res", 1000), Allocation("acc", "bias", 24)]
    check_allocations(accs, hw, 2)  # 2 x 1024 = 2048 = ACC depth
    with pytest.raises(InvalidConfigError) as err:
        check_allocations([Allocation("acc", "res", 1000), Allocation("acc", "bias", 25)], hw, 2)
    assert err.value.reason == "acc_sram_overflow"
    # different scopes do not add up
    check_allocations([Allocation("inp", "a", 2048), Allocation("wgt", "b", 1024),
                       Allocation("acc", "c", 2048)], hw, 1)
    with pytest.raises(InvalidConfigError) as err:
        check_allocations([Allocation("wgt", "kernel", 513)], hw, 2)
    assert err.value.reason == "wgt_sram_overflow"


def test_closure_check():
    closure_check(0)
    closure_check(1)
    with pytest.raises(InvalidConfigError) as err:
        closure_check(2)
    assert (err.value.reason, int(err.value.category)) == ("closure_too_large", 4)


# ============================================================================ FoldUopLoop
def test_gemm_kernel_hand_example():
    """loops (ci 2, w 3, co 2) with base (10, 20, 30): ci and w fold into iter_out and
    iter_in; co is unrolled into two micro-ops: (10, 20, 30) and (10+3, 20+0, 30+2)."""
    loops = [Loop("ci", 2, 0, 4, 1), Loop("w", 3, 1, 2, 0), Loop("co", 2, 3, 0, 2)]
    k = gemm_kernel(loops, (10, 20, 30), reset=False)()
    assert k.mode == 0 and k.reset == 0
    assert k.loops == [(2, 0, 4, 1), (3, 1, 2, 0)]
    assert k.uops == [(10, 20, 30), (13, 20, 32)]


def test_gemm_kernel_reset_zeroes_src_and_wgt():
    loops = [Loop("w", 4, 1, 0, 0), Loop("co", 2, 8, 0, 0), Loop("h", 2, 4, 0, 0)]
    k = gemm_kernel(loops, (16, 99, 99), reset=True)()
    assert k.reset == 1
    assert k.loops == [(4, 1, 0, 0), (2, 8, 0, 0)]
    assert k.uops == [(16, 0, 0), (20, 0, 0)]


def test_gemm_kernel_unit_loops_do_not_count():
    loops = [Loop("ci", 1, 0, 9, 9), Loop("w", 3, 1, 1, 0), Loop("kw", 1, 0, 1, 1), Loop("co", 2, 3, 0, 1),
             Loop("h", 2, 6, 5, 0)]
    k = gemm_kernel(loops, (0, 0, 0), reset=False)()
    assert k.loops == [(3, 1, 1, 0), (2, 3, 0, 1)]
    assert k.uops == [(0, 0, 0), (6, 5, 0)]


def test_gemm_kernel_unrolled_second_loop_folds_one():
    loops = [Loop("a", 2, 8, 0, 0), Loop("b", 3, 1, 1, 1, unrolled=True), Loop("c", 2, 4, 2, 0)]
    k = gemm_kernel(loops, (0, 0, 0), reset=False)()
    assert k.loops == [(2, 8, 0, 0)]
    # b (outer) x c (inner): dst = 1*b + 4*c, src = b + 2c, wgt = b
    assert k.uops == [(0, 0, 0), (4, 2, 0), (1, 1, 1), (5, 3, 1), (2, 2, 2), (6, 4, 2)]


def test_gemm_kernel_guarded_outer_loop_folds_none():
    loops = [Loop("h", 3, 2, 0, 0, guarded=True), Loop("w", 2, 1, 0, 0)]
    k = gemm_kernel(loops, (0, 0, 0), reset=True, guard=lambda v: v["h"] != 1)()
    assert k.loops == []
    assert k.uops == [(0, 0, 0), (1, 0, 0), (4, 0, 0), (5, 0, 0)]


def test_gemm_kernel_unfolded_reduction_is_a_hazard():
    """An unrolled outer loop stops folding; the inner reduction loop (dst coefficient 0)
    then gives back-to-back micro-ops on the same accumulator -> uop_hazard."""
    loops = [Loop("a", 2, 1, 0, 0, unrolled=True), Loop("k", 3, 0, 1, 1)]
    with pytest.raises(InvalidConfigError) as err:
        gemm_kernel(loops, (0, 0, 0), reset=False)()
    assert (err.value.reason, int(err.value.category)) == ("uop_hazard", 4)
