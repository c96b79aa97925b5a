"""Tests of ``sparsim.dataflow.sparsity``: N:M, block N:M, unstructured and bidirectional masks and
the compressed formats. Simulator-free.

The masks are checked against a pure-Python reference (sorted by ``(-|w|, position)``) that
shares no code with the vectorised implementation, and swept over dtypes, N, M and shapes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sparsim.dataflow.sparsity import (
    BlockNM,
    block_nm_mask,
    choose_block_n,
    compress_block_nm,
    compress_nm,
    decompress_block_nm,
    decompress_nm,
    index_bits,
    is_nm_sparse,
    metadata_bytes,
    nm_mask,
    prune_nm,
    transposable_nm_masks,
    unstructured_mask,
)

SETTINGS = settings(max_examples=60, deadline=None)
DTYPES = (np.int8, np.int16, np.float32)
GROUP_SIZES = (1, 2, 4, 8, 16)
FLIGHTLLM_CHOICES = (0, 2, 4, 8, 16)


# --------------------------------------------------------------------------------------------
# Strategies and reference model


def _elements(dtype: type) -> st.SearchStrategy:
    """Full-range values mixed with a few small ones, so ties and zeros are common."""
    small = st.sampled_from([0, 1, -1, 2, -2])
    if np.dtype(dtype).kind == "f":
        full = st.floats(width=32, allow_nan=False, allow_infinity=False)
        return st.one_of(small.map(float), st.just(-0.0), full)
    info = np.iinfo(dtype)
    return st.one_of(small, st.integers(int(info.min), int(info.max)))


def _weights(dtype: type, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    return arrays(dtype, shape, elements=_elements(dtype))


@st.composite
def nm_cases(draw: st.DrawFn, ndim: int | None = None) -> tuple[np.ndarray, int, int, int]:
    """(w, n, m, axis) with w.shape[axis] a multiple of m."""
    m = draw(st.sampled_from(GROUP_SIZES))
    n = draw(st.integers(0, m))
    ndim = ndim if ndim is not None else draw(st.integers(1, 3))
    axis = draw(st.integers(0, ndim - 1))
    shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    shape[axis] = draw(st.integers(1, 3)) * m
    w = draw(_weights(draw(st.sampled_from(DTYPES)), tuple(shape)))
    return w, n, m, axis


@st.composite
def matrix_cases(draw: st.DrawFn, square_groups: bool = False) -> tuple[np.ndarray, int, int]:
    """(w, n, m) with w 2-D, columns (and rows if square_groups) multiples of m."""
    m = draw(st.sampled_from(GROUP_SIZES))
    n = draw(st.integers(0, m))
    rows = draw(st.integers(1, 3)) * m if square_groups else draw(st.integers(1, 5))
    cols = draw(st.integers(1, 3)) * m
    w = draw(_weights(draw(st.sampled_from(DTYPES)), (rows, cols)))
    return w, n, m


@st.composite
def block_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """(w, block_n, block): N:16 from the FlightLLM choices, or a small block with any N."""
    block = draw(st.sampled_from((16, 2, 4)))
    rb, kb = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    choices = st.sampled_from(FLIGHTLLM_CHOICES) if block == 16 else st.integers(0, block)
    block_n = np.array(
        [[draw(choices) for _ in range(kb)] for _ in range(rb)], dtype=np.int64
    ).reshape(rb, kb)
    w = draw(_weights(draw(st.sampled_from(DTYPES)), (rb * block, kb * block)))
    return w, block_n, block


def _magnitudes(w: np.ndarray) -> np.ndarray:
    """Exact |w| as Python numbers (object array), independent of the module's key."""
    convert = float if w.dtype.kind == "f" else int
    return np.vectorize(lambda x: abs(convert(x)), otypes=[object])(w)


def _reference_nm_mask(w: np.ndarray, n: int, m: int, axis: int) -> np.ndarray:
    moved = np.moveaxis(w, axis, -1)
    out = np.zeros(moved.shape, dtype=bool)
    for idx in np.ndindex(moved.shape[:-1]):
        mags = _magnitudes(moved[idx])
        for start in range(0, moved.shape[-1], m):
            kept = sorted(range(m), key=lambda i: (-mags[start + i], i))[:n]
            for i in kept:
                out[idx + (start + i,)] = True
    return np.moveaxis(out, -1, axis)


