"""Measurements on a Dask distributed cluster, with the interface of ``MeasurePool``.

``DaskMeasurePool(address | cluster | client)`` submits ``measure_one`` of each input as one
Dask task and returns the results in input order, so the tuning session, the exhaustive
study and every database write stay in the submitting process: the cluster only replaces
where measurements run.  ``DaskMeasurePool.local(n)`` starts (and owns) a ``LocalCluster``
of ``n`` single-thread worker processes.

What the local pool guarantees holds here too:

* **Timeouts, per phase.** The task reports the start of its build and run phases as Dask
  events (``Worker.log_event`` on a topic this pool subscribes to), and the clock of a phase
  starts when its report reaches this process — so time spent queued or waiting for a
  restarted worker never counts.  A build longer than ``build_timeout`` is recorded as
  ``BUILD_TIMEOUT`` (reason ``build_timeout``), a run longer than ``run_timeout`` as
  ``RUN_TIMEOUT`` (``run_timeout``), as the local pool does; the future is cancelled and the
  worker restarted through its nanny (a hung thread cannot be stopped otherwise).  A task no
  worker starts within ``start_timeout`` is recorded as ``worker_crashed``.
* **Dead workers.** A worker that dies during a measurement makes Dask report
  ``KilledWorker`` (or a cancelled/lost future): recorded as ``UNKNOWN_ERROR`` with reason
  ``worker_crashed``, as the local pool records a dead worker — never a lost result or a
  hang.  A cluster this pool starts is configured with ``allowed-failures: 0``: Dask does
  not re-run a measurement whose worker died, as the local pool does not.  A scheduler
  started elsewhere keeps its own setting (default 3 retries); the pool logs a warning.
* Measured again (at most twice), never recorded as a failure: a task the scheduler handed
  to a worker this pool was restarting after another task's timeout, and a finished result
  lost with its worker before it came back — neither is the configuration's doing.
* Any other task failure (a worker without vtatune, an unpicklable input) is recorded as
  ``worker_crashed`` with the exception in the message.  A task still pending after
  ``start_timeout + build_timeout + run_timeout`` is recorded as ``worker_crashed``: a
  batch always ends.
"""
from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import deque
from typing import Any, Callable, Sequence

from ..errors import ConfigurationError, ErrorCategory, MissingDependencyError, WorkerStartError
from .measure import MeasureInput, MeasureResult
from .pool import _measure_with_phases

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'vtatune[cluster]'"


def require_distributed():
    """The ``distributed`` module, or ``MissingDependencyError`` naming the extra."""
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(f"the Dask executor needs dask and distributed: "
                                     f"{INSTALL_HINT} ({exc})") from None
    return distributed


# ---- what runs on a worker (module-level: pickled by reference, so every worker needs
# ---- vtatune installed, the same version as the submitting process)
def _run_on_worker(inp: MeasureInput, measure_fn: Callable, topic: str, key: str) -> dict:
    from distributed import get_worker
    worker = get_worker()
    return measure_fn(inp, lambda phase: worker.log_event(topic, [key, phase])).to_dict()


def _probe() -> str:
    """Import what a measurement needs (so imports do not count against the first
    measurement's timeout) and say which vtatune the worker has."""
    import vtatune.measure.measure  # noqa: F401
    from vtatune._version import __version__
    return __version__


