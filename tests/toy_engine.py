"""A minimal engine for the seam tests: a vector-sum unit with ``lanes`` adders.

It exists only here (tests/), registered at run time by the tests, so a test can show that the
public paths (config, ``sparsim simulate``, ``sparsim sweep``, the report) reach an engine only
through its ``Engine`` object.

Timing of one pass: the vector of ``length`` INT8 elements streams in at ``bytes_per_cycle``
after ``latency_cycles``; the adders take ``ceil(length / lanes)`` cycles, overlapped with the
stream, so cycles = max(latency + ceil(length / bytes_per_cycle), ceil(length / lanes)) + 1
(the write of the sum).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sparsim.dataflow.config import HardwareConfig, WorkloadConfig
from sparsim.simulator.results import RawCounts, shared_metrics
from sparsim.engine import Engine, Metric


class ToyHardware(HardwareConfig):
    engine: Literal["toy"] = "toy"
    lanes: int = Field(gt=0, le=1024, description="adders working in parallel")
    bytes_per_cycle: int = Field(gt=0, description="off-chip bytes per cycle")
    latency_cycles: int = Field(default=4, ge=1, description="memory latency in cycles")


class VecSumWorkload(WorkloadConfig):
    kind: Literal["vecsum"]
    length: int = Field(gt=0, description="INT8 elements to sum")
    vectors: int = Field(default=1, gt=0, description="vectors per pass (the work items)")


def simulate(point) -> RawCounts:
    hw, wl = point.hardware, point.workload
    stream = hw.latency_cycles + -(-wl.length // hw.bytes_per_cycle)
    add = -(-wl.length // hw.lanes)
    per_vector = max(stream, add) + 1
    return RawCounts(
        cycles=per_vector * wl.vectors,
        clock_mhz=hw.clock_mhz,
        useful_macs=wl.length * wl.vectors,
        issued_macs=add * hw.lanes * wl.vectors,
        peak_macs_per_cycle=hw.lanes,
        bytes_read=wl.length * wl.vectors,
        bytes_written=4 * wl.vectors,
        onchip_bytes=0,
        peak_bytes_per_cycle=hw.bytes_per_cycle,
        breakdown={"stream": stream * wl.vectors, "write": wl.vectors},
        stalls={"memory": max(0, stream - add) * wl.vectors},
        counts={"elements_per_cycle": wl.length * wl.vectors / (per_vector * wl.vectors)},
        items=wl.vectors,
        item="vector",
    )


def resources(hw: ToyHardware) -> dict[str, float]:
    return {"dsp": 0, "lut": 40 * hw.lanes + 200, "ff": 40 * hw.lanes + 100, "bram36": 0.0, "uram": 0}


ENGINE = Engine(
    name="toy",
    hardware=ToyHardware,
    workloads=(VecSumWorkload,),
    presets={"toy_small": {"clock_mhz": 100.0, "lanes": 4, "bytes_per_cycle": 8}},
    metrics=shared_metrics("vector") + (
        Metric("elements_per_cycle", "elements/cycle", "max", "summing rate"),
    ),
    simulate=simulate,
    resources=resources,
    describe=lambda hw: f"toy lanes={hw.lanes} @ {hw.clock_mhz:g} MHz, {hw.bytes_per_cycle} B/cycle",
    headline=("cycles", "elements_per_cycle", "vectors_per_s", "lut"),
    breakdown="pass",
)
