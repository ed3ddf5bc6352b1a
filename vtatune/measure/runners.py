"""Runners: where a compiled program executes, what its cost means, and how its records
are labelled.

One protocol for every measurement target (``runner_for("fsim" | "tsim" | "pynq://...")``):

* ``execute(program, inputs)`` places the program and its inputs in a simulated DRAM, runs
  it and returns an ``Execution`` (output in the plain layout, cost in seconds, the
  simulator's result);
* ``cost_meaning`` says what that cost is (tsim: simulated latency of one call, host work
  included; fsim: the simulator's wall time, not a hardware time);
* ``label(task)`` is the record's ``runner`` column: what else the cost depends on (tsim:
  token scheme and timing parameters; boards: bitstream and clock), so records of different
  runners never mix.

``pynq://HOST:PORT[,...]`` is the board runner (``board_runner.py``): the program runs on
board servers, shared through leases in the records database.

``evaluate`` is the one compile -> inputs -> run -> compare sequence, used by the CLI's
``run``, the measurement workers and ``replay``.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, is_dataclass, replace
from typing import Any

import numpy as np

from ..compiler.program import Program, compile_program
from ..compiler.reference import reference
from ..errors import ConfigurationError
from ..sim.dram import Dram
from ..sim.simulators import create_simulator
from ..space import ConfigEntity
from ..task import VtaTask
from ..workloads.workload import DENSE
from .base import Execution, Runner


def load_program(program: Program, inputs: dict[str, np.ndarray]) -> Dram:
    """A simulated DRAM holding the program, its micro-ops and its packed inputs."""
    dram = Dram()
    for name, data in program.dram_contents(inputs).items():
        dram.map(program.regions[name][0], data)
    return dram


def read_output(program: Program, dram: Dram) -> np.ndarray:
    addr, nbytes = program.regions["out"]
    raw = np.frombuffer(dram.read(addr, nbytes), dtype=np.int8)
    return program.extra["lowering"].unpack_output(raw)


class FsimRunner(Runner):
    kind = "fsim"
    cost_meaning = "wall time of the functional simulator (not a hardware time)"

    def label(self, task: VtaTask) -> str:
        return f"fsim/{task.sync}/{task.profile}"

    def execute(self, program, inputs, *, functional=True, trace=False) -> Execution:
        if trace:
            raise ConfigurationError("trace", "a pipeline trace needs the tsim runner")
        dram = load_program(program, inputs)
        t0 = time.perf_counter()
        result = create_simulator("fsim", program.hw, dram).run(program.insn_addr,
                                                                program.insn_count)
        wall = time.perf_counter() - t0
        return Execution(read_output(program, dram), wall, wall, result,
                         {"instructions": program.insn_count})


def timing_fingerprint(hw) -> str:
    """8 hex digits naming tsim's timing parameters (part of tsim's record label, so a
    hardware file that changes only ``timing`` keeps its name but not its records)."""
    t = hw.timing
    fields_ = asdict(t) if is_dataclass(t) else dict(t)
    return hashlib.sha256(json.dumps(fields_, sort_keys=True).encode()).hexdigest()[:8]


class TsimRunner(Runner):
    kind = "tsim"
    cost_meaning = "simulated latency of one call on the board, host work included"

    def label(self, task: VtaTask) -> str:
        return f"tsim/{task.sync}/{task.profile}/{timing_fingerprint(task.hw)}"

    def execute(self, program, inputs, *, functional=True, trace=False) -> Execution:
        dram = load_program(program, inputs)
        t0 = time.perf_counter()
        sim = create_simulator("tsim", program.hw, dram, functional=functional, trace=trace)
        result = sim.run(program.insn_addr, program.insn_count)
        wall = time.perf_counter() - t0
        extra = {"instructions": program.insn_count, "cycles": round(result.cycles),
                 "gops": round(result.gops, 3), "races": len(result.races)}
        return Execution(read_output(program, dram), result.latency_ms / 1e3, wall, result, extra)


RUNNERS: dict[str, type[Runner]] = {"fsim": FsimRunner, "tsim": TsimRunner}


def runner_for(target: Any) -> Runner:
    """The runner of a measurement target string; ``ConfigurationError`` (field ``target``)
    for an unknown one, before anything runs or is recorded."""
    if isinstance(target, Runner):
        return target
    if isinstance(target, str) and target in RUNNERS:
        return RUNNERS[target]()
    if isinstance(target, str) and target.startswith("pynq://"):
        from .board_runner import BoardRunner  # board servers: docs/board.md
        return BoardRunner.from_target(target)
    raise ConfigurationError("target", f"unknown measurement target {target!r}; "
                                       f"available: {', '.join(sorted(RUNNERS))}")


# ---------------------------------------------------------------------- compile and run
def run_program(program: Program, inputs: dict[str, np.ndarray], target: Runner | str = "fsim",
                **options: Any) -> Execution:
    """Execute a compiled program on a target (``options``: ``functional``, ``trace``)."""
    return runner_for(target).execute(program, inputs, **options)


def packed_output_shape(program: Program) -> tuple[int, ...]:
    """The output region's packed layout: (N/B, CO/BO, OH, OW, B, BO), dense (N/B, CO/BO, B, BO)."""
    wl, hw = program.workload, program.hw
    lead = (wl.batch // hw.batch, wl.out_channels // hw.block_out)
    if wl.template == DENSE:
        return lead + (hw.batch, hw.block_out)
    return lead + (wl.out_height, wl.out_width, hw.batch, hw.block_out)


class _PackedLowering:
    """The program's lowering, except that inputs arrive packed and the output stays packed."""

    def __init__(self, lowering: Any, out_shape: tuple[int, ...]):
        self._lowering, self._out_shape = lowering, out_shape

    def pack_inputs(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return inputs

    def unpack_output(self, raw: np.ndarray) -> np.ndarray:
        return raw.reshape(self._out_shape)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lowering, name)


def run_packed(program: Program, packed: dict[str, np.ndarray], target: Runner | str = "fsim",
               **options: Any) -> Execution:
    """Execute ``program`` on inputs already in VTA's packed DRAM layouts (``data``,
    ``kernel``, ``bias`` as ``compiler.packing`` makes them; their bytes are written to the
    regions as they are); the ``Execution``'s output stays packed (``packed_output_shape``).
    A network deploys its layers this way: no layout conversion per layer on the host."""
    low = program.extra["lowering"]
    for name, arr in packed.items():
        nbytes = program.regions[name][1] if name in program.regions else None
        if nbytes is None or arr.nbytes > nbytes:
            raise ConfigurationError(name, f"packed input {name!r} ({arr.nbytes} bytes) does "
                                           "not fit the program's regions")
    view = replace(program, extra={**program.extra,
                                   "lowering": _PackedLowering(low, packed_output_shape(program))})
    return runner_for(target).execute(view, {k: np.ascontiguousarray(v) for k, v in packed.items()},
                                      **options)


def expected_output(program: Program, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The numpy reference of the program's operator on ``inputs``."""
    return reference(program.workload, inputs["data"], inputs["kernel"], inputs.get("bias"))


@dataclass
class Evaluation:
    """compile -> inputs -> run -> compare, for one configuration of one task."""

    task: VtaTask
    config: ConfigEntity
    program: Program
    inputs: dict
    execution: Execution
    correct: bool | None      # None when not checked


def compile_config(task: VtaTask, config: ConfigEntity) -> Program:
    """Compile one configuration of ``task`` (typed ``MeasureError`` if it is invalid)."""
    return compile_program(task.workload, config.knobs, task.hw, sync=task.sync,
                           profile=task.profile)


def evaluate(task: VtaTask, config: ConfigEntity | int, runner: Runner | str, *,
             check: bool = False, seed: int | None = None, trace: bool = False,
             functional: bool | None = None, program: Program | None = None) -> Evaluation:
    """Compile ``config`` (unless ``program`` is given), run it on random inputs (seeded by
    ``seed``, default the configuration index) and, with ``check``, compare the output with
    the numpy reference.  ``functional=None``: a timing runner skips the data path when
    nothing is checked (its timing does not depend on the data)."""
    runner = runner_for(runner)
    if not isinstance(config, ConfigEntity):
        config = task.config(config)
    program = program or compile_config(task, config)
    inputs = program.random_inputs(config.index if seed is None else seed)
    if functional is None:
        functional = check or trace
    execution = runner.execute(program, inputs, functional=functional or check, trace=trace)
    correct = None
    if check:
        correct = bool(np.array_equal(execution.output, expected_output(program, inputs)))
    return Evaluation(task, config, program, inputs, execution, correct)
