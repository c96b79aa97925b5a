"""Run Programs on an engine's RTL under Amaranth's own simulator (no Verilog, no build).

The per-cycle bench is the one the cocotb bench runs under Verilator
(:func:`sparsim.rtl.cocotb_bench.driver.drive_program`, same memory model), here driven from an Amaranth
testbench, so both levels see identical stimuli and are judged alike (:func:`sparsim.rtl.harness.judge`).
Amaranth's simulator is far slower per cycle than Verilator (benchmarks/bench_sim_vs_rtl.py) but
needs no compile step: it is the quick RTL level for small Programs and for components patched
inside a test.
"""

from __future__ import annotations

from typing import Sequence

from amaranth.hdl import Value
from amaranth.sim import Simulator

from sparsim import engine as engines

from .cocotb_bench.driver import PORTS, drive_program
from .cocotb_bench.line_driver import drive_line_program, is_line_top, port_names
from .cocotb_bench.jobs import RunResult
from .harness import Program, ProgramRun, VerifyResult, judge, run_spec
from .verilator import port_map

__all__ = ["run_programs", "verify_all"]


class _AmaranthIO:
    """:class:`~sparsim.rtl.cocotb_bench.driver.PortIO` over a testbench context; ``a.b`` is member ``b``
    of port ``a``. Values set now settle at once and are sampled by the next rising edge."""

    def __init__(self, ctx, top, names=PORTS):
        self._ctx = ctx
        self._values = {}
        for name in names:
            obj = top
            for part in name.split("."):
                obj = getattr(obj, part)
            self._values[name] = Value.cast(obj)  # a payload view reads as its raw bits

    def get(self, name: str) -> int:
        return self._ctx.get(self._values[name])

    def set(self, name: str, value: int) -> None:
        self._ctx.set(self._values[name], value)

    async def tick(self) -> None:
        await self._ctx.tick()


def run_programs(runs: Sequence[ProgramRun]) -> list[RunResult]:
    """Execute ``runs`` (Programs of one hardware configuration) in order, each in a fresh
    simulation of the engine's top level (``rtl_top(hw)``), which starts in its reset state."""
    if not runs:
        return []
    hw = runs[0].program.hw
    ports = port_map(hw)
    results: list[RunResult] = []
    for item in runs:
        if item.program.hw != hw:
            raise ValueError("every Program must target the same hardware configuration")
        spec = run_spec(item)
        dut = engines.of(hw).rtl_top(hw)
        words, image = item.program.words(), bytearray(item.program.memory.tobytes())

        async def bench(ctx, dut=dut, spec=spec, words=words, image=image):
            if is_line_top(ports):
                io = _AmaranthIO(ctx, dut, port_names(ports))
                results.append(await drive_line_program(io, ports, spec, words, image))
            else:
                results.append(await drive_program(_AmaranthIO(ctx, dut), ports, spec, words, image))

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
    return results


def verify_all(cases: Sequence[tuple[Program, int | None]]) -> list[VerifyResult]:
    """:func:`sparsim.rtl.verilator.verify_all` under Amaranth's simulator: per ``(program, stall_seed)``
    the values against the golden model and, without stalls, the cycles against the simulator."""
    results = run_programs([ProgramRun(p, stall_seed=s) for p, s in cases])
    return [judge(program, res, seed) for (program, seed), res in zip(cases, results)]
