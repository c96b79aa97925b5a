"""The per-cycle bench of a top level whose memory side is line requests (docs/engines.md: the
line-request interface of :class:`sparsim.simulator.memory.LineMemory`), whichever simulator
runs the design.

Such a top has, besides ``instr``, ``done`` and ``cycles``: one request stream per requester
``req0`` … (``{addr, tag}``, requester ``i`` is ``req<i>``), one always-ready response stream per
memory channel ``resp0`` … (``{requester, tag, data}``), a posted line-write stream ``wr``
(``{addr, data, bank}``) whose completions come back on ``wr_ack`` / ``wr_ack_bank`` (one bit per
channel), and ``running``, high from the Program's cycle 0 (the design takes the whole Program
before it starts). :func:`drive_line_program` serves them from one :class:`LineMemory`: in every
cycle the requests in requester order, then the write, then that cycle's deliveries and write
completions, so channel bookings follow the contract's order (loader, units, store).
"""

from __future__ import annotations

import time

from sparsim.simulator.memory import LineMemory, StallPolicy, line_channel

from .driver import PortIO
from .jobs import PortMap, RunResult, RunSpec

__all__ = ["is_line_top", "port_names", "driven", "drive_line_program"]


def is_line_top(ports: PortMap) -> bool:
    """Whether ``ports`` are those of a line-request top level."""
    return "wr_ack" in ports.signals


def port_names(ports: PortMap) -> list[str]:
    """Every member the bench touches, named ``stream.member`` or ``member``."""
    names = []
    for name, s in ports.streams.items():
        names.append(f"{name}.payload")
        if s.valid is not None:
            names.append(f"{name}.valid")
        if s.ready is not None:
            names.append(f"{name}.ready")
    return names + list(ports.signals)


def driven(ports: PortMap) -> list[str]:
    """The inputs the bench drives, low while the design is in reset."""
    channels = sum(1 for n in ports.streams if n.startswith("resp"))
    names = [f"{n}.ready" for n, s in ports.streams.items() if n.startswith("req") and s.ready is not None]
    return names + [f"resp{c}.valid" for c in range(channels)] + ["instr.valid", "wr.ready", "wr_ack", "wr_ack_bank"]


def _field(value: int, where: tuple[int, int]) -> int:
    offset, width = where
    return (value >> offset) & ((1 << width) - 1)


def _pack(fields: dict[str, tuple[int, int]], **values: int) -> int:
    word = 0
    for name, value in values.items():
        offset, width = fields[name]
        word |= (value & ((1 << width) - 1)) << offset
    return word


async def drive_line_program(
    io: PortIO, ports: PortMap, spec: RunSpec, words: list[int], image: bytearray
) -> RunResult:
    """Run one Program on a line-request design that has just left reset."""
    rng_policy = StallPolicy(seed=spec.stall_seed) if spec.stall_seed is not None else None
    import random

    rng = random.Random(spec.stall_seed) if rng_policy is not None else None

    def chance(p: float) -> bool:
        return rng is not None and rng.random() < p

    model = LineMemory(image, channels=spec.channels, bytes_per_cycle=spec.bytes_per_cycle, latency=spec.latency,
                       line_bytes=spec.line_bytes, max_outstanding=spec.max_outstanding)
    line, channels = spec.line_bytes, spec.channels
    requesters = sorted(int(n[3:]) for n in ports.streams if n.startswith("req"))
    get, put = io.get, io.set
    inputs = driven(ports)
    for name in inputs:
        put(name, 0)
    resp_fields = ports.streams["resp0"].fields
    req_fields = {i: ports.streams[f"req{i}"].fields for i in requesters}
    wr_fields = ports.streams["wr"].fields
    started = time.perf_counter()
    x = pc = 0
    start = None
    offering = finished = False
    channel_of: dict[tuple[int, int], int] = {}
    acks: dict[int, list[tuple[int, int]]] = {}
    errors: list[str] = []
    requests = writes = 0
    while x <= spec.max_cycles:
        if get("done"):
            finished = True
            break
        if start is None and get("running"):
            start = x
        if not offering and pc < len(words) and not (rng_policy and chance(rng_policy.instr_gap)):
            offering = True
            put("instr.payload", words[pc])
        put("instr.valid", int(offering))
        if offering and get("instr.ready"):
            pc += 1
            offering = False
        for i in requesters:
            ready = model.can_request(x, i) and not (rng_policy and chance(rng_policy.request_busy))
            put(f"req{i}.ready", int(ready))
            if ready and get(f"req{i}.valid"):
                p = get(f"req{i}.payload")
                addr, tag = _field(p, req_fields[i]["addr"]), _field(p, req_fields[i]["tag"])
                if (i, tag) in channel_of:
                    errors.append(f"cycle {x}: requester {i} reused tag {tag} in flight")
                model.request(x, addr, tag, i)
                channel_of[(i, tag)] = line_channel(addr, line, channels)
                requests += 1
        w_ready = not (rng_policy and chance(rng_policy.write_busy))
        put("wr.ready", int(w_ready))
        if w_ready and get("wr.valid"):
            p = get("wr.payload")
            addr = _field(p, wr_fields["addr"])
            data = _field(p, wr_fields["data"]).to_bytes(line, "little")
            if addr + line > len(model.image):
                errors.append(f"cycle {x}: write of a line at {addr} is out of range")
            else:
                t = model.write(x, addr, data)
                acks.setdefault(t, []).append((line_channel(addr, line, channels), _field(p, wr_fields["bank"])))
                writes += 1
        delivered = {}
        for requester, tag, data in model.responses(x):
            delivered[channel_of.pop((requester, tag))] = (requester, tag, data)
        for c in range(channels):
            if c in delivered:
                requester, tag, data = delivered[c]
                put(f"resp{c}.payload", _pack(resp_fields, requester=requester, tag=tag,
                                              data=int.from_bytes(data, "little")))
            put(f"resp{c}.valid", int(c in delivered))
        ack = bank = 0
        for c, b in acks.pop(x, []):
            ack |= 1 << c
            bank |= b << c
        put("wr_ack", ack)
        put("wr_ack_bank", bank)
        await io.tick()
        x += 1
    wall = time.perf_counter() - started
    if not finished:
        errors.append(f"no done within {spec.max_cycles} cycles")
    if finished and (not model.idle or acks):
        errors.append("memory traffic still pending when done rose")
    if pc != len(words):
        errors.append(f"{len(words) - pc} instruction words were not taken")
    for name in inputs:
        put(name, 0)
    return RunResult(
        cycles=get("cycles"),
        bench_cycles=x - (start if start is not None else 0),
        done=finished,
        wall_seconds=wall,
        stats={"line_requests": requests, "line_writes": writes},
        errors=errors,
        memory=model.image,
    )
