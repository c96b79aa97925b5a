"""FPGA device budgets (``hardware.device``), shared by every engine.

Numbers come from ../shared/REFERENCE.md. Hardware presets belong to engines
(``Engine.presets``, declared in each engine's own files).
"""

from __future__ import annotations

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
    # Arria 10 GX1150 (HARPv2): 1,518 DSP blocks, 427,200 ALMs, 1,708,800 registers, 2,713
    # M20K. In the UltraScale+ names: an ALM counted as two LUTs, the M20K bits (54.3 Mb) as
    # BRAM36 equivalents; no URAM.
    "arria10_gx1150": Device("arria10_gx1150", dsp=1518, lut=854_400, ff=1_708_800, bram36=1507, uram=0),
}


def over_budget(resources: dict[str, float], device: str | None) -> list[str]:
    """Names of the resources in ``resources`` that exceed ``device``'s capacity (none without
    a device)."""
    if device is None:
        return []
    budget = DEVICES[device]
    return [name for name, count in resources.items()
            if hasattr(budget, name) and count > getattr(budget, name)]
