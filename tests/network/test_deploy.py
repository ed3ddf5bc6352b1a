"""Whole networks deployed on VTA and checked byte for byte against the int8 reference
(``reference.run_int``): the zoo's ResNet-18 at reduced resolution on fsim (1x16, and 4x8 at
batch 4), hand-built graphs with what VTA cannot run (reported, on the CPU) and what does not
divide by the block (padded), tsim timing with tuned records, the Chrome trace, the CLI."""
import itertools
import json

import numpy as np
import pytest

try:
    from .test_partition import Builder, toy_resnet
except ImportError:  # tests/network not a package (yet)
    from test_partition import Builder, toy_resnet

from vtatune.hardware.config import HwConfig
from vtatune.network.deploy import A9_OPS_PER_S, deploy

HW = HwConfig.load()
HW48 = HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18")

pytest.importorskip("tvm")


def _by_node(report):
    return {p["node"]: p for p in report.placements}


def _check_resnet18(report, n_vta, batch):
    assert report.bit_exact, report.format()
    assert report.mismatches == 0 and report.output_shape == (batch, 1000)
    pl = _by_node(report)
    convs = [p for p in pl.values() if p["op"] == "conv2d"]
    assert len(convs) == 20
    cpu_convs = [p for p in convs if p["where"] == "cpu"]
    assert len(cpu_convs) == 1 and "3 input channels" in cpu_convs[0]["reason"]
    assert len(report.layers) == n_vta
    # layout conversions only at the two boundaries: max pool -> packed, classifier -> NCHW
    layouts = [c for c in report.cpu if c.kind == "layout"]
    assert len(layouts) == 2, [c.name for c in layouts]
    assert {c.layout for c in report.cpu if c.op == "add"} == {"packed"}
    return pl


@pytest.mark.requires("torch", "models")
def test_resnet18_on_fsim_is_bit_exact():
    r = deploy("resnet18:res=32", hw=HW, target="fsim")
    pl = _check_resnet18(r, 20, 1)
    dense = next(p for p in pl.values() if p["op"] == "dense")
    assert dense["where"] == "vta" and dense["padded"] == [1000, 1008]
    assert "padded 1000→1008" in dense["reason"]
    assert all(lay.vta_s is None for lay in r.layers)  # fsim: no hardware time
    assert all(lay.config["kind"] == "fallback" for lay in r.layers)  # no database
    assert r.totals()["vta_s"] is None and r.cpu_host_s > 0
    assert r.float_check is not None and "top1_agreement" in r.float_check
    text = r.format()
    assert "bit-exact" in text and "Cortex-A9 estimate" in text and "this host" in text


@pytest.mark.requires("torch", "models")
def test_resnet18_on_4x8_at_batch_4_is_bit_exact():
    r = deploy("resnet18:res=32", hw=HW48, target="fsim", batch=4)
    pl = _check_resnet18(r, 20, 4)
    dense = next(p for p in pl.values() if p["op"] == "dense")
    assert dense["where"] == "vta" and "padded" not in dense  # 1000 = 125 x BLOCK_OUT 8
    assert all(lay.workload.startswith(("conv2d:4,", "dense:4,")) for lay in r.layers)


def mixed_graph(batch=1):
    """A graph with what VTA cannot take: a depthwise conv, a group conv whose groups do not
    divide the block, a conv whose 24 input channels do not; and what it can take padded: a
    conv to 24 channels and a classifier to 10 classes; plus a group conv that fits."""
    b = Builder((batch, 32, 8, 8), seed=5)
    g = b.conv("group_ok", "x", 32, groups=2)                  # 16 per group: VTA
    dw = b.conv("depthwise", g, 32, groups=32)                 # CPU
    g8 = b.conv("group_8", dw, 32, groups=4)                   # 8 per group: CPU
    a = b.add("add", g8, g, shift_a=1)
    c24 = b.conv("to24", a, 24, lo=-127)                       # VTA, padded 24->32
    c = b.conv("from24", c24, 32, k=1, pad=0)                  # 24 inputs: CPU
    p = b.pool("pool", c)
    gp = b.gap("gap", p)
    b.dense("fc", gp, 10)                                      # VTA, padded 10->16
    return b.graph("fc", name="mixed")


