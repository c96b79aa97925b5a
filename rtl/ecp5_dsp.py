"""Move fabric registers around ECP5 multipliers into the MULT18X18D's own registers.

Yosys ``synth_ecp5`` (0.70) maps every multiplier to a MULT18X18D with all of its registers
bypassed (``techmap`` of ``$__MUL18X18`` only; register absorption exists for no Lattice
family), so a registered multiply in the RTL becomes fabric FF -> route -> 3.9 ns of
combinational DSP -> route -> fabric FF, about 146 MHz at best on a speed-grade-6 ECP5 whatever
the RTL does. Vendor flows put those registers inside the DSP, as Yosys's ``xilinx_dsp`` does
with AREG/BREG/MREG/PREG on DSP48E1; nextpnr-ecp5 times a MULT18X18D whose inputs and output
are registered (``REG_INPUTA_CLK`` / ``REG_INPUTB_CLK`` / ``REG_OUTPUT_CLK``) as such.
:func:`absorb_mult18_registers` does that on the JSON netlist between Yosys and nextpnr, so the
ECP5 figure of a design follows its pipeline instead of the missing pass.

The move keeps the cycle behaviour: a register between a net and a DSP input becomes the DSP's
input register on the same clock (the fabric FF stays if anything else reads it, i.e. it is
duplicated), and a register fed only by a DSP output bit becomes the output register.
"""

from __future__ import annotations

from collections import defaultdict

__all__ = ["absorb_mult18_registers"]

_OPERAND_PINS = {group: [f"{group}{i}" for i in range(18)] for group in "AB"}
_PRODUCT_PINS = [f"P{i}" for i in range(36)]


def _plain_ff_clock(cell: dict | None) -> int | None:
    """The clock net of a TRELLIS_FF without enable, set/reset or inverted clock, else None."""
    if cell is None or cell["type"] != "TRELLIS_FF":
        return None
    params, conn = cell["parameters"], cell["connections"]
    if str(params.get("CEMUX", "")).strip() != "1" or str(params.get("CLKMUX", "")).strip() != "CLK":
        return None
    if conn.get("LSR", ["0"]) != ["0"]:
        return None
    clock = conn.get("CLK", [None])[0]
    return clock if isinstance(clock, int) else None


def absorb_mult18_registers(netlist: dict, top: str) -> dict[str, int]:
    """Absorb registers into every MULT18X18D of module ``top`` of a Yosys JSON ``netlist``
    (modified in place) and return counts: ``dsp``, ``input_registered``,
    ``output_registered``, ``ff_removed`` and ``ff_duplicated``.

    Inputs: the A and B pins are registered only together (nextpnr has no timing for one
    registered port beside a combinational one) and only when every connected pin is driven by
    a plain TRELLIS_FF (no enable, no set/reset) or tied to 0, all on one clock. Output: when
    every P pin that is read drives exactly one plain FF's data input, on the same clock.
    """
    module = netlist["modules"][top]
    cells = module["cells"]
    driver: dict[int, tuple[str, str]] = {}
    readers: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            output = cell["port_directions"].get(port) == "output"
            for bit in bits:
                if isinstance(bit, int):
                    if output:
                        driver[bit] = (name, port)
                    else:
                        readers[bit].append((name, port))
    for name, port in module["ports"].items():
        for bit in port["bits"]:
            if isinstance(bit, int):
                readers[bit].append(("", name))  # a module port reads (or drives) it

    counts = dict.fromkeys(("dsp", "input_registered", "output_registered", "ff_removed", "ff_duplicated"), 0)
    for dsp_name, dsp in list(cells.items()):
        if dsp["type"] != "MULT18X18D":
            continue
        counts["dsp"] += 1
        conn, params = dsp["connections"], dsp["parameters"]
        if any(port in conn for port in ("CLK0", "CE0", "RST0")) or any(
            str(params.get(p, "NONE")).strip() != "NONE"
            for p in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_PIPELINE_CLK", "REG_OUTPUT_CLK")
        ):
            continue  # already uses its registers
        clocks: set[int] = set()

        inputs: dict[str, str] | None = {}  # pin -> the FF in front of it
        for pin in _OPERAND_PINS["A"] + _OPERAND_PINS["B"]:
            bit = conn.get(pin, ["0"])[0]
            if bit == "0":
                continue
            source = driver.get(bit) if isinstance(bit, int) else None
            clock = _plain_ff_clock(cells.get(source[0])) if source and source[1] == "Q" else None
            if clock is None:
                inputs = None
                break
            clocks.add(clock)
            inputs[pin] = source[0]
        if not inputs or not any(p.startswith("A") for p in inputs) or not any(p.startswith("B") for p in inputs):
            inputs = None

        outputs: dict[str, str] | None = {}  # pin -> the FF it feeds
        for pin in _PRODUCT_PINS:
            bit = conn.get(pin, [None])[0]
            if not isinstance(bit, int) or not readers[bit]:
                continue
            sinks = readers[bit]
            clock = _plain_ff_clock(cells.get(sinks[0][0])) if len(sinks) == 1 and sinks[0][1] == "DI" else None
            if clock is None:
                outputs = None
                break
            clocks.add(clock)
            outputs[pin] = sinks[0][0]

        if not inputs and not outputs:
            continue
        if len(clocks) != 1:
            continue
        if inputs:
            for pin, ff in inputs.items():
                conn[pin] = [cells[ff]["connections"]["DI"][0]]
            for ff in set(inputs.values()):
                q = cells[ff]["connections"]["Q"][0]
                readers[q] = [r for r in readers[q] if r[0] != dsp_name]
                if readers[q]:
                    counts["ff_duplicated"] += 1
                else:
                    del cells[ff]
                    counts["ff_removed"] += 1
            params["REG_INPUTA_CLK"] = params["REG_INPUTB_CLK"] = "CLK0"
            counts["input_registered"] += 1
        if outputs:
            for pin, ff in outputs.items():
                conn[pin] = [cells[ff]["connections"]["Q"][0]]
                del cells[ff]
                counts["ff_removed"] += 1
            params["REG_OUTPUT_CLK"] = "CLK0"
            counts["output_registered"] += 1
        conn.update(CLK0=[clocks.pop()], CE0=["1"], RST0=["0"])
        dsp["port_directions"].update(CLK0="input", CE0="input", RST0="input")
        params["GSR"] = "DISABLED"  # as the fabric FFs it replaces
    return counts
