"""The model zoo: BN folding against an unfolded reference, shapes and structure of each
model against the torchvision / HuggingFace architectures, determinism, typed errors, and
that torch.export accepts every model."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from vtatune.backends.tvm import zoo
from vtatune.backends.tvm.env import BackendUnavailableError
from vtatune.errors import ConfigurationError

# tiny versions of every model (fast to build, run and export), with their output shapes
SMALL = {
    "resnet18": ({"res": 32, "width": 0.25, "classes": 10, "batch": 2}, (2, 10)),
    "resnet50": ({"res": 32, "width": 0.25, "stages": 2}, (1, 1000)),
    "mobilenetv2": ({"res": 32, "width": 0.5, "blocks": 3}, (1, 1000)),
    "bert": ({"seq": 16, "hidden": 32, "layers": 1, "heads": 2}, (1, 2)),
    "toy": ({}, (1, 10)),
}


def convs(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("groups,bias", [(1, True), (1, False), (6, True)])
def test_fold_bn_matches_conv_then_batchnorm(groups, bias):
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(6, 12, 3, stride=2, padding=1, groups=groups, bias=bias)
    bn = torch.nn.BatchNorm2d(12, eps=1e-3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.1, 3.0)
    bn.eval()
    x = torch.randn(2, 6, 9, 9)
    ref = F.batch_norm(F.conv2d(x, conv.weight, conv.bias, 2, 1, 1, groups),
                       bn.running_mean, bn.running_var, bn.weight, bn.bias,
                       training=False, eps=1e-3)
    weight_before = conv.weight.clone()
    fused = zoo.fold_bn(conv, bn)
    assert isinstance(fused, torch.nn.Conv2d) and fused.bias is not None
    assert (fused.stride, fused.padding, fused.groups) == ((2, 2), (1, 1), groups)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(conv.weight, weight_before)  # the inputs are left alone


@pytest.fixture(scope="module")
def small():
    return {name: zoo.build(name, **opts) for name, (opts, _) in SMALL.items()}


@pytest.mark.parametrize("name", list(SMALL))
def test_output_shape_finite_eval_and_no_batchnorm(small, name):
    model, inputs = small[name]
    assert not model.training
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in model.modules())
    with torch.no_grad():
        out = model(*inputs)
    assert tuple(out.shape) == SMALL[name][1]
    assert torch.isfinite(out).all() and out.abs().max() > 0


def test_resnet_structure():
    r18, (x,) = zoo.build("resnet18", res=32, width=0.125)
    assert len(convs(r18)) == 1 + 8 * 2 + 3  # stem, 8 BasicBlocks, downsample of stages 2-4
    assert x.shape == (1, 3, 32, 32)
    r50, _ = zoo.build("resnet50", res=32, width=0.125)
    assert len(convs(r50)) == 1 + 16 * 3 + 4  # stage 1 also projects 64 -> 256
    # folded BN gives every conv a bias, and it is not trivial
    assert all(c.bias is not None and c.bias.abs().max() > 0 for c in convs(r50))
    r50_2, _ = zoo.build("resnet50", res=32, width=0.25, stages=2)
    assert len(convs(r50_2)) == 1 + (3 + 4) * 3 + 2
    assert convs(r50_2)[0].out_channels == 16  # 64 * 0.25
    assert r50_2.fc.in_features == 32 * 4  # 128 * 0.25, times the Bottleneck expansion
    assert convs(r50_2)[0].kernel_size == (7, 7) and convs(r50_2)[0].stride == (2, 2)


def test_width_rounds_channels_to_multiples_of_8():
    model, _ = zoo.build("resnet18", res=32, width=0.3)  # 64*0.3 = 19.2 -> 16, 512*0.3 -> 152
    assert convs(model)[0].out_channels == 16 and model.fc.in_features == 152
    model, _ = zoo.build("resnet18", res=32, width=0.01, stages=1)
    assert convs(model)[0].out_channels == 8  # never below 8


def test_mobilenetv2_structure(small):
    model, _ = small["mobilenetv2"]
    depthwise = [c for c in convs(model)
                 if c.groups == c.in_channels == c.out_channels and c.groups > 1]
    assert len(depthwise) == 1 + 2 + 3  # one per inverted residual of the first 3 rows
    assert all(c.kernel_size == (3, 3) for c in depthwise)
    assert convs(model)[0].out_channels == 16  # 32 * 0.5
    assert any(isinstance(m, torch.nn.ReLU6) for m in model.modules())
    full, _ = zoo.build("mobilenetv2", res=32, width=0.25)
    assert sum(c.groups > 1 for c in convs(full)) == 17
    assert full.classifier.in_features == 1280  # last channels never shrink with width


def test_bert_inputs_and_plain_attention(small):
    model, (ids,) = small["bert"]
    assert ids.dtype == torch.int64 and ids.shape == (1, 16)
    assert 0 <= int(ids.min()) and int(ids.max()) < 1000
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in model.modules())
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules()) == 1 + 2


def conv(c, x):  # a Conv2d module's computation, written out
    return F.conv2d(x, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups)


def test_blocks_against_functional_reference():
    x = torch.randn(1, 8, 16, 16)
    r18, _ = zoo.build("resnet18", res=64, width=0.125)
    b = r18.layers[1][0]  # BasicBlock with a strided projection shortcut
    c1, c2 = b.convs
    ref = F.relu(conv(c2, F.relu(conv(c1, x))) + conv(b.downsample, x))
    torch.testing.assert_close(b(x), ref)
    r50, _ = zoo.build("resnet50", res=64, width=0.125)
    b = r50.layers[1][1]  # Bottleneck with the identity shortcut
    c1, c2, c3 = b.convs
    x = torch.randn(1, 64, 8, 8)
    torch.testing.assert_close(b(x), F.relu(conv(c3, F.relu(conv(c2, F.relu(conv(c1, x))))) + x))


def test_downsampling():
    seen = {}
    # res 64: /32 through all stages, /8 through the stem + 1 stage or 3 rows
    for name, opts, size in [("resnet18", {"res": 64}, 2),
                             ("resnet50", {"res": 64, "stages": 2}, 8),
                             ("mobilenetv2", {"res": 64}, 2),
                             ("mobilenetv2", {"res": 64, "blocks": 3}, 8)]:
        model, inputs = zoo.build(name, width=0.125, **opts)
        last = model.layers if name != "mobilenetv2" else model.features
        hook = last.register_forward_hook(lambda m, i, out: seen.update(out=out))
        with torch.no_grad():
            model(*inputs)
        hook.remove()
        assert seen["out"].shape[-2:] == (size, size), (name, opts)


def test_inverted_residual_against_functional_reference():
    model, _ = zoo.build("mobilenetv2", res=32, width=0.25, blocks=3)
    blk = model.features[4]  # second repeat of row 2: expand 6, stride 1, residual
    expand, dw, project = (m for m in blk.conv if isinstance(m, torch.nn.Conv2d))
    assert dw.groups == dw.in_channels == 6 * expand.in_channels and dw.stride == (1, 1)
    x = torch.randn(1, expand.in_channels, 8, 8) * 3
    hidden = conv(dw, conv(expand, x).clamp(0, 6)).clamp(0, 6)
    torch.testing.assert_close(blk(x), x + conv(project, hidden))


def test_bert_layer_against_sdpa():
    model, _ = zoo.build("bert", seq=16, hidden=32, layers=1, heads=2)
    layer = model.layers[0]
    x = torch.randn(2, 16, 32)

    def heads(lin):
        return F.linear(x, lin.weight, lin.bias).view(2, 16, 2, 16).transpose(1, 2)

    ctx = F.scaled_dot_product_attention(heads(layer.query), heads(layer.key), heads(layer.value))
    ctx = ctx.transpose(1, 2).reshape(2, 16, 32)

    def norm(n, t):
        return F.layer_norm(t, (32,), n.weight, n.bias, 1e-12)

    h = norm(layer.attn_norm, x + F.linear(ctx, layer.attn_out.weight, layer.attn_out.bias))
    ffn = F.linear(F.gelu(F.linear(h, layer.intermediate.weight, layer.intermediate.bias)),
                   layer.output.weight, layer.output.bias)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), norm(layer.out_norm, h + ffn))


@pytest.mark.parametrize("name", list(SMALL))
def test_deterministic(name):
    opts = SMALL[name][0]
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    (m1, in1), (m2, in2) = zoo.build(name, **opts), zoo.build(name, **opts)
    assert torch.equal(torch.rand(3), expected_draw)  # the caller's RNG is left alone
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert list(s1) == list(s2) and all(torch.equal(s1[k], s2[k]) for k in s1)
    assert all(torch.equal(a, b) for a, b in zip(in1, in2))
    m3, in3 = zoo.build(name, **opts, seed=1)
    assert not all(torch.equal(a, b) for a, b in zip(m1.parameters(), m3.parameters()))
    assert not torch.equal(in1[0], in3[0])


@pytest.mark.parametrize("name", list(SMALL))
def test_torch_export(small, name):
    model, inputs = small[name]
    exported = torch.export.export(model, inputs)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(*inputs), model(*inputs))


def test_models_and_defaults():
    assert list(zoo.MODELS) == ["resnet18", "resnet50", "mobilenetv2", "bert", "toy"]
    assert zoo.MODELS["resnet50"].defaults == {
        "res": 224, "width": 1.0, "classes": 1000, "batch": 1, "seed": 0, "stages": 4}
    assert zoo.MODELS["mobilenetv2"].defaults["blocks"] == 7
    assert zoo.MODELS["bert"].defaults == {"seq": 128, "hidden": 256, "layers": 2, "heads": 4,
                                           "vocab": 1000, "classes": 2, "batch": 1, "seed": 0}
    assert zoo.option_names("toy") == ["res", "batch", "seed"]
    assert all(info.name == name and info.description for name, info in zoo.MODELS.items())
    model, (x,) = zoo.build("toy", res=8, batch=3)
    assert x.shape == (3, 8, 8, 8) and model.fc.in_features == 16 * 8 * 8
    zoo.build("toy", res=np.int64(8), seed=2)  # numpy integers are integers
    zoo.build("resnet18", res=32, width=1, stages=1)  # an int is a fine float


@pytest.mark.parametrize("name,options,field", [
    ("resnet18", {"colour": 1}, "colour"),
    ("resnet18", {"res": 16}, "res"),
    ("resnet18", {"res": 32.0}, "res"),
    ("resnet18", {"res": "224"}, "res"),
    ("resnet18", {"batch": True}, "batch"),
    ("resnet18", {"width": 0}, "width"),
    ("resnet18", {"width": float("nan")}, "width"),
    ("resnet50", {"stages": 0}, "stages"),
    ("resnet50", {"stages": 5}, "stages"),
    ("mobilenetv2", {"res": 31}, "res"),
    ("mobilenetv2", {"blocks": 8}, "blocks"),
    ("mobilenetv2", {"width": -0.5}, "width"),
    ("bert", {"hidden": 30, "heads": 4}, "heads"),
    ("bert", {"layers": 0}, "layers"),
    ("toy", {"width": 1.0}, "width"),
    ("toy", {"seed": -1}, "seed"),
])
def test_bad_options(name, options, field):
    with pytest.raises(ConfigurationError) as info:
        zoo.build(name, **options)
    assert info.value.field == field


def test_unknown_model():
    for call in (lambda: zoo.build("vgg16"), lambda: zoo.option_names("vgg16")):
        with pytest.raises(ConfigurationError) as info:
            call()
        assert info.value.field == "model"
        assert "known:" in str(info.value) and "resnet18" in str(info.value)


def test_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(BackendUnavailableError, match=r"pip install 'vtatune\[models\]'"):
        zoo.build("toy")
    code = ("import sys; sys.modules['torch'] = None\n"
            "import vtatune.backends.tvm.zoo as z; print(z.option_names('toy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "['res', 'batch', 'seed']"
