"""The CLI's commands through their public interface."""

from __future__ import annotations

import json

import pytest

from sparsim.cli import main

TINY = "examples/tiny_gemm.yaml"


def test_rtl_writes_reproducible_verilog(tmp_path, capsys):
    a, b = tmp_path / "a.v", tmp_path / "sub" / "b.v"
    assert main(["rtl", TINY, "-o", str(a)]) == 0
    assert main(["rtl", TINY, "-o", str(b)]) == 0
    text = a.read_text()
    assert "module top(" in text and "endmodule" in text
    assert text == b.read_text()
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


def test_rtl_unwritable_output_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["rtl", TINY, "-o", str(blocker / "out.v")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"sparsim: error: --output {blocker / 'out.v'}: {blocker} is a file, not a folder"]


def test_simulate_json(capsys):
    assert main(["simulate", "examples/llama2_decode_u280.yaml", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tokens_per_s"] > 0 and data["cycles"] > 0
    assert data["energy_j"] > 0


def test_simulate_text_shows_traffic(capsys):
    """The text summary states the off-chip traffic and how much of the peak it uses, and the
    figures agree with --json's (same point, deterministic)."""
    assert main(["simulate", "examples/llama2_decode_u280.yaml", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert main(["simulate", "examples/llama2_decode_u280.yaml"]) == 0
    lines = {line.strip().split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert f"{data['bytes_read']:,} B" in lines["off-chip bytes read"]
    assert f"{data['bytes_written']:,} B" in lines["off-chip bytes written"]
    assert f"{data['bandwidth_utilisation']:.1%}" in lines["memory bandwidth utilisation"]


def test_verify_rejects_llm_workloads(capsys):
    assert main(["verify", "examples/llama2_decode_u280.yaml"]) == 2
    assert "workload.kind: verify runs 'gemm' workloads" in capsys.readouterr().err


def test_verify_rejects_an_unknown_cxx_optimisation(capsys, monkeypatch):
    monkeypatch.setenv("SPARSIM_VERILATOR_CXX_OPT", "-O9")
    assert main(["verify", TINY]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "sparsim: error: SPARSIM_VERILATOR_CXX_OPT: must be one of -O0, -O1, -O2, -O3, -Os, not '-O9'")
    assert "Traceback" not in err


def test_verify_refuses_a_recsys_program_longer_than_its_queues(capsys):
    # The recsys top takes a whole Program in before it starts: batch 52 gives the dense engine's
    # queue 260 words, which would stall its intake until the bench's cycle limit. Refused in one
    # line before anything is built (no "building ..." line).
    assert main(["verify", "examples/recsys_tiny.yaml", "--set", "workload.batch=52"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "sparsim: error: --set workload.batch=52: workload.batch: the recsys RTL holds 256 instructions per "
        "queue and this Program has 260 for the dense engine (GEMM and INTER): too large to run on the RTL "
        "(sparsim simulate has no such limit); use a smaller batch"]


def test_recsys_queue_check_stops_at_the_queue_depth():
    # A Program with exactly QUEUE_DEPTH words for one queue runs (under Verilator: 21,098 cycles,
    # equal to the simulator's; 258 words stall it, docs/recsys.md); more are refused.
    from sparsim import engine
    from sparsim.dataflow.config import ConfigError, design_point_from_dict, load_yaml
    from sparsim.rtl.recsys import QUEUE_DEPTH, check_program

    eng = engine.get("recsys")
    point = load_yaml("examples/recsys_tiny.yaml")
    point["workload"].update(bottom=[24], top=[8, 1], batch=64)  # 4 dense-queue words a sample
    program = eng.compile(design_point_from_dict(point))
    assert ((program.instrs["op"] == 3) | (program.instrs["op"] == 4)).sum() == QUEUE_DEPTH
    check_program(program)
    point["workload"].update(batch=65)
    with pytest.raises(ConfigError, match="260 for the dense engine"):
        check_program(eng.compile(design_point_from_dict(point)))


@pytest.mark.verilator
def test_verify_passes_on_tiny(capsys):
    assert main(["verify", TINY, "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 2 and "2 passed, 0 failed" in out
    assert main(["verify", TINY, "--stalls"]) == 0
    assert "stalls" in capsys.readouterr().out
