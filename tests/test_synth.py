"""``sparsim synth``: DSP48E2 register use read from Yosys's netlist, and the ECP5 Fmax."""

from __future__ import annotations

import json

import pytest

from sparsim.rtl.ecp5_pack import pack_registers
from sparsim.rtl.synth import dsp_register_use


def _dsp(params: dict[str, str], pcin: list, pcout: list) -> dict:
    return {"type": "DSP48E2", "parameters": params, "connections": {"PCIN": pcin, "PCOUT": pcout}}


def test_dsp_register_use_reads_parameters_and_cascade_nets():
    one, zero = "00000000000000000000000000000001", "00000000000000000000000000000000"
    netlist = {"modules": {"top": {"cells": {
        # registered slot at the head of a cascade: PCIN tied off, PCOUT on nets 10, 11
        "a": _dsp({"AREG": one, "BREG": zero, "MREG": one, "PREG": one}, ["0", "0"], [10, 11]),
        # its successor, fed on PCIN from a's PCOUT
        "b": _dsp({"AREG": zero, "BREG": "10", "MREG": one, "PREG": one}, [10, 11], [20, 21]),
        # a bare multiplier whose PCIN comes from fabric nets, not from a DSP
        "c": _dsp({"AREG": zero, "BREG": zero, "MREG": zero, "PREG": zero}, [30, 31], [40, 41]),
        "lut": {"type": "LUT6", "parameters": {}, "connections": {}},
    }}}}
    assert dsp_register_use(netlist) == {"dsp": 3, "a_or_b_reg": 2, "mreg": 2, "preg": 2, "pcin_cascade": 1}


def _ff(d, q, *, ce=None, lsr="0"):
    conn = {"CLK": [1], "DI": [d], "Q": [q], "LSR": [lsr]}
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
    return {"modules": {"top": {"attributes": {"top": "00000000000000000000000000000001"},
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
    assert pack_registers(netlist) == {"bram_outreg": 1, "mult_input": 2, "mult_output": 1, "ff_removed": 8}
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
    assert pack_registers(netlist) == {"bram_outreg": 0, "mult_input": 0, "mult_output": 0, "ff_removed": 0}
    assert {"ra0", "rb0", "rp0", "rq0", "rq1"} <= set(cells)
    assert all(cells["mul"]["parameters"].get(k, "NONE") == "NONE" for k in ("REG_INPUTA_CLK", "REG_INPUTB_CLK"))
    assert cells["ram"]["parameters"]["REGMODE_A"] == "NOREG"


@pytest.mark.synth
def test_synth_reports_dsp_registers_and_ecp5_fmax(capsys):
    from sparsim.cli import main

    assert main(["synth", "examples/tiny_gemm.yaml", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # tiny: P=2 chains of L=4 slots, one cascade segment each.
    assert data["family"] == "xcup"
    assert data["synthesis"]["dsp"] == data["model"]["dsp"] == 8
    assert data["dsp_registers"]["dsp"] == 8
    ecp5 = data["ecp5"]
    assert "proxy" in ecp5["note"] and "UltraScale+" in ecp5["note"]
    assert ecp5["mult18"] == 8
    # The pinned tools with a fixed placer seed are deterministic: 133.3 MHz here with the
    # flow's register packing (a control path of the loader; benchmarks/README.md), 54.6 MHz
    # before the compute path was pipelined, 102.8 MHz before the shell's last-row flags were
    # registered. Below 110 MHz a register stage or the packing has been lost.
    assert ecp5["packed"]["bram_outreg"] > 0 and ecp5["packed"]["mult_output"] == 8
    assert ecp5["fmax_mhz"] >= 110


@pytest.mark.synth
def test_slots_map_to_registered_cascaded_dsps(capsys):
    """The structure FlightLLM's slot has, checked on the netlist: Yosys packs registers and
    cascades only into DSP48E1, so the same RTL goes through ``-family xc7``. Every slot's
    multiplier has registered inputs, product and output, and in each chain of 4 slots (one
    cascade segment) three slots take the previous slot's sum on PCIN."""
    from sparsim.cli import main

    assert main(["synth", "examples/tiny_gemm.yaml", "--family", "xc7", "--no-pnr", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["family"] == "xc7" and "ecp5" not in data
    assert data["dsp_registers"] == {"dsp": 8, "a_or_b_reg": 8, "mreg": 8, "preg": 8, "pcin_cascade": 2 * 3}
