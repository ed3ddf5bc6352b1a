"""A small zoo of PyTorch models built in code, to import into TVM and tune.

Every model has the layer structure of its torchvision / HuggingFace namesake, scaled by
options for quick experiments, and seeded random weights: nothing is downloaded and
torchvision is not needed.  BatchNorm is folded into the convolutions, which is what a
compiler sees of a deployed model.  torch is imported lazily, so this module imports without
it; ``build`` then raises ``BackendUnavailableError``.
"""
from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigurationError
from .env import BackendUnavailableError

_INSTALL_HINT = "pip install 'vtatune[models]'"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    defaults: dict[str, Any]  # option -> default; the default's type is the option's type


def _at_least(lo):
    return (lambda v: v >= lo), f">= {lo}"


def _between(lo, hi):
    return (lambda v: lo <= v <= hi), f"in {lo}..{hi}"


_POSITIVE = ((lambda v: v > 0), "> 0")
_COMMON = {"batch": (1, _at_least(1)), "seed": (0, _at_least(0))}
_IMAGE = {"res": (224, _at_least(32)), "width": (1.0, _POSITIVE),
          "classes": (1000, _at_least(1)), **_COMMON}
# torchvision's MobileNetV2 inverted-residual settings: expansion t, channels c, repeats n,
# stride s of the first repeat
_MBV2_ROWS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1))

# name -> (description, {option: (default, (check, text of the check))})
_SPECS: dict[str, tuple[str, dict[str, tuple[Any, tuple]]]] = {
    "resnet18": ("torchvision ResNet-18: BasicBlocks, stages [2, 2, 2, 2]",
                 {**_IMAGE, "stages": (4, _between(1, 4))}),
    "resnet50": ("torchvision ResNet-50: Bottlenecks, stages [3, 4, 6, 3]",
                 {**_IMAGE, "stages": (4, _between(1, 4))}),
    "mobilenetv2": ("torchvision MobileNetV2: inverted residuals, ReLU6, depthwise convs",
                    {**_IMAGE, "blocks": (len(_MBV2_ROWS), _between(1, len(_MBV2_ROWS)))}),
    "bert": ("BERT-style encoder: embeddings, self-attention + GELU FFN layers, pooler",
             {"seq": (128, _at_least(1)), "hidden": (256, _at_least(1)),
              "layers": (2, _at_least(1)), "heads": (4, _at_least(1)),
              "vocab": (1000, _at_least(1)), "classes": (2, _at_least(1)), **_COMMON}),
    "toy": ("two kernels: conv3x3 8->16 + bias + ReLU, then a linear layer to 10 outputs",
            {"res": (16, _at_least(1)), **_COMMON}),
}
MODELS: dict[str, ModelInfo] = {
    name: ModelInfo(name, desc, {k: default for k, (default, _) in spec.items()})
    for name, (desc, spec) in _SPECS.items()}


