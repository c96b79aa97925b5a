"""FPGA resource estimates (DSP48E2, LUT, FF, BRAM36, URAM) of a dsp_chain design point.

The model counts what the RTL in rtl/dsp_chain.py instantiates, component by component: one
DSP48E2 per slot, memories mapped as Yosys maps them (LUTRAM, RAMB18/36, URAM), and logic LUTs
and FFs from the mux, cascade and skew-register sizes with coefficients fitted to Yosys
``synth_xilinx`` runs of the generated RTL. tests/test_resources.py re-synthesises calibration
points and holds the model to ``TOLERANCE``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from dataflow.dsp_chain import DspChainHardware
from dataflow import presets

#: Memories at least this many bits go to URAM288 (72 bits × 4096 rows); not calibrated
#: (synthesis of such large designs is too slow for the calibration set).
URAM_THRESHOLD_BITS = 512 * 1024
#: (rows, bits) aspect ratios of a RAMB36E2 and a RAMB18E2 (which counts as half a BRAM36).
_BRAM36_SHAPES = ((512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2), (32768, 1))
_BRAM18_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


@dataclass(frozen=True)
class Resources:
    dsp: int
    lut: int
    ff: int
    bram36: float  # RAMB18E2 count as half
    uram: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class MemoryCost:
    lutram_luts: int = 0
    bram36: float = 0.0
    uram: int = 0


def memory_cost(width_bits: int, depth: int, copies: int = 1) -> MemoryCost:
    """How Yosys maps a ``width_bits`` × ``depth`` memory with one read port per copy.

    Up to 32 rows: RAM32M16 (14 bits per 8 LUTs); up to 64 rows: RAM64M8 (7 bits per 8 LUTs);
    larger: the cheapest RAMB18E2/RAMB36E2 aspect ratio, or URAM288 above
    ``URAM_THRESHOLD_BITS``. Each read port gets its own copy.
    """
    if depth <= 32:
        return MemoryCost(lutram_luts=copies * 8 * math.ceil(width_bits / 14))
    if depth <= 64:
        return MemoryCost(lutram_luts=copies * 8 * math.ceil(width_bits / 7))
    if width_bits * depth >= URAM_THRESHOLD_BITS:
        return MemoryCost(uram=copies * math.ceil(width_bits / 72) * math.ceil(depth / 4096))
    best = min(
        [math.ceil(depth / d) * math.ceil(width_bits / w) for d, w in _BRAM36_SHAPES]
        + [0.5 * math.ceil(depth / d) * math.ceil(width_bits / w) for d, w in _BRAM18_SHAPES]
    )
    return MemoryCost(bram36=copies * best)


#: Logic LUTs = LUT_BASE + LUT_PER_MUX_BIT × mux bits + LUT_PER_CASCADE_BIT × cascade bits;
#: FFs = FF_BASE + FF_PER_CASCADE_BIT × cascade bits + FF_PER_SKEW_BIT × skew bits.
#: Least-squares fit to Yosys synth_xilinx of 7 design points
#: (benchmarks/calibrate_resources.py): largest error 9.4 % (LUT) and 10.3 % (FF) on those
#: points, 20 % and 22 % when each point is left out of the fit.
LUT_BASE, LUT_PER_MUX_BIT, LUT_PER_CASCADE_BIT = 540.0, 3.10, 0.80
FF_BASE, FF_PER_CASCADE_BIT, FF_PER_SKEW_BIT = 688.0, 1.12, 1.90
#: Tolerance the calibration test holds the LUT and FF estimates to (DSP, LUTRAM and BRAM
#: counts are exact on the calibration points).
TOLERANCE = 0.15


def estimate(hw: DspChainHardware) -> Resources:
    """Resources of ``hw``'s RTL, component by component (see the module docstring)."""
    P, L, M, lanes = hw.chains, hw.chain_len, hw.mux_m, hw.lanes
    slots = P * L
    # One DSP48E2 per slot: with two lanes both products come from one packed multiplier.
    dsp = slots
    # Per slot and lane an M:1 mux of 8-bit activations (about M/4 LUT6 per bit).
    mux_bits = slots * lanes * 8 * max(M / 4, 0.5)
    # Cascade partial sums (PCOUT) and accumulators, acc_bits wide per slot and lane.
    cascade_bits = slots * lanes * hw.acc_bits
    # Slot j's 16-bit product waits j registers: L(L-1)/2 per chain and lane.
    skew_bits = P * lanes * 16 * L * (L - 1) // 2
    memories = [
        memory_cost(slots * (8 + hw.index_bits), hw.weight_bank_depth, copies=2),
        memory_cost(lanes * M * 8, 2 * hw.act_depth, copies=hw.act_ports),
        memory_cost(P * lanes * hw.acc_bits, hw.out_bank_depth, copies=2),
    ]
    lut = LUT_BASE + LUT_PER_MUX_BIT * mux_bits + LUT_PER_CASCADE_BIT * cascade_bits
    lut += sum(m.lutram_luts for m in memories)
    ff = FF_BASE + FF_PER_CASCADE_BIT * cascade_bits + FF_PER_SKEW_BIT * skew_bits
    return Resources(
        dsp=dsp,
        lut=int(round(lut)),
        ff=int(round(ff)),
        bram36=sum(m.bram36 for m in memories),
        uram=sum(m.uram for m in memories),
    )


def over_budget(res: Resources, device: str | None) -> list[str]:
    """Names of the resources that exceed ``device``'s capacity (empty if none or no device)."""
    return presets.over_budget(res.to_dict(), device)
