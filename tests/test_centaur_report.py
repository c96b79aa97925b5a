"""reports/centaur.py end to end on one model and batch: the recsys simulator through the
public engine API, beside the modelled and a given measured CPU (a smoke run: nothing timed)."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sparsim.dataflow.dlrm import MODELS
from sparsim.simulator.cpu_model import HARPV2_XEON, dlrm_batch_time

REPO = Path(__file__).resolve().parent.parent


def test_centaur_script_writes_consistent_rows(tmp_path):
    measured = tmp_path / "cpu.json"
    measured.write_text(json.dumps({"results": [
        {"model": "rm1", "batch": 2, "distribution": "uniform", "fp32": {"median_ms": 2.0}}]}))
    out = tmp_path / "centaur"
    subprocess.run([sys.executable, str(REPO / "reports" / "centaur.py"), "--models", "rm1", "--batches", "2",
                    "--exponent", "1.1", "--cpu-overhead-us", "3", "--measured", str(measured), "--out", str(out)],
                   check=True, capture_output=True, timeout=600)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["model"], r["batch"], r["indices"], float(r["exponent"])) for r in rows] == [
        ("rm1", "2", "uniform", 0.0), ("rm1", "2", "zipf", 1.1)]
    slow_cpu = dataclasses.replace(HARPV2_XEON, op_overhead_us=3.0)
    for r in rows:
        fpga_ms = float(r["fpga_ms"])
        assert fpga_ms == pytest.approx(int(r["cycles"]) / 200e3)  # harpv2 runs at 200 MHz
        cpu_ms = dlrm_batch_time(MODELS["rm1"], 2, slow_cpu, exponent=float(r["exponent"])).total_s * 1e3
        assert float(r["cpu_model_ms"]) == pytest.approx(cpu_ms)
        assert float(r["speedup_vs_model"]) == pytest.approx(cpu_ms / fpga_ms)
        # Steady state: weights load once, so a batch in a run of four costs less than one alone.
        assert 0 < float(r["fpga_steady_ms"]) < fpga_ms
        assert float(r["speedup_steady_vs_model"]) == pytest.approx(cpu_ms / float(r["fpga_steady_ms"]))
        assert r["fpga_busiest"] in json.loads(r["breakdown_cycles"])
    assert float(rows[0]["speedup_vs_measured"]) == pytest.approx(2.0 / float(rows[0]["fpga_ms"]))
    assert rows[1]["speedup_vs_measured"] == ""  # no measured row for Zipf
    table = (out / "table.md").read_text()
    assert "1.7-17.2x" in table and table.count("| RM1 | 2 |") == 2
