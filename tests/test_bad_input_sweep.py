"""Sweeps: sizes counted before expansion and refused above a limit the user can raise, ranges
with non-finite bounds, a point whose evaluation raises (a failed row, not an aborted sweep),
and a --scheduler that is malformed or unreachable (one line, quickly, nothing written)."""

from __future__ import annotations

import csv
import dataclasses
import re
import time

import pytest

import toy_engine
from sparsim import engine as engines
from sparsim.cli import main

BASE = ("name: s\nbase: {hardware: {preset: tiny}, workload: {kind: gemm, layers: "
        "[{rows: 4, k: 32, sparsity: '2:8'}]}}\n")


def _sweep(capsys, tmp_path, write_yaml, text: str, *extra: str) -> tuple[int, list[str]]:
    path = write_yaml(text, "sweep.yaml")
    code = main(["sweep", str(path), "--out", str(tmp_path / "out"), "--jobs", "1", *extra])
    return code, capsys.readouterr().err.strip().splitlines()


RANGE_CASES = [
    ("NaN bound", "{range: [1, .nan]}", r"range: bounds and step must be finite numbers, not \[1, nan\]"),
    ("infinite bound", "{range: [1, .inf]}", r"range: bounds and step must be finite numbers, not \[1, inf\]"),
    ("-inf bound", "{range: [-.inf, 4]}", r"range: bounds and step must be finite numbers"),
    ("NaN step", "{range: [1, 4, .nan]}", r"range: bounds and step must be finite numbers"),
    ("boolean bound", "{range: [true, 4]}", r"range: expected \[low, high\] or \[low, high, step\] numbers"),
    ("billions of values", "{range: [1, 10000000000]}",
     r"range: \[1, 10000000000\] gives 10,000,000,000 values, above the limit of 100,000 design points "
     r"\(raise it with --max-points\)"),
    ("tiny step", "{range: [100.0, 200.0, 1.0e-12]}", r"range: .* gives 100,000,000,000,001 values, above the limit"),
    ("overflowing span", "{range: [-1.0e+308, 1.0e+308, 1.0e-300]}", r"range: .* gives too many values"),
]


@pytest.mark.parametrize("values, pattern", [c[1:] for c in RANGE_CASES], ids=[c[0] for c in RANGE_CASES])
def test_bad_range_is_refused_before_expansion(capsys, tmp_path, write_yaml, values, pattern):
    code, err = _sweep(capsys, tmp_path, write_yaml, BASE + f"sweep: {{grid: {{hardware.chains: {values}}}}}\n")
    assert code == 2 and len(err) == 1, err
    assert re.search(r"sweep\.grid\.hardware\.chains\." + pattern, err[0]), err[0]
    assert not (tmp_path / "out").exists()


def test_product_is_counted_before_expansion(capsys, tmp_path, write_yaml):
    grid = ", ".join(f"p{i}: {{range: [1, 1000]}}" for i in range(6))  # 10^18 points, never expanded
    code, err = _sweep(capsys, tmp_path, write_yaml, BASE + f"sweep: {{grid: {{{grid}}}}}\n")
    assert code == 2 and len(err) == 1, err
    assert err[0].endswith("sweep: 1,000,000,000,000,000,000 design points, above the limit of 100,000 "
                           "(draw some with sweep.sample, or raise the limit with --max-points)"), err[0]


def test_limit_can_be_raised_and_lowered(capsys, tmp_path, write_yaml):
    text = BASE + "sweep: {grid: {hardware.chains: [1, 2, 3]}}\n"
    code, err = _sweep(capsys, tmp_path, write_yaml, text, "--max-points", "2")
    assert code == 2 and "sweep: 3 design points, above the limit of 2" in err[-1]
    code, err = _sweep(capsys, tmp_path, write_yaml, text, "--max-points", "3")
    assert code == 0, err
    code, err = _sweep(capsys, tmp_path, write_yaml, text, "--max-points", "0")
    assert code == 2 and err == ["sparsim: error: --max-points: must be at least 1, not 0"]


def test_sampling_counts_the_sample_not_the_product(capsys, tmp_path, write_yaml):
    # 640,000 combinations, above the limit; the 3 sampled points are what runs.
    text = BASE + "sweep: {grid: {hardware.chains: {range: [1, 64]}, seed: {range: [0, 9999]}}, sample: {n: 3, seed: 1}}\n"
    code, err = _sweep(capsys, tmp_path, write_yaml, text)
    assert code == 0, err
    assert len((tmp_path / "out" / "results.csv").read_text().splitlines()) == 4


def _raising_engine():
    def simulate(point):
        if point.hardware.lanes == 3:
            raise RuntimeError("boom in the simulator\nsecond line")
        return toy_engine.simulate(point)

    return engines.register(dataclasses.replace(toy_engine.ENGINE, simulate=simulate))


def test_a_point_that_raises_is_a_failed_row(capsys, tmp_path, write_yaml):
    eng = _raising_engine()
    try:
        text = ("name: s\nbase: {hardware: {preset: toy_small}, workload: {kind: vecsum, length: 64}}\n"
                "sweep: {grid: {hardware.lanes: [2, 3, 4]}}\n")
        path = write_yaml(text, "sweep.yaml")
        argv = ["sweep", str(path), "--out", str(tmp_path / "out"), "--jobs", "1"]
        assert main(argv) == 0
        out, err = capsys.readouterr()
        assert "3 points (2 feasible): 2 simulated, 0 reused from an earlier run, 0 dropped by the device " \
               "budget or constraints, 1 failed" in out
        assert "1 points failed (rerun to retry them); the first: failed: RuntimeError: boom in the simulator" in err
        rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
        assert [r["failed"] for r in rows] == ["", "True", ""]
        assert rows[1]["reason"] == "failed: RuntimeError: boom in the simulator"
        assert "1 failed" in (tmp_path / "out" / "report.md").read_text()
        # The failure is not stored: a rerun retries exactly that point.
        assert main(argv) == 0
        assert "0 simulated, 2 reused from an earlier run, 0 dropped by the device budget or " \
               "constraints, 1 failed" in capsys.readouterr().out
    finally:
        engines.unregister(eng.name)


@pytest.mark.parametrize("address, pattern", [
    ("not a url", r"--scheduler: expected an address such as tcp://10\.0\.0\.5:8786, not 'not a url'"),
    ("tcp://", r"--scheduler: expected an address such as"),
    ("ftp://host:1", r"--scheduler: expected an address such as"),
    ("tcp://127.0.0.1:1", r"--scheduler: cannot reach a Dask scheduler at tcp://127\.0\.0\.1:1: "),
])
def test_bad_scheduler_is_one_line_and_leaves_nothing(capsys, tmp_path, write_yaml, address, pattern):
    path = write_yaml(BASE, "sweep.yaml")
    t0 = time.monotonic()
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--scheduler", address]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.fullmatch(r"sparsim: error: " + pattern + r".*", err[0]), err
    assert not (tmp_path / "out").exists()
    assert time.monotonic() - t0 < 60  # bounded by CONNECT_TIMEOUT_S, not dask's default
