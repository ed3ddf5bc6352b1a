"""The float graph read from Relax modules (zoo models through torch.export, ONNX files),
checked against the torch models themselves, and the float executor."""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest

from vtatune.errors import ConfigurationError
from vtatune.network.frontend import conv2d_float, max_pool2d, run_float
from vtatune.network.graph import Graph, Node


def _ops(graph):
    return Counter(n.op for n in graph.nodes)


def _acts(graph):
    return Counter(n.attrs["act"] for n in graph.nodes if n.op in ("conv2d", "dense", "add"))


def _close(out, ref):
    """float64 numpy vs float32 torch: agree to float32 rounding of the output's scale."""
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * max(1.0, np.abs(ref).max()))


# ------------------------------------------------------------------------------ zoo models
def test_resnet18_graph_has_the_torch_layers_and_runs_like_torch(resnet18):
    from vtatune.backends.tvm import zoo

    graph, inputs, ref = resnet18
    assert not graph.quantized and graph.name == "resnet18:res=32"
    # 1 stem + 8 blocks x 2 + 3 downsample convs, 8 residual adds, the classifier
    assert _ops(graph) == {"input": 1, "conv2d": 20, "max_pool2d": 1, "add": 8,
                           "global_avg_pool": 1, "dense": 1}
    # ReLU: stem, the first conv of each block, each residual add; none after the block's
    # second conv, the downsample convs and the classifier
    assert _acts(graph) == {"relu": 1 + 8 + 8, "none": 8 + 3 + 1}
    assert all(n.attrs["act"] == "relu" for n in graph.nodes if n.op == "add")
    stem = graph.nodes[1]
    assert stem.op == "conv2d" and stem.inputs == ("x",)
    assert (stem.attrs["stride"], stem.attrs["pad"], stem.attrs["groups"]) == ((2, 2), (3, 3), 1)
    pool = graph.nodes[2]
    assert pool.op == "max_pool2d" and pool.attrs == {"kernel": (3, 3), "stride": (2, 2),
                                                      "pad": (1, 1)}
    assert graph.output == "dense_0" and graph.node("dense_0").shape == (1, 1000)
    # the bias add after each conv is folded into the conv: compare with torch's parameters
    model, _ = zoo.build("resnet18", res=32)
    np.testing.assert_array_equal(stem.params["weight"], model.stem.weight.detach().numpy())
    np.testing.assert_array_equal(stem.params["bias"], model.stem.bias.detach().numpy())
    fc = graph.node("dense_0")
    np.testing.assert_array_equal(fc.params["weight"], model.fc.weight.detach().numpy())
    np.testing.assert_array_equal(fc.params["bias"], model.fc.bias.detach().numpy())
    # the float executor against torch, and every node's shape against what it computes
    vals = run_float(graph, inputs[0], keep=True)
    _close(vals[graph.output], ref)
    assert {n.name: n.shape for n in graph.nodes} == {k: v.shape for k, v in vals.items()}


