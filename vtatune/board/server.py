"""The board server: one accelerator (board or simulator) behind a TCP port.

* binds 127.0.0.1 unless told otherwise, and refuses to bind any address that is not
  loopback without a shared token (HMAC-SHA256 challenge-response, :mod:`.protocol`);
* one thread per connection, connections persistent (many runs each); runs are
  serialised on the accelerator: a request that finds it running another run waits up to
  ``busy_wait_s`` (default 0: refused at once) and is then answered ``busy``;
* every run writes two JSON lines to the log, ``run_start`` when it gets the accelerator
  and ``run_end`` when it gives it back (server id, client, wall-clock ``time.time()`` and
  monotonic times, bundle SHA-256, outcome), so runs can be proven never to overlap;
* bad requests are answered with typed error frames and the connection stays open
  (except when the framing is lost, :mod:`.protocol`); the server keeps serving.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import secrets
import socket
import threading
import time
from typing import IO

from ..errors import BoardBusyError, BoardError, ConfigurationError
from .backends import Backend
from .protocol import (
    AUTH_MAX_HEADER_BYTES,
    AUTH_SCHEME,
    DEFAULT_MAX_BUNDLE_BYTES,
    DISCARD_FACTOR,
    MAX_HEADER_BYTES,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    FrameError,
    PeerClosed,
    client_mac,
    discard,
    error_header,
    macs_equal,
    read_frame,
    send_frame,
    server_proof,
)

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 10.0
MAX_CLIENTS = 32


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address."""
    if host in ("", "*"):
        return False
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    addrs = {info[4][0].split("%")[0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a).is_loopback for a in addrs)