def _check_positive(field: str, value, *, integer: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    if not ok or value <= 0:
        kind = "a positive integer" if integer else "a positive number of seconds"
        raise ConfigurationError(field, f"must be {kind}, got {value!r}")
    return value


class DaskMeasurePool:
    """``MeasurePool``'s interface (``measure``, ``n``, ``close``, context manager) on a
    Dask cluster.

    ``target``: a scheduler address (``tcp://HOST:PORT``), a Dask cluster object (e.g. a
    ``LocalCluster``) or a ``distributed.Client``.  A client or cluster passed in is not
    closed by ``close()``; the client this pool opens is.  ``workers`` caps the
    measurements in flight (default: every worker thread of the cluster).
    ``measure_fn(inp, report) -> MeasureResult`` replaces the measurement (tests), as in
    ``MeasurePool``; it must be importable on the workers.
    """

    def __init__(self, target: Any, *, workers: int | None = None,
                 build_timeout: float = 60.0, run_timeout: float = 120.0,
                 measure_fn: Callable | None = None, connect_timeout: float = 10.0,
                 start_timeout: float = 120.0, label: str | None = None):
        distributed = require_distributed()
        self.max_workers = _check_positive("workers", workers, integer=True, allow_none=True)
        self.build_timeout = _check_positive("build_timeout", build_timeout)
        self.run_timeout = _check_positive("run_timeout", run_timeout)
        self.connect_timeout = _check_positive("connect_timeout", connect_timeout)
        self.start_timeout = _check_positive("start_timeout", start_timeout)
        self.measure_fn = measure_fn or _measure_with_phases
        self.cluster = None          # set when this pool owns its cluster (``local``)
        self.replaced = 0            # workers restarted after a timeout or found dead
        self._own_client = False
        self._closed = False
        if isinstance(target, distributed.Client):
            self.client = target
        elif isinstance(target, str) or hasattr(target, "scheduler_address"):
            address = target if isinstance(target, str) else target.scheduler_address
            try:
                self.client = distributed.Client(target, timeout=connect_timeout,
                                                 set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ConfigurationError("executor", f"no Dask scheduler answers at {address} "
                                         f"within {connect_timeout:g} s ({exc.__class__.__name__})"
                                         ) from None
            self._own_client = True
        else:
            raise ConfigurationError("executor", "expected a scheduler address, a Dask cluster "
                                                 f"or a distributed.Client, got {target!r}")
        self.label = label or f"dask {self.client.scheduler.address}"
        # task key -> (phase, monotonic time its report arrived); filled on the client's
        # event-loop thread by the subscription
        self._phases: dict[str, tuple[str, float]] = {}
        self._restarted: set[str] = set()  # worker addresses this pool restarted
        self._topic = f"vtatune-phase-{uuid.uuid4().hex[:12]}"
        try:
            self.client.subscribe_topic(self._topic, self._on_phase)
            self._check_workers()
            self._warn_on_retries()
            self.n = self._slots()
        except BaseException:
            self.close()
            raise

    @classmethod
    def local(cls, n_workers: int = 2, **kwargs) -> "DaskMeasurePool":
        """A pool on a ``LocalCluster`` of ``n_workers`` single-thread worker processes,
        started now and closed with the pool; a dead worker's task is never retried."""
        _check_positive("workers", n_workers, integer=True)
        require_distributed()
        import dask
        from distributed import LocalCluster
        with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                              "distributed.scheduler.worker-saturation": 1.0}):
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=logging.ERROR)
        try:
            pool = cls(cluster, label=f"dask-local:{n_workers}", **kwargs)
        except BaseException:
            cluster.close()
            raise
        pool.cluster = cluster
        return pool

    # ---- cluster state
    def _check_workers(self) -> None:
        """At least one worker, each with this vtatune importable (and warmed up)."""
        try:
            self.client.wait_for_workers(1, timeout=self.connect_timeout)
        except TimeoutError:
            raise ConfigurationError("executor", f"the Dask scheduler at "
                                     f"{self.client.scheduler.address} has no worker (waited "
                                     f"{self.connect_timeout:g} s); start some with "
                                     "`dask worker ADDRESS`") from None
        from .._version import __version__
        answers = self.client.run(_probe, on_error="return")
        for addr, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                raise ConfigurationError("executor", f"Dask worker {addr} cannot run vtatune "
                                         f"measurements ({type(answer).__name__}: {answer}); "
                                         "install vtatune on every worker") from None
            if answer != __version__:
                raise ConfigurationError("executor", f"Dask worker {addr} has vtatune {answer}, "
                                         f"this process {__version__}; install the same "
                                         "version on every worker")

    def _warn_on_retries(self) -> None:
        try:
            allowed = self.client.run_on_scheduler(
                lambda dask_scheduler: dask_scheduler.allowed_failures)
        except Exception:  # a scheduler that refuses code: nothing to learn
            return
        if allowed:
            log.warning("the Dask scheduler re-runs a measurement whose worker died up to %d "
                        "times before it is recorded as worker_crashed; start it with "
                        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0 to record the first "
                        "death, as the local pool does", allowed)

    def _on_phase(self, event) -> None:
        _, (key, phase) = event
        self._phases[key] = (phase, time.monotonic())

    def _slots(self) -> int:
        threads = sum(self.client.nthreads().values())
        if threads == 0:
            try:
                self.client.wait_for_workers(1, timeout=self.connect_timeout)
            except TimeoutError:
                raise WorkerStartError(f"no Dask worker is connected to "
                                       f"{self.client.scheduler.address}") from None
            threads = sum(self.client.nthreads().values())
        return max(1, min(threads, self.max_workers or threads))

    # ---- measuring
    def measure(self, inputs: Sequence[MeasureInput]) -> list[MeasureResult]:
        """Measure a batch on the cluster; results in input order."""
        from distributed import wait
        if self._closed:
            raise WorkerStartError("the Dask measurement pool is closed")
        self.n = self._slots()
        results: list = [None] * len(inputs)
        pending = deque(range(len(inputs)))
        inflight: dict = {}  # future -> (input index, monotonic start, wall-clock start)
        again: dict[int, int] = {}  # input index -> times lost through no fault of its own
        batch = uuid.uuid4().hex[:8]
        attempt = itertools.count()  # a resubmitted input gets a fresh key
        try:
            while pending or inflight:
                while pending and len(inflight) < self.n:
                    i = pending.popleft()
                    key = f"vtatune-measure-{batch}-{i}-{next(attempt)}"
                    fut = self.client.submit(_run_on_worker, inputs[i], self.measure_fn,
                                             self._topic, key, key=key, pure=False, retries=0)
                    inflight[fut] = (i, time.monotonic(), time.time())
                try:  # wake up at the first finished task, or to check the deadlines
                    with self.client.as_current():
                        wait(list(inflight), timeout=0.2, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    pass
                now = time.monotonic()
                for fut, (i, t0, started) in list(inflight.items()):
                    status = fut.status
                    if status == "pending":
                        failure = self._overdue(fut, now - t0, started)
                        if failure is not None:
                            del inflight[fut]
                            self._phases.pop(fut.key, None)
                            results[i] = failure
                            self._abandon(fut)
                        continue
                    del inflight[fut]
                    self._phases.pop(fut.key, None)
                    # not its own failure: a result lost with its worker before it came
                    # back (``lost``), or a task the scheduler gave to a worker this pool
                    # was restarting after another task's timeout — measure it again
                    if (status == "lost" or self._killed_by_restart(fut)) \
                            and again.get(i, 0) < 2:
                        again[i] = again.get(i, 0) + 1
                        fut.cancel()
                        pending.appendleft(i)
                        continue
                    results[i] = self._collect(fut, started)
        except BaseException:  # Ctrl-C, SIGTERM: nothing keeps running for this batch
            try:
                self.client.cancel(list(inflight))
            except Exception:
                pass
            raise
        finally:
            self._phases.clear()  # late reports of this batch's finished tasks
        return results

    def _killed_by_restart(self, fut) -> bool:
        """Did the task die with a worker this pool restarted after another task's timeout?
        (The scheduler may hand a task to that worker between the cancel and the kill.)"""
        if fut.status != "error":
            return False
        from distributed import KilledWorker
        exc = fut.exception()
        return isinstance(exc, KilledWorker) and \
            getattr(exc.last_worker, "address", None) in self._restarted

    def _overdue(self, fut, waited: float, started: float) -> MeasureResult | None:
        """The failure of a task past its deadline, else None."""
        report = self._phases.get(fut.key)
        if waited > self.start_timeout + self.build_timeout + self.run_timeout:
            # a guard against anything that would make the batch wait forever
            return MeasureResult.failure(ErrorCategory.UNKNOWN_ERROR, "worker_crashed",
                                         f"no answer from the Dask task within {waited:.0f} s",
                                         started)
        if report is None:
            if waited <= self.start_timeout:
                return None
            return MeasureResult.failure(ErrorCategory.UNKNOWN_ERROR, "worker_crashed",
                                         f"no Dask worker started the measurement within "
                                         f"{self.start_timeout:.0f} s", started)
        phase, since = report
        limit = self.build_timeout if phase == "build" else self.run_timeout
        if time.monotonic() - since <= limit:
            return None
        cat, reason = ((ErrorCategory.BUILD_TIMEOUT, "build_timeout") if phase == "build"
                       else (ErrorCategory.RUN_TIMEOUT, "run_timeout"))
        return MeasureResult.failure(cat, reason, f"{phase} exceeded {limit:.0f} s on a Dask "
                                     "worker; task cancelled and worker restarted", started)

    def _collect(self, fut, started: float) -> MeasureResult:
        status = fut.status
        if status == "finished":
            try:
                payload = fut.result(timeout=self.connect_timeout)
                return payload if isinstance(payload, MeasureResult) \
                    else MeasureResult.from_dict(payload)
            except Exception as exc:  # lost between finishing and gathering
                return MeasureResult.failure(ErrorCategory.UNKNOWN_ERROR, "worker_crashed",
                                             f"the result was lost on the way back from the "
                                             f"Dask worker ({type(exc).__name__}: {exc})",
                                             started)
        if status == "error":
            from distributed import KilledWorker
            exc = fut.exception()
            if isinstance(exc, KilledWorker):
                self.replaced += 1
                return MeasureResult.failure(ErrorCategory.UNKNOWN_ERROR, "worker_crashed",
                                             f"measurement worker died (Dask: {exc})", started)
            return MeasureResult.failure(ErrorCategory.UNKNOWN_ERROR, "worker_crashed",
                                         f"the Dask task failed: {type(exc).__name__}: {exc}",
                                         started)
        return MeasureResult.failure(ErrorCategory.UNKNOWN_ERROR, "worker_crashed",
                                     f"the Dask task was {status} (its worker or the scheduler "
                                     "went away)", started)

    def _abandon(self, fut) -> None:
        """Cancel a timed-out task and restart the worker whose thread still runs it."""
        key = fut.key
        try:
            where = [addr for addr, keys in self.client.processing().items() if key in keys]
        except Exception:
            where = []
        try:
            fut.cancel()
        except Exception:
            pass
        if not where:
            return
        self._restarted.update(where)
        try:
            status = self.client.restart_workers(where, timeout=max(30.0, self.connect_timeout),
                                                 raise_for_error=False)
            self.replaced += len(where)
            if any(v != "OK" for v in status.values()):
                log.warning("restarting Dask worker(s) after a timeout: %s", status)
        except Exception as exc:  # a worker without a nanny cannot be restarted
            log.warning("could not restart Dask worker(s) %s after a timeout (%s); a hung "
                        "measurement may keep its thread busy", where, exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.client.unsubscribe_topic(self._topic)
        except Exception:
            pass
        if self._own_client:
            try:
                self.client.close()
            except Exception:
                pass
        if self.cluster is not None:
            try:
                self.cluster.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
