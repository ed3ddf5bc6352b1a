"""The board runner (pynq://): target parsing, labels and mixed-pool refusal, tokens, retry
on disconnection and hangs (in-process stand-in clients), then end to end against loopback
board servers (`vtatune board serve --backend fsim`): a tuning run records what --target
fsim records and survives a killed server; two tuning processes share three servers
through PostgreSQL leases without ever running two programs on one server at once."""
from __future__ import annotations

import os
import pickle
import signal
import threading

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")

from board_fakes import HW, FakeBoards, fake_info

from vtatune.errors import (
    BoardAuthError,
    BoardConnectionError,
    BoardHangError,
    ConfigurationError,
    ErrorCategory,
    MeasureError,
)
from vtatune.measure.board_runner import BoardRunner, parse_target, read_token
from vtatune.measure.runners import evaluate, runner_for
from vtatune.task import VtaTask


# ---------------------------------------------------------------------- targets
def test_targets_parse_and_bad_ones_are_typed():
    r = runner_for("pynq://127.0.0.1:9091,board-2.lab:9092,[::1]:7")
    assert isinstance(r, BoardRunner)
    assert r.addresses == (("127.0.0.1", 9091), ("board-2.lab", 9092), ("::1", 7))
    assert r.names == ["127.0.0.1:9091", "board-2.lab:9092", "[::1]:7"]
    assert r.default_workers() == 3 and r.kind == "pynq"
    for bad, match in [("pynq://", "names no board"), ("pynq://host", "not HOST:PORT"),
                       ("pynq://h:0", "not in 1..65535"), ("pynq://h:65536", "not in 1..65535"),
                       ("pynq://h:x1", "not in 1..65535"), ("pynq://h:1,h:1", "twice"),
                       ("pynq://-h:1", "not a host"), ("pynq://h h:1", "not a host"),
                       ("pynq://h:1,", "not HOST:PORT")]:
        with pytest.raises(ConfigurationError, match=match) as ei:
            runner_for(bad)
        assert ei.value.field == "target"


def test_runner_is_a_small_picklable_value_hiding_secrets():
    r = BoardRunner(parse_target("pynq://127.0.0.1:9091"), token="s3cret",
                    lease_url="postgresql+psycopg://u:pw@db/x")
    assert pickle.loads(pickle.dumps(r)) == r and hash(r) == hash(pickle.loads(pickle.dumps(r)))
    assert "s3cret" not in repr(r) and "pw" not in repr(r)
    assert r.configured(number=3).number == 3 and r.number == 1
    with pytest.raises(ConfigurationError, match="attempts"):
        r.configured(attempts=0)


def test_token_from_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("VTATUNE_BOARD_TOKEN", raising=False)
    assert read_token(None) is None
    monkeypatch.setenv("VTATUNE_BOARD_TOKEN", "from-env")
    assert read_token(None) == "from-env"
    f = tmp_path / "token"
    f.write_text("from-file\nignored\n")
    assert read_token(str(f)) == "from-file"
    for path, match in [(tmp_path / "missing", "cannot read"), (tmp_path / "empty", "no token")]:
        if path.name == "empty":
            path.write_text("\n")
        with pytest.raises(ConfigurationError, match=match) as ei:
            read_token(str(path))
        assert ei.value.field == "board-token-file"


# ---------------------------------------------------------------------- stand-in boards
@pytest.fixture
def boards(monkeypatch, tmp_path):
    """Two stand-in boards A and B (fsim in process) and a runner on them with leases in a
    tmp SQLite file."""
    fb = FakeBoards({"10.0.0.1:1": fake_info(), "10.0.0.2:1": fake_info()})
    monkeypatch.setattr(BoardRunner, "_client", lambda self, addr: fb.client(self, addr))
    runner = BoardRunner(parse_target("pynq://10.0.0.1:1,10.0.0.2:1"),
                         lease_url=f"sqlite:///{tmp_path / 'leases.db'}", cooldown_s=60)
    return fb, runner


def test_label_and_mixed_pool_refusal(boards):
    fb, runner = boards
    task = VtaTask.create("dense.1", HW, sync="single")
    assert runner.label(task) == f"pynq[fsim]/{HW}/100MHz/single/tvm-0.14"
    fb.infos["10.0.0.1:1"] = fake_info("pynq", bitstream="1x16_i8w8a32_15_15_18_17.bit")
    fb.infos["10.0.0.2:1"] = fake_info("pynq", bitstream="1x16_i8w8a32_15_15_18_17.bit")
    assert runner.label(task) == "pynq/1x16_i8w8a32_15_15_18_17/100MHz/single/tvm-0.14"
    fb.infos["10.0.0.2:1"] = fake_info("pynq", bitstream="other.bit", clock_mhz=142.0)
    with pytest.raises(ConfigurationError, match="board 10.0.0.2:1 runs pynq other.bit") as ei:
        runner.label(task)
    assert ei.value.field == "target"
    fb.infos["10.0.0.2:1"] = fake_info("pynq", bitstream="1x16_i8w8a32_15_15_18_17.bit")
    other = VtaTask.create("dense.1", "ultra96_1x16_i8w8a32_15_15_18_17")
    with pytest.raises(ConfigurationError, match="hardware configuration"):
        BoardRunner(parse_target("pynq://10.0.0.1:1")).label(other)
    fb.down.add("10.0.0.9:1")
    fb.infos["10.0.0.9:1"] = fake_info()
    with pytest.raises(BoardConnectionError, match="refused"):  # unreachable at start
        BoardRunner(parse_target("pynq://10.0.0.9:1")).label(task)


