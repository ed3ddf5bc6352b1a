"""Frames, limits, authentication codes and typed errors of the board protocol."""
import hashlib
import hmac
import json
import pickle
import socket
import struct

import numpy as np
import pytest

from vtatune.board import protocol as P
from vtatune.errors import (
    BoardAuthError,
    BoardBundleError,
    BoardBusyError,
    BoardConnectionError,
    BoardDmaRangeError,
    BoardError,
    BoardHangError,
)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.settimeout(2.0)
    b.settimeout(2.0)
    yield a, b
    a.close()
    b.close()


def raw_prefix(hlen, plen, magic=b"VTAB", version=1):
    # >4sHHIQ: magic, version, flags, header length, payload length (big-endian)
    return magic + struct.pack(">HHIQ", version, 0, hlen, plen)


def test_round_trip_with_payloads(pair):
    a, b = pair
    arr = np.arange(300, dtype=np.uint8)
    big = np.random.default_rng(0).integers(0, 256, 1 << 17, dtype=np.uint8)
    P.send_frame(a, {"type": "run", "number": 3}, [b"abc", arr, big])
    header, payloads = P.read_frame(b)
    assert header["type"] == "run" and header["number"] == 3
    assert header["payloads"] == [3, 300, 1 << 17]
    assert bytes(payloads[0]) == b"abc"
    assert np.array_equal(np.frombuffer(payloads[1], np.uint8), arr)
    assert np.array_equal(np.frombuffer(payloads[2], np.uint8), big)


def test_frame_layout_is_the_documented_one(pair):
    a, b = pair
    P.send_frame(a, {"type": "ping"}, [b"xy"])
    data = b.recv(1 << 16)
    body = json.dumps({"type": "ping", "payloads": [2]}, separators=(",", ":")).encode()
    assert data == raw_prefix(len(body), 2) + body + b"xy"


def test_oversized_payload_is_refused_without_reading_it(pair):
    a, b = pair
    # declares 1 GiB and sends nothing more: a reader that waited for it would time out
    a.sendall(raw_prefix(20, 1 << 30))
    with pytest.raises(P.FrameError) as err:
        P.read_frame(b, max_payload=1 << 20)
    assert err.value.code == "too_large" and not err.value.fatal
    assert err.value.unread == 20 + (1 << 30)


def test_oversized_header_is_fatal(pair):
    a, b = pair
    a.sendall(raw_prefix(P.MAX_HEADER_BYTES + 1, 0))
    with pytest.raises(P.FrameError) as err:
        P.read_frame(b)
    assert err.value.code == "too_large" and err.value.fatal


@pytest.mark.parametrize("prefix,code", [(raw_prefix(2, 0, magic=b"HTTP"), "bad_request"),
                                         (raw_prefix(2, 0, version=9), "version")])
def test_lost_framing_is_fatal(pair, prefix, code):
    a, b = pair
    a.sendall(prefix + b"{}")
    with pytest.raises(P.FrameError) as err:
        P.read_frame(b)
    assert err.value.code == code and err.value.fatal


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"type": 3}',
                                  b'{"type": "run", "payloads": [5]}', b"\xff\xfe"])
def test_malformed_header_is_not_fatal(pair, body):
    a, b = pair
    a.sendall(raw_prefix(len(body), 4) + body + b"1234")
    with pytest.raises(P.FrameError) as err:
        P.read_frame(b)
    assert err.value.code == "bad_request" and not err.value.fatal and err.value.unread == 4


def test_peer_closed(pair):
    a, b = pair
    a.sendall(raw_prefix(10, 0)[:7])
    a.close()
    with pytest.raises(P.PeerClosed):
        P.read_frame(b)


def test_macs_are_hmac_sha256_of_tagged_nonces():
    nonce, cnonce = bytes(range(32)), bytes(range(32, 64))
    want = hmac.new(b"tok", b"vtatune-board/client\x00" + nonce, hashlib.sha256).hexdigest()
    assert P.client_mac("tok", nonce) == want
    want = hmac.new(b"tok", b"vtatune-board/server\x00" + nonce + cnonce, hashlib.sha256).hexdigest()
    assert P.server_proof("tok", nonce, cnonce) == want
    assert P.macs_equal(want, want) and not P.macs_equal(want[:-1] + "0", want)
    assert not P.macs_equal(None, want) and not P.macs_equal(5, want)


@pytest.mark.parametrize("code,cls", [("hang", BoardHangError), ("bad_bundle", BoardBundleError),
                                      ("dma_out_of_range", BoardDmaRangeError),
                                      ("too_large", BoardBundleError), ("auth", BoardAuthError),
                                      ("busy", BoardBusyError), ("version", BoardConnectionError),
                                      ("internal", BoardError), ("bad_request", BoardError),
                                      ("never-heard-of", BoardError)])
def test_error_frames_become_typed_errors(code, cls):
    exc = P.error_from_header({"type": "error", "code": code, "message": "m", "field": "f",
                               "insn_index": 4, "region": 2}, "h:1")
    assert type(exc) is cls and exc.field == "f" and exc.insn_index == 4 and exc.region == 2
    assert exc.server == "h:1" and str(exc) == "h:1: m"
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls and back.__dict__ == exc.__dict__ and str(back) == str(exc)


def test_error_header_round_trip():
    exc = BoardDmaRangeError("instruction 3 leaves region 1", insn_index=3, region=1,
                             field="x_size")
    again = P.error_from_header(P.error_header(exc))
    assert type(again) is BoardDmaRangeError and str(again) == str(exc)
    assert (again.insn_index, again.region, again.field) == (3, 1, "x_size")
    plain = P.error_header(KeyError("k"))
    assert plain["code"] == "internal" and "KeyError" in plain["message"]
