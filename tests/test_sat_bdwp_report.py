"""reports/sat_bdwp.py end to end on one network at a small batch: the nm_train simulator through
the public engine API; the report's speedups are the ratios of the step times it tabulates (a
smoke run: nothing timed)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from sparsim.dataflow.config import design_point_from_dict
from sparsim.engine import get

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "reports" / "sat_bdwp.py"


def test_sat_bdwp_script_writes_consistent_rows(tmp_path):
    out = tmp_path / "sat"
    subprocess.run([sys.executable, str(SCRIPT), "--networks", "resnet18-cifar", "--batch", "2", "--out", str(out)],
                   check=True, capture_output=True, timeout=600)
    rows = {(r["mode"], r["sparsity"], r["pregen"]): r for r in csv.DictReader((out / "steps.csv").open())}
    assert set(rows) == {("dense", "-", "pre"), ("bdwp", "2:8", "inline")} | {
        (mode, nm, "pre") for mode in ("sr_ste", "bdwp") for nm in ("2:8", "2:4", "4:8", "1:8")}
    # One row recomputed through the public engine API.
    point = design_point_from_dict({"hardware": {"preset": "vcu1525"}, "workload": {
        "kind": "train", "network": "resnet18-cifar", "batch": 2, "mode": "bdwp", "sparsity": "2:8"}})
    assert float(rows[("bdwp", "2:8", "pre")]["step_ms"]) == pytest.approx(get("nm_train").evaluate(point)["latency_ms"])
    dense, bdwp = (float(rows[k]["step_ms"]) for k in (("dense", "-", "pre"), ("bdwp", "2:8", "pre")))
    report = (out / "report.md").read_text()
    assert f"| resnet18-cifar | {dense:,.1f} |" in report
    assert f"{dense / bdwp:.2f}x" in report and "SAT reports 1.75x" in report
    assert (out / "time_per_pass.png").stat().st_size > 0


def test_sat_bdwp_script_refuses_an_unknown_network(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--networks", "resnet19", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--networks: resnet19 not among" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "x").exists()
