"""The client of a board server (``vtatune board serve``).

::

    with BoardClient("pynq-1.lab", 9091, token=token) as board:
        print(board.info()["bitstream"])
        res = board.run(bundle_to_bytes(bundle), number=10, timeout_s=5.0, regions=[2])
        out = res.regions[2]; best = min(res.times_s)

One connection per client, kept open across requests (reconnected on the next request
after a connection error).  A client serialises its own requests (a lock), so it may be
shared by threads, but one request runs at a time.  Errors are typed
(``vtatune.errors``): ``BoardConnectionError`` (cannot connect, timed out, disconnected,
not the protocol: worth retrying elsewhere), ``BoardHangError``, ``BoardBundleError`` (and
``BoardDmaRangeError``; ``code == "too_large"`` for an oversized bundle, refused here before
it is sent), ``BoardAuthError``, ``BoardBusyError``, and ``BoardError`` for a server fault
(``code`` ``internal`` or ``bad_request``).
"""
from __future__ import annotations

import math
import secrets
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import BoardAuthError, BoardBundleError, BoardConnectionError, BoardError
from .protocol import (
    AUTH_SCHEME,
    DEFAULT_MAX_BUNDLE_BYTES,
    MAX_HEADER_BYTES,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    FrameError,
    PeerClosed,
    client_mac,
    error_from_header,
    macs_equal,
    read_frame,
    send_frame,
    server_proof,
)

#: codes after which the server has closed the connection
_CLOSING = ("auth", "version")


@dataclass
class BoardRunResult:
    regions: dict[int, np.ndarray]   # region number -> final uint8 contents
    times_s: list[float]             # per repetition
    server_s: dict[str, float]       # server-side phase times (parse, relocate, copy_in, run, copy_out, total)
    info: dict                       # server info at run time


