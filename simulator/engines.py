"""Engine registry: what the sweep runner needs from an engine, and nothing sweep-specific.

An engine contributes its config schema (in dataflow.config), its compiler and simulator, and a
resource estimate. ``evaluate`` turns one design point into one flat row of metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from dataflow.config import ConfigError, DesignPoint


@dataclass(frozen=True)
class Engine:
    name: str
    simulate: Callable[[DesignPoint], Any]  # -> Result with .to_dict()
    resources: Callable[[Any], Any]  # hardware -> Resources with .to_dict()
    over_budget: Callable[[Any, str | None], list[str]]


def _dsp_chain() -> Engine:
    from simulator import dsp_chain, resources

    return Engine("dsp_chain", dsp_chain.simulate, resources.estimate, resources.over_budget)


_FACTORIES: dict[str, Callable[[], Engine]] = {"dsp_chain": _dsp_chain}
_CACHE: dict[str, Engine] = {}


def engine(name: str) -> Engine:
    if name not in _CACHE:
        _CACHE[name] = _FACTORIES[name]()
    return _CACHE[name]


#: Metrics every row has (objectives and constraints may name these and any resource).
METRICS = (
    "cycles", "seconds", "latency_ms", "tokens_per_s", "mac_utilisation", "bandwidth_gbps",
    "bandwidth_utilisation", "bytes_read", "bytes_written", "useful_macs", "energy_j",
    "energy_per_token_j", "tokens_per_joule", "arithmetic_intensity", "gops",
    "dsp", "lut", "ff", "bram36", "uram",
)


def pre_check(point: DesignPoint) -> tuple[dict[str, Any], str]:
    """Resource estimate and, if the point exceeds its device, the reason (else '')."""
    eng = engine(point.hardware.engine)
    res = eng.resources(point.hardware)
    row = res.to_dict()
    over = eng.over_budget(res, point.hardware.device)
    reason = ""
    if over:
        reason = "over the device budget: " + ", ".join(
            f"{name} {row[name]:,}" for name in over
        ) + f" on {point.hardware.device}"
    return row, reason


def evaluate(point: DesignPoint) -> dict[str, Any]:
    """Simulate one feasible point; returns a flat row of metrics (ConfigError if unmappable)."""
    eng = engine(point.hardware.engine)
    return eng.simulate(point).to_dict()
