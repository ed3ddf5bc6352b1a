"""Profile counters with the names of the VTA simulator's profiler (§3.3 of the dossier)."""
from __future__ import annotations

COUNTER_NAMES = (
    "inp_load_nbytes", "wgt_load_nbytes", "acc_load_nbytes", "uop_load_nbytes",
    "out_store_nbytes", "gemm_counter", "alu_counter",
)


def new_counters() -> dict[str, int]:
    return {name: 0 for name in COUNTER_NAMES}
