"""Numbers and names that must be refused in one line naming the key path and what the user
wrote: infinities and NaN, booleans where numbers belong, absurd magnitudes, workloads whose
arrays would not fit in memory (refused with the estimate, before allocating), and names given
as lists or null. JSON output never contains Infinity or NaN."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

import toy_engine
from sparsim.simulator.store import ResultStore, finite
from sparsim import engine as engines
from sparsim.cli import main

TINY = "examples/tiny_gemm.yaml"
LLM = "examples/llama2_decode_u280.yaml"

CASES = [
    # infinities and NaN, in every kind of numeric field
    (TINY, "hardware.chains=.inf", r"hardware\.chains: input should be a finite number, not inf"),
    (TINY, "hardware.clock_mhz=.inf", r"hardware\.clock_mhz: input should be a finite number, not inf"),
    (TINY, "hardware.clock_mhz=.nan", r"hardware\.clock_mhz: input should be a finite number, not nan"),
    (TINY, "hardware.weight_buffer_kib=.inf", r"hardware\.weight_buffer_kib: input should be a finite number"),
    (TINY, "hardware.memory.latency_cycles=-.inf", r"hardware\.memory\.latency_cycles: input should be a finite"),
    (TINY, "energy.mac_pj=.inf", r"energy\.mac_pj: input should be a finite number, not inf"),
    (TINY, "energy.static_w=.nan", r"energy\.static_w: input should be a finite number, not nan"),
    (TINY, "seed=.nan", r"seed: input should be a finite number"),
    (TINY, "workload.layers.0.tokens=.inf", r"workload\.layers\[0\]\.tokens: input should be a finite number"),
    (LLM, "workload.context=.inf", r"workload\.context: input should be a finite number"),
    # booleans where numbers belong (pydantic would read true as 1)
    (TINY, "hardware.chains=true", r"hardware\.chains: expected a number, not true"),
    (TINY, "hardware.lanes=true", r"hardware\.lanes: expected a number, not true"),
    (TINY, "hardware.memory.channels=false", r"hardware\.memory\.channels: expected a number, not false"),
    (TINY, "hardware.clock_mhz=true", r"hardware\.clock_mhz: expected a number, not true"),
    (TINY, "workload.layers.0.weight_bits=true", r"workload\.layers\[0\]\.weight_bits: expected a number, not true"),
    (TINY, "seed=true", r"seed: expected a number, not true"),
    (LLM, "workload.layers=true", r"workload\.layers: expected a number, not true"),
    # absurd but finite
    (TINY, "hardware.clock_mhz=1.0e30", r"hardware\.clock_mhz: input should be less than or equal to 1000"),
    (TINY, "hardware.clock_mhz=1.0e-30", r"hardware\.clock_mhz: input should be greater than or equal to 1"),
    (TINY, "hardware.out_buffer_kib=1.0e300", r"hardware\.out_buffer_kib: input should be less than or equal to 131072"),
    (TINY, "energy.offchip_byte_pj=1.0e308", r"energy\.offchip_byte_pj: input should be less than or equal to 100000"),
    (TINY, "hardware.memory.bytes_per_cycle=1099511627776", r"hardware\.memory\.bytes_per_cycle: input should be less"),
    (TINY, "workload.layers.0.rows=1000000000", r"workload\.layers\[0\]\.rows: input should be less than or equal to 16777216"),
    (LLM, "workload.layers=1000000000", r"workload\.layers: llama2-7b has 32 layers, not 1000000000"),
    (LLM, "workload.context=1000000000", r"workload\.context: input should be less than or equal to 16777216"),
    # within every field's bounds, but the program would not fit in memory: refused with the estimate
    (TINY, "workload.layers.0.repeat=16777216",
     r"workload: 67,108,865 instructions would take about 2\.3 GiB, above the 1 GiB limit"),
    # names given as lists, mappings or null; messages in YAML words, never model class names
    (TINY, "hardware.preset=[tiny]", r"hardware\.preset: expected a preset name, not a list"),
    (TINY, "hardware.preset=null", r"hardware\.preset: expected a preset name, not null"),
    (TINY, "hardware.preset={a: 1}", r"hardware\.preset: expected a preset name, not a mapping"),
    (TINY, "hardware.engine=[dsp_chain]", r"hardware\.engine: expected an engine name, not a list"),
    (TINY, "hardware.engine=null", r"hardware\.engine: expected an engine name, not null"),
    (TINY, "hardware.device=[u280]", r"hardware\.device: input should be a valid string, not a list"),
    (TINY, "workload.kind=[gemm]", r"workload\.kind: engine dsp_chain runs 'gemm', 'llm', not a list"),
    (TINY, "workload.layers=null", r"workload\.layers: expected a list, not null"),
    (TINY, "workload.layers.0=3", r"workload\.layers\[0\]: expected a mapping, not 3"),
    (TINY, "workload.layers.0.sparsity=null", r"workload\.layers\[0\]\.sparsity: expected a mapping, not null"),
    (TINY, "hardware.memory=[1]", r"hardware\.memory: expected a mapping, not a list"),
    (TINY, "energy=null", r"energy: expected a mapping, not null"),
    (TINY, "hardware=null", r"hardware: expected a mapping, not null"),
    (LLM, "workload.model=[llama2-7b]", r"workload\.model: expected 'llama2-7b' or 'opt-6\.7b', not a list"),
    (LLM, "workload.per_operator.q=null", r"workload\.per_operator\.q: expected a mapping, not null"),
]


@pytest.mark.parametrize("config, item, pattern", CASES, ids=[c[1] for c in CASES])
def test_bad_value_is_refused_naming_set_and_key(capsys, config, item, pattern):
    assert main(["simulate", config, "--set", item]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"sparsim: error: --set {item}: "), err[0]
    assert re.search(pattern, err[0]), err[0]
    assert "Config" not in err[0] and "Workload" not in err[0] and "Hardware" not in err[0]


def test_the_same_value_in_a_file_names_the_file(write_yaml, capsys):
    path = write_yaml("hardware: {preset: tiny, chains: true}\n"
                      "workload: {kind: gemm, layers: [{rows: 4, k: 32, sparsity: '2:8'}]}\n")
    assert main(["simulate", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"sparsim: error: {path}: hardware.chains: expected a number, not true"


def test_sweep_values_are_checked_the_same_way(write_yaml, capsys, tmp_path):
    path = write_yaml("name: s\nbase: {hardware: {preset: tiny}, workload: {kind: gemm, layers: "
                      "[{rows: 4, k: 32, sparsity: '2:8'}]}}\nsweep: {grid: {hardware.preset: [tiny, null]}}\n",
                      "sweep.yaml")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("hardware.preset: expected a preset name, not null (at hardware.preset=null)"), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("limit", [".nan", ".inf", "-1", "true"])
def test_sweep_constraint_must_be_a_finite_number(write_yaml, capsys, tmp_path, limit):
    path = write_yaml("name: s\nbase: {hardware: {preset: tiny}, workload: {kind: gemm, layers: "
                      f"[{{rows: 4, k: 32, sparsity: '2:8'}}]}}}}\nconstraints: {{max: {{dsp: {limit}}}}}\n",
                      "sweep.yaml")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "constraints.max.dsp: expected a finite number >= 0" in capsys.readouterr().err


def test_booleans_are_refused_for_every_engine(capsys, write_yaml):
    """The rule lives in the shared config model, so an engine added later gets it too."""
    eng = engines.register(toy_engine.ENGINE)
    try:
        path = write_yaml("hardware: {preset: toy_small, lanes: true}\nworkload: {kind: vecsum, length: 64}\n")
        assert main(["simulate", str(path)]) == 2
        assert "hardware.lanes: expected a number, not true" in capsys.readouterr().err
    finally:
        engines.unregister(eng.name)


def test_a_boolean_field_still_takes_booleans(write_yaml, capsys, tmp_path):
    path = write_yaml("name: s\nbase: {hardware: {preset: tiny}, workload: {kind: gemm, layers: "
                      "[{rows: 4, k: 32, sparsity: '2:8'}]}}\nconstraints: {within_device: false}\n", "sweep.yaml")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    capsys.readouterr()


def test_json_output_has_no_infinity_or_nan(capsys, tmp_path):
    """An engine whose metric comes out non-finite: `simulate --json` and the sweep store write
    null, never the non-JSON tokens Infinity or NaN."""
    def nan_counts(point):
        raw = toy_engine.simulate(point)
        return dataclasses.replace(raw, counts={"elements_per_cycle": float("nan")})

    eng = engines.register(dataclasses.replace(toy_engine.ENGINE, simulate=nan_counts))
    try:
        path = tmp_path / "p.yaml"
        path.write_text("hardware: {preset: toy_small}\nworkload: {kind: vecsum, length: 64}\n")
        assert main(["simulate", str(path), "--json"]) == 0
        out = capsys.readouterr().out
        assert "NaN" not in out and "Infinity" not in out
        assert json.loads(out)["elements_per_cycle"] is None
    finally:
        engines.unregister(eng.name)
    store = ResultStore(tmp_path / "store")
    store.add("k", {"a": float("inf"), "b": [float("-inf"), 1.5]})
    store.close()
    line = (tmp_path / "store" / ResultStore.FILE).read_text()
    assert "Infinity" not in line and json.loads(line)["row"] == {"a": None, "b": [None, 1.5]}
    assert finite({"x": float("nan")}) == {"x": None}
