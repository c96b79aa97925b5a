"""The ECP5 register packing (rtl/ecp5_pack.py) on hand-made netlists (block RAM output
registers, multiplier operand and product registers, what must stay in the fabric), and on the
systolic array as Yosys ``synth_ecp5`` maps it."""

from __future__ import annotations

import json

import pytest

from sparsim.rtl.ecp5_pack import pack_registers

CLK, OTHER_CLK = 1, 3

TOP = {"top": "00000000000000000000000000000001"}


def _ff(d, q, *, ce=None, lsr="0", clock=CLK):
    conn = {"CLK": [clock], "DI": [d], "Q": [q], "LSR": [lsr]}
    params = {"CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR", "REGSET": "RESET"}
    if ce is not None:
        conn["CE"], params["CEMUX"] = [ce], "CE"
    return {"type": "TRELLIS_FF", "parameters": params, "connections": conn,
            "port_directions": {"CLK": "input", "DI": "input", "LSR": "input", "CE": "input", "Q": "output"}}


def _mult(a, b, p):
    """A MULT18X18D as synth_ecp5 leaves it: operand bits on nets a, b (sign bit repeated
    above), product bits on nets p, the rest unconnected."""
    conn = {f"A{i}": [a[min(i, len(a) - 1)]] for i in range(18)}
    conn |= {f"B{i}": [b[min(i, len(b) - 1)]] for i in range(18)}
    conn |= {f"P{i}": [p[i] if i < len(p) else 900 + i] for i in range(36)}
    dirs = {k: ("output" if k.startswith("P") else "input") for k in conn}
    return {"type": "MULT18X18D", "parameters": {}, "connections": conn, "port_directions": dirs}


def _ram(do):
    conn = {f"DOA{i}": [n] for i, n in enumerate(do)} | {
        "CLKA": [1], "CLKB": [1], "RSTA": ["0"], "RSTB": ["0"], "OCEA": ["0"], "OCEB": ["1"]}
    dirs = {k: ("output" if k.startswith("DO") else "input") for k in conn}
    return {"type": "DP16KD", "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG"},
            "connections": conn, "port_directions": dirs}


def _netlist(cells, outputs):
    return {"modules": {"top": {"attributes": TOP,
                                "ports": {"clk": {"direction": "input", "bits": [1]},
                                          "y": {"direction": "output", "bits": outputs}},
                                "cells": cells}}}


