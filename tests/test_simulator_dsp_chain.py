"""The dsp_chain simulator: the timing contract by hand on a small case, and laws over many."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.config import design_point_from_dict
from dataflow.dsp_chain import ENGINE, compile_design_point
from simulator.dsp_chain import STALL_CAUSES, run


def tiny(layers, **hw):
    return design_point_from_dict({
        "hardware": {"preset": "tiny", **hw},
        "workload": {"kind": "gemm", "layers": layers},
    })


def test_hand_computed_timing():
    """P=2, L=4, M=8, BW=8 B/cycle, latency 6, PIPE=6; one dense INT8 GEMV of 2×32.

    LDA: taken 0, request 1, 4 rows of 8 B arrive 7..10; loader free at 11.
    MM: taken 11, request 12, 8 records of 8 B arrive 18..25; compute 26..33 + PIPE → done 39.
    Store: one 8 B row offered and accepted in 40. END completes in 41 → 42 cycles.
    """
    point = tiny([{"rows": 2, "k": 32, "tokens": 1, "sparsity": "8:8", "weight_bits": 8}])
    result = run(compile_design_point(point))
    assert result.cycles == 42
    assert result.bytes_read == 4 * 8 + 8 * 8
    assert result.bytes_written == 8
    assert result.stalls["weight_stream"] == 26
    assert result.stalls["pipeline_drain"] == 6
    assert result.stalls["tail"] == 2
    assert result.issue_cycles == 8


def test_hand_computed_double_buffering_and_sync():
    """Two chunks of one layer, then a second layer; same hardware as above but activation
    banks of 4 rows (one token each). Records and rows are 8 B, so one per cycle.

    LDA0 (sync, bank 0): request 1, rows 7..10, loader free 11.
    MM0: request 12, records 18..25, compute 26..33, done 39; store 40.
    LDA1 (bank 1): its bank has no readers yet, request 14 while MM0's records stream; its rows
      queue behind them: 26..29. (Single-buffered it would wait for MM0 to finish: request 40.)
    MM1: request 31, records 37..44, compute 45..52, done 58; store 59.
    LDA2 (sync, bank 0): waits for every store: request 60, rows 66..69.
    MM2: request 71, records 77..84, compute 85..92, done 98; store 99. END in 100 → 101 cycles.
    """
    layer = {"rows": 2, "k": 32, "sparsity": "8:8", "weight_bits": 8}
    point = tiny([{**layer, "name": "a", "tokens": 2}, {**layer, "name": "b", "tokens": 1}],
                 act_buffer_kib=0.0625)
    program = compile_design_point(point)
    assert list(program.instrs["op"]) == [1, 2, 1, 2, 1, 2, 0]
    assert list(program.instrs["sync"][[0, 2, 4]]) == [1, 0, 1]
    result = run(program)
    assert result.cycles == 101
    assert result.operator_cycles == {"a": 59, "b": 42}
    assert result.stalls["weight_stream"] == 26 + 5 + 26


def test_edited_program_is_timed_afresh():
    """The simulator derives its arrays from the instructions on every run (no stale cache).

    The GEMV of test_hand_computed_timing with 7 instead of 8 weight records: records 18..24,
    compute 25..31, done 37, store 38, END 39: 40 cycles (one record and one step fewer).
    """
    program = compile_design_point(
        tiny([{"rows": 2, "k": 32, "tokens": 1, "sparsity": "8:8", "weight_bits": 8}])
    )
    assert run(program).cycles == 42
    program.instrs[1]["steps"] = 7
    assert run(program).cycles == 40


def _layers(rng):
    m = 8
    return [{
        "name": f"l{i}",
        "rows": int(rng.integers(1, 40)),
        "k": int(rng.integers(8, 200)),
        "tokens": int(rng.integers(1, 20)),
        "sparsity": str(rng.choice(["2:8", "4:8", "8:8"])),
        "weight_bits": int(rng.choice([4, 8])),
    } for i in range(int(rng.integers(1, 4)))]


@pytest.mark.parametrize("seed", range(25))
def test_timing_laws(seed):
    rng = np.random.default_rng(seed)
    layers = _layers(rng)
    base = dict(act_buffer_kib=2, out_buffer_kib=1, weight_buffer_kib=8)
    r = run(compile_design_point(tiny(layers, **base)))
    # Time accounting: issue cycles plus every stall cause add up to the cycle count.
    assert r.issue_cycles + sum(r.stalls[c] for c in STALL_CAUSES) == r.cycles
    assert sum(r.operator_cycles.values()) == r.cycles
    # No engine beats its bound: reads at 8 B/cycle, MACs at P*L*lanes per cycle.
    assert r.cycles >= r.bytes_read / 8
    assert 0 < r.mac_utilisation <= 1
    # Max-plus monotonicity: more bandwidth or less latency never costs cycles.
    faster = run(compile_design_point(tiny(layers, **base, memory={"channels": 4, "bytes_per_cycle": 4, "latency_cycles": 6})))
    slower = run(compile_design_point(tiny(layers, **base, memory={"channels": 2, "bytes_per_cycle": 4, "latency_cycles": 30})))
    assert faster.cycles <= r.cycles <= slower.cycles


def test_llm_decode_reports_tokens_per_second():
    point = design_point_from_dict({
        "hardware": {"preset": "u280"},
        "workload": {"kind": "llm", "model": "llama2-7b", "phase": "decode", "weight_bits": 4,
                     "sparsity": "4:16", "layers": 2},
    })
    r = ENGINE.evaluate(point)
    assert r["tokens_per_s"] == pytest.approx(1 / r["seconds"])
    assert set(r.breakdown) >= {"q", "gate", "down", "attn_qk", "lm_head"}
    # Decode streams weights: the time is bounded below by bytes / peak bandwidth, the chains
    # wait on the weight stream, and a GEMV leaves one of the two lanes idle.
    assert r["cycles"] >= r["bytes_read"] / 2048
    assert r["mac_utilisation"] < 0.5
    assert r.stalls["weight_stream"] > 0.1 * r["issue_cycles"]
    assert r["energy_j"] == pytest.approx(sum(
        r[k] for k in ("energy_mac_j", "energy_onchip_j", "energy_offchip_j", "energy_static_j")))


def test_sparser_weights_stream_fewer_bytes():
    def decode(sp):
        return ENGINE.evaluate(design_point_from_dict({
            "hardware": {"preset": "u280"},
            "workload": {"kind": "llm", "model": "llama2-7b", "sparsity": sp, "layers": 1},
        }))
    dense, half, quarter = decode("16:16"), decode("8:16"), decode("4:16")
    # INT4 8:16 carries a 4-bit index per kept weight: as many bytes as dense INT4.
    assert half["bytes_read"] == dense["bytes_read"]
    assert quarter["bytes_read"] < half["bytes_read"]
    assert quarter["cycles"] < half["cycles"]


def test_energy_table_is_overridable_from_yaml(write_yaml, capsys):
    import json

    from sparsim.cli import main

    base = ("hardware: {preset: u280}\n"
            "workload: {kind: llm, model: llama2-7b, layers: 1}\n")
    runs = {}
    for name, extra in (("default", ""), ("cheap_hbm", "energy: {offchip_byte_pj: 3.1, static_w: 0}\n")):
        assert main(["simulate", str(write_yaml(base + extra, f"{name}.yaml")), "--json"]) == 0
        runs[name] = json.loads(capsys.readouterr().out)
    d, c = runs["default"], runs["cheap_hbm"]
    assert c["energy_offchip_j"] == pytest.approx(d["energy_offchip_j"] / 10)
    assert c["energy_static_j"] == 0 and d["energy_static_j"] == pytest.approx(20 * d["seconds"])
    assert c["energy_mac_j"] == d["energy_mac_j"] and c["cycles"] == d["cycles"]
    bad = write_yaml(base + "energy: {offchip_byte_pj: -1}\n", "bad.yaml")
    assert main(["simulate", str(bad)]) == 2
    assert "energy.offchip_byte_pj: " in capsys.readouterr().err
