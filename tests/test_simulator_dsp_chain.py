"""The dsp_chain simulator: the timing contract by hand on a small case, and laws over many."""

from __future__ import annotations

import numpy as np
import pytest

from cases import CASES_BY_ID
from sparsim.dataflow.config import design_point_from_dict
from sparsim.dataflow.dsp_chain import ENGINE, compile_design_point
from sparsim.simulator.dsp_chain import STALL_CAUSES, run


def tiny(layers, **hw):
    return design_point_from_dict({
        "hardware": {"preset": "tiny", **hw},
        "workload": {"kind": "gemm", "layers": layers},
    })


def test_hand_computed_timing():
    """Case hand-gemv of tests/cases.py (derivation there): 46 cycles, of which the chains
    issue 8 steps, wait 26 cycles (0..25) for the weight records, drain PIPE = 10 and idle 2 for
    the store and END (44, 45)."""
    case = CASES_BY_ID["hand-gemv"]
    result = run(compile_design_point(case.point))
    assert result.cycles == case.hand_cycles == 46
    assert result.bytes_read == 4 * 8 + 8 * 8
    assert result.bytes_written == 8
    assert result.stalls["weight_stream"] == 26
    assert result.stalls["pipeline_drain"] == 10
    assert result.stalls["tail"] == 2
    assert result.issue_cycles == 8


def test_hand_computed_double_buffering_and_sync():
    """Case hand-double-buffer of tests/cases.py (derivation there): 109 cycles. Layer a (two
    chunks) owns everything up to MM1's compute done, 0..62 = 63 cycles; layer b the rest, 46.
    The chains wait for weight records before MM0 (0..25: 26 cycles), MM1 (free from 44, last
    record 44: 1) and MM2 (free from 63, last record 88: 26)."""
    case = CASES_BY_ID["hand-double-buffer"]
    program = compile_design_point(case.point)
    assert list(program.instrs["op"]) == [1, 2, 1, 2, 1, 2, 0]
    assert list(program.instrs["sync"][[0, 2, 4]]) == [1, 0, 1]
    result = run(program)
    assert result.cycles == case.hand_cycles == 109
    assert result.operator_cycles == {"a": 63, "b": 46}
    assert result.stalls["weight_stream"] == 26 + 1 + 26


def test_edited_program_is_timed_afresh():
    """The simulator derives its arrays from the instructions on every run (no stale cache).

    hand-gemv with 7 instead of 8 weight records: records 18..24, compute 25..31, done
    31 + PIPE (10) = 41, store 42, END 43: 44 cycles (one record and one step fewer).
    """
    program = compile_design_point(CASES_BY_ID["hand-gemv"].point)
    assert run(program).cycles == 46
    program.instrs[1]["steps"] = 7
    assert run(program).cycles == 44


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
