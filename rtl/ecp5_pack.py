"""Pack fabric registers into the ECP5 block RAM and multiplier registers, as vendor flows do.

Yosys 0.70's ``synth_ecp5`` maps every ``DP16KD`` with ``REGMODE NOREG`` and every
``MULT18X18D`` with no internal register (``techmap`` of ``$__MUL18X18`` only; register
absorption exists for no Lattice family), so a read-data register behind a block RAM, or the
operand and product registers around a multiply, stay fabric flip-flops. The block RAM's
unregistered clock-to-out (5.8 ns at speed grade 6) and the multiplier's combinational delay
(3.9 ns) plus the routing into and out of their tiles then set the clock: any registered
multiply is fabric FF -> route -> DSP -> route -> fabric FF, about 146 MHz at best whatever the
RTL does. Lattice's own flow absorbs such registers into the primitives, as Yosys's
``xilinx_dsp`` does with AREG/BREG/MREG/PREG on DSP48E1; this pass does the same on the
``synth_ecp5`` JSON netlist before ``nextpnr-ecp5`` reads it, which times a MULT18X18D with
``REG_INPUTA_CLK`` / ``REG_INPUTB_CLK`` / ``REG_OUTPUT_CLK`` set as registered. It is the one
ECP5 flow of :func:`sparsim.rtl.synth.place_and_route_ecp5` and
:func:`~sparsim.rtl.synth.place_and_route_verilog` (``sparsim synth``, benchmarks/bench_fmax.py,
benchmarks/bench_systolic_fmax.py). Cycle behaviour is unchanged: a register moves into the
primitive (or is copied there), no register is added to or removed from any path.

What it packs (everything else is left alone):

- **Block RAM output register**: a ``DP16KD`` whose every connected data output drives exactly
  one flip-flop and nothing else, each on the RAM's read clock, with no reset and either no
  clock enable or all one clock enable net, gets ``REGMODE_A``/``REGMODE_B`` = ``OUTREG`` and
  that enable on ``OCEA``/``OCEB`` (the output register's clock enable; 1 without one); the
  flip-flops are removed and their outputs driven by the RAM. Yosys only leaves that shape for a memory whose read/write
  collisions need no emulation: an Amaranth read port is not transparent (a read in the cycle
  its word is written returns the old word), the ECP5 block RAM leaves the collision
  undefined, and ``memory_libmap`` then puts a bypass multiplexer between the RAM and the
  register; a memory marked ``no_rw_check`` (the RTL's promise that no used read meets a write
  of its word) has none.
- **Multiplier input registers**: a ``MULT18X18D`` whose every non-constant A and B bit comes
  from such a flip-flop, all on one clock, registers both operands inside (``REG_INPUTA_CLK``,
  ``REG_INPUTB_CLK``) and takes the flip-flops' inputs instead; a flip-flop is removed once
  nothing else reads it, and one that also feeds other logic (e.g. a systolic PE's weight
  register, which the next PE reads too) stays, the multiplier holding a copy.
- **Multiplier output register**: a ``MULT18X18D`` whose every loaded product bit drives exactly
  one such flip-flop and nothing else, on the operands' clock if those moved, uses
  ``REG_OUTPUT_CLK``; the flip-flops are removed.
"""

from __future__ import annotations

from collections import defaultdict

__all__ = ["pack_registers"]

_CONST = ("0", "1", "x", "z")


def _top(netlist: dict) -> dict:
    tops = [m for m in netlist["modules"].values() if int(m.get("attributes", {}).get("top", "0"), 2)]
    if len(tops) != 1:
        raise ValueError(f"expected one top module in the netlist, found {len(tops)}")
    return tops[0]


def _plain_ff(cell: dict, *, enable: bool = False) -> bool:
    """A TRELLIS_FF that loads its input on every clock edge (or, with ``enable``, on those with
    its clock enable high): no reset."""
    p, c = cell["parameters"], cell["connections"]
    ce = p.get("CEMUX", "1").strip()
    return (cell["type"] == "TRELLIS_FF" and (ce == "1" or (enable and ce == "CE"))
            and p.get("CLKMUX", "CLK") == "CLK" and c.get("LSR", ["0"]) == ["0"])


def _enable(cell: dict):
    """The clock enable net of a flip-flop (``"1"`` without one)."""
    return cell["connections"]["CE"][0] if cell["parameters"].get("CEMUX", "1").strip() == "CE" else "1"