def test_measurement_matches_fsim_and_reports_board_figures(boards):
    fb, runner = boards
    task = VtaTask.create("resnet18.C10", HW, sync="tvm-0.14")
    ev = evaluate(task, 203, runner.configured(number=3), check=True)
    assert ev.correct is True
    ref = evaluate(task, 203, "fsim")
    assert np.array_equal(ev.execution.output, ref.execution.output)
    x = ev.execution.extra
    assert x["board"] in fb.infos and x["times_s"] == [1e-3, 2e-3, 3e-3]
    # the stand-in boards report invented times, so no overhead figure can be checked here
    assert ev.execution.cost == pytest.approx(2e-3)
    from vtatune.measure import MeasureInput, measure_one
    r = measure_one(MeasureInput(task, task.config(203), runner.configured(number=3), 3, True))
    assert r.error_no == 0 and r.costs == (1e-3, 2e-3, 3e-3)  # each run's own time is kept


def test_retry_on_another_board_and_cool_down(boards):
    fb, runner = boards
    from vtatune.db.leases import LeaseStore
    task = VtaTask.create("dense.1", HW, sync="single")
    fb.fail = {"10.0.0.1:1": [BoardConnectionError], "10.0.0.2:1": [BoardConnectionError]}
    # the least recently used board first: both fresh, so A (by name); A fails, B fails
    with pytest.raises(MeasureError) as ei:
        evaluate(task, 5, runner)
    assert ei.value.reason == "board_unavailable" and ei.value.category == ErrorCategory.RUNTIME_DEVICE
    state = LeaseStore(runner.lease_url).state()
    assert {s["status"] for s in state.values()} == {"cooling"}
    # cooling boards are out of reach: nothing to lease within the wait
    with pytest.raises(MeasureError, match="no board free"):
        evaluate(task, 5, runner.configured(lease_wait_s=0.2))
    runner = runner.configured(cooldown_s=0.0)
    LeaseStore(runner.lease_url).db._run(
        lambda c: c.exec_driver_sql("UPDATE board_leases SET expires = 0"), write=True)
    fb.fail = {"10.0.0.1:1": [BoardConnectionError]}
    ev = evaluate(task, 5, runner)  # retried on B
    assert ev.execution.extra["board"] == "10.0.0.2:1" and ev.execution.extra["attempt"] == 2


def test_hang_on_two_boards_is_a_run_timeout(boards):
    fb, runner = boards
    task = VtaTask.create("dense.1", HW, sync="single")
    fb.fail = {"10.0.0.1:1": [BoardHangError], "10.0.0.2:1": [BoardHangError]}
    with pytest.raises(MeasureError) as ei:
        evaluate(task, 5, runner.configured(cooldown_s=0))
    assert (ei.value.category, ei.value.reason) == (ErrorCategory.RUN_TIMEOUT, "run_timeout")
    fb.fail = {"10.0.0.1:1": [BoardHangError]}  # one hang: the other board runs it
    ev = evaluate(task, 5, runner.configured(cooldown_s=0))
    assert ev.execution.extra["board"] == "10.0.0.2:1"


def test_measure_one_records_board_failures_typed(boards):
    from vtatune.measure import MeasureInput, measure_one
    fb, runner = boards
    task = VtaTask.create("dense.1", HW, sync="single")
    fb.down |= set(fb.infos)
    r = measure_one(MeasureInput(task, task.config(5), runner.configured(lease_wait_s=1)))
    assert (r.error_no, r.reason) == (ErrorCategory.RUNTIME_DEVICE, "board_unavailable")
    assert "10.0.0.1:1" in r.message and "10.0.0.2:1" in r.message


# ---------------------------------------------------------------------- loopback servers
@pytest.fixture
def servers(tmp_path):
    """Start loopback fsim board servers on demand; all killed afterwards."""
    from board_fakes import Server
    started = []

    def start(n):
        for k in range(n):
            started.append(Server(str(tmp_path / f"server{len(started)}.log")))
        return started[-n:]
    yield start
    for s in started:
        s.kill()


