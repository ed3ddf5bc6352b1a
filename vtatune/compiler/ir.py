"""A tiny loop IR for VTA host programs and the TVM passes that shape the instruction stream.

The TVM lowering of a VTA template produces a host loop nest whose leaves are
``coproc_scope`` statements (queue 1 = load, 2 = compute, 3 = store) holding DMA calls and
micro-op kernel pushes.  The exact instruction stream (including every dependence token and
NOP) follows from three passes, re-implemented here on our own IR:

* ``lift_attr_scope``: consecutive statements of the same queue form one scope;
* ``coproc_sync``: TVM's CoProcInstDepDetector — RAW/WAR tokens between consecutive scopes of
  different queues, loop-carried tokens and their balancing, inserted *inside* a scope's body
  or around a loop;
* ``inject_vthreads``: ``cthread`` virtual threads replicate every scope (with the tokens it
  holds) and every stand-alone token statement once per thread; loops stay shared.

The reference programs captured from TVM v0.14 match a pipeline of coproc_sync, vthread
injection, and coproc_sync again (the second pass adds one extra token per group); that is
what ``finalize`` runs.  Payloads are callables run by the emitter with the loop and thread
variables bound.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import check_known

LOAD_Q, COMPUTE_Q, STORE_Q = 1, 2, 3


@dataclass(eq=False)
class Dep:
    push: bool
    frm: int
    to: int


@dataclass(eq=False)
class Payload:
    name: str
    run: Callable[[dict, Any], None]  # run(env, runtime)


@dataclass(eq=False)
class Scope:
    qid: int
    body: list  # Payload | Dep | Seq


@dataclass(eq=False)
class For:
    var: str
    extent: int
    body: "Seq"


@dataclass(eq=False)
class If:
    cond: Callable[[dict], bool]
    then: "Seq"


@dataclass(eq=False)
class Seq:
    items: list = field(default_factory=list)


@dataclass(eq=False)
class VThread:
    var: str
    n: int
    body: Seq


def loop(var: str, extent: int, items: list) -> list:
    """A loop, or its body alone when the extent is 1 (TVM's simplifier drops unit loops);
    the variable is then bound to 0 by the emitter's default."""
    if extent == 1:
        return list(items)
    return [For(var, extent, Seq(list(items)))]


# ----------------------------------------------------------------------------- LiftAttrScope
def lift_attr_scope(node):
    """Merge runs of consecutive scopes with the same queue id into one scope."""
    if isinstance(node, Seq):
        out: list = []
        for item in node.items:
            item = lift_attr_scope(item)
            if isinstance(item, Scope) and out and isinstance(out[-1], Scope) and out[-1].qid == item.qid:
                out[-1] = Scope(item.qid, out[-1].body + item.body)
            else:
                out.append(item)
        return Seq(out)
    if isinstance(node, For):
        return For(node.var, node.extent, lift_attr_scope(node.body))
    if isinstance(node, If):
        return If(node.cond, lift_attr_scope(node.then))
    if isinstance(node, VThread):
        return VThread(node.var, node.n, lift_attr_scope(node.body))
    return node


# ----------------------------------------------------------------------------- CoProcSync
class _State:
    __slots__ = ("node", "enter_ctx", "exit_ctx", "enter_pop", "exit_push")

    def __init__(self):
        self.clear()

    def clear(self):
        self.node = None
        self.enter_ctx: set = set()
        self.exit_ctx: set = set()
        self.enter_pop: list = []
        self.exit_push: list = []

    def copy(self):
        s = _State()
        s.node, s.enter_ctx, s.exit_ctx = self.node, set(self.enter_ctx), set(self.exit_ctx)
        s.enter_pop, s.exit_push = list(self.enter_pop), list(self.exit_push)
        return s


class _DepDetector:
    """TVM's CoProcInstDepDetector (tir/transforms/coproc_sync.cc), on our IR."""

    def __init__(self):
        self.first = _State()
        self.last = _State()
        self.curr = _State()
        self.before: dict[int, list] = {}
        self.after: dict[int, list] = {}

    def plan(self, node) -> None:
        self.visit(node)
        if self.last.node is not None:
            self._fix_enter_pop(self.first)
            self._fix_exit_push(self.last)

    def visit(self, node) -> None:
        if isinstance(node, Seq):
            for item in node.items:
                self.visit(item)
        elif isinstance(node, Scope):
            self.curr.clear()
            self.curr.node = node
            self.curr.enter_ctx.add(node.qid)
            self.curr.exit_ctx.add(node.qid)
            self._update()
        elif isinstance(node, For):
            saved_first, saved_last = self.first, self.last
            self.first, self.last = _State(), _State()
            self.visit(node.body)
            self.curr.clear()
            if self.last.node is not None:
                self.curr.node = node
                self._inject(self.last, self.first, self.curr.exit_push, self.curr.enter_pop)
                self.curr.enter_ctx = set(self.first.enter_ctx)
                self.curr.exit_ctx = set(self.last.exit_ctx)
            self.first, self.last = saved_first, saved_last
            if self.curr.node is not None:
                self._update()
        elif isinstance(node, If):
            saved_first, saved_last = self.first, self.last
            self.first, self.last = _State(), _State()
            curr = _State()
            self.visit(node.then)
            if self.last.node is not None:
                curr.node = node
                self._fix_enter_pop(self.first)
                self._fix_exit_push(self.last)
                curr.enter_ctx |= self.first.enter_ctx
                curr.exit_ctx |= self.last.exit_ctx
            self.first, self.last = saved_first, saved_last
            self.curr = curr
            if self.curr.node is not None:
                self._update()
        elif isinstance(node, (VThread, Bind)):
            self.visit(node.body)
        # Dep and Payload statements outside scopes are not coprocessor scopes.

    def _update(self) -> None:
        if self.last.node is not None:
            self._inject(self.last, self.curr, [], [])
            self.last = self.curr.copy()
        else:
            self.first = self.curr.copy()
            self.last = self.curr.copy()

    def _inject(self, prev: _State, nxt: _State, prev_exit_push: list, next_enter_pop: list) -> None:
        prev_exit_push.clear()
        next_enter_pop.clear()
        if (not prev.exit_push and not nxt.enter_pop and len(prev.exit_ctx) == 1
                and len(nxt.enter_ctx) == 1):
            frm, to = next(iter(prev.exit_ctx)), next(iter(nxt.enter_ctx))
            if frm != to:
                self.after.setdefault(id(prev.node), [prev.node]).append(Dep(True, frm, to))
                self.before.setdefault(id(nxt.node), [nxt.node]).append(Dep(False, frm, to))
                prev_exit_push.append((frm, to))
                next_enter_pop.append((frm, to))
            return
        vpush = list(prev.exit_push)
        vpop = list(nxt.enter_pop)
        pending = [(f, t) for f in sorted(prev.exit_ctx) for t in sorted(nxt.enter_ctx) if f != t]
        prev_after, next_before = [], []
        for p in pending:
            if p not in prev.exit_push:
                vpush.append(p)
                prev_after.append(Dep(True, *p))
            if p not in nxt.enter_pop:
                vpop.append(p)
                next_before.append(Dep(False, *p))
        for p in vpush:
            if p not in vpop:
                prev_after.append(Dep(False, *p))
            else:
                prev_exit_push.append(p)
        for p in vpop:
            if p not in vpush:
                next_before.append(Dep(True, *p))
            else:
                next_enter_pop.append(p)
        if prev_after:
            self.after.setdefault(id(prev.node), [prev.node]).extend(prev_after)
        if next_before:
            self.before.setdefault(id(nxt.node), [nxt.node]).extend(next_before)

    def _fix_enter_pop(self, state: _State) -> None:
        for p in state.enter_pop:
            self.before.setdefault(id(state.node), [state.node]).append(Dep(True, *p))

    def _fix_exit_push(self, state: _State) -> None:
        for p in state.exit_push:
            self.after.setdefault(id(state.node), [state.node]).append(Dep(False, *p))


def coproc_sync(root):
    """Insert dependence push/pop statements (one application of TVM's CoProcSync)."""
    det = _DepDetector()
    det.plan(root)
    before = {k: v[1:] for k, v in det.before.items()}
    after = {k: v[1:] for k, v in det.after.items()}

    def rebuild(node):
        if isinstance(node, Seq):
            out = []
            for item in node.items:
                new = rebuild(item)
                key = id(item.body) if isinstance(item, Bind) else id(item)
                if isinstance(item, (For, If, Bind)):
                    out.extend(before.get(key, []))
                    out.append(new)
                    out.extend(after.get(key, []))
                else:
                    out.append(new)
            return Seq(out)
        if isinstance(node, Bind):
            return Bind(node.values, rebuild(node.body))
        if isinstance(node, Scope):
            # The state's node is the attribute's body: tokens go inside the scope.
            return Scope(node.qid, before.get(id(node), []) + list(node.body) + after.get(id(node), []))
        if isinstance(node, For):
            return For(node.var, node.extent, rebuild(node.body))
        if isinstance(node, If):
            return If(node.cond, rebuild(node.then))
        if isinstance(node, VThread):
            return VThread(node.var, node.n, rebuild(node.body))
        return node

    new = rebuild(root)
    if not isinstance(root, Seq) and (id(root) in before or id(root) in after):
        new = Seq(before.get(id(root), []) + [new] + after.get(id(root), []))
    return new


# ----------------------------------------------------------------------------- vthreads
@dataclass(eq=False)
class Bind:
    """A statement executed with extra variable bindings (one virtual-thread copy)."""

    values: dict
    body: Any


def inject_vthreads(node):
    """Replace ``VThread`` attributes: scopes, stand-alone tokens and thread-dependent
    conditions are replicated once per thread, consecutively; loops stay shared."""
    if isinstance(node, Seq):
        out = []
        for item in node.items:
            r = inject_vthreads(item)
            out.extend(r.items if isinstance(r, Seq) and isinstance(item, VThread) else [r])
        return Seq(out)
    if isinstance(node, VThread):
        return Seq(_replicate(node.var, node.n, node.body).items)
    if isinstance(node, For):
        return For(node.var, node.extent, inject_vthreads(node.body))
    return node


def _replicate(var: str, n: int, node):
    if isinstance(node, Seq):
        out = []
        for item in node.items:
            r = _replicate(var, n, item)
            out.extend(r if isinstance(r, list) else [r])
        return Seq(out)
    if isinstance(node, For):
        return For(node.var, node.extent, _replicate(var, n, node.body))
    if isinstance(node, VThread):  # nested virtual threads
        return _replicate(var, n, Seq(_replicate(node.var, node.n, node.body).items))
    # Scope, Dep, If, Bind: one copy per thread, in thread order (distinct objects, so the
    # second dependence pass can insert tokens into each copy separately)
    return [Bind({var: t}, _clone(node)) for t in range(n)]


def _clone(node):
    if isinstance(node, Seq):
        return Seq([_clone(i) for i in node.items])
    if isinstance(node, For):
        return For(node.var, node.extent, _clone(node.body))
    if isinstance(node, If):
        return If(node.cond, _clone(node.then))
    if isinstance(node, Scope):
        return Scope(node.qid, [_clone(i) for i in node.body])
    if isinstance(node, Bind):
        return Bind(dict(node.values), _clone(node.body))
    if isinstance(node, Dep):
        return Dep(node.push, node.frm, node.to)
    if isinstance(node, VThread):
        return VThread(node.var, node.n, _clone(node.body))
    return node  # payloads are immutable


SYNC_MODES = ("tvm-0.14", "single")
#: The original stack's scheme: the default of the compiler's own functions (``finalize``,
#: ``compile_program``, ``sweep``), so that they reproduce TVM v0.14 unless told otherwise.
REFERENCE_SYNC = "tvm-0.14"


def check_sync(sync) -> str:
    """A token-scheme name, refused (``ConfigurationError`` on ``sync``) unless known."""
    return check_known("sync", sync, SYNC_MODES, "token scheme")


def finalize(root, sync: str = REFERENCE_SYNC):
    """The lowering pipeline that shapes the stream: lift scopes, sync, threads, and — as the
    TVM v0.14 stack does (the reference programs carry its extra tokens) — sync again.
    ``sync="single"`` stops after the thread injection: one token per thread and group, the
    stream of earlier stacks (INFERRED from the TopHub timings, docs/tsim.md)."""
    check_sync(sync)
    root = lift_attr_scope(root)
    root = coproc_sync(root)
    root = inject_vthreads(root)
    if sync == "single":
        return root
    return coproc_sync(_unbind_scopes(root))


def _unbind_scopes(node):
    """Make replicated scopes visible to the second coproc_sync (a Bind around a Scope is
    still that scope for the dependence detector)."""
    if isinstance(node, Seq):
        return Seq([_unbind_scopes(i) for i in node.items])
    if isinstance(node, For):
        return For(node.var, node.extent, _unbind_scopes(node.body))
    if isinstance(node, Bind) and isinstance(node.body, Scope):
        return _BoundScope(node.body.qid, [Bind(node.values, x) for x in node.body.body], node.values)
    if isinstance(node, Bind) and isinstance(node.body, If):
        return Bind(node.values, If(node.body.cond, _unbind_scopes(node.body.then)))
    return node


class _BoundScope(Scope):
    def __init__(self, qid, body, values):
        super().__init__(qid, body)
        self.values = values


# ----------------------------------------------------------------------------- emission
def emit(node, env: dict, runtime) -> None:
    """Run the host program: loops iterate, tokens and payloads call the runtime."""
    compile_host(node)(env, runtime)


def _flat_items(node) -> list:
    """The statements of a Seq or Scope with nested Seqs and Scopes spliced in (they only
    group statements: the emitter runs them in order either way)."""
    out = []
    for item in (node.items if isinstance(node, Seq) else node.body):
        if isinstance(item, (Seq, Scope)):
            out.extend(_flat_items(item))
        else:
            out.append(item)
    return out


def _compile_deps(deps: list) -> Callable[[dict, Any], None]:
    """Consecutive dependence statements as one closure (in order)."""
    plan = tuple((d.push, d.frm, d.to) for d in deps)

    def run_deps(env, rt):
        push, pop = rt.dep_push, rt.dep_pop
        for is_push, frm, to in plan:
            if is_push:
                push(frm, to)
            else:
                pop(frm, to)
    return run_deps


def compile_host(node) -> Callable[[dict, Any], None]:
    """Turn the IR into nested Python closures once (no per-visit type dispatch): the host
    program of a large layer runs hundreds of thousands of statements."""
    if isinstance(node, Seq) or isinstance(node, Scope):
        fns = []
        items = _flat_items(node)
        k = 0
        while k < len(items):  # a run of token statements becomes one closure
            j = k
            while j < len(items) and isinstance(items[j], Dep):
                j += 1
            if j - k > 1:
                fns.append(_compile_deps(items[k:j]))
                k = j
            else:
                fns.append(compile_host(items[k]))
                k += 1
        if len(fns) == 1:
            return fns[0]

        def run_seq(env, rt, fns=tuple(fns)):
            for f in fns:
                f(env, rt)
        return run_seq
    if isinstance(node, For):
        body, var, extent = compile_host(node.body), node.var, node.extent

        def run_for(env, rt):
            for i in range(extent):
                env[var] = i
                body(env, rt)
            env[var] = 0
        return run_for
    if isinstance(node, Bind):
        body, items = compile_host(node.body), tuple(node.values.items())

        def run_bind(env, rt):
            saved = [(k, env.get(k, 0)) for k, _ in items]
            env.update(items)
            body(env, rt)
            env.update(saved)
        return run_bind
    if isinstance(node, If):
        cond, then = node.cond, compile_host(node.then)

        def run_if(env, rt):
            if cond(env):
                then(env, rt)
        return run_if
    if isinstance(node, Dep):
        frm, to = node.frm, node.to
        if node.push:
            return lambda env, rt: rt.dep_push(frm, to)
        return lambda env, rt: rt.dep_pop(frm, to)
    if isinstance(node, Payload):
        return node.run
    if isinstance(node, VThread):
        raise TypeError("virtual threads must be injected before emission")
    raise TypeError(f"unknown IR node {node!r}")