@pytest.mark.parametrize("spec, ops, acts", [
    # stages 1..4: 1 + 16 x 3 bottleneck convs + 4 downsample, 16 adds
    ("resnet50:res=32,width=0.25", {"input": 1, "conv2d": 53, "max_pool2d": 1, "add": 16,
                                    "global_avg_pool": 1, "dense": 1},
     {"relu": 1 + 16 * 2 + 16, "none": 16 + 4 + 1}),
    # stem + 2 (t=1 row) + 16 blocks x 3 + final 1x1; 10 residual blocks; ReLU6 after the
    # stem, every expand and depthwise conv and the last conv; linear bottlenecks
    ("mobilenetv2:res=32", {"input": 1, "conv2d": 52, "add": 10, "global_avg_pool": 1,
                            "dense": 1},
     {"relu6": 1 + 1 + 16 * 2 + 1, "none": 17 + 10 + 1}),
    # the Linear on the flattened feature map becomes a conv covering the map + 1x1 pool
    ("toy:res=6", {"input": 1, "conv2d": 2, "global_avg_pool": 1}, {"relu": 1, "none": 1}),
])
def test_zoo_models_run_like_torch(load, spec, ops, acts):
    graph, inputs, ref = load(spec)
    assert _ops(graph) == ops
    assert _acts(graph) == acts
    _close(run_float(graph, inputs[0]), ref)
    if spec.startswith("mobilenetv2"):
        depthwise = [n for n in graph.nodes if n.op == "conv2d" and n.attrs["groups"] > 1]
        assert len(depthwise) == 17
        assert all(n.params["weight"].shape[1] == 1 for n in depthwise)
    if spec.startswith("toy"):
        fc = graph.node("conv2d_1")
        assert fc.params["weight"].shape == (10, 16, 6, 6) and fc.attrs["pad"] == (0, 0)
        assert fc.shape == (1, 10, 1, 1)
        assert graph.node(graph.output).op == "global_avg_pool"
        assert graph.node(graph.output).shape == (1, 10)


def test_batch_and_other_seeds_run_like_torch(load):
    graph, inputs, ref = load("resnet18:res=32,batch=2,seed=3,stages=2,width=0.5")
    assert graph.inputs[0].shape == (2, 3, 32, 32)
    _close(run_float(graph, inputs[0]), ref)


# ---------------------------------------------------------------------------------- ONNX
def _export(model, example, path):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(path), dynamo=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model(*example).detach().numpy()


@pytest.mark.parametrize("name, options, ops", [
    ("toy", {"res": 5}, {"input": 1, "conv2d": 2, "global_avg_pool": 1}),
    ("resnet18", {"res": 32, "stages": 2, "width": 0.25},
     {"input": 1, "conv2d": 10, "max_pool2d": 1, "add": 4, "global_avg_pool": 1, "dense": 1}),
    # ONNX Clip(0, 6) arrives as call_tir maximum/minimum kernels
    ("mobilenetv2", {"res": 32, "blocks": 2, "width": 0.25},
     {"input": 1, "conv2d": 10, "add": 2, "global_avg_pool": 1, "dense": 1}),
])
def test_onnx_files_run_like_torch(load, tmp_path, name, options, ops):
    require = pytest.importorskip
    require("onnx")
    from vtatune.backends.tvm import zoo

    model, example = zoo.build(name, **options)
    path = tmp_path / f"{name}.onnx"
    ref = _export(model, example, path)
    graph, inputs, reference = load(str(path))
    assert reference is None and graph.inputs[0].shape == tuple(example[0].shape)
    assert _ops(graph) == ops
    if name == "mobilenetv2":
        assert _acts(graph)["relu6"] == 7
    _close(run_float(graph, example[0].numpy()), ref)
    assert run_float(graph, inputs[0]).shape == ref.shape


def test_onnx_op_outside_the_table_is_named(load, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Sigmoid", ["c"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [1, 1, 2, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])],
                          [w])
    path = tmp_path / "sigmoid.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(ConfigurationError, match=r"sigmoid") as err:
        load(str(path))
    assert err.value.field == "model"


# ------------------------------------------------------------------------- unsupported ops
def _relax(module, shape=(1, 3, 8, 8)):
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    ep = torch.export.export(module.eval(), (torch.randn(*shape),))
    return from_exported_program(ep, keep_params_as_input=False)


def _cases():
    import torch
    nn = torch.nn

    class ReluReadTwice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            return torch.relu(y) + y

    return [
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sigmoid()), r"binding lv\d+ \(relax\.sigmoid\)"),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sigmoid(), nn.Conv2d(4, 4, 1), nn.Tanh()),
         r"relax\.sigmoid.*and 1 more.*relax\.tanh"),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.AvgPool2d(2)), r"relax\.nn\.avg_pool2d"),
        (nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2)), r"dilation"),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.ReLU()),
         r"relax\.nn\.relu.*cannot be fused.*max_pool2d"),
        (ReluReadTwice(), r"cannot be fused.*read by other operations"),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Hardtanh(-1.0, 1.0)),
         r"clamp to \[-1\.0, 1\.0\] is neither ReLU nor ReLU6"),
    ]


