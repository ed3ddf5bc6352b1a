"""Hardware FIFO depths: fetch stalls on a full command queue, tokens on a full token queue."""
import pytest

from vtatune.errors import TokenDeadlockError, UnfinishedWorkError
from vtatune.hardware.config import HwConfig
from vtatune.hardware.isa import FinishInsn, MemInsn, MemType, Opcode
from vtatune.sim.fsim import FunctionalSimulator


def _load_nop(**flags):
    return MemInsn(opcode=Opcode.LOAD, memory_type=MemType.INP, **flags)


def _compute_nop(**flags):
    return MemInsn(opcode=Opcode.LOAD, memory_type=MemType.UOP, **flags)


def _program(n):
    # n loads each wait for a compute->load token; the n compute NOPs that release them come
    # after the loads in the stream, so fetch must queue all n loads before reaching them.
    # The last load tells compute it is done, so FINISH waits for every load.
    return ([_load_nop(pop_next=1) for _ in range(n - 1)] + [_load_nop(pop_next=1, push_next=1)] +
            [_compute_nop(push_prev=1) for _ in range(n)] + [FinishInsn(pop_prev=1)])


def _hw(**queues):
    d = HwConfig.load().to_dict()
    d["queues"] = queues
    return HwConfig.from_dict(d)


def test_fetch_stalls_on_a_full_command_queue():
    # 512 FIFO entries + the one the load module holds: 514 loads cannot all be queued.
    with pytest.raises(TokenDeadlockError) as err:
        FunctionalSimulator(HwConfig.load()).execute(_program(514))
    assert "fetch: stalled at instruction 513" in str(err.value)
    assert "load command queue full" in str(err.value)


def test_same_program_fits_one_entry_less_or_deeper_queues():
    res = FunctionalSimulator(HwConfig.load()).execute(_program(513))
    assert res.executed == {"load": 513, "compute": 514, "store": 0}
    res = FunctionalSimulator(_hw(insn_queue_depth=2048)).execute(_program(1500))
    assert res.executed["load"] == 1500


def test_full_token_queue_blocks_the_producer():
    # compute pushes 5 g2l tokens before load consumes any; with a 4-deep token FIFO the
    # 5th push waits, and because the loads sit behind FINISH... they never run: deadlock
    # is not possible here, so instead the loads come first and drain the queue in time.
    prog = ([_compute_nop(push_prev=1) for _ in range(5)] +
            [_load_nop(pop_next=1) for _ in range(5)] +
            [_load_nop(push_next=1), _compute_nop(pop_prev=1), FinishInsn()])
    res = FunctionalSimulator(_hw(dep_queue_depth=4)).execute(prog)
    assert res.leftover_tokens == {}
    # With FINISH placed before the loads, compute finishes with loads still queued.
    bad = [_compute_nop(push_prev=1) for _ in range(3)] + [FinishInsn()] + [_load_nop(pop_next=1)]
    with pytest.raises(UnfinishedWorkError):
        FunctionalSimulator(HwConfig.load()).execute(bad)


def test_token_queue_capacity_deadlock():
    # Each module first pushes 3 tokens to the other and only then pops: with 2-deep token
    # FIFOs both block on their third push — a capacity deadlock; 3-deep FIFOs are enough.
    prog = ([_load_nop(push_next=1) for _ in range(3)] + [_load_nop(pop_next=1) for _ in range(2)] +
            [_load_nop(pop_next=1, push_next=1)] +  # the last load releases FINISH
            [_compute_nop(push_prev=1) for _ in range(3)] + [_compute_nop(pop_prev=1) for _ in range(3)] +
            [FinishInsn(pop_prev=1)])
    with pytest.raises(TokenDeadlockError) as err:
        FunctionalSimulator(_hw(dep_queue_depth=2)).execute(prog)
    assert "g2l token queue full (2)" in str(err.value)
    assert "l2g token queue full (2)" in str(err.value)
    res = FunctionalSimulator(_hw(dep_queue_depth=3)).execute(prog)
    assert res.executed == {"load": 6, "compute": 7, "store": 0}
