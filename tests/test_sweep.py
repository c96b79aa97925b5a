"""Sweep expansion, runner and report."""

from __future__ import annotations

import csv

from sparsim.simulator.report import pareto_front
from sparsim.simulator.sweep import expand, parse_sweep
from sparsim.cli import main

SPEC = """
name: t
base:
  hardware: {preset: tiny}
  workload: {kind: gemm, layers: [{rows: 8, k: 64, tokens: 2, sparsity: "2:8"}]}
sweep:
  grid:
    hardware.chains: [1, 2, 4]
    workload.layers: [[{rows: 8, k: 64, tokens: 2, sparsity: "2:8"}], [{rows: 8, k: 9000, sparsity: "8:8"}]]
  zip:
    - {hardware.chain_len: [2, 4], hardware.min_n: [2, 4]}
objectives: {dsp: min, cycles: min}
"""


def test_expand_grid_and_zip():
    spec = parse_sweep(__import__("yaml").safe_load(SPEC))
    points = expand(spec)
    assert len(points) == 3 * 2 * 2
    assert {(p["hardware.chain_len"], p["hardware.min_n"]) for p in points} == {(2, 2), (4, 4)}


def test_sweep_writes_report(write_yaml, tmp_path, capsys):
    path = write_yaml(SPEC, "s.yaml")
    out = tmp_path / "rep"
    assert main(["sweep", str(path), "--out", str(out), "--jobs", "2"]) == 0
    for name in ("results.csv", "spec.resolved.yaml", "report.md", "pareto.png", "breakdown.png"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 12
    infeasible = [r for r in rows if r["feasible"] == "False"]
    assert len(infeasible) == 9
    assert sum("k: K=9000" in r["reason"] for r in infeasible) == 6
    assert sum("N=2 is below hardware.min_n=4" in r["reason"] for r in infeasible) == 3
    report = (out / "report.md").read_text()
    assert "## Pareto front" in report and "## Infeasible points" in report


def test_pareto_front():
    rows = [
        {"feasible": True, "a": 1, "b": 5},
        {"feasible": True, "a": 2, "b": 2},
        {"feasible": True, "a": 3, "b": 3},  # dominated by (2, 2)
        {"feasible": True, "a": 4, "b": 1},
        {"feasible": False, "a": 0, "b": 0},  # infeasible never counts
    ]
    assert pareto_front(rows, {"a": "min", "b": "min"}) == [0, 1, 3]
    assert pareto_front(rows, {"a": "max", "b": "max"}) == [0, 2, 3]


def _spec(extra: str):
    return parse_sweep(__import__("yaml").safe_load(
        "name: t\nbase:\n  hardware: {preset: u280}\n"
        "  workload: {kind: llm, model: llama2-7b, layers: 1}\n" + extra))


def test_range_and_seeded_sample():
    spec = _spec("sweep:\n  grid:\n    hardware.chains: {range: [16, 160, 16]}\n"
                 "    hardware.chain_len: [4, 8, 16]\n  sample: {n: 7, seed: 3}\n")
    assert spec.size == 10 * 3
    a, b = expand(spec), expand(spec)
    assert a == b and len(a) == 7
    assert len({tuple(sorted(p.items())) for p in a}) == 7, "samples are distinct"
    other = expand(_spec("sweep:\n  grid:\n    hardware.chains: {range: [16, 160, 16]}\n"
                         "    hardware.chain_len: [4, 8, 16]\n  sample: {n: 7, seed: 4}\n"))
    assert other != a
    full = expand(_spec("sweep:\n  grid:\n    hardware.chains: {range: [16, 160, 16]}\n"
                        "    hardware.chain_len: [4, 8, 16]\n"))
    assert all(p in full for p in a)


def test_constraints_drop_points_before_they_run(tmp_path):
    from sparsim.simulator.sweep import run_sweep

    spec = _spec("sweep:\n  grid:\n    hardware.chains: [64, 96, 192]\n"
                 "constraints: {max: {dsp: 1500}}\n")
    rows = run_sweep(spec, tmp_path, jobs=1, progress=False).rows
    by_chains = {r["hardware.chains"]: r for r in rows}
    assert by_chains[64]["feasible"] and "cycles" in by_chains[64]
    assert by_chains[96]["reason"] == "dsp 1,536 is over the limit 1,500"
    assert "cycles" not in by_chains[96], "dropped points are not simulated"
    assert by_chains[192]["reason"].startswith("over the device budget: uram")
    spec = _spec("sweep:\n  grid:\n    hardware.chains: [192]\nconstraints: {within_device: false}\n")
    assert run_sweep(spec, tmp_path / "b", jobs=1, progress=False).rows[0]["feasible"]
