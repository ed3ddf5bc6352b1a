"""Power-of-two int8 quantization: scales, shifts, biases and clips computed by hand on tiny
graphs, the invariants on a whole ResNet-18, and the measured float-vs-int agreement."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vtatune.errors import ConfigurationError
from vtatune.network.frontend import run_float
from vtatune.network.graph import Graph, Node, dequantize, quantize_input
from vtatune.network.quantize import (
    ZERO_FRAC,
    act_bounds,
    calibrate,
    compare,
    frac_for,
    quantize,
    quantize_weight,
)
from vtatune.network.reference import run_int

from .conftest import seeded_inputs


def test_frac_is_the_largest_that_keeps_the_max_within_127():
    assert frac_for(1.0) == 6          # 64 <= 127 < 128
    assert frac_for(127.0) == 0
    assert frac_for(127.5) == -1       # 63.75
    assert frac_for(0.49) == 8         # 125.44 <= 127 < 250.88
    assert frac_for(127.0 / 1024) == 10  # exactly 127 at frac 10
    assert frac_for(1000.0) == -3      # 125
    assert frac_for(0.0) == ZERO_FRAC
    for m in (1e-3, 0.3, 2.5, 77.0, 5000.0):
        f = frac_for(m)
        assert m * 2.0 ** f <= 127 < m * 2.0 ** (f + 1)
    with pytest.raises(ConfigurationError):
        frac_for(math.nan)


def test_weights_round_to_int8_with_one_power_of_two_scale():
    q, fw = quantize_weight(np.array([0.75, -0.75, 0.1, -0.00390625]))
    assert fw == 7  # 0.75 * 128 = 96
    np.testing.assert_array_equal(q, [96, -96, 13, 0])  # 12.8 -> 13, -0.5 -> 0 (floor(x+.5))
    assert q.dtype == np.int8
    assert act_bounds("relu6", 4) == (0, 96) and act_bounds("relu6", 5) == (0, 127)
    assert act_bounds("relu", 3) == (0, 127) and act_bounds("none", 3) == (-127, 127)


def _conv_graph(w, b, act, shape=(1, 1, 2, 2)):
    return Graph([Node("x", "input", (), shape),
                  Node("c", "conv2d", ("x",), (shape[0], len(b)) + shape[2:],
                       {"stride": (1, 1), "pad": (0, 0), "groups": 1, "act": act},
                       {"weight": np.asarray(w, np.float32), "bias": np.asarray(b, np.float32)})],
                 "c")


def test_conv_quantization_by_hand():
    g = _conv_graph([[[[0.75]]]], [0.3], "relu")
    q = quantize(g, [np.ones((1, 1, 2, 2), np.float32)])
    x, c = q.nodes
    assert q.quantized and x.frac == 6                 # max |x| = 1
    # output max 0.75 + 0.3 = 1.05 -> frac 6; weight frac 7; shift = 6 + 7 - 6
    assert c.frac == 6 and c.attrs["frac_w"] == 7 and c.attrs["shift"] == 7
    assert (c.attrs["lo"], c.attrs["hi"]) == (0, 127)
    assert c.params["weight"].dtype == np.int8 and int(c.params["weight"][0, 0, 0, 0]) == 96
    # bias at frac 13: floor(0.3 * 8192 + 0.5) = 2458, plus the rounding term 2**6
    assert c.params["bias"].dtype == np.int32 and int(c.params["bias"][0]) == 2458 + 64
    # 1.0 -> 64; (96 * 64 + 2522) >> 7 = 8666 >> 7 = 67; 67 / 64 = 1.047 (float 1.05)
    out = run_int(q, quantize_input(np.ones((1, 1, 2, 2)), x.frac))
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 67, np.int8))


def test_a_negative_shift_lowers_the_output_frac():
    # 100 * 1.0 - 100 * 0.999 = 0.1 wants frac 10, but the accumulator has only 0 + 6
    g = Graph([Node("x", "input", (), (1, 2)),
               Node("d", "dense", ("x",), (1, 1), {"act": "none"},
                    {"weight": np.array([[1.0, -0.999]], np.float32),
                     "bias": np.zeros(1, np.float32)})], "d")
    q = quantize(g, [np.array([[100.0, 100.0]], np.float32)])
    d = q.node("d")
    assert frac_for(0.1) == 10 and q.node("x").frac == 0 and d.attrs["frac_w"] == 6
    assert d.attrs["shift"] == 0 and d.frac == 6
    assert int(d.params["bias"][0]) == 0  # no rounding term at shift 0


def test_relu6_and_add_by_hand():
    g = Graph([Node("a", "input", (), (1, 4)), Node("b", "input", (), (1, 4)),
               Node("s", "add", ("a", "b"), (1, 4), {"act": "none"}),
               Node("d", "dense", ("s",), (1, 4), {"act": "relu6"},
                    {"weight": np.eye(4, dtype=np.float32) * 1.5,
                     "bias": np.zeros(4, np.float32)})], "d")
    a = np.array([[1.0, -0.5, 0.25, 0.0]], np.float32)
    b = np.array([[4.0, -1.0, 0.0, 0.5]], np.float32)
    q = quantize(g, [[a, b]])
    s, d = q.node("s"), q.node("d")
    assert (q.node("a").frac, q.node("b").frac) == (6, 4)
    # sum max 5 -> frac 4; both aligned to frac 6: shift_a 0, shift_b 2, shift 6 - 4
    assert s.frac == 4 and (s.attrs["shift_a"], s.attrs["shift_b"], s.attrs["shift"]) == (0, 2, 2)
    assert (s.attrs["lo"], s.attrs["hi"]) == (-127, 127)
    # relu6(1.5 * 5) = 6 -> frac 4 -> hi = 6 * 16
    assert d.frac == 4 and (d.attrs["lo"], d.attrs["hi"]) == (0, 96)
    out = run_int(q, [quantize_input(a, 6), quantize_input(b, 4)])
    # a -> [64, -32, 16, 0], b -> [64, -16, 0, 8]; (a + (b << 2) + 2) >> 2 = [80, -24, 4, 8]
    np.testing.assert_array_equal(run_int(q, [quantize_input(a, 6), quantize_input(b, 4)],
                                          keep=True)["s"], [[80, -24, 4, 8]])
    # dense: weight 1.5 -> frac 6, 96; (96 q + 2**5) >> 6, clipped to [0, 96]
    assert d.attrs["shift"] == 6
    want = np.clip((96 * np.array([80, -24, 4, 8]) + 32) >> 6, 0, 96)
    np.testing.assert_array_equal(out, [want])
    np.testing.assert_allclose(dequantize(out, d.frac), [[6.0, 0.0, 0.375, 0.75]])


def test_quantize_refuses_bad_arguments(resnet18, resnet18_q):
    graph, inputs, _ = resnet18
    with pytest.raises(ConfigurationError) as err:
        quantize(graph, [])
    assert err.value.field == "calibration_inputs"
    with pytest.raises(ConfigurationError) as err:
        quantize(resnet18_q[0], inputs)
    assert err.value.field == "graph"
    with pytest.raises(ConfigurationError) as err:
        quantize(graph, [np.full(inputs[0].shape, np.nan, np.float32)])
    assert err.value.field == "calibration_inputs"


# ------------------------------------------------------------------------------ ResNet-18
def test_resnet18_quantized_invariants(resnet18, resnet18_q):
    graph, _, _ = resnet18
    q, cal = resnet18_q
    peak = calibrate(graph, cal)
    assert q.quantized and [n.name for n in q.nodes] == [n.name for n in graph.nodes]
    frac = {n.name: n.frac for n in q.nodes}
    for f, n in zip(graph.nodes, q.nodes):
        assert n.shape == f.shape and isinstance(n.frac, int)
        if n.op in ("conv2d", "dense"):
            w, fw = n.params["weight"], n.attrs["frac_w"]
            assert w.dtype == np.int8 and w.shape == f.params["weight"].shape
            assert w.min() >= -127 and w.max() <= 127
            assert np.abs(w).max() >= 64  # the scale uses the int8 range (frac is largest)
            # each weight within half a step of the float weight
            assert np.abs(w * 2.0 ** -fw - f.params["weight"]).max() <= 2.0 ** -(fw + 1) + 1e-9
            fa, shift = frac[n.inputs[0]] + fw, n.attrs["shift"]
            b = n.params["bias"].astype(np.int64) - ((1 << (shift - 1)) if shift else 0)
            assert n.params["bias"].dtype == np.int32
            assert np.abs(b * 2.0 ** -fa - f.params["bias"]).max() <= 2.0 ** -(fa + 1) + 1e-9
            assert shift >= 0 and n.frac == fa - shift
        if n.op == "add":
            fa, fb = frac[n.inputs[0]], frac[n.inputs[1]]
            assert min(n.attrs["shift_a"], n.attrs["shift_b"]) == 0
            assert fa + n.attrs["shift_a"] == fb + n.attrs["shift_b"]
            assert n.attrs["shift"] >= 0
            assert n.frac == fa + n.attrs["shift_a"] - n.attrs["shift"]
        if n.op in ("conv2d", "dense", "add"):
            assert (n.attrs["lo"], n.attrs["hi"]) == act_bounds(f.attrs["act"], n.frac)
            # the calibrated frac, unless the shift had to be raised to 0
            assert n.frac == frac_for(peak[n.name]) or (
                n.attrs["shift"] == 0 and n.frac < frac_for(peak[n.name]))
        elif n.op in ("max_pool2d", "global_avg_pool"):
            assert n.frac == frac[n.inputs[0]]
        else:
            assert n.frac == frac_for(peak[n.name])
    # the 3-channel first conv stays in the graph (the partitioner sends it to the CPU)
    assert q.nodes[1].op == "conv2d" and q.nodes[1].params["weight"].shape[1] == 3


def test_resnet18_dequantized_output_tracks_the_float_output(resnet18, resnet18_q):
    graph, inputs, _ = resnet18
    q, _ = resnet18_q
    ev = seeded_inputs(inputs[0].shape, 8, seed=2)  # not the calibration inputs
    rep = compare(graph, q, ev)
    print(rep.summary())
    # the report's numbers, recomputed
    fl = np.stack([run_float(graph, x) for x in ev])
    qo = np.stack([run_int(q, quantize_input(x, q.nodes[0].frac)) for x in ev])
    dq = dequantize(qo, q.node(q.output).frac)
    assert rep.inputs == 8 and rep.rows == 8
    assert rep.top1_agree == int(np.sum(fl.argmax(-1) == qo.argmax(-1)))
    assert rep.max_abs_error == pytest.approx(np.abs(dq - fl).max())
    assert rep.rel_rms_error == pytest.approx(np.sqrt(np.mean((dq - fl) ** 2) /
                                                      np.mean(fl ** 2)))
    assert rep.float_max_abs == pytest.approx(np.abs(fl).max())
    assert f"{rep.top1_agree}/8" in rep.summary()
    # Bound: with 8-bit power-of-two scales each tensor's rounding error is at most half a
    # step, 2**-(frac+1), i.e. >= 1/254 of its calibrated range, and a random-weight ResNet
    # passes ~20 such layers; the relative RMS error measured here is ~5 % (0 % would mean a
    # broken comparison, > 15 % a broken scale or shift), and no output is off by more than
    # 10 % of the output range.
    assert 0.005 < rep.rel_rms_error < 0.15
    assert rep.max_abs_error < 0.1 * rep.float_max_abs
    # errors grow through the network but every layer stays within the same bound
    assert max(rep.node_errors.values()) < 0.15
    # the input alone: N(0, 1) rounded to steps of 2**-frac, RMS error step / sqrt(12)
    step = 2.0 ** -q.nodes[0].frac
    assert rep.node_errors["x"] == pytest.approx(step / math.sqrt(12), rel=0.1)
