"""A pool of measurement worker processes with build/run timeouts.

Each worker is a long-lived process fed through a pipe.  A worker that does not answer
within its deadline is killed (BUILD_TIMEOUT or RUN_TIMEOUT, by the phase it last reported)
and a worker that dies is recorded as an error; either way a fresh worker takes its place
and the batch goes on.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from multiprocessing.connection import wait
from typing import Callable, Sequence

from ..errors import ErrorCategory, WorkerStartError
from .measure import MeasureInput, MeasureResult


def _worker(conn, measure_fn) -> None:
    """Worker loop: receive (task id, input), report the phase, send the result dict.
    Ctrl-C belongs to the parent (it kills and replaces workers), so workers ignore it; a
    parent that went away (killed, SIGTERM) ends the worker quietly, without a traceback."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        # import what unpickling an input needs before saying ready: the module imports
        # must not count against the first measurement's build timeout
        import vtatune.measure.measure  # noqa: F401
        conn.send(("ready", None, None))
        while True:
            msg = conn.recv()
            if msg is None:
                return
            tid, inp = msg
            result = measure_fn(inp, lambda phase: conn.send((tid, "phase", phase)))
            conn.send((tid, "done", result.to_dict()))
    except (EOFError, OSError):  # the parent closed the pipe
        return


def _measure_with_phases(inp: MeasureInput, report: Callable[[str], None]) -> MeasureResult:
    from .measure import measure_one
    return measure_one(inp, on_phase=report)


class MeasurePool:
    def __init__(self, workers: int = 2, build_timeout: float = 60.0, run_timeout: float = 120.0,
                 measure_fn: Callable | None = None, start_method: str = "spawn",
                 start_timeout: float = 120.0):
        self.n = max(1, int(workers))
        self.start_timeout = start_timeout
        self.build_timeout = build_timeout
        self.run_timeout = run_timeout
        self.measure_fn = measure_fn or _measure_with_phases
        self.ctx = mp.get_context(start_method)
        self.procs: list = [None] * self.n
        self.conns: list = [None] * self.n
        self.replaced = 0

    def _spawn(self, i: int) -> None:
        if self.conns[i] is not None:  # a worker that died while idle: drop its pipe
            try:
                self.conns[i].close()
            except OSError:
                pass
        parent, child = self.ctx.Pipe()
        p = self.ctx.Process(target=_worker, args=(child, self.measure_fn), daemon=True)
        p.start()
        child.close()
        self.procs[i], self.conns[i] = p, parent
        # a worker is fed only once it has imported the measurement code
        deadline = time.monotonic() + self.start_timeout
        while p.is_alive() and time.monotonic() < deadline:
            if parent.poll(0.1):
                try:
                    parent.recv()
                except (EOFError, OSError):
                    break
                return
        code = p.exitcode
        self._kill(i)
        raise WorkerStartError(f"measurement worker {i} did not start within "
                               f"{self.start_timeout:.0f} s (exit code {code})")

    def _kill(self, i: int) -> None:
        p = self.procs[i]
        if p is not None and p.is_alive():
            p.kill()
            p.join(5)
        try:
            self.conns[i].close()
        except Exception:
            pass
        self.procs[i] = self.conns[i] = None
        self.replaced += 1

    def measure(self, inputs: Sequence[MeasureInput]) -> list[MeasureResult]:
        """Measure a batch; results in input order."""
        results: list = [None] * len(inputs)
        pending = list(range(len(inputs)))[::-1]
        busy: dict[int, tuple[int, float, str]] = {}  # worker -> (task, phase start, phase)
        for i in range(self.n):
            if self.procs[i] is None or not self.procs[i].is_alive():
                self._spawn(i)
        while pending or busy:
            for i in range(self.n):
                if i not in busy and pending:
                    if self.procs[i] is None:
                        self._spawn(i)
                    tid = pending.pop()
                    self.conns[i].send((tid, inputs[tid]))
                    busy[i] = (tid, time.monotonic(), "build")
            ready = wait([self.conns[i] for i in busy], timeout=0.2)
            for i in list(busy):
                tid, t0, phase = busy[i]
                conn = self.conns[i]
                if conn in ready:
                    try:
                        _, kind, payload = conn.recv()
                    except (EOFError, OSError):
                        results[tid] = MeasureResult.failure(
                            ErrorCategory.UNKNOWN_ERROR, "worker_crashed",
                            f"measurement worker died during {phase}", time.time() - (time.monotonic() - t0))
                        del busy[i]
                        self._kill(i)
                        continue
                    if kind == "phase":
                        busy[i] = (tid, time.monotonic(), payload)
                    else:
                        results[tid] = MeasureResult.from_dict(payload)
                        del busy[i]
                    continue
                limit = self.build_timeout if phase == "build" else self.run_timeout
                if time.monotonic() - t0 > limit:
                    cat, reason = ((ErrorCategory.BUILD_TIMEOUT, "build_timeout") if phase == "build"
                                   else (ErrorCategory.RUN_TIMEOUT, "run_timeout"))
                    results[tid] = MeasureResult.failure(cat, reason, f"{phase} exceeded {limit:.0f} s; "
                                                         "worker killed and replaced", time.time() - limit)
                    del busy[i]
                    self._kill(i)
                elif not self.procs[i].is_alive():
                    results[tid] = MeasureResult.failure(
                        ErrorCategory.UNKNOWN_ERROR, "worker_crashed",
                        f"measurement worker died (exit code {self.procs[i].exitcode}) during {phase}", time.time())
                    del busy[i]
                    self._kill(i)
        return results

    def close(self) -> None:
        for i in range(self.n):
            if self.conns[i] is not None:
                try:
                    self.conns[i].send(None)
                except Exception:
                    pass
            p = self.procs[i]
            if p is not None:
                p.join(2)
                if p.is_alive():
                    p.kill()
        self.procs = [None] * self.n
        self.conns = [None] * self.n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
