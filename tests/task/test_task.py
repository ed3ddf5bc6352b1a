"""The task layer: one object built once, its key spelled by hand, pickled with its full
hardware configuration, the token scheme refused when unknown, imported records validated
against its space."""
import json
import pickle

import pytest

from vtatune.db.records import TuningRecord
from vtatune.errors import ConfigurationError
from vtatune.space import SpaceError
from vtatune.hardware.config import HwConfig
from vtatune.task import VtaTask, vta_record_validator

HW = "pynq_1x16_i8w8a32_15_15_18_17"
TARGET = f"ext_dev -keys=vta,cpu -device=vta -model={HW}"
# resnet18.C2 (56x56, 64->64, 3x3, pad 1, stride 1) packed as AutoTVM logs it, by hand
C2_ARGS = [["TENSOR", [1, 4, 56, 56, 1, 16], "int8"], ["TENSOR", [4, 4, 3, 3, 16, 16], "int8"],
           [1, 1], [1, 1, 1, 1], [1, 1], "NCHW1n16c", "int32"]


def test_key_and_input_are_autotvms():
    task = VtaTask.create("resnet18.C2", HW)
    assert task.autotvm_input == [TARGET, "conv2d_packed.vta", C2_ARGS, {}]
    assert task.key == json.dumps(["conv2d_packed.vta", C2_ARGS], separators=(",", ":"))
    assert task.flops == 2 * 64 * 56 * 56 * 64 * 9
    # the same task from a spec string and from its AutoTVM input has the same key
    assert VtaTask.create("conv2d:1,56,56,64,64,3,1,1", HW).key == task.key
    assert VtaTask.create(json.dumps(task.autotvm_input)).key == task.key


def test_unknown_token_scheme_is_refused():
    with pytest.raises(ConfigurationError) as e:
        VtaTask.create("resnet18.C2", HW, sync="tvm-014")
    assert e.value.field == "sync" and "tvm-014" in str(e.value)


def test_pickle_keeps_an_in_memory_hardware_configuration():
    shipped = HwConfig.load(HW)
    data = shipped.to_dict()
    data["timing"] = {**data.get("timing", {}), "mem_latency": 999}
    custom = HwConfig.from_dict(data)
    task = VtaTask.create("resnet18.C10", custom, sync="single")
    back = pickle.loads(pickle.dumps(task))
    assert back.hw.timing.mem_latency == 999 != shipped.timing.mem_latency
    assert back == task and back.sync == "single" and back.key == task.key


def test_record_carries_the_task_identity():
    task = VtaTask.create("resnet18.C10", HW)
    rec = task.record(task.config(203), costs=[1e-3], runner="tsim/x", timestamp=5.0)
    assert (rec.backend, rec.workload_key, rec.target, rec.hw) == ("vta", task.key, TARGET, HW)
    assert rec.config_index == 203 and rec.config["index"] == 203
    assert rec.workload_name == "resnet18.C10" and rec.timestamp == 5.0


def _imported(task, config):
    return TuningRecord(backend="vta", workload_key=task.key, target=task.tvm_target, hw=HW,
                        config=config, costs=[1e-3], source="imported", runner="import")


def test_validator_accepts_points_and_applies_the_entity():
    task = VtaTask.create("resnet18.C10", HW)
    validate = vta_record_validator()
    good = task.config(203).to_json_dict()
    assert validate(_imported(task, good)).config_index == 203
    # a wrong index with a valid entity: the entity is applied, the mismatch noted
    wrong = {**good, "index": 5}
    fixed = validate(_imported(task, wrong))
    assert fixed.config_index == 203 and "log index 5" in fixed.message


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c["entity"][0].__setitem__(2, [-1, 999]), "tile_b"),   # a tile that is no factor
    (lambda c: c.__setitem__("index", True), "config.index"),
    (lambda c: c["entity"].pop(), "h_nthread"),                       # a knob missing
])
def test_validator_refuses_what_is_not_a_point(mutate, field):
    task = VtaTask.create("resnet18.C10", HW)
    config = task.config(203).to_json_dict()
    mutate(config)
    with pytest.raises((ConfigurationError, SpaceError)) as e:
        vta_record_validator()(_imported(task, config))
    assert e.value.field == field


def test_cli_import_rejects_lines_outside_the_space_and_best_never_shows_them(tmp_path, capsys):
    from vtatune.cli.main import main
    task = VtaTask.create("resnet18.C10", HW)
    good = task.config(203).to_json_dict()

    def line(config):
        return json.dumps({"input": task.autotvm_input, "config": config,
                           "result": [[1e-3], 0, 1.0, 1.0], "version": 0.2,
                           "tvm_version": "0.14.0"})
    bad_tile = json.loads(json.dumps(good))
    bad_tile["entity"][1][2] = [-1, 999]
    log = tmp_path / "in.log"
    log.write_text("\n".join([line(good), line({**good, "index": -1}),
                              line({**good, "index": 10 ** 12}), line(bad_tile)]) + "\n")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["db", "import", str(log), "--db", url, "--json"]) == 1   # lines rejected
    out = json.loads(capsys.readouterr().out)
    # index -1 and a tile of 999 are refused; index 10**12 with a valid entity is kept as
    # the entity's point (ApplyHistoryBest applies the entity), its index corrected
    assert out["inserted"] == 2 and [r["line"] for r in out["rejected"]] == [2, 4]
    assert out["n_rejected"] == 2 and out["rejected"][0]["field"] == "config.index"
    assert main(["best", "resnet18.C10", "--db", url, "--runner", "any", "--top", "5",
                 "--json"]) == 0
    assert [r["index"] for r in json.loads(capsys.readouterr().out)["best"]] == [203, 203]


def test_a_record_with_an_out_of_range_number_is_a_typed_error():
    task = VtaTask.create("resnet18.C10", HW)
    with pytest.raises(ConfigurationError) as e:
        task.record(task.config(1), all_cost=10 ** 400)
    assert e.value.field == "all_cost"
    with pytest.raises(ConfigurationError) as e:
        task.record(task.config(1), costs=[10 ** 400])
    assert e.value.field == "costs"


def test_an_entity_knob_that_is_not_a_name_is_refused():
    task = VtaTask.create("resnet18.C10", HW)
    config = task.config(203).to_json_dict()
    config["entity"][0][0] = {"tile_b": 1}
    with pytest.raises(SpaceError) as e:
        vta_record_validator()(_imported(task, config))
    assert e.value.field == "entity"
