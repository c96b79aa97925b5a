"""The engine seam: a toy engine registered at run time goes through the public paths
(config, ``sparsim simulate``, ``sparsim sweep``, the report), and no shared file names an
engine."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import toy_engine

from sparsim.dataflow.config import ConfigError, design_point_from_dict
from sparsim.simulator.sweep import parse_sweep
from sparsim import engine as engines
from sparsim.cli import main

REPO = Path(__file__).resolve().parent.parent

TOY_POINT = """\
hardware: {preset: toy_small, lanes: 2}
workload: {kind: vecsum, length: 64, vectors: 3}
"""

TOY_SWEEP = """\
name: toy_sweep
base:
  hardware: {preset: toy_small}
  workload: {kind: vecsum, length: 256, vectors: 2}
sweep:
  grid:
    hardware.lanes: [1, 2, 4, 8, 16, 32, 64]
    hardware.bytes_per_cycle: [4, 16]
constraints:
  max: {lut: 2000}
objectives: [lut, elements_per_cycle]
"""


@pytest.fixture
def toy():
    eng = engines.register(toy_engine.ENGINE)
    yield eng
    engines.unregister(eng.name)


def test_an_installed_package_registers_through_its_entry_point(tmp_path, monkeypatch):
    """The one registration of docs/engines.md: an entry point in the sparsim.engines group
    (here the metadata a pip-installed package would carry) is found by name."""
    dist = tmp_path / "toy_engine_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-engine-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sparsim.engines]\ntoy = toy_engine:ENGINE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(engines, "_REGISTRY", {})
    monkeypatch.setattr(engines, "_DISCOVERED", False)
    assert engines.get("toy") is toy_engine.ENGINE
    assert {"toy", "dsp_chain"} <= set(engines.names())
    point = design_point_from_dict({"hardware": {"preset": "toy_small"}, "workload": {"kind": "vecsum", "length": 8}})
    assert point.hardware.engine == "toy"


def test_toy_engine_point_and_timing(toy):
    point = design_point_from_dict({"hardware": {"preset": "toy_small", "lanes": 2},
                                    "workload": {"kind": "vecsum", "length": 64, "vectors": 3}})
    assert point.hardware.engine == "toy" and point.hardware.lanes == 2
    # lanes 2: 32 add cycles beat 4 + 64/8 = 12 stream cycles; + 1 write = 33 per vector.
    r = toy.evaluate(point)
    assert r["cycles"] == 99
    assert r["vectors_per_s"] == pytest.approx(3 / (99 / 100e6))
    assert r.breakdown == {"stream": 36, "write": 3}


def test_simulate_through_the_cli(toy, write_yaml, capsys):
    path = write_yaml(TOY_POINT)
    assert main(["simulate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{path}: toy lanes=2 @ 100 MHz, 8 B/cycle"
    assert re.search(r"^  cycles +99 cycles$", out, re.M), out
    assert re.search(r"^  summing rate +1\.939 elements/cycle$", out, re.M), out
    assert re.search(r"^  LUT \(estimated\) +280$", out, re.M), out
    assert "time by pass:" in out and "stall cycles, by cause:" in out
    assert main(["simulate", str(path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["cycles"] == 99 and row["op_cycles_stream"] == 36 and row["stall_memory"] == 0
    assert row["engine"] == "toy" and row["lut"] == 40 * 2 + 200


def test_sweep_and_report_through_the_cli(toy, write_yaml, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["sweep", str(write_yaml(TOY_SWEEP, "sweep.yaml")), "--out", str(out), "--jobs", "1"]) == 0
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 14 and {r["engine"] for r in rows} == {"toy"}
    # lut = 40 * lanes + 200: the 64-lane points break the 2000-LUT cap before they run.
    dropped = [r for r in rows if r["feasible"] == "False"]
    assert {r["hardware.lanes"] for r in dropped} == {"64"}
    assert all(r["elements_per_cycle"] == "" for r in dropped)
    fast = next(r for r in rows if r["hardware.lanes"] == "32" and r["hardware.bytes_per_cycle"] == "16")
    assert int(fast["cycles"]) == 2 * (4 + 16 + 1)
    report = (out / "report.md").read_text()
    # Objectives named without a direction take the declared one; columns carry the units.
    assert "## Best by `elements_per_cycle` (max)" in report and "## Best by `lut` (min)" in report
    assert "| hardware.lanes | hardware.bytes_per_cycle | cycles | elements_per_cycle (elements/cycle) |" in report
    assert "vectors_per_s (vectors/s) | lut |" in report
    assert "tokens_per_s" not in report
    # Plots, with the axes named by the toy's declarations.
    assert "![Pareto front: summing rate (elements/cycle) against LUT (estimated)](pareto.png)" in report
    assert "![latency per pass (ms) by pass of the best points by elements_per_cycle](breakdown.png)" in report
    assert "(roofline.png)" in report
    for png in ("pareto.png", "roofline.png", "breakdown.png"):
        assert (out / png).stat().st_size > 1000


def test_workload_kinds_belong_to_engines(toy):
    with pytest.raises(ConfigError, match=r"^workload\.kind: engine toy runs 'vecsum', not 'gemm'$"):
        design_point_from_dict({"hardware": {"preset": "toy_small"},
                                "workload": {"kind": "gemm", "layers": []}})
    with pytest.raises(ConfigError, match=r"^workload\.kind: engine dsp_chain runs 'gemm', 'llm', not 'vecsum'$"):
        design_point_from_dict({"hardware": {"preset": "tiny", "engine": "dsp_chain"},
                                "workload": {"kind": "vecsum", "length": 4}})


def test_a_preset_name_two_engines_share_needs_the_engine_or_the_kind(toy):
    """A preset name several engines have resolves to the one of them that runs the workload's
    kind; when none or several do, ``engine`` must say which."""
    engines.register(dataclasses.replace(toy, presets={"tiny": dict(toy.presets["toy_small"])}))
    point = {"workload": {"kind": "vecsum", "length": 4}}
    assert design_point_from_dict({"hardware": {"preset": "tiny"}, **point}).hardware.engine == "toy"
    with pytest.raises(ConfigError, match=r"^hardware\.engine: preset 'tiny' exists for engines .*dsp_chain, .*toy; say which$"):
        design_point_from_dict({"hardware": {"preset": "tiny"}, "workload": {"kind": "cnn"}})
    assert design_point_from_dict({"hardware": {"preset": "tiny", "engine": "toy"}, **point}).hardware.lanes == 4


def test_objectives_and_constraints_are_checked_against_the_points_engine(toy):
    base = {"hardware": {"preset": "toy_small"}, "workload": {"kind": "vecsum", "length": 8}}
    with pytest.raises(ConfigError, match=r"^objectives\.tokens_per_s: unknown metric of engine toy; known: "):
        parse_sweep({"name": "s", "base": base, "objectives": {"tokens_per_s": "max"}})
    with pytest.raises(ConfigError, match=r"^constraints\.max\.elements_per_cycle: unknown resource of engine toy"):
        parse_sweep({"name": "s", "base": base, "constraints": {"max": {"elements_per_cycle": 1}}})


def test_rtl_commands_need_an_engine_with_rtl(toy, write_yaml, capsys):
    path = write_yaml(TOY_POINT)
    for command in ("rtl", "synth", "verify"):
        assert main([command, str(path)]) == 2
        assert capsys.readouterr().err.strip() == f"sparsim: error: {path}: hardware.engine: engine toy has no RTL yet"


#: Files that belong to one engine and may name it (docs/engines.md lists the faces).
ENGINE_FILES = {
    "dataflow/dsp_chain.py", "dataflow/dsp_chain_isa.py", "dataflow/dsp_chain_exec.py",
    "simulator/dsp_chain.py", "simulator/resources.py", "rtl/dsp_chain.py",
    "dataflow/recsys.py", "dataflow/recsys_isa.py", "dataflow/recsys_exec.py", "simulator/recsys.py",
    "rtl/recsys.py",
    # The bench (cocotb and Amaranth-sim alike) still drives the dsp_chain ports.
    "rtl/cocotb_bench/__init__.py", "rtl/cocotb_bench/bench.py", "rtl/cocotb_bench/driver.py",
    "rtl/cocotb_bench/jobs.py",
    "dataflow/nm_train.py", "dataflow/nm_train_isa.py", "dataflow/nm_train_exec.py", "simulator/nm_train.py",
    "rtl/nm_train.py",
}


def _package_files() -> set[str]:
    return {str(p.relative_to(REPO)) for pkg in ("sparsim", "dataflow", "simulator", "rtl")
            for p in (REPO / pkg).rglob("*.py")}


def test_no_shared_file_names_an_engine():
    """Every module of the packages is either one engine's own (ENGINE_FILES) or shared, and
    no shared one names ``dsp_chain``: the CLI, config, sweeps, store, reports and the
    Verilog/synthesis/Verilator harness reach engines only through ``sparsim.engine``."""
    files = _package_files()
    assert ENGINE_FILES <= files, sorted(ENGINE_FILES - files)
    shared = sorted(files - ENGINE_FILES)
    assert {"sparsim/cli.py", "dataflow/config.py", "simulator/sweep.py", "simulator/report.py",
            "simulator/store.py", "rtl/verilog.py", "rtl/synth.py", "rtl/verilator.py"} <= set(shared)
    naming = [f for f in shared if re.search(r"dsp_chain|DspChain", (REPO / f).read_text())]
    assert naming == []


@pytest.mark.parametrize("change, message", [
    ({"name": "other"}, "engine 'other': its hardware model needs engine: Literal['other'] = 'other'"),
    ({"headline": ("cycles", "speed")}, "engine 'toy': headline names undeclared metrics ['speed']"),
    ({"metrics": toy_engine.ENGINE.metrics + (engines.Metric("lut", "count", "min", "LUT"),)},
     "engine 'toy': metric names repeat"),
])
def test_engine_declarations_are_checked(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        dataclasses.replace(toy_engine.ENGINE, **change)


def test_engines_command_lists_the_declarations(toy, capsys):
    assert main(["engines"]) == 0
    out = capsys.readouterr().out
    assert "dsp_chain: workload kinds gemm, llm; presets u280, tiny; RTL yes" in out
    assert "toy: workload kinds vecsum; presets toy_small; RTL no" in out
    assert main(["engines", "toy"]) == 0
    out = capsys.readouterr().out
    assert "dsp_chain" not in out
    assert re.search(r"^  elements_per_cycle +max  summing rate \(elements/cycle\)$", out, re.M), out
    assert re.search(r"^  lut +min  LUT \(estimated\)  \(before run\)$", out, re.M), out
    assert main(["engines", "nope"]) == 2
    assert capsys.readouterr().err.startswith("sparsim: error: engines: unknown engine 'nope'; known: ")


def test_simulate_does_not_import_the_rtl_toolchain():
    """Engines reach Amaranth and cocotb only through lazy references, so configs, simulate and
    sweeps stay cheap to import."""
    code = ("import sys; from sparsim.cli import main; "
            "assert main(['simulate', 'examples/llama2_decode_u280.yaml', '--json']) == 0; "
            "heavy = sorted(m for m in ('amaranth', 'cocotb', 'cocotb_tools') if m in sys.modules); "
            "print(heavy, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "[]"
