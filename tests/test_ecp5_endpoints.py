"""benchmarks/ecp5_endpoints.py's depth estimate on a hand-made netlist."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ecp5_endpoints.py"


@pytest.fixture(scope="module")
def endpoints():
    spec = importlib.util.spec_from_file_location("ecp5_endpoints", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(kind, inputs, outputs, parameters=None):
    return {"type": kind, "parameters": parameters or {},
            "port_directions": {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}},
            "connections": {**{p: [b] for p, b in inputs.items()}, **{p: [b] for p, b in outputs.items()}}}


def _design():
    # a register -> a LUT -> a distributed RAM's read address; the RAM's read data goes to a
    # register and, through another LUT, back into the RAM's own write enable and data (a FIFO
    # whose write depends on what it reads: no combinational loop, the write is clocked)
    cells = {
        "ra": _cell("TRELLIS_FF", {"DI": 10}, {"Q": 2}),
        "l1": _cell("LUT4", {"A": 2}, {"Z": 3}),
        "ram": _cell("TRELLIS_DPR16X4", {"RAD": 3, "WAD": 5, "DI": 4, "WRE": 5}, {"DO": 4}),
        "l2": _cell("LUT4", {"A": 4}, {"Z": 5}),
        "rb": _cell("TRELLIS_FF", {"DI": 4}, {"Q": 6}),
    }
    netnames = {"unit.addr": {"bits": [2]}, "other.data": {"bits": [6]}, "x": {"bits": [10]}}
    return {"modules": {"top": {"attributes": {"top": 1}, "cells": cells, "netnames": netnames}}}


def test_distributed_ram_read_depends_on_its_read_address_only(endpoints):
    net = endpoints.Netlist(_design(), 0.9)
    arrival = {label: round(a, 2) for a, label, _ in net.endpoints()}
    # rb: the register's clock-to-out 0 -> LUT (0.45 + 0.9) -> RAM read (1.5 + 0.9) -> + 0.2 setup
    assert arrival["other.data[0]"] == round(0.45 + 0.9 + 1.5 + 0.9 + 0.2, 2)
    # its write inputs are endpoints: the data (the read) and the enable (one LUT more)
    assert arrival["TRELLIS_DPR16X4 ram"] == round(0.45 + 0.9 + 1.5 + 0.9 + 0.45 + 0.9 + 0.2, 2)


def test_trace_through_a_read_add_write_ends_at_the_read_address_register(endpoints):
    # the RAM's write data comes from its own read (as a pooled bank's read-add-write does): the
    # trace into its write inputs follows the read back to the read address's register, once
    net = endpoints.Netlist(_design(), 0.9)
    label, bit = next((label, bit) for _, label, bit in net.endpoints() if label == "TRELLIS_DPR16X4 ram")
    path = net.trace(bit)
    assert [hop[1] for hop in path] == ["TRELLIS_FF", "LUT4", "TRELLIS_DPR16X4", "LUT4"]
    assert path[0][2] == "unit.addr[0]"
    # each hop's loads: the register drives one LUT, the LUT the read address, the read data the
    # register, the LUT and the RAM's own write data, the last LUT the write address and enable
    assert [hop[3] for hop in path] == [1, 1, 3, 2]


def test_fanout_lists_registers_by_their_loads(endpoints, capsys, tmp_path):
    import json

    design = _design()
    cells = design["modules"]["top"]["cells"]
    for i in range(5):  # ra's output now also drives five more LUTs
        cells[f"extra{i}"] = _cell("LUT4", {"A": 2}, {"Z": 20 + i})
    path = tmp_path / "ecp5_packed.json"
    path.write_text(json.dumps(design))
    assert endpoints.main(["--netlist", str(path), "--top", "0", "--fanout", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("register outputs by loads")))
    assert [line.split() for line in lines[at + 1:at + 3]] == [["6", "unit.addr[0]"], ["0", "other.data[0]"]]


def test_units_count_the_endpoints_over_the_threshold(endpoints, capsys, tmp_path):
    import json

    path = tmp_path / "ecp5_packed.json"
    path.write_text(json.dumps(_design()))
    assert endpoints.main(["--netlist", str(path), "--over", "3", "--units", "1", "--top", "0"]) == 0
    out = capsys.readouterr().out
    assert "       1      1  other" in out.splitlines()


def test_by_prefix_splits_the_top_level_by_the_names_first_word(endpoints, capsys, tmp_path):
    """A flattened top (nm_train's) has its registers at the top level: --by-prefix splits them
    by their name's first word; without it they are one "(top)" unit."""
    import json

    design = _design()
    design["modules"]["top"]["netnames"] = {"unit.addr": {"bits": [2]}, "rank_mag3": {"bits": [6]},
                                            "x": {"bits": [10]}}
    path = tmp_path / "ecp5_packed.json"
    path.write_text(json.dumps(design))
    args = ["--netlist", str(path), "--over", "3", "--units", "1", "--top", "0"]
    assert endpoints.main(args) == 0
    plain = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["2", "2", "(top)"] in plain
    assert endpoints.main(args + ["--by-prefix"]) == 0
    split = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["1", "1", "(top)", "rank_"] in split and ["1", "1", "(top)", "ram_"] in split
    assert ["2", "2", "(top)"] not in split
