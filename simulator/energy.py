"""Energy per design point from a per-event table.

Energy of one pass = MACs × ``mac_pj`` + on-chip buffer bytes × ``onchip_byte_pj`` + off-chip
bytes × ``offchip_byte_pj`` + ``static_w`` × time. The defaults are order-of-magnitude figures
*(assumed)*: an INT8 MAC in a DSP48E2 with its routing ~1 pJ, a BRAM/URAM access ~0.6 pJ per
byte, HBM2 ~3.9 pJ/bit (31 pJ per byte), ~20 W static power of a U280 card. Override any of
them in a design point's ``energy:`` mapping; every result row records the table it used.
"""

from __future__ import annotations

from sparsim.dataflow.config import EnergyTable


def energy_joules(table: EnergyTable, *, macs: int, onchip_bytes: int, offchip_bytes: int,
                  seconds: float) -> dict[str, float]:
    parts = {
        "energy_mac_j": macs * table.mac_pj * 1e-12,
        "energy_onchip_j": onchip_bytes * table.onchip_byte_pj * 1e-12,
        "energy_offchip_j": offchip_bytes * table.offchip_byte_pj * 1e-12,
        "energy_static_j": table.static_w * seconds,
    }
    parts["energy_j"] = sum(parts.values())
    return parts
