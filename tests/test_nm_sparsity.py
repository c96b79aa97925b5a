"""BDWP masks, padded N:M operands and the golden training GEMMs (``sparsity.NMWeights``,
``prune_compress_nm``, ``bdwp_copies``; ``golden.nm_gemm``, ``forward``,
``activation_gradient``, ``weight_gradient``, ``im2col``). Simulator-free.

Masks are checked against a pure-Python reference (zero-pad to a multiple of m, keep the n
largest ``|w|`` per group, ties to the lower position) that shares no code with the module, and
GEMMs against int64 matrix products of the reference-pruned weights.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sparsim.dataflow import golden
from sparsim.dataflow.sparsity import NMWeights, bdwp_copies, is_nm_sparse, prune_compress_nm

SETTINGS = settings(max_examples=80, deadline=None)
NM_PAIRS = ((1, 1), (2, 4), (1, 4), (2, 8), (4, 8), (1, 8), (4, 16), (0, 2), (3, 4))


def _int8(shape: tuple[int, int]) -> st.SearchStrategy[np.ndarray]:
    # small values make ties and zeros common; the full range makes products wrap
    return arrays(np.int8, shape, elements=st.one_of(st.sampled_from([0, 1, -1, 2, -2]),
                                                     st.integers(-128, 127)))


@st.composite
def operand_cases(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    """(w[Q, K], n, m) with K anything, often not a multiple of m."""
    n, m = draw(st.sampled_from(NM_PAIRS))
    q, k = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    return draw(_int8((q, k))), n, m


def _reference_prune(w: np.ndarray, n: int, m: int, axis: int) -> np.ndarray:
    """``w`` pruned n:m along ``axis`` (padded with zeros to a multiple of m, then cut back)."""
    moved = np.moveaxis(np.asarray(w, dtype=np.int64), axis, -1)
    out = np.zeros_like(moved)
    length = moved.shape[-1]
    for idx in np.ndindex(moved.shape[:-1]):
        row = [int(v) for v in moved[idx]] + [0] * (-length % m)
        for start in range(0, len(row), m):
            kept = sorted(range(m), key=lambda i: (-abs(row[start + i]), i))[:n]
            for i in kept:
                if start + i < length:
                    out[idx + (start + i,)] = row[start + i]
    return np.moveaxis(out, -1, axis)


# --------------------------------------------------------------------------------------------
# Padded N:M operands


@SETTINGS
@given(operand_cases())
def test_prune_compress_round_trip(case: tuple[np.ndarray, int, int]) -> None:
    w, n, m = case
    b = prune_compress_nm(w, n, m)
    groups = -(-w.shape[1] // m)
    assert b.values.shape == b.indices.shape == (w.shape[0], groups, n)  # n kept per group
    assert b.k_compressed == groups * n
    assert (np.diff(b.indices.astype(int), axis=-1) > 0).all()
    dense = b.dense()
    assert dense.shape == w.shape and dense.dtype == w.dtype
    np.testing.assert_array_equal(dense, _reference_prune(w, n, m, axis=1))
    # kept entries are w's own values, every padded group holds at most n non-zeros
    assert ((dense == 0) | (dense == w)).all()
    assert is_nm_sparse(np.pad(dense, ((0, 0), (0, -w.shape[1] % m))), n, m, axis=1)
    again = NMWeights(values=b.values, indices=b.indices, m=m, k=w.shape[1])
    np.testing.assert_array_equal(again.dense(), dense)


def test_tie_rule_keeps_the_lower_position() -> None:
    w = np.array([[3, -3, 3, 1, -7, 7, 0, 0]], dtype=np.int8)
    b = prune_compress_nm(w, 2, 4)
    np.testing.assert_array_equal(b.indices, [[[0, 1], [0, 1]]])
    np.testing.assert_array_equal(b.dense(), [[3, -3, 0, 0, -7, 7, 0, 0]])
    # |-128| is the largest int8 magnitude
    np.testing.assert_array_equal(prune_compress_nm(np.array([[127, -128]], np.int8), 1, 2).dense(),
                                  [[0, -128]])


def test_padding_is_zero_and_ranks_last() -> None:
    # K = 6, m = 4: the second group is [5, 6, pad, pad]; 3:4 keeps 5, 6 and the first pad
    b = prune_compress_nm(np.array([[1, 2, 3, 4, 5, 6]], dtype=np.int8), 3, 4)
    np.testing.assert_array_equal(b.values, [[[2, 3, 4], [5, 6, 0]]])
    np.testing.assert_array_equal(b.indices, [[[1, 2, 3], [0, 1, 2]]])
    np.testing.assert_array_equal(b.dense(), [[0, 2, 3, 4, 5, 6]])


def test_dense_is_one_to_one() -> None:
    w = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    b = prune_compress_nm(w, 1, 1)
    assert b.k_compressed == 4 and not b.indices.any()
    np.testing.assert_array_equal(b.values[:, :, 0], w)


@SETTINGS
@given(operand_cases())
def test_bdwp_copies_prune_along_cin_and_cout(case: tuple[np.ndarray, int, int]) -> None:
    w, n, m = case  # W[Cout, K]
    forward, backward = bdwp_copies(w, n, m)
    assert forward.rows == w.shape[0] and forward.k == w.shape[1]
    assert backward.rows == w.shape[1] and backward.k == w.shape[0]
    np.testing.assert_array_equal(forward.dense(), _reference_prune(w, n, m, axis=1))
    np.testing.assert_array_equal(backward.dense().T, _reference_prune(w, n, m, axis=0))


def test_bdwp_copies_differ_by_direction() -> None:
    w = np.array([[9, 1], [2, 8]], dtype=np.int8)
    forward, backward = bdwp_copies(w, 1, 2)
    np.testing.assert_array_equal(forward.dense(), [[9, 0], [0, 8]])  # per row (along Cin)
    np.testing.assert_array_equal(backward.dense().T, [[9, 0], [0, 8]])  # per column (Cout)
    w = np.array([[9, 8], [2, 1]], dtype=np.int8)
    forward, backward = bdwp_copies(w, 1, 2)
    np.testing.assert_array_equal(forward.dense(), [[9, 0], [2, 0]])
    np.testing.assert_array_equal(backward.dense().T, [[9, 8], [0, 0]])


# --------------------------------------------------------------------------------------------
# Golden GEMMs


@SETTINGS
@given(operand_cases(), st.integers(1, 5), st.sampled_from([8, 16, 20, 32, 48]), st.data())
def test_sparse_gemm_equals_dense_gemm_on_decompressed(
    case: tuple[np.ndarray, int, int], p: int, acc_bits: int, data: st.DataObject
) -> None:
    w, n, m = case
    a = data.draw(_int8((p, w.shape[1])))
    b = prune_compress_nm(w, n, m)
    got = golden.nm_gemm(a, b, acc_bits)
    np.testing.assert_array_equal(got, golden.linear(a, b.dense(), acc_bits))
    exact = a.astype(np.int64) @ _reference_prune(w, n, m, axis=1).T
    np.testing.assert_array_equal(got, golden.wrap(exact, acc_bits))


def test_accumulator_wraps_twos_complement() -> None:
    a = np.full((1, 4), -128, dtype=np.int8)
    b = prune_compress_nm(np.full((1, 4), -128, dtype=np.int8), 1, 1)
    # 4 * 16384 = 2**16: 0 in 16 bits, -2**16 in 17 bits, exact from 18 bits on
    assert golden.nm_gemm(a, b, 16)[0, 0] == 0
    assert golden.nm_gemm(a, b, 17)[0, 0] == -65536
    assert golden.nm_gemm(a, b, 18)[0, 0] == 65536
    assert golden.nm_gemm(a, b, 32)[0, 0] == 65536


@SETTINGS
@given(st.sampled_from(NM_PAIRS), st.integers(1, 9), st.integers(1, 9), st.integers(1, 9),
       st.sampled_from([16, 24, 32]), st.data())
def test_training_gemms_in_every_mode(
    nm: tuple[int, int], p: int, cout: int, k: int, acc_bits: int, data: st.DataObject
) -> None:
    n, m = nm
    x = data.draw(_int8((p, k)))
    w = data.draw(_int8((cout, k)))
    dy = data.draw(_int8((p, cout)))
    wide = {name: v.astype(np.int64) for name, v in (("x", x), ("w", w), ("dy", dy))}
    wf = _reference_prune(w, n, m, axis=1)  # along K (Cin)
    wb = _reference_prune(w, n, m, axis=0)  # along Cout
    expect = {
        "dense": (wide["x"] @ wide["w"].T, wide["dy"] @ wide["w"]),
        "sr_ste": (wide["x"] @ wf.T, wide["dy"] @ wf),
        "bdwp": (wide["x"] @ wf.T, wide["dy"] @ wb),
    }
    for mode, (y, dx) in expect.items():
        np.testing.assert_array_equal(golden.forward(x, w, mode, n, m, acc_bits), golden.wrap(y, acc_bits))
        np.testing.assert_array_equal(
            golden.activation_gradient(dy, w, mode, n, m, acc_bits), golden.wrap(dx, acc_bits)
        )
    dw = np.einsum("pq,pk->qk", wide["dy"], wide["x"])
    np.testing.assert_array_equal(golden.weight_gradient(dy, x, acc_bits), golden.wrap(dw, acc_bits))


def test_weight_operands_compression_per_mode() -> None:
    w = np.arange(1, 33, dtype=np.int8).reshape(4, 8)
    fwd, bwd = golden.weight_operands(w, "dense", 2, 8)
    assert (fwd.m, fwd.n, bwd.m, bwd.n) == (1, 1, 1, 1)
    fwd, bwd = golden.weight_operands(w, "sr_ste", 2, 8)
    assert (fwd.m, fwd.n, bwd.m, bwd.n) == (8, 2, 1, 1)  # dX of SR-STE runs dense
    assert fwd.k_compressed == 2 and bwd.k_compressed == 4
    fwd, bwd = golden.weight_operands(w, "bdwp", 2, 8)
    assert (fwd.m, fwd.n, bwd.m, bwd.n) == (8, 2, 8, 2)
    assert bwd.rows == 8 and bwd.k == 4 and bwd.k_compressed == 2  # Cout 4 padded to 8


# --------------------------------------------------------------------------------------------
# Convolution lowering


@pytest.mark.parametrize("kh, kw, stride, padding", [(3, 3, 1, 1), (3, 3, 2, 1), (1, 1, 2, 0),
                                                     (7, 7, 2, 3), (2, 3, 1, 0)])
def test_im2col_gemm_is_the_convolution(kh: int, kw: int, stride: int, padding: int) -> None:
    rng = np.random.default_rng(kh * 100 + kw * 10 + stride)
    b, cin, h, w_, cout = 2, 3, 9, 8, 4
    x = rng.integers(-128, 128, (b, cin, h, w_), dtype=np.int8)
    wt = rng.integers(-128, 128, (cout, cin, kh, kw), dtype=np.int8)
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w_ + 2 * padding - kw) // stride + 1
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    direct = np.zeros((b, cout, ho, wo), dtype=np.int64)
    for oy in range(ho):
        for ox in range(wo):
            patch = xp[:, :, oy * stride : oy * stride + kh, ox * stride : ox * stride + kw]
            direct[:, :, oy, ox] = np.einsum("bcij,ocij->bo", patch, wt.astype(np.int64))
    a = golden.im2col(x, kh, kw, stride, padding)
    assert a.shape == (b * ho * wo, kh * kw * cin)
    y = golden.linear(a, golden.conv_weight_matrix(wt), 32)
    np.testing.assert_array_equal(y.reshape(b, ho, wo, cout).transpose(0, 3, 1, 2), direct)


def test_im2col_groups_consecutive_input_channels() -> None:
    x = np.arange(8, dtype=np.int8).reshape(1, 8, 1, 1)  # Cin = 8, one pixel
    np.testing.assert_array_equal(golden.im2col(x, 1, 1, 1, 0), [list(range(8))])
    wt = np.arange(16, dtype=np.int8).reshape(1, 8, 1, 2)  # two taps
    np.testing.assert_array_equal(golden.conv_weight_matrix(wt)[0, :8], np.arange(0, 16, 2))


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("call, message", [
    (lambda: golden.forward(np.zeros((1, 4), np.int8), np.zeros((1, 4), np.int8), "ste", 2, 4, 32),
     "mode must be one of dense, sr_ste, bdwp, not 'ste'"),
    (lambda: golden.nm_gemm(np.zeros((1, 3), np.int8), prune_compress_nm(np.zeros((1, 4), np.int8), 2, 4), 32),
     r"shapes do not chain: a \(1, 3\), b has k=4"),
    (lambda: golden.nm_gemm(np.zeros((1, 4), np.float32), prune_compress_nm(np.zeros((1, 4), np.int8), 2, 4), 32),
     "a must be a 2-D integer array, not 2-D float32"),
    (lambda: prune_compress_nm(np.zeros((2, 4), np.int8), 5, 4), "n must be between 0 and m=4, not 5"),
    (lambda: prune_compress_nm(np.zeros((2, 0), np.int8), 1, 4), r"w must have at least one column"),
    (lambda: NMWeights(values=np.zeros((1, 2, 2), np.int8), indices=np.zeros((1, 2, 2), np.uint8), m=4, k=5),
     "indices must be strictly ascending within each group"),
    (lambda: NMWeights(values=np.zeros((1, 1, 2), np.int8), indices=np.array([[[0, 1]]], np.uint8), m=4, k=5),
     r"values must be \[Q, ceil\(k/m\)=2, n\] for k=5, m=4, not shape \(1, 1, 2\)"),
    (lambda: NMWeights(values=np.zeros((1, 1, 1), np.int8), indices=np.zeros((1, 1, 1), np.int16), m=4, k=4),
     "indices must be uint8, not dtype int16"),
])
def test_value_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
