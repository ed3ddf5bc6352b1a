"""The integer executor against cases worked out by hand (graph.py's semantics), and node by
node against an independent implementation on a quantized ResNet-18."""
from __future__ import annotations

import numpy as np
import pytest

from vtatune.errors import ConfigurationError
from vtatune.network.frontend import conv2d_float
from vtatune.network.graph import Graph, Node, quantize_input
from vtatune.network.reference import run_int


def _i8(a):
    return np.asarray(a, dtype=np.int8)


def test_add_shifts_rounds_half_up_and_clips():
    g = Graph([Node("a", "input", (), (1, 1, 2, 2), frac=5),
               Node("b", "input", (), (1, 1, 2, 2), frac=6),
               Node("s", "add", ("a", "b"), (1, 1, 2, 2),
                    {"act": "none", "shift_a": 1, "shift_b": 0, "shift": 2, "lo": -127,
                     "hi": 127}, frac=4)], "s", quantized=True)
    a = _i8([[[[3, -3], [5, -5]]]])
    b = _i8([[[[1, 1], [-2, 100]]]])
    # v = 2a + b = [[7, -5], [8, 90]]; (v + 2) >> 2 = [[9, -3], [10, 92]] >> 2
    out = run_int(g, [a, b])
    np.testing.assert_array_equal(out, [[[[2, -1], [2, 23]]]])
    assert out.dtype == np.int8
    g.node("s").attrs.update(lo=0)  # relu
    np.testing.assert_array_equal(run_int(g, [a, b]), [[[[2, 0], [2, 23]]]])
    g.node("s").attrs.update(shift_a=3, shift_b=3, shift=0, lo=-127)  # saturates, no rounding
    big = _i8([[[[127, -127], [16, -16]]]])
    np.testing.assert_array_equal(run_int(g, [big, big]), [[[[127, -127], [127, -127]]]])
    g.node("s").attrs.update(shift_a=0, shift_b=0, shift=1)  # 2**0 rounding term
    np.testing.assert_array_equal(run_int(g, [_i8([[[[1, -1], [-2, 3]]]]), _i8(
        [[[[0, 0], [1, 0]]]])]), [[[[1, 0], [0, 2]]]])  # (1+1)>>1, (-1+1)>>1, (-1+1)>>1, 4>>1


def test_max_pool_padding_never_wins():
    g = Graph([Node("x", "input", (), (1, 1, 2, 2), frac=0),
               Node("p", "max_pool2d", ("x",), (1, 1, 2, 2),
                    {"kernel": (2, 2), "stride": (2, 2), "pad": (1, 1)}, frac=0)],
              "p", quantized=True)
    x = _i8([[[[-100, -50], [-20, -127]]]])
    # each window holds one real element and three padded ones
    np.testing.assert_array_equal(run_int(g, x), x)
    g.node("p").attrs.update(kernel=(3, 3), stride=(1, 1))  # every window: all four
    np.testing.assert_array_equal(run_int(g, x), np.full((1, 1, 2, 2), -20))
    x128 = _i8([[[[-128, -128], [-128, -128]]]])
    np.testing.assert_array_equal(run_int(g, x128), x128)


def test_global_avg_pool_floor_divides_with_the_half_added():
    g = Graph([Node("x", "input", (), (1, 4, 3, 3), frac=3),
               Node("p", "global_avg_pool", ("x",), (1, 4), frac=3)], "p", quantized=True)
    x = np.zeros((1, 4, 3, 3), np.int8)
    x[0, 0, 0, :3] = [-1, -2, -2]      # sum -5:  floor((-5 + 4) / 9) = floor(-1/9) = -1
    x[0, 1, 0, :2] = [-2, -2]          # sum -4:  floor(0 / 9) = 0
    x[0, 2, :, :] = 127                # sum 1143: floor(1147 / 9) = 127
    x[0, 3, 0, :2] = [-7, -7]          # sum -14: floor(-10 / 9) = -2
    np.testing.assert_array_equal(run_int(g, x), [[-1, 0, 127, -2]])
    g2 = Graph([Node("x", "input", (), (1, 3, 2, 2), frac=0),
                Node("p", "global_avg_pool", ("x",), (1, 3), frac=0)], "p", quantized=True)
    x2 = _i8([[[[5, 0], [0, 0]], [[6, 0], [0, 0]], [[-6, 0], [0, 0]]]])
    # HW 4: 1.25 -> 1, 1.5 -> 2 (half up), -1.5 -> -1 (half up, not away from zero)
    np.testing.assert_array_equal(run_int(g2, x2), [[1, 2, -1]])


