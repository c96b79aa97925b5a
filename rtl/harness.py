"""What every RTL simulation level shares, whichever simulator runs the design: the description
of one Program execution, its bench settings, and the verdict against the golden model (values)
and the engine's cycle simulator (cycles).

:mod:`sparsim.rtl.verilator` (cocotb under Verilator) and :mod:`sparsim.rtl.amaranth_sim` (Amaranth's own
simulator) both return :class:`VerifyResult` from :func:`judge`, so a level differs from another
only in the simulator underneath.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparsim import engine as engines

from .cocotb_bench.jobs import RunResult, RunSpec

__all__ = ["ProgramRun", "run_spec", "VerifyResult", "judge"]

#: A compiled Program of the hardware's engine (``Engine.compile(point, with_data=True)``).
Program = Any


@dataclass(frozen=True)
class ProgramRun:
    """One execution of a Program: its memory image, and random stalls or exact timing."""

    program: Program
    stall_seed: int | None = None
    max_cycles: int | None = None  # default: generous bound from the simulator's count


def run_spec(item: ProgramRun) -> RunSpec:
    """Bench settings of ``item``: the memory model of its hardware and a cycle limit."""
    prog = item.program
    hw = prog.hw
    if prog.memory is None:
        raise ValueError("the Program has no memory image; compile it with with_data=True")
    limit = item.max_cycles
    if limit is None:
        expected = engines.of(hw).program_cycles(prog)
        limit = expected * (20 if item.stall_seed is not None else 2) + 1000
    geometry = getattr(prog, "geometry", None)
    line_bytes = getattr(hw, "line_bytes", 0)
    return RunSpec(
        bandwidth=hw.memory.bandwidth_bytes_per_cycle,
        latency=hw.memory.latency_cycles,
        # Engines whose writes carry their size (a ``bytes`` field) have no fixed row size; a
        # line-request engine writes lines.
        write_bytes=geometry.out_row_bytes if geometry is not None else (line_bytes or 1),
        max_cycles=limit,
        stall_seed=item.stall_seed,
        read_beats=engines.of(hw).read_beats,
        channels=hw.memory.channels if line_bytes else 0,
        bytes_per_cycle=hw.memory.bytes_per_cycle if line_bytes else 0,
        line_bytes=line_bytes,
        max_outstanding=getattr(hw, "max_outstanding", 0),
    )


@dataclass
class VerifyResult:
    """RTL against the golden model (values) and the simulator (cycles) for one run."""

    cycles_rtl: int
    cycles_sim: int
    outputs_match: bool
    cycles_match: bool
    stalls: bool
    stall_seed: int | None
    mismatches: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Values exact, no bench error, and (without stalls) cycles exact."""
        return self.outputs_match and not self.errors and (self.stalls or self.cycles_match)

    @property
    def cycles_per_second(self) -> float:
        """Simulated cycles per wall-clock second of the RTL simulation run."""
        return self.cycles_rtl / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def summary(self) -> str:
        head = (
            f"cycles rtl={self.cycles_rtl} sim={self.cycles_sim} "
            f"({'match' if self.cycles_match else 'differ'}{', stalls' if self.stalls else ''}); "
            f"outputs {'match' if self.outputs_match else 'DIFFER'}"
        )
        return "\n".join([head, *self.errors, *self.mismatches[:20]])


def _compare_outputs(program: Program, memory: np.ndarray, limit: int = 8) -> list[str]:
    details = []
    for li, (got, want) in enumerate(zip(program.read_outputs(memory), program.expected_outputs())):
        bad = np.argwhere(got != want)
        if bad.size:
            details.append(f"layer {li}: {len(bad)} of {want.size} outputs differ")
            for t, r in bad[:limit]:
                details.append(f"  Y[{t}, {r}] rtl={got[t, r]} golden={want[t, r]}")
    return details


def judge(program: Program, result: RunResult, stall_seed: int | None) -> VerifyResult:
    """One run's final memory against the golden outputs, its cycles against the simulator."""
    cycles_sim = engines.of(program.hw).program_cycles(program)
    errors = list(result.errors)
    if result.done and result.bench_cycles != result.cycles:
        errors.append(
            f"the engine counted {result.cycles} cycles but the bench saw done after {result.bench_cycles}"
        )
    mismatches = _compare_outputs(program, result.memory)
    return VerifyResult(
        cycles_rtl=result.cycles,
        cycles_sim=cycles_sim,
        outputs_match=result.done and not mismatches,
        cycles_match=result.done and result.cycles == cycles_sim,
        stalls=stall_seed is not None,
        stall_seed=stall_seed,
        mismatches=mismatches,
        errors=errors,
        wall_seconds=result.wall_seconds,
    )