def test_unsupported_ops_raise_configuration_errors_naming_them(load):
    for module, pattern in _cases():
        with pytest.raises(ConfigurationError, match=pattern) as err:
            from vtatune.network.frontend import graph_from_relax
            graph_from_relax(_relax(module))
        assert err.value.field == "model"


def test_a_model_with_integer_inputs_is_refused(load):
    with pytest.raises(ConfigurationError, match=r"input 'ids' is int64"):
        load("bert:seq=4,hidden=8,layers=1,heads=2,vocab=10")


# ------------------------------------------------------------------------ float executor
def _conv_loops(x, w, b, stride, pad, groups):
    """Direct 7-loop convolution (independent of the im2col one)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad[0], wd + 2 * pad[1]))
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x
    oh, ow = (h + 2 * pad[0] - kh) // stride[0] + 1, (wd + 2 * pad[1] - kw) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for b_ in range(n):
        for oc in range(o):
            g = oc // og
            for i in range(oh):
                for j in range(ow):
                    s = b[oc]
                    for ci in range(cg):
                        for u in range(kh):
                            for v in range(kw):
                                s += (xp[b_, g * cg + ci, i * stride[0] + u, j * stride[1] + v]
                                      * w[oc, ci, u, v])
                    out[b_, oc, i, j] = s
    return out


@pytest.mark.parametrize("stride, pad, groups", [((1, 1), (0, 0), 1), ((2, 1), (1, 2), 2),
                                                 ((2, 2), (1, 1), 4)])
def test_float_conv_matches_direct_loops(stride, pad, groups):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((8, 4 // groups, 3, 2))
    b = rng.standard_normal(8)
    g = Graph([Node("x", "input", (), (2, 4, 7, 6)),
               Node("c", "conv2d", ("x",), (), {"stride": stride, "pad": pad, "groups": groups,
                                                "act": "none"}, {"weight": w, "bias": b})], "c")
    want = _conv_loops(x, w, b, stride, pad, groups)
    np.testing.assert_allclose(run_float(g, x), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv2d_float(x, w, stride, pad, groups),
                               want - b.reshape(1, -1, 1, 1), rtol=1e-12, atol=1e-12)


def test_float_max_pool_pads_with_minus_infinity_and_acts_clip():
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # all negative: zero padding would win
    got = max_pool2d(x, (3, 3), (2, 2), (1, 1), -np.inf)
    # windows over padded rows/cols 0-2 and 2-4: real rows/cols {0, 1} and {1, 2, 3}
    np.testing.assert_array_equal(got, [[[[-1.0, -2.0], [-5.0, -6.0]]]])
    g = Graph([Node("a", "input", (), (1, 3)), Node("b", "input", (), (1, 3)),
               Node("s", "add", ("a", "b"), (1, 3), {"act": "relu6"})], "s")
    out = run_float(g, [np.array([[1.0, -4.0, 5.0]]), np.array([[2.0, 1.0, 3.0]])])
    np.testing.assert_array_equal(out, [[3.0, 0.0, 6.0]])


def test_run_float_checks_its_input(resnet18, resnet18_q):
    graph, inputs, _ = resnet18
    with pytest.raises(ConfigurationError, match=r"shape \(1, 3, 16, 16\)") as err:
        run_float(graph, np.zeros((1, 3, 16, 16), np.float32))
    assert err.value.field == "x"
    with pytest.raises(ConfigurationError, match="quantized") as err:
        run_float(resnet18_q[0], inputs[0])
    assert err.value.field == "graph"
