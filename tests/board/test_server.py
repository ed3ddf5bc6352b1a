"""The board server on loopback (in-process, fsim/tsim backends): runs, authentication, typed
errors for bad requests, limits, busy, the run log."""
import socket
import threading

import numpy as np
import pytest

from vtatune.board import protocol as P
from vtatune.board.client import BoardClient, parse_board_url
from vtatune.board.server import BoardServer
from vtatune.errors import (
    BoardAuthError,
    BoardBundleError,
    BoardBusyError,
    BoardConnectionError,
    BoardDmaRangeError,
    BoardHangError,
    ConfigurationError,
)
from vtatune.sim.bundle import Bundle, bundle_to_bytes
from vtatune.sim.simulators import create_simulator

from .conftest import HW
from .test_relocate import FINISH, INP, LOAD, mem_word, stream


def tiny_bundle(*words, data_size=0x400, config=None) -> bytes:
    """Instructions at 0x1000, a data region at 0x3000."""
    insns = np.frombuffer(stream(*words), dtype=np.uint8)
    return bundle_to_bytes(Bundle(config or HW.name, 0x1000, len(words),
                                  [(0x1000, insns), (0x3000, np.zeros(data_size, np.uint8))]))


def raw_session(port):
    """A hand-driven connection past the handshake (server without token)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    hello, _ = P.read_frame(s)
    assert hello["type"] == "hello" and hello["auth"] is None
    P.send_frame(s, {"type": "auth", "mac": None, "nonce": "00" * 16})
    welcome, _ = P.read_frame(s)
    assert welcome["type"] == "welcome"
    return s


# ----------------------------------------------------------------------------- runs
def test_run_on_fsim_gives_the_numpy_output(serve, prog):
    srv = serve("fsim")
    with BoardClient("127.0.0.1", srv.port) as c:
        info = c.info()
        assert (info["backend"], info["hw"], info["hw_ver"]) == ("fsim", HW.name, "0.0.2")
        assert info["bitstream"] is None and info["coherent"] is True
        assert {"version", "clock_mhz", "host", "pid"} <= set(info)
        res = c.run(prog.data, number=3)
        assert sorted(res.regions) == list(range(len(prog.bundle.regions)))
        assert np.array_equal(prog.output(res.regions[prog.out_index]), prog.expected)
        # inputs come back unchanged; the stream's region holds the relocated stream
        b = prog.bundle
        insn = next(k for k, (a, d) in enumerate(b.regions) if a <= b.insn_addr < a + d.size)
        for k, (_, data) in enumerate(b.regions):
            if k not in (prog.out_index, insn):
                assert np.array_equal(res.regions[k], data)
        assert not np.array_equal(res.regions[insn], b.regions[insn][1])
        assert len(res.times_s) == 3 and all(t > 0 for t in res.times_s)
        assert {"parse", "relocate", "copy_in", "run", "copy_out", "total"} <= set(res.server_s)
        assert res.server_s["total"] >= res.server_s["run"] >= 0
        # a second run on the same connection, only the output region
        res2 = c.run(prog.data, regions=[prog.out_index])
        assert list(res2.regions) == [prog.out_index]
        assert np.array_equal(prog.output(res2.regions[prog.out_index]), prog.expected)
        assert res2.info["runs"] == 2


def test_tsim_time_is_tsims_latency(serve, prog):
    b = prog.bundle
    dram = b.to_dram()
    want = create_simulator("tsim", HW, dram).run(b.insn_addr, b.insn_count).latency_ms / 1e3
    srv = serve("tsim")
    with BoardClient("127.0.0.1", srv.port) as c:
        res = c.run(prog.data, number=2, regions=[prog.out_index])
        assert c.info()["clock_mhz"] == 100.0
    assert res.times_s == [pytest.approx(want, rel=1e-12)] * 2
    assert np.array_equal(prog.output(res.regions[prog.out_index]), prog.expected)


def test_the_log_has_start_and_end_of_every_run(serve, prog):
    srv = serve("fsim", server_id="board-7")
    with BoardClient("127.0.0.1", srv.port) as c:
        c.run(prog.data, regions=[prog.out_index])
        with pytest.raises(BoardBundleError):
            c.run(b"garbage")
    recs = srv.records()
    starts = [r for r in recs if r["event"] == "run_start"]
    ends = [r for r in recs if r["event"] == "run_end"]
    assert len(starts) == len(ends) == 2
    assert all(r["server_id"] == "board-7" for r in recs)
    assert ends[0]["outcome"] == "ok" and ends[1]["outcome"] == "bad_bundle"
    for s, e in zip(starts, ends):
        assert s["start"] == e["start"] <= e["end"] and e["start_mono"] <= e["end_mono"]
        assert s["client"] == e["client"] and len(e["bundle_sha256"]) == 64
    assert ends[0]["end"] <= starts[1]["start"]


# ----------------------------------------------------------------------------- auth
def test_token_auth(serve, prog):
    srv = serve("fsim", token="correct horse")
    with BoardClient("127.0.0.1", srv.port, token="correct horse") as c:
        assert c.info()["auth"] is True
    with pytest.raises(BoardAuthError):
        BoardClient("127.0.0.1", srv.port, token="wrong")
    with pytest.raises(BoardAuthError):
        BoardClient("127.0.0.1", srv.port)
    # a raw client answering garbage gets a typed auth error frame
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    hello, _ = P.read_frame(s)
    assert hello["auth"] == "hmac-sha256" and len(bytes.fromhex(hello["nonce"])) == 32
    P.send_frame(s, {"type": "auth", "mac": "00" * 32, "nonce": "11" * 16})
    reply, _ = P.read_frame(s)
    assert reply["type"] == "error" and reply["code"] == "auth"
    s.close()
    assert any(r["event"] == "auth_failed" for r in srv.records())
    with BoardClient("127.0.0.1", srv.port, token="correct horse") as c:  # still serving
        c.ping()


def test_client_refuses_a_server_that_cannot_prove_the_token():
    lsock = socket.create_server(("127.0.0.1", 0))

    def impostor():
        conn, _ = lsock.accept()
        P.send_frame(conn, {"type": "hello", "protocol": 1, "auth": "hmac-sha256",
                            "nonce": "22" * 32, "max_bundle_bytes": 1 << 20})
        P.read_frame(conn)
        P.send_frame(conn, {"type": "welcome", "proof": "33" * 32, "info": {}})
        conn.close()

    t = threading.Thread(target=impostor, daemon=True)
    t.start()
    with pytest.raises(BoardAuthError, match="prove"):
        BoardClient("127.0.0.1", lsock.getsockname()[1], token="tok")
    t.join(5)
    lsock.close()


def test_non_loopback_bind_needs_a_token():
    from vtatune.board.backends import create_backend
    with pytest.raises(ConfigurationError) as err:
        BoardServer(create_backend("fsim", hw=HW), host="0.0.0.0", port=0)
    assert err.value.field == "host"
    srv = BoardServer(create_backend("fsim", hw=HW), host="0.0.0.0", port=0, token="t")
    srv._sock.close()
    with pytest.raises(ConfigurationError):
        BoardServer(create_backend("fsim", hw=HW), host="localhost", port=0, token="")


# ----------------------------------------------------------------------------- bad requests
def test_malformed_frames_get_typed_errors_and_the_connection_survives(serve):
    srv = serve("fsim")
    s = raw_session(srv.port)
    body = b"{not json"
    s.sendall(P.PREFIX.pack(P.MAGIC, 1, 0, len(body), 3) + body + b"xyz")
    reply, _ = P.read_frame(s)
    assert reply["code"] == "bad_request"
    P.send_frame(s, {"type": "launch-missiles"})
    reply, _ = P.read_frame(s)
    assert reply["code"] == "bad_request" and reply["field"] == "type"
    P.send_frame(s, {"type": "run", "number": 1})  # no bundle payload
    reply, _ = P.read_frame(s)
    assert reply["code"] == "bad_request" and reply["field"] == "payloads"
    P.send_frame(s, {"type": "run", "number": "many"}, [b"x"])
    reply, _ = P.read_frame(s)
    assert reply["code"] == "bad_request" and reply["field"] == "number"
    P.send_frame(s, {"type": "ping"})
    assert P.read_frame(s)[0]["type"] == "pong"
    # lost framing: an error frame, then the connection closes
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    reply, _ = P.read_frame(s)
    assert reply["code"] == "bad_request"
    with pytest.raises(P.PeerClosed):
        P.read_frame(s)
    s.close()
    with BoardClient("127.0.0.1", srv.port) as c:  # the server keeps serving
        c.ping()


def test_oversized_bundles_are_refused_before_they_are_read(serve, prog):
    srv = serve("fsim", max_bundle_bytes=64 << 10)
    s = raw_session(srv.port)
    # a little over the limit: refused, discarded, the connection stays usable
    body = b'{"type":"run","payloads":[100000]}'
    s.sendall(P.PREFIX.pack(P.MAGIC, 1, 0, len(body), 100000) + body)
    reply, _ = P.read_frame(s)  # answered before the payload was sent
    assert reply["code"] == "too_large"
    s.sendall(b"\0" * 100000)
    P.send_frame(s, {"type": "ping"})
    assert P.read_frame(s)[0]["type"] == "pong"
    # far over it (10 GiB declared): refused and the connection closed
    body = b'{"type":"run","payloads":[10737418240]}'
    s.sendall(P.PREFIX.pack(P.MAGIC, 1, 0, len(body), 10 << 30) + body)
    reply, _ = P.read_frame(s)
    assert reply["code"] == "too_large"
    with pytest.raises(P.PeerClosed):
        P.read_frame(s)
    s.close()
    with BoardClient("127.0.0.1", srv.port) as c:
        assert c.max_bundle_bytes == 64 << 10
        with pytest.raises(BoardBundleError) as err:
            c.run(b"\0" * (65 << 10))
        assert err.value.code == "too_large"
        c.ping()


def test_bad_bundles(serve, prog):
    srv = serve("fsim")
    with BoardClient("127.0.0.1", srv.port) as c:
        with pytest.raises(BoardBundleError) as err:
            c.run(b"PK\x03\x04 not really a zip")
        assert err.value.field == "<file>"
        other = bundle_to_bytes(Bundle("pynq_4x8_i8w8a32_15_16_16_18", prog.bundle.insn_addr,
                                       prog.bundle.insn_count, prog.bundle.regions))
        with pytest.raises(BoardBundleError) as err:
            c.run(other)
        assert err.value.field == "config"
        with pytest.raises(BoardBundleError) as err:
            c.run(prog.data, regions=[99])
        assert err.value.field == "regions"
        # 2 rows of 33 elements in a 64-element region: the second row leaves it
        with pytest.raises(BoardDmaRangeError) as err:
            c.run(tiny_bundle(FINISH, mem_word(LOAD, INP, 0, 0x3000 // 16, 2, 33, 33), FINISH))
        assert err.value.insn_index == 1 and err.value.region == 1 and err.value.server
        with pytest.raises(BoardBundleError):
            c.run(prog.data, number=0)
        with pytest.raises(BoardBundleError):
            c.run(prog.data, timeout_s=float("nan"))
        res = c.run(prog.data, regions=[prog.out_index])  # still serving on this connection
        assert np.array_equal(prog.output(res.regions[prog.out_index]), prog.expected)


def test_busy_when_another_run_holds_the_accelerator(serve, prog):
    srv = serve("fsim")
    with BoardClient("127.0.0.1", srv.port) as c:
        assert srv.server._accel.acquire(timeout=5)
        try:
            with pytest.raises(BoardBusyError):
                c.run(prog.data)
            with pytest.raises(BoardBusyError):
                c.program()
            c.ping()  # info and ping need no accelerator
        finally:
            srv.server._accel.release()
        c.run(prog.data, regions=[prog.out_index])
    assert [r["request"] for r in srv.records() if r["event"] == "busy"] == ["run", "program"]


# ----------------------------------------------------------------------------- hangs
def test_a_deadlocking_program_is_a_hang_and_the_next_run_works(serve, prog):
    srv = serve("fsim")
    # LOAD INP popping a token (pop_next, bit 4) nobody pushes, FINISH waiting for the load
    # (pop_prev, bit 3): the board would hang
    stuck = tiny_bundle(mem_word(LOAD, INP, 0, 0x3000 // 16, 1, 1, 1, deps=0b0010), FINISH | 1 << 3)
    with BoardClient("127.0.0.1", srv.port) as c:
        with pytest.raises(BoardHangError):
            c.run(stuck)
        res = c.run(prog.data, regions=[prog.out_index])
        assert np.array_equal(prog.output(res.regions[prog.out_index]), prog.expected)


def test_a_simulation_past_its_timeout_is_a_hang(serve, prog):
    srv = serve("fsim")
    with BoardClient("127.0.0.1", srv.port) as c:
        with pytest.raises(BoardHangError) as err:
            c.run(prog.data, timeout_s=1e-6)
        assert err.value.field == "timeout_s"
        res = c.run(prog.data, regions=[prog.out_index])
        assert np.array_equal(prog.output(res.regions[prog.out_index]), prog.expected)
    assert [r["outcome"] for r in srv.records() if r["event"] == "run_end"] == ["hang", "ok"]


def test_connection_errors():
    with pytest.raises(BoardConnectionError):
        BoardClient("127.0.0.1", 1, connect_timeout=2)
    lsock = socket.create_server(("127.0.0.1", 0))  # accepts, speaks no protocol

    def mute():
        conn, _ = lsock.accept()
        conn.sendall(b"SSH-2.0-OpenSSH\r\n" + b"\0" * 30)
        conn.close()

    t = threading.Thread(target=mute, daemon=True)
    t.start()
    with pytest.raises(BoardConnectionError):
        BoardClient("127.0.0.1", lsock.getsockname()[1], connect_timeout=2)
    t.join(5)
    lsock.close()


def test_a_killed_connection_mid_run_is_a_connection_error(serve, prog):
    srv = serve("fsim")
    c = BoardClient("127.0.0.1", srv.port)
    with srv.server._conns_lock:
        conns = list(srv.server._conns.values())
    for s in conns:
        s.shutdown(socket.SHUT_RDWR)
    with pytest.raises(BoardConnectionError):
        c.run(prog.data)
    c.ping()  # reconnects on the next request
    c.close()


def test_parse_board_url():
    assert parse_board_url("pynq://a:1,b.lab:9091,[::1]:7") == [("a", 1), ("b.lab", 9091), ("::1", 7)]
    for bad in ["fsim", "pynq://", "pynq://host", "pynq://h:0", "pynq://h:x", "pynq://:5"]:
        with pytest.raises(ConfigurationError):
            parse_board_url(bad)
