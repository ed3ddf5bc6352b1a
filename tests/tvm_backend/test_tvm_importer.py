"""Model specs, kernel classes, and Relax imports checked against the framework/numpy."""
from __future__ import annotations

import numpy as np
import pytest

from vtatune.errors import ConfigurationError


@pytest.mark.parametrize("name, klass", [
    ("fused_conv2d3_add2_relu1", "fused_conv2d_add_relu"),
    ("fused_conv2d_add_relu", "fused_conv2d_add_relu"),
    ("conv2d10", "conv2d"),
    ("max_pool2d", "max_pool2d"),
    ("fused_conv2d18_add14_tir_clip7", "fused_conv2d_add_tir_clip"),
    ("fused_matmul_add15", "fused_matmul_add"),
    ("reshape4", "reshape"),
    ("mean", "mean"),
])
def test_kernel_class_drops_only_deduplication_suffixes(name, klass):
    from vtatune.backends.tvm.importer import kernel_class
    assert kernel_class(name) == klass


def test_spec_parsing_types_options_from_the_zoo_defaults():
    from vtatune.backends.tvm.importer import parse_spec
    assert parse_spec("resnet18:res=64,width=0.5") == ("resnet18", {"res": 64, "width": 0.5})
    assert parse_spec(" toy ") == ("toy", {})


@pytest.mark.parametrize("spec, field", [
    ("alexnet", "model"), ("resnet18:depth=3", "depth"), ("resnet18:res=big", "res"),
    ("resnet18:res", "model"), ("", "model"),
])
def test_bad_specs_name_the_bad_part(spec, field):
    from vtatune.backends.tvm.importer import parse_spec
    with pytest.raises(ConfigurationError) as exc:
        parse_spec(spec)
    assert exc.value.field == field


def test_toy_model_imports_and_matches_torch(target):
    pytest.importorskip("torch")
    from vtatune.backends.tvm import runtime
    from vtatune.backends.tvm.importer import extract_kernels, load_model
    model = load_model("toy")
    kernels = extract_kernels(model, target)
    # conv+bias+relu fused, the linear layer, and a reshape between them
    classes = sorted(k.klass for k in kernels)
    assert "fused_conv2d_add_relu" in classes
    assert any(c.startswith("fused_matmul") or c == "matmul" for c in classes)
    conv = next(k for k in kernels if k.klass == "fused_conv2d_add_relu")
    assert conv.flops >= 2 * 16 * 8 * 9 * 16 * 16     # 2 x MACs of the 3x3 conv
    out = runtime.run(runtime.compile_model(model, target), model, target)[0]
    np.testing.assert_allclose(out, model.reference, rtol=1e-4, atol=1e-5)


def _conv_relu_onnx(path, x_shape, w):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    node = helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])
    relu = helper.make_node("Relu", ["c"], ["y"])
    out_shape = [x_shape[0], w.shape[0], x_shape[2], x_shape[3]]
    graph = helper.make_graph(
        [node, relu], "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(w, "w")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(m, str(path))


def _conv_relu_numpy(x, w):
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd), np.float64)
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nchw,oc->nohw", xp[:, :, dy:dy + h, dx:dx + wd], w[:, :, dy, dx])
    return np.maximum(out, 0)


def test_onnx_file_imports_and_matches_numpy(tmp_path, target):
    pytest.importorskip("onnx")
    from vtatune.backends.tvm import runtime
    from vtatune.backends.tvm.importer import extract_kernels, load_model
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3, 3, 3)).astype("float32")
    path = tmp_path / "conv.onnx"
    _conv_relu_onnx(path, (1, 3, 8, 8), w)
    model = load_model(str(path))
    assert [x.shape for x in model.inputs] == [(1, 3, 8, 8)]
    assert [k.klass for k in extract_kernels(model, target)] == ["fused_conv2d_relu"]
    out = runtime.run(runtime.compile_model(model, target), model, target)[0]
    np.testing.assert_allclose(out, _conv_relu_numpy(model.inputs[0], w), rtol=1e-4, atol=1e-4)


def test_missing_or_broken_onnx_file_is_a_typed_error(tmp_path):
    pytest.importorskip("onnx")
    from vtatune.backends.tvm.importer import load_model
    with pytest.raises(ConfigurationError, match="no such ONNX file"):
        load_model(str(tmp_path / "none.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(ConfigurationError) as exc:
        load_model(str(bad))
    assert exc.value.field == "model"


@pytest.mark.parametrize("spec", ["bert:seq=16,hidden=32,layers=1,heads=2",
                                  "mobilenetv2:res=32,width=0.25,blocks=2",
                                  "resnet50:res=32,width=0.25,stages=1"])
def test_zoo_models_import_and_match_torch(spec, target):
    """Depthwise convs, bottlenecks, attention: the untuned Relax build equals PyTorch."""
    pytest.importorskip("torch")
    from vtatune.backends.tvm import runtime
    from vtatune.backends.tvm.importer import extract_kernels, load_model
    model = load_model(spec)
    assert len(extract_kernels(model, target)) >= 3
    out = runtime.run(runtime.compile_model(model, target), model, target)[0]
    np.testing.assert_allclose(out, model.reference, rtol=1e-3, atol=1e-4)