def _info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise ConfigurationError("model", f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def option_names(name: str) -> list[str]:
    return list(_info(name).defaults)


def _resolve(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The defaults of ``name`` updated with checked ``options``."""
    resolved = dict(_info(name).defaults)
    rules = _SPECS[name][1]
    for key, value in options.items():
        if key not in rules:
            raise ConfigurationError(key, f"not an option of {name}; options: {', '.join(rules)}")
        default, (check, text) = rules[key]
        # bool is an Integral, but res=True is a mistake, not 1
        kind = numbers.Real if isinstance(default, float) else numbers.Integral
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigurationError(key, f"expected {type(default).__name__}, got {value!r}")
        value = type(default)(value)
        if not (math.isfinite(value) and check(value)):
            raise ConfigurationError(key, f"must be {text}, got {value!r}")
        resolved[key] = value
    if name == "bert" and resolved["hidden"] % resolved["heads"]:
        raise ConfigurationError("heads", f"hidden={resolved['hidden']} is not divisible by "
                                          f"heads={resolved['heads']}")
    return resolved


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError(f"the model zoo needs PyTorch: {_INSTALL_HINT} "
                                      f"({exc})") from None
    return torch


def _channels(c: float, width: float = 1.0) -> int:
    """``c * width`` rounded half-up to a multiple of 8 (at least 8), as torchvision does."""
    return max(8, int(c * width / 8 + 0.5) * 8)


def fold_bn(conv, bn):
    """A new Conv2d (with bias) computing ``bn(conv(x))`` of an eval-mode BatchNorm2d."""
    torch = _torch()
    with torch.no_grad():
        gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        scale = gamma / torch.sqrt(bn.running_var + bn.eps)
        # skip_init: no default initialisation (a third of build time) for weights we overwrite
        fused = torch.nn.utils.skip_init(
            torch.nn.Conv2d, conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
            conv.padding, conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_(beta + (bias - bn.running_mean) * scale)
    return fused


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
    """conv (no bias) + BatchNorm with random, non-trivial statistics, folded."""
    torch = _torch()
    conv = torch.nn.utils.skip_init(torch.nn.Conv2d, cin, cout, k, stride, k // 2,
                                    groups=groups, bias=False)
    # fan_in kaiming keeps the activation scale through ReLU (fan_out, torchvision's choice,
    # makes depthwise weights tiny); 0.5 keeps residual sums of deep nets moderate
    torch.nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    bn = torch.nn.BatchNorm2d(cout)
    with torch.no_grad():
        conv.weight.mul_(0.5)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_(0.0, 0.1)
        bn.running_mean.normal_(0.0, 0.1)
        bn.running_var.uniform_(0.5, 2.0)
    return fold_bn(conv, bn.eval())


def _linear(cin: int, cout: int, std: float):
    torch = _torch()
    layer = torch.nn.Linear(cin, cout)
    with torch.no_grad():  # non-zero biases, so that a lost bias shows in a comparison
        layer.weight.normal_(0.0, std)
        layer.bias.normal_(0.0, std)
    return layer


@functools.cache
def _modules():
    """The nn.Module classes, defined on first use because their base class needs torch."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        """torchvision's BasicBlock (3x3, 3x3) or Bottleneck (1x1, 3x3 with the stride,
        1x1 to 4x the channels), BN folded."""

        def __init__(self, cin: int, planes: int, stride: int, bottleneck: bool):
            super().__init__()
            cout = planes * (4 if bottleneck else 1)
            self.convs = nn.ModuleList(
                [_conv_bn(cin, planes, 1), _conv_bn(planes, planes, 3, stride),
                 _conv_bn(planes, cout, 1)] if bottleneck else
                [_conv_bn(cin, planes, 3, stride), _conv_bn(planes, cout, 3)])
            self.downsample = (_conv_bn(cin, cout, 1, stride)
                               if stride != 1 or cin != cout else None)

        def forward(self, x):
            out = x
            for i, conv in enumerate(self.convs):
                out = conv(out)
                if i + 1 < len(self.convs):  # the last ReLU comes after the residual add
                    out = F.relu(out)
            return F.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet(nn.Module):
        def __init__(self, depths, bottleneck: bool, width: float, stages: int, classes: int):
            super().__init__()
            planes = [_channels(c, width) for c in (64, 128, 256, 512)]
            self.stem = _conv_bn(3, planes[0], 7, 2)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            layers, cin = [], planes[0]
            for i in range(stages):
                blocks = []
                for j in range(depths[i]):
                    blocks.append(Block(cin, planes[i], 2 if i > 0 and j == 0 else 1,
                                        bottleneck))
                    cin = planes[i] * (4 if bottleneck else 1)
                layers.append(nn.Sequential(*blocks))
            self.layers = nn.Sequential(*layers)
            self.fc = _linear(cin, classes, 0.01)

        def forward(self, x):
            x = self.layers(self.maxpool(F.relu(self.stem(x))))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int):
            super().__init__()
            hidden = cin * expand
            layers = [_conv_bn(cin, hidden, 1), nn.ReLU6()] if expand != 1 else []
            layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(),
                       _conv_bn(hidden, cout, 1)]  # linear bottleneck: no activation
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self, width: float, blocks: int, classes: int):
            super().__init__()
            cin, last = _channels(32, width), _channels(1280 * max(1.0, width))
            layers = [_conv_bn(3, cin, 3, 2), nn.ReLU6()]
            for t, c, n, s in _MBV2_ROWS[:blocks]:
                cout = _channels(c, width)
                for i in range(n):
                    layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                    cin = cout
            self.features = nn.Sequential(*layers, _conv_bn(cin, last, 1), nn.ReLU6())
            # torchvision's Dropout(0.2) before it is the identity in eval(): left out
            self.classifier = _linear(last, classes, 0.01)

        def forward(self, x):
            return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))

    def layer_norm(hidden: int):
        norm = nn.LayerNorm(hidden, eps=1e-12)  # BERT's eps
        with torch.no_grad():  # not 1 and 0, so that a lost affine part shows
            norm.weight.normal_(1.0, 0.02)
            norm.bias.normal_(0.0, 0.02)
        return norm

    class EncoderLayer(nn.Module):
        """HuggingFace BertLayer: self-attention, residual + LayerNorm, GELU FFN (4x),
        residual + LayerNorm.  Attention in plain ops, as frontends see it unfused."""

        def __init__(self, hidden: int, heads: int):
            super().__init__()
            self.heads = heads
            self.query, self.key, self.value, self.attn_out = (
                _linear(hidden, hidden, 0.02) for _ in range(4))
            self.attn_norm = layer_norm(hidden)
            self.intermediate = _linear(hidden, 4 * hidden, 0.02)
            self.output = _linear(4 * hidden, hidden, 0.02)
            self.out_norm = layer_norm(hidden)

        def forward(self, x):
            b, s, h = x.shape
            d = h // self.heads

            def split(t):  # (b, s, h) -> (b, heads, s, d)
                return t.reshape(b, s, self.heads, d).permute(0, 2, 1, 3)

            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            probs = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d), dim=-1)
            ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(b, s, h)
            x = self.attn_norm(x + self.attn_out(ctx))
            return self.out_norm(x + self.output(F.gelu(self.intermediate(x))))

    class Bert(nn.Module):
        def __init__(self, vocab, seq, hidden, layers, heads, classes):
            super().__init__()
            self.word_embeddings = nn.Embedding(vocab, hidden)
            self.position_embeddings = nn.Embedding(seq, hidden)
            with torch.no_grad():
                self.word_embeddings.weight.normal_(0.0, 0.02)
                self.position_embeddings.weight.normal_(0.0, 0.02)
            self.register_buffer("position_ids", torch.arange(seq), persistent=False)
            self.emb_norm = layer_norm(hidden)
            self.layers = nn.ModuleList(EncoderLayer(hidden, heads) for _ in range(layers))
            self.pooler = _linear(hidden, hidden, 0.02)
            self.classifier = _linear(hidden, classes, 0.02)

        def forward(self, ids):
            pos = self.position_embeddings(self.position_ids[: ids.shape[1]])
            x = self.emb_norm(self.word_embeddings(ids) + pos)
            for layer in self.layers:
                x = layer(x)
            return self.classifier(torch.tanh(self.pooler(x[:, 0])))

    class Toy(nn.Module):
        def __init__(self, res: int):
            super().__init__()
            self.conv = nn.Conv2d(8, 16, 3, padding=1)
            torch.nn.init.kaiming_normal_(self.conv.weight, nonlinearity="relu")
            with torch.no_grad():
                self.conv.weight.mul_(0.5)
                self.conv.bias.normal_(0.0, 0.1)
            self.fc = _linear(16 * res * res, 10, 0.01)

        def forward(self, x):
            return self.fc(torch.flatten(F.relu(self.conv(x)), 1))

    return ResNet, MobileNetV2, Bert, Toy


def build(name: str, **options) -> tuple[Any, tuple[Any, ...]]:
    """``(model in eval() mode, example inputs)``; the same options give the same weights
    and inputs.  Raises ``ConfigurationError`` for a bad name or option."""
    o = _resolve(name, options)
    torch = _torch()
    ResNet, MobileNetV2, Bert, Toy = _modules()
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
        torch.manual_seed(o["seed"])
        if name in ("resnet18", "resnet50"):
            deep = name == "resnet50"
            model = ResNet((3, 4, 6, 3) if deep else (2, 2, 2, 2), deep, o["width"],
                           o["stages"], o["classes"])
        elif name == "mobilenetv2":
            model = MobileNetV2(o["width"], o["blocks"], o["classes"])
        elif name == "bert":
            model = Bert(o["vocab"], o["seq"], o["hidden"], o["layers"], o["heads"],
                         o["classes"])
        else:
            model = Toy(o["res"])
    # inputs from their own generator: they do not depend on the model's size
    gen = torch.Generator().manual_seed(o["seed"])
    if name == "bert":
        inputs = (torch.randint(0, o["vocab"], (o["batch"], o["seq"]), generator=gen),)
    else:
        chans = 8 if name == "toy" else 3
        inputs = (torch.randn(o["batch"], chans, o["res"], o["res"], generator=gen),)
    return model.eval(), inputs
