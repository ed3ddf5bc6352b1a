"""``vtatune board serve`` as a subprocess on loopback, ``vtatune board check`` against it."""
import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from vtatune.board.client import BoardClient
from vtatune.cli.main import main

from .conftest import HW


def start_server(*args, env=None):
    p = subprocess.Popen([sys.executable, "-m", "vtatune", "board", "serve", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()
    if not line.startswith("listening on "):
        p.kill()
        raise AssertionError(f"no 'listening on' line: {line!r} {p.stderr.read()}")
    host, _, port = line.split()[-1].rpartition(":")
    return p, host, int(port)


def test_serve_check_and_sigterm(tmp_path, prog, monkeypatch, capsys):
    monkeypatch.delenv("VTATUNE_BOARD_TOKEN", raising=False)
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    log = tmp_path / "board.log"
    p, host, port = start_server("--backend", "fsim", "--port", "0", "--token-file", str(token),
                                 "--log", str(log), "--server-id", "sim-1")
    try:
        assert host == "127.0.0.1" and port > 0
        assert main(["board", "check", f"pynq://{host}:{port}", "--token-file", str(token),
                     "--json", "--number", "2"]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["correct"] is True and rep["backend"] == "fsim" and rep["hw"] == HW.name
        assert rep["bitstream"] is None and rep["server_id"] == "sim-1" and len(rep["times_s"]) == 2
        assert main(["board", "check", f"pynq://{host}:{port}"]) == 1  # no token
        with BoardClient(host, port, token="s3cret-token") as c:  # the same server, from here
            res = c.run(prog.data, regions=[prog.out_index])
            assert np.array_equal(prog.output(res.regions[prog.out_index]), prog.expected)
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(30)
    assert rc == 0
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    events = [r["event"] for r in recs]
    assert events[0] == "serve" and events[-1] == "shutdown"
    assert events.count("run_start") == events.count("run_end") == 2


def test_check_text_output(serve, capsys):
    srv = serve("tsim")
    assert main(["board", "check", f"pynq://127.0.0.1:{srv.port}", "--number", "1"]) == 0
    out = capsys.readouterr().out
    assert "correct" in out and "backend tsim" in out and "clock 100.0 MHz" in out


def test_check_fails_on_a_wrong_output(serve, capsys, monkeypatch):
    from vtatune.board.backends import create_backend
    be = create_backend("fsim", hw=HW)
    orig = be.run

    def corrupt(*a, **kw):
        res = orig(*a, **kw)
        for k in res.regions:
            res.regions[k] = np.full_like(res.regions[k], 7)
        return res

    be.run = corrupt
    srv = serve(be)
    assert main(["board", "check", f"pynq://127.0.0.1:{srv.port}", "--json"]) == 1
    cap = capsys.readouterr()
    assert json.loads(cap.out)["correct"] is False and "wrong output" in cap.err


def test_check_unreachable_is_one_line(capsys):
    assert main(["board", "check", "pynq://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "BoardConnectionError" in err


@pytest.mark.parametrize("args,needle", [
    (["--backend", "fsim", "--host", "0.0.0.0"], "ConfigurationError: host"),
    (["--backend", "fsim", "--bitstream", "4x8_i8w8a32_15_16_16_18.bit"],
     "ConfigurationError: bitstream"),
    (["--backend", "pynq"], "ConfigurationError: bitstream"),
    (["--backend", "fsim", "--token-file", "/nonexistent/token"], "ConfigurationError: token_file"),
])
def test_serve_refusals(args, needle, capsys, monkeypatch):
    monkeypatch.delenv("VTATUNE_BOARD_TOKEN", raising=False)
    assert main(["board", "serve", "--port", "0", *args]) == 1
    cap = capsys.readouterr()
    assert needle in cap.err and len(cap.err.strip().splitlines()) == 1
    assert "listening" not in cap.out


def test_serve_pynq_without_the_pynq_package(bitstream, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", None)
    assert main(["board", "serve", "--backend", "pynq", "--bitstream", bitstream, "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "MissingDependencyError" in err and "vtatune[pynq]" in err
