"""The compile-only sweep verdicts equal full compilation, every invalid configuration
fails with its typed error (never another exception), and the sweep's counts are stable."""
import json
from collections import Counter

import pytest

from vtatune.cli.main import main
from vtatune.compiler.program import compile_program
from vtatune.compiler.sweep import sweep
from vtatune.errors import ErrorCategory, InvalidConfigError
from vtatune.hardware.config import HwConfig
from vtatune.space import space_for
from vtatune.workloads.suites import get_workload

from .conftest import check_verdicts_equal_compilation

WORKLOADS = [f"resnet18.C{i}" for i in range(2, 12)] + [
    "mobilenet.D2", "mobilenet.D7", "dcgan.CT2", "dense.0", "deepbench.12", "deepbench.25",
    "deepbench.43", "resnet18.C3.bias"]


@pytest.mark.parametrize("name", WORKLOADS)
def test_verdict_equals_full_compilation(name):
    check_verdicts_equal_compilation(name, 40, 2024)


def test_every_reason_raises_its_typed_error():
    """One configuration per (category, reason) seen in the ResNet-18 and MobileNet sweeps
    fails in full compilation with that category and reason."""
    hw = HwConfig.load()
    seen = {}
    for name in [f"resnet18.C{i}" for i in (2, 6, 8, 10)] + ["mobilenet.D3", "dense.0"]:
        wl = get_workload(name, hw)
        for rec in sweep(wl, hw):
            if not rec["valid"]:
                seen.setdefault((rec["category"], rec["reason"]), (wl, rec["index"]))
    assert {r for _, r in seen} >= {"inp_sram_overflow", "wgt_sram_overflow", "acc_sram_overflow",
                                    "dma_not_2d", "pad_not_supported", "uop_hazard", "closure_too_large"}
    for (category, reason), (wl, index) in seen.items():
        with pytest.raises(InvalidConfigError) as err:
            compile_program(wl, space_for(wl, hw).get(index).knobs, hw)
        assert (int(err.value.category), err.value.reason) == (category, reason)
        assert err.value.category in (ErrorCategory.COMPILE_HOST, ErrorCategory.RUNTIME_DEVICE,
                                      ErrorCategory.WRONG_ANSWER)


def test_resnet18_sweep_counts(tmp_path, capsys):
    """The whole ResNet-18 sweep through the CLI: 13,760 verdicts, one JSON object each."""
    out = tmp_path / "r18.jsonl"
    assert main(["sweep", "resnet18", "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 13760 == sum(w["configs"] for w in summary["workloads"])
    assert set(rows[0]) == {"workload", "hw", "profile", "sync", "index", "knobs", "valid", "category",
                            "reason", "message"}
    by_wl = Counter(r["workload"] for r in rows)
    assert by_wl["resnet18.C2"] == 2304 and by_wl["resnet18.C11"] == 576
    # the two reference programs' configurations are valid, as the original stack built them
    valid = {(r["workload"], r["index"]) for r in rows if r["valid"]}
    assert ("resnet18.C2", 1584) in valid and ("resnet18.C10", 203) in valid
    assert all(r["category"] == 0 and r["reason"] == "" for r in rows if r["valid"])
    assert all(r["category"] in (2, 4, 5) and r["reason"] for r in rows if not r["valid"])
