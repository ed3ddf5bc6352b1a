"""The board server's wire protocol: length-prefixed frames over TCP.

A frame is a 20-byte prefix, a JSON header and binary payloads::

    magic b"VTAB" | version u16 | flags u16 (0) | header_len u32 | payload_len u64   (big-endian)
    header: header_len bytes of UTF-8 JSON, an object with a "type"
    payload: payload_len bytes, the concatenation of the blobs listed in header["payloads"]

Every length is checked against a limit before anything of that size is read:
``MAX_HEADER_BYTES`` for a header (``AUTH_MAX_HEADER_BYTES`` before authentication, when no
payload is accepted either) and the server's bundle limit for a payload.

Session::

    server -> hello   {protocol, server_id, auth: "hmac-sha256" | null, nonce, max_bundle_bytes}
    client -> auth    {mac: HMAC-SHA256(token, CLIENT_TAG + nonce) hex | null, nonce: client nonce}
    server -> welcome {proof: HMAC-SHA256(token, SERVER_TAG + nonce + client nonce) | null, info}
              or error {code: "auth"} and the connection closes
    then any number of requests, each answered by one frame:
    info    {}                                         -> info {info}
    run     {number, timeout_s, regions, payloads: [n]} + bundle bytes
                                                       -> result {regions: [[k, n]...], times_s,
                                                                   server_s, info, payloads} + region bytes
    program {}                                         -> info {info}
    ping    {}                                         -> pong {}
    any     ...                                        -> error {code, message, field, insn_index, region}

Error codes: ``hang``, ``bad_bundle``, ``dma_out_of_range``, ``too_large``, ``auth``,
``busy``, ``bad_request``, ``version``, ``internal``.  A request the server cannot parse
gets an error frame and the connection stays open, except when the framing itself is lost
(bad magic or version, a header over its limit, a payload over the limit that is too large
to discard): then the error frame is sent and the connection closed.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import struct
from collections.abc import Sequence

from ..errors import (
    BoardAuthError,
    BoardBundleError,
    BoardBusyError,
    BoardConnectionError,
    BoardDmaRangeError,
    BoardError,
    BoardHangError,
)

PROTOCOL_VERSION = 1
MAGIC = b"VTAB"
PREFIX = struct.Struct(">4sHHIQ")
MAX_HEADER_BYTES = 1 << 20
AUTH_MAX_HEADER_BYTES = 4096
DEFAULT_MAX_BUNDLE_BYTES = 1 << 28   # 256 MiB, the bundle reader's own cap
#: a payload over the limit by at most this factor is read and discarded (the connection
#: stays usable); a larger one closes the connection
DISCARD_FACTOR = 4
CLIENT_TAG = b"vtatune-board/client\0"
SERVER_TAG = b"vtatune-board/server\0"
AUTH_SCHEME = "hmac-sha256"
NONCE_BYTES = 32

#: wire error code -> exception class raised by the client
ERROR_CLASSES: dict[str, type[BoardError]] = {
    "hang": BoardHangError,
    "bad_bundle": BoardBundleError,
    "dma_out_of_range": BoardDmaRangeError,
    "too_large": BoardBundleError,
    "auth": BoardAuthError,
    "busy": BoardBusyError,
    "version": BoardConnectionError,
    "connection": BoardConnectionError,
    "bad_request": BoardError,
    "internal": BoardError,
}


class FrameError(Exception):
    """A frame that cannot be read: ``code`` (wire code), ``fatal`` when the framing is lost
    (the connection must close), ``unread`` the bytes of the frame still to be read (to
    discard them and keep the connection)."""

    def __init__(self, code: str, message: str, *, fatal: bool, unread: int = 0):
        self.code = code
        self.fatal = fatal
        self.unread = unread
        super().__init__(message)


class PeerClosed(Exception):
    """The peer closed the connection (cleanly between frames, or mid-frame)."""


# ----------------------------------------------------------------------------- auth
def client_mac(token: str, nonce: bytes) -> str:
    return hmac.new(token.encode("utf-8"), CLIENT_TAG + nonce, hashlib.sha256).hexdigest()


def server_proof(token: str, server_nonce: bytes, client_nonce: bytes) -> str:
    return hmac.new(token.encode("utf-8"), SERVER_TAG + server_nonce + client_nonce,
                    hashlib.sha256).hexdigest()


def macs_equal(a: object, b: str) -> bool:
    """Constant-time comparison of a received MAC (any JSON value) with the expected one."""
    if not isinstance(a, str):
        return False
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii"))


# ----------------------------------------------------------------------------- frames
def _recv_exact(sock: socket.socket, n: int, *, start: bool = False) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, 1 << 22))
        if k == 0:
            raise PeerClosed("connection closed" if start and got == 0 else
                             f"connection closed mid-frame ({got} of {n} bytes)")
        got += k
    return buf


def discard(sock: socket.socket, n: int) -> None:
    """Read and drop ``n`` bytes (a refused payload), 1 MiB at a time."""
    chunk = bytearray(min(n, 1 << 20))
    view = memoryview(chunk)
    while n > 0:
        k = sock.recv_into(view[:min(n, len(chunk))])
        if k == 0:
            raise PeerClosed("connection closed while discarding a refused payload")
        n -= k


def read_frame(sock: socket.socket, *, max_header: int = MAX_HEADER_BYTES,
               max_payload: int = DEFAULT_MAX_BUNDLE_BYTES) -> tuple[dict, list[memoryview]]:
    """One frame: ``(header, payloads)``.  Raises ``PeerClosed`` at end of stream and
    ``FrameError`` for a frame that breaks the protocol or a limit; neither the header nor
    the payload of a refused frame is read (the payload's length is in the error)."""
    prefix = bytes(_recv_exact(sock, PREFIX.size, start=True))
    magic, version, _flags, hlen, plen = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise FrameError("bad_request", f"not a vtatune board frame (magic {magic!r})", fatal=True)
    if version != PROTOCOL_VERSION:
        raise FrameError("version", f"protocol version {version}; this side speaks "
                                    f"{PROTOCOL_VERSION}", fatal=True)
    if hlen > max_header:
        raise FrameError("too_large", f"header of {hlen} bytes exceeds the limit of "
                                      f"{max_header}", fatal=True)
    if plen > max_payload:
        raise FrameError("too_large", f"payload of {plen} bytes exceeds the limit of "
                                      f"{max_payload} bytes", fatal=False, unread=hlen + plen)
    raw = _recv_exact(sock, hlen)
    try:
        header = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FrameError("bad_request", f"header is not UTF-8 JSON ({type(exc).__name__})",
                         fatal=False, unread=plen) from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise FrameError("bad_request", "header must be a JSON object with a string 'type'",
                         fatal=False, unread=plen)
    sizes = header.get("payloads", [])
    if (not isinstance(sizes, list) or not all(isinstance(n, int) and not isinstance(n, bool)
                                               and n >= 0 for n in sizes) or sum(sizes) != plen):
        raise FrameError("bad_request", f"field payloads {str(sizes)[:80]} must list "
                                        f"non-negative sizes adding up to {plen}",
                         fatal=False, unread=plen)
    data = memoryview(_recv_exact(sock, plen)) if plen else memoryview(b"")
    out, at = [], 0
    for n in sizes:
        out.append(data[at:at + n])
        at += n
    return header, out


def _as_bytes(p) -> memoryview:
    mv = memoryview(p)
    return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv


def send_frame(sock: socket.socket, header: dict, payloads: Sequence = ()) -> None:
    """Send one frame; ``payloads`` are bytes-like (numpy arrays included, sent without a
    copy); ``header["payloads"]`` is set from them."""
    views = [_as_bytes(p) for p in payloads]
    header = dict(header, payloads=[v.nbytes for v in views])
    body = json.dumps(header, separators=(",", ":")).encode("utf-8")
    prefix = PREFIX.pack(MAGIC, PROTOCOL_VERSION, 0, len(body), sum(v.nbytes for v in views))
    if not views or sum(v.nbytes for v in views) < (1 << 16):
        sock.sendall(b"".join([prefix, body, *(bytes(v) for v in views)]))
        return
    sock.sendall(prefix + body)
    for v in views:
        sock.sendall(v)


# ----------------------------------------------------------------------------- errors
def error_header(exc: BaseException) -> dict:
    """The error frame header of an exception (a BoardError keeps its code and fields)."""
    if isinstance(exc, BoardError):
        msg = str(exc.args[0]) if exc.args else str(exc)
        if exc.server and msg.startswith(f"{exc.server}: "):
            msg = msg[len(exc.server) + 2:]
        return {"type": "error", "code": exc.code, "message": msg, "field": exc.field,
                "insn_index": exc.insn_index, "region": exc.region}
    return {"type": "error", "code": "internal", "message": f"{type(exc).__name__}: {exc}",
            "field": None, "insn_index": None, "region": None}


def error_from_header(header: dict, server: str | None = None) -> BoardError:
    """The typed exception of an error frame."""
    code = header.get("code")
    code = code if isinstance(code, str) else "internal"
    cls = ERROR_CLASSES.get(code, BoardError)

    def opt_int(key):
        v = header.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    field = header.get("field")
    return cls(str(header.get("message", "")) or code, code=code,
               field=field if isinstance(field, str) else None,
               insn_index=opt_int("insn_index"), region=opt_int("region"), server=server)
