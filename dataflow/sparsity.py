"""Sparsity masks and compressed formats of weight matrices (NumPy golden model).

Magnitude order
    Every mask keeps weights by magnitude ``|w|``. Within a group the elements are ranked by
    ``|w|`` descending; equal magnitudes are ranked by position ascending, so ties keep the
    element that comes first and every mask is deterministic. Integer magnitudes are exact
    (``|-128|`` of an int8 is 128, not -128); NaN weights are rejected.

N:M sparsity
    Along ``axis`` the elements are cut into groups of ``m`` consecutive elements; the N:M mask
    keeps the ``n`` top-ranked elements of each group. A tensor is N:M sparse when every group
    holds at most ``n`` non-zeros.

N:M compressed format (``compress_nm``)
    ``W[rows, K]`` becomes ``values[rows, K//m, n]`` and ``indices[rows, K//m, n]`` (uint8) with
    ``W[r, g*m + indices[r, g, j]] = values[r, g, j]`` and zeros elsewhere. Indices are strictly
    ascending within a group; a group with fewer than ``n`` non-zeros is padded with its
    smallest unused positions (their values are zero), so the format is exact.

Block N:M format (FlightLLM, ``block_nm_mask`` / ``BlockNM``)
    ``W[R, K]`` is tiled into ``block x block`` blocks; block ``(bi, bj)`` is N:block sparse along
    K with its own ``N = block_n[bi, bj]``: each of its ``block`` rows keeps the ``N`` top-ranked
    of its ``block`` columns. ``N = 0`` drops the block, ``N = block`` keeps it dense.

Bidirectional N:M (BDWP, SAT)
    For ``W[Cout, Cin]`` the forward pass ``Y = X·Wᵀ`` uses N:M along Cin (axis 1) and the
    backward pass ``dX = dY·W`` uses N:M along Cout (axis 0).

Padded N:M weights for a GEMM (``NMWeights``, ``prune_compress_nm``, ``bdwp_copies``)
    A GEMM operand ``B[Q, K]`` whose reduction length ``K`` is not a multiple of ``m`` is padded
    with zero columns up to ``K_pad = ceil(K/m)*m`` before masking, so the last group holds
    ``K % m`` real elements and zeros (which the tie rule ranks last: a padded position is
    kept only when the group has fewer than ``n`` real elements, and then holds zero).
    Dense is ``n = m = 1``: one value per k with index 0. The compressed reduction length is
    ``K' = ceil(K/m)*n``. BDWP's two copies of ``W[Cout, K]`` are ``B = W`` compressed along K
    (forward) and ``B = Wᵀ`` compressed along Cout (activation gradient).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Largest group size whose in-group positions fit the uint8 index arrays.
MAX_INDEXED_GROUP = 256

# Slack for float rounding of density * size in choose_block_n.
_DENSITY_EPS = 1e-9


# --------------------------------------------------------------------------------------------
# Validation


def _as_int(name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    return int(value)


def _is_count(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _check_m(m: object) -> int:
    m = _as_int("m", m)
    if m < 1:
        raise ValueError(f"m must be a positive integer, not {m}")
    return m


def _check_nm(n: object, m: object) -> tuple[int, int]:
    m = _check_m(m)
    n = _as_int("n", n)
    if not 0 <= n <= m:
        raise ValueError(f"n must be between 0 and m={m}, not {n}")
    return n, m


def _check_block(block: object) -> int:
    block = _as_int("block", block)
    if block < 1:
        raise ValueError(f"block must be a positive integer, not {block}")
    return block


def _check_indexable(name: str, size: int) -> None:
    if size > MAX_INDEXED_GROUP:
        raise ValueError(
            f"{name} must be at most {MAX_INDEXED_GROUP} so that positions fit uint8 indices, "
            f"not {size}"
        )


def _check_density(density: object) -> float:
    if isinstance(density, (bool, np.bool_)) or not isinstance(density, numbers.Real):
        raise ValueError(f"density must be a real number, not {density!r}")
    d = float(density)
    if not 0.0 <= d <= 1.0:  # also rejects NaN
        raise ValueError(f"density must be between 0 and 1, not {density!r}")
    return d


def _as_weights(name: str, w: object) -> np.ndarray:
    arr = np.asarray(w)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must hold real numbers (bool, int, uint or float), not dtype {arr.dtype}"
        )
    return arr


def _as_matrix(name: str, w: object) -> np.ndarray:
    arr = _as_weights(name, w)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, not {arr.ndim}-D with shape {arr.shape}")
    return arr


def _check_axis(axis: object, ndim: int) -> int:
    axis = _as_int("axis", axis)
    if ndim == 0:
        raise ValueError("w must have at least 1 dimension, not a 0-D scalar")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"axis must be between {-ndim} and {ndim - 1} for a {ndim}-D w, not {axis}"
        )
    return axis % ndim


def _check_multiple(what: str, length: int, of: str, step: int) -> None:
    if length % step:
        raise ValueError(f"{what} must be a multiple of {of}={step}, not {length}")


# --------------------------------------------------------------------------------------------
# Ranking kernel shared by every mask


def _magnitude_key(w: np.ndarray) -> np.ndarray:
    """Order-preserving key of ``|w|``: exact uint64 for bool/integers, ``abs`` for floats."""
    kind = w.dtype.kind
    if kind == "f":
        if np.isnan(w).any():
            raise ValueError("w must not contain NaN: its magnitude has no order")
        return np.abs(w)
    if kind in "bu":
        return w.astype(np.uint64)
    # Two's-complement negation in uint64 is exact even for the most negative value.
    wrapped = w.astype(np.int64).astype(np.uint64)
    return np.where(w < 0, ~wrapped + np.uint64(1), wrapped)


def _descending_rank(key: np.ndarray) -> np.ndarray:
    """Rank of every element within its group (the last axis): 0 for the largest key.

    Equal keys rank by position ascending. A stable ascending sort of the reversed group, read
    backwards, is a descending sort whose ties come out in ascending original position.
    """
    size = key.shape[-1]
    reversed_order = np.argsort(key[..., ::-1], axis=-1, kind="stable")
    order = (size - 1 - reversed_order)[..., ::-1]
    rank = np.empty(key.shape, dtype=np.intp)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(size), key.shape), axis=-1)
    return rank


def _with_padding(nonzero: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Positions stored for each group (last axis): its non-zeros plus its smallest zero
    positions, up to ``n`` in all. Requires at most ``n`` non-zeros per group."""
    count = nonzero.sum(axis=-1, keepdims=True)
    zero_rank = np.cumsum(~nonzero, axis=-1)  # 1-based rank of each zero among the zeros
    return nonzero | (~nonzero & (zero_rank <= n - count))


