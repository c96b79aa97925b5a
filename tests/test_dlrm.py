"""Tests of ``sparsim.dataflow.dlrm``: the DLRM model tables, the seeded index generators and the
exact integer golden. Simulator-free.

The golden is checked against hand-computed cases (worked in the docstrings) and against
pure-Python loop references that share no code with the vectorised implementation.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsim.dataflow.dlrm import (
    CRITEO_KAGGLE_ROWS,
    MODELS,
    Bags,
    DlrmModel,
    DlrmParams,
    MlpLayer,
    embedding_bag,
    forward,
    forward_float32,
    generate_bags,
    interact,
    interaction_pairs,
    mlp_layer,
    random_dense,
    random_params,
    rank_to_row,
    requantize,
    to_float32,
)
from sparsim.dataflow.golden import wrap

SETTINGS = settings(max_examples=80, deadline=None)


def _tiny(interaction: str = "concat", **kw) -> DlrmModel:
    args = dict(name="tiny", dense_features=2, bottom=(2,), top=(1,), dim=2, table_rows=(3, 3),
                lookups=2, interaction=interaction)
    args.update(kw)
    return DlrmModel(**args)


def _wrap_py(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


# --------------------------------------------------------------------------------------------
# Models


@pytest.mark.parametrize("name, width, tables, rows, macs", [
    # concat: bottom[-1] + tables * dim
    ("rm1", 32 + 8 * 32, 8, 4_000_000, 128 * 64 + 64 * 32 + 288 * 256 + 256 * 64 + 64),
    ("rm2", 64 + 32 * 64, 32, 500_000, 256 * 128 + 128 * 64 + 2112 * 128 + 128 * 64 + 64),
    ("rm3", 32 + 10 * 32, 10, 2_000_000,
     2560 * 1024 + 1024 * 256 + 256 * 32 + 352 * 512 + 512 * 256 + 256),
    # dot: bottom[-1] + F (F - 1) / 2 with F = tables + 1
    ("dlrm_kaggle", 16 + 27 * 26 // 2, 26, None,
     13 * 512 + 512 * 256 + 256 * 64 + 64 * 16 + 367 * 512 + 512 * 256 + 256),
    ("dlrm_benchmark", 64 + 9 * 8 // 2, 8, 1_000_000,
     512 * 512 + 512 * 64 + 100 * 1024 + 1024 * 1024 * 2 + 1024),
])
def test_model_table(name, width, tables, rows, macs):
    m = MODELS[name]
    assert m.interaction_width == width
    assert m.tables == tables
    if rows is not None:
        assert set(m.table_rows) == {rows}
    assert m.top_layers[0][0] == width
    assert m.mlp_macs() == macs


def test_kaggle_rows_and_dot_macs():
    m = MODELS["dlrm_kaggle"]
    assert m.table_rows == CRITEO_KAGGLE_ROWS and len(CRITEO_KAGGLE_ROWS) == 26
    assert sum(CRITEO_KAGGLE_ROWS) == 33_762_577
    assert m.interaction_macs() == 351 * 16
    assert MODELS["rm1"].interaction_macs() == 0
    assert MODELS["rm1"].table_bytes == 8 * 4_000_000 * 32


@pytest.mark.parametrize("kw, message", [
    (dict(interaction="dot", bottom=(3,)), "dot interaction needs the bottom MLP output (3) to equal the embedding dim (2)"),
    (dict(lookups=4), "lookups 4 exceed the smallest table (3 rows)"),
    (dict(table_rows=()), "table_rows must not be empty"),
    (dict(dim=0), "dim must be a positive integer, not 0"),
    (dict(top=(4, 0)), "top[1] must be a positive integer, not 0"),
    (dict(interaction="sum"), "interaction must be 'concat' or 'dot', not 'sum'"),
])
def test_model_rejects(kw, message):
    with pytest.raises(ValueError, match=f"^tiny: {re.escape(message)}$"):
        _tiny(**kw)


def test_scaled_caps_rows_only():
    m = MODELS["rm1"].scaled(100_000)
    assert m.table_rows == (100_000,) * 8 and m.name == "rm1@100000"
    assert (m.bottom, m.top, m.dim, m.lookups, m.interaction) == (
        (64, 32), (256, 64, 1), 32, 80, "concat")
    assert MODELS["dlrm_kaggle"].scaled(1000).table_rows[:4] == (1000, 583, 1000, 1000)
    with pytest.raises(ValueError, match="below lookups 80"):
        MODELS["rm1"].scaled(79)


# --------------------------------------------------------------------------------------------
# Index generators


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 8, 9, 1000, 4097, 65536])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_rank_to_row_is_a_bijection(rows, seed):
    keys = tuple(np.random.default_rng(seed).integers(0, 1 << 62, size=6))
    rows_of = rank_to_row(np.arange(rows), rows, keys)
    assert sorted(rows_of.tolist()) == list(range(rows))


def test_hot_rows_are_scattered():
    """The 64 hottest ranks of a 1M-row table do not sit in one region of it."""
    keys = tuple(range(1, 7))
    hot = rank_to_row(np.arange(64), 1_000_000, keys)
    assert not np.array_equal(hot, np.arange(64))
    # spread over the table: at least 6 of its 8 eighths hold a hot row
    assert len(set((hot * 8 // 1_000_000).tolist())) >= 6


@pytest.mark.parametrize("distribution, exponent", [("uniform", 0.0), ("zipf", 0.0), ("zipf", 1.2)])
def test_same_seed_same_indices(distribution, exponent):
    m = MODELS["rm2"].scaled(5000)
    a = generate_bags(m, 16, distribution=distribution, exponent=exponent, seed=7)
    b = generate_bags(m, 16, distribution=distribution, exponent=exponent, seed=7)
    c = generate_bags(m, 16, distribution=distribution, exponent=exponent, seed=8)
    d = generate_bags(m, 16, distribution=distribution, exponent=exponent, seed=7, batch_index=1)
    for x, y in zip(a, b):
        assert np.array_equal(x.indices, y.indices) and np.array_equal(x.offsets, y.offsets)
    assert not all(np.array_equal(x.indices, y.indices) for x, y in zip(a, c))
    assert not all(np.array_equal(x.indices, y.indices) for x, y in zip(a, d))
    # one table's stream does not depend on the other tables
    few = DlrmModel(**{**m.__dict__, "name": "few", "table_rows": m.table_rows[:2]})
    e = generate_bags(few, 16, distribution=distribution, exponent=exponent, seed=7)
    assert all(np.array_equal(x.indices, y.indices) for x, y in zip(a[:2], e))


def test_fixed_bags_and_offsets():
    m = MODELS["rm1"].scaled(10_000)
    bags = generate_bags(m, 5, seed=3)
    assert len(bags) == 8
    for b in bags:
        assert b.offsets.tolist() == [0, 80, 160, 240, 320, 400]
        assert b.indices.dtype == np.int64 and len(b.indices) == 400
        assert 0 <= b.indices.min() and b.indices.max() < 10_000


def test_variable_bags_include_empty_and_single():
    m = _tiny(table_rows=(50, 60), lookups=3)
    bags = generate_bags(m, 400, bags="variable", min_bag=0, seed=1)
    for b in bags:
        sizes = b.sizes
        assert set(sizes.tolist()) == {0, 1, 2, 3}
        assert np.array_equal(b.offsets, np.concatenate(([0], np.cumsum(sizes))))
    # the DLRM benchmark's "up to 100" draws sizes in [1, 100] by default
    s = generate_bags(MODELS["dlrm_benchmark"].scaled(1000), 300, seed=2)[0].sizes
    assert s.min() >= 1 and s.max() <= 100 and s.min() <= 5 and s.max() >= 95


def _chi2_uniform(indices: np.ndarray, rows: int) -> float:
    counts = np.bincount(indices, minlength=rows)
    expect = len(indices) / rows
    return float(((counts - expect) ** 2 / expect).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zipf_zero_is_uniform(seed):
    """Chi-square over 32 rows (31 degrees of freedom: the 0.999 quantile is 61.1) for s = 0,
    and the same statistic is far above it for s = 0.5."""
    m = _tiny(table_rows=(32,), lookups=1)
    flat = generate_bags(m, 40_000, distribution="zipf", exponent=0.0, seed=seed)[0].indices
    uni = generate_bags(m, 40_000, distribution="uniform", seed=seed)[0].indices
    skew = generate_bags(m, 40_000, distribution="zipf", exponent=0.5, seed=seed)[0].indices
    assert _chi2_uniform(flat, 32) < 61.1
    assert _chi2_uniform(uni, 32) < 61.1
    assert _chi2_uniform(skew, 32) > 1000


def test_higher_exponent_more_repeats():
    m = MODELS["rm1"].scaled(100_000)
    distinct, top = [], []
    for s in (0.0, 0.5, 0.9, 1.2, 2.0):
        idx = generate_bags(m, 64, distribution="zipf", exponent=s, seed=4)[0].indices
        distinct.append(len(np.unique(idx)))
        top.append(np.bincount(idx).max())
    assert distinct == sorted(distinct, reverse=True) and len(set(distinct)) == len(distinct)
    assert top == sorted(top) and top[-1] > top[0]


def test_zipf_hottest_row_frequency():
    """For s = 1 over N rows the hottest row has probability 1 / H_N (H_N harmonic number)."""
    rows, n = 1000, 200_000
    m = _tiny(table_rows=(rows,), lookups=1)
    idx = generate_bags(m, n, distribution="zipf", exponent=1.0, seed=5)[0].indices
    h = sum(1 / r for r in range(1, rows + 1))
    p = np.bincount(idx).max() / n
    assert abs(p - 1 / h) < 4 * math.sqrt((1 / h) * (1 - 1 / h) / n)


@pytest.mark.parametrize("kw, message", [
    (dict(exponent=-0.5), "Zipf exponent must be a finite number >= 0, not -0.5"),
    (dict(exponent=float("nan")), "Zipf exponent must be a finite number >= 0, not nan"),
    (dict(distribution="normal"), "distribution must be 'uniform' or 'zipf', not 'normal'"),
    (dict(lookups=4), r"lookups must be in \[0, 3\] \(smallest table\), not 4"),
    (dict(bags="variable", min_bag=3, lookups=2), r"min_bag must be in \[0, lookups = 2\], not 3"),
])
def test_generator_rejects(kw, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        generate_bags(_tiny(), 4, **kw)


def test_bags_reject_bad_offsets():
    with pytest.raises(ValueError, match="offsets must rise from 0"):
        Bags(indices=np.array([1, 2]), offsets=np.array([0, 3]))
    with pytest.raises(ValueError, match="offsets must rise from 0"):
        Bags(indices=np.array([1, 2]), offsets=np.array([0, 2, 1, 2]))


# --------------------------------------------------------------------------------------------
# Golden


@given(v=st.integers(-(1 << 40), 1 << 40), k=st.integers(0, 30))
@SETTINGS
def test_requantize_is_round_half_up_then_saturate(v, k):
    want = v if k == 0 else (v + (1 << (k - 1))) // (1 << k)  # Python // floors
    assert requantize(np.array([v]), k)[0] == min(max(want, -128), 127)


def test_requantize_ties():
    assert requantize(np.array([5, -5, 6, -6, 7, -7, 255, -256, -257]), 1).tolist() == [3, -2, 3, -3, 4, -3, 127, -128, -128]


def _pool_ref(table: np.ndarray, bags: Bags, bits: int) -> list[list[int]]:
    out = []
    for b in range(bags.batch):
        acc = [0] * table.shape[1]
        for i in bags.indices[bags.offsets[b]:bags.offsets[b + 1]]:
            for d in range(table.shape[1]):
                acc[d] = _wrap_py(acc[d] + int(table[i, d]), bits)
        out.append(acc)
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bits", [8, 12, 32])
def test_pooling_matches_loop_and_is_linear_in_rows(seed, bits):
    rng = np.random.default_rng(seed)
    m = _tiny(table_rows=(40,), dim=5, bottom=(5,), lookups=4)
    a = rng.integers(-128, 128, size=(40, 5), dtype=np.int64)
    b = rng.integers(-128, 128, size=(40, 5), dtype=np.int64)
    bags = generate_bags(m, 40, bags="variable", min_bag=0, distribution="zipf", exponent=0.8, seed=seed)[0]
    pa, pb = embedding_bag(a, bags, bits), embedding_bag(b, bags, bits)
    assert pa.tolist() == _pool_ref(a, bags, bits)
    from sparsim.dataflow.golden import wrap
    assert np.array_equal(embedding_bag(a + b, bags, bits), wrap(pa + pb, bits))
    assert np.array_equal(embedding_bag(3 * a, bags, bits), wrap(3 * pa, bits))
    empty = bags.sizes == 0
    assert empty.any() and not pa[empty].any()


def test_empty_bag_is_zero_and_repeats_count():
    table = np.array([[1, -2], [100, 100]], dtype=np.int8)
    bags = Bags(indices=np.array([1, 1, 1, 0]), offsets=np.array([0, 0, 3, 3, 4]))
    assert embedding_bag(table, bags, 32).tolist() == [[0, 0], [300, 300], [0, 0], [1, -2]]
    # 300 wraps at 8 bits to 44
    assert embedding_bag(table, bags, 8).tolist() == [[0, 0], [44, 44], [0, 0], [1, -2]]
    with pytest.raises(ValueError, match="index out of range for a table of 2 rows"):
        embedding_bag(table, Bags(indices=np.array([2]), offsets=np.array([0, 1])), 32)


@pytest.mark.parametrize("seed", range(3))
def test_mlp_layer_matches_loop(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(3, 7))
    w = rng.integers(-128, 128, size=(4, 7)).astype(np.int8)
    bias = rng.integers(-1000, 1000, size=4)
    layer = MlpLayer(weight=w, bias=bias, shift=6)
    for bits in (16, 32):
        hidden, last = mlp_layer(x, layer, bits), mlp_layer(x, layer, bits, last=True)
        for t in range(3):
            for o in range(4):
                acc = _wrap_py(sum(int(x[t, k]) * int(w[o, k]) for k in range(7)) + int(bias[o]), bits)
                assert last[t, o] == acc
                assert hidden[t, o] == min(max(0, acc) + 32 >> 6, 127)


def test_dot_interaction_matches_loop():
    rng = np.random.default_rng(9)
    bottom = rng.integers(0, 128, size=(2, 4))
    pooled = [rng.integers(-128, 128, size=(2, 4)) for _ in range(3)]
    i, j = interaction_pairs(4)
    assert list(zip(i.tolist(), j.tolist())) == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    z = interact(bottom, pooled, "dot", acc_bits=32, shift=8)
    feats = [bottom, *pooled]
    for b in range(2):
        want = bottom[b].tolist()
        for f in range(1, 4):
            for g in range(f):
                dot = sum(int(feats[f][b, d]) * int(feats[g][b, d]) for d in range(4))
                want.append(min(max((dot + 128) // 256, -128), 127))
        assert z[b].tolist() == want


def _hand_params(interaction: str) -> DlrmParams:
    t0 = np.array([[1, 2], [3, -4], [127, -128]], dtype=np.int8)
    t1 = np.array([[10, 0], [0, -10], [5, 5]], dtype=np.int8)
    bottom = MlpLayer(weight=np.array([[1, 1], [2, -1]], np.int8), bias=np.array([0, 3]), shift=1)
    if interaction == "concat":
        top = MlpLayer(weight=np.array([[1, -1, 2, 1, 3, -2]], np.int8), bias=np.array([-5]), shift=0)
    else:
        top = MlpLayer(weight=np.array([[1, 1, 1, 1, 1]], np.int8), bias=None, shift=0)
    return DlrmParams(tables=(t0, t1), bottom=(bottom,), top=(top,), pool_shift=1, interaction_shift=1)


_HAND_BAGS = (Bags(indices=np.array([0, 1, 2]), offsets=np.array([0, 2, 3])),
              Bags(indices=np.array([2, 2]), offsets=np.array([0, 0, 2])))
_HAND_DENSE = np.array([[1, 2], [-3, 4]], dtype=np.int8)


def test_hand_case_concat():
    """Two samples, two 3-row tables of dim 2, all shifts 1.

    pooled: table 0: s0 rows 0+1 = [4, -2], s1 row 2 = [127, -128]; table 1: s0 empty = [0, 0],
    s1 row 2 twice = [10, 10]. Requantised ((v + 1) >> 1, floor): [2, -1], [64, -64]; [0, 0],
    [5, 5] (63.5 -> 64, -64 exact, 5 exact).
    bottom: s0 W x + b = [1+2, 2-2+3] = [3, 3] -> relu -> (3+1)>>1 = [2, 2];
            s1 [-3+4, -6-4+3] = [1, -7] -> relu [1, 0] -> [1, 0].
    concat: s0 [2, 2, 2, -1, 0, 0]; s1 [1, 0, 64, -64, 5, 5].
    top (last layer, acc width): s0 2-2+4-1+0-0-5 = -2; s1 1-0+128-64+15-10-5 = 65.
    """
    tr = forward(_tiny(), _hand_params("concat"), _HAND_DENSE, _HAND_BAGS, acc_bits=32)
    assert [p.tolist() for p in tr.pooled] == [[[4, -2], [127, -128]], [[0, 0], [10, 10]]]
    assert [p.tolist() for p in tr.pooled_int8] == [[[2, -1], [64, -64]], [[0, 0], [5, 5]]]
    assert tr.bottom_out.tolist() == [[2, 2], [1, 0]]
    assert tr.interaction.tolist() == [[2, 2, 2, -1, 0, 0], [1, 0, 64, -64, 5, 5]]
    assert tr.output.tolist() == [[-2], [65]]
    # at 7 accumulator bits 65 wraps to -63 (and 127 pools to -1, so earlier stages change too)
    assert forward(_tiny(), _hand_params("concat"), _HAND_DENSE, _HAND_BAGS, acc_bits=7).pooled[0].tolist() == [[4, -2], [-1, 0]]


def test_hand_case_dot():
    """Same features as the concat case; pairs (1,0), (2,0), (2,1) of [bottom, pooled0, pooled1].

    s0: [2,2]·[2,-1] = 2, [2,2]·[0,0] = 0, [2,-1]·[0,0] = 0 -> (v+1)>>1 = 1, 0, 0;
    s1: [1,0]·[64,-64] = 64, [1,0]·[5,5] = 5, [64,-64]·[5,5] = 0 -> 32, 3, 0.
    top (all-ones weights, no bias): s0 2+2+1 = 5; s1 1+0+32+3 = 36.
    """
    tr = forward(_tiny("dot"), _hand_params("dot"), _HAND_DENSE, _HAND_BAGS, acc_bits=32)
    assert tr.interaction.tolist() == [[2, 2, 1, 0, 0], [1, 0, 32, 3, 0]]
    assert tr.output.tolist() == [[5], [36]]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_runs_every_model_scaled(name):
    m = MODELS[name].scaled(500)
    params = random_params(m, seed=1)
    bags = generate_bags(m, 3, distribution="zipf", exponent=1.0, seed=1)
    tr = forward(m, params, random_dense(m, 3, seed=1), bags, acc_bits=32)
    assert tr.interaction.shape == (3, m.interaction_width)
    assert tr.output.shape == (3, 1)
    assert tr.interaction.min() >= -128 and tr.interaction.max() <= 127
    # the default shifts keep hidden activations alive: not all zero, not all saturated
    assert 0 < np.count_nonzero(tr.bottom_out) and np.mean(tr.bottom_out == 127) < 0.5


def test_forward_rejects_bad_shapes():
    m = _tiny()
    with pytest.raises(ValueError, match=r"dense features must be \[batch, 2\]"):
        forward(m, _hand_params("concat"), np.zeros((2, 3), np.int8), _HAND_BAGS, 32)
    with pytest.raises(ValueError, match="need 2 tables of bags for a batch of 2"):
        forward(m, _hand_params("concat"), _HAND_DENSE, _HAND_BAGS[:1], 32)
    with pytest.raises(ValueError, match="dense features must be INT8"):
        forward(m, _hand_params("concat"), np.array([[200, 0], [0, 0]]), _HAND_BAGS, 32)


def _small_params(m: DlrmModel, rng: np.random.Generator) -> DlrmParams:
    """Values small enough that with zero shifts no integer stage saturates or wraps."""
    def layers(shapes):
        return tuple(MlpLayer(weight=rng.integers(-1, 2, size=(o, i)).astype(np.int8),
                              bias=rng.integers(-2, 3, size=o), shift=0) for i, o in shapes)
    tables = tuple(rng.integers(-1, 2, size=(r, m.dim)).astype(np.int8) for r in m.table_rows)
    return DlrmParams(tables=tables, bottom=layers(m.bottom_layers), top=layers(m.top_layers),
                      pool_shift=0, interaction_shift=0)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("interaction, top, bags", [
    ("concat", (2, 1), "variable"), ("concat", (1,), "fixed"), ("dot", (1,), "variable")])
def test_float32_path_equals_golden_without_rounding(seed, interaction, top, bags):
    """The FP32 path runs the golden's stages in the golden's order: where no stage rounds,
    saturates or wraps, the two outputs are equal (variable bags with empty ones, including
    trailing empty bags, go through reduceat)."""
    rng = np.random.default_rng(seed)
    m = DlrmModel(name="f", dense_features=4, bottom=(3,), top=top, dim=3, table_rows=(20, 9, 30),
                  lookups=3, interaction=interaction)
    params = _small_params(m, rng)
    dense = rng.integers(-1, 2, size=(16, 4)).astype(np.int8)
    all_bags = generate_bags(m, 16, bags=bags, min_bag=0, seed=seed)
    if bags == "variable":
        b0 = all_bags[0]  # make the last two bags of table 0 empty
        cut = int(b0.offsets[-3])
        all_bags = (Bags(indices=b0.indices[:cut], offsets=np.minimum(b0.offsets, cut)), *all_bags[1:])
        assert (all_bags[0].sizes[-2:] == 0).all() and (all_bags[0].sizes[:-2] > 0).any()
    want = forward(m, params, dense, all_bags, acc_bits=32)
    assert np.abs(want.interaction).max() < 127  # nothing saturated
    got = forward_float32(m, to_float32(params), dense, all_bags)
    assert got.dtype == np.float32
    assert np.array_equal(got, want.output.astype(np.float32))
