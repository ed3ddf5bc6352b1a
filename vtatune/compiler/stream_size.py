"""The runtime's stream-length limit, decided without emitting when bounds allow it.

The runtime refuses a run whose instruction buffer would exceed ``VTA_MAX_XFER``
(``Runtime._check_size``: more than ``MAX_XFER / 16 - 6`` instructions before FINISH).
Counting the finalized host program's statements, with loop trip counts, brackets the
length exactly enough to decide almost every configuration:

* every payload (DMA, GEMM, ALU) creates exactly one instruction, so the payloads outside
  bound checks are a lower bound;
* a micro-op kernel push adds at most one ``LOAD UOP``; every token push or pop adds at
  most one NOP (a pending pop is committed by one NOP covering both directions); the end
  of the run adds at most five before FINISH — so payloads (bound checks counted as taken)
  + kernel pushes + tokens + 5 is an upper bound.
* Before any dependence pass, each scope instance can receive at most one push and one pop
  per neighbouring queue per pass (4), and the ``tvm-0.14`` scheme runs two passes: with
  8 tokens per scope the un-finalized program bounds the stream without running the
  passes at all (the common case: a few thousand instructions).

Only when the limit falls between the bounds is the stream counted exactly, by a counting
emission that stops iterating a loop once its iterations repeat (``count_instructions``).
"""
from __future__ import annotations

from ..hardware import isa
from . import ir
from .runtime import MAX_XFER, Runtime, runtime_error

LIMIT = MAX_XFER // isa.INSN_BYTES - 6
DMA_PAYLOADS = ("load_inp", "load_wgt", "load_bias", "store")


def statement_counts(node, mult: int = 1, guarded: bool = False, acc=None) -> dict:
    """{"payloads_sure", "payloads", "kernels", "tokens"} executed by the host program."""
    acc = acc if acc is not None else {"payloads_sure": 0, "payloads": 0, "kernels": 0, "tokens": 0,
                                       "scopes": 0}
    if isinstance(node, ir.Seq):
        for item in node.items:
            statement_counts(item, mult, guarded, acc)
    elif isinstance(node, ir.Scope):
        acc["scopes"] += mult
        for item in node.body:
            statement_counts(item, mult, guarded, acc)
    elif isinstance(node, ir.VThread):  # before thread injection: one copy per thread
        statement_counts(node.body, mult * node.n, guarded, acc)
    elif isinstance(node, ir.For):
        statement_counts(node.body, mult * node.extent, guarded, acc)
    elif isinstance(node, ir.If):
        statement_counts(node.then, mult, True, acc)
    elif isinstance(node, ir.Bind):
        statement_counts(node.body, mult, guarded, acc)
    elif isinstance(node, ir.Dep):
        acc["tokens"] += mult
    elif isinstance(node, ir.Payload):
        acc["payloads"] += mult
        if not guarded:
            acc["payloads_sure"] += mult
        if node.name not in DMA_PAYLOADS:
            acc["kernels"] += mult
    else:
        raise TypeError(f"unknown IR node {node!r}")
    return acc


def _built(low):
    """The host program of ``low`` (regions placed at 0: addresses change no count)."""
    low.place({name: (0, size) for name, size in low.region_sizes().items()})
    return low.build_ir()


def _bounds(counts: dict) -> tuple[int, int]:
    return counts["payloads_sure"], counts["payloads"] + counts["kernels"] + counts["tokens"] + 5


def stream_bounds(low, sync: str) -> tuple[int, int]:
    """(lower, upper) bound of the instructions before FINISH."""
    return _bounds(statement_counts(ir.finalize(_built(low), sync)))


class CountingRuntime(Runtime):
    """The runtime without its length limit, counting the iterations it skips."""

    def __init__(self, hw):
        super().__init__(hw)
        self._max_insns = 1 << 62   # counted, compared with the limit at the end
        self.skipped = 0            # instructions of iterations not emitted
        self.pushed: list = []

    def push_kernel(self, key, record) -> None:
        self.pushed.append(key)
        super().push_kernel(key, record)

    def count(self) -> int:
        return len(self) + self.skipped


def _has_if(node, memo: dict) -> bool:
    key = id(node)
    if key not in memo:
        if isinstance(node, ir.If):
            memo[key] = True
        elif isinstance(node, ir.Seq):
            memo[key] = any(_has_if(i, memo) for i in node.items)
        elif isinstance(node, ir.Scope):
            memo[key] = any(_has_if(i, memo) for i in node.body)
        elif isinstance(node, (ir.For, ir.Bind)):
            memo[key] = _has_if(node.body, memo)
        else:
            memo[key] = False
    return memo[key]


def _count(node, env: dict, rt: CountingRuntime, memo: dict) -> None:
    """Emit ``node`` into the counting runtime; a loop without bound checks stops iterating
    once two consecutive iterations start from the same runtime state and push the same
    micro-op kernels (every later iteration then adds the same count)."""
    if isinstance(node, ir.Seq):
        for item in node.items:
            _count(item, env, rt, memo)
    elif isinstance(node, ir.Scope):
        for item in node.body:
            _count(item, env, rt, memo)
    elif isinstance(node, ir.For):
        periodic = not _has_if(node.body, memo)
        prev = None
        for i in range(node.extent):
            env[node.var] = i
            start, n0, k0 = rt.merge_state(), rt.count(), len(rt.pushed)
            _count(node.body, env, rt, memo)
            if not periodic:
                continue
            step = (start, rt.count() - n0, tuple(rt.pushed[k0:]))
            del rt.pushed[k0:]
            if (prev is not None and prev[0] == start and prev[1:] == step[1:]
                    and rt.merge_state() == start):
                rt.skipped += (node.extent - 1 - i) * step[1]
                break
            prev = step
        env[node.var] = 0
    elif isinstance(node, ir.If):
        if node.cond(env):
            _count(node.then, env, rt, memo)
    elif isinstance(node, ir.Bind):
        saved = [(k, env.get(k, 0)) for k in node.values]
        env.update(node.values)
        _count(node.body, env, rt, memo)
        env.update(saved)
    elif isinstance(node, ir.Dep):
        (rt.dep_push if node.push else rt.dep_pop)(node.frm, node.to)
    elif isinstance(node, ir.Payload):
        node.run(env, rt)
    else:
        raise TypeError(f"unknown IR node {node!r}")


def _count_program(program, hw) -> int:
    rt = CountingRuntime(hw)
    _count(program, {}, rt, {})
    return rt.count()


def count_instructions(low, hw, sync: str) -> int:
    """The exact number of instructions emission creates before FINISH."""
    return _count_program(ir.finalize(_built(low), sync), hw)


TOKENS_PER_SCOPE = 8


def check_stream_size(low, hw, sync: str) -> None:
    """``insn_stream_too_large`` exactly when emission would raise it."""
    root = _built(low)  # built once: counted raw, then finalized (after the raw count)
    raw = statement_counts(root)
    if raw["payloads"] + raw["kernels"] + TOKENS_PER_SCOPE * raw["scopes"] + 5 <= LIMIT:
        return
    program = ir.finalize(root, sync)
    lower, upper = _bounds(statement_counts(program))
    if upper <= LIMIT:
        return
    n = lower if lower > LIMIT else _count_program(program, hw)
    if n > LIMIT:
        raise runtime_error("insn_stream_too_large",
                            f"more than {LIMIT} instructions in one run ({n:,})")