class BoardServer:
    def __init__(self, backend: Backend, *, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
                 busy_wait_s: float = 0.0, log_file: IO[str] | None = None,
                 server_id: str | None = None, idle_timeout_s: float | None = None):
        if token is not None and not token:
            raise ConfigurationError("token", "the token is empty")
        if not is_loopback(host) and not token:
            raise ConfigurationError(
                "host", f"{host!r} is not a loopback address: a server reachable from the "
                        "network needs a shared token (--token-file F or VTATUNE_BOARD_TOKEN)")
        if max_bundle_bytes <= 0:
            raise ConfigurationError("max_bundle_bytes", f"must be positive, got {max_bundle_bytes}")
        backend.warm_up()  # ready means the first run meets its timeout
        self.backend = backend
        self.token = token
        self.max_bundle_bytes = int(max_bundle_bytes)
        self.busy_wait_s = float(busy_wait_s)
        self.idle_timeout_s = idle_timeout_s
        self._log_file = log_file
        self._log_lock = threading.Lock()
        self._accel = threading.Lock()
        self._stop = threading.Event()
        self._conns: dict[int, socket.socket] = {}
        self._conns_lock = threading.Lock()
        self._next_conn = 0
        self._runs = 0
        self.started = time.time()
        try:
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            family, _, _, _, addr = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(64)
        except OSError as exc:
            raise ConfigurationError("host", f"cannot listen on {host}:{port}: {exc}") from None
        self._sock = sock
        self.host = host
        self.port = sock.getsockname()[1]
        self.server_id = server_id or f"{socket.gethostname()}:{self.port}/{os.getpid()}"

    # ------------------------------------------------------------------ info and log
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def info(self) -> dict:
        return {**self.backend.info(), "server_id": self.server_id, "protocol": PROTOCOL_VERSION,
                "max_bundle_bytes": self.max_bundle_bytes, "auth": self.token is not None,
                "started": self.started, "runs": self._runs}

    def _log(self, event: str, **fields) -> None:
        rec = {"event": event, "server_id": self.server_id, "time": time.time(),
               "mono": time.monotonic(), **fields}
        line = json.dumps(rec, sort_keys=True)
        with self._log_lock:
            if self._log_file is not None:
                self._log_file.write(line + "\n")
                self._log_file.flush()
            else:
                log.info("%s", line)

    # ------------------------------------------------------------------ serving
    def serve_forever(self, poll_s: float = 0.2) -> None:
        """Accept connections until :meth:`stop`; then shut down cleanly."""
        self._sock.settimeout(poll_s)
        self._log("serve", address=self.address, **{k: v for k, v in self.info().items()
                                                    if k in ("backend", "hw", "bitstream")})
        try:
            while not self._stop.is_set():
                try:
                    conn, addr = self._sock.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                with self._conns_lock:
                    too_many = len(self._conns) >= MAX_CLIENTS
                    cid = self._next_conn
                    self._next_conn += 1
                    if not too_many:
                        self._conns[cid] = conn
                if too_many:
                    self._refuse(conn, BoardBusyError(f"{MAX_CLIENTS} clients connected already"))
                    continue
                threading.Thread(target=self._serve_conn, args=(cid, conn, addr),
                                 name=f"vtatune-board-conn-{cid}", daemon=True).start()
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return (safe from a signal handler)."""
        self._stop.set()

    def _shutdown(self, run_wait_s: float = 120.0) -> None:
        try:
            self._sock.close()
        except OSError:  # pragma: no cover
            pass
        # a run in progress finishes (the accelerator is never left running on freed buffers)
        got = self._accel.acquire(timeout=run_wait_s)
        with self._conns_lock:
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.backend.close()
        finally:
            if got:
                self._accel.release()
        self._log("shutdown")

    def _refuse(self, conn: socket.socket, exc: BoardError) -> None:
        try:
            conn.settimeout(2.0)
            send_frame(conn, error_header(exc))
        except OSError:
            pass
        finally:
            conn.close()

    def _serve_conn(self, cid: int, conn: socket.socket, addr) -> None:
        client = f"{addr[0]}:{addr[1]}"
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(HANDSHAKE_TIMEOUT_S)
            if not self._handshake(conn, client):
                return
            conn.settimeout(self.idle_timeout_s)
            while not self._stop.is_set():
                try:
                    header, payloads = read_frame(conn, max_header=MAX_HEADER_BYTES,
                                                  max_payload=self.max_bundle_bytes)
                except FrameError as exc:
                    self._log("bad_frame", client=client, conn=cid, code=exc.code,
                              message=str(exc))
                    send_frame(conn, {"type": "error", "code": exc.code, "message": str(exc),
                                      "field": "frame", "insn_index": None, "region": None})
                    if exc.fatal or exc.unread > DISCARD_FACTOR * self.max_bundle_bytes:
                        _linger_close(conn)
                        return
                    if exc.unread:
                        discard(conn, exc.unread)
                    continue
                send_frame(conn, *self._dispatch(header, payloads, client, cid))
        except PeerClosed:
            pass
        except OSError as exc:  # reset, timeout, shut down at exit
            log.debug("connection %s: %s", client, exc)
        except Exception:  # pragma: no cover - a bug: keep serving the others
            log.exception("connection %s failed", client)
        finally:
            with self._conns_lock:
                self._conns.pop(cid, None)
            try:
                conn.close()
            except OSError:  # pragma: no cover
                pass

    def _handshake(self, conn: socket.socket, client: str) -> bool:
        nonce = secrets.token_bytes(NONCE_BYTES)
        send_frame(conn, {"type": "hello", "protocol": PROTOCOL_VERSION,
                          "server_id": self.server_id,
                          "auth": AUTH_SCHEME if self.token else None, "nonce": nonce.hex(),
                          "max_bundle_bytes": self.max_bundle_bytes})
        try:
            header, _ = read_frame(conn, max_header=AUTH_MAX_HEADER_BYTES, max_payload=0)
        except FrameError as exc:
            send_frame(conn, {"type": "error", "code": exc.code if exc.code != "too_large" else "auth",
                              "message": f"handshake: {exc}", "field": "auth"})
            _linger_close(conn)
            return False
        cnonce = header.get("nonce")
        try:
            cnonce_b = bytes.fromhex(cnonce) if isinstance(cnonce, str) else b""
        except ValueError:
            cnonce_b = b""
        if header.get("type") != "auth":
            send_frame(conn, {"type": "error", "code": "auth", "field": "type",
                              "message": "handshake: the first frame must be 'auth'"})
            return False
        if self.token is not None:
            if not macs_equal(header.get("mac"), client_mac(self.token, nonce)):
                self._log("auth_failed", client=client)
                send_frame(conn, {"type": "error", "code": "auth", "field": "mac",
                                  "message": "authentication failed: wrong or missing token"})
                return False
            if not 16 <= len(cnonce_b) <= 64:
                send_frame(conn, {"type": "error", "code": "auth", "field": "nonce",
                                  "message": "handshake: the client nonce must be 16 to 64 bytes hex"})
                return False
        proof = server_proof(self.token, nonce, cnonce_b) if self.token else None
        send_frame(conn, {"type": "welcome", "proof": proof, "info": self.info()})
        return True

    # ------------------------------------------------------------------ requests
    def _dispatch(self, header: dict, payloads: list, client: str, cid: int):
        kind = header["type"]
        try:
            if kind == "ping":
                return ({"type": "pong"},)
            if kind == "info":
                return ({"type": "info", "info": self.info()},)
            if kind == "program":
                return self._program(client, cid)
            if kind == "run":
                return self._run(header, payloads, client, cid)
            raise BoardError(f"unknown request type {kind[:40]!r} (info, run, program, ping)",
                             code="bad_request", field="type")
        except BoardError as exc:
            return (error_header(exc),)
        except Exception as exc:  # a bug or a device failure: typed, never a dropped connection
            log.exception("request %s from %s failed", kind, client)
            return (error_header(exc),)

    def _acquire(self, what: str, client: str, cid: int) -> None:
        ok = (self._accel.acquire(timeout=self.busy_wait_s) if self.busy_wait_s > 0
              else self._accel.acquire(blocking=False))
        if not ok:
            self._log("busy", client=client, conn=cid, request=what)
            raise BoardBusyError(f"the accelerator is running another client's {what}"
                                 + (f" (waited {self.busy_wait_s:g} s)" if self.busy_wait_s else ""))

    def _program(self, client: str, cid: int):
        self._acquire("program", client, cid)
        try:
            t0 = time.time()
            self.backend.program()
            self._log("program", client=client, conn=cid, start=t0, end=time.time())
        finally:
            self._accel.release()
        return ({"type": "info", "info": self.info()},)

    def _run(self, header: dict, payloads: list, client: str, cid: int):
        if len(payloads) != 1:
            raise BoardError(f"a run request carries one payload (the bundle), got {len(payloads)}",
                             code="bad_request", field="payloads")
        number, timeout_s = header.get("number", 1), header.get("timeout_s", 10.0)
        regions = header.get("regions")
        rid = header.get("id")
        self._acquire("run", client, cid)
        start, start_mono = time.time(), time.monotonic()
        digest = hashlib.sha256(payloads[0]).hexdigest()
        self._log("run_start", client=client, conn=cid, id=rid, start=start, start_mono=start_mono,
                  bundle_sha256=digest, bundle_bytes=payloads[0].nbytes, number=number)
        outcome, times, message = "ok", None, None
        try:
            res = self.backend.run(payloads[0], number=number, timeout_s=timeout_s,
                                   regions=regions, max_bytes=self.max_bundle_bytes)
            times = res.times_s
            self._runs += 1
        except BoardError as exc:
            outcome, message = exc.code, str(exc)
            raise
        except Exception as exc:
            outcome, message = "internal", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            end, end_mono = time.time(), time.monotonic()
            self._accel.release()
            self._log("run_end", client=client, conn=cid, id=rid, start=start, end=end,
                      start_mono=start_mono, end_mono=end_mono, bundle_sha256=digest,
                      outcome=outcome, times_s=times, message=message)
        keys = sorted(res.regions)
        return ({"type": "result", "id": rid, "regions": [[k, int(res.regions[k].size)] for k in keys],
                 "times_s": res.times_s, "server_s": res.server_s, "info": self.info()},
                [res.regions[k] for k in keys])


def _linger_close(conn: socket.socket, max_bytes: int = 1 << 22, wait_s: float = 0.5) -> None:
    """Close after an error frame without resetting the connection: half-close, then read
    (and drop) what the peer still sends for a moment, so the error frame is not lost to a
    TCP reset caused by unread data."""
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(wait_s)
        while max_bytes > 0:
            data = conn.recv(min(max_bytes, 1 << 16))
            if not data:
                break
            max_bytes -= len(data)
    except OSError:
        pass


def read_token(path: str | None = None, env: str = "VTATUNE_BOARD_TOKEN") -> str | None:
    """The shared token from ``path`` (whitespace stripped) or the environment variable;
    None when neither gives one.  ``ConfigurationError`` for an unreadable or empty file."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read(1 << 16).strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError("token_file", f"{path}: {exc}") from None
        if not token:
            raise ConfigurationError("token_file", f"{path} is empty")
        return token
    token = os.environ.get(env, "").strip()
    return token or None


__all__ = ["BoardServer", "is_loopback", "read_token"]
