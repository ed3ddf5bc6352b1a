"""The ``requant`` epilogue of a quantized network's layer: bias before the shift, any shift
and clip range, computed on fsim exactly as the int32 arithmetic written out here."""
import dataclasses

import numpy as np
import pytest

from vtatune.compiler.program import compile_program
from vtatune.compiler.reference import conv2d_nchw
from vtatune.errors import ConfigurationError
from vtatune.hardware.config import HwConfig
from vtatune.hardware.isa import AluInsn, AluOp
from vtatune.measure.runners import run_program
from vtatune.workloads.suites import get_workload
from vtatune.workloads.workload import Requant

from .conftest import valid_sample


def by_hand(acc: np.ndarray, bias: np.ndarray, q: Requant) -> np.ndarray:
    """int32 wrap of acc + bias, arithmetic shift, clip, int8 — written out per element."""
    shape = (1, -1, 1, 1) if acc.ndim == 4 else (1, -1)
    s = acc.astype(np.int64) + bias.astype(np.int64).reshape(shape)
    s = (s + (1 << 31)) % (1 << 32) - (1 << 31)  # two's complement wrap
    s = np.floor_divide(s, 1 << q.shift)          # arithmetic shift = floor division
    return np.minimum(np.maximum(s, q.lo), q.hi).astype(np.int8)


CASES = [("resnet18.C5", Requant(7, -127, 127), False), ("resnet18.C4", Requant(0, 0, 127), False),
         ("resnet18.C10", Requant(12, 0, 6), False), ("mobilenet.D3", Requant(9, -127, 127), False),
         ("dense.1", Requant(5, -128, 127), False),
         # the ALU shifter takes -16..15: 15 is one SHR, 16 and 31 are chains
         ("dense.1", Requant(15), True), ("dense.1", Requant(16), True),
         ("resnet18.C10", Requant(31, -128, 127), True), ("resnet18.C11", Requant(20, 0, 127), True)]


@pytest.mark.parametrize("name,q,wrap", CASES,
                         ids=[f"{c[0]}-shift{c[1].shift}{'-wrap' if c[2] else ''}" for c in CASES])
def test_requant_layer_on_fsim_matches_the_int32_arithmetic(name, q, wrap):
    hw = HwConfig.load()
    (base, cfg, _), = valid_sample(name, 1, seed=3)
    wl = dataclasses.replace(base, epilogue="requant", requant=q)
    prog = compile_program(wl, cfg.knobs, hw)
    inputs = prog.random_inputs(11)
    if wrap:  # biases near both int32 limits: acc + bias wraps on many outputs
        rng = np.random.default_rng(5)
        big = rng.integers(2**31 - 2**20, 2**31, inputs["bias"].shape, dtype=np.int64)
        inputs["bias"] = np.where(rng.random(big.shape) < 0.5, big, -big).astype(np.int32)
    x, k, bias = inputs["data"], inputs["kernel"], inputs["bias"]
    if wl.template.startswith("dense"):
        acc = x.astype(np.int64) @ k.astype(np.int64).T
    else:
        acc = conv2d_nchw(x, k, (wl.stride_h, wl.stride_w), (wl.pad_h, wl.pad_w), wl.groups)
    out = run_program(prog, inputs).output
    assert np.array_equal(out, by_hand(acc, bias, q))
    # the ALU program is ADD (bias tensor), SHR imm shift, MIN imm hi, MAX imm lo, in order
    # one tile's ALU program: ADD (bias tensor), SHR imm shift, MIN imm hi, MAX imm lo
    ops = [(i.alu_opcode, i.use_imm, i.imm if i.use_imm else None)
           for i in prog.insns if isinstance(i, AluInsn)]
    runs = [op for j, op in enumerate(ops) if j == 0 or op != ops[j - 1]]  # virtual threads
    shifts = [15] * (q.shift // 15) + ([q.shift % 15] if q.shift % 15 or q.shift == 0 else [])
    shrs = [(AluOp.SHR, 1, k) for k in shifts]
    shrs = [op for j, op in enumerate(shrs) if j == 0 or op != shrs[j - 1]]
    assert runs[:3 + len(shrs)] == [(AluOp.ADD, 0, None), *shrs, (AluOp.MIN, 1, q.hi),
                                    (AluOp.MAX, 1, q.lo)]
    if wrap:  # the case exercised wrapping (else the test would not show it)
        shape = (1, -1, 1, 1) if acc.ndim == 4 else (1, -1)
        s = acc.astype(np.int64) + bias.astype(np.int64).reshape(shape)
        assert ((s > 2**31 - 1) | (s < -2**31)).any()


def test_requant_must_match_its_epilogue():
    base = get_workload("resnet18.C5", HwConfig.load())
    with pytest.raises(ConfigurationError) as ei:
        dataclasses.replace(base, epilogue="requant")
    assert ei.value.field == "requant"
    with pytest.raises(ConfigurationError) as ei:
        dataclasses.replace(base, requant=Requant(3))
    assert ei.value.field == "requant"
    for bad, field in ((dict(shift=32), "requant.shift"), (dict(shift=2, lo=-129), "requant.lo"),
                       (dict(shift=2, lo=5, hi=4), "requant.lo"), (dict(shift=True), "requant.shift")):
        with pytest.raises(ConfigurationError) as ei:
            Requant(**bad)
        assert ei.value.field == field
