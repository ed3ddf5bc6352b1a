"""Helpers of the database tests, importable by spawned worker processes."""
from __future__ import annotations

import time

from vtatune.db.records import TuningRecord, workload_key

HW = "pynq_1x16_i8w8a32_15_15_18_17"
TARGET = f"ext_dev -keys=vta,cpu -device=vta -model={HW}"
ARGS = [["TENSOR", [1, 4, 56, 56, 1, 16], "int8"], ["TENSOR", [4, 4, 3, 3, 16, 16], "int8"],
        [1, 1], [1, 1, 1, 1], [1, 1], "NCHW1n16c", "int32"]
KEY = workload_key("conv2d_packed.vta", ARGS)


def entity(index: int) -> dict:
    """A config dict in AutoTVM's layout (the entity is synthetic; only the storage reads it)."""
    return {"index": index, "code_hash": None,
            "entity": [["tile_h", "sp", [-1, 1 + index % 7]], ["tile_w", "sp", [-1, 2]],
                       ["oc_nthread", "ot", 1 + index % 2]]}


def make_record(index: int, *, cost: float | None = None, error_no: int = 0,
                key: str = KEY, hw: str = HW, source: str = "measured", attempt: int = 0,
                timestamp: float = 1700000000.0, session: str = "test") -> TuningRecord:
    cost = 0.001 * (1 + index % 97) if cost is None else cost
    return TuningRecord(
        backend="vta", workload_key=key, workload_name="resnet18.C2" if key == KEY else "",
        target=f"ext_dev -keys=vta,cpu -device=vta -model={hw}", hw=hw, config=entity(index),
        config_index=index, costs=[cost, cost * 1.01] if error_no == 0 else [],
        error_no=error_no, all_cost=1.5, timestamp=timestamp + index, reason="" if error_no == 0
        else "inp_sram_overflow", message="" if error_no == 0 else "local.inp_buffer overflow",
        source=source, runner="tsim", tool_version="vtatune 0.1.0", session=session,
        attempt=attempt)


def concurrent_writer(url: str, worker: int, n: int, start, out) -> None:
    """Spawned process: wait for ``start``, then add ``n`` distinct records, one transaction
    each; put (worker, inserted, seconds) on ``out``."""
    from vtatune.db import open_db

    db = open_db(url)
    recs = [make_record(worker * 100_000 + i, session=f"w{worker}") for i in range(n)]
    start.wait(60)
    t0 = time.perf_counter()
    inserted = sum(db.add([r]) for r in recs)
    out.put((worker, inserted, time.perf_counter() - t0))
    db.close()
