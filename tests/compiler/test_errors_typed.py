"""The compiler's defensive checks and the TVM backend's failures raise typed errors of
vtatune.errors that name the field at fault (they were bare ValueErrors, or classes defined
in the backend)."""
import types

import pytest

from vtatune import errors
from vtatune.compiler import ir
from vtatune.compiler.common import epilogue_stages
from vtatune.compiler.program import lowering_for
from vtatune.compiler.runtime import COMPUTE_STAGE, LOAD_STAGE, STORE_STAGE, Runtime
from vtatune.hardware.config import HwConfig


def test_lowering_for_an_unknown_template_names_it():
    # Workload refuses unknown templates itself; this is the compiler's own guard for a
    # template that has no lowering (only .template is read before the dispatch fails).
    wl = types.SimpleNamespace(template="conv3d", name="x")
    with pytest.raises(errors.ConfigurationError, match=r"^template: .*'conv3d'") as ei:
        lowering_for(wl, {}, HwConfig.load())
    assert ei.value.field == "template"
    assert isinstance(ei.value, ValueError)  # callers catching ValueError still catch it


def test_epilogue_stages_of_an_unknown_epilogue_names_it():
    with pytest.raises(errors.ConfigurationError, match=r"^epilogue: .*'tanh'") as ei:
        epilogue_stages("tanh")
    assert ei.value.field == "epilogue" and isinstance(ei.value, ValueError)
    # the known ones are unchanged
    assert [s.name for s in epilogue_stages("relu")] == ["right_shift", "relu"]


@pytest.mark.parametrize("sync", ["tvm-014", "", "TVM-0.14"])
def test_finalize_with_an_unknown_token_scheme_names_it(sync):
    with pytest.raises(errors.ConfigurationError, match=r"^sync: unknown token scheme") as ei:
        ir.finalize(ir.Seq([]), sync)
    assert ei.value.field == "sync" and repr(sync) in str(ei.value)
    assert isinstance(ei.value, ValueError)
    for ok in ir.SYNC_MODES:
        ir.finalize(ir.Seq([]), ok)


@pytest.mark.parametrize("frm, to", [(LOAD_STAGE, STORE_STAGE), (STORE_STAGE, LOAD_STAGE)])
def test_a_load_store_token_is_an_internal_compiler_error(frm, to):
    rt = Runtime(HwConfig.load())
    with pytest.raises(errors.InternalCompilerError, match=r"^frm/to: no dependence token") as ei:
        rt.dep_pop(frm, to)
    assert ei.value.field == "frm/to" and f"dep_pop({frm}, {to})" in str(ei.value)
    assert isinstance(ei.value, errors.VtatuneError) and isinstance(ei.value, ValueError)
    assert rt.insns == []
    rt.dep_pop(LOAD_STAGE, COMPUTE_STAGE)  # the queues that exist still work


def test_tvm_backend_errors_live_in_vtatune_errors_and_keep_their_old_home():
    # importing the backend's env module does not import tvm, so this runs without the extra
    from vtatune.backends.tvm import env

    for name in ("BackendUnavailableError", "TuningFailedError"):
        cls = getattr(errors, name)
        assert issubclass(cls, errors.VtatuneError)
        assert getattr(env, name) is cls
    assert "class BackendUnavailableError" not in open(env.__file__).read()