def _conv(stride, pad, shift, bias, lo, hi, x_shape=(1, 1, 3, 3), out=(1, 1, 2, 2)):
    w = _i8([[[[2, 1], [0, -1]]]])
    return Graph([Node("x", "input", (), x_shape, frac=0),
                  Node("c", "conv2d", ("x",), out,
                       {"stride": stride, "pad": pad, "groups": 1, "act": "relu",
                        "shift": shift, "lo": lo, "hi": hi},
                       {"weight": w, "bias": np.array([bias], np.int32)}, frac=0)],
                 "c", quantized=True)


def test_conv_one_channel_by_hand():
    x = _i8([[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]])
    # acc(i, j) = 2 x[i, j] + x[i, j+1] - x[i+1, j+1] = [[-1, 1], [5, 7]]
    # bias 3 (2 plus the rounding term 2**0): [[2, 4], [8, 10]] >> 1 = [[1, 2], [4, 5]]
    np.testing.assert_array_equal(run_int(_conv((1, 1), (0, 0), 1, 3, 0, 4), x),
                                  [[[[1, 2], [4, 4]]]])  # clipped to hi = 4
    # bias -1: [[-2, 0], [4, 6]] >> 1 = [[-1, 0], [2, 3]], lo = 0
    np.testing.assert_array_equal(run_int(_conv((1, 1), (0, 0), 1, -1, 0, 127), x),
                                  [[[[0, 0], [2, 3]]]])
    np.testing.assert_array_equal(run_int(_conv((1, 1), (0, 0), 1, -1, -127, 127), x),
                                  [[[[-1, 0], [2, 3]]]])
    # stride 2, zero padding 1: windows at padded (0,0), (0,2), (2,0), (2,2) of the 5x5
    # [[0,0],[0,1]] -> -1; [[0,0],[2,3]] -> -3; [[0,4],[0,7]] -> -3; [[5,6],[8,9]] -> 7
    np.testing.assert_array_equal(run_int(_conv((2, 2), (1, 1), 0, 0, -127, 127), x),
                                  [[[[-1, -3], [-3, 7]]]])


def test_dense_bias_add_wraps_in_int32():
    bias = (1 << 31) - 1 - 16000
    g = Graph([Node("x", "input", (), (1, 1), frac=0),
               Node("d", "dense", ("x",), (1, 2),
                    {"act": "none", "shift": 24, "lo": -127, "hi": 127},
                    {"weight": _i8([[127], [-127]]), "bias": np.array([bias, 0], np.int32)},
                    frac=0)], "d", quantized=True)
    # 127 * 127 + bias = 2**31 + 128 wraps to -2**31 + 128; >> 24 = -128 -> clip -127
    # (without wrapping it would be 128 -> 127); channel 2: -16129 >> 24 = -1
    np.testing.assert_array_equal(run_int(g, _i8([[127]])), [[-127, -1]])


def test_run_int_checks_its_arguments(resnet18, resnet18_q):
    graph, inputs, _ = resnet18
    q, _ = resnet18_q
    with pytest.raises(ConfigurationError) as err:
        run_int(graph, inputs[0])
    assert err.value.field == "graph"
    with pytest.raises(ConfigurationError, match="float32, expected int8") as err:
        run_int(q, inputs[0])
    assert err.value.field == "q_input"
    with pytest.raises(ConfigurationError) as err:
        run_int(q, np.zeros((1, 3, 8, 8), np.int8))
    assert err.value.field == "q_input"
    bad = Graph([Node("x", "input", (), (1, 2), frac=0),
                 Node("d", "dense", ("x",), (1, 1), {"act": "none"},
                      {"weight": _i8([[1, 1]]), "bias": np.zeros(1, np.int32)})],
                "d", quantized=True)
    with pytest.raises(ConfigurationError, match="shift"):
        run_int(bad, _i8([[1, 2]]))


