"""Workload suites, spec strings and AutoTVM task inputs."""
import copy
import json

import pytest

from vtatune.hardware.config import HwConfig
from vtatune.workloads import (CONV2D, CONV2D_TRANSPOSE, DENSE, GROUP_CONV2D, Workload,
                               WorkloadError, all_workloads, autotvm_input, format_spec,
                               get_workload, list_suites, model_of_target, parse_autotvm_input,
                               parse_spec, resolve_workload, suite)

HW = HwConfig.load()
HW4x8 = HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18")

EXAMPLE = ["ext_dev -keys=vta,cpu -device=vta -model=pynq_1x16_i8w8a32_15_15_18_17",
           "conv2d_packed.vta",
           [["TENSOR", [1, 16, 14, 14, 1, 16], "int8"], ["TENSOR", [32, 16, 1, 1, 16, 16], "int8"],
            [2, 2], [0, 0, 0, 0], [1, 1], "NCHW1n16c", "int32"], {}]


# ---------------------------------------------------------------------- suites
def test_suite_counts():
    assert list_suites() == ["resnet18", "mobilenet", "dcgan", "dense", "deepbench"]
    counts = {s: len(suite(s)) for s in list_suites()}
    assert counts == {"resnet18": 11, "mobilenet": 9, "dcgan": 3, "dense": 3, "deepbench": 49}
    r = suite("resnet18")
    assert [w.name for w in r] == [f"resnet18.C{i}" for i in range(1, 12)]
    assert [w.offloadable for w in r] == [False] + [True] * 10
    assert "CPU" in r[0].note


def test_suite_defaults():
    for w in all_workloads():
        assert w.epilogue == "shift_clip"
        if w.template == DENSE:
            assert w.batch is not None
        else:
            assert w.batch is None


def test_c1_listed_but_refused():
    c1 = get_workload("resnet18.C1")
    assert (c1.height, c1.in_channels, c1.kernel_h, c1.pad_h, c1.stride_h) == (224, 3, 7, 3, 2)
    with pytest.raises(WorkloadError) as e:
        c1.bind(HW)
    assert "ARM CPU" in str(e.value)


def test_resnet18_shapes():
    c10 = get_workload("resnet18.C10")
    assert (c10.template, c10.height, c10.width, c10.in_channels, c10.out_channels, c10.kernel_h,
            c10.pad_h, c10.stride_h) == (CONV2D, 14, 14, 256, 512, 1, 0, 2)
    assert get_workload("resnet18.C2").spec == "conv2d:B,56,56,64,64,3,1,1"


def test_mobilenet_shapes():
    got = [(w.height, w.in_channels, w.out_channels, w.groups, w.stride_h) for w in suite("mobilenet")]
    assert got == [(112, 32, 32, 2, 1), (112, 64, 64, 4, 2), (56, 128, 128, 8, 1), (56, 128, 128, 8, 2),
                   (28, 256, 256, 16, 1), (28, 256, 256, 16, 2), (14, 512, 512, 32, 1),
                   (14, 512, 512, 32, 2), (7, 1024, 1024, 64, 1)]
    for w in suite("mobilenet"):
        assert w.template == GROUP_CONV2D
        assert (w.kernel_h, w.kernel_w, w.pad_h, w.pad_w, w.width) == (3, 3, 1, 1, w.height)


def test_dcgan_and_dense_shapes():
    ct = suite("dcgan")
    assert [(w.height, w.in_channels, w.out_channels) for w in ct] == [(4, 1024, 512), (8, 512, 256),
                                                                        (16, 256, 128)]
    assert all(w.template == CONV2D_TRANSPOSE and (w.kernel_h, w.pad_h, w.stride_h) == (4, 1, 2) for w in ct)
    assert [w.out_height for w in ct] == [8, 16, 32]
    d = suite("dense")
    assert [(w.name, w.batch, w.in_channels, w.out_channels) for w in d] == [
        ("dense.0", 128, 128, 128), ("dense.1", 1, 256, 128), ("dense.2", 4, 256, 128)]


