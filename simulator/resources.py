"""FPGA resource estimates (DSP48E2, LUT, FF, BRAM36, URAM) of a dsp_chain design point.

The model counts what Yosys ``synth_xilinx -family xcup`` makes of the RTL in rtl/dsp_chain.py,
primitive by primitive (:func:`features`): one DSP48E2 per slot; memories mapped as Yosys maps
them (LUTRAM, RAMB18/36, URAM); one FF per register bit that stays a flip-flop (Yosys packs no
register into a DSP48E2, so the slots' pipeline registers are fabric FFs) and one LUT per
SRL16E delay line; one LUT per LUT6 of the muxes and per bit of the fabric adders. Only the
constants for the control logic (LUT_BASE, FF_BASE) are fitted.

Calibrated range: benchmarks/resource_calibration.json records Yosys's counts for 9 points from
8 to 512 DSPs (6 of them with 128 to 512: one and two lanes, M = 4 to 16, L = 4 to 16), all
synthesised from the current RTL (tests/test_resources.py checks the smallest one's Verilog
hash). On those points DSP, BRAM36 and URAM are exact; LUTs are within 8.1 % (the two-lane
M = 8, L = 8 point over by 8.1 %, the rest within 4.7 %) and FFs within 2.1 %; leaving one
point out of the fit of the two constants gives at most 11.7 % (LUT) and 5.9 % (FF). The FF
terms were checked register by register against the netlists of small points of the same
shapes. Above 512 DSPs the estimate extrapolates: the terms grow with slots, chains and memory
sizes as the RTL does, but no synthesis of such a point has checked them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from sparsim.dataflow.dsp_chain import DspChainHardware
from sparsim.dataflow import presets

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
    #: Read-port register bits that stay fabric FFs (see :func:`memory_cost`).
    read_ffs: int = 0


def memory_cost(width_bits: int, depth: int, copies: int = 1, *, output_register: bool = False,
                transparent: bool = False, shared_ports: bool = False) -> MemoryCost:
    """How Yosys maps a ``width_bits`` × ``depth`` memory with one read port per copy, whose
    read data is registered once more if ``output_register``.

    Up to 32 rows: RAM32M16 (14 bits per 8 LUTs); up to 64 rows: RAM64M8 (7 bits per 8 LUTs);
    larger: the cheapest RAMB18E2/RAMB36E2 aspect ratio, or URAM288 above
    ``URAM_THRESHOLD_BITS``. Each read port gets its own copy.

    Read registers that stay fabric FFs, as the calibration netlists show them: distributed RAM
    reads asynchronously, so each port's read register is fabric FFs, holding the data, or only
    the address when the port is ``transparent`` to the write port; the ``output_register``
    behind it adds the data width. A block RAM holds the read register inside, but Yosys
    leaves the ``output_register`` in the fabric, on every copy except one when the copies are
    read ports of one memory (``shared_ports``; measured, cause not identified). URAM is
    assumed to behave as block RAM (not calibrated).
    """
    if depth <= 64:
        read_reg = max(1, (depth - 1).bit_length()) if transparent else width_bits
        read_ffs = copies * (read_reg + width_bits * output_register)
        per_8_luts = 14 if depth <= 32 else 7
        return MemoryCost(lutram_luts=copies * 8 * math.ceil(width_bits / per_8_luts), read_ffs=read_ffs)
    block_ffs = (copies - shared_ports) * width_bits * output_register
    if width_bits * depth >= URAM_THRESHOLD_BITS:
        return MemoryCost(uram=copies * math.ceil(width_bits / 72) * math.ceil(depth / 4096), read_ffs=block_ffs)
    best = min(
        [math.ceil(depth / d) * math.ceil(width_bits / w) for d, w in _BRAM36_SHAPES]
        + [0.5 * math.ceil(depth / d) * math.ceil(width_bits / w) for d, w in _BRAM18_SHAPES]
    )
    return MemoryCost(bram36=copies * best, read_ffs=block_ffs)


#: Longest cascade segment (rtl/dsp_chain.py) and the shortest chain of plain FFs that Yosys's
#: ``shregmap -tech xilinx`` turns into an SRL.
_CASCADE_SLOTS = 8
_SRL_MIN_FFS = 3
def _mux_luts(choices: int) -> int:
    """LUT6 per bit of a ``choices``:1 mux: a LUT6 takes a 4:1 mux, and Yosys's mapping builds
    wider ones as a tree of them (8:1 = two 4:1 and a 2:1, 16:1 = five 4:1), without MUXF7/F8."""
    if choices <= 1:
        return 0
    if choices <= 4:
        return 1
    first = -(-choices // 4)
    return first + _mux_luts(first)


def features(hw: DspChainHardware) -> dict[str, float]:
    """Physical counts of the RTL of ``hw`` (rtl/dsp_chain.py), from its signal widths.

    - ``ff_bits``: register bits that stay flip-flops: the memories' read registers that stay
      in the fabric (:func:`memory_cost`), the decoded weights and slot rows, the mux, product and cascade registers (fabric FFs: Yosys packs no
      register into a DSP48E2), lane sums, accumulators and the control beside them; a
      delay-line bit is one FF unless its chain is long enough to become an SRL.
    - ``srl_luts``: delay-line bits that Yosys maps to SRL16E: one LUT each (at most 9 deep).
    - ``logic_luts``: LUT6 of the muxes: M:1 activation mux per slot, lane and bit; the
      port:1 row select per slot and bit; bank and INT4/INT8 record decode per weight bit; the
      store's output-bank select per output-row bit.
    - ``adder_bits``: fabric adder bits (a LUT and a carry bit each): cascade and bias adds,
      lane packing, lane split, segment sums, accumulators, implicit indices.
    - ``lutram_luts``: distributed RAM (memory_cost); ``fixed_*``: terms taken at face value.
    """
    P, L, M, lanes = hw.chains, hw.chain_len, hw.mux_m, hw.lanes
    ib = hw.index_bits
    S = min(L, _CASCADE_SLOTS)
    nseg = L // S
    act_bits = lanes * M * 8
    # Distinct bits of the multiplier's activation operand: the packed a1·2^18 + a0 repeats
    # a0's sign in bits 8..17, and Yosys merges flip-flops that always hold the same value.
    op_bits = 8 if lanes == 1 else 17
    product_bits = 16 if lanes == 1 else 35
    sum_bits = 16 + S.bit_length() - 1 + 1
    cascade_bits = sum_bits if lanes == 1 else 18 + sum_bits + 1
    lane_sum_bits = sum_bits + nseg.bit_length() - 1 + 1
    ports = hw.act_ports
    # Delay lines: slot j' of a segment holds its weight and operand j' cycles. The weight
    # chain starts at the decoded-weight register (j' + 2 FFs), the operand's at the mux
    # register (j' + 1): chains of _SRL_MIN_FFS or more become one SRL per bit.
    delay_ff = srl = 0
    for jj in range(S):
        for width, chain in ((8, jj + 2), (op_bits, jj + 1)):
            if chain >= _SRL_MIN_FFS:
                srl += width
            else:
                delay_ff += width * chain
    delay_ff, srl = P * nseg * delay_ff, P * nseg * srl
    slot_rows = act_bits * (1 if ports == 1 else L)  # identical rows merge when there is one port
    ff_bits = (
        slot_rows
        + P * L * ib  # decoded indices (the decoded weights head the delay lines)
        + delay_ff
        + P * L * (product_bits + cascade_bits)  # product and cascade registers
        + P * lanes * (lane_sum_bits + hw.acc_bits)
        + 3 * (S + 3)  # valid/first/last beside a chain: the same in every chain, so Yosys keeps one
    )
    # Row select: slot j picks port j >> n_log2; the RTL decodes every value of the 4-bit
    # n_log2, and an index past the last port reads the last one.
    row_select_luts = sum(_mux_luts(len({min(j >> n, ports - 1) for n in range(16)})) for j in range(L))
    logic_luts = (P * L * lanes * 8 * _mux_luts(M) + act_bits * row_select_luts
                  + P * L * (8 + ib)
                  + P * lanes * hw.acc_bits)  # the store's choice of output bank, per row bit
    adder_bits = P * (
        nseg * (S - (lanes == 1)) * cascade_bits
        + L * ib
        + (L * 9 + nseg * 18 if lanes == 2 else 0)
        + lanes * ((nseg - 1) * lane_sum_bits + hw.acc_bits)
    )
    memories = [
        # The weight banks' and activation ports' read data is registered again (cycle c+1).
        memory_cost(hw.max_weight_record_bytes * 8, hw.weight_bank_depth, copies=2, output_register=True),
        memory_cost(act_bits, 2 * hw.act_depth, copies=ports, output_register=True, shared_ports=True),
        # The store reads an output bank while the accumulators write it (transparent port).
        memory_cost(P * lanes * hw.acc_bits, hw.out_bank_depth, copies=2, transparent=True),
    ]
    lutram = sum(m.lutram_luts for m in memories)
    return {
        "ff_bits": ff_bits + sum(m.read_ffs for m in memories),
        "srl_luts": srl,
        "logic_luts": logic_luts,
        "adder_bits": adder_bits,
        "lutram_luts": lutram,
        "bram36": sum(m.bram36 for m in memories),
        "uram": sum(m.uram for m in memories),
        "fixed_lut": srl + lutram,
        "fixed_ff": 0,
    }


#: LUT = LUT_BASE + Σ coefficient × feature (LUT_TERMS) + SRL and LUTRAM LUTs;
#: FF = FF_BASE + Σ coefficient × feature (FF_TERMS). Fitted by benchmarks/calibrate_resources.py
#: to Yosys synth_xilinx of the points in benchmarks/resource_calibration.json.
LUT_TERMS = {"logic_luts": 1.0, "adder_bits": 1.0}
FF_TERMS = {"ff_bits": 1.0}
LUT_BASE, FF_BASE = 529.0, 845.0
#: Relative LUT / FF error that tests/test_resources.py holds the model to on every calibration
#: point (largest measured: LUT +8.1 % on p32l8m8x2, FF +2.1 % on p64l4m4x1).
TOLERANCE = {"lut": 0.10, "ff": 0.05}
#: Smallest and largest DSP count among the calibration points.
CALIBRATED_DSPS = (8, 512)


def estimate(hw: DspChainHardware) -> Resources:
    """Resources of ``hw``'s RTL, component by component (see the module docstring)."""
    f = features(hw)
    lut = LUT_BASE + sum(c * f[name] for name, c in LUT_TERMS.items()) + f["fixed_lut"]
    ff = FF_BASE + sum(c * f[name] for name, c in FF_TERMS.items()) + f["fixed_ff"]
    return Resources(
        # One DSP48E2 per slot: with two lanes both products come from one packed multiplier.
        dsp=hw.chains * hw.chain_len,
        lut=int(round(lut)),
        ff=int(round(ff)),
        bram36=f["bram36"],
        uram=f["uram"],
    )


def over_budget(res: Resources, device: str | None) -> list[str]:
    """Names of the resources that exceed ``device``'s capacity (empty if none or no device)."""
    return presets.over_budget(res.to_dict(), device)
