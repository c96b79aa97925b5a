"""Tests of ``sparsim.simulator.cpu_model``: the analytical CPU-only DLRM baseline.

One case is derived by hand (docstring of ``test_hand_derived_case``); the rest are laws the
model must obey whatever its parameters: skew never slower, batch scaling, LLC size, bandwidth
and latency monotonicity, and the ideal-cache hit rate against brute force.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparsim.dataflow.dlrm import MODELS, DlrmModel
from sparsim.simulator.cpu_model import (
    HARPV2_XEON,
    CpuParams,
    dlrm_batch_time,
    harmonic,
    lines_per_row,
    llc_hit_rate,
    mean_bag,
)

TOY_CPU = CpuParams(
    name="toy", cores=1, clock_ghz=1.0, simd_fp32_lanes=8, fma_per_cycle=1, llc_mib=0.0,
    llc_latency_ns=10.0, llc_bandwidth_gbs=64.0, dram_latency_ns=100.0, dram_bandwidth_gbs=6.4,
    misses_per_core=4, line_bytes=64, gemm_efficiency=1.0, element_bytes=4, tdp_w=10.0,
    op_overhead_us=0.0)

TOY_MODEL = DlrmModel(name="toy", dense_features=8, bottom=(8,), top=(1,), dim=16,
                      table_rows=(1000, 1000), lookups=10, interaction="concat")


def test_hand_derived_case():
    """Toy CPU: 1 core at 1 GHz, 8 lanes x 1 FMA = 16 FLOP/ns, no usable LLC, DRAM 100 ns and
    6.4 GB/s, 4 fills in flight. Model: 8 dense -> 8, two 1000-row tables of dim 16 (64 B rows:
    one line), 10 lookups, concat (8 + 2 x 16 = 40) -> 1. Batch 4:

    - gathers: 4 x 10 x 2 = 80 lines, all misses; latency 80 x 100 ns / (1 core x 4) = 2000 ns;
      bandwidth 80 x 64 B / 6.4 GB/s = 800 ns; adds 80 x 16 / 8 per ns = 160 ns -> 2000 ns,
      latency-bound;
    - bottom: 2 x 4 x 8 x 8 = 512 FLOP / 16 = 32 ns vs 64 weights x 4 B / 6.4 GB/s = 40 ns (the
      weights do not fit the LLC) -> 40 ns;
    - concat: 4 x 40 x 4 B / 64 GB/s = 10 ns;
    - top: 2 x 4 x 40 = 320 FLOP / 16 = 20 ns vs 160 B / 6.4 GB/s = 25 ns -> 25 ns.
    Total 2075 ns; energy 10 W x 2075 ns.
    """
    t = dlrm_batch_time(TOY_MODEL, 4, TOY_CPU)
    assert t.llc_hit_rate == 0 and t.embedding_lines == 80 and t.embedding_bound == "latency"
    assert t.embedding_s == pytest.approx(2000e-9)
    assert t.bottom_mlp_s == pytest.approx(40e-9)
    assert t.interaction_s == pytest.approx(10e-9)
    assert t.top_mlp_s == pytest.approx(25e-9)
    assert t.total_s == pytest.approx(2075e-9)
    assert t.energy_j == pytest.approx(10 * 2075e-9)
    assert t.inferences_per_s == pytest.approx(4 / 2075e-9)


def test_hand_derived_cache_and_overhead():
    """An LLC that holds both tables and the weights: every line hits. Latency 80 x 10 ns / 4 =
    200 ns; bandwidth 80 x 64 / 64 GB/s = 80 ns; adds 160 ns -> 200 ns. Weights now come from
    the LLC: bottom max(32, 256 B / 64 GB/s = 4) = 32 ns, top max(20, 2.5) = 20 ns. A 1 us
    overhead per operator adds 2 (tables) + 1 + 1 + 1 us."""
    cpu = dataclasses.replace(TOY_CPU, llc_mib=1.0)
    t = dlrm_batch_time(TOY_MODEL, 4, cpu)
    assert t.llc_hit_rate == 1.0
    assert (t.embedding_s, t.bottom_mlp_s, t.top_mlp_s) == pytest.approx((200e-9, 32e-9, 20e-9))
    slow = dlrm_batch_time(TOY_MODEL, 4, dataclasses.replace(cpu, op_overhead_us=1.0))
    assert slow.total_s - t.total_s == pytest.approx(5e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_skew_never_slower(name):
    m = MODELS[name]
    for batch in (1, 16, 256):
        times = [dlrm_batch_time(m, batch, exponent=s) for s in (0.0, 0.3, 0.6, 0.9, 1.0, 1.2, 1.5, 2.5)]
        hits = [t.llc_hit_rate for t in times]
        assert hits == sorted(hits)
        totals = [t.total_s for t in times]
        assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(totals))
    # and skew matters where gathers dominate
    assert dlrm_batch_time(MODELS["rm2"], 64, exponent=1.2).total_s < 0.6 * dlrm_batch_time(MODELS["rm2"], 64).total_s


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("exponent", [0.0, 1.0])
def test_batch_scaling(name, exponent):
    """Doubling the batch never shortens a batch and at most doubles it: per-sample time
    never rises with the batch."""
    m = MODELS[name]
    for b in (1, 2, 4, 16, 64, 128):
        t1 = dlrm_batch_time(m, b, exponent=exponent).total_s
        t2 = dlrm_batch_time(m, 2 * b, exponent=exponent).total_s
        assert t1 <= t2 <= 2 * t1 * (1 + 1e-12)


def test_resources_monotone():
    m = MODELS["rm1"]
    base = dlrm_batch_time(m, 64).total_s
    for field, better in [("dram_bandwidth_gbs", 120.0), ("dram_latency_ns", 60.0), ("llc_mib", 70.0),
                          ("cores", 28), ("misses_per_core", 16), ("clock_ghz", 3.0)]:
        faster = dlrm_batch_time(m, 64, dataclasses.replace(HARPV2_XEON, **{field: better})).total_s
        assert faster <= base, field
    assert dlrm_batch_time(m, 64, dataclasses.replace(HARPV2_XEON, dram_bandwidth_gbs=120.0)).total_s < base


def test_variable_bags_use_the_mean_size():
    m = MODELS["dlrm_benchmark"]
    assert mean_bag(m) == 50.5  # uniform on [1, 100]
    assert mean_bag(m, min_bag=0) == 50.0
    assert mean_bag(MODELS["rm1"]) == 80
    t = dlrm_batch_time(m, 8)
    assert t.embedding_lines == pytest.approx(8 * 50.5 * 8 * 4)  # dim 64 x 4 B = 4 lines


@pytest.mark.parametrize("row_bytes, want", [
    (64, 1), (128, 2), (256, 4), (32, 1), (16, 1),
    (48, 1.5),  # rows at 0, 48, 96, 144 mod 192 touch 1, 2, 2, 1 lines
    (96, 2), (100, None), (24, None)])
def test_lines_per_row(row_bytes, want):
    # brute force over 64 consecutive rows (the pattern repeats within 64 rows)
    brute = np.mean([((r * row_bytes + row_bytes - 1) // 64) - (r * row_bytes // 64) + 1 for r in range(64)])
    assert lines_per_row(row_bytes, 64) == pytest.approx(brute)
    if want is not None:
        assert lines_per_row(row_bytes, 64) == want


@pytest.mark.parametrize("n", [1, 5, 32, 33, 100, 4097, 100_000])
@pytest.mark.parametrize("s", [0.0, 0.5, 1.0, 1.2, 2.0])
def test_harmonic_against_exact_sum(n, s):
    exact = math.fsum(r ** -s for r in range(1, n + 1))
    assert harmonic(n, s) == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("exponent", [0.0, 0.7, 1.0, 1.6])
@pytest.mark.parametrize("capacity", [0, 1, 7, 40, 95, 200])
def test_hit_rate_is_top_k_mass(exponent, capacity):
    """Brute force: list every row's probability over all tables, keep the ``capacity``
    largest. Integer capacities only (the model's capacity in rows is fractional in general)."""
    rows, weights = (10, 50, 35), (1.0, 2.0, 1.0)
    probs = []
    for n, w in zip(rows, weights):
        p = np.arange(1, n + 1, dtype=float) ** -exponent
        probs.extend(w * p / p.sum() / sum(weights))
    want = float(np.sort(probs)[::-1][:capacity].sum())
    got = llc_hit_rate(rows, weights, capacity, exponent)
    # ties (s = 0: equal rows in a table) may leave a few rows of room unused: allow the
    # mass of one row less than the brute force keeps
    assert want - max(probs) * 1.0001 <= got <= want + 1e-9


def test_rejects():
    with pytest.raises(ValueError, match="batch must be a positive integer, not 0"):
        dlrm_batch_time(TOY_MODEL, 0, TOY_CPU)
    with pytest.raises(ValueError, match="Zipf exponent must be a finite number >= 0, not -1"):
        dlrm_batch_time(TOY_MODEL, 1, TOY_CPU, exponent=-1)
    with pytest.raises(ValueError, match="toy: gemm_efficiency out of range: 1.5"):
        dataclasses.replace(TOY_CPU, gemm_efficiency=1.5)
    with pytest.raises(ValueError, match=r"toy: assumed names unknown fields \['cache'\]"):
        dataclasses.replace(TOY_CPU, assumed=("cache",))


def test_harpv2_parameters_are_broadwell_and_marked():
    x = HARPV2_XEON
    assert (x.simd_fp32_lanes, x.fma_per_cycle, x.misses_per_core, x.line_bytes) == (8, 2, 10, 64)
    assert x.peak_flops == pytest.approx(8 * 2 * 2 * 14 * 2.4e9)
    assert {"cores", "clock_ghz", "dram_bandwidth_gbs", "dram_latency_ns", "llc_mib"} <= set(x.assumed)


def test_benchmark_script_runs_and_writes_its_json(tmp_path):
    """bench_cpu_dlrm.py end to end on tiny tables (a smoke run: nothing is timed here)."""
    out = tmp_path / "cpu.json"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_cpu_dlrm.py"
    subprocess.run([sys.executable, str(script), "--models", "rm3", "--batches", "2", "--table-mib", "1",
                    "--min-time", "0", "--batches-pool", "1", "--out", str(out)], check=True,
                   capture_output=True, timeout=300)
    data = json.loads(out.read_text())
    assert data["machine"]["threads"] == 1 and data["cpu_model"] == "harpv2_xeon"
    assert data["scaling"]["rm3"]["rows_used"] == (1 << 20) // (10 * 32 * 4)
    rows = data["results"]
    assert [(r["model"], r["batch"], r["distribution"]) for r in rows] == [("rm3", 2, "uniform"), ("rm3", 2, "zipf")]
    for r in rows:
        assert r["fp32"]["calls"] >= 5 and r["int_golden"]["calls"] >= 2
        assert r["model_harpv2_full_tables"]["total_ms"] == pytest.approx(
            dlrm_batch_time(MODELS["rm3"], 2, exponent=r["exponent"]).total_s * 1e3)
