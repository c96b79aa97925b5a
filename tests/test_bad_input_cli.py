"""Command-line mistakes and output faults: a reader that closes the pipe early, an output
path under a file, --jobs below 1, and --set paths (list items reachable, mistakes blamed on
--set)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sparsim.cli import main

TINY = "examples/tiny_gemm.yaml"
SWEEP = ("name: s\nbase: {hardware: {preset: tiny}, workload: {kind: gemm, layers: "
         "[{rows: 4, k: 32, sparsity: '2:8'}]}}\nsweep: {grid: {hardware.chains: [1, 2]}}\n")


@pytest.mark.parametrize("argv", [["engines"], ["simulate", TINY, "--json"], ["simulate", TINY]],
                         ids=["engines", "simulate-json", "simulate"])
def test_closed_pipe_is_not_a_traceback(argv):
    """The reader is gone before sparsim writes (as `| head` after its first line)."""
    proc = subprocess.Popen([sys.executable, "-m", "sparsim.cli", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == "", err


def test_output_under_a_file_says_so(tmp_path, capsys, write_yaml):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    spec = write_yaml(SWEEP, "sweep.yaml")
    out = blocker / "report"
    assert main(["sweep", str(spec), "--out", str(out), "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sparsim: error: --out {out}: {blocker} is a file, not a folder"]
    assert main(["rtl", TINY, "-o", str(blocker / "sub" / "top.v")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sparsim: error: --output {blocker / 'sub' / 'top.v'}: {blocker} is a file, not a folder"]


@pytest.mark.parametrize("jobs", ["0", "-3"])
def test_jobs_below_one(tmp_path, capsys, write_yaml, jobs):
    spec = write_yaml(SWEEP, "sweep.yaml")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--jobs", jobs]) == 2
    assert capsys.readouterr().err.strip() == f"sparsim: error: --jobs: must be at least 1, not {jobs}"
    assert not (tmp_path / "out").exists()


def test_set_reaches_list_items(capsys):
    assert main(["simulate", TINY, "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["simulate", TINY, "--json", "--set", "workload.layers.0.rows=64"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["cycles"] > before["cycles"]


def test_sweep_parameter_reaches_list_items(tmp_path, capsys, write_yaml):
    spec = write_yaml(SWEEP.replace("hardware.chains: [1, 2]", "workload.layers.0.rows: [4, 64]"), "sweep.yaml")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    capsys.readouterr()
    lines = (tmp_path / "out" / "results.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines]
    col = rows[0].index("workload.layers.0.rows")
    assert [r[col] for r in rows[1:]] == ["4", "64"]


@pytest.mark.parametrize("item, pattern", [
    ("workload.layers.3.rows=4", "workload.layers: is a list of 1 item: the next part must be an index from 0 to 0, not '3'"),
    ("workload.layers.x.rows=4", "workload.layers: is a list of 1 item: the next part must be an index from 0 to 0, not 'x'"),
    ("hardware..chains=4", "hardware..chains: a key path has no empty parts"),
    ("seed.x=1", "seed: is not a mapping or a list, cannot set a key below it"),
    ("hardware.chains=0", "hardware.chains: input should be greater than 0, not 0"),
    ("workload.layers.0.sparsity=9:8", "workload.layers[0].sparsity: N must not exceed M, not 9:8"),
])
def test_set_mistakes_blame_set(capsys, item, pattern):
    assert main(["simulate", TINY, "--set", item]) == 2
    assert capsys.readouterr().err.strip() == f"sparsim: error: --set {item}: {pattern}"
