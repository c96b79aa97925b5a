"""Files that carry work into the cocotb process and results out of it (structured, no logs).

A *job file* holds one or more runs for one built design: per run the instruction words, the
memory image and the memory-model parameters. The bench writes a *result file* with, per run,
the engine's cycle count, the final memory image and the memory model's counters. Both are
``.npz`` archives: the ``meta`` entry is JSON text, arrays are stored as they are.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: Environment variables naming the job and result files of a cocotb process.
JOB_ENV = "SPARSIM_RTL_JOB"
RESULT_ENV = "SPARSIM_RTL_RESULT"


@dataclass(frozen=True)
class StreamPorts:
    """Verilog ports of one ``lib.stream`` member of the top level and its payload fields."""

    payload: str
    valid: str | None  # None: the stream is always valid (no port)
    ready: str | None  # None: the stream is always ready (no port)
    fields: dict[str, tuple[int, int]]  # field name -> (bit offset, width) inside the payload


@dataclass(frozen=True)
class PortMap:
    """Where the bench finds each member of the top level's signature in the Verilog: derived
    from the signature by :func:`sparsim.rtl.verilator.port_map`, never written by hand."""

    streams: dict[str, StreamPorts]
    signals: dict[str, str]  # other members (e.g. ``done``, ``cycles``) -> port name

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict) -> "PortMap":
        streams = {
            name: StreamPorts(
                payload=s["payload"],
                valid=s["valid"],
                ready=s["ready"],
                fields={f: (int(o), int(w)) for f, (o, w) in s["fields"].items()},
            )
            for name, s in raw["streams"].items()
        }
        return cls(streams=streams, signals=dict(raw["signals"]))


@dataclass(frozen=True)
class RunSpec:
    """One Program execution."""

    bandwidth: int
    latency: int
    write_bytes: int
    max_cycles: int
    stall_seed: int | None = None
    # Read data as the port's beats of ``bandwidth`` bytes (``StripedMemory(beats=True)``).
    read_beats: bool = False
    # The line-request interface (0: the design streams striped records instead).
    channels: int = 0
    bytes_per_cycle: int = 0
    line_bytes: int = 0
    max_outstanding: int = 0


@dataclass
class RunResult:
    """What the bench observed for one run."""

    cycles: int  # the engine's ``cycles`` output once ``done``
    bench_cycles: int  # the bench's own count of cycles until ``done`` was seen
    done: bool
    wall_seconds: float
    stats: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    memory: np.ndarray | None = None


def write_job(path: Path, ports: PortMap, runs: list[tuple[RunSpec, list[int], np.ndarray]]) -> None:
    arrays = {}
    specs = []
    for i, (spec, words, image) in enumerate(runs):
        specs.append(asdict(spec))
        arrays[f"words_{i}"] = np.array(
            [list(w.to_bytes(16, "little")) for w in words], dtype=np.uint8
        ).reshape(len(words), 16)
        arrays[f"memory_{i}"] = np.frombuffer(bytes(image), dtype=np.uint8)
    meta = {"ports": ports.to_json(), "runs": specs}
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def read_job(path: str | Path) -> tuple[PortMap, list[tuple[RunSpec, list[int], bytearray]]]:
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        ports = PortMap.from_json(meta["ports"])
        runs = []
        for i, spec in enumerate(meta["runs"]):
            words = [int.from_bytes(bytes(row), "little") for row in z[f"words_{i}"]]
            runs.append((RunSpec(**spec), words, bytearray(z[f"memory_{i}"].tobytes())))
    return ports, runs


def write_results(path: str | Path, results: list[RunResult]) -> None:
    arrays = {}
    metas = []
    for i, res in enumerate(results):
        d = asdict(res)
        d.pop("memory")
        metas.append(d)
        arrays[f"memory_{i}"] = np.frombuffer(bytes(res.memory), dtype=np.uint8)
    np.savez(path, meta=np.array(json.dumps({"runs": metas})), **arrays)


def read_results(path: str | Path) -> list[RunResult]:
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        return [
            RunResult(**d, memory=z[f"memory_{i}"].copy()) for i, d in enumerate(meta["runs"])
        ]
