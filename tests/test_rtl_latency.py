"""The RTL's real pipeline depth against the ``pipeline_cycles`` the simulator uses.

Amaranth's simulator runs the whole accelerator on a one-step MM (LDA, MM of one step and one
token group, END) and counts the cycles from the step's address cycle (the compute engine
issues it) to the output-row write. The control counts PIPE from ``pipeline_cycles`` too, so
this is the check that the datapath really takes that long: a stage added or removed in the
compute path without updating ``pipeline_cycles`` fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from sparsim.dataflow import dsp_chain_isa as isa
from sparsim.dataflow.config import design_point_from_dict
from sparsim.rtl.dsp_chain import DspChainAccelerator


def _hw(chain_len: int, lanes: int):
    return design_point_from_dict({
        "hardware": {"preset": "tiny", "chains": 1, "chain_len": chain_len, "mux_m": 8,
                     "lanes": lanes, "weight_buffer_kib": 2},
        "workload": {"kind": "gemm", "layers": [{"rows": 1, "k": 8, "sparsity": "8:8"}]},
    }).hardware


def _words(hw) -> list[int]:
    instrs = np.zeros(3, dtype=isa.INSTR_DTYPE)
    instrs[0] = (isa.OP_LDA, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0)
    instrs[1] = (isa.OP_MM, 0, 1, hw.mux_m.bit_length() - 1, 1, 1, 1, 0, 64, 1024, 0)
    instrs[2]["op"] = isa.OP_END
    return isa.encode_program(instrs)


def measured_latency(hw) -> int:
    """Cycles from the issue of the MM's only step to its output-row write."""
    dut = DspChainAccelerator(hw)
    sim = Simulator(dut)  # elaborates the design, which sets the probes
    probes = dut._latency_probes
    words = _words(hw)
    seen: dict[str, int] = {}

    async def bench(ctx):
        ctx.set(dut.rd_req.ready, 1)
        taken, records_due = 0, 0
        for cycle in range(200):
            ctx.set(dut.instr.valid, taken < len(words))
            ctx.set(dut.instr.payload.as_value(), words[min(taken, len(words) - 1)])
            ctx.set(dut.rd_data.valid, records_due > 0)
            if ctx.get(dut.instr.ready) and taken < len(words):
                taken += 1
            if ctx.get(dut.rd_req.valid):
                records_due += ctx.get(dut.rd_req.payload.count)
            records_due -= records_due > 0 and ctx.get(dut.rd_data.valid)
            for name in ("issue", "row_write"):
                if ctx.get(probes[name]) and name not in seen:
                    seen[name] = cycle
            if "row_write" in seen:
                return
            await ctx.tick()

    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert set(seen) == {"issue", "row_write"}, f"events seen: {seen}"
    return seen["row_write"] - seen["issue"]


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("chain_len", [2, 4, 8, 16])
def test_rtl_latency_equals_pipeline_cycles(chain_len, lanes):
    assert measured_latency(_hw(chain_len, lanes)) == isa.pipeline_cycles(chain_len)
