"""Where measurements run, named by one string (``--executor``).

* ``local`` — ``MeasurePool``: worker processes on this machine (the default).
* ``dask://HOST[:PORT]`` (or ``tcp://HOST[:PORT]``, as ``dask scheduler`` prints it; port
  8786 when omitted) — ``DaskMeasurePool`` on the workers of a running Dask scheduler.
* ``dask-local[:N]`` — ``DaskMeasurePool`` on a ``LocalCluster`` of N single-thread worker
  processes (default: ``workers``), started here and closed with the pool.

``executor_for`` returns an object with ``MeasurePool``'s interface (``measure``, ``n``,
``close``, context manager).  A malformed string is a ``ConfigurationError`` on the field
``executor`` before anything is imported or started.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigurationError

FORMS = "local, dask://HOST:PORT or dask-local[:N]"
DEFAULT_DASK_PORT = 8786

_ADDRESS = re.compile(r"^(?:dask|tcp)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
                      r"(?::(?P<port>[^:/]*))?/?$")
_LOCAL = re.compile(r"^dask-local(?::(?P<n>.*))?$")


@dataclass(frozen=True)
class ExecutorSpec:
    kind: str                  # "local", "dask" or "dask-local"
    address: str | None = None  # "tcp://HOST:PORT" for "dask"
    n: int | None = None       # dask-local's worker count, when given

    def __str__(self) -> str:
        if self.kind == "dask":
            return "dask://" + self.address.split("://", 1)[1]
        if self.kind == "dask-local" and self.n is not None:
            return f"dask-local:{self.n}"
        return self.kind


def parse_executor(text) -> ExecutorSpec:
    """The executor a string names, or ``ConfigurationError('executor', ...)``."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError("executor", f"expected {FORMS}, got {text!r}")
    s = text.strip()
    if s == "local":
        return ExecutorSpec("local")
    m = _LOCAL.match(s)
    if m:
        n = m.group("n")
        if n is None:
            return ExecutorSpec("dask-local")
        if not n.isdigit() or int(n) < 1:
            raise ConfigurationError("executor", f"dask-local:N needs a positive worker count, "
                                                 f"got {n!r} in {s!r}")
        return ExecutorSpec("dask-local", n=int(n))
    m = _ADDRESS.match(s)
    if m:
        port = m.group("port")
        if port is None:
            port = str(DEFAULT_DASK_PORT)
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigurationError("executor", f"the port of {s!r} must be an integer in "
                                                 f"1..65535, got {port!r}")
        return ExecutorSpec("dask", address=f"tcp://{m.group('host')}:{int(port)}")
    if s.startswith(("dask://", "tcp://")):
        raise ConfigurationError("executor", f"expected dask://HOST:PORT, got {s!r}")
    raise ConfigurationError("executor", f"expected {FORMS}, got {s!r}")


def executor_for(text, *, workers: int = 2, build_timeout: float = 60.0,
                 run_timeout: float = 120.0, connect_timeout: float = 10.0):
    """A measurement pool for ``text`` (see the module docstring).  ``workers`` is the
    number of local processes (``local``, ``dask-local`` without ``:N``); on a running
    Dask scheduler the cluster's worker threads decide."""
    spec = parse_executor(text)
    if spec.kind == "local":
        from .pool import MeasurePool
        return MeasurePool(workers, build_timeout=build_timeout, run_timeout=run_timeout)
    from .dask_pool import DaskMeasurePool, require_distributed
    require_distributed()
    if spec.kind == "dask-local":
        return DaskMeasurePool.local(spec.n or workers, build_timeout=build_timeout,
                                     run_timeout=run_timeout, connect_timeout=connect_timeout)
    return DaskMeasurePool(spec.address, build_timeout=build_timeout, run_timeout=run_timeout,
                           connect_timeout=connect_timeout, label=str(spec))