def test_ecp5_packing_moves_operand_product_and_ram_registers_inside():
    # a (nets 10, 11) and b (20, 21) registered into 12, 13 / 22, 23, multiplied into 30, 31,
    # product registered into 40, 41, which feed the output; a RAM's outputs 50, 51 registered
    # into 60, 61.
    cells = {
        "ra0": _ff(10, 12), "ra1": _ff(11, 13), "rb0": _ff(20, 22), "rb1": _ff(21, 23),
        "mul": _mult([12, 13], [22, 23], [30, 31]), "rp0": _ff(30, 40), "rp1": _ff(31, 41),
        "ram": _ram([50, 51]), "rq0": _ff(50, 60), "rq1": _ff(51, 61),
    }
    netlist = _netlist(cells, [40, 41, 60, 61])
    assert pack_registers(netlist) == {"bram_outreg": 1, "mult": 1, "mult_input": 2, "mult_output": 1,
                                       "ff_removed": 8, "ff_duplicated": 0}
    assert sorted(cells) == ["mul", "ram"]
    mul = cells["mul"]
    assert mul["connections"]["A0"] == [10] and mul["connections"]["A17"] == [11]
    assert mul["connections"]["B1"] == [21] and mul["connections"]["P1"] == [41]
    assert mul["connections"]["CLK0"] == [1]
    assert {mul["parameters"][k] for k in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK")} == {"CLK0"}
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_B"] == "OUTREG" and ram["connections"]["DOA1"] == [61]


def test_ecp5_packing_leaves_registers_with_enables_and_shared_outputs():
    # The operand register has a clock enable; the product bit also feeds logic besides its
    # register; a RAM output feeds two registers: nothing can move.
    cells = {
        "ra0": _ff(10, 12, ce=5), "rb0": _ff(20, 22),
        "mul": _mult([12], [22], [30]), "rp0": _ff(30, 40),
        "lut": {"type": "LUT4", "parameters": {}, "connections": {"A": [30], "Z": [70]},
                "port_directions": {"A": "input", "Z": "output"}},
        "ram": _ram([50]), "rq0": _ff(50, 60), "rq1": _ff(50, 61),
    }
    netlist = _netlist(cells, [40, 60, 61, 70])
    # (B alone could move, but nextpnr times both operands registered or neither.)
    assert pack_registers(netlist) == {"bram_outreg": 0, "mult": 1, "mult_input": 0, "mult_output": 0,
                                       "ff_removed": 0, "ff_duplicated": 0}
    assert {"ra0", "rb0", "rp0", "rq0", "rq1"} <= set(cells)
    assert all(cells["mul"]["parameters"].get(k, "NONE") == "NONE" for k in ("REG_INPUTA_CLK", "REG_INPUTB_CLK"))
    assert cells["ram"]["parameters"]["REGMODE_A"] == "NOREG"


@pytest.mark.parametrize("enables,packed", [((5, 5), True), ((5, 6), False), ((5, None), False)],
                         ids=["one-enable", "two-enables", "enable-and-none"])
def test_ram_output_registers_with_one_clock_enable_move_with_it(enables, packed):
    # A RAM's outputs 50, 51 registered into 60, 61 with clock enables: one enable net moves
    # with the registers onto the output register's enable; two different ones cannot.
    cells = {"ram": _ram([50, 51]), "rq0": _ff(50, 60, ce=enables[0]), "rq1": _ff(51, 61, ce=enables[1])}
    counts = pack_registers(_netlist(cells, [60, 61]))
    assert counts["bram_outreg"] == int(packed) and counts["ff_removed"] == 2 * int(packed)
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_B"] == ("OUTREG" if packed else "NOREG")
    if packed:
        assert ram["connections"]["OCEA"] == ram["connections"]["OCEB"] == [5]
        assert ram["connections"]["DOA0"] == [60] and set(cells) == {"ram"}


def _one_mult(**overrides):
    """in a (bits 10, 11) -> FF -> (20, 21) -> A0, A1; sign bit 21 also on A2..A17; in b (12)
    -> FF -> 22 -> B0..B17; P0, P1 (30, 31) -> FF -> out (40, 41); P2.. unread."""
    cells = {
        "fa0": _ff(10, 20), "fa1": _ff(11, 21), "fb": _ff(12, 22),
        "fp0": _ff(30, 40), "fp1": _ff(31, 41),
    }
    mult = {f"A{i}": [20 if i == 0 else 21] for i in range(18)}
    mult.update({f"B{i}": [22] for i in range(18)})
    mult.update({f"P{i}": [30 + i if i < 2 else 100 + i] for i in range(36)})
    cells["mul"] = {"type": "MULT18X18D", "parameters": {}, "connections": mult,
                    "port_directions": {p: "output" if p[0] == "P" else "input" for p in mult}}
    cells.update(overrides)
    ports = {"clk": {"direction": "input", "bits": [CLK]}, "a": {"direction": "input", "bits": [10, 11]},
             "b": {"direction": "input", "bits": [12]}, "y": {"direction": "output", "bits": [40, 41]}}
    return {"modules": {"top": {"attributes": TOP, "ports": ports, "cells": cells}}}


def _cells(netlist):
    return netlist["modules"]["top"]["cells"]


def test_operand_and_product_registers_move_into_the_dsp():
    netlist = _one_mult()
    counts = pack_registers(netlist)
    assert counts == {"bram_outreg": 0, "mult": 1, "mult_input": 2, "mult_output": 1, "ff_removed": 5,
                      "ff_duplicated": 0}
    cells = _cells(netlist)
    assert set(cells) == {"mul"}
    mul = cells["mul"]
    conn, params = mul["connections"], mul["parameters"]
    # The DSP now reads what the FFs read and drives what they drove, on their clock.
    assert conn["A0"] == [10] and all(conn[f"A{i}"] == [11] for i in range(1, 18))
    assert all(conn[f"B{i}"] == [12] for i in range(18))
    assert conn["P0"] == [40] and conn["P1"] == [41] and conn["P2"] == [102]
    assert conn["CLK0"] == [CLK] and conn["CE0"] == ["1"] and conn["RST0"] == ["0"]
    assert params["REG_INPUTA_CLK"] == params["REG_INPUTB_CLK"] == params["REG_OUTPUT_CLK"] == "CLK0"
    assert mul["port_directions"]["CLK0"] == "input"


def test_a_register_read_elsewhere_is_duplicated_not_removed():
    netlist = _one_mult(reader={"type": "LUT4", "parameters": {}, "connections": {"A": [22], "Z": [50]},
                               "port_directions": {"A": "input", "Z": "output"}})
    counts = pack_registers(netlist)
    assert counts["ff_duplicated"] == 1 and counts["ff_removed"] == 4
    assert "fb" in _cells(netlist) and _cells(netlist)["mul"]["connections"]["B0"] == [12]


@pytest.mark.parametrize(
    "override,registered",
    [
        # A register with a clock enable or a reset cannot become the DSP's plain input register,
        # and A must not be registered without B (nextpnr has no timing for that): only P moves.
        (dict(fb=_ff(12, 22, ce=5)), (0, 1)),
        (dict(fa1=_ff(11, 21, lsr=7)), (0, 1)),
        # A product register on another clock than the operands': the operands move, the
        # product register stays (one clock per DSP).
        (dict(fp1=_ff(31, 41, clock=OTHER_CLK)), (2, 0)),
        # A product bit read by logic as well as by its register: the output stays unregistered.
        (dict(reader={"type": "LUT4", "parameters": {}, "connections": {"A": [31], "Z": [50]},
                      "port_directions": {"A": "input", "Z": "output"}}), (2, 0)),
    ],
    ids=["enable", "reset", "two-clocks", "product-read-twice"],
)
def test_registers_that_do_not_fit_stay_in_the_fabric(override, registered):
    netlist = _one_mult(**override)
    counts = pack_registers(netlist)
    assert (counts["mult_input"], counts["mult_output"]) == registered
    params = _cells(netlist)["mul"]["parameters"]
    assert ("REG_INPUTA_CLK" in params, "REG_OUTPUT_CLK" in params) == tuple(map(bool, registered))


@pytest.mark.synth
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_every_pe_multiplier_of_the_array_takes_its_registers(tmp_path, dataflow):
    """As Yosys maps the shared array, each PE's operand and product registers are plain
    registers next to its MULT18X18D: all of them move, so no PE keeps a fabric-register ->
    combinational-DSP -> fabric-register path."""
    from sparsim.rtl.synth import synth_ecp5
    from sparsim.rtl.systolic import SystolicArray
    from sparsim.rtl.verilog import component_verilog

    R, C = 2, 3
    (tmp_path / "top.v").write_text(component_verilog(SystolicArray(rows=R, cols=C, dataflow=dataflow, max_m=4,
                                                                   acc_bits=24)))
    synth_ecp5(tmp_path, "top", 600)
    netlist = json.loads((tmp_path / "ecp5.json").read_text())
    ffs = sum(c["type"] == "TRELLIS_FF" for c in _cells(netlist).values())
    counts = pack_registers(netlist)
    assert counts["mult"] == counts["mult_input"] // 2 == counts["mult_output"] == R * C
    # The product registers (16 bits per PE) leave the fabric.
    assert ffs - sum(c["type"] == "TRELLIS_FF" for c in _cells(netlist).values()) == counts["ff_removed"]
    assert counts["ff_removed"] >= 16 * R * C
