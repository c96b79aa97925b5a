"""The recsys cycle simulator (simulator/recsys.py) against docs/recsys.md: a hand-derived
Program, time accounting, and laws (more tags or bandwidth never slower, the channel bound,
skew through the line cache)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cases import rs_random_design_point
from sparsim import engine as engines
from sparsim.cli import main
from sparsim.dataflow.config import design_point_from_dict
from sparsim.dataflow.recsys import compile_design_point
from sparsim.simulator.recsys import ACTIVITIES, run

HAND_HW = {"engine": "recsys", "clock_mhz": 100, "gather_units": 1, "max_outstanding": 1, "line_bytes": 16,
           "pool_lanes": 16, "cache_kib": 0, "rows": 1, "cols": 1, "mini_batch": 1,
           "index_buffer_kib": 1, "pooled_buffer_kib": 1, "act_buffer_kib": 1, "weight_buffer_kib": 1,
           "out_buffer_kib": 1, "memory": {"channels": 1, "bytes_per_cycle": 16, "latency_cycles": 4}}
HAND_WL = {"kind": "dlrm", "dense_features": 1, "bottom": [1], "top": [1], "dim": 16, "table_rows": [4],
           "lookups": 1, "batch": 1}


def _point(hw: dict, wl: dict, seed: int = 0):
    return design_point_from_dict({"hardware": hw, "workload": wl, "seed": seed})


def test_hand_derived_program():
    """One sample, one table of 16-byte rows, a 1 x 1 array (L = 3), 1 channel of 16 B/cycle
    (a line per cycle), latency 4, one tag per requester, concat.

    Instructions: LOAD weights (layer 0: 1 B + 4 B bias, layer 1: 17 B + 4 B bias, each part
    line aligned: 5 lines), LOAD dense (1 line), LOAD index (2 positions + 1 index = 12 B:
    1 line), GATHER (the row is one line), GEMM bottom (P=1, K=1, Q=1), INTER, GEMM top
    (K = 1 + 16 = 17), STORE (4 B: 1 line).

    Loader, one tag: weight lines handshaken 0, 5, 10, 15, 20, delivered 4, 9, 14, 19, 24 (each
    tag returns the cycle after delivery); dense line 25 -> 29; index line 30 -> 34. A LOAD is
    done LOAD_DONE_CYCLES (1) after its last line's write: weights 25, dense 30, index 35.
    Gather: index LOAD done in 35, so the GATHER starts in 36; its walker offers the row from
    36 + WALK_CYCLES (8) = 44, the request goes in 44, delivered 48, pooled 49 (16 elements,
    16 lanes): the GATHER is done in 49.
    Dense: OS fold = 2R + C + K - 2 + L = K + 4; GEMM cycles = DECODE (1) + READ (4) + fold +
    POST (4); INTER (concat) = DECODE (1) + P x tables x ceil(dim / C) + POST (4).
    Bottom GEMM: weights (25) and dense (30) done, so it starts 31, 5 + 5 + 4 = 14 cycles: 31..44.
    INTER: waits for the gather (49): 50, 1 + 16 + 4 = 21 cycles: 50..70.
    Top GEMM: 71, 5 + 21 + 4 = 30 cycles: 71..100. STORE: its write handshaken 101, done 101.
    END completes in 102: 103 cycles. Dense stalls: weights 0..25 (26), dense load 26..30 (5),
    gather 45..49 (5), tail 101..102 (2); with 14 + 21 + 30 busy cycles: 103.
    """
    program = compile_design_point(_point(HAND_HW, HAND_WL))
    timed = run(program)
    assert timed.cycles == 103
    assert timed.stalls["dense_weights"] == 26 and timed.stalls["dense_load"] == 5
    assert timed.stalls["dense_gather"] == 5 and timed.stalls["dense_tail"] == 2
    assert (timed.activity["bottom_mlp"], timed.activity["interaction"], timed.activity["top_mlp"]) == (14, 21, 30)
    assert timed.activity["gather"] == 49 - 36 + 1 and timed.activity["pooling"] == 1
    assert timed.counters["loader_lines"] == 7 and timed.counters["requests"] == 1
    assert timed.counters["store_lines"] == 1 and timed.counters["channel_queue_cycles"] == 0


def test_hand_derived_empty_bags():
    """Empty bags cost the index walker a cycle each. As the first program with no lookups: the
    index block is two positions (one line, written 34, done 35), the GATHER starts in 36 and its
    walker steps over the empty bag in 36 + WALK_CYCLES - 1 = 43, where the GATHER is done; the
    bottom GEMM runs 31..44, so the INTER follows it without a gather stall: 45..65, top GEMM
    66..95, STORE 96, END 97: 98 cycles. With two samples in one mini-batch the two empty bags
    take 43 and 44: the gather is busy 36..44."""
    one = run(compile_design_point(_point(HAND_HW, {**HAND_WL, "lookups": 0})))
    assert one.cycles == 98 and one.stalls["dense_gather"] == 0
    assert one.activity["gather"] == 8 and one.counters["requests"] == 0
    two = run(compile_design_point(_point({**HAND_HW, "mini_batch": 2}, {**HAND_WL, "lookups": 0, "batch": 2})))
    assert two.activity["gather"] == 9


def test_hand_derived_cache_hit():
    """As above but two 8-byte rows (both in one 16-byte line) and bags of two lookups, so the
    two requests name the same line whatever the indices. Weights take 4 lines (written 19, done
    20), dense 24 (done 25), index (2 positions + 2 indices, 16 B) 29 (done 30). Gather: it
    starts in 31, the walker offers row 0 from 39 and row 1 from 40 (one row per cycle); the
    first request (39) misses, delivered 43 (which fills the cache), pooled 44; the tag returns,
    the second request (45) hits: delivered 45 + CACHE_HIT_CYCLES = 47, pooled 48. Bottom GEMM
    26..39; INTER (1 + 8 + 4 cycles) 49..61, top GEMM (K = 9: 5 + 13 + 4 cycles) 62..83, STORE
    84, END 85: 86 cycles. Without the cache the second request goes to memory: delivered
    max(45 + 4, 44) = 49, pooled 50, and everything after shifts by 2: 88 cycles."""
    wl = {**HAND_WL, "dim": 8, "table_rows": [2], "lookups": 2}
    cached = run(compile_design_point(_point({**HAND_HW, "cache_kib": 0.0625}, wl)))
    assert cached.counters["cache_hits"] == 1 and cached.counters["cache_misses"] == 1
    assert cached.cycles == 86
    uncached = run(compile_design_point(_point(HAND_HW, wl)))
    assert uncached.counters["cache_hits"] == 0 and uncached.cycles == 88


def _small(seed=0, **hw):
    wl = {"kind": "dlrm", "dense_features": 8, "bottom": [8, 4], "top": [8, 1], "dim": 24,
          "table_rows": [500, 400, 300], "lookups": 6, "batch": 12, "bags": "variable",
          "indices": {"distribution": "zipf", "exponent": 0.8}}
    base = {"preset": "tiny", "engine": "recsys", "cache_kib": 0}
    return _point({**base, **hw}, wl, seed)


@pytest.mark.parametrize("seed", range(3))
def test_dense_time_accounts_for_every_cycle(seed):
    timed = run(compile_design_point(_small(seed, gather_units=3)))
    dense = timed.activity["bottom_mlp"] + timed.activity["interaction"] + timed.activity["top_mlp"]
    assert dense + sum(v for k, v in timed.stalls.items() if k.startswith("dense_")) == timed.cycles
    assert timed.counters["overlap_cycles"] <= min(timed.activity["gather"], dense)


@pytest.mark.parametrize("seed", range(3))
def test_more_tags_more_bandwidth_or_less_latency_never_slower(seed):
    def cycles(**hw):
        return run(compile_design_point(_small(seed, **hw))).cycles

    tags = [cycles(max_outstanding=n) for n in (1, 2, 4, 8, 16)]
    assert tags == sorted(tags, reverse=True) and tags[0] > tags[-1]
    bandwidth = [cycles(memory={"channels": 2, "bytes_per_cycle": b, "latency_cycles": 6}) for b in (1, 2, 4, 16)]
    assert bandwidth == sorted(bandwidth, reverse=True)
    latency = [cycles(memory={"channels": 2, "bytes_per_cycle": 4, "latency_cycles": n}) for n in (2, 6, 20, 60)]
    assert latency == sorted(latency)


@pytest.mark.parametrize("seed", range(3))
def test_channels_bound_the_time(seed):
    """Every line (loads, misses, stores) holds its channel for beats cycles: with requests
    spread over the channels, the Program cannot be shorter than all lines over all channels."""
    point = _small(seed, max_outstanding=32)
    program = compile_design_point(point)
    timed = run(program)
    beats = -(-16 // 4)
    lines = timed.counters["loader_lines"] + timed.counters["cache_misses"] + timed.counters["store_lines"]
    assert timed.cycles >= lines * beats / 2
    assert timed.activity["gather"] + timed.activity["load"] >= timed.counters["cache_misses"] * beats / 2


def test_skew_changes_the_outcome_through_the_cache():
    """RM1's shapes with tables cut to 100,000 rows on harpv2 (64 KiB cache): Zipf indices hit
    the cache and finish sooner; uniform ones almost never hit."""
    def timed(dist):
        point = design_point_from_dict({"hardware": {"preset": "harpv2"}, "workload": {
            "kind": "dlrm", "model": "rm1", "max_rows": 100_000, "batch": 64,
            "indices": {"distribution": dist, "exponent": 1.05}}})
        return run(compile_design_point(point))

    uniform, zipf = timed("uniform"), timed("zipf")
    assert uniform.counters["cache_hits"] < 0.01 * uniform.counters["requests"]
    assert zipf.counters["cache_hits"] > 0.1 * zipf.counters["requests"]
    assert zipf.cycles < uniform.cycles


def test_simulate_reports_the_breakdown_and_rates(write_yaml, capsys):
    path = write_yaml("hardware: {preset: harpv2}\nworkload: {kind: dlrm, model: rm1, max_rows: 10000, "
                      "batch: 32, indices: {distribution: zipf, exponent: 1.1}}\n")
    assert main(["simulate", str(path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["inferences_per_s"] == pytest.approx(32 / row["seconds"])
    assert row["energy_per_inference_j"] > 0 and row["bandwidth_gbps"] > 0
    assert {f"op_cycles_{a}" for a in ACTIVITIES} <= set(row)
    assert row["mean_in_flight"] > 1 and row["peak_in_flight"] <= 9 * 64
    eng = engines.get("recsys")
    result = eng.evaluate(design_point_from_dict({"hardware": {"preset": "tiny", "engine": "recsys"},
                                                  "workload": {**HAND_WL, "batch": 2}}))
    assert result["cycles"] == result.metrics["cycles"] and np.isfinite(result["energy_j"])


@pytest.mark.parametrize("seed", range(3))
def test_more_gather_units_help_a_gather_bound_run(seed):
    """With one tag per unit the gathers are latency bound, so four units are faster than one.
    More units are not exactly monotone in general: a different cut of the bags changes which
    requests meet on a channel, and the dense engine sees the gathers finish a few cycles
    earlier or later; the law kept here is that adding units never costs more than 2 %."""
    def cycles(units, tags):
        return run(compile_design_point(_small(seed, gather_units=units, max_outstanding=tags))).cycles

    assert cycles(4, 1) < cycles(1, 1)
    one = cycles(1, 2)
    assert all(cycles(g, 2) <= 1.02 * one for g in (2, 3, 4, 8))


def test_back_to_back_batches_amortise_the_weight_load_and_overlap():
    """Four batches in one Program take less than four single-batch Programs: the weights load
    once and the next batch's gathers overlap this batch's MLPs; the rates count every sample."""
    def point(batches):
        return design_point_from_dict({"hardware": {"preset": "harpv2"}, "workload": {
            "kind": "dlrm", "model": "rm1", "max_rows": 100_000, "batch": 16, "batches": batches}})

    one = run(compile_design_point(point(1))).cycles
    four = run(compile_design_point(point(4))).cycles
    assert four < 4 * one
    result = engines.get("recsys").evaluate(point(4))
    assert result["inferences_per_s"] == pytest.approx(64 / result["seconds"])


RS_SWEEP = """
name: rs
base:
  hardware: {preset: harpv2}
  workload: {kind: dlrm, model: rm1, max_rows: 20000, batch: 16, indices: {distribution: uniform, exponent: 1.2}}