def test_deepbench_contents():
    db = suite("deepbench")
    assert [w.name for w in db] == [f"deepbench.{i}" for i in range(49)]
    assert db[0].spec == "conv2d:B,54,54,64,64,3,1,1"
    assert db[19].spec == "conv2d:B,28,28,192,32,5,2,1"
    odd = db[25]  # the 5x10 filter: R=5 (kernel_h), S=10 (kernel_w), pad 0, stride 2
    assert (odd.height, odd.width, odd.kernel_h, odd.kernel_w, odd.pad_h, odd.stride_h) == (79, 341, 5, 10, 0, 2)
    assert (odd.out_height, odd.out_width) == (38, 166)
    assert db[26].spec == "conv2d:B,28,28,192,64,1,0,1"
    assert db[40].spec == "conv2d:B,56,56,64,256,1,0,2"
    assert db[48].spec == "conv2d:B,7,7,2048,512,1,3,2"
    assert len({w.shape for w in db}) == 49
    for w in db:
        w.bind(HW)


def test_variants():
    b = get_workload("resnet18.C2.bias")
    assert b.epilogue == "bias" and b.name == "resnet18.C2.bias"
    assert b.shape == get_workload("resnet18.C2").shape
    assert get_workload("dense.0.relu").epilogue == "relu"
    assert get_workload("deepbench.3.relu").epilogue == "relu"
    assert get_workload("mobilenet.D3.bias").epilogue == "bias"
    with pytest.raises(WorkloadError):
        get_workload("resnet18.C2.gelu")
    assert all(not w.name.endswith((".bias", ".relu")) for w in all_workloads())


def test_unknown_names():
    for bad, needle in (("resnet18.C12", "C12"), ("nosuch.C2", "nosuch"), ("C2", "SUITE")):
        with pytest.raises(WorkloadError) as e:
            get_workload(bad)
        assert needle in str(e.value)
    with pytest.raises(WorkloadError):
        suite("nosuch")


# ---------------------------------------------------------------------- 4x8 configuration
def test_bind_on_4x8():
    c2 = get_workload("resnet18.C2", HW4x8)
    assert c2.batch == 4
    w = get_workload("conv2d:B,8,8,16,16,3,1,1", HW4x8)
    assert w.batch == 4 and w.in_channels // HW4x8.block_in == 2
    args = w.autotvm_args(HW4x8)
    assert args[0] == ["TENSOR", [1, 2, 8, 8, 4, 8], "int8"] and args[5] == "NCHW4n8c"
    with pytest.raises(WorkloadError) as e:
        get_workload("dense.1", HW4x8)           # batch 1 is not a multiple of BATCH 4
    assert e.value.field == "batch"


# ---------------------------------------------------------------------- spec strings
def test_parse_spec_forms():
    w = parse_spec("conv2d:1,56,56,64,64,3,1,1")
    assert (w.template, w.batch, w.height, w.kernel_h, w.pad_w, w.stride_w) == (CONV2D, 1, 56, 3, 1, 1)
    w = parse_spec("conv2d:B,79,341,32,32,5x10,0,2")
    assert w.batch is None and (w.kernel_h, w.kernel_w) == (5, 10)
    w = parse_spec("conv2d:1,20,30,16,16,3x5,1/2,2/1")
    assert (w.kernel_h, w.kernel_w, w.pad_h, w.pad_w, w.stride_h, w.stride_w) == (3, 5, 1, 2, 2, 1)
    w = parse_spec("conv2d:1,20,20,16,16,3,1/1/1/1,1")      # symmetric T/L/B/R accepted
    assert (w.pad_h, w.pad_w) == (1, 1)
    w = parse_spec("group_conv2d:1,56,56,128,128,8,3,1,2")
    assert (w.template, w.groups, w.stride_h) == (GROUP_CONV2D, 8, 2)
    w = parse_spec("conv2d_transpose:1,4,4,1024,512,4,1,2")
    assert w.template == CONV2D_TRANSPOSE and w.out_height == 8
    w = parse_spec(" dense : 4, 256, 128 ;epilogue=relu")
    assert (w.template, w.batch, w.in_channels, w.out_channels, w.epilogue) == (DENSE, 4, 256, 128, "relu")
    assert parse_spec("conv2d:1,56,56,64,64,3,1,1;epilogue=bias").epilogue == "bias"


