"""Which registers of a design end long paths on ECP5, before placement: a logic-depth estimate
per endpoint of the packed ``synth_ecp5`` netlist that ``sparsim synth`` keeps in its
place-and-route folder, grouped by the register's signal name.

nextpnr's report names one critical path; its slack histogram counts endpoints without naming
them. This reads the netlist nextpnr was given (``ecp5_packed.json``) and gives every flip-flop
(D, CE and LSR inputs), block RAM input, LUT RAM write input and registered multiplier input an arrival time from a
fixed delay per cell plus ``--route`` ns of routing per LUT or carry entry (carry chains cost
``0.1`` ns per cell inside the chain; an unregistered block RAM read 4.3 ns, a registered one
1.0 ns; an unregistered MULT18X18D 3.9 ns; a LUT RAM read 1.5 ns from its read address, its
write inputs being endpoints). It is an estimate of logic depth, not a timing
analysis: routing on a full device varies far more than one constant per hop. It ranks the
groups of registers behind the slack histogram's wall; ``--trace NAME`` prints the deepest path
into the first register whose name starts with NAME.

    .venv/bin/python benchmarks/ecp5_endpoints.py --config examples/nm_train_mid_ecp5.yaml
        [--netlist build/pnr/<hash>/ecp5_packed.json] [--over 12] [--top 40] [--trace rank_mag]
        [--units 1 [--by-prefix]] [--fanout 30]

``--trace`` gives each hop's loads (the cell inputs its net drives) beside its arrival, and
``--fanout N`` lists the registers with the most loads: on a full device a net's routing grows
with its loads and their spread, which the fixed delay per hop does not see (nm tiny at da3105a:
a 7-level path with 19.78 of its 21.98 ns in routing). For routed arrivals of every endpoint
see ``routed_endpoints.py``.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

#: Logic delay per cell type (ns), before the routing hop in front of it.
CELL_NS = {"LUT4": 0.45, "CCU2C": 0.45, "PFUMX": 0.25, "L6MUX21": 0.25, "TRELLIS_DPR16X4": 1.5}
#: Cells reached inside a slice (no routing hop in front of them).
IN_SLICE = {"PFUMX", "L6MUX21"}


def _registered(cell, key):
    return str(cell["parameters"].get(key, "NONE")) not in ("NONE", "")


class Netlist:
    def __init__(self, design: dict, route_ns: float):
        self.top = next(m for m in design["modules"].values() if m.get("attributes", {}).get("top"))
        self.cells = self.top["cells"]
        self.route = route_ns
        self.driver = {}
        for name, c in self.cells.items():
            for port, direction in c["port_directions"].items():
                if direction == "output":
                    for bit in c["connections"][port]:
                        if isinstance(bit, int):
                            self.driver[bit] = (name, port)
        # each bit's shortest visible net name: the RTL signal it carries
        self.name = {}
        for net, info in self.top["netnames"].items():
            if net.startswith("$") or info.get("hide_name"):
                continue
            for i, bit in enumerate(info["bits"]):
                if isinstance(bit, int) and (bit not in self.name or len(net) < len(self.name[bit].split("[")[0])):
                    self.name[bit] = f"{net}[{i}]"
        self.arrival: dict[int, float] = {}
        # each bit's loads: the cell inputs it drives (the fan-out routing has to reach)
        self.fanout = collections.Counter(
            b for c in self.cells.values() for p, d in c["port_directions"].items()
            if d == "input" for b in c["connections"][p] if isinstance(b, int))

    def _inputs(self, cell, ports=None):
        return [b for p, d in cell["port_directions"].items()
                if d == "input" and (ports is None or p in ports) for b in cell["connections"][p]]

    def at(self, bit) -> float:
        """Arrival of ``bit`` (iterative: netlists are deep)."""
        if not isinstance(bit, int) or bit not in self.driver:
            return 0.0
        stack = [bit]
        while stack:
            b = stack[-1]
            if b in self.arrival:
                stack.pop()
                continue
            name, port = self.driver[b]
            c = self.cells[name]
            t = c["type"]
            if t == "TRELLIS_FF":
                self.arrival[b] = 0.0
                stack.pop()
                continue
            if t == "DP16KD":
                out_reg = any(str(c["parameters"].get(k, "")).startswith("OUTREG") for k in ("REGMODE_A", "REGMODE_B"))
                self.arrival[b] = 1.0 if out_reg else 4.3
                stack.pop()
                continue
            if t == "MULT18X18D":
                deps = [] if _registered(c, "REG_OUTPUT_CLK") else self._inputs(c, [p for p in c["port_directions"] if p[0] in "AB"])
            elif t == "TRELLIS_DPR16X4":
                # the read is asynchronous from the read address; the write is clocked
                deps = self._inputs(c, ("RAD",))
            else:
                deps = self._inputs(c)
            deps = [d for d in deps if isinstance(d, int) and d in self.driver]
            todo = [d for d in deps if d not in self.arrival]
            if todo:
                stack.extend(todo)
                if len(stack) > 10_000_000:
                    raise RuntimeError("combinational loop")
                continue
            stack.pop()
            if t == "MULT18X18D":
                self.arrival[b] = (1.0 if _registered(c, "REG_OUTPUT_CLK")
                                   else 3.9 + max((self.arrival[d] for d in deps), default=0.0) + self.route)
            elif t == "CCU2C":
                cin = c["connections"].get("CIN", [None])[0]
                data = [d for d in deps if d != cin]
                v = max((self.arrival[d] for d in data), default=0.0) + CELL_NS[t] + self.route
                if cin in self.arrival:
                    v = max(v, self.arrival[cin] + 0.1 + (0.3 if port != "COUT" else 0.0))
                self.arrival[b] = v
            else:
                hop = 0.0 if t in IN_SLICE else self.route
                self.arrival[b] = max((self.arrival[d] for d in deps), default=0.0) + CELL_NS.get(t, 0.45) + hop
        return self.arrival[bit]

    def endpoints(self):
        """(arrival ns, register name, worst input bit) of every timed endpoint."""
        for name, c in self.cells.items():
            t = c["type"]
            if t == "TRELLIS_FF":
                ins = self._inputs(c, ("DI", "CE", "LSR"))
                label = self.name.get(c["connections"]["Q"][0], name)
            elif t == "DP16KD":
                ins = [b for b in self._inputs(c) if b is not None]
                label = f"DP16KD {name}"
            elif t == "TRELLIS_DPR16X4":
                ins = self._inputs(c, ("DI", "WAD", "WRE"))
                label = f"TRELLIS_DPR16X4 {name}"
            elif t == "MULT18X18D" and _registered(c, "REG_INPUTA_CLK"):
                ins = self._inputs(c, [p for p in c["port_directions"] if p[0] in "AB"])
                label = f"MULT18X18D {name}"
            else:
                continue
            ins = [b for b in ins if isinstance(b, int)]
            if ins:
                worst = max(ins, key=self.at)
                yield self.at(worst) + 0.2, label, worst

    def trace(self, bit):
        path = []
        while isinstance(bit, int) and bit in self.driver:
            name, _ = self.driver[bit]
            c = self.cells[name]
            path.append((self.arrival.get(bit, 0.0), c["type"], self.name.get(bit, name), self.fanout[bit]))
            if c["type"] in ("TRELLIS_FF", "DP16KD"):
                break
            # a LUT RAM's read depends on its read address only (its write inputs are endpoints:
            # following them could loop through a read-add-write back into the same RAM)
            ports = ("RAD",) if c["type"] == "TRELLIS_DPR16X4" else None
            ins = [b for b in self._inputs(c, ports) if isinstance(b, int) and b in self.driver]
            if not ins:
                break
            bit = max(ins, key=lambda b: self.arrival.get(b, 0.0))
        return path[::-1]


def print_units(ends, depth: int, by_prefix: bool, threshold: float, title: str) -> None:
    """Count ``(ns, register label)`` endpoints at or above ``threshold`` per unit: the label's first
    ``depth`` dotted components, or with ``by_prefix`` a top-level name's first word; print them."""
    units = collections.defaultdict(lambda: [0, 0])
    for a, label in ends:
        name = label.split(" ", 1)[-1]  # a RAM's or multiplier's label starts with its type
        name = re.sub(r"\[\d+\]$", "", re.sub(r"_TRELLIS_FF_Q.*", "", name))  # Yosys: merged nets
        unit = re.sub(r"\d+", "#", ".".join(name.split(".")[:depth]))
        if "." not in name:
            word = re.sub(r"\d+", "#", name.lstrip("\\").split("_")[0]) if by_prefix else ""
            unit = f"(top) {word}_" if word else "(top)"
        units[unit][0] += a >= threshold
        units[unit][1] += 1
    print(title)
    for unit, (over, n) in sorted(units.items(), key=lambda kv: -kv[1][0]):
        if over:
            print(f"{over:8d} {n:6d}  {unit}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="design point whose cached sparsim synth P&R folder to read")
    parser.add_argument("--netlist", help="an ecp5_packed.json (instead of --config)")
    parser.add_argument("--route", type=float, default=0.9, help="ns of routing per LUT or carry entry")
    parser.add_argument("--over", type=float, default=12.0, help="count endpoints at or above this many ns")
    parser.add_argument("--top", type=int, default=40, help="groups to print")
    parser.add_argument("--trace", action="append", default=[], help="print the deepest path into this register")
    parser.add_argument("--units", type=int, default=0, metavar="DEPTH",
                        help="also count the endpoints at or above --over per unit: the first DEPTH "
                             "dotted components of the register's name (0: off)")
    parser.add_argument("--by-prefix", action="store_true",
                        help="with --units: split the top level's registers (names without a dot) by their "
                             "name's first word (up to its first '_'; a flattened top such as nm_train's)")
    parser.add_argument("--fanout", type=int, default=0, metavar="N",
                        help="also print the N register outputs that drive the most cell inputs (0: off)")
    args = parser.parse_args(argv)
    if args.netlist:
        path = Path(args.netlist)
    elif args.config:
        from sparsim.dataflow.config import load_design_point
        from sparsim.rtl.synth import pnr_folder
        from sparsim.rtl.verilog import to_verilog

        path = pnr_folder(to_verilog(load_design_point(args.config).hardware)) / "ecp5_packed.json"
    else:
        parser.error("give --config or --netlist")
    if not path.exists():
        print(f"{path}: no packed netlist (run sparsim synth on the point first)", file=sys.stderr)
        return 2
    net = Netlist(json.loads(path.read_text()), args.route)
    ends = sorted(net.endpoints(), key=lambda e: -e[0])
    hist = collections.Counter(int(a) for a, _, _ in ends)
    print(f"{path}: {len(ends)} endpoints; per whole ns of estimated arrival: "
          + ", ".join(f"{ns}: {hist[ns]}" for ns in sorted(hist, reverse=True)))
    groups = collections.defaultdict(list)
    for a, label, _ in ends:
        groups[re.sub(r"\d+", "#", re.sub(r"\[\d+\]$", "", label))].append(a)
    print(f"{'max ns':>7} {'>= ' + str(args.over):>8} {'regs':>6}  register group")
    for worst, over, n, g in sorted(((max(v), sum(x >= args.over for x in v), len(v), g)
                                    for g, v in groups.items()), reverse=True)[: args.top]:
        print(f"{worst:7.1f} {over:8d} {n:6d}  {g}")
    if args.units > 0:
        print_units(((a, label) for a, label, _ in ends), args.units, args.by_prefix, args.over,
                    f"per unit: endpoints at or above {args.over} ns of all endpoints")
    if args.fanout > 0:
        print(f"register outputs by loads (cell inputs driven), the {args.fanout} largest:")
        regs = [(net.fanout[b], net.name.get(b, n)) for n, c in net.cells.items() if c["type"] == "TRELLIS_FF"
                for b in c["connections"]["Q"] if isinstance(b, int)]
        for loads, name in sorted(regs, reverse=True)[: args.fanout]:
            print(f"{loads:8d}  {name}")
    for want in args.trace:
        hits = [(a, label, bit) for a, label, bit in ends if label.startswith(want)]
        if hits:
            a, label, bit = max(hits)
            print(f"deepest path into {label} ({a:.1f} ns):")
            print(f"  {'ns':>6}  {'cell':<11} {'loads':>5}  signal")
            for at, kind, name, loads in net.trace(bit):
                print(f"  {at:6.1f}  {kind:<11} {loads:5d}  {name[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
