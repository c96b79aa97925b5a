"""cocotb test module: runs Programs on the built ``dsp_chain`` top level.

Started by :func:`rtl.verilator.run_programs` with the job file in ``$SPARSIM_RTL_JOB``; writes
the result file named by ``$SPARSIM_RTL_RESULT`` (see :mod:`rtl.cocotb_bench.jobs`).

Cycle numbering (docs/dsp_chain.md): cycle 0 is the first cycle whose closing clock edge is not
a reset edge. In every cycle the bench waits for the falling clock edge, samples the engine's
outputs (all driven from registers, so they are stable then), asks the memory model for the
inputs of the same cycle and drives them; the rising edge that closes the cycle performs the
handshakes. The bench counts cycles itself and checks the engine's ``cycles`` against it.
"""

from __future__ import annotations

import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from simulator.memory import StallPolicy, StripedMemory

from .jobs import JOB_ENV, RESULT_ENV, PortMap, RunResult, RunSpec, read_job, write_results

_RESET_CYCLES = 3


def _field(value: int, where: tuple[int, int]) -> int:
    offset, width = where
    return (value >> offset) & ((1 << width) - 1)


async def _run(dut, ports: PortMap, spec: RunSpec, words: list[int], image: bytearray) -> RunResult:
    stalls = StallPolicy(seed=spec.stall_seed) if spec.stall_seed is not None else None
    model = StripedMemory(
        image,
        bandwidth=spec.bandwidth,
        latency=spec.latency,
        write_bytes=spec.write_bytes,
        stalls=stalls,
    )
    clk, rst = dut.clk, dut.rst
    instr, req, rdata, wr = (ports.streams[name] for name in ("instr", "rd_req", "rd_data", "wr"))
    instr_valid, instr_payload, instr_ready = (getattr(dut, instr.valid), getattr(dut, instr.payload),
                                               getattr(dut, instr.ready))
    req_valid, req_payload, req_ready = getattr(dut, req.valid), getattr(dut, req.payload), getattr(dut, req.ready)
    # Read data is never stalled (always_ready): it has no ready port.
    data_valid, data_payload = getattr(dut, rdata.valid), getattr(dut, rdata.payload)
    wr_valid, wr_payload, wr_ready = getattr(dut, wr.valid), getattr(dut, wr.payload), getattr(dut, wr.ready)
    done, cycles = getattr(dut, ports.signals["done"]), getattr(dut, ports.signals["cycles"])

    rst.value = 1
    for sig in (instr_valid, req_ready, data_valid, wr_ready):
        sig.value = 0
    for _ in range(_RESET_CYCLES):
        await RisingEdge(clk)
    await FallingEdge(clk)
    rst.value = 0

    started = time.perf_counter()
    x = 0  # current cycle
    pc = 0  # next instruction to offer
    offering = False  # the instruction stream holds valid until its handshake
    last_instr = last_req_ready = last_data_valid = last_wr_ready = 0
    finished = False
    while x <= spec.max_cycles:
        if int(done.value):
            finished = True
            break
        # Instruction stream.
        if not offering and pc < len(words) and model.instr_valid():
            offering = True
            instr_payload.value = words[pc]
        if offering != last_instr:
            instr_valid.value = int(offering)
            last_instr = offering
        if offering and int(instr_ready.value):
            pc += 1
            offering = False
        # Read requests.
        rq_ready = int(model.read_request_ready())
        if rq_ready != last_req_ready:
            req_ready.value = rq_ready
            last_req_ready = rq_ready
        if rq_ready and int(req_valid.value):
            p = int(req_payload.value)
            model.read_request(
                x, _field(p, req.fields["addr"]), _field(p, req.fields["count"]), _field(p, req.fields["rec_bytes"])
            )
        # Read data.
        record = model.read_data(x)
        if record is not None:
            data_payload.value = record
        dv = int(record is not None)
        if dv != last_data_valid:
            data_valid.value = dv
            last_data_valid = dv
        # Writes.
        wv = bool(int(wr_valid.value))
        w_ready = int(model.write_ready(x, wv))
        if w_ready != last_wr_ready:
            wr_ready.value = w_ready
            last_wr_ready = w_ready
        if w_ready:
            p = int(wr_payload.value)
            model.write(x, _field(p, wr.fields["addr"]), _field(p, wr.fields["data"]), bool(_field(p, wr.fields["last"])))
        await FallingEdge(clk)
        x += 1
    wall = time.perf_counter() - started

    errors = list(model.stats.errors)
    if not finished:
        errors.append(f"no done within {spec.max_cycles} cycles")
    if finished and not model.idle:
        errors.append("memory traffic still pending when done rose")
    if pc != len(words):
        errors.append(f"{len(words) - pc} instruction words were not taken")
    instr_valid.value = 0
    data_valid.value = 0
    stats = dict(vars(model.stats))
    stats.pop("errors")
    return RunResult(
        cycles=int(cycles.value),
        bench_cycles=x,
        done=finished,
        wall_seconds=wall,
        stats=stats,
        errors=errors,
        memory=model.image,
    )


@cocotb.test()
async def run_programs(dut) -> None:
    """Run every Program of the job file, resetting the engine before each."""
    ports, runs = read_job(os.environ[JOB_ENV])
    Clock(dut.clk, 10, unit="ns").start()
    results = []
    for spec, words, image in runs:
        results.append(await _run(dut, ports, spec, words, image))
    write_results(os.environ[RESULT_ENV], results)
