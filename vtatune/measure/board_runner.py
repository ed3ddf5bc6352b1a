"""The board runner: ``pynq://HOST:PORT[,HOST:PORT...]`` — measurements on PYNQ boards (or
on board servers with a simulator backend) through ``vtatune board serve``.

A ``BoardRunner`` is a small picklable value (addresses, where the token comes from, the
lease database, retry policy): the measurement pool pickles it to every worker process,
and each process opens its own connections and lease store lazily (``_process_state``).

One measurement (``execute``):

1. the program and its inputs become a bundle (the ``.npz`` of docs/bundle-format.md, in
   memory, regions in address order);
2. a board is leased (``vtatune.db.leases``: one measurement per board at a time, across
   every worker and every tuning process sharing the lease database) — any free board, the
   least recently used first, so N workers drive up to N boards in parallel;
3. the bundle runs ``number`` times; the output region comes back and is unpacked exactly
   as ``runners.read_output`` does; the cost is the mean board wall time of one run;
4. a board that disconnects (``BoardConnectionError``) or hangs (``BoardHangError``) is
   released with a cool-down (``cooldown_s``, ``hang_cooldown_s``: every process keeps off
   it meanwhile) and the measurement is retried on another board, at most ``attempts``
   boards; a program that hangs on two
   boards (or on the only board) is a run timeout (``RUN_TIMEOUT``, reason ``run_timeout``);
   when no board can be had within ``lease_wait_s`` the measurement fails with reason
   ``board_unavailable`` (``RUNTIME_DEVICE``, counted as a crash by the session), and
   tuning goes on — boards that come back are used again once their cool-down passed.

The record label (``label(task)``) is ``pynq/<bitstream>/<clock>MHz/<sync>/<profile>``; a
server with a simulator backend says so (``pynq[fsim]/<hw>/unclocked/...``: no bitstream,
no clock), so simulated results never mix with real boards.  Every server of one runner must agree on backend, bitstream,
hardware configuration and clock (a mixed pool is refused, naming the odd server), and run
the task's hardware configuration.

Leases live in the tuning session's records database (``--db``: SQLite for one machine,
PostgreSQL for a team); a runner used without one (``evaluate``, an in-memory database)
uses ``$VTATUNE_CACHE_DIR/board-leases.db`` (default ``~/.cache/vtatune``), which still
keeps the processes of one machine from double-booking.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..compiler.program import Program
from ..errors import ConfigurationError, ErrorCategory, MeasureError, StorageError
from ..sim.fsim import RunResult
from ..task import VtaTask
from .base import Execution, Runner

log = logging.getLogger(__name__)

SCHEME = "pynq://"
TOKEN_ENV = "VTATUNE_BOARD_TOKEN"
CACHE_ENV = "VTATUNE_CACHE_DIR"
#: reason of a measurement no board could take (a crash of the setup, not the config)
BOARD_UNAVAILABLE = "board_unavailable"

_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))$")


def parse_target(target: str) -> tuple[tuple[str, int], ...]:
    """The ``(host, port)`` pairs of ``pynq://HOST:PORT[,HOST:PORT...]``;
    ``ConfigurationError`` (field ``target``) naming the bad part."""
    if not isinstance(target, str) or not target.startswith(SCHEME):
        raise ConfigurationError("target", f"a board target is pynq://HOST:PORT[,HOST:PORT...], "
                                           f"got {target!r}")
    body = target[len(SCHEME):].strip().rstrip("/")
    if not body:
        raise ConfigurationError("target", f"{target!r} names no board (pynq://HOST:PORT)")
    out: list[tuple[str, int]] = []
    for part in body.split(","):
        part = part.strip()
        host, sep, port_s = part.rpartition(":")
        if not sep or not host or not port_s:
            raise ConfigurationError("target", f"board address {part!r} in {target!r} is not "
                                               "HOST:PORT")
        if not _HOST.match(host):
            raise ConfigurationError("target", f"board address {part!r} in {target!r}: "
                                               f"{host!r} is not a host name or address")
        if not port_s.isdigit() or not 1 <= int(port_s) <= 65535:
            raise ConfigurationError("target", f"board address {part!r} in {target!r}: port "
                                               f"{port_s!r} is not in 1..65535")
        addr = (host.strip("[]"), int(port_s))
        if addr in out:
            raise ConfigurationError("target", f"board {part!r} appears twice in {target!r}")
        out.append(addr)
    return tuple(out)


def address_name(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def default_lease_url() -> str:
    """The lease database of a runner used outside a tuning session."""
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vtatune")
    os.makedirs(base, exist_ok=True)
    return f"sqlite:///{os.path.join(base, 'board-leases.db')}"


def read_token(token_file: str | None) -> str | None:
    """The shared token: the first line of ``token_file``, else ``$VTATUNE_BOARD_TOKEN``,
    else None (a server on loopback may need none)."""
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError("board-token-file", f"cannot read {token_file!r}: "
                                     f"{getattr(exc, 'strerror', None) or exc}") from None
        if not token:
            raise ConfigurationError("board-token-file", f"{token_file!r} holds no token "
                                                         "(its first line is empty)")
        return token
    return os.environ.get(TOKEN_ENV) or None


def program_bundle(program: Program, inputs: dict[str, np.ndarray]) -> tuple[bytes, int]:
    """The bundle bytes of ``program`` on ``inputs`` (uncompressed ``.npz``, regions in
    address order) and the number of its output region."""
    contents = program.dram_contents(inputs)
    order = sorted(program.regions, key=lambda n: program.regions[n][0])
    arrays = {"config": np.array(program.hw.name),
              "insn_addr": np.array(program.insn_addr, dtype=np.int64),
              "insn_count": np.array(program.insn_count, dtype=np.int64),
              "region_addrs": np.array([program.regions[n][0] for n in order], dtype=np.int64)}
    for k, name in enumerate(order):
        arrays[f"region_{k}"] = contents[name]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue(), order.index("out")


def _errors():
    """The board errors (``vtatune.errors``), imported late: the board package owns them."""
    from .. import errors as e
    return e


@dataclass(frozen=True)
class BoardRunner(Runner):
    """Measurements on board servers (see the module docstring)."""

    kind: ClassVar[str] = "pynq"
    cost_meaning: ClassVar[str] = ("wall time of one run on the board (mean of `number` "
                                   "repetitions), measured by the board server")

    addresses: tuple
    token_file: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    lease_url: str | None = dataclasses.field(default=None, repr=False)
    number: int = 1
    attempts: int = 3              # boards tried for one measurement
    lease_ttl_s: float = 30.0      # a dead worker's board comes back after this
    lease_wait_s: float = 60.0     # waiting for a free board before giving up
    cooldown_s: float = 30.0       # a board that disconnected rests this long
    hang_cooldown_s: float = 2.0   # ... one that hung (its server re-programmed it already)
    run_timeout_s: float = 10.0    # the server's completion timeout per run (a board)
    sim_timeout_s: float = 100.0   # ... on a server with a simulator backend (slow, and
                                   # busy hosts: no hang to detect, fsim finds deadlocks)
    connect_timeout_s: float = 5.0
    io_timeout_s: float = 60.0

    @classmethod
    def from_target(cls, target: str, **options: Any) -> BoardRunner:
        return cls(parse_target(target), **options)

    def __post_init__(self) -> None:
        if not self.addresses:
            raise ConfigurationError("target", "a board runner needs at least one board")
        for name in ("number", "attempts"):
            if int(getattr(self, name)) < 1:
                raise ConfigurationError(name, f"must be at least 1, got {getattr(self, name)}")
        for name in ("lease_ttl_s", "run_timeout_s", "sim_timeout_s", "connect_timeout_s",
                     "io_timeout_s"):
            if not float(getattr(self, name)) > 0:
                raise ConfigurationError(name, f"must be > 0 seconds, got {getattr(self, name)}")

    # ------------------------------------------------------------------ identity
    @property
    def target(self) -> str:
        return SCHEME + ",".join(self.names)

    @property
    def names(self) -> list[str]:
        return [address_name(a) for a in self.addresses]

    def __repr__(self) -> str:
        return f"BoardRunner({self.target!r})"

    def configured(self, **changes: Any) -> BoardRunner:
        """A copy with some fields changed (``number``, ``lease_url``, ``token_file`` ...)."""
        return dataclasses.replace(self, **changes)

    def for_session(self, db: Any, number: int = 1) -> BoardRunner:
        """The runner a tuning session hands to its workers: ``number`` repetitions, leases in
        the session's database ``db`` (unless it is in memory: then the cache-dir file);
        the lease store is opened once here, so a bad database fails before measuring."""
        from ..db.leases import LeaseStore, lease_url_for
        url = self.lease_url or lease_url_for(db) or default_lease_url()
        LeaseStore(url).close()
        return self.configured(number=int(number), lease_url=url)

    def _token(self) -> str | None:
        return self.token or read_token(self.token_file)

    # ------------------------------------------------------------------ servers
    def _client(self, addr: tuple[str, int]):
        from ..board.client import BoardClient
        return BoardClient(addr[0], addr[1], token=self._token(),
                           connect_timeout=self.connect_timeout_s, io_timeout=self.io_timeout_s)

    def board_infos(self, *, tolerate_unreachable: bool = False) -> dict[str, dict]:
        """Each server's ``info()``; unreachable ones raise ``BoardConnectionError`` (or are
        left out with ``tolerate_unreachable``, as long as one answers)."""
        e = _errors()
        out: dict[str, dict] = {}
        failed: list[str] = []
        for addr in self.addresses:
            try:
                with self._client(addr) as c:
                    out[address_name(addr)] = c.info()
            except e.BoardConnectionError as exc:
                if not tolerate_unreachable:
                    raise
                failed.append(f"{address_name(addr)} ({exc})")
        if not out:
            raise e.BoardConnectionError(f"no board of {self.target} answers: "
                                         + "; ".join(failed))
        if failed:
            log.warning("%s: unreachable now: %s", self.target, "; ".join(failed))
        return out

    @staticmethod
    def identity(info: dict) -> tuple:
        return (info.get("backend"), info.get("bitstream"), info.get("hw"), info.get("hw_ver"),
                info.get("clock_mhz"))

    def label(self, task: VtaTask) -> str:
        # every board must answer at the start; once this process has seen the pool agree,
        # a board that went away meanwhile (a suite's later task) is tolerated
        key = (self.addresses, self.token_file)
        infos = self.board_infos(tolerate_unreachable=key in _IDENTITY)
        ref_name, first = next(iter(infos.items()))
        ident = self.identity(first)
        for name, info in infos.items():
            if self.identity(info) != ident:
                backend, bit, hw, ver, clock = self.identity(info)
                raise ConfigurationError(
                    "target", f"board {name} runs {backend} {bit} ({hw}, HW_VER {ver}, {clock} "
                              f"MHz) but {ref_name} runs {ident[0]} {ident[1]} ({ident[2]}, "
                              f"HW_VER {ident[3]}, {ident[4]} MHz): the boards of one target "
                              "must agree; tune them as separate targets")
        _IDENTITY[key] = ident
        backend, bitstream, hw, hw_ver, clock = ident
        if hw is not None and hw != task.hw.name:
            raise ConfigurationError(
                "target", f"the boards of {self.target} run hardware configuration {hw}, "
                          f"the task is for {task.hw.name} (--hw {hw}?)")
        if hw_ver is not None and str(hw_ver) != str(task.hw.hw_ver):
            raise ConfigurationError(
                "target", f"the boards of {self.target} run HW_VER {hw_ver}, the task's "
                          f"hardware is HW_VER {task.hw.hw_ver}")
        kind = "pynq" if backend in (None, "pynq") else f"pynq[{backend}]"
        bit = str(bitstream or hw or task.hw.name)
        bit = bit.removesuffix(".bit")
        clock_s = f"{float(clock):g}MHz" if clock is not None else "unclocked"  # simulators
        return f"{kind}/{bit}/{clock_s}/{task.sync}/{task.profile}"

    # ------------------------------------------------------------------ measuring
    def execute(self, program: Program, inputs: dict[str, np.ndarray], *,
                functional: bool = True, trace: bool = False) -> Execution:
        if trace:
            raise ConfigurationError("trace", "a pipeline trace needs the tsim runner")
        e = _errors()
        blob, out_region = program_bundle(program, inputs)
        st = _process_state(self)
        tried: list[str] = []
        hangs: list[str] = []
        failures: list[str] = []
        names = self.names
        hang_limit = min(2, len(names))
        deadline = time.monotonic() + self.lease_wait_s
        while len(tried) < self.attempts:
            candidates = [n for n in names if n not in tried]
            if not candidates:
                break
            lease = st.store.acquire(candidates, st.holder, ttl_s=self.lease_ttl_s,
                                     wait_s=max(0.0, deadline - time.monotonic()))
            if lease is None:
                failures.append("no board free within "
                                f"{self.lease_wait_s:g} s ({st.describe(candidates)})")
                break
            name = lease.resource
            cooldown, note = 0.0, None
            try:
                client = st.client(self, name)
                sim = (getattr(client, "server_info", None) or {}).get("backend", "pynq") != "pynq"
                t0 = time.perf_counter()
                res = client.run(blob, number=self.number, regions=[out_region],
                                 timeout_s=self.sim_timeout_s if sim else self.run_timeout_s)
                rtt = time.perf_counter() - t0
            except e.BoardConnectionError as exc:
                st.drop(name)
                cooldown, note = self.cooldown_s, f"disconnected: {exc}"
                failures.append(f"{name}: {exc}")
                tried.append(name)
                log.warning("board %s disconnected (%s); retrying elsewhere", name, exc)
                continue
            except e.BoardHangError as exc:
                cooldown, note = self.hang_cooldown_s, f"hung: {exc}"
                hangs.append(name)
                tried.append(name)
                failures.append(f"{name}: hung ({exc})")
                log.warning("board %s hung (%s)", name, exc)
                if len(hangs) >= hang_limit:
                    raise MeasureError(ErrorCategory.RUN_TIMEOUT, "run_timeout",
                                       f"the program hung on {len(hangs)} board(s): "
                                       + ", ".join(hangs)) from None
                continue
            except e.BoardBusyError as exc:
                tried.append(name)
                failures.append(f"{name}: busy ({exc})")
                continue
            finally:
                try:
                    lease.release(cooldown_s=cooldown, note=note)
                except StorageError as exc:  # the lease expires by itself after its ttl
                    log.warning("releasing the lease on %s failed: %s", name, exc)
            return self._execution(program, res, rtt, name, out_region, len(tried) + 1)
        raise MeasureError(ErrorCategory.RUNTIME_DEVICE, BOARD_UNAVAILABLE,
                           f"no board of {self.target} could run the measurement: "
                           + "; ".join(failures or ["no board left to try"]))

    def _execution(self, program: Program, res: Any, rtt: float, name: str, out_region: int,
                   attempt: int) -> Execution:
        nbytes = program.regions["out"][1]
        raw = res.regions.get(out_region)
        if raw is None or np.asarray(raw).size < nbytes:
            raise MeasureError(ErrorCategory.RUNTIME_DEVICE, "runtime_error",
                               f"board {name} returned no complete output region "
                               f"{out_region} ({nbytes} bytes expected)")
        raw = np.asarray(raw, dtype=np.uint8)[:nbytes].view(np.int8)
        output = program.extra["lowering"].unpack_output(raw)
        times = [float(t) for t in res.times_s]
        run_s = float(sum(times))
        cost = run_s / len(times) if times else float("nan")
        extra = {"instructions": program.insn_count, "board": name, "times_s": times,
                 "round_trip_s": rtt, "overhead_s": rtt - run_s,
                 "server_s": dict(getattr(res, "server_s", {}) or {}), "attempt": attempt}
        return Execution(output, cost, rtt, RunResult({}, program.insn_count), extra)

    def default_workers(self) -> int:
        """One measurement worker per board."""
        return len(self.addresses)


#: per process: the identity (backend, bitstream, hw, hw_ver, clock) a runner's boards
#: agreed on at their last ``label``
_IDENTITY: dict[tuple, tuple] = {}


class _ProcessState:
    """What one process keeps for one runner: its lease store and one open client per
    board (reopened after a disconnection)."""

    def __init__(self, runner: BoardRunner):
        from ..db.leases import LeaseStore, default_holder
        self.store = LeaseStore(runner.lease_url or default_lease_url())
        self.holder = default_holder()
        self.clients: dict[str, Any] = {}
        self.pid = os.getpid()

    def client(self, runner: BoardRunner, name: str):
        c = self.clients.get(name)
        if c is None:
            addr = runner.addresses[runner.names.index(name)]
            c = self.clients[name] = runner._client(addr)
        return c

    def drop(self, name: str) -> None:
        c = self.clients.pop(name, None)
        if c is not None:
            try:
                c.close()
            except OSError:  # a dead connection may fail to close: it is gone anyway
                log.debug("closing the client of %s failed", name)

    def describe(self, names: list[str]) -> str:
        try:
            state = self.store.state(names)
        except StorageError as exc:  # only a message
            return f"lease state unknown: {exc}"
        parts = []
        for n in names:
            s = state.get(n, {})
            if s.get("status") == "held":
                parts.append(f"{n} held by {s.get('holder')}")
            elif s.get("status") == "cooling":
                parts.append(f"{n} resting {s.get('remaining_s', 0):.0f} s after: {s.get('note')}")
            else:
                parts.append(f"{n} {s.get('status', 'unknown')}")
        return "; ".join(parts)


_STATES: dict[tuple, _ProcessState] = {}


def _process_state(runner: BoardRunner) -> _ProcessState:
    key = (runner.addresses, runner.lease_url, runner.token_file, runner.token,
           runner.connect_timeout_s, runner.io_timeout_s)
    st = _STATES.get(key)
    if st is None or st.pid != os.getpid():
        st = _STATES[key] = _ProcessState(runner)
    return st