def _groups(a: np.ndarray, m: int, axis: int) -> np.ndarray:
    moved = np.moveaxis(a, axis, -1)
    return moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)


# --------------------------------------------------------------------------------------------
# N:M masks


@SETTINGS
@given(nm_cases())
def test_nm_mask_matches_reference(case: tuple[np.ndarray, int, int, int]) -> None:
    w, n, m, axis = case
    mask = nm_mask(w, n, m, axis=axis)
    assert mask.dtype == np.bool_ and mask.shape == w.shape
    np.testing.assert_array_equal(mask, _reference_nm_mask(w, n, m, axis))
    np.testing.assert_array_equal(nm_mask(w, n, m, axis=axis - w.ndim), mask)


@SETTINGS
@given(nm_cases())
def test_nm_mask_keeps_n_per_group_and_prune_is_nm_sparse(
    case: tuple[np.ndarray, int, int, int],
) -> None:
    w, n, m, axis = case
    mask = nm_mask(w, n, m, axis=axis)
    assert (_groups(mask, m, axis).sum(axis=-1) == min(n, m)).all()
    pruned = prune_nm(w, n, m, axis=axis)
    assert pruned.dtype == w.dtype and pruned.shape == w.shape
    np.testing.assert_array_equal(pruned[mask], w[mask])
    assert (pruned[~mask] == 0).all()
    assert (np.count_nonzero(_groups(pruned, m, axis), axis=-1) <= n).all()
    assert is_nm_sparse(pruned, n, m, axis=axis)


@SETTINGS
@given(nm_cases())
def test_pruning_keeps_the_largest_magnitudes(case: tuple[np.ndarray, int, int, int]) -> None:
    w, n, m, axis = case
    mags = _groups(_magnitudes(w), m, axis).reshape(-1, m)
    kept = _groups(nm_mask(w, n, m, axis=axis), m, axis).reshape(-1, m)
    for group_mags, group_kept in zip(mags, kept):
        if group_kept.any() and (~group_kept).any():
            assert min(group_mags[group_kept]) >= max(group_mags[~group_kept])


@SETTINGS
@given(matrix_cases(square_groups=True))
def test_nm_mask_transpose_law(case: tuple[np.ndarray, int, int]) -> None:
    w, n, m = case
    np.testing.assert_array_equal(nm_mask(w, n, m, axis=0), nm_mask(w.T, n, m, axis=1).T)
    np.testing.assert_array_equal(nm_mask(w, n, m, axis=1), nm_mask(w.T, n, m, axis=0).T)


def test_ties_keep_the_lower_position() -> None:
    w = np.array([[3, 5, 5, 5, 7, 7, 0, 7]], dtype=np.int16)
    expected = np.array([[False, True, True, False, True, True, False, False]])
    np.testing.assert_array_equal(nm_mask(w, 2, 4), expected)
    np.testing.assert_array_equal(nm_mask(-w, 2, 4), expected)


def test_most_negative_integer_is_the_largest_magnitude() -> None:
    w = np.array([[127, -128, 0, 1]], dtype=np.int8)
    np.testing.assert_array_equal(nm_mask(w, 1, 4), [[False, True, False, False]])
    np.testing.assert_array_equal(prune_nm(w, 1, 4), np.array([[0, -128, 0, 0]], dtype=np.int8))


def test_nm_mask_along_a_middle_axis() -> None:
    w = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3) - 10
    mask = nm_mask(w, 1, 2, axis=1)
    expected = np.moveaxis(nm_mask(np.moveaxis(w, 1, -1), 1, 2, axis=-1), -1, 1)
    np.testing.assert_array_equal(mask, expected)
    assert (mask.sum(axis=1) == 2).all()


@SETTINGS
@given(nm_cases(), st.data())
def test_is_nm_sparse_counts_non_zeros(
    case: tuple[np.ndarray, int, int, int], data: st.DataObject
) -> None:
    w, n, m, axis = case
    # Zero out a random subset so that both answers occur.
    w = np.where(data.draw(arrays(np.bool_, w.shape)), w, np.zeros((), w.dtype))
    expected = bool((np.count_nonzero(_groups(w, m, axis), axis=-1) <= n).all())
    assert is_nm_sparse(w, n, m, axis=axis) is expected
    assert is_nm_sparse(w, m, m, axis=axis)