# --------------------------------------------------------------------------------------------
# N:M


def _nm_groups(w: np.ndarray, m: int, axis: int) -> np.ndarray:
    """``w`` with ``axis`` moved last and cut into groups: shape ``[..., L//m, m]``."""
    _check_multiple(f"w.shape[{axis}]", w.shape[axis], "m", m)
    moved = np.moveaxis(w, axis, -1)
    return moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)


def nm_mask(w: np.ndarray, n: int, m: int, axis: int = -1) -> np.ndarray:
    """N:M magnitude mask: in every group of ``m`` consecutive elements along ``axis`` keep the
    ``n`` elements of largest ``|w|`` (ties: lower position first).

    Returns a C-contiguous bool array of ``w``'s shape with exactly ``n`` True per group.
    Raises ValueError unless ``m >= 1``, ``0 <= n <= m`` and ``w.shape[axis] % m == 0``.
    """
    w = _as_weights("w", w)
    n, m = _check_nm(n, m)
    ax = _check_axis(axis, w.ndim)
    groups = _nm_groups(w, m, ax)
    keep = _descending_rank(_magnitude_key(groups)) < n
    moved_shape = groups.shape[:-2] + (w.shape[ax],)
    return np.ascontiguousarray(np.moveaxis(keep.reshape(moved_shape), -1, ax))


