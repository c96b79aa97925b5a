"""benchmarks/routed_endpoints.py on a hand-made nextpnr report and packed netlist."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "routed_endpoints.py"


@pytest.fixture(scope="module")
def routed():
    spec = importlib.util.spec_from_file_location("routed_endpoints", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(kind, inputs, outputs):
    return {"type": kind, "parameters": {},
            "port_directions": {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}},
            "connections": {**{p: [b] for p, b in inputs.items()}, **{p: [b] for p, b in outputs.items()}}}


def _folder(tmp_path, detailed=True):
    # two registers of one vector (sel[0], sel[1]) and one of another (count), a LUT between them
    cells = {"sel_TRELLIS_FF_Q": _cell("TRELLIS_FF", {"DI": 5}, {"Q": 2}),
             "sel_TRELLIS_FF_Q_1": _cell("TRELLIS_FF", {"DI": 5}, {"Q": 3}),
             "count_TRELLIS_FF_Q": _cell("TRELLIS_FF", {"DI": 5}, {"Q": 4}),
             "lut": _cell("LUT4", {"A": 2, "B": 3, "C": 4}, {"Z": 5})}
    netnames = {"sel": {"bits": [2, 3]}, "count": {"bits": [4]}, "d": {"bits": [5]}}
    (tmp_path / "ecp5_packed.json").write_text(json.dumps(
        {"modules": {"top": {"attributes": {"top": 1}, "cells": cells, "netnames": netnames}}}))
    report = {"fmax": {"clk": {"achieved": 125.0, "constraint": 200}},
              "critical_paths": [{"path": [
                  {"type": "clk-to-q", "delay": 0.5, "from": {"cell": "count_TRELLIS_FF_Q"}, "to": {"cell": "count_TRELLIS_FF_Q"}},
                  {"type": "routing", "delay": 7.0, "net": "sel[1]", "from": {"cell": "sel_TRELLIS_FF_Q_1"}, "to": {"cell": "lut"}},
                  {"type": "logic", "delay": 0.5, "from": {"cell": "lut"}, "to": {"cell": "lut"}}]}]}
    if detailed:
        report["detailed_net_timings"] = [{"net": "d", "driver": "lut", "port": "F", "endpoints": [
            {"cell": "sel_TRELLIS_FF_Q", "port": "M", "delay": [3.0, 8.0]},
            {"cell": "sel_TRELLIS_FF_Q_1", "port": "M", "delay": [3.0, 6.0]},
            {"cell": "count_TRELLIS_FF_Q", "port": "CE", "delay": [2.0, 7.0]}]}]
    (tmp_path / "report.json").write_text(json.dumps(report))
    return tmp_path


def test_groups_by_register_signal_and_counts_the_late_ones(routed, tmp_path, capsys):
    assert routed.main([str(_folder(tmp_path)), "--period", "6.67"]) == 0
    out = [line.split() for line in capsys.readouterr().out.splitlines()]
    # sel: two endpoints, one late (8.0 on M); count: one, late (7.0 on CE)
    assert ["8.00", "1", "2", "M", "sel"] in out
    assert ["7.00", "1", "1", "CE", "count"] in out
    # the critical path's routing hop names the net's loads: sel[1] drives one LUT input
    assert any(row[:4] == ["7.50", "7.00", "routing", "1"] for row in out)
    assert routed.main([str(tmp_path), "--period", "7.5"]) == 0
    assert ["8.00", "1", "2", "M", "sel"] in [line.split() for line in capsys.readouterr().out.splitlines()]


def test_a_report_without_detailed_timings_is_one_line_and_exit_2(routed, tmp_path, capsys):
    assert routed.main([str(_folder(tmp_path, detailed=False))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--detailed-timing-report" in err[0]