def pack_registers(netlist: dict) -> dict[str, int]:
    """Pack registers into ``DP16KD`` and ``MULT18X18D`` cells of a ``synth_ecp5`` JSON netlist, in
    place. Returns counts: ``bram_outreg`` (RAM cells packed), ``mult`` (multipliers seen),
    ``mult_input`` (operands registered inside, two per multiplier), ``mult_output``
    (multipliers with the product register inside), ``ff_removed`` and ``ff_duplicated``
    (times a multiplier copied an operand flip-flop that stays for its other loads)."""
    top = _top(netlist)
    cells = top["cells"]
    loads: dict[int, list[tuple[str, str]]] = defaultdict(list)
    driver: dict[int, tuple[str, str]] = {}
    for name, cell in cells.items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            for bit in bits:
                if isinstance(bit, int):
                    if dirs.get(port) == "output":
                        driver[bit] = (name, port)
                    else:
                        loads[bit].append((name, port))
    for port in top["ports"].values():
        if port["direction"] != "input":
            for bit in port["bits"]:
                if isinstance(bit, int):
                    loads[bit].append(("", "top"))
    stats = dict.fromkeys(("bram_outreg", "mult", "mult_input", "mult_output", "ff_removed", "ff_duplicated"), 0)
    removed: set[str] = set()

    def sole_ff_load(bit, clock, enable: bool) -> str | None:
        """The flip-flop that is the only load of ``bit``, if it is a plain one on ``clock``
        (with ``enable``: or one with a clock enable)."""
        if not isinstance(bit, int) or len(loads[bit]) != 1:
            return None
        name, port = loads[bit][0]
        if port != "DI" or name in removed:
            return None
        cell = cells[name]
        return name if _plain_ff(cell, enable=enable) and cell["connections"]["CLK"] == clock else None

    def absorb_outputs(name: str, pins: list[str], clock, enable: bool = False):
        """Drive each pin's flip-flop output from the pin and drop the flip-flops, if every
        connected pin feeds a plain flip-flop on ``clock`` alone (with ``enable``: or each one
        with the same clock enable). Returns ``None`` if not, else the enable net (``"1"``)."""
        conn = cells[name]["connections"]
        used = [p for p in pins if isinstance(conn[p][0], int) and loads[conn[p][0]]]
        ffs = [sole_ff_load(conn[p][0], clock, enable) for p in used]
        if not used or None in ffs:
            return None
        enables = {_enable(cells[ff]) for ff in ffs}
        if len(enables) != 1:
            return None
        for pin, ff in zip(used, ffs):
            old = conn[pin][0]
            q = cells[ff]["connections"]["Q"][0]
            conn[pin] = [q]
            driver[q] = (name, pin)
            loads[old] = []
            removed.add(ff)
        stats["ff_removed"] += len(used)
        return enables.pop()

    for name, cell in cells.items():
        conn, params = cell["connections"], cell["parameters"]
        if cell["type"] == "DP16KD":
            if params.get("REGMODE_A") != "NOREG" or params.get("REGMODE_B") != "NOREG":
                continue
            if conn.get("CLKA") != conn.get("CLKB") or conn.get("RSTA") != ["0"] or conn.get("RSTB") != ["0"]:
                continue
            pins = [p for p in conn if p.startswith("DO")]
            enable = absorb_outputs(name, pins, conn["CLKB"], enable=True)
            if enable is not None:
                params["REGMODE_A"] = params["REGMODE_B"] = "OUTREG"
                conn["OCEA"] = conn["OCEB"] = [enable]
                stats["bram_outreg"] += 1
        elif cell["type"] == "MULT18X18D":
            stats["mult"] += 1
            if any(v != "NONE" for k, v in params.items() if k.startswith("REG_") and k.endswith("_CLK")):
                continue
            # Both operands or neither: nextpnr has timing for a MULT18X18D with both inputs
            # registered, not for one registered beside a combinational one.
            operands = []
            for operand in ("A", "B"):
                pins = [f"{operand}{i}" for i in range(18)]
                bits = [conn[p][0] for p in pins]
                srcs = [driver.get(b) if isinstance(b, int) else None for b in bits]
                ffs = {s[0] for s, b in zip(srcs, bits) if isinstance(b, int) and s}
                if any(isinstance(b, int) and (s is None or cells[s[0]]["type"] != "TRELLIS_FF" or s[1] != "Q")
                       for s, b in zip(srcs, bits)) or not ffs or not all(_plain_ff(cells[f]) for f in ffs):
                    break
                operands.append((operand, pins, bits, srcs, ffs))
            clocks = {tuple(cells[f]["connections"]["CLK"]) for *_, ffs in operands for f in ffs}
            clock = None
            if len(operands) == 2 and len(clocks) == 1:
                clock = list(clocks.pop())
                for operand, pins, bits, srcs, ffs in operands:
                    for pin, bit, src in zip(pins, bits, srcs):
                        if isinstance(bit, int):
                            d = cells[src[0]]["connections"]["DI"][0]
                            conn[pin] = [d]
                            loads[bit].remove((name, pin))
                            loads[d].append((name, pin))
                    for f in ffs:
                        q = cells[f]["connections"]["Q"][0]
                        if loads[q]:
                            stats["ff_duplicated"] += 1
                        elif f not in removed:
                            removed.add(f)
                            stats["ff_removed"] += 1
                    params[f"REG_INPUT{operand}_CLK"] = "CLK0"
                    params[f"REG_INPUT{operand}_CE"] = "CE0"
                    params[f"REG_INPUT{operand}_RST"] = "RST0"
                    stats["mult_input"] += 1
            out_clock = clock
            if out_clock is None:
                first = next((conn[p][0] for p in conn if p.startswith("P") and isinstance(conn[p][0], int)
                              and loads[conn[p][0]]), None)
                ff = loads[first][0][0] if first is not None and len(loads[first]) == 1 else None
                out_clock = cells[ff]["connections"].get("CLK") if ff and cells[ff]["type"] == "TRELLIS_FF" else None
            if out_clock is not None and absorb_outputs(name, [f"P{i}" for i in range(36)], out_clock) is not None:
                params["REG_OUTPUT_CLK"] = "CLK0"
                params["REG_OUTPUT_CE"] = "CE0"
                params["REG_OUTPUT_RST"] = "RST0"
                stats["mult_output"] += 1
                clock = out_clock
            if clock is not None:
                conn["CLK0"], conn["CE0"], conn["RST0"] = list(clock), ["1"], ["0"]
                params.setdefault("GSR", "DISABLED")
                params.setdefault("RESETMODE", "SYNC")
                cell.setdefault("port_directions", {}).update({"CLK0": "input", "CE0": "input", "RST0": "input"})
    for ff in removed:
        del cells[ff]
    return stats