@pytest.mark.parametrize("w", [w for w in all_workloads() if w.offloadable])
def test_format_spec_round_trip(w):
    assert parse_spec(format_spec(w)).shape == w.shape
    v = get_workload(w.name + ".relu")
    assert parse_spec(v.spec).epilogue == "relu"


@pytest.mark.parametrize("spec,field", [
    ("conv2d:1,56,56,64,64,3,1", "spec"),
    ("conv2d:1,5a,56,64,64,3,1,1", "H"),
    ("conv2d:x,56,56,64,64,3,1,1", "N"),
    ("conv2d:1,56,56,0,64,3,1,1", "CI"),
    ("conv2d:1,56,56,64,,3,1,1", "CO"),
    ("conv2d:1,56,56,64,64,3x,1,1", "K"),
    ("conv2d:1,56,56,64,64,3,1/1/2/2,1", "PAD"),
    ("conv2d:1,56,56,64,64,3,0/1,1", "PAD"),
    ("conv2d:1,56,56,64,64,3,1,0", "STRIDE"),
    ("conv2d:1,4,4,64,64,9,1,1", "K"),
    ("group_conv2d:1,56,56,64,64,0,3,1,1", "GROUPS"),
    ("group_conv2d:1,56,56,64,64,3,1,1", "spec"),
    ("conv2d_transpose:1,4,4,16,16,4,4,2", "PAD"),
    ("dense:1,256", "spec"),
    ("dense:1,-256,128", "IN"),
    ("dense:1,256,0", "OUT"),
    ("conv3d:1,2,3", "template"),
    ("conv2d:1,56,56,64,64,3,1,1;epilogue=gelu", "epilogue"),
    ("conv2d:1,56,56,64,64,3,1,1;fast=1", "option"),
    ("conv2d", "spec"),
])
def test_parse_spec_errors_name_the_field(spec, field):
    with pytest.raises(WorkloadError) as e:
        parse_spec(spec)
    assert e.value.field == field
    assert not isinstance(e.value, (IndexError, KeyError))


def test_unsupported_channels_on_bind():
    with pytest.raises(WorkloadError) as e:
        get_workload("conv2d:1,56,56,24,64,3,1,1", HW)
    assert e.value.field == "in_channels"
    with pytest.raises(WorkloadError) as e:
        get_workload("dense:1,256,40", HW)
    assert e.value.field == "out_channels"
    get_workload("dense:4,256,40", HW4x8)   # 40 = 5 x BLOCK_OUT 8 is fine on 4x8


# ---------------------------------------------------------------------- AutoTVM inputs
def test_parse_example_input():
    t = parse_autotvm_input(EXAMPLE)
    assert t.hw == HW and t.task_name == CONV2D
    assert t.workload.shape == get_workload("resnet18.C10", HW).shape
    assert t.workload.batch == 1
    # also as JSON text and inside a log-line object
    assert parse_autotvm_input(json.dumps(EXAMPLE)).workload == t.workload
    assert get_workload(json.dumps({"input": EXAMPLE, "config": {}})) == t.workload


def test_parse_two_value_padding_and_old_target():
    inp = copy.deepcopy(EXAMPLE)
    inp[0] = "ext_dev -device=vta -keys=cpu -model=pynq_1x16_i8w8a32_15_15_18_17"
    inp[2][1] = ["TENSOR", [16, 16, 3, 3, 16, 16], "int8"]
    inp[2][2] = [1, 1]
    inp[2][3] = [1, 1]
    w = parse_autotvm_input(inp).workload
    assert w.shape == get_workload("resnet18.C8", HW).shape
    assert model_of_target(inp[0]) == "pynq_1x16_i8w8a32_15_15_18_17"


