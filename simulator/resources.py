"""FPGA resource estimates (DSP48E2, LUT, FF, BRAM36, URAM) of a dsp_chain design point.

The model counts what the RTL in rtl/dsp_chain.py instantiates, component by component; its
coefficients are calibrated against Yosys ``synth_xilinx`` runs of generated RTL
(tests/test_resources.py states the tolerance and checks it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from dataflow.config import DspChainHardware
from dataflow.presets import DEVICES

BRAM36_BITS = 36 * 1024
URAM_BITS = 288 * 1024
#: Memories at least this many bits go to URAM (72 bits × 4096 rows), smaller ones to BRAM36.
URAM_THRESHOLD_BITS = 512 * 1024


@dataclass(frozen=True)
class Resources:
    dsp: int
    lut: int
    ff: int
    bram36: int
    uram: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _memory_blocks(width_bits: int, depth: int, copies: int = 1) -> tuple[int, int]:
    """(BRAM36, URAM) for a ``width_bits`` × ``depth`` memory, replicated ``copies`` times."""
    bits = width_bits * depth
    if bits >= URAM_THRESHOLD_BITS:
        return 0, copies * math.ceil(width_bits / 72) * math.ceil(depth / 4096)
    # BRAM36 as 72 × 512 (or deeper and narrower when the memory is narrow).
    if width_bits <= 36:
        per = math.ceil(depth / (BRAM36_BITS // max(1, width_bits)))
        return copies * max(1, per), 0
    return copies * math.ceil(width_bits / 72) * math.ceil(depth / 512), 0


def estimate(hw: DspChainHardware) -> Resources:
    P, L, M, lanes = hw.chains, hw.chain_len, hw.mux_m, hw.lanes
    slots = P * L
    # One DSP48E2 per slot: with two lanes both products come from one packed multiplier.
    dsp = slots
    # Per slot and lane: an M:1 mux of 8-bit activations (M/4 LUT6 per bit for M >= 4) plus
    # the port-select mux; cascade adders at acc_bits in fabric where not absorbed by the DSP.
    mux_luts = slots * lanes * 8 * max(1, M // 4) * (1 + (hw.act_ports > 1))
    adder_luts = slots * lanes * hw.acc_bits
    control_luts = 600 + 40 * P
    lut = mux_luts + adder_luts + control_luts
    # Skew registers (product delayed j cycles in slot j), cascade and accumulator registers.
    skew_ff = P * lanes * 16 * L * (L - 1) // 2
    cascade_ff = slots * lanes * hw.acc_bits
    ff = skew_ff + cascade_ff + P * lanes * hw.acc_bits + 400
    w_bits = slots * (8 + hw.index_bits)
    b1, u1 = _memory_blocks(w_bits, hw.weight_bank_depth, copies=2)
    b2, u2 = _memory_blocks(lanes * M * 8, hw.act_depth, copies=hw.act_ports)
    b3, u3 = _memory_blocks(P * lanes * hw.acc_bits, hw.out_bank_depth, copies=2)
    return Resources(dsp=dsp, lut=lut, ff=ff, bram36=b1 + b2 + b3, uram=u1 + u2 + u3)


def over_budget(res: Resources, device: str | None) -> list[str]:
    """Names of the resources that exceed ``device``'s capacity (empty if none or no device)."""
    if device is None:
        return []
    dev = DEVICES[device]
    return [name for name in ("dsp", "lut", "ff", "bram36", "uram") if getattr(res, name) > getattr(dev, name)]
