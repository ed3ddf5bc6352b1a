"""Partitioning of hand-built quantized graphs: which node goes to VTA, which stays on the
CPU, and the reason given for each decision."""
import numpy as np
import pytest

from vtatune.errors import ConfigurationError
from vtatune.hardware.config import HwConfig
from vtatune.network.graph import Graph, Node
from vtatune.network.partition import CPU, VTA, partition, summary
from vtatune.workloads.workload import CONV2D, DENSE, GROUP_CONV2D, Requant

HW = HwConfig.load()
HW48 = HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18")


class Builder:
    """A quantized graph built node by node, with seeded random int8 weights."""

    def __init__(self, shape, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes = [Node("x", "input", (), tuple(shape), frac=5)]

    def _shape(self, name):
        return next(n.shape for n in self.nodes if n.name == name)

    def conv(self, name, x, cout, k=3, stride=1, pad=1, groups=1, shift=9, lo=0, hi=127):
        n, c, h, w = self._shape(x)
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        wt = self.rng.integers(-127, 128, (cout, c // groups, k, k), dtype=np.int8)
        bias = self.rng.integers(-2000, 2000, cout, dtype=np.int32)
        self.nodes.append(Node(name, "conv2d", (x,), (n, cout, oh, ow),
                               {"stride": (stride, stride), "pad": (pad, pad), "groups": groups,
                                "act": "relu" if lo == 0 else "none", "shift": shift, "lo": lo,
                                "hi": hi}, {"weight": wt, "bias": bias}, frac=5))
        return name

    def dense(self, name, x, cout, shift=9, lo=-127, hi=127):
        n, i = self._shape(x)
        wt = self.rng.integers(-127, 128, (cout, i), dtype=np.int8)
        bias = self.rng.integers(-2000, 2000, cout, dtype=np.int32)
        self.nodes.append(Node(name, "dense", (x,), (n, cout),
                               {"act": "none", "shift": shift, "lo": lo, "hi": hi},
                               {"weight": wt, "bias": bias}, frac=5))
        return name

    def pool(self, name, x, k=3, stride=2, pad=1):
        n, c, h, w = self._shape(x)
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        self.nodes.append(Node(name, "max_pool2d", (x,), (n, c, oh, ow),
                               {"kernel": (k, k), "stride": (stride, stride), "pad": (pad, pad)},
                               frac=5))
        return name

    def add(self, name, a, b, shift_a=0, shift_b=0, shift=1, lo=0, hi=127):
        self.nodes.append(Node(name, "add", (a, b), self._shape(a),
                               {"act": "relu", "shift_a": shift_a, "shift_b": shift_b,
                                "shift": shift, "lo": lo, "hi": hi}, frac=5))
        return name

    def gap(self, name, x):
        n, c, _, _ = self._shape(x)
        self.nodes.append(Node(name, "global_avg_pool", (x,), (n, c), frac=5))
        return name

    def graph(self, out, name="toy"):
        return Graph(self.nodes, out, quantized=True, name=name)


def toy_resnet(batch=1, res=16, width=16, classes=10, seed=0):
    """stem (3 channels) -> pool -> a residual block -> a strided block with a 1x1
    shortcut -> global pool -> classifier: every op of ResNet-18."""
    b = Builder((batch, 3, res, res), seed)
    s = b.conv("stem", "x", width, k=7, stride=2, pad=3)
    p = b.pool("pool", s)
    c1 = b.conv("b1c1", p, width)
    c2 = b.conv("b1c2", c1, width, lo=-127)
    a1 = b.add("b1add", c2, p, shift_a=1)
    c3 = b.conv("b2c1", a1, 2 * width, stride=2)
    c4 = b.conv("b2c2", c3, 2 * width, lo=-127)
    d = b.conv("b2down", a1, 2 * width, k=1, stride=2, pad=0, lo=-127)
    a2 = b.add("b2add", c4, d, shift_b=1)
    g = b.gap("gap", a2)
    b.dense("fc", g, classes)
    return b.graph("fc")


def by_node(placements):
    return {p.node: p for p in placements}


def test_resnet_like_graph_on_1x16():
    ps = by_node(partition(toy_resnet(), HW))
    assert [p.where for p in ps.values()].count(VTA) == 6
    stem = ps["stem"]
    assert stem.where == CPU and "3 input channels" in stem.reason
    assert "BLOCK_IN 16" in stem.reason and "first convolution" in stem.reason
    for name in ("b1c1", "b1c2", "b2c1", "b2c2", "b2down"):
        p = ps[name]
        assert p.where == VTA and p.workload.template == CONV2D, p.reason
        assert p.workload.batch == 1 and p.workload.epilogue == "requant"
        assert p.padded_out_channels is None
    wl = ps["b2c1"].workload
    assert (wl.height, wl.in_channels, wl.out_channels, wl.stride_h, wl.pad_h) == (4, 16, 32, 2, 1)
    assert ps["b1c1"].workload.requant == Requant(9, 0, 127)
    assert ps["b1c2"].workload.requant == Requant(9, -127, 127)
    fc = ps["fc"]
    assert fc.where == VTA and fc.workload.template == DENSE
    assert fc.workload.out_channels == 16 and fc.out_channels == 10
    assert fc.padded_out_channels == 16 and "padded 10→16" in fc.reason
    for name, word in (("pool", "max pooling"), ("b1add", "add"), ("gap", "average pooling"),
                       ("x", "input")):
        assert ps[name].where == CPU and word in ps[name].reason
    s = summary(list(ps.values()))
    assert s["vta_layers"] == 6 and s["cpu_layers"] == ["stem"] and s["padded"] == {"fc": [10, 16]}
    assert ps["fc"].to_dict()["padded"] == [10, 16]


def test_a_1000_class_classifier_is_padded_to_1008():
    b = Builder((1, 512), 1)
    b.dense("fc", "x", 1000)
    p = by_node(partition(b.graph("fc"), HW))["fc"]
    assert p.where == VTA and "padded 1000→1008" in p.reason
    # on the 4x8 configuration 1000 divides by BLOCK_OUT 8: nothing to pad (batch 4)
    b = Builder((4, 512), 1)
    b.dense("fc", "x", 1000)
    p = by_node(partition(b.graph("fc"), HW48))["fc"]
    assert p.where == VTA and p.padded_out_channels is None and "padded" not in p.reason


def test_group_and_depthwise_convolutions():
    b = Builder((1, 64, 8, 8))
    b.conv("dw", "x", 64, groups=64)
    b.conv("g2", "x", 64, groups=2)
    b.conv("g8", "x", 64, groups=8)
    b.conv("g4out", "x", 48, groups=4)  # 16 in / 12 out per group
    ps = by_node(partition(b.graph("g2"), HW))
    assert ps["dw"].where == CPU and "depthwise" in ps["dw"].reason
    assert ps["g2"].where == VTA and ps["g2"].workload.template == GROUP_CONV2D
    assert ps["g2"].workload.groups == 2 and "2 groups" in ps["g2"].reason
    assert ps["g8"].where == CPU and "8 input / 8 output channels per group" in ps["g8"].reason
    assert ps["g4out"].where == CPU and "12 output channels per group" in ps["g4out"].reason


def test_batch_must_be_a_multiple_of_the_hardware_batch():
    for batch, where in ((2, CPU), (4, VTA), (8, VTA)):
        ps = by_node(partition(toy_resnet(batch=batch), HW48))
        for name in ("b1c1", "b2down", "fc"):
            assert ps[name].where == where, (batch, ps[name].reason)
        if where == CPU:
            assert f"batch {batch} is not a multiple of the hardware BATCH 4" in ps["b1c1"].reason
        else:
            assert ps["b1c1"].workload.batch == batch
    # the 4x8 configuration blocks by 8: 12 channels are not a multiple of BLOCK_IN 8
    b = Builder((4, 12, 8, 8))
    b.conv("c", "x", 16)
    p = by_node(partition(b.graph("c"), HW48))["c"]
    assert p.where == CPU and "12 input channels are not a multiple of BLOCK_IN 8" in p.reason


def test_shapes_the_template_cannot_take_stay_on_the_cpu():
    b = Builder((1, 16, 8, 8))
    b.conv("rows_unpadded", "x", 16, k=3, pad=0)
    b.nodes[-1].attrs["pad"] = (0, 1)
    b.nodes[-1].shape = (1, 16, 6, 8)
    b.conv("big_shift", "x", 16, shift=40)
    p = by_node(partition(b.graph("big_shift"), HW))
    assert p["rows_unpadded"].where == CPU and "row padding" in p["rows_unpadded"].reason
    assert p["big_shift"].where == CPU and "requant.shift" in p["big_shift"].reason
    b = Builder((1, 20))
    b.dense("fc", "x", 16)
    p = by_node(partition(b.graph("fc"), HW))["fc"]
    assert p.where == CPU and "20 input features" in p.reason


def test_an_unquantized_graph_is_refused():
    g = toy_resnet()
    g.quantized = False
    with pytest.raises(ConfigurationError) as ei:
        partition(g, HW)
    assert "not quantized" in str(ei.value)