def prune_nm(w: np.ndarray, n: int, m: int, axis: int = -1) -> np.ndarray:
    """``w`` with every element outside ``nm_mask(w, n, m, axis)`` set to zero (same dtype)."""
    w = _as_weights("w", w)
    return np.where(nm_mask(w, n, m, axis), w, np.zeros((), dtype=w.dtype))


def is_nm_sparse(w: np.ndarray, n: int, m: int, axis: int = -1) -> bool:
    """True when every group of ``m`` consecutive elements along ``axis`` holds at most ``n``
    non-zeros."""
    w = _as_weights("w", w)
    n, m = _check_nm(n, m)
    ax = _check_axis(axis, w.ndim)
    counts = np.count_nonzero(_nm_groups(w, m, ax), axis=-1)
    return bool((counts <= n).all())


def compress_nm(w: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Compress an N:M sparse ``w[rows, K]`` (groups along K) into ``(values, indices)``.

    ``values[rows, K//m, n]`` (dtype of ``w``) and ``indices[rows, K//m, n]`` (uint8, strictly
    ascending in a group) satisfy ``w[r, g*m + indices[r, g, j]] == values[r, g, j]`` with zeros
    elsewhere. A group with ``c < n`` non-zeros also stores its ``n - c`` smallest zero
    positions (with value zero), so ``decompress_nm`` is exact.

    Raises ValueError unless ``w`` is 2-D, ``K % m == 0``, ``m <= 256`` and ``w`` is N:M sparse.
    """
    w = _as_matrix("w", w)
    n, m = _check_nm(n, m)
    _check_indexable("m", m)
    rows, k = w.shape
    _check_multiple("w.shape[1]", k, "m", m)
    groups = w.reshape(rows, k // m, m)
    nonzero = groups != 0
    counts = nonzero.sum(axis=-1)
    if (counts > n).any():
        r, g = (int(i) for i in np.argwhere(counts > n)[0])
        raise ValueError(
            f"w must be {n}:{m} sparse along axis 1, but row {r} group {g} "
            f"(columns {g * m}..{g * m + m - 1}) holds {int(counts[r, g])} non-zeros"
        )
    stored = _with_padding(nonzero, n)
    positions = np.broadcast_to(np.arange(m, dtype=np.uint8), groups.shape)
    return groups[stored].reshape(rows, k // m, n), positions[stored].reshape(rows, k // m, n)


def decompress_nm(values: np.ndarray, indices: np.ndarray, m: int) -> np.ndarray:
    """Inverse of ``compress_nm``: ``w[rows, G*m]`` from ``values, indices [rows, G, n]``.

    Raises ValueError unless both are 3-D of one shape with ``n <= m``, ``indices`` are integers
    in ``[0, m)`` strictly ascending within each group.
    """
    values = _as_weights("values", values)
    indices = np.asarray(indices)
    m = _check_m(m)
    if values.ndim != 3:
        raise ValueError(f"values must be 3-D [rows, groups, n], not shape {values.shape}")
    if indices.shape != values.shape:
        raise ValueError(
            f"indices must have the shape of values {values.shape}, not {indices.shape}"
        )
    if indices.dtype.kind not in "iu":
        raise ValueError(f"indices must be integers, not dtype {indices.dtype}")
    rows, n_groups, n = values.shape
    if n > m:
        raise ValueError(f"values.shape[2] (n) must be between 0 and m={m}, not {n}")
    if indices.size and (indices.min() < 0 or indices.max() >= m):
        raise ValueError(
            f"indices must lie in [0, {m}), not [{int(indices.min())}, {int(indices.max())}]"
        )
    if (np.diff(indices.astype(np.int64), axis=-1) <= 0).any():
        raise ValueError("indices must be strictly ascending within each group")
    dense = np.zeros((rows, n_groups, m), dtype=values.dtype)
    np.put_along_axis(dense, indices.astype(np.intp), values, axis=-1)
    return dense.reshape(rows, n_groups * m)


# --------------------------------------------------------------------------------------------
# Block N:M (FlightLLM)


def _block_geometry(w: np.ndarray, block: int) -> tuple[int, int]:
    rows, k = w.shape
    _check_multiple("w.shape[0]", rows, "block", block)
    _check_multiple("w.shape[1]", k, "block", block)
    return rows // block, k // block


def _block_groups(w: np.ndarray, block: int) -> np.ndarray:
    """View ``w[R, K]`` as ``[R//block, K//block, row in block, column in block]``."""
    rows, k = w.shape
    return w.reshape(rows // block, block, k // block, block).transpose(0, 2, 1, 3)


def _unblock(groups: np.ndarray) -> np.ndarray:
    rb, kb, block, _ = groups.shape
    return np.ascontiguousarray(groups.transpose(0, 2, 1, 3)).reshape(rb * block, kb * block)


def _check_block_n(block_n: object, grid: tuple[int, int], block: int) -> np.ndarray:
    bn = np.asarray(block_n)
    if bn.dtype.kind not in "iu":
        raise ValueError(f"block_n must hold integers, not dtype {bn.dtype}")
    if bn.shape != grid:
        raise ValueError(f"block_n must have shape {grid} (blocks of the weight), not {bn.shape}")
    if bn.size and (bn.min() < 0 or bn.max() > block):
        raise ValueError(
            f"block_n must lie in 0..block={block}, not [{int(bn.min())}, {int(bn.max())}]"
        )
    return bn.astype(np.int64)


def block_nm_mask(w: np.ndarray, block_n: np.ndarray, block: int = 16) -> np.ndarray:
    """Block N:M magnitude mask of ``w[R, K]``.

    In block ``(bi, bj)`` (rows ``bi*block ..``, columns ``bj*block ..``) every row keeps its
    ``block_n[bi, bj]`` columns of largest ``|w|`` (ties: lower column first). Raises ValueError
    unless ``w`` is 2-D with ``R, K`` multiples of ``block`` and ``block_n`` is an integer
    ``[R//block, K//block]`` array with values in ``0..block``.
    """
    w = _as_matrix("w", w)
    block = _check_block(block)
    grid = _block_geometry(w, block)
    bn = _check_block_n(block_n, grid, block)
    rank = _descending_rank(_magnitude_key(_block_groups(w, block)))
    return _unblock(rank < bn[:, :, None, None])


@dataclass(frozen=True, eq=False)
class BlockNM:
    """Block N:M compressed weight, validated on construction.

    Members:
        values: 1-D, dtype of the weight. The stored entries of every block in row-major block
            order ``(bi, bj)``; inside a block, row by row; inside a row, ``block_n[bi, bj]``
            entries by ascending column. Block ``(bi, bj)`` thus holds ``block * block_n[bi, bj]``
            contiguous entries and ``len(values) == block * block_n.sum()``.
        indices: 1-D uint8 like ``values``: the column of each entry inside its block
            (``< block``, ``index_bits(block)`` bits each: 4 for ``block = 16``), strictly
            ascending within a row of a block. Rows of a block with fewer non-zeros than
            ``block_n`` are padded with their smallest zero columns, as in ``compress_nm``.
        block_n: int64 ``[R//block, K//block]``, kept entries per row of each block.
        shape: ``(R, K)`` of the dense weight.
        block: block edge (rows and columns), at most 256.
    """

    values: np.ndarray
    indices: np.ndarray
    block_n: np.ndarray
    shape: tuple[int, int]
    block: int = 16

    def __post_init__(self) -> None:
        block = _check_block(self.block)
        _check_indexable("block", block)
        shape = tuple(self.shape)
        if len(shape) != 2 or not all(_is_count(s) for s in shape):
            raise ValueError(f"shape must be two non-negative integers (R, K), not {self.shape!r}")
        rows, k = (int(s) for s in shape)
        _check_multiple("shape[0]", rows, "block", block)
        _check_multiple("shape[1]", k, "block", block)
        bn = _check_block_n(self.block_n, (rows // block, k // block), block)
        values = _as_weights("values", self.values)
        indices = np.asarray(self.indices)
        expected = block * int(bn.sum())
        if values.shape != (expected,):
            raise ValueError(
                f"values must be 1-D of length block * block_n.sum() = {expected}, "
                f"not shape {values.shape}"
            )
        if indices.dtype != np.uint8:
            raise ValueError(f"indices must be uint8, not dtype {indices.dtype}")
        if indices.shape != (expected,):
            raise ValueError(
                f"indices must be 1-D of length {expected} like values, not shape {indices.shape}"
            )
        if indices.size and int(indices.max()) >= block:
            raise ValueError(f"indices must be below block={block}, not up to {int(indices.max())}")
        row_group = _row_group_ids(bn, block)
        same_row = row_group[1:] == row_group[:-1]
        if (same_row & (indices[1:] <= indices[:-1])).any():
            raise ValueError("indices must be strictly ascending within each row of a block")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "block_n", bn)
        object.__setattr__(self, "shape", (rows, k))
        object.__setattr__(self, "block", block)


def _row_group_ids(block_n: np.ndarray, block: int) -> np.ndarray:
    """For every stored entry, the flat id of its (block row, block column, row in block)."""
    per_row = np.repeat(block_n.reshape(-1), block)
    return np.repeat(np.arange(per_row.size), per_row)


def compress_block_nm(w: np.ndarray, block_n: np.ndarray, block: int = 16) -> BlockNM:
    """Compress a block N:M sparse ``w[R, K]`` into a ``BlockNM`` (layout in its docstring).

    ``w`` must already be sparse: every row of block ``(bi, bj)`` holds at most
    ``block_n[bi, bj]`` non-zeros (prune with ``w * block_nm_mask(w, block_n, block)``);
    otherwise, and for the shape errors of ``block_nm_mask`` or ``block > 256``, ValueError.
    """
    w = _as_matrix("w", w)
    block = _check_block(block)
    _check_indexable("block", block)
    grid = _block_geometry(w, block)
    bn = _check_block_n(block_n, grid, block)
    groups = _block_groups(w, block)
    nonzero = groups != 0
    counts = nonzero.sum(axis=-1)
    limit = bn[:, :, None]
    if (counts > limit).any():
        bi, bj, r = (int(i) for i in np.argwhere(counts > limit)[0])
        raise ValueError(
            f"w must be block N:{block} sparse, but row {bi * block + r} of block ({bi}, {bj}) "
            f"holds {int(counts[bi, bj, r])} non-zeros, more than block_n={int(bn[bi, bj])}"
        )
    stored = _with_padding(nonzero, bn[:, :, None, None])
    positions = np.broadcast_to(np.arange(block, dtype=np.uint8), groups.shape)
    return BlockNM(
        values=groups[stored],
        indices=positions[stored],
        block_n=bn.copy(),
        shape=w.shape,
        block=block,
    )


def decompress_block_nm(c: BlockNM) -> np.ndarray:
    """Exact inverse of ``compress_block_nm``: the dense ``[R, K]`` weight."""
    if not isinstance(c, BlockNM):
        raise ValueError(f"c must be a BlockNM, not {type(c).__name__}")
    rows, k = c.shape
    block = c.block
    flat = np.zeros(rows * k, dtype=c.values.dtype)
    flat[_row_group_ids(c.block_n, block) * block + c.indices] = c.values
    return _unblock(flat.reshape(rows // block, k // block, block, block))


def choose_block_n(
    w: np.ndarray, density: float, block: int = 16, choices: Sequence[int] = (0, 2, 4, 8, 16)
) -> np.ndarray:
    """Per-block N (``[R//block, K//block]`` int64) whose mean kept fraction is ``density``.

    Rule, with the choices sorted ``c_0 < c_1 < ...`` and ``t = density * block`` the target
    mean N: every block gets the largest choice ``c_L <= t``; then the ``k`` blocks of largest
    L1 magnitude ``sum |w|`` (ties: lower row-major block index) are raised to ``c_{L+1}``,
    with ``k = floor(nblocks * (t - c_L) / (c_{L+1} - c_L))`` the most the budget allows. So a
    density that is a choice gives a uniform N, and the kept fraction ``d`` satisfies
    ``density - (c_{L+1} - c_L) / (block * nblocks) < d <= density``: it is never above the
    target and below it by less than one block's worth of entries.

    Raises ValueError for the shape errors of ``block_nm_mask``, choices outside ``0..block``
    or empty, and a density outside ``[min(choices), max(choices)] / block``.
    """
    w = _as_matrix("w", w)
    block = _check_block(block)
    grid = _block_geometry(w, block)
    d = _check_density(density)
    levels = np.unique(np.asarray([_as_int("choices", c) for c in choices], dtype=np.int64))
    if levels.size == 0 or levels[0] < 0 or levels[-1] > block:
        raise ValueError(
            f"choices must be a non-empty set of integers in 0..block={block}, "
            f"not {tuple(choices)!r}"
        )
    lo, hi = levels[0] / block, levels[-1] / block
    if not lo - _DENSITY_EPS <= d <= hi + _DENSITY_EPS:
        raise ValueError(
            f"density must be between {lo:g} and {hi:g} for choices "
            f"{tuple(int(c) for c in levels)} and block={block}, not {density!r}"
        )
    target = d * block
    level = max(int(np.searchsorted(levels, target + _DENSITY_EPS, side="right")) - 1, 0)
    base = int(levels[level])
    if level == levels.size - 1:
        return np.full(grid, base, dtype=np.int64)
    step = int(levels[level + 1]) - base
    n_blocks = grid[0] * grid[1]
    raised = min(math.floor(n_blocks * (target - base) / step + _DENSITY_EPS), n_blocks)
    importance = _magnitude_key(_block_groups(w, block)).astype(np.float64).sum(axis=(2, 3))
    rank = _descending_rank(importance.reshape(-1)).reshape(grid)
    return np.where(rank < raised, base + step, base).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Unstructured and bidirectional


def unstructured_mask(w: np.ndarray, density: float) -> np.ndarray:
    """Keep the ``round(density * w.size)`` elements of largest ``|w|`` over the whole tensor
    (ties: lower flat C-order index first; ``round`` halves to even). Bool mask of ``w``'s
    shape; ValueError unless ``0 <= density <= 1``."""
    w = _as_weights("w", w)
    d = _check_density(density)
    keep = round(d * w.size)
    return (_descending_rank(_magnitude_key(w.reshape(-1))) < keep).reshape(w.shape)


def transposable_nm_masks(w: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """BDWP masks of ``W[Cout, Cin]``: ``(forward, backward)``.

    ``forward = nm_mask(w, n, m, axis=1)`` (N:M along Cin, for ``Y = X·Wᵀ``) and
    ``backward = nm_mask(w, n, m, axis=0)`` (N:M along Cout, for ``dX = dY·W``). Raises
    ValueError unless ``w`` is 2-D with both dimensions multiples of ``m``.
    """
    w = _as_matrix("w", w)
    n, m = _check_nm(n, m)
    _check_multiple("w.shape[0] (Cout)", w.shape[0], "m", m)
    _check_multiple("w.shape[1] (Cin)", w.shape[1], "m", m)
    return nm_mask(w, n, m, axis=1), nm_mask(w, n, m, axis=0)


# --------------------------------------------------------------------------------------------
# Metadata cost


def index_bits(m: int) -> int:
    """Bits of one in-group index: ``ceil(log2 m)`` (0 for ``m == 1``)."""
    m = _check_m(m)
    return (m - 1).bit_length()


def metadata_bytes(rows: int, k: int, n: int, m: int) -> int:
    """Bytes of index metadata of an N:M compressed ``[rows, k]`` matrix, packed densely:
    ``ceil(rows * (k // m) * n * index_bits(m) / 8)``."""
    n, m = _check_nm(n, m)
    rows = _as_int("rows", rows)
    k = _as_int("k", k)
    if rows < 0:
        raise ValueError(f"rows must be non-negative, not {rows}")
    if k < 0:
        raise ValueError(f"k must be non-negative, not {k}")
    _check_multiple("k", k, "m", m)
    return -(-rows * (k // m) * n * index_bits(m) // 8)


# --------------------------------------------------------------------------------------------
# Padded N:M weights of a GEMM (SAT's array operand B)


def pad_to_multiple(w: np.ndarray, m: int, axis: int = -1) -> np.ndarray:
    """``w`` with zeros appended along ``axis`` up to the next multiple of ``m`` (a copy)."""
    w = _as_weights("w", w)
    m = _check_m(m)
    ax = _check_axis(axis, w.ndim)
    widths = [(0, 0)] * w.ndim
    widths[ax] = (0, -w.shape[ax] % m)
    return np.pad(w, widths)


@dataclass(frozen=True, eq=False)
class NMWeights:
    """GEMM operand ``B[Q, K]`` (``out[p, q] = sum_k A[p, k] * B[q, k]``) compressed N:M
    along K, validated on construction.

    Members:
        values: ``[Q, G, n]``, ``G = ceil(k / m)``: kept values of each group of ``m``
            consecutive k (of ``B`` zero-padded to ``G * m`` columns).
        indices: uint8 like ``values``: each value's position in its group, strictly ascending
            within a group (``index_bits(m)`` bits each in hardware).
        m: group size.
        k: reduction length of the dense operand before padding.
    """

    values: np.ndarray
    indices: np.ndarray
    m: int
    k: int

    def __post_init__(self) -> None:
        k = _as_int("k", self.k)
        if k < 1:
            raise ValueError(f"k must be a positive integer, not {k}")
        m = _check_m(self.m)
        values = _as_weights("values", self.values)
        indices = np.asarray(self.indices)
        if indices.dtype != np.uint8:
            raise ValueError(f"indices must be uint8, not dtype {indices.dtype}")
        groups = -(-k // m)
        if values.ndim != 3 or values.shape[1] != groups:
            raise ValueError(
                f"values must be [Q, ceil(k/m)={groups}, n] for k={k}, m={m}, "
                f"not shape {values.shape}"
            )
        # decompress_nm checks the indices (shape, range, order) and n <= m
        decompress_nm(values, indices, m)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "k", k)

    @property
    def n(self) -> int:
        return self.values.shape[2]

    @property
    def rows(self) -> int:
        return self.values.shape[0]

    @property
    def k_compressed(self) -> int:
        """``K' = ceil(k/m) * n``: the reduction steps the array runs."""
        return self.values.shape[1] * self.n

    def dense(self) -> np.ndarray:
        """The pruned operand ``[Q, k]`` (padding columns dropped), exact."""
        return decompress_nm(self.values, self.indices, self.m)[:, : self.k]


def prune_compress_nm(w: np.ndarray, n: int, m: int) -> NMWeights:
    """Prune ``w[Q, K]`` N:M along K (axis 1, after zero padding to a multiple of ``m``; ties:
    lower position first) and compress it. ``n = m = 1`` gives the dense operand.

    Raises ValueError unless ``w`` is a non-empty 2-D real array, ``1 <= m <= 256`` and
    ``0 <= n <= m``.
    """
    w = _as_matrix("w", w)
    n, m = _check_nm(n, m)
    _check_indexable("m", m)
    if w.shape[1] == 0:
        raise ValueError("w must have at least one column (K >= 1)")
    padded = pad_to_multiple(w, m, axis=1)
    values, indices = compress_nm(prune_nm(padded, n, m, axis=1), n, m)
    return NMWeights(values=values, indices=indices, m=m, k=w.shape[1])


def bdwp_copies(w: np.ndarray, n: int, m: int) -> tuple[NMWeights, NMWeights]:
    """BDWP's pre-generated pair of ``W[Cout, K]`` (``K = Cin*kh*kw``): ``(forward, backward)``.

    ``forward`` is ``B = W`` pruned N:M along K, the operand of ``Y = X·Wᵀ``; ``backward`` is
    ``B = Wᵀ [K, Cout]`` pruned N:M along Cout, the operand of ``dX = dY·W``. Each dimension is
    zero-padded to a multiple of ``m`` only for its own copy.
    """
    w = _as_matrix("w", w)
    return prune_compress_nm(w, n, m), prune_compress_nm(w.T, n, m)
