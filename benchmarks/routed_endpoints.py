"""Every register's routed arrival after ECP5 place and route, ranked: what stands between a
design and a clock period, not only the one path nextpnr names.

``sparsim synth`` (and ``pnr_spread.py``) run nextpnr with ``--detailed-timing-report``, which
adds each timed endpoint's arrival (clock-to-out, logic and the routing actually found, the
same sum as the critical path's) to ``report.json``. This groups those endpoints by register
(the flip-flop's signal name from the packed netlist beside the report, digits as ``#``) and
prints how many of each group arrive after ``--period`` ns (default 6.67 ns, 150 MHz), the
groups worst first, optionally per unit, and the critical path hop by hop with each net's
loads (the cell inputs it drives), which is where routing delay comes from on a full device.
Where ``ecp5_endpoints.py`` estimates depth before placement, this is the routed truth of one
placement (one seed: paths near the top move between seeds).

    .venv/bin/python benchmarks/routed_endpoints.py build/pnr/<folder>[/spread/heap_s2_g6]
        [--period 6.67] [--top 40] [--units 1 [--by-prefix]] [--netlist ecp5_packed.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ecp5_endpoints import Netlist, print_units  # noqa: E402

#: nextpnr splits a carry cell and a LUT RAM into slice parts named after the Yosys cell.
_PART = re.compile(r"\$(CCU2_COMB|DPRAM_COMB|RAMW_SLICE)\d*$")


def find_files(target: Path, netlist: str | None) -> tuple[Path, Path | None]:
    """The report and the packed netlist it was routed from (a ``spread/<run>`` folder's is two up)."""
    report = target / "report.json" if target.is_dir() else target
    if netlist:
        return report, Path(netlist)
    for folder in (report.parent, report.parent.parent.parent):
        if (folder / "ecp5_packed.json").exists():
            return report, folder / "ecp5_packed.json"
    return report, None


def endpoints(report: dict) -> list[tuple[float, str, str]]:
    """(routed arrival ns, cell, port) of every timed endpoint, latest first."""
    if "detailed_net_timings" not in report:
        raise ValueError("the report has no detailed_net_timings: nextpnr ran without --detailed-timing-report")
    ends = {}
    for net in report["detailed_net_timings"]:
        for e in net["endpoints"]:
            key = (e["cell"], e["port"])
            ends[key] = max(ends.get(key, 0.0), float(e["delay"][1]))
    return sorted(((a, c, p) for (c, p), a in ends.items()), reverse=True)


class Names:
    """Register names for nextpnr's cells: a flip-flop's output signal where the netlist gives one."""

    def __init__(self, net: Netlist | None):
        self.net = net

    def label(self, cell: str) -> str:
        base = _PART.sub("", cell)
        c = self.net.cells.get(base) if self.net else None
        if c is not None:
            if c["type"] == "TRELLIS_FF":
                return self.net.name.get(c["connections"]["Q"][0], base)
            return f"{c['type']} {base}"
        return f"LUT RAM {base}" if "$DPRAM" in cell else base

    @staticmethod
    def group(label: str) -> str:
        return re.sub(r"\d+", "#", re.sub(r"\[\d+\]$", "", re.sub(r"_TRELLIS_FF_Q.*", "", label)))


def net_loads(net: Netlist | None) -> dict[str, int]:
    """nextpnr's net name (a netlist name, ``name[i]`` for a vector's bit) -> its loads."""
    if net is None:
        return {}
    loads = {}
    for name, info in net.top["netnames"].items():
        bits = info["bits"]
        for i, b in enumerate(bits):
            if isinstance(b, int):
                loads[name if len(bits) == 1 else f"{name}[{i}]"] = net.fanout[b]
    return loads


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a build/pnr folder (or a spread run's) or its report.json")
    parser.add_argument("--netlist", help="the packed netlist the report was routed from (default: found beside it)")
    parser.add_argument("--period", type=float, default=round(1000 / 150, 2),
                        help="count endpoints arriving at or after this many ns (default 6.67: 150 MHz)")
    parser.add_argument("--top", type=int, default=40, help="register groups to print")
    parser.add_argument("--units", type=int, default=0, metavar="DEPTH",
                        help="also count per unit: the first DEPTH dotted components of the name (0: off)")
    parser.add_argument("--by-prefix", action="store_true",
                        help="with --units: split top-level names by their first word (up to '_')")
    args = parser.parse_args(argv)
    report_path, netlist_path = find_files(Path(args.target), args.netlist)
    if not report_path.exists():
        print(f"{report_path}: no report (run sparsim synth or pnr_spread.py first)", file=sys.stderr)
        return 2
    report = json.loads(report_path.read_text())
    try:
        ends = endpoints(report)
    except ValueError as e:
        print(f"{report_path}: {e}", file=sys.stderr)
        return 2
    net = Netlist(json.loads(netlist_path.read_text()), 0.9) if netlist_path and netlist_path.exists() else None
    names = Names(net)
    fmax = {k: round(v["achieved"], 2) for k, v in report.get("fmax", {}).items()}
    late = [e for e in ends if e[0] >= args.period]
    hist = collections.Counter(int(a) for a, _, _ in ends)
    print(f"{report_path}: Fmax {fmax}; {len(ends)} endpoints, {len(late)} at or after {args.period} ns "
          f"({1000 / args.period:.0f} MHz); per whole ns of routed arrival: "
          + ", ".join(f"{ns}: {hist[ns]}" for ns in sorted(hist, reverse=True)))
    ranks = [r for r in (10, 100, 1000, 10000) if r < len(ends)]
    print("the period with the N latest endpoints made fast (each one's own arrival only: their paths "
          "share logic, so a bound on what fixing them alone gives): "
          + ", ".join(f"{r}: {ends[r][0]:.2f} ns ({1000 / ends[r][0]:.1f} MHz)" for r in ranks))
    groups = collections.defaultdict(list)
    for a, cell, port in ends:
        groups[names.group(names.label(cell))].append((a, port))
    print(f"{'max ns':>7} {'late':>6} {'ends':>6}  {'port':<5} register group")
    ranked = sorted(((max(v)[0], sum(a >= args.period for a, _ in v), len(v), max(v)[1], g)
                     for g, v in groups.items()), reverse=True)
    for worst, n_late, n, port, g in ranked[: args.top]:
        print(f"{worst:7.2f} {n_late:6d} {n:6d}  {port:<5} {g}")
    if args.units > 0:
        print_units(((a, names.label(cell)) for a, cell, _ in ends), args.units, args.by_prefix, args.period,
                    f"per unit: endpoints at or after {args.period} ns of all endpoints")
    loads = net_loads(net)
    for cp in report.get("critical_paths", [])[:1]:
        print("critical path (ns, kind, loads of the net, to cell):")
        t = 0.0
        for hop in cp["path"]:
            t += hop["delay"]
            n = loads.get(hop.get("net", ""), "") if hop["type"] == "routing" else ""
            print(f"  {t:6.2f} {hop['delay']:5.2f} {hop['type']:<8} {n!s:>5}  {hop['to']['cell'][:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
