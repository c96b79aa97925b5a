"""Register absorption into ECP5 MULT18X18D cells (rtl/ecp5_dsp.py) on hand-made netlists, and
on the systolic array as Yosys ``synth_ecp5`` maps it."""

from __future__ import annotations

import json
import subprocess

import pytest

from sparsim.rtl.ecp5_dsp import absorb_mult18_registers

CLK, OTHER_CLK = 2, 3


def _ff(d, q, *, clock=CLK, cemux="1", lsr="0"):
    return {"type": "TRELLIS_FF", "parameters": {"CEMUX": cemux, "CLKMUX": "CLK", "GSR": "DISABLED"},
            "connections": {"CLK": [clock], "LSR": [lsr], "DI": [d], "Q": [q]},
            "port_directions": {"CLK": "input", "LSR": "input", "DI": "input", "Q": "output"}}


def _netlist(**overrides):
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
    return {"modules": {"top": {"ports": ports, "cells": cells}}}


def _cells(netlist):
    return netlist["modules"]["top"]["cells"]


def test_operand_and_product_registers_move_into_the_dsp():
    netlist = _netlist()
    counts = absorb_mult18_registers(netlist, "top")
    assert counts == {"dsp": 1, "input_registered": 1, "output_registered": 1, "ff_removed": 5, "ff_duplicated": 0}
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
    netlist = _netlist(reader={"type": "LUT4", "parameters": {}, "connections": {"A": [22], "Z": [50]},
                               "port_directions": {"A": "input", "Z": "output"}})
    counts = absorb_mult18_registers(netlist, "top")
    assert counts["ff_duplicated"] == 1 and counts["ff_removed"] == 4
    assert "fb" in _cells(netlist) and _cells(netlist)["mul"]["connections"]["B0"] == [12]


@pytest.mark.parametrize(
    "override,registered",
    [
        # A register with a clock enable or a reset cannot become the DSP's plain input register,
        # and A must not be registered without B (nextpnr has no timing for that): only P moves.
        (dict(fb=_ff(12, 22, cemux="CE")), (0, 1)),
        (dict(fa1=_ff(11, 21, lsr=7)), (0, 1)),
        # A product register on another clock: nothing moves (one clock per DSP).
        (dict(fp1=_ff(31, 41, clock=OTHER_CLK)), (0, 0)),
        # A product bit read by logic as well as by its register: the output stays unregistered.
        (dict(reader={"type": "LUT4", "parameters": {}, "connections": {"A": [31], "Z": [50]},
                      "port_directions": {"A": "input", "Z": "output"}}), (1, 0)),
    ],
    ids=["enable", "reset", "two-clocks", "product-read-twice"],
)
def test_registers_that_do_not_fit_stay_in_the_fabric(override, registered):
    netlist = _netlist(**override)
    counts = absorb_mult18_registers(netlist, "top")
    assert (counts["input_registered"], counts["output_registered"]) == registered
    params = _cells(netlist)["mul"]["parameters"]
    assert ("REG_INPUTA_CLK" in params, "REG_OUTPUT_CLK" in params) == tuple(map(bool, registered))


@pytest.mark.synth
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_every_pe_multiplier_of_the_array_takes_its_registers(tmp_path, dataflow):
    """As Yosys maps the shared array, each PE's operand and product registers are plain
    registers next to its MULT18X18D: all of them move, so no PE keeps a fabric-register ->
    combinational-DSP -> fabric-register path."""
    from sparsim.rtl.synth import _yosys
    from sparsim.rtl.systolic import SystolicArray
    from sparsim.rtl.verilog import component_verilog

    R, C = 2, 3
    (tmp_path / "top.v").write_text(component_verilog(SystolicArray(rows=R, cols=C, dataflow=dataflow, max_m=4,
                                                                   acc_bits=24)))
    subprocess.run(_yosys() + ["-q", "-p", "read_verilog -sv top.v; synth_ecp5 -top top -json ecp5.json"],
                   cwd=tmp_path, check=True, capture_output=True)
    netlist = json.loads((tmp_path / "ecp5.json").read_text())
    ffs = sum(c["type"] == "TRELLIS_FF" for c in _cells(netlist).values())
    counts = absorb_mult18_registers(netlist, "top")
    assert counts["dsp"] == counts["input_registered"] == counts["output_registered"] == R * C
    # The product registers (16 bits per PE) leave the fabric.
    assert ffs - sum(c["type"] == "TRELLIS_FF" for c in _cells(netlist).values()) == counts["ff_removed"]
    assert counts["ff_removed"] >= 16 * R * C
