"""The per-cycle bench of the ``dsp_chain`` top level, whichever simulator runs the design.

:func:`drive_program` feeds a Program's instruction words and serves its memory image through
:class:`~sparsim.simulator.memory.StripedMemory`. It touches the design only through a :class:`PortIO`
adapter, so the cocotb bench under Verilator (:mod:`sparsim.rtl.cocotb_bench.bench`) and the
Amaranth-simulator bench (:mod:`sparsim.rtl.amaranth_sim`) run the very same code and present the very
same stimuli.

Cycle numbering (docs/dsp_chain.md): cycle 0 is the first cycle after reset. In every cycle the
driver samples the engine's outputs (all driven from registers, so they are stable before the
clock edge), asks the memory model for the inputs of the same cycle and drives them; the rising
edge that closes the cycle performs the handshakes. The driver counts cycles itself, so the
verdict (:func:`sparsim.rtl.harness.judge`) can check the engine's own ``cycles`` output against it.
"""

from __future__ import annotations

import time
from typing import Protocol

from sparsim.simulator.memory import StallPolicy, StripedMemory

from .jobs import PortMap, RunResult, RunSpec

__all__ = ["PORTS", "DRIVEN", "PortIO", "drive_program"]

#: Members of the top's signature the driver uses, named ``stream.member`` (or ``member``) as in
#: the Amaranth signature; each adapter finds them in its simulator. ``rd_data`` is always ready
#: (the engine never stalls read data), so it has no ``ready``.
PORTS = (
    "instr.valid", "instr.payload", "instr.ready",
    "rd_req.valid", "rd_req.payload", "rd_req.ready",
    "rd_data.valid", "rd_data.payload",
    "wr.valid", "wr.payload", "wr.ready",
    "done", "cycles",
)  # fmt: skip
#: The handshake inputs the driver drives, low while the engine is in reset.
DRIVEN = ("instr.valid", "rd_req.ready", "rd_data.valid", "wr.ready")


class PortIO(Protocol):
    """A running design as the driver sees it: ports read and driven by name, one cycle at a time."""

    def get(self, name: str) -> int: ...

    def set(self, name: str, value: int) -> None: ...

    async def tick(self) -> None:
        """Return at the next cycle's sampling point (the new cycle's outputs settled)."""


def _field(value: int, where: tuple[int, int]) -> int:
    offset, width = where
    return (value >> offset) & ((1 << width) - 1)


async def drive_program(
    io: PortIO, ports: PortMap, spec: RunSpec, words: list[int], image: bytearray
) -> RunResult:
    """Run one Program on a design that has just left reset (cycle 0 is now)."""
    stalls = StallPolicy(seed=spec.stall_seed) if spec.stall_seed is not None else None
    model = StripedMemory(
        image, bandwidth=spec.bandwidth, latency=spec.latency, write_bytes=spec.write_bytes, stalls=stalls,
        beats=spec.read_beats,
    )
    get, put = io.get, io.set
    for name in DRIVEN:
        put(name, 0)
    req, wr = ports.streams["rd_req"].fields, ports.streams["wr"].fields
    sized_writes = "bytes" in wr
    started = time.perf_counter()
    x = 0  # current cycle
    pc = 0  # next instruction to offer
    offering = False  # the instruction stream holds valid until its handshake
    # Ports are written only when their value changes: each write costs a simulator call.
    last_instr = last_req_ready = last_data_valid = last_wr_ready = 0
    finished = False
    while x <= spec.max_cycles:
        if get("done"):
            finished = True
            break
        if not offering and pc < len(words) and model.instr_valid():
            offering = True
            put("instr.payload", words[pc])
        if offering != last_instr:
            put("instr.valid", int(offering))
            last_instr = offering
        if offering and get("instr.ready"):
            pc += 1
            offering = False
        rq_ready = int(model.read_request_ready())
        if rq_ready != last_req_ready:
            put("rd_req.ready", rq_ready)
            last_req_ready = rq_ready
        if rq_ready and get("rd_req.valid"):
            p = get("rd_req.payload")
            model.read_request(x, _field(p, req["addr"]), _field(p, req["count"]), _field(p, req["rec_bytes"]))
        record = model.read_data(x)
        if record is not None:
            put("rd_data.payload", record)
        dv = int(record is not None)
        if dv != last_data_valid:
            put("rd_data.valid", dv)
            last_data_valid = dv
        w_valid = bool(get("wr.valid"))
        # Engines whose store jobs differ in row size say each row's size in the payload.
        w_payload = get("wr.payload") if w_valid else 0
        w_bytes = _field(w_payload, wr["bytes"]) if sized_writes and w_valid else None
        w_ready = int(model.write_ready(x, w_valid, w_bytes))
        if w_ready != last_wr_ready:
            put("wr.ready", w_ready)
            last_wr_ready = w_ready
        if w_ready:
            p = w_payload
            model.write(x, _field(p, wr["addr"]), _field(p, wr["data"]), bool(_field(p, wr["last"])))
        await io.tick()
        x += 1
    wall = time.perf_counter() - started

    errors = list(model.stats.errors)
    if not finished:
        errors.append(f"no done within {spec.max_cycles} cycles")
    if finished and not model.idle:
        errors.append("memory traffic still pending when done rose")
    if pc != len(words):
        errors.append(f"{len(words) - pc} instruction words were not taken")
    put("instr.valid", 0)
    put("rd_data.valid", 0)
    stats = dict(vars(model.stats))
    stats.pop("errors")
    return RunResult(
        cycles=get("cycles"),
        bench_cycles=x,
        done=finished,
        wall_seconds=wall,
        stats=stats,
        errors=errors,
        memory=model.image,
    )