def test_what_vta_cannot_run_stays_on_the_cpu_and_the_rest_is_padded():
    r = deploy(mixed_graph(), hw=HW, target="fsim", seed=3)
    assert r.bit_exact, r.format()
    pl = _by_node(r)
    assert pl["group_ok"]["where"] == "vta" and pl["group_ok"]["template"] == "group_conv2d_packed.vta"
    assert pl["depthwise"]["where"] == "cpu" and "depthwise" in pl["depthwise"]["reason"]
    assert pl["group_8"]["where"] == "cpu" and "per group" in pl["group_8"]["reason"]
    assert pl["from24"]["where"] == "cpu" and "24 input channels" in pl["from24"]["reason"]
    assert pl["to24"]["padded"] == [24, 32] and pl["fc"]["padded"] == [10, 16]
    text = r.format()
    assert "on the CPU: depthwise: depthwise convolution" in text
    assert "padded: to24: 24→32" in text
    # each CPU node's time and its Cortex-A9 estimate (operation count at the stated rate)
    cpu = {c.name: c for c in r.cpu}
    dw = cpu["depthwise"]
    assert dw.ops == 1 * 32 * 8 * 8 * 9 and dw.a9_est_s == pytest.approx(dw.ops / A9_OPS_PER_S)
    assert dw.host_s > 0


def test_batch_not_a_multiple_of_the_hardware_batch_runs_on_the_cpu():
    r = deploy(toy_resnet(batch=2, res=16), hw=HW48, target="fsim")
    assert r.bit_exact and not r.layers
    pl = _by_node(r)
    assert "batch 2 is not a multiple of the hardware BATCH 4" in pl["b1c1"]["reason"]
    assert not [c for c in r.cpu if c.kind == "layout"]  # all NCHW: nothing to convert


def test_tsim_with_tuned_records_reports_times_gains_and_a_trace(tmp_path):
    pytest.importorskip("sqlalchemy")
    from vtatune.compiler.sweep import verdict
    from vtatune.db import open_db
    from vtatune.network.layers import default_config, tuning_task
    from vtatune.network.partition import partition

    g = toy_resnet(res=16)
    db = open_db(f"sqlite:///{tmp_path / 'r.db'}")
    # a record for one layer shape (b1c1 and b1c2 share it): its largest valid tile
    p = next(p for p in partition(g, HW) if p.node == "b1c1")
    task = tuning_task(p.workload, HW)
    first, _ = default_config(task, p.workload, HW)
    best = max((i for i in range(task.space.size)
                if verdict(p.workload, task.config(i).knobs, HW, task.profile, task.sync)[0]),
               key=lambda i: task.config(i).knobs["tile_h"] * task.config(i).knobs["tile_w"])
    assert best != first
    db.add([task.record(task.config(best), costs=[1e-4], runner="tsim/single/default/x")])
    trace = tmp_path / "trace.json"
    r = deploy(g, hw=HW, target="tsim", db=db, trace=str(trace))
    db.close()
    assert r.bit_exact
    lay = {x.node: x for x in r.layers}
    for name in ("b1c1", "b1c2"):
        assert lay[name].config["kind"] == "tuned" and lay[name].config["index"] == best
        assert lay[name].config["record"]["runner"] == "tsim/single/default/x"
        assert lay[name].default_index == first
        assert lay[name].gain > 1.0           # the larger tile beats the all-ones default
    assert lay["b2c1"].config["kind"] == "fallback" and lay["b2c1"].gain == pytest.approx(1.0)
    assert all(x.vta_s > 0 and x.cycles > 0 for x in r.layers)
    tot = r.totals()
    assert tot["vta_s"] == pytest.approx(sum(x.vta_s for x in r.layers))
    assert tot["vta_gain"] > 1.0
    assert tot["end_to_end_vta_plus_a9_est_s"] == pytest.approx(tot["vta_s"] + r.cpu_a9_est_s)
    # the Chrome trace: measured run and modelled board run, VTA and CPU on one timeline each
    t = json.loads(trace.read_text())
    xs = [e for e in t["traceEvents"] if e["ph"] == "X"]
    assert {e["pid"] for e in xs} == {1, 2} and {e["tid"] for e in xs} == {1, 2}
    run = sorted((e for e in xs if e["pid"] == 1), key=lambda e: e["ts"])
    assert [e["name"] for e in run if e["tid"] == 1] == [x.node for x in r.layers]
    for a, b in itertools.pairwise(run):  # one after the other, as they ran
        assert b["ts"] == pytest.approx(a["ts"] + a["dur"])
    vta = {e["name"]: e for e in run if e["tid"] == 1}
    assert vta["b1c1"]["dur"] == pytest.approx(lay["b1c1"].vta_s * 1e6)
    json.dumps(r.to_dict())  # the --json report is plain JSON
    rows = {line.split()[0]: line.split() for line in r.format().splitlines() if line.strip()}
    assert rows["b1c1"][2:5] == [str(best), "tuned", "tsim"]
    assert rows["b2c1"][3:5] == ["fallback", "default"]


