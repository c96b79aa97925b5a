"""Compiler, functional ISA model and golden model of dsp_chain, over random design points."""

from __future__ import annotations

import numpy as np
import pytest

from sparsim.dataflow import dsp_chain_isa as isa
from sparsim.dataflow.config import ConfigError, design_point_from_dict
from sparsim.dataflow.dsp_chain import compile_design_point
from sparsim.dataflow.dsp_chain_exec import execute
from sparsim.dataflow.golden import linear, wrap

NMS = {4: ["2:4", "4:4"], 8: ["2:8", "4:8", "8:8"], 16: ["2:16", "4:16", "8:16", "16:16"]}


def random_point(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    m = int(rng.choice([4, 8, 16]))
    hw = {
        "preset": "tiny",
        "chains": int(rng.integers(1, 5)),
        "chain_len": int(rng.choice([2, 4, 8])),
        "mux_m": m,
        "lanes": int(rng.choice([1, 2])),
        "acc_bits": int(rng.choice([16, 24, 32])),
        "weight_buffer_kib": 4,
        "act_buffer_kib": float(rng.choice([0.5, 2])),
        "out_buffer_kib": 0.25,
    }
    layers = []
    for i in range(int(rng.integers(1, 3))):
        layers.append({
            "name": f"l{i}",
            "rows": int(rng.integers(1, 12)),
            "k": int(rng.integers(1, 80)),
            "tokens": int(rng.integers(1, 9)),
            "sparsity": str(rng.choice(NMS[m])),
            "weight_bits": int(rng.choice([4, 8])),
        })
    return {"hardware": hw, "workload": {"kind": "gemm", "layers": layers}, "seed": seed}


@pytest.mark.parametrize("seed", range(40))
def test_functional_model_matches_golden(seed):
    """Executing the encoded Program on its memory image gives the golden outputs exactly."""
    point = design_point_from_dict(random_point(seed))
    program = compile_design_point(point, with_data=True)
    after = execute(point.hardware, program.words(), program.memory)
    for got, want in zip(program.read_outputs(after), program.expected_outputs()):
        np.testing.assert_array_equal(got, want)


def test_golden_is_pruned_and_wraps():
    point = design_point_from_dict({
        "hardware": {"preset": "tiny", "acc_bits": 16},
        "workload": {"kind": "gemm", "layers": [{"rows": 8, "k": 64, "tokens": 4, "sparsity": "2:8"}]},
    })
    program = compile_design_point(point, with_data=True)
    layer = program.layers[0]
    groups = layer.w.reshape(8, 8, 8)
    assert ((groups != 0).sum(axis=2) <= 2).all()
    exact = layer.x.astype(np.int64) @ layer.w.astype(np.int64).T
    assert np.abs(exact).max() >= 1 << 15, "data must exercise the 16-bit wrap"
    np.testing.assert_array_equal(layer.expected, wrap(exact, 16))
    assert layer.expected.min() >= -(1 << 15) and layer.expected.max() < 1 << 15


def test_wrap_values():
    np.testing.assert_array_equal(wrap(np.array([32767, 32768, -32769, 65536 + 5]), 16),
                                  [32767, -32768, 32767, 5])
    with pytest.raises(ValueError, match="shapes do not chain"):
        linear(np.zeros((2, 3)), np.zeros((4, 5)), 32)


def test_instruction_roundtrip_and_field_overflow():
    row = np.zeros(1, dtype=isa.INSTR_DTYPE)[0]
    row["op"], row["steps"], row["tgroups"], row["gpad"] = isa.OP_MM, 65535, 7, 300
    row["addr_a"], row["addr_b"], row["n_log2"], row["int4"] = 0xDEADBEEF, 0x12345678, 3, 1
    word = isa.encode_instruction(row)
    assert word < 1 << isa.INSTR_BITS
    fields = isa.decode_instruction(word)
    for name in isa.FIELD_LAYOUT:
        assert fields[name] == int(row[name]), name
    row["steps"] = 70000
    with pytest.raises(ValueError, match="steps=70000 does not fit in 16 bits"):
        isa.encode_instruction(row)


@pytest.mark.parametrize("wbits, dense", [(4, False), (8, False), (4, True), (8, True)])
def test_weight_record_roundtrip(wbits, dense):
    geo = isa.Geometry(chains=3, chain_len=4, mux_m=16, lanes=1, acc_bits=32)
    rng = np.random.default_rng(wbits + dense)
    lo, hi = -(1 << (wbits - 1)), (1 << (wbits - 1))
    w = rng.integers(lo, hi, size=(5, 3, 4))
    idx = None if dense else rng.integers(0, 16, size=(5, 3, 4))
    recs = isa.pack_weight_records(geo, w, idx, wbits)
    assert recs.shape == (5, geo.weight_record_bytes(wbits, dense))
    w2, idx2 = isa.unpack_weight_records(geo, recs, wbits, dense)
    np.testing.assert_array_equal(w2, w)
    if not dense:
        np.testing.assert_array_equal(idx2, idx)


def test_chunks_and_tiles_are_used():
    """A layer larger than the buffers is split into token chunks and row tiles, not truncated."""
    point = design_point_from_dict({
        "hardware": {"preset": "tiny", "act_buffer_kib": 0.125, "out_buffer_kib": 0.0625},
        "workload": {"kind": "gemm", "layers": [{"rows": 9, "k": 40, "tokens": 7, "sparsity": "4:8"}]},
    })
    program = compile_design_point(point, with_data=True)
    plan = program.plans[0]
    assert plan.chunks > 1 and plan.row_tiles > 1
    ops = program.instrs["op"]
    assert (ops == isa.OP_LDA).sum() == plan.chunks
    assert (ops == isa.OP_MM).sum() == plan.chunks * plan.row_tiles
    after = execute(point.hardware, program.words(), program.memory)
    np.testing.assert_array_equal(program.read_outputs(after)[0], program.expected_outputs()[0])


def test_lda_row_count_stays_within_its_field():
    """With buffers deeper than the 16-bit fields, a chunk is cut so that its LDA's row count
    (the ``steps`` field) still encodes; every word of the Program must encode."""
    point = design_point_from_dict({
        "hardware": {"preset": "tiny", "act_buffer_kib": 2048, "out_buffer_kib": 2048},
        "workload": {"kind": "gemm", "layers": [{"rows": 2, "k": 8, "tokens": 70000, "sparsity": "2:8"}]},
    })
    program = compile_design_point(point)
    lda = program.instrs[program.instrs["op"] == isa.OP_LDA]
    assert point.hardware.act_depth > isa.field_max("steps")
    assert lda["steps"].max() <= isa.field_max("steps")
    assert len(program.words()) == len(program.instrs)


def test_steps_beyond_the_field_are_rejected_with_the_key_path():
    point = {
        "hardware": {"preset": "tiny", "weight_buffer_kib": 4096, "act_buffer_kib": 4096},
        "workload": {"kind": "gemm", "layers": [{"rows": 2, "k": 8 * 70000, "sparsity": "2:8"}]},
    }
    with pytest.raises(ConfigError, match=r"^workload\.layers\[0\]\.k: .* more than the 16-bit steps"):
        compile_design_point(design_point_from_dict(point))


# ---------------------------------------------------------------------------------------------
# Hardware model and registration


GEMM = {"kind": "gemm", "layers": [{"rows": 4, "k": 32, "sparsity": "2:8"}]}


def test_the_engine_is_registered_with_its_presets_and_workload_kinds():
    from sparsim.dataflow.dsp_chain import ENGINE, DspChainHardware
    from sparsim import engine as engines

    assert engines.get("dsp_chain") is ENGINE
    assert ENGINE.hardware is DspChainHardware and set(ENGINE.kinds) == {"gemm", "llm"}
    assert set(ENGINE.presets) == {"u280", "tiny"}
    implied = design_point_from_dict({"hardware": {"preset": "tiny"}, "workload": GEMM})
    named = design_point_from_dict({"hardware": {"preset": "tiny", "engine": "dsp_chain"}, "workload": GEMM})
    assert implied == named and implied.hardware.engine == "dsp_chain"
    # A resolved point (as the sweep store keeps it) validates to the same point.
    assert design_point_from_dict(implied.model_dump(mode="json")) == implied


@pytest.mark.parametrize("overrides, path, reason", [
    ({"min_n": 16}, "hardware.min_n", "min_n=16 must not exceed mux_m=8"),
    ({"out_buffer_kib": 0.001}, "hardware.out_buffer_kib", "too small to hold one row of its buffer"),
    ({"chains": 4000, "weight_buffer_kib": 1}, "hardware.weight_buffer_kib", "too small"),
    # An invalid field a check depends on is reported, not the check on the later field.
    ({"mux_m": 3, "min_n": 16}, "hardware.mux_m", "must be a power of two from 2 to 16, not 3"),
    ({"chains": 0, "out_buffer_kib": 0.001}, "hardware.chains", "greater than 0"),
])
def test_cross_field_checks_name_the_field_to_change(overrides, path, reason):
    with pytest.raises(ConfigError) as exc:
        design_point_from_dict({"hardware": {"preset": "tiny", **overrides}, "workload": GEMM})
    assert exc.value.path == path and reason in exc.value.reason