def _outcomes(db, task, label):
    return {r.config_index: (r.error_no, r.error_no == 0)
            for r in db.records(workload_key=task.key, hw=task.hw.name, source="measured")
            if r.runner == label}


def test_tuning_on_two_servers_records_what_fsim_records_and_survives_a_kill_mid_measurement(servers, tmp_path):
    from board_fakes import assert_runs_never_overlap

    from vtatune.autotune import tune
    from vtatune.db import open_db
    from vtatune.db.leases import LeaseStore
    a, b = servers(2)
    runner = BoardRunner.from_target(f"pynq://{a.address},{b.address}", cooldown_s=60)
    task = VtaTask.create("dense.1", HW, sync="single")
    killed = []

    def kill_during_second_batch(summary, n):
        # server a stops answering before the second batch and dies 1.5 s into it, so a
        # measurement sent to it is in flight when it is killed; the run goes on with b
        if n and not killed:
            os.kill(a.proc.pid, signal.SIGSTOP)
            threading.Timer(1.5, a.kill).start()
            killed.append(summary.measured)
    kw = dict(tuner="random", n_trial=16, seed=7, workers=2, chunk=4, check=True)
    with open_db(f"sqlite:///{tmp_path / 'records.db'}") as db:
        s = tune(task, runner, db=db, on_progress=kill_during_second_batch, **kw)
        ref = tune(task, "fsim", db=db, **kw)
        board = _outcomes(db, task, s.runner)
        assert s.runner == f"pynq[fsim]/{HW}/unclocked/single/tvm-0.14"
        assert killed == [4] and s.new == 16 and s.crashed == 0 and s.valid == ref.valid
        assert board == _outcomes(db, task, ref.runner) and len(board) == 16
        assert not [r for r in db.records() if r.reason == "board_unavailable"]
        state = LeaseStore(db).state()
        assert {k: v["status"] for k, v in state.items()} == {a.address: "cooling",
                                                              b.address: "free"}
        # a was reached and died during the measurement, not refused at connect
        note = state[a.address]["note"]
        assert note.startswith("disconnected:") and "cannot connect" not in note, note
    n_a = assert_runs_never_overlap(a.runs(), "server a")
    n_b = assert_runs_never_overlap(b.runs(), "server b")
    assert n_a >= 1 and n_a + n_b >= 14  # the invalid configurations never reach a board
    # resumable: the same command measures nothing new (the label is the same)
    with open_db(f"sqlite:///{tmp_path / 'records.db'}") as db:
        again = tune(task, BoardRunner.from_target(f"pynq://{b.address}"), db=db, **kw)
    assert (again.resumed, again.new) == (16, 0)