class BoardClient:
    def __init__(self, host: str, port: int, *, token: str | None = None,
                 connect_timeout: float = 5.0, io_timeout: float = 60.0):
        self.host = host
        self.port = int(port)
        self.token = token or None
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout
        self.address = f"{host}:{port}"
        self.max_bundle_bytes = DEFAULT_MAX_BUNDLE_BYTES
        self.server_info: dict = {}
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        with self._lock:
            self._connect()

    # ------------------------------------------------------------------ connection
    def _fail(self, message: str, exc: BaseException | None = None) -> BoardConnectionError:
        self._drop()
        detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        return BoardConnectionError(f"{message}{detail}", server=self.address)

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:  # pragma: no cover
                pass
            self._sock = None

    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise BoardConnectionError(f"cannot connect ({type(exc).__name__}: {exc})",
                                       server=self.address) from None
        self._sock = sock
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.connect_timeout)
            hello, _ = read_frame(sock, max_header=MAX_HEADER_BYTES, max_payload=0)
            if hello.get("type") == "error":
                self._drop()
                raise error_from_header(hello, self.address)
            if hello.get("type") != "hello" or hello.get("protocol") != PROTOCOL_VERSION:
                raise self._fail(f"not a vtatune board server of protocol {PROTOCOL_VERSION} "
                                 f"(first frame {str(hello)[:120]})")
            scheme = hello.get("auth")
            try:
                nonce = bytes.fromhex(hello.get("nonce", ""))
            except (TypeError, ValueError):
                raise self._fail("the server's nonce is not hex") from None
            if scheme is not None and scheme != AUTH_SCHEME:
                raise self._fail(f"unknown authentication scheme {scheme!r}")
            if scheme and not self.token:
                self._drop()
                raise BoardAuthError("the server requires a token (--token-file F or "
                                     "VTATUNE_BOARD_TOKEN)", field="token", server=self.address)
            cnonce = secrets.token_bytes(NONCE_BYTES)
            send_frame(sock, {"type": "auth", "nonce": cnonce.hex(),
                              "mac": client_mac(self.token, nonce) if scheme else None})
            reply, _ = read_frame(sock, max_header=MAX_HEADER_BYTES, max_payload=0)
            if reply.get("type") == "error":
                self._drop()
                raise error_from_header(reply, self.address)
            if reply.get("type") != "welcome":
                raise self._fail(f"unexpected handshake reply {str(reply)[:120]}")
            if scheme and not macs_equal(reply.get("proof"), server_proof(self.token, nonce, cnonce)):
                self._drop()
                raise BoardAuthError("the server could not prove it knows the token",
                                     field="proof", server=self.address)
            self.server_info = reply.get("info") if isinstance(reply.get("info"), dict) else {}
            limit = hello.get("max_bundle_bytes")
            if isinstance(limit, int) and limit > 0:
                self.max_bundle_bytes = limit
        except BoardError:
            raise
        except (OSError, PeerClosed, FrameError) as exc:
            raise self._fail("handshake failed", exc) from None

    def _request(self, header: dict, payloads: Sequence = (), *,
                 wait_s: float = 0.0) -> tuple[dict, list[memoryview]]:
        with self._lock:
            if self._sock is None:
                self._connect()
            sock = self._sock
            try:
                sock.settimeout(self.io_timeout)
                send_frame(sock, header, payloads)
                sock.settimeout(self.io_timeout + wait_s)
                reply, data = read_frame(sock, max_header=MAX_HEADER_BYTES,
                                         max_payload=2 * self.max_bundle_bytes + (1 << 20))
            except TimeoutError as exc:
                raise self._fail(f"no answer to {header['type']} within "
                                 f"{self.io_timeout + wait_s:g} s", exc) from None
            except PeerClosed as exc:
                raise self._fail(f"disconnected during {header['type']}", exc) from None
            except (OSError, FrameError) as exc:
                raise self._fail(f"{header['type']} failed", exc) from None
            if reply.get("type") == "error":
                err = error_from_header(reply, self.address)
                if err.code in _CLOSING or reply.get("field") == "frame":
                    self._drop()
                raise err
            return reply, data

    # ------------------------------------------------------------------ requests
    def info(self) -> dict:
        """The server's info: version, backend (pynq|fsim|tsim), bitstream, hw, hw_ver,
        clock_mhz, coherent, host, pid (and server_id, protocol, max_bundle_bytes, ...)."""
        reply, _ = self._request({"type": "info"})
        info = reply.get("info")
        if not isinstance(info, dict):
            raise self._fail("malformed info reply")
        self.server_info = info
        return dict(info)

    def ping(self) -> None:
        self._request({"type": "ping"})

    def run(self, bundle: bytes, *, number: int = 1, timeout_s: float = 10.0,
            regions: list[int] | None = None) -> BoardRunResult:
        """Run a bundle (the bytes of its ``.npz``, ``vtatune.sim.bundle.bundle_to_bytes``)
        ``number`` times; the final contents of ``regions`` (default all) and the time of
        each run."""
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise BoardBundleError(f"number must be a positive integer, got {number!r}",
                                   code="bad_request", field="number")
        if (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                or not math.isfinite(timeout_s) or timeout_s <= 0):
            raise BoardBundleError(f"timeout_s must be a positive number, got {timeout_s!r}",
                                   code="bad_request", field="timeout_s")
        if regions is not None:
            regions = list(regions)
            if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0
                       for k in regions):
                raise BoardBundleError(f"regions must list region numbers, got {regions!r}",
                                       field="regions")
            regions = [int(k) for k in regions]
        try:
            size = memoryview(bundle).nbytes
        except TypeError:
            raise BoardBundleError(f"bundle must be bytes, got {type(bundle).__name__}",
                                   field="bundle") from None
        if size > self.max_bundle_bytes:
            raise BoardBundleError(f"bundle of {size} bytes exceeds the server's limit of "
                                   f"{self.max_bundle_bytes}", code="too_large", field="bundle",
                                   server=self.address)
        reply, data = self._request(
            {"type": "run", "number": number, "timeout_s": float(timeout_s), "regions": regions},
            [bundle], wait_s=number * float(timeout_s))
        try:
            listed = reply["regions"]
            if len(listed) != len(data):
                raise ValueError("region list and payloads differ")
            out = {int(k): np.frombuffer(p, dtype=np.uint8) for (k, _), p in zip(listed, data)}
            times = [float(t) for t in reply["times_s"]]
            server_s = {str(k): float(v) for k, v in reply["server_s"].items()}
            info = dict(reply["info"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._fail("malformed run result", exc) from None
        self.server_info = info
        return BoardRunResult(out, times, server_s, info)

    def program(self) -> dict:
        """Re-program the bitstream (resets the accelerator); returns the info."""
        reply, _ = self._request({"type": "program"}, wait_s=120.0)
        info = reply.get("info")
        if not isinstance(info, dict):
            raise self._fail("malformed program reply")
        self.server_info = info
        return dict(info)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> BoardClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BoardClient({self.address!r})"


def parse_board_url(url: str) -> list[tuple[str, int]]:
    """``pynq://HOST:PORT[,HOST:PORT...]`` -> [(host, port), ...] (IPv6 hosts in brackets:
    ``pynq://[::1]:9091``); ``ConfigurationError`` (field ``target``) when malformed."""
    from ..errors import ConfigurationError

    prefix = "pynq://"
    if not isinstance(url, str) or not url.startswith(prefix) or len(url) == len(prefix):
        raise ConfigurationError("target", f"{url!r} is not pynq://HOST:PORT[,HOST:PORT...]")
    out = []
    for part in url[len(prefix):].rstrip("/").split(","):
        host, sep, port = part.strip().rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError("target", f"{part!r} in {url!r} is not HOST:PORT "
                                               "(port 1..65535)")
        out.append((host, int(port)))
    return out
