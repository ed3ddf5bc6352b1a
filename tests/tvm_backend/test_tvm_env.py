"""Targets, intrinsics and the CUDA path without a GPU."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from vtatune.errors import ConfigurationError


def test_llvm_target_is_a_dict_with_cores_and_host_cpu(target):
    from vtatune.backends.tvm.env import host_cpu, target_json, target_label
    js = target_json(target)
    assert js["kind"] == "llvm"
    assert js["mcpu"] == host_cpu()
    assert js["num-cores"] >= 1
    assert target_label(target) == f"llvm-{host_cpu()}-{js['num-cores']}c"


def test_explicit_core_count_and_json_target():
    from vtatune.backends.tvm.env import make_target, target_json
    assert target_json(make_target("llvm", num_cores=1))["num-cores"] == 1
    t = make_target('{"kind": "llvm", "mcpu": "skylake", "num-cores": 3}')
    assert target_json(t)["mcpu"] == "skylake" and target_json(t)["num-cores"] == 3


@pytest.mark.parametrize("spec", ["llvm -num-cores 2", "opencl", '{"kind": "llvm"', "{}"])
def test_bad_targets_name_the_target_field(spec):
    from vtatune.backends.tvm.env import make_target
    with pytest.raises(ConfigurationError) as exc:
        make_target(spec)
    assert exc.value.field == "target"


def test_cpu_intrinsics_only_registers_x86_without_cuda():
    """In a fresh process: the x86 intrinsics MetaSchedule's CPU rules use get registered,
    the 60-75 s CUDA part is never imported, and MetaSchedule's own import is then a no-op."""
    import subprocess
    code = (
        "import sys\n"
        "from vtatune.backends.tvm.env import load_cpu_intrinsics_only\n"
        "load_cpu_intrinsics_only()\n"
        "import tvm, tvm.s_tir.tensor_intrin\n"
        "assert tvm.s_tir.TensorIntrin.get('dot_16x4_vnni', allow_missing=True) is not None\n"
        "assert 'tvm.s_tir.tensor_intrin.cuda' not in sys.modules\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_cuda_code_generation_without_a_gpu():
    """Building for CUDA works on a machine without a GPU (CUDA source is produced);
    running it fails with a clear error."""
    import tvm
    from tvm import te

    from vtatune.backends.tvm.env import BackendUnavailableError, gpu_available, make_target
    t = make_target("cuda:sm_80")
    # the launch limits MetaSchedule's AutoBind needs (it stops without them)
    assert int(t.attrs["max_threads_per_block"]) == 1024
    assert int(t.attrs["max_shared_memory_per_block"]) == 48 * 1024
    n = 256
    a = te.placeholder((n,), name="A")
    b = te.compute((n,), lambda i: a[i] * 2.0, name="B")
    sch = tvm.s_tir.Schedule(tvm.IRModule({"main": te.create_prim_func([a, b])}))
    bo, bi = sch.split(sch.get_loops(sch.get_sblock("B"))[0], [None, 64])
    sch.bind(bo, "blockIdx.x")
    sch.bind(bi, "threadIdx.x")
    ex = tvm.compile(sch.mod, target=t)
    src = ex.mod.imports[0].inspect_source()
    assert "__global__" in src and "threadIdx.x" in src
    if not gpu_available(t):
        from vtatune.backends.tvm import runtime
        from vtatune.backends.tvm.importer import ImportedModel
        with pytest.raises(BackendUnavailableError, match="no cuda device"):
            runtime.run(ex, ImportedModel("x", None, [np.zeros(n, "float32")]), t)


def test_target_json_round_trips_through_tvm(target):
    import tvm

    from vtatune.backends.tvm.env import target_json
    again = tvm.target.Target(target_json(target))
    assert json.loads(str(again)) == target_json(target)


def test_tuning_or_transfer_for_cuda_without_a_gpu_is_refused_clearly():
    from vtatune.backends.tvm.env import BackendUnavailableError, gpu_available, make_target
    from vtatune.backends.tvm.importer import ImportedModel
    from vtatune.backends.tvm.transfer import transfer
    from vtatune.backends.tvm.tune import tune_model
    t = make_target("cuda")
    if gpu_available(t):
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendUnavailableError, match="no cuda device"):
        tune_model(ImportedModel("x", None), t, None, trials=1, cost_model="random")
    with pytest.raises(BackendUnavailableError, match="no cuda device"):
        transfer(ImportedModel("x", None), [], t, None)