def test_resnet18_node_by_node_against_an_independent_implementation(resnet18_q):
    """Every node of the integer ResNet-18 recomputed from its inputs with float64 BLAS
    convolutions (exact: every partial sum is far below 2**53), true division and floor,
    instead of int64 accumulation and shifts."""
    q, _ = resnet18_q
    x = np.random.default_rng(5).standard_normal(q.nodes[0].shape).astype(np.float32) * 1.5
    vals = run_int(q, quantize_input(x, q.nodes[0].frac), keep=True)
    saturated = 0
    for n in q.nodes[1:]:
        ins = [vals[i].astype(np.float64) for i in n.inputs]
        a = n.attrs
        if n.op in ("conv2d", "dense"):
            if n.op == "conv2d":
                acc = conv2d_float(ins[0], n.params["weight"], a["stride"], a["pad"],
                                   a["groups"])
                b = n.params["bias"].reshape(1, -1, 1, 1)
            else:
                acc = ins[0] @ n.params["weight"].astype(np.float64).T
                b = n.params["bias"]
            assert np.abs(acc).max() + np.abs(b).max() < 2 ** 31  # no wrapping here
            want = np.clip(np.floor((acc + b) / 2.0 ** a["shift"]), a["lo"], a["hi"])
        elif n.op == "add":
            v = ins[0] * 2.0 ** a["shift_a"] + ins[1] * 2.0 ** a["shift_b"]
            want = np.clip(np.floor(v / 2.0 ** a["shift"] + (0.5 if a["shift"] else 0.0)),
                           a["lo"], a["hi"])
        elif n.op == "max_pool2d":
            t = np.pad(ins[0], ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
            oh, ow = n.shape[2:]
            want = np.array([[[[t[b_, c, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max()
                                for j in range(ow)] for i in range(oh)]
                              for c in range(n.shape[1])] for b_ in range(n.shape[0])])
        else:  # global_avg_pool
            hw = ins[0].shape[2] * ins[0].shape[3]
            want = np.floor((ins[0].sum(axis=(2, 3)) + hw // 2) / hw)
        got = vals[n.name]
        assert got.dtype == np.int8 and got.shape == n.shape
        np.testing.assert_array_equal(got, want, err_msg=n.name)
        saturated += int(np.sum(np.abs(got) == 127))
    # the scales leave headroom: hardly any value saturates on a 1.5-sigma-wider input
    assert saturated < 0.01 * sum(v.size for v in vals.values())


@pytest.mark.parametrize("attr,value", [("shift", 32), ("shift", -1), ("shift_a", 24),
                                        ("shift_b", 30), ("lo", -129), ("hi", 128)])
def test_out_of_range_attributes_are_refused_naming_the_attribute(attr, value):
    """graph.py's ranges: an int32 shift, an int8 shifted left inside int32, int8 clips."""
    from vtatune.network.graph import check_quantized
    x = Node("x", "input", (), (1, 2, 2, 2), frac=4)
    y = Node("y", "input", (), (1, 2, 2, 2), frac=4)
    attrs = {"act": "none", "shift_a": 0, "shift_b": 1, "shift": 1, "lo": -127, "hi": 127}
    attrs[attr] = value
    g = Graph([x, y, Node("s", "add", ("x", "y"), (1, 2, 2, 2), attrs, frac=3)], "s",
              quantized=True)
    for call in (lambda: check_quantized(g),
                 lambda: run_int(g, {"x": np.zeros((1, 2, 2, 2), np.int8),
                                     "y": np.zeros((1, 2, 2, 2), np.int8)})):
        with pytest.raises(ConfigurationError) as ei:
            call()
        assert ei.value.field == attr