def test_cli_refuses_unreachable_board_and_bad_target_in_one_line(tmp_path, capsys):
    import socket

    from vtatune.cli.main import main
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["tune", "dense.1", "--target", f"pynq://127.0.0.1:{port}", "--trials", "2",
                 "--db", db]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "BoardConnectionError" in err[0] and f"127.0.0.1:{port}" in err[0]
    assert main(["tune", "dense.1", "--target", "pynq://127.0.0.1:70000", "--db", db]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "target" in err[0] and "65535" in err[0]
    assert main(["tune", "dense.1", "--board-token-file", str(tmp_path / "t"), "--db", db]) == 2
    assert "board targets" in capsys.readouterr().err


@pytest.mark.slow
def test_two_tuning_processes_share_three_servers_through_postgresql(servers, pg_url, tmp_path):
    """Each process drives up to three boards at once (three workers); the servers' own logs
    show no server ever ran two programs at once (nor refused one busy), and killing a
    server mid-run loses no configuration."""
    import json
    import subprocess
    import sys
    import time

    from board_fakes import assert_runs_never_overlap

    from vtatune.db import open_db
    pool = servers(3)
    target = "pynq://" + ",".join(s.address for s in pool)
    trials = {"dense.1": 24, "resnet18.C10": 24}
    procs = {wl: subprocess.Popen(
        [sys.executable, "-m", "vtatune", "tune", wl, "--target", target, "--db", pg_url,
         "--tuner", "random", "--trials", str(n), "--seed", "3", "--check", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for wl, n in trials.items()}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill the busiest server once both are running
        runs = [sum(e.get("event") == "run_end" for e in s.runs()) for s in pool]
        if sum(runs) >= 6:
            break
        time.sleep(0.1)
    victim = pool[max(range(3), key=lambda k: runs[k])]
    victim.kill()
    assert all(p.poll() is None for p in procs.values()), "killed after the run, not during"
    killed_at = time.time()
    outs = {}
    for wl, p in procs.items():
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outs[wl] = json.loads(out)[0]
    total = 0
    for k, s in enumerate(pool):
        total += assert_runs_never_overlap(s.runs(), f"server {k}")
    assert total >= 30  # both processes ran on the boards (invalid configurations do not)
    after = [e for s in pool if s is not victim for e in s.runs()
             if e.get("event") == "run_end" and e["start"] > killed_at]
    assert len(after) >= 5  # the other two servers took over
    with open_db(pg_url, readonly=True) as db:
        for wl, n in trials.items():
            task = VtaTask.create(wl, HW)
            label = outs[wl]["runner"]
            recs = [r for r in db.records(workload_key=task.key, source="measured")
                    if r.runner == label]
            assert len(recs) == n == outs[wl]["new"], wl  # nothing lost
            assert not [r for r in recs if r.reason in ("board_unavailable", "wrong_answer")]
            assert outs[wl]["crashed"] == 0


@pytest.mark.slow
def test_cli_tuning_on_boards_is_interruptible_and_resumable(servers, tmp_path):
    """SIGTERM mid-run: exit 130 with what was measured stored; the same command resumes
    (same runner label; a lease a killed worker held is reclaimed at once, tests/db)."""
    import json
    import signal
    import subprocess
    import sys
    import time
    a, b = servers(2)
    db = f"sqlite:///{tmp_path / 'records.db'}"
    cmd = [sys.executable, "-m", "vtatune", "tune", "dense.1", "--target",
           f"pynq://{a.address},{b.address}", "--db", db, "--tuner", "random", "--trials", "30",
           "--json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        if sum(e.get("event") == "run_end" for s in (a, b) for e in s.runs()) >= 6:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    first = json.loads(out)[0]
    assert first["interrupted"] and 0 < first["new"] < 30
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    second = json.loads(out.stdout)[0]
    assert second["resumed"] == first["new"] and second["measured"] == 30
    assert second["runner"] == first["runner"] and second["crashed"] == 0


def test_tuning_goes_on_when_boards_come_back(boards, tmp_path):
    """Every board gone: each measurement is recorded board_unavailable (a crash of the
    setup, counted as such), nothing is lost, and measuring resumes once boards answer."""
    from vtatune.autotune import tune
    from vtatune.db import open_db
    from vtatune.measure import measure_one
    fb, runner = boards
    runner = runner.configured(cooldown_s=0, lease_wait_s=0.5)
    task = VtaTask.create("dense.1", HW, sync="single")

    class InlinePool:  # measures in this process, where the stand-in boards live
        n = 1

        def measure(self, inputs):
            return [measure_one(i) for i in inputs]

    def outage(summary, n):
        if summary.measured == 0:
            fb.down |= set(fb.infos)      # both boards disappear after the label check
        elif summary.measured >= 4:
            fb.down.clear()               # ... and come back
    with open_db(f"sqlite:///{tmp_path / 'r.db'}") as db:
        s = tune(task, runner, db=db, tuner="random", n_trial=12, seed=1, chunk=4,
                 pool=InlinePool(), on_progress=outage)
        recs = db.records()
    assert s.measured == 12 and s.new == 12 and s.crashed == 4 and not s.all_crashed
    reasons = [r.reason for r in sorted(recs, key=lambda r: r.timestamp)]
    assert reasons[:4] == ["board_unavailable"] * 4
    assert "board_unavailable" not in reasons[4:] and s.valid >= 6


def test_token_from_file_and_environment_against_a_real_server(tmp_path, monkeypatch, capsys):
    from board_fakes import Server

    from vtatune.cli.main import main
    token = tmp_path / "board.token"
    token.write_text("0123456789abcdef0123456789abcdef\n")
    server = Server(str(tmp_path / "s.log"), extra=["--token-file", str(token)])
    try:
        monkeypatch.delenv("VTATUNE_BOARD_TOKEN", raising=False)
        task = VtaTask.create("dense.1", HW, sync="single")
        target = f"pynq://{server.address}"
        with pytest.raises(BoardAuthError):  # no token: refused at the start, typed
            runner_for(target).label(task)
        wrong = tmp_path / "wrong.token"
        wrong.write_text("not-it\n")
        db = f"sqlite:///{tmp_path / 'r.db'}"
        assert main(["tune", "dense.1", "--target", target, "--board-token-file", str(wrong),
                     "--trials", "2", "--db", db]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "BoardAuthError" in err[0]
        runner = BoardRunner.from_target(target, token_file=str(token),
                                         lease_url=f"sqlite:///{tmp_path / 'l.db'}")
        assert runner.label(task).startswith("pynq[fsim]/")
        assert evaluate(task, 5, runner, check=True).correct
        monkeypatch.setenv("VTATUNE_BOARD_TOKEN", token.read_text().strip())
        assert main(["tune", "dense.1", "--target", target, "--trials", "2", "--tuner",
                     "random", "--db", db]) == 0
    finally:
        server.kill()
