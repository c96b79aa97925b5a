"""Hardware and device presets.

Numbers for real platforms come from ../shared/REFERENCE.md. ``tiny`` is small enough to build
and simulate under Verilator in seconds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    """Resource budget of an FPGA device."""

    name: str
    dsp: int
    lut: int
    ff: int
    bram36: int
    uram: int


DEVICES: dict[str, Device] = {
    # Alveo U280 (XCU280): 9,024 DSP48E2, 2,016 BRAM36, 960 URAM.
    "u280": Device("u280", dsp=9024, lut=1_303_680, ff=2_607_360, bram36=2016, uram=960),
    # VCU1525 / XCVU9P: 6,840 DSP48E2, 2,160 BRAM36, 960 URAM.
    "vu9p": Device("vu9p", dsp=6840, lut=1_182_240, ff=2_364_480, bram36=2160, uram=960),
}

# U280 HBM2 at the FlightLLM clock: 460 GB/s / 225 MHz ≈ 2,044 bytes per cycle, i.e. 32
# pseudo-channels × 64 bytes per cycle (2,048 B/cycle ≈ 461 GB/s).
_U280 = {
    "device": "u280",
    "clock_mhz": 225.0,
    # 160 chains × 16 slots: the widest chain array whose double-buffered weight banks
    # (P·L·12 bits wide) fit the U280's 960 URAMs (see simulator/resources.py).
    "chains": 160,
    "chain_len": 16,
    "mux_m": 16,
    "min_n": 2,
    "lanes": 2,
    "acc_bits": 32,
    "weight_buffer_kib": 7680,
    "act_buffer_kib": 256,
    "out_buffer_kib": 128,
    "memory": {"channels": 32, "bytes_per_cycle": 64, "latency_cycles": 64},
}

_TINY = {
    "device": None,
    "clock_mhz": 100.0,
    "chains": 2,
    "chain_len": 4,
    "mux_m": 8,
    "min_n": 2,
    "lanes": 1,
    "acc_bits": 32,
    "weight_buffer_kib": 1,
    "act_buffer_kib": 1,
    "out_buffer_kib": 0.5,
    "memory": {"channels": 2, "bytes_per_cycle": 4, "latency_cycles": 6},
}

HARDWARE: dict[str, dict] = {"u280": _U280, "tiny": _TINY}


def hardware(name: str) -> dict:
    """A fresh copy of a hardware preset's values."""
    return copy.deepcopy(HARDWARE[name])
