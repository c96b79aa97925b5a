"""Bad input of every kind: one line naming the key path and the reason, non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sparsim.cli import main

GOOD_HW = "hardware: {preset: tiny}\n"
# Several engines have a preset called tiny; without a valid workload kind to tell them apart,
# the engine is named.
DSP_HW = "hardware: {preset: tiny, engine: dsp_chain}\n"
GOOD_LAYER = "{rows: 4, k: 32, tokens: 1, sparsity: '2:8'}"


def point(hw: str = GOOD_HW, layer: str = GOOD_LAYER) -> str:
    return f"{hw}workload:\n  kind: gemm\n  layers:\n    - {layer}\n"


CASES = [
    ("malformed yaml", "hardware: {preset: tiny\nworkload: [", r"malformed YAML: line \d+, column \d+"),
    ("duplicate key", "hardware: {preset: tiny}\nhardware: {preset: tiny}\n", r"duplicate key 'hardware'"),
    ("empty file", "", r"file is empty"),
    ("unknown key", point(hw="hardware: {preset: tiny, chainz: 4}\n"), r"hardware\.chainz: unknown key"),
    ("unknown preset", point(hw="hardware: {preset: u281}\n"), r"hardware\.preset: unknown preset 'u281'"),
    ("wrong type", point(hw="hardware: {preset: tiny, chains: four}\n"), r"hardware\.chains: .*not 'four'"),
    ("zero size", point(hw="hardware: {preset: tiny, chains: 0}\n"), r"hardware\.chains: .*greater than 0"),
    ("negative size", point(layer="{rows: -4, k: 32, sparsity: '2:8'}"),
     r"workload\.layers\[0\]\.rows: .*greater than 0"),
    ("zero tokens", point(layer="{rows: 4, k: 32, tokens: 0, sparsity: '2:8'}"),
     r"workload\.layers\[0\]\.tokens: .*greater than 0"),
    ("N > M", point(layer="{rows: 4, k: 32, sparsity: '9:8'}"),
     r"workload\.layers\[0\]\.sparsity: N must not exceed M, not 9:8"),
    ("M not power of two", point(layer="{rows: 4, k: 32, sparsity: '2:6'}"),
     r"workload\.layers\[0\]\.sparsity: M must be a power of two, not 6"),
    ("bad N:M text", point(layer="{rows: 4, k: 32, sparsity: 'half'}"),
     r"workload\.layers\[0\]\.sparsity: expected 'N:M'"),
    ("unquoted N:M", point(layer="{rows: 4, k: 32, sparsity: 2:8}"),
     r"workload\.layers\[0\]\.sparsity: expected 'N:M' in quotes such as '8:16', not the number 128"),
    ("chain_len not power of two", point(hw="hardware: {preset: tiny, chain_len: 6}\n"),
     r"hardware\.chain_len: must be a power of two >= 2, not 6"),
    ("min_n above mux_m", point(hw="hardware: {preset: tiny, min_n: 16}\n"),
     r"hardware\.min_n: min_n=16 must not exceed mux_m=8"),
    ("unknown workload kind", DSP_HW + "workload: {kind: cnn}\n",
     r"workload\.kind: engine dsp_chain runs 'gemm', 'llm', not 'cnn'"),
    ("missing workload kind", DSP_HW + "workload: {layers: []}\n", r"workload\.kind: required key is missing"),
    ("unknown engine", point(hw="hardware: {engine: systolic, clock_mhz: 100}\n"),
     r"hardware\.engine: unknown engine 'systolic'; known: .*dsp_chain"),
    ("preset of another engine", point(hw="hardware: {engine: dsp_chain, preset: nope}\n"),
     r"hardware\.preset: unknown preset 'nope'; known: .*tiny"),
    ("no engine, no preset", point(hw="hardware: {chains: 2}\n"), r"hardware\.engine: required key is missing"),
    ("unknown device", point(hw="hardware: {preset: tiny, device: u999}\n"),
     r"hardware\.device: unknown device 'u999'; known: .*u280, vu9p"),
    ("min_n with a bad mux_m", point(hw="hardware: {preset: tiny, mux_m: 3, min_n: 16}\n"),
     r"hardware\.mux_m: must be a power of two from 2 to 16, not 3"),
    ("missing workload", DSP_HW, r"workload: required key is missing"),
    ("M differs from hardware", point(layer="{rows: 4, k: 32, sparsity: '2:4'}"),
     r"workload\.layers\[0\]\.sparsity: N:M 2:4 needs mux_m=4, but hardware\.mux_m is 8"),
    ("cannot tile K into act buffer", point(layer="{rows: 4, k: 100000, sparsity: '8:8'}"),
     r"workload\.layers\[0\]\.k: K=100000 .*raise hardware\.(weight|act)_buffer_kib"),
    ("buffer too small", point(hw="hardware: {preset: tiny, out_buffer_kib: 0.001}\n"),
     r"hardware\.out_buffer_kib: too small"),
    ("unknown llm operator", GOOD_HW.replace("tiny", "u280") +
     "workload: {kind: llm, model: llama2-7b, per_operator: {qq: '2:16'}}\n",
     r"workload\.per_operator: unknown operator 'qq'"),
]


@pytest.mark.parametrize("text, pattern", [(t, p) for _, t, p in CASES], ids=[c[0] for c in CASES])
def test_simulate_rejects_bad_input(write_yaml, capsys, text, pattern):
    path = write_yaml(text)
    code = main(["simulate", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"sparsim: error: {path}: ")
    assert __import__("re").search(pattern, lines[0]), lines[0]


def test_missing_file(capsys, tmp_path):
    code = main(["simulate", str(tmp_path / "nope.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot read file" in err and len(err.strip().splitlines()) == 1


def test_no_traceback_in_a_real_process(write_yaml):
    path = write_yaml(point(layer="{rows: 4, k: 32, sparsity: '9:8'}"))
    proc = subprocess.run([sys.executable, "-m", "sparsim.cli", "simulate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stdout == ""


GOOD_BASE = "{hardware: {preset: tiny}, workload: {kind: gemm, layers: [" + GOOD_LAYER + "]}}"

SWEEP_CASES = [
    ("missing base", "name: s\n", r"base: required key is missing"),
    ("bad objective", "name: s\nbase: {}\nobjectives: {cycles: lowest}\n",
     r"objectives\.cycles: expected 'min' or 'max'"),
    ("unknown top key", "name: s\nbase: {}\nsweeps: {}\n", r"sweeps: unknown key"),
    ("empty list", "name: s\nbase: {}\nsweep: {grid: {hardware.chains: []}}\n",
     r"sweep\.grid\.hardware\.chains: expected a non-empty list"),
    ("zip lengths", "name: s\nbase: {}\nsweep: {zip: [{hardware.chains: [1, 2], hardware.chain_len: [4]}]}\n",
     r"sweep\.zip\[0\]: lists must have equal lengths"),
    ("bad swept value", "name: s\nbase: {hardware: {preset: tiny}, workload: {kind: gemm, layers: ["
     + GOOD_LAYER + "]}}\nsweep: {grid: {hardware.chain_len: [4, 6]}}\n",
     r"hardware\.chain_len: must be a power of two >= 2, not 6 \(at hardware\.chain_len=6\)"),
    ("unknown metric", "name: s\nbase: " + GOOD_BASE + "\nobjectives: {speed: max}\n",
     r"objectives\.speed: unknown metric of engine dsp_chain; known: cycles, "),
    ("objective name not a string", "name: s\nbase: " + GOOD_BASE + "\nobjectives: [cycles, 3]\n",
     r"objectives\[1\]: expected a metric name, not 3"),
    ("bad range", "name: s\nbase: {}\nsweep: {grid: {hardware.chains: {range: [10, 1]}}}\n",
     r"sweep\.grid\.hardware\.chains\.range: needs low <= high"),
    ("bad constraint", "name: s\nbase: " + GOOD_BASE + "\nconstraints: {max: {dsps: 4}}\n",
     r"constraints\.max\.dsps: unknown resource of engine dsp_chain; known: dsp, lut, ff, bram36, uram"),
    ("constraint on a simulated metric", "name: s\nbase: " + GOOD_BASE + "\nconstraints: {min: {cycles: 4}}\n",
     r"constraints\.min\.cycles: unknown resource"),
    ("bad sample", "name: s\nbase: {}\nsweep: {sample: {n: 0, seed: 1}}\n",
     r"sweep\.sample\.n: expected an integer >= 1"),
    ("typo in swept path", "name: s\nbase: {hardware: {preset: tiny}, workload: {kind: gemm, layers: ["
     + GOOD_LAYER + "]}}\nsweep: {grid: {hardware.chainz: [4]}}\n", r"hardware\.chainz: unknown key"),
]


@pytest.mark.parametrize("text, pattern", [(t, p) for _, t, p in SWEEP_CASES], ids=[c[0] for c in SWEEP_CASES])
def test_sweep_rejects_bad_spec(write_yaml, capsys, tmp_path, text, pattern):
    path = write_yaml(text, "sweep.yaml")
    out = tmp_path / "out"
    code = main(["sweep", str(path), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"sparsim: error: {path}: ")
    assert __import__("re").search(pattern, err[-1]), err[-1]
    assert not out.exists(), "nothing may be written for a bad spec"


def test_set_overrides_a_design_point(capsys):
    base = ["simulate", "examples/llama2_decode_u280.yaml", "--json"]
    assert main(base) == 0
    default = __import__("json").loads(capsys.readouterr().out)
    assert main(base + ["--set", "workload.sparsity=8:16", "--set", "hardware.chains=128"]) == 0
    changed = __import__("json").loads(capsys.readouterr().out)
    assert changed["bytes_read"] > default["bytes_read"] and changed["cycles"] != default["cycles"]


@pytest.mark.parametrize("item, pattern", [
    ("chains", r"--set: expected KEY\.PATH=VALUE, not 'chains'"),
    ("hardware.chain_len=6", r"hardware\.chain_len: must be a power of two >= 2, not 6"),
    ("workload.kind.x=1", r"workload\.kind: is not a mapping"),
])
def test_set_rejects_bad_overrides(capsys, item, pattern):
    assert main(["simulate", "examples/llama2_decode_u280.yaml", "--set", item]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and __import__("re").search(pattern, err[0]), err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("sparsim ")


def test_synth_refuses_a_design_too_large_to_synthesise(capsys):
    """The u280 preset is ~660 k LUTs: sparsim synth says so in one line instead of starting
    a very long Yosys run (no Yosys runs in this test)."""
    assert main(["synth", "examples/llama2_decode_u280.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "llama2_decode_u280.yaml: hardware: the resource model estimates 2,560 DSPs" in err
    assert "--force" in err


@pytest.mark.parametrize("config", ["examples/tiny_gemm.yaml", "examples/nm_train_tiny.yaml",
                                    "examples/recsys_tiny.yaml"])
@pytest.mark.parametrize("value", [20, 8, 56])
def test_every_engine_checks_acc_bits_alike(capsys, config, value):
    # One check in the hardware base class serves every engine with an accumulator.
    assert main(["simulate", config, "--set", f"hardware.acc_bits={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sparsim: error: --set hardware.acc_bits={value}: hardware.acc_bits: "
                   f"must be a multiple of 8 from 16 to 48, not {value}"], err