def test_deploy_cli(tmp_path, capsys, monkeypatch):
    from vtatune.cli.main import main
    monkeypatch.delenv("VTATUNE_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["deploy", "toy:res=8", "--json", "--trace", "t.json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bit_exact"] and out["target"] == "fsim"
    assert {p["where"] for p in out["placements"]} == {"cpu", "vta"}
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    # clear one-line typed errors
    assert main(["deploy", "toy:res=8", "--batch", "0"]) == 2
    assert "--batch must be at least 1" in capsys.readouterr().err
    assert main(["deploy", "nosuchnet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("vtatune: ConfigurationError:") and "unknown model" in err
    assert len(err.splitlines()) == 1
    assert main(["deploy", "toy:res=8", "--target", "asic"]) == 1
    assert "unknown measurement target" in capsys.readouterr().err
    # an output that differs from the reference: exit 1, said in one line
    from vtatune.network import reference
    real = reference.run_int
    monkeypatch.setattr(reference, "run_int", lambda g, x: real(g, x) + 1)
    assert main(["deploy", "toy:res=8"]) == 1
    captured = capsys.readouterr()
    assert "DIFFERS from the int8 reference" in captured.out
    assert captured.err.strip().startswith("vtatune: DeployMismatchError: the output differs")


def test_on_a_loopback_board_server_with_the_fsim_backend(tmp_path, monkeypatch):
    """pynq:// runs every VTA layer on the board server; a server with the fsim backend has
    no hardware time, and the report says so instead of printing simulator wall times."""
    import io
    import threading

    from vtatune.board.backends import create_backend
    from vtatune.board.server import BoardServer
    from vtatune.measure.board_runner import BoardRunner

    monkeypatch.setenv("VTATUNE_CACHE_DIR", str(tmp_path))
    server = BoardServer(create_backend("fsim", hw=HW), log_file=io.StringIO())
    th = threading.Thread(target=server.serve_forever, kwargs={"poll_s": 0.05}, daemon=True)
    th.start()
    try:
        runner = BoardRunner.from_target(f"pynq://127.0.0.1:{server.port}")
        r = deploy(toy_resnet(res=16), hw=HW, target=runner)
    finally:
        server.stop()
        th.join(10)
    assert r.bit_exact and r.target == f"pynq://127.0.0.1:{server.port}"
    assert len(r.layers) == 6 and all(x.vta_s is None for x in r.layers)
    assert "fsim backend" in r.vta_time_meaning
    assert all(x.default_vta_s is None for x in r.layers)  # no gains without a hardware time


def test_a_shift_beyond_int32_is_refused_before_anything_is_built():
    from vtatune.errors import ConfigurationError
    from vtatune.network.deploy import deploy

    from .test_partition import Builder
    b = Builder((1, 16, 4, 4))
    b.conv("big", "x", 16, shift=40)
    with pytest.raises(ConfigurationError) as ei:
        deploy(b.graph("big"), target="fsim")
    assert ei.value.field == "shift" and "40" in str(ei.value)


def test_two_inputs_and_a_dense_on_an_image_are_refused_naming_the_field():
    from vtatune.errors import ConfigurationError
    from vtatune.network.graph import Graph, Node
    from vtatune.network.partition import partition

    from .test_partition import Builder
    b = Builder((1, 16, 4, 4))
    b.nodes.append(Node("y", "input", (), (1, 16, 4, 4), frac=5))
    b.add("s", "x", "y")
    with pytest.raises(ConfigurationError) as ei:
        deploy(b.graph("s"), target="fsim")
    assert ei.value.field == "model" and "2 inputs" in str(ei.value)
    b = Builder((1, 16, 4, 4))
    wt = np.ones((16, 256), np.int8)
    b.nodes.append(Node("d", "dense", ("x",), (1, 16), {"act": "none", "shift": 1, "lo": -127,
                                                        "hi": 127},
                        {"weight": wt, "bias": np.zeros(16, np.int32)}, frac=5))
    with pytest.raises(ConfigurationError) as ei:
        partition(Graph(b.nodes, "d", quantized=True), HW)
    assert ei.value.field == "shape" and "(1, 16, 4, 4)" in str(ei.value)