sweep:
  grid:
    hardware.max_outstanding: [2, 32]
    workload.indices.distribution: [uniform, zipf]
objectives: {inferences_per_s: max, bandwidth_gbps: max}
"""


def test_sweep_runs_recsys_points(write_yaml, tmp_path):
    import csv

    path = write_yaml(RS_SWEEP, "rs.yaml")
    out = tmp_path / "rs"
    assert main(["sweep", str(path), "--out", str(out), "--jobs", "1"]) == 0
    rows = {(int(r["hardware.max_outstanding"]), r["workload.indices.distribution"]): r
            for r in csv.DictReader((out / "results.csv").open())}
    assert len(rows) == 4 and all(r["feasible"] == "True" for r in rows.values())
    for dist in ("uniform", "zipf"):
        assert float(rows[32, dist]["inferences_per_s"]) > float(rows[2, dist]["inferences_per_s"])
    assert int(rows[32, "zipf"]["cache_hits"]) > int(rows[32, "uniform"]["cache_hits"])
    assert "## Pareto front" in (out / "report.md").read_text()


@pytest.mark.parametrize("dp", range(8))
def test_counts_match_the_bags(dp):
    """Independently of the kernel's address generation: every row touches the lines from its
    first to its last byte, every touched element is pooled once, loads move their lines."""
    point = rs_random_design_point(dp, 2)
    program = compile_design_point(point)
    timed = run(program)
    line, dim = point.hardware.line_bytes, program.plan.model.dim
    lines = elements = 0
    for base, bag in zip(program.table_base, program.bags):
        start = base + bag.indices * dim
        lines += int(((start + dim - 1) // line - start // line + 1).sum())
        elements += bag.indices.size * dim
    assert timed.counters["requests"] == lines
    assert timed.counters["cache_hits"] + timed.counters["cache_misses"] == lines
    assert timed.counters["pooled_elements"] == elements
    ins = program.instrs
    load = ins[ins["op"] == 1]
    assert timed.counters["loader_lines"] == int((load["p"].astype(int) | (load["k"].astype(int) << 16)).sum())
    if not point.hardware.cache_lines:
        assert timed.counters["cache_hits"] == 0


@pytest.mark.parametrize("dp", range(8))
def test_skipping_quiet_cycles_changes_nothing(dp):
    """The kernel jumps over cycles in which no engine can act; stepping through them gives
    the same cycles, activities, stalls and counters."""
    for seed in (1, 2):
        program = compile_design_point(rs_random_design_point(dp, seed))
        assert run(program) == run(program, skip_quiet=False)
    point = design_point_from_dict({"hardware": {"preset": "harpv2"}, "workload": {
        "kind": "dlrm", "model": ("rm1", "rm2", "rm3", "dlrm_kaggle")[dp % 4], "max_rows": 20_000, "batch": 8,
        "batches": 2}})
    program = compile_design_point(point)
    assert run(program) == run(program, skip_quiet=False)


@pytest.mark.parametrize("bytes_per_cycle", [3, 6, 16, 64])
def test_bandwidth_utilisation_is_against_whole_lines(bytes_per_cycle):
    """A channel moves one 16-byte line per ceil(16 / bytes_per_cycle) cycles, so that is its
    peak, and the achieved share of it stays at or below 1."""
    point = _small(0, max_outstanding=16, gather_units=4, rows=4, cols=4,
                   memory={"channels": 1, "bytes_per_cycle": bytes_per_cycle, "latency_cycles": 2})
    result = engines.get("recsys").evaluate(point)
    assert result["peak_bandwidth_gbps"] == pytest.approx(16 / -(-16 // bytes_per_cycle) * 100e6 / 1e9)
    assert 0 < result["bandwidth_utilisation"] <= 1


def test_tag_stalls_tell_link_saturation_from_round_trips():
    """RM1 on harpv2 with 64 tags per unit fills the link: the units mostly wait on it; with 2
    tags per unit the link idles and the units wait on the round trip."""
    def stalls(tags):
        point = design_point_from_dict({"hardware": {"preset": "harpv2", "max_outstanding": tags,
                                                     "cache_kib": 0},
                                        "workload": {"kind": "dlrm", "model": "rm1", "max_rows": 100_000,
                                                     "batch": 64}})
        return run(compile_design_point(point)).stalls

    full, few = stalls(64), stalls(2)
    assert full["gather_link"] > 4 * full["gather_tags"]
    assert few["gather_tags"] > 4 * few["gather_link"]
