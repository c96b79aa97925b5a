"""The result every engine produces: raw counts in, derived metrics out.

An engine's simulator counts what happened in one pass of its workload (:class:`RawCounts`:
cycles, MACs, bytes, time by operator or pass, stall causes); :func:`derive` turns the counts
into the metrics every engine shares (time, bandwidth, utilisation, roofline coordinates,
energy from the design point's table, and per-item rates when the workload has items such as
tokens). ``Engine.evaluate`` applies it to what ``Engine.simulate`` counted; engines never
compute these themselves, so the same metric means the same thing for every engine and the
reports can rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparsim.dataflow.config import EnergyTable
from sparsim.engine import Metric

from .energy import energy_joules

#: Column prefixes of the breakdowns in a flat result row.
BREAKDOWN_PREFIX = "op_cycles_"
STALL_PREFIX = "stall_"


@dataclass(frozen=True)
class RawCounts:
    """What a simulator counted over one pass of a workload."""

    cycles: int
    clock_mhz: float
    useful_macs: int  # MACs on kept weights: the work a sparse engine must do
    issued_macs: int  # MAC slots the datapath spent (useful or not): what costs energy
    peak_macs_per_cycle: int
    bytes_read: int  # off-chip
    bytes_written: int  # off-chip
    onchip_bytes: int  # on-chip buffer reads and writes
    peak_bytes_per_cycle: int  # off-chip
    breakdown: dict[str, int] = field(default_factory=dict)  # cycles by operator or pass
    stalls: dict[str, int] = field(default_factory=dict)  # cycles by stall cause
    counts: dict[str, int] = field(default_factory=dict)  # further engine-specific counts
    items: int | None = None  # work items per pass (tokens, queries, samples), if any
    item: str = "item"  # their name, singular: metrics become "<item>s_per_s", ...


@dataclass(frozen=True)
class Result:
    """Derived metrics of one design point plus its breakdowns; ``to_dict`` is its result row."""

    metrics: dict[str, Any]
    breakdown: dict[str, int]
    stalls: dict[str, int]

    def __getitem__(self, name: str) -> Any:
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        row = dict(self.metrics)
        row.update({f"{STALL_PREFIX}{k}": v for k, v in self.stalls.items()})
        row.update({f"{BREAKDOWN_PREFIX}{k}": v for k, v in self.breakdown.items()})
        return row


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def derive(raw: RawCounts, energy: EnergyTable) -> Result:
    """The shared metrics of ``raw`` (see the module docstring), costed with ``energy``."""
    hz = raw.clock_mhz * 1e6
    seconds = raw.cycles / hz
    offchip = raw.bytes_read + raw.bytes_written
    peak_bw = raw.peak_bytes_per_cycle * hz / 1e9
    m: dict[str, Any] = {
        "cycles": raw.cycles,
        "seconds": seconds,
        "latency_ms": seconds * 1e3,
        "bytes_read": raw.bytes_read,
        "bytes_written": raw.bytes_written,
        "useful_macs": raw.useful_macs,
        "mac_utilisation": _ratio(raw.useful_macs, raw.peak_macs_per_cycle * raw.cycles),
        "bandwidth_gbps": _ratio(offchip, seconds) / 1e9,
        "bandwidth_utilisation": _ratio(offchip, raw.peak_bytes_per_cycle * raw.cycles),
        # Roofline: 2 operations per useful MAC, against off-chip bytes.
        "arithmetic_intensity": _ratio(2 * raw.useful_macs, offchip),
        "gops": _ratio(2 * raw.useful_macs, seconds) / 1e9,
        "peak_gops": 2 * raw.peak_macs_per_cycle * hz / 1e9,
        "peak_bandwidth_gbps": peak_bw,
    }
    m.update(raw.counts)
    m.update(energy_joules(energy, macs=raw.issued_macs, onchip_bytes=raw.onchip_bytes,
                           offchip_bytes=offchip, seconds=seconds))
    if raw.items:
        m[f"{raw.item}s_per_s"] = raw.items / seconds
        m[f"energy_per_{raw.item}_j"] = m["energy_j"] / raw.items
        m[f"{raw.item}s_per_joule"] = _ratio(raw.items, m["energy_j"])
    return Result(metrics=m, breakdown=dict(raw.breakdown), stalls=dict(raw.stalls))


def shared_metrics(item: str | None = None) -> tuple[Metric, ...]:
    """Declarations of the metrics :func:`derive` produces, for an engine to list among its
    own; ``item`` adds the per-item rates."""
    out = [
        Metric("cycles", "cycles", "min", "cycles"),
        Metric("seconds", "s", "min", "time per pass"),
        Metric("latency_ms", "ms", "min", "latency per pass"),
        Metric("mac_utilisation", "fraction", "max", "MAC utilisation"),
        Metric("bandwidth_gbps", "GB/s", "max", "achieved memory bandwidth"),
        Metric("bandwidth_utilisation", "fraction", "max", "memory bandwidth utilisation"),
        Metric("bytes_read", "B", "min", "off-chip bytes read"),
        Metric("bytes_written", "B", "min", "off-chip bytes written"),
        Metric("useful_macs", "MACs", "min", "useful MACs"),
        # Operations count 2 per useful MAC.
        Metric("arithmetic_intensity", "ops per off-chip byte", "max", "arithmetic intensity"),
        Metric("gops", "GOPS", "max", "achieved performance"),
        Metric("peak_gops", "GOPS", "max", "peak performance"),
        Metric("peak_bandwidth_gbps", "GB/s", "max", "peak memory bandwidth"),
        Metric("energy_j", "J", "min", "energy per pass"),
        Metric("energy_mac_j", "J", "min", "MAC energy per pass"),
        Metric("energy_onchip_j", "J", "min", "on-chip buffer energy per pass"),
        Metric("energy_offchip_j", "J", "min", "off-chip memory energy per pass"),
        Metric("energy_static_j", "J", "min", "static energy per pass"),
    ]
    if item:
        out += [
            Metric(f"{item}s_per_s", f"{item}s/s", "max", "throughput"),
            Metric(f"energy_per_{item}_j", "J", "min", f"energy per {item}"),
            Metric(f"{item}s_per_joule", f"{item}s/J", "max", f"{item}s per joule"),
        ]
    return tuple(out)