def test_is_nm_sparse_detects_one_dense_group() -> None:
    w = np.array([[1, 0, 0, 0, 1, 1, 0, 0]], dtype=np.int8)
    assert is_nm_sparse(w, 2, 4)
    assert not is_nm_sparse(w, 1, 4)
    assert not is_nm_sparse(w.T, 1, 4, axis=0)


# --------------------------------------------------------------------------------------------
# N:M compressed format


@SETTINGS
@given(matrix_cases(), st.data())
def test_nm_compress_round_trip(case: tuple[np.ndarray, int, int], data: st.DataObject) -> None:
    w, n, m = case
    # Prune to n_kept <= n so that some groups need padding.
    n_kept = data.draw(st.integers(0, n))
    sparse = prune_nm(w, n_kept, m, axis=1)
    values, indices = compress_nm(sparse, n, m)
    rows, k = sparse.shape
    assert values.shape == indices.shape == (rows, k // m, n)
    assert values.dtype == sparse.dtype and indices.dtype == np.uint8
    assert (indices < m).all()
    assert (np.diff(indices.astype(np.int64), axis=-1) > 0).all()
    dense = decompress_nm(values, indices, m)
    assert dense.dtype == sparse.dtype
    np.testing.assert_array_equal(dense, sparse)
    expected_bytes = math.ceil(indices.size * index_bits(m) / 8)
    assert metadata_bytes(rows, k, n, m) == expected_bytes


def test_nm_compress_pads_with_the_smallest_unused_positions() -> None:
    w = np.array([[0, 5, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0]], dtype=np.int8)
    values, indices = compress_nm(w, 2, 4)
    np.testing.assert_array_equal(values, [[[0, 5], [0, 7], [0, 0]]])
    np.testing.assert_array_equal(indices, [[[0, 1], [0, 3], [0, 1]]])
    np.testing.assert_array_equal(decompress_nm(values, indices, 4), w)


# --------------------------------------------------------------------------------------------
# Block N:M (FlightLLM)


@SETTINGS
@given(block_cases())
def test_block_nm_mask_is_nm_mask_per_block(case: tuple[np.ndarray, np.ndarray, int]) -> None:
    w, block_n, block = case
    mask = block_nm_mask(w, block_n, block)
    assert mask.dtype == np.bool_ and mask.shape == w.shape
    for (bi, bj), n in np.ndenumerate(block_n):
        rows = slice(bi * block, (bi + 1) * block)
        cols = slice(bj * block, (bj + 1) * block)
        expected = _reference_nm_mask(w[rows, cols], n, block, 1)
        np.testing.assert_array_equal(mask[rows, cols], expected)
        assert (mask[rows, cols].sum(axis=1) == n).all()


@SETTINGS
@given(matrix_cases())
def test_uniform_block_n_equals_nm_mask(case: tuple[np.ndarray, int, int]) -> None:
    w, n, m = case
    w = np.tile(w, (m, 1))  # rows a multiple of the block too
    block_n = np.full((w.shape[0] // m, w.shape[1] // m), n)
    np.testing.assert_array_equal(block_nm_mask(w, block_n, m), nm_mask(w, n, m, axis=1))


@SETTINGS
@given(block_cases(), st.data())
def test_block_nm_compress_round_trip(
    case: tuple[np.ndarray, np.ndarray, int], data: st.DataObject
) -> None:
    w, block_n, block = case
    # Prune some blocks below their N so that rows need padding.
    lower = np.array([data.draw(st.integers(0, int(n))) for n in block_n.flat])
    lower = lower.reshape(block_n.shape)
    sparse = np.where(block_nm_mask(w, lower, block), w, np.zeros((), w.dtype))
    c = compress_block_nm(sparse, block_n, block)
    assert c.shape == w.shape and c.block == block
    np.testing.assert_array_equal(c.block_n, block_n)
    assert c.values.dtype == w.dtype and c.indices.dtype == np.uint8
    assert c.values.shape == c.indices.shape == (block * int(block_n.sum()),)
    assert (c.indices < block).all()
    dense = decompress_block_nm(c)
    assert dense.dtype == w.dtype
    np.testing.assert_array_equal(dense, sparse)


def test_block_nm_layout_is_block_major_then_row_then_column() -> None:
    w = np.array(
        [
            [1, 0, 0, 2],
            [0, 3, 4, 5],
        ],
        dtype=np.int8,
    )
    c = compress_block_nm(w, np.array([[1, 2]]), block=2)
    # Block (0, 0) keeps 1 per row, block (0, 1) keeps 2 per row.
    np.testing.assert_array_equal(c.values, [1, 3, 0, 2, 4, 5])
    np.testing.assert_array_equal(c.indices, [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(decompress_block_nm(c), w)


def test_compress_block_nm_copies_block_n() -> None:
    block_n = np.array([[2]])
    c = compress_block_nm(np.zeros((2, 2), np.int8), block_n, block=2)
    block_n[0, 0] = 0
    assert c.block_n[0, 0] == 2


@SETTINGS
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 4),
    st.integers(1, 4),
    st.floats(0.0, 1.0),
)
def test_choose_block_n_meets_density_within_one_block(
    seed: int, rb: int, kb: int, density: float
) -> None:
    block = 16
    w = np.random.default_rng(seed).standard_normal((rb * block, kb * block)).astype(np.float32)
    block_n = choose_block_n(w, density, block)
    assert block_n.shape == (rb, kb)
    assert set(block_n.flat) <= set(FLIGHTLLM_CHOICES)
    kept = int(block_nm_mask(w, block_n, block).sum())
    target = density * w.size
    assert target - block * block < kept <= target + 1e-6
    # Heavier blocks never get a smaller N than lighter ones.
    importance = np.abs(w.astype(np.float64)).reshape(rb, block, kb, block).sum(axis=(1, 3))
    order = np.argsort(-importance.reshape(-1), kind="stable")
    assert (np.diff(block_n.reshape(-1)[order]) <= 0).all()


@pytest.mark.parametrize(("density", "n"), [(0.0, 0), (0.125, 2), (0.25, 4), (0.5, 8), (1.0, 16)])
def test_choose_block_n_is_uniform_at_a_choice(density: float, n: int) -> None:
    w = np.random.default_rng(7).standard_normal((32, 48))
    np.testing.assert_array_equal(choose_block_n(w, density), np.full((2, 3), n))


def test_choose_block_n_raises_the_heaviest_blocks() -> None:
    scale = np.array([[1.0, 4.0], [3.0, 2.0]])
    w = np.kron(scale, np.ones((16, 16)))
    # Target mean N = 6: all blocks get 4, the budget raises two of them to 8.
    np.testing.assert_array_equal(choose_block_n(w, 6 / 16), [[4, 8], [8, 4]])
    # Custom choices and block size.
    custom = choose_block_n(w, 0.5, block=16, choices=(1, 16))
    np.testing.assert_array_equal(custom, [[1, 16], [1, 1]])


# --------------------------------------------------------------------------------------------
# Unstructured and bidirectional


@SETTINGS
@given(nm_cases(), st.floats(0.0, 1.0))
def test_unstructured_mask_keeps_the_largest(
    case: tuple[np.ndarray, int, int, int], density: float
) -> None:
    w = case[0]
    mask = unstructured_mask(w, density)
    assert mask.dtype == np.bool_ and mask.shape == w.shape
    assert int(mask.sum()) == round(density * w.size)
    mags = _magnitudes(w).reshape(-1)
    flat = mask.reshape(-1)
    if flat.any() and (~flat).any():
        assert min(mags[flat]) >= max(mags[~flat])
        # Only the threshold magnitude can be split; its kept elements come first.
        threshold = min(mags[flat])
        at_threshold = mags == threshold
        if at_threshold[~flat].any():
            last_kept = np.flatnonzero(at_threshold & flat).max()
            assert last_kept < np.flatnonzero(at_threshold & ~flat).min()


def test_unstructured_mask_rounds_and_breaks_ties_by_flat_index() -> None:
    w = np.array([[2, -2], [2, 1]], dtype=np.int8)
    np.testing.assert_array_equal(unstructured_mask(w, 0.5), [[True, True], [False, False]])
    np.testing.assert_array_equal(unstructured_mask(w, 0.3), [[True, False], [False, False]])
    assert unstructured_mask(w, 0.625).sum() == 2  # round(2.5) halves to even
    assert not unstructured_mask(w, 0.0).any() and unstructured_mask(w, 1.0).all()


@SETTINGS
@given(matrix_cases(square_groups=True))
def test_transposable_masks_are_nm_along_each_axis(case: tuple[np.ndarray, int, int]) -> None:
    w, n, m = case
    forward, backward = transposable_nm_masks(w, n, m)
    np.testing.assert_array_equal(forward, _reference_nm_mask(w, n, m, axis=1))
    np.testing.assert_array_equal(backward, _reference_nm_mask(w, n, m, axis=0))
    assert (_groups(forward, m, 1).sum(axis=-1) == n).all()
    assert (_groups(backward, m, 0).sum(axis=-1) == n).all()


def test_transposable_masks_differ_by_direction() -> None:
    w = np.array([[9, 1], [8, 2]], dtype=np.int8)
    forward, backward = transposable_nm_masks(w, 1, 2)
    np.testing.assert_array_equal(forward, [[True, False], [True, False]])
    np.testing.assert_array_equal(backward, [[True, False], [False, True]])


# --------------------------------------------------------------------------------------------
# Metadata cost


@pytest.mark.parametrize(
    ("m", "bits"), [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (16, 4), (17, 5)]
)
def test_index_bits(m: int, bits: int) -> None:
    assert index_bits(m) == bits


@pytest.mark.parametrize(
    ("rows", "k", "n", "m", "nbytes"),
    [
        (4, 16, 2, 4, 8),
        (1, 8, 1, 8, 1),
        (3, 16, 3, 8, 7),
        (5, 10, 1, 1, 0),
        (0, 16, 2, 4, 0),
        (16, 64, 8, 16, 256),
    ],
)
def test_metadata_bytes(rows: int, k: int, n: int, m: int, nbytes: int) -> None:
    assert metadata_bytes(rows, k, n, m) == nbytes


# --------------------------------------------------------------------------------------------
# Every ValueError, with its message

_W44 = np.arange(16, dtype=np.int8).reshape(4, 4)
_V, _I = compress_nm(prune_nm(_W44, 2, 4), 2, 4)
_BLOCK_W = np.zeros((4, 4), np.int8)


def _block_nm(**override: object) -> BlockNM:
    fields: dict[str, object] = dict(
        values=np.zeros(4, np.int8),
        indices=np.array([0, 1, 0, 1], np.uint8),
        block_n=np.array([[2]]),
        shape=(2, 2),
        block=2,
    )
    fields.update(override)
    return BlockNM(**fields)  # type: ignore[arg-type]


ERRORS = {
    "n-not-int": (lambda: nm_mask(_W44, 2.5, 4), r"n must be an integer, not 2\.5"),
    "n-bool": (lambda: nm_mask(_W44, True, 4), r"n must be an integer, not True"),
    "m-zero": (lambda: nm_mask(_W44, 0, 0), r"m must be a positive integer, not 0"),
    "n-above-m": (lambda: nm_mask(np.zeros((2, 8)), 9, 8), r"n must be between 0 and m=8, not 9"),
    "n-negative": (lambda: prune_nm(_W44, -1, 4), r"n must be between 0 and m=4, not -1"),
    "axis-range": (
        lambda: nm_mask(_W44, 1, 2, axis=2),
        r"axis must be between -2 and 1 for a 2-D w, not 2",
    ),
    "axis-scalar": (lambda: nm_mask(np.float32(1), 1, 1), r"w must have at least 1 dimension"),
    "axis-not-multiple": (
        lambda: nm_mask(np.zeros((4, 6)), 1, 4),
        r"w.shape\[1\] must be a multiple of m=4, not 6",
    ),
    "axis0-not-multiple": (
        lambda: is_nm_sparse(np.zeros((6, 4)), 1, 4, axis=0),
        r"w.shape\[0\] must be a multiple of m=4, not 6",
    ),
    "complex": (
        lambda: nm_mask(np.zeros(4, complex), 1, 4),
        r"w must hold real numbers .* not dtype complex128",
    ),
    "nan": (lambda: nm_mask(np.array([1.0, np.nan]), 1, 2), r"w must not contain NaN"),
    "is-sparse-n": (lambda: is_nm_sparse(_W44, 5, 4), r"n must be between 0 and m=4, not 5"),
    "compress-1d": (
        lambda: compress_nm(np.zeros(8), 2, 4),
        r"w must be 2-D, not 1-D with shape \(8,\)",
    ),
    "compress-k": (
        lambda: compress_nm(np.zeros((2, 6)), 2, 4),
        r"w.shape\[1\] must be a multiple of m=4, not 6",
    ),
    "compress-m-too-big": (
        lambda: compress_nm(np.zeros((1, 512)), 1, 512),
        r"m must be at most 256 so that positions fit uint8 indices, not 512",
    ),
    "compress-not-sparse": (
        lambda: compress_nm(np.array([[1, 0, 0, 0], [1, 1, 1, 0]]), 2, 4),
        r"w must be 2:4 sparse along axis 1, but row 1 group 0 \(columns 0..3\) holds 3 non-zeros",
    ),
    "decompress-2d": (
        lambda: decompress_nm(_V[0], _I[0], 4),
        r"values must be 3-D \[rows, groups, n\], not shape \(1, 2\)",
    ),
    "decompress-shape": (
        lambda: decompress_nm(_V, _I[:, :, :1], 4),
        r"indices must have the shape of values \(4, 1, 2\), not \(4, 1, 1\)",
    ),
    "decompress-dtype": (
        lambda: decompress_nm(_V, _I.astype(float), 4),
        r"indices must be integers, not dtype float64",
    ),
    "decompress-n": (
        lambda: decompress_nm(_V, _I, 1),
        r"values.shape\[2\] \(n\) must be between 0 and m=1, not 2",
    ),
    "decompress-range": (
        lambda: decompress_nm(_V, _I + 2, 4),
        r"indices must lie in \[0, 4\), not \[4, 5\]",
    ),
    "decompress-order": (
        lambda: decompress_nm(_V, _I[:, :, ::-1], 4),
        r"indices must be strictly ascending",
    ),
    "decompress-m": (lambda: decompress_nm(_V, _I, 0), r"m must be a positive integer, not 0"),
    "block-zero": (
        lambda: block_nm_mask(_BLOCK_W, np.zeros((1, 1), int), 0),
        r"block must be a positive integer, not 0",
    ),
    "block-rows": (
        lambda: block_nm_mask(np.zeros((3, 4)), np.zeros((1, 2), int), 2),
        r"w.shape\[0\] must be a multiple of block=2, not 3",
    ),
    "block-cols": (
        lambda: block_nm_mask(np.zeros((4, 3)), np.zeros((2, 1), int), 2),
        r"w.shape\[1\] must be a multiple of block=2, not 3",
    ),
    "block-n-shape": (
        lambda: block_nm_mask(_BLOCK_W, np.zeros((1, 2), int), 2),
        r"block_n must have shape \(2, 2\) \(blocks of the weight\), not \(1, 2\)",
    ),
    "block-n-dtype": (
        lambda: block_nm_mask(_BLOCK_W, np.zeros((2, 2)), 2),
        r"block_n must hold integers, not dtype float64",
    ),
    "block-n-range": (
        lambda: block_nm_mask(_BLOCK_W, np.array([[0, 3], [1, 2]]), 2),
        r"block_n must lie in 0..block=2, not \[0, 3\]",
    ),
    "block-1d": (
        lambda: block_nm_mask(np.zeros(4), np.zeros((1, 1), int), 2),
        r"w must be 2-D, not 1-D",
    ),
    "compress-block-not-sparse": (
        lambda: compress_block_nm(np.array([[1, 0, 0, 0], [0, 0, 1, 1]]), np.array([[1, 1]]), 2),
        r"w must be block N:2 sparse, but row 1 of block \(0, 1\) holds 2 non-zeros, "
        r"more than block_n=1",
    ),
    "compress-block-too-big": (
        lambda: compress_block_nm(np.zeros((512, 512), np.int8), np.zeros((1, 1), int), 512),
        r"block must be at most 256 so that positions fit uint8 indices, not 512",
    ),
    "decompress-block-type": (
        lambda: decompress_block_nm({"values": []}),
        r"c must be a BlockNM, not dict",
    ),
    "blocknm-shape": (
        lambda: _block_nm(shape=(2, -2)),
        r"shape must be two non-negative integers \(R, K\), not \(2, -2\)",
    ),
    "blocknm-shape-multiple": (
        lambda: _block_nm(shape=(2, 3)),
        r"shape\[1\] must be a multiple of block=2, not 3",
    ),
    "blocknm-values-length": (
        lambda: _block_nm(values=np.zeros(3, np.int8)),
        r"values must be 1-D of length block \* block_n.sum\(\) = 4, not shape \(3,\)",
    ),
    "blocknm-indices-dtype": (
        lambda: _block_nm(indices=np.array([0, 1, 0, 1])),
        r"indices must be uint8, not dtype int64",
    ),
    "blocknm-indices-length": (
        lambda: _block_nm(indices=np.array([0, 1, 0], np.uint8)),
        r"indices must be 1-D of length 4 like values, not shape \(3,\)",
    ),
    "blocknm-indices-range": (
        lambda: _block_nm(indices=np.array([0, 2, 0, 1], np.uint8)),
        r"indices must be below block=2, not up to 2",
    ),
    "blocknm-indices-order": (
        lambda: _block_nm(indices=np.array([0, 1, 1, 0], np.uint8)),
        r"indices must be strictly ascending within each row of a block",
    ),
    "blocknm-block-n": (
        lambda: _block_nm(block_n=np.array([[3]])),
        r"block_n must lie in 0..block=2, not \[3, 3\]",
    ),
    "choose-density-range": (
        lambda: choose_block_n(_BLOCK_W, 1.5, 2, (0, 2)),
        r"density must be between 0 and 1, not 1\.5",
    ),
    "choose-density-type": (
        lambda: choose_block_n(_BLOCK_W, "half", 2, (0, 2)),
        r"density must be a real number, not 'half'",
    ),
    "choose-choices-range": (
        lambda: choose_block_n(_BLOCK_W, 0.5, 2),
        r"choices must be a non-empty set of integers in 0..block=2, not \(0, 2, 4, 8, 16\)",
    ),
    "choose-choices-empty": (
        lambda: choose_block_n(_BLOCK_W, 0.5, 2, ()),
        r"choices must be a non-empty set of integers in 0..block=2, not \(\)",
    ),
    "choose-choices-int": (
        lambda: choose_block_n(_BLOCK_W, 0.5, 2, (0, 1.5)),
        r"choices must be an integer, not 1\.5",
    ),
    "choose-infeasible": (
        lambda: choose_block_n(np.zeros((16, 16)), 0.05, 16, (2, 8)),
        r"density must be between 0\.125 and 0\.5 for choices \(2, 8\) and block=16, not 0\.05",
    ),
    "unstructured-density": (
        lambda: unstructured_mask(_W44, -0.1),
        r"density must be between 0 and 1, not -0\.1",
    ),
    "unstructured-nan": (
        lambda: unstructured_mask(_W44, float("nan")),
        r"density must be between 0 and 1, not nan",
    ),
    "transposable-cout": (
        lambda: transposable_nm_masks(np.zeros((6, 4)), 2, 4),
        r"w.shape\[0\] \(Cout\) must be a multiple of m=4, not 6",
    ),
    "transposable-cin": (
        lambda: transposable_nm_masks(np.zeros((4, 6)), 2, 4),
        r"w.shape\[1\] \(Cin\) must be a multiple of m=4, not 6",
    ),
    "transposable-3d": (
        lambda: transposable_nm_masks(np.zeros((4, 4, 4)), 2, 4),
        r"w must be 2-D, not 3-D",
    ),
    "index-bits-m": (lambda: index_bits(0), r"m must be a positive integer, not 0"),
    "metadata-rows": (lambda: metadata_bytes(-1, 8, 2, 4), r"rows must be non-negative, not -1"),
    "metadata-k": (lambda: metadata_bytes(1, -4, 2, 4), r"k must be non-negative, not -4"),
    "metadata-k-multiple": (
        lambda: metadata_bytes(1, 6, 2, 4),
        r"k must be a multiple of m=4, not 6",
    ),
    "metadata-n": (lambda: metadata_bytes(1, 8, 5, 4), r"n must be between 0 and m=4, not 5"),
}


@pytest.mark.parametrize(("call", "message"), list(ERRORS.values()), ids=list(ERRORS))
def test_value_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
