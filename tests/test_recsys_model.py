"""The recsys engine's hardware and workload models, compiler, ISA and functional model
(docs/recsys.md): the functional model executing the encoded words must equal the golden model
(sparsim.dataflow.dlrm.forward), which shares none of its code."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from sparsim.cli import main
from sparsim.dataflow import recsys_isa as isa
from sparsim.dataflow.config import ConfigError, design_point_from_dict
from sparsim.dataflow.recsys import _split_units, compile_design_point
from sparsim.dataflow.recsys_exec import execute

SMALL = {"kind": "dlrm", "dense_features": 8, "bottom": [8, 4], "top": [8, 1], "dim": 6,
         "table_rows": [50, 40, 30], "lookups": 3, "batch": 6}


def _point(workload: dict, seed: int = 0, **hw) -> object:
    return design_point_from_dict({"hardware": {"preset": "tiny", "engine": "recsys", **hw},
                                   "workload": workload, "seed": seed})


# A spread of shapes: dim below, above and equal to the 16-byte tiny line and not a multiple of
# it, bags of 0 and 1 and variable ones, concat and dot, partial last mini-batches, one table.
FUNCTIONAL = [
    ("concat", SMALL, {}),
    ("dot-empty-bags", {"kind": "dlrm", "dense_features": 5, "bottom": [7, 6], "top": [9, 3], "dim": 6,
                        "table_rows": [50, 40], "lookups": 0, "batch": 5, "interaction": "dot"}, {}),
    ("dot-variable-bags", {"kind": "dlrm", "dense_features": 5, "bottom": [6], "top": [9, 2, 1], "dim": 6,
                           "table_rows": [50, 40, 7], "lookups": 4, "bags": "variable", "batch": 9,
                           "interaction": "dot"}, {}),
    ("one-table-bag-of-one", {"kind": "dlrm", "dense_features": 3, "bottom": [17], "top": [1], "dim": 17,
                              "table_rows": [50], "lookups": 1, "batch": 1}, {}),
    ("rm1-scaled", {"kind": "dlrm", "model": "rm1", "max_rows": 100, "batch": 3},
     {"weight_buffer_kib": 128, "act_buffer_kib": 16, "pooled_buffer_kib": 8, "index_buffer_kib": 32}),
    ("zipf-3-units-ws", {**SMALL, "indices": {"distribution": "zipf", "exponent": 1.2}, "batch": 7},
     {"gather_units": 3, "cache_kib": 0.75, "dataflow": "ws", "acc_bits": 24}),
    ("three-batches", {**SMALL, "batch": 5, "batches": 3}, {"gather_units": 1}),
    ("acc16-wraps", {**SMALL, "lookups": 25, "dim": 33}, {"acc_bits": 16, "line_bytes": 32,
                                                           "index_buffer_kib": 4, "pooled_buffer_kib": 4}),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("workload, hw", [(w, h) for _, w, h in FUNCTIONAL], ids=[c[0] for c in FUNCTIONAL])
def test_functional_model_equals_golden(workload, hw, seed):
    point = _point(workload, seed, **hw)
    program = compile_design_point(point, with_data=True)
    after = execute(point.hardware, program.words(), program.memory)
    got = program.read_outputs(after)[0]
    assert got.shape == program.expected.shape
    np.testing.assert_array_equal(got, program.expected)


def test_functional_model_catches_a_packing_bug():
    """The check above can fail: one flipped byte of one embedding row changes the output."""
    point = _point(SMALL)
    program = compile_design_point(point, with_data=True)
    bag = program.bags[0]
    row = int(bag.indices[0])
    memory = program.memory.copy()
    memory[program.table_base[0] + row * 6] ^= 0x40
    got = program.read_outputs(execute(point.hardware, program.words(), memory))[0]
    assert not np.array_equal(got, program.expected)


def test_mini_batches_and_gathers_cover_every_bag_once():
    point = _point({**SMALL, "batch": 10}, gather_units=3, cache_kib=0)
    program = compile_design_point(point)
    ins = program.instrs
    assert program.plan.mini == 4 and program.plan.mini_sizes() == [4, 4, 2]
    seen = set()
    for row in ins[ins["op"] == isa.OP_GATHER]:
        for b in range(int(row["k"]), int(row["k"]) + int(row["p"])):
            key = (int(row["mb"]), int(row["b"]), b)
            assert key not in seen
            seen.add(key)
        assert int(row["shift"]) == program.plan.mini_sizes()[int(row["mb"])]
    assert seen == {(m, t, b) for m, size in enumerate([4, 4, 2]) for t in range(3) for b in range(size)}


@pytest.mark.parametrize("units", [1, 2, 5, 40])
def test_split_units_balances_lookups(units):
    sizes = np.random.default_rng(units).integers(0, 9, size=(4, 9))
    pieces = _split_units(sizes, 4, 9, units)
    assert len(pieces) == units
    flat = [(t, b) for unit in pieces for t, first, n in unit for b in range(first, first + n)]
    assert flat == [(t, b) for t in range(4) for b in range(9)]
    loads = [sum(int(sizes[t, first:first + n].sum()) for t, first, n in unit) for unit in pieces]
    assert max(loads) - min(loads) <= 2 * int(sizes.max()) or units > 36


def test_instruction_words_round_trip_and_refuse_overflow():
    program = compile_design_point(_point(SMALL))
    for row, word in zip(program.instrs, program.words()):
        fields = isa.decode_instruction(word)
        assert all(fields[name] == int(row[name]) for name, _, _ in isa.FIELDS)
        assert word < 1 << isa.INSTR_BITS
    row = program.instrs[0].copy()
    row["a"] = 256
    with pytest.raises(ValueError, match="instruction field a=256 does not fit in 8 bits"):
        isa.encode_instruction(row)


def test_rows_straddling_lines_touch_both():
    assert isa.row_lines(10, 6, 16) == (0, 0)
    assert isa.row_lines(12, 6, 16) == (0, 1)
    assert isa.row_lines(16, 17, 16) == (1, 2)


def test_builtin_models_resolve_and_presets_are_engine_scoped():
    point = design_point_from_dict({"hardware": {"preset": "harpv2"},
                                    "workload": {"kind": "dlrm", "model": "rm2", "batch": 64}})
    assert point.hardware.engine == "recsys" and point.hardware.cache_lines == 128
    model = point.workload.dlrm_model()
    assert model.tables == 32 and model.lookups == 120
    # The shared preset name "tiny" resolves by the workload kind it is given.
    assert _point(SMALL).hardware.engine == "recsys"
    gemm = design_point_from_dict({"hardware": {"preset": "tiny"}, "workload": {
        "kind": "gemm", "layers": [{"rows": 4, "k": 32, "sparsity": "2:8"}]}})
    assert gemm.hardware.engine == "dsp_chain"


BAD = [
    ("negative exponent", "hardware: {preset: harpv2}\nworkload: {kind: dlrm, model: rm1, batch: 4, "
     "indices: {distribution: zipf, exponent: -1}}\n",
     r"workload\.indices\.exponent: must be >= 0 \(rank r has weight 1/r\*\*s\), not -1"),
    ("zero tables", "hardware: {preset: harpv2}\nworkload: {kind: dlrm, dense_features: 4, bottom: [4], "
     "top: [1], dim: 8, table_rows: [], batch: 4}\n", r"workload\.table_rows: must list at least one table"),
    ("lookups above a table", "hardware: {preset: harpv2}\nworkload: {kind: dlrm, dense_features: 4, "
     "bottom: [4], top: [1], dim: 8, table_rows: [100, 50], lookups: 60, batch: 4}\n",
     r"workload\.lookups: 60 lookups exceed the smallest table \(50 rows\)"),
    ("max_outstanding 0", "hardware: {preset: harpv2, max_outstanding: 0}\nworkload: {kind: dlrm, model: rm1, "
     "batch: 4}\n", r"hardware\.max_outstanding: .*greater than 0, not 0"),
    ("preset unknown to recsys", "hardware: {engine: recsys, preset: vcu1525}\nworkload: {kind: dlrm, "
     "model: rm1, batch: 4}\n", r"hardware\.preset: unknown preset 'vcu1525'; known: harpv2, tiny, u280"),
    ("cache not a power of two per unit", "hardware: {preset: harpv2, cache_kib: 48}\nworkload: {kind: dlrm, "
     "model: rm1, batch: 4}\n", r"hardware\.cache_kib: must give each of the 8 gather units a power-of-two"),
    ("incomplete explicit model", "hardware: {preset: harpv2}\nworkload: {kind: dlrm, dim: 8, batch: 4}\n",
     r"workload: give a model \(rm1, .*\) or dense_features, bottom, top, table_rows"),
    ("dot needs bottom == dim", "hardware: {preset: harpv2}\nworkload: {kind: dlrm, dense_features: 4, "
     "bottom: [4], top: [1], dim: 8, table_rows: [100], interaction: dot, batch: 4}\n",
     r"workload: custom: dot interaction needs the bottom MLP output \(4\) to equal the embedding dim \(8\)"),
    ("pooled buffer below one sample", "hardware: {preset: harpv2, pooled_buffer_kib: 1}\nworkload: {kind: dlrm, "
     "model: rm2, batch: 4}\n", r"hardware\.pooled_buffer_kib: one sample needs 8,192 B per bank \(2 banks\)"),
    ("weights above the buffer", "hardware: {preset: harpv2, weight_buffer_kib: 64}\nworkload: {kind: dlrm, "
     "model: rm1, batch: 4}\n", r"hardware\.weight_buffer_kib: the MLP weights and biases take"),
    ("unknown model", "hardware: {preset: harpv2}\nworkload: {kind: dlrm, model: rm9, batch: 4}\n",
     r"workload\.model: expected 'rm1', 'rm2'"),
    ("too many lookups", "hardware: {preset: harpv2}\nworkload: {kind: dlrm, model: rm1, batch: 65536, "
     "batches: 4096}\n", r"workload\.batches: 4096 batches of 65536 samples make .* lookups, above the"),
    ("wrong kind", "hardware: {preset: harpv2}\nworkload: {kind: gemm}\n",
     r"workload\.kind: engine recsys runs 'dlrm', not 'gemm'"),
]


@pytest.mark.parametrize("text, pattern", [(t, p) for _, t, p in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_one_line_with_the_key_path(write_yaml, capsys, text, pattern):
    path = write_yaml(text)
    assert main(["simulate", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sparsim: error: {path}: "), lines
    assert re.search(pattern, lines[0]), lines[0]


def test_bad_input_has_no_traceback_in_a_real_process(write_yaml):
    path = write_yaml(BAD[0][1])
    proc = subprocess.run([sys.executable, "-m", "sparsim.cli", "simulate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and proc.stdout == ""


def test_compile_errors_are_config_errors():
    with pytest.raises(ConfigError, match=r"^hardware\.index_buffer_kib: one sample needs"):
        compile_design_point(_point({**SMALL, "lookups": 30}, index_buffer_kib=0.5))


def test_batches_stream_after_one_weight_load():
    """Three batches in one Program: mini-batches never span two batches, weights load once,
    and the second and third batches draw new indices."""
    point = _point({**SMALL, "batch": 6, "batches": 3})
    program = compile_design_point(point)
    assert program.plan.mini_sizes() == [4, 2] * 3 and program.plan.mini_starts() == [0, 4, 6, 10, 12, 16]
    loads = program.instrs[program.instrs["op"] == isa.OP_LOAD]
    assert (loads["a"] == isa.LOAD_WEIGHT).sum() == 1
    bag = program.bags[0]
    assert bag.batch == 18 and not np.array_equal(bag.indices[:18], bag.indices[18:36])


def test_resource_estimate_counts_the_array_and_fits_the_presets_devices():
    from sparsim import engine as engines
    from sparsim.dataflow.presets import over_budget

    eng = engines.get("recsys")
    for preset in ("harpv2", "u280"):
        hw = design_point_from_dict({"hardware": {"preset": preset, "engine": "recsys"},
                                     "workload": {"kind": "dlrm", "model": "rm1", "batch": 4}}).hardware
        res = eng.resources(hw)
        assert res["dsp"] == hw.rows * hw.cols + 2 * hw.gather_units  # PEs and the walkers' multipliers
        assert over_budget(res, hw.device) == []
    small = _point(SMALL).hardware
    bigger = _point(SMALL, gather_units=4, cache_kib=0).hardware
    assert eng.resources(bigger)["lut"] > eng.resources(small)["lut"]


def test_os_mini_batches_are_multiples_of_the_array_rows():
    """6 samples would fit, but on 4 OS rows a mini-batch of 6 takes as many folds as one of 8:
    the compiler cuts 4 (a single mini-batch holding the whole batch is left as it is)."""
    assert compile_design_point(_point({**SMALL, "batch": 12}, mini_batch=6)).plan.mini == 4
    assert compile_design_point(_point({**SMALL, "batch": 6}, mini_batch=6)).plan.mini == 6
    assert compile_design_point(_point({**SMALL, "batch": 12}, mini_batch=6, dataflow="ws")).plan.mini == 6


def test_generated_bags_are_reused_read_only_and_keyed_by_every_input():
    first = compile_design_point(_point(SMALL, seed=3))
    again = compile_design_point(_point(SMALL, seed=3, gather_units=1, cache_kib=0))
    assert again.bags is first.bags
    with pytest.raises(ValueError, match="read-only"):
        first.bags[0].indices[0] = 1
    other = compile_design_point(_point(SMALL, seed=4))
    assert not all(np.array_equal(a.indices, b.indices) for a, b in zip(first.bags, other.bags))
    zipf = compile_design_point(_point({**SMALL, "indices": {"distribution": "zipf", "exponent": 2.0}}, seed=3))
    assert zipf.bags is not first.bags
