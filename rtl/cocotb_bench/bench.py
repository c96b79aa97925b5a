"""cocotb test module: runs Programs on a built engine top level.

Started by :func:`sparsim.rtl.verilator.run_programs` with the job file in ``$SPARSIM_RTL_JOB``; writes
the result file named by ``$SPARSIM_RTL_RESULT`` (see :mod:`sparsim.rtl.cocotb_bench.jobs`). The
per-cycle bench is :func:`sparsim.rtl.cocotb_bench.driver.drive_program`; this module adapts it to
cocotb handles, sampling and driving at the falling clock edge.
"""

from __future__ import annotations

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from .driver import DRIVEN, PORTS, drive_program
from .line_driver import drive_line_program, driven as line_driven, is_line_top, port_names
from .jobs import JOB_ENV, RESULT_ENV, PortMap, read_job, write_results

_RESET_CYCLES = 3


class _CocotbIO:
    """:class:`~sparsim.rtl.cocotb_bench.driver.PortIO` over the Verilated top's handles, found through
    the port map; values written now take effect in the same cycle, before its rising edge."""

    def __init__(self, dut, ports: PortMap, names=PORTS):
        def verilog_name(name: str) -> str:
            if "." not in name:
                return ports.signals[name]
            stream, member = name.split(".")
            return getattr(ports.streams[stream], member)

        self._handles = {name: getattr(dut, verilog_name(name)) for name in names}
        self._falling = FallingEdge(dut.clk)

    def get(self, name: str) -> int:
        return int(self._handles[name].value)

    def set(self, name: str, value: int) -> None:
        self._handles[name].value = value

    async def tick(self) -> None:
        await self._falling


async def _reset(dut, io: _CocotbIO) -> None:
    """Hold reset for a few cycles and return at the falling edge of cycle 0."""
    dut.rst.value = 1
    for name in io.driven:
        io.set(name, 0)
    for _ in range(_RESET_CYCLES):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def run_programs(dut) -> None:
    """Run every Program of the job file, resetting the engine before each."""
    ports, runs = read_job(os.environ[JOB_ENV])
    Clock(dut.clk, 10, unit="ns").start()
    line_top = is_line_top(ports)
    io = _CocotbIO(dut, ports, port_names(ports) if line_top else PORTS)
    io.driven = line_driven(ports) if line_top else DRIVEN
    results = []
    for spec, words, image in runs:
        await _reset(dut, io)
        drive = drive_line_program if line_top else drive_program
        results.append(await drive(io, ports, spec, words, image))
    write_results(os.environ[RESULT_ENV], results)
