"""A MetaSchedule builder that survives a busy machine.

MetaSchedule's ``LocalBuilder`` starts a fresh process pool for every batch, and its default
build function imports ``tvm.s_tir.tensor_intrin`` (60-75 s here) inside the timed build: on
this 2-core machine every build then hits the 30 s timeout and the run ends with zero valid
trials and no error.  ``RetryingBuilder`` instead

* keeps one pool of worker processes for the whole run (recycled every ``max_uses`` builds,
  as a guard against the leak LocalBuilder's comment mentions);
* builds with a function that needs no tensor intrinsics (a scheduled module is already
  tensorised; registration only matters for applying traces);
* retries every build that timed out, one at a time, with ``retry_factor`` times the timeout;
  a build that times out again is reported with the message ``BUILD_TIMEOUT_TAG``, counted in
  ``stats``, and recorded as a build timeout (error 6), never as a slow or invalid schedule.
"""
from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from .env import require_tvm

tvm = require_tvm()
from tvm.ir.utils import derived_object  # noqa: E402
from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder  # noqa: E402
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind  # noqa: E402

log = logging.getLogger(__name__)

#: Start of the error message of a build that timed out even when retried alone.
BUILD_TIMEOUT_TAG = "vtatune: build timed out"


def _build_and_export(mod: Any, target: Any) -> str:
    """Runs in a worker: compile a scheduled module and export it as a tar (LocalRunner's
    input format)."""
    import tvm as _tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
    from tvm.support.tar import tar

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    rt_mod = _tvm.compile(mod, target=target)
    path = os.path.join(tempfile.mkdtemp(prefix="vtatune-ms-"), "tvm_tmp_mod." + tar.output_format)
    rt_mod.export_library(path, fcompile=tar)
    return path


@derived_object
class RetryingBuilder(PyBuilder):
    """See the module docstring.  ``stats`` counts ``built``, ``failed``, ``retried`` and
    ``timed_out`` builds."""

    def __init__(self, max_workers: int | None = None, timeout_sec: float = 60.0,
                 retry_factor: float = 4.0, max_uses: int = 256):
        super().__init__()
        self.max_workers = int(max_workers or os.cpu_count() or 1)
        self.timeout_sec = float(timeout_sec)
        self.retry_factor = float(retry_factor)
        self.max_uses = int(max_uses)
        self.stats = {"built": 0, "failed": 0, "retried": 0, "timed_out": 0}
        self._pool: Any = None
        self._retry_pool: Any = None

    def _get_pool(self) -> Any:
        if self._pool is None:
            self._pool = PopenPoolExecutor(max_workers=self.max_workers, timeout=self.timeout_sec,
                                           maximum_process_uses=self.max_uses)
        return self._pool

    def _get_retry_pool(self) -> Any:
        if self._retry_pool is None:
            self._retry_pool = PopenPoolExecutor(
                max_workers=1, timeout=self.timeout_sec * self.retry_factor,
                maximum_process_uses=self.max_uses)
        return self._retry_pool

    def build(self, build_inputs: list) -> list:
        args = [(b.mod, b.target) for b in build_inputs]
        results: list[Any] = [None] * len(args)
        timed_out: list[int] = []
        for i, res in enumerate(self._get_pool().map_with_error_catching(
                lambda a: _build_and_export(*a), args)):
            if res.status == StatusKind.TIMEOUT:
                timed_out.append(i)
            else:
                results[i] = self._result(res)
        if timed_out:
            log.warning("%d of %d builds exceeded %.0f s; retrying them one at a time with "
                        "%.0f s", len(timed_out), len(args), self.timeout_sec,
                        self.timeout_sec * self.retry_factor)
            self.stats["retried"] += len(timed_out)
            retry = self._get_retry_pool()
            for i in timed_out:
                res = next(iter(retry.map_with_error_catching(
                    lambda a: _build_and_export(*a), [args[i]])))
                if res.status == StatusKind.TIMEOUT:
                    self.stats["timed_out"] += 1
                    results[i] = BuilderResult(
                        None, f"{BUILD_TIMEOUT_TAG} after {self.timeout_sec:.0f} s and again "
                              f"after {self.timeout_sec * self.retry_factor:.0f} s alone "
                              "(machine busy?)")
                else:
                    results[i] = self._result(res)
        return results

    def _result(self, res: Any) -> Any:
        if res.status == StatusKind.COMPLETE:
            self.stats["built"] += 1
            return BuilderResult(res.value, None)
        self.stats["failed"] += 1
        return BuilderResult(None, f"vtatune: build error\n{res.value}")

    def shutdown(self) -> None:
        for pool in (self._pool, self._retry_pool):
            if pool is not None:
                pool.shutdown()
        self._pool = self._retry_pool = None