@pytest.mark.parametrize("hw", [HW, HW4x8], ids=["1x16", "4x8"])
def test_autotvm_round_trip(hw):
    n = 0
    for w in all_workloads():
        try:
            bound = w.bind(hw)
        except WorkloadError:
            continue
        for variant in (w, get_workload(w.name + ".bias")):
            inp = json.loads(json.dumps(autotvm_input(variant, hw)))
            t = parse_autotvm_input(inp)
            assert t.hw == hw and t.task_name == w.template
            assert t.workload.shape == bound.shape
            assert t.workload.autotvm_args(hw) == inp[2]
            n += 1
    assert n > 100


def _mutate(index, value, arg=2):
    inp = copy.deepcopy(EXAMPLE)
    if arg == 2:
        inp[2][index] = value
    else:
        inp[arg] = value
    return inp


@pytest.mark.parametrize("inp,field", [
    (_mutate(3, [1, 1, 2, 2]), "padding"),
    (_mutate(3, [0, 1, 0, 1]), "padding"),     # TVM would ignore pad_w when pad_h == 0
    (_mutate(4, [2, 2]), "dilation"),
    (_mutate(0, ["TENSOR", [1, 16, 14, 14, 1, 16], "float32"]), "data"),
    (_mutate(1, ["TENSOR", [32, 16, 1, 1, 16, 16], "uint8"]), "kernel"),
    (_mutate(1, ["TENSOR", [32, 8, 1, 1, 16, 16], "int8"]), "kernel"),
    (_mutate(0, ["TENSOR", [1, 16, 14, 14, 1, 8], "int8"]), "data"),
    (_mutate(5, "NCHW4n8c"), "layout"),
    (_mutate(6, "int8"), "out_dtype"),
    (_mutate(0, "ext_dev -keys=vta,cpu -device=vta -model=pynq_1x32_i8w8a32_15_15_18_17", arg=0), "target"),
    (_mutate(0, "llvm -mcpu=cortex-a9", arg=0), "target"),
    (_mutate(0, "conv3d_packed.vta", arg=1), "task_name"),
    ([EXAMPLE[0], EXAMPLE[1], EXAMPLE[2][:3], {}], "args"),
    (EXAMPLE[:2], "input"),
])
def test_autotvm_input_errors(inp, field):
    with pytest.raises(WorkloadError) as e:
        parse_autotvm_input(inp)
    assert e.value.field == field
    if field == "target" and "1x32" in inp[0]:
        assert "pynq_1x32_i8w8a32_15_15_18_17" in str(e.value)


def test_autotvm_other_templates_errors():
    w = get_workload("dcgan.CT1")
    inp = autotvm_input(w, HW)
    inp[2][5] = [1, 1]
    with pytest.raises(WorkloadError) as e:
        parse_autotvm_input(inp)
    assert e.value.field == "output_padding"
    inp[2] = inp[2][:5]   # older signature without output_padding
    assert parse_autotvm_input(inp).workload.shape == w.bind(HW).shape
    g = autotvm_input(get_workload("mobilenet.D3"), HW)
    g[2][5] = 4
    with pytest.raises(WorkloadError) as e:
        parse_autotvm_input(g)
    assert e.value.field == "kernel"
    d = autotvm_input(get_workload("dense.2"), HW)
    d[2][2] = ["TENSOR", [128], "int32"]
    with pytest.raises(WorkloadError) as e:
        parse_autotvm_input(d)
    assert e.value.field == "bias"


def test_autotvm_hw_mismatch_and_explicit_hw():
    with pytest.raises(WorkloadError) as e:
        parse_autotvm_input(EXAMPLE, HW4x8)
    assert e.value.field == "target"
    assert parse_autotvm_input(EXAMPLE, "pynq_1x16_i8w8a32_15_15_18_17").hw == HW
    w, hw = resolve_workload(json.dumps(EXAMPLE))
    assert hw == HW and w.batch == 1
    w, hw = resolve_workload("resnet18.C2", HW4x8)
    assert hw == HW4x8 and w.batch == 4


def test_workload_object_passthrough():
    w = Workload(CONV2D, 8, 8, 16, 16, 3, 3, 1, 1)
    assert get_workload(w) is w
    assert get_workload(w, HW).batch == 1
