"""DLRM recommendation models as data, seeded index generators and the exact integer golden.

Independent of any engine's compiler, simulator and RTL: they consume this module, never the
other way round (so it names none of them).

**Models** (:data:`MODELS`, shapes from ../shared/REFERENCE.md). Widths follow the DLRM
reference's ``--arch-mlp-bot`` / ``--arch-mlp-top`` strings: the first number of the bottom
string is the dense-feature count (the bottom MLP's input), the others are layer output widths;
the top string lists output widths only, its input being the interaction width:

- ``concat``: ``bottom[-1] + tables * dim`` (bottom output, then each table's pooled vector);
- ``dot``: the F = tables + 1 feature vectors (bottom output first, then the tables in order)
  interact pairwise, strictly-lower triangle, pairs ordered (1,0), (2,0), (2,1), (3,0), … as the
  DLRM reference orders them; width ``bottom[-1] + F * (F - 1) / 2``. Needs ``bottom[-1] == dim``.

**Index generators** (:func:`generate_bags`). Per table and sample a bag of indices, drawn with
replacement; bags concatenated and described by offsets (prefix sums, ``batch + 1`` entries,
``offsets[0] = 0``) as in PyTorch's ``EmbeddingBag`` and the DLRM reference. Bag sizes are fixed
(``lookups``) or variable (uniform on ``[min_bag, lookups]``, so 0 and 1 happen). Indices are
uniform or Zipf: rank r = 1 … rows has weight ``1 / r**s`` (s >= 0; s = 0 is uniform), sampled
by inverse CDF over the exact rank weights; a seeded bijection then maps rank to row so the hot
rows are scattered over the table instead of sitting at its start (which would flatter any
line or channel locality). Every random stream is a ``numpy.random.Generator`` seeded by
``(seed, table, purpose, batch_index)``: the same arguments give the same indices, and one
table's draws do not depend on how many tables the model has.

**Golden** (:func:`forward`): integers only; every sum is exact in int64 and then wrapped to
``acc_bits`` (two's complement, :func:`sparsim.dataflow.golden.wrap`), which equals hardware
that wraps every partial sum. Stages:

1. embedding-bag sum pooling of INT8 rows -> ``acc_bits`` (an empty bag pools to 0);
2. bottom MLP on the INT8 dense features; each layer ``y = wrap(W x + b)``, ReLU, requantise;
3. the pooled sums are requantised to INT8 (``pool_shift``, no ReLU);
4. interaction: ``concat`` joins INT8 vectors; ``dot`` computes the pairwise dots of the INT8
   features at ``acc_bits`` and requantises them (``interaction_shift``, no ReLU), then
   prepends the bottom output;
5. top MLP: like the bottom one, except the last layer, whose ``wrap(W x + b)`` at
   ``acc_bits`` is the model's output (no ReLU, no requantisation; DLRM puts a sigmoid here).

**Requantisation** to INT8 by a shift ``k`` (:func:`requantize`): an arithmetic shift right
with round half up (towards +inf), then saturation to [-128, 127]::

    k == 0: y = v
    k >= 1: y = ((v >> (k - 1)) + 1) >> 1      ( = floor((v + 2**(k-1)) / 2**k) )
    y = min(max(y, -128), 127)

The first form needs no adder wider than ``acc_bits``; the two are equal for every integer v.
Weights are INT8, biases are integers of at most ``acc_bits`` bits (or absent). The real
Centaur computes in FP32; this golden is the integer datapath sparsim's RTL implements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np

from .golden import int_range, wrap

Interaction = Literal["concat", "dot"]
Distribution = Literal["uniform", "zipf"]

# Cardinalities of the 26 categorical features of the Criteo Kaggle Display Advertising
# Challenge set, as counted by the DLRM reference's Kaggle preprocessing (the table sizes a
# DLRM Kaggle run allocates; the same list appears in other Criteo code, e.g. Wukong's
# NUM_SPARSE_EMBS "from dataset.npz"). Taken from that public material, not re-counted here.
CRITEO_KAGGLE_ROWS: tuple[int, ...] = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)


@dataclass(frozen=True)
class DlrmModel:
    """One DLRM: MLP widths, embedding tables and lookups, interaction. Sizes in elements."""

    name: str
    dense_features: int  # bottom MLP input width
    bottom: tuple[int, ...]  # bottom MLP layer output widths
    top: tuple[int, ...]  # top MLP layer output widths; the last one is the model output
    dim: int  # embedding dimension (INT8 elements per row)
    table_rows: tuple[int, ...]  # rows of each embedding table
    lookups: int  # indices per table per sample (fixed bags), or the largest bag (variable)
    interaction: Interaction
    bags: Literal["fixed", "variable"] = "fixed"  # the bag sizes the model's source uses
    source: str = ""

    def __post_init__(self) -> None:
        def positive(name: str, value: int) -> None:
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{self.name}: {name} must be a positive integer, not {value!r}")

        positive("dense_features", self.dense_features)
        positive("dim", self.dim)
        if self.lookups < 0:
            raise ValueError(f"{self.name}: lookups must be >= 0, not {self.lookups}")
        for label, widths in (("bottom", self.bottom), ("top", self.top), ("table_rows", self.table_rows)):
            if not widths:
                raise ValueError(f"{self.name}: {label} must not be empty")
            for i, w in enumerate(widths):
                positive(f"{label}[{i}]", w)
        if self.interaction not in ("concat", "dot"):
            raise ValueError(f"{self.name}: interaction must be 'concat' or 'dot', not {self.interaction!r}")
        if self.bags not in ("fixed", "variable"):
            raise ValueError(f"{self.name}: bags must be 'fixed' or 'variable', not {self.bags!r}")
        if self.interaction == "dot" and self.bottom[-1] != self.dim:
            raise ValueError(
                f"{self.name}: dot interaction needs the bottom MLP output ({self.bottom[-1]}) "
                f"to equal the embedding dim ({self.dim})")
        if self.lookups > min(self.table_rows):
            raise ValueError(
                f"{self.name}: lookups {self.lookups} exceed the smallest table ({min(self.table_rows)} rows)")

    @property
    def tables(self) -> int:
        return len(self.table_rows)

    @property
    def interaction_width(self) -> int:
        """Width of the top MLP's input (see the module docstring)."""
        if self.interaction == "concat":
            return self.bottom[-1] + self.tables * self.dim
        f = self.tables + 1
        return self.bottom[-1] + f * (f - 1) // 2

    @property
    def bottom_layers(self) -> tuple[tuple[int, int], ...]:
        """(input, output) width of each bottom MLP layer."""
        widths = (self.dense_features, *self.bottom)
        return tuple(zip(widths[:-1], widths[1:]))

    @property
    def top_layers(self) -> tuple[tuple[int, int], ...]:
        """(input, output) width of each top MLP layer."""
        widths = (self.interaction_width, *self.top)
        return tuple(zip(widths[:-1], widths[1:]))

    @property
    def table_bytes(self) -> int:
        """Bytes of all INT8 embedding tables."""
        return sum(self.table_rows) * self.dim

    def mlp_macs(self) -> int:
        """MACs of both MLPs for one sample (the dot interaction's MACs are separate)."""
        return sum(i * o for i, o in self.bottom_layers + self.top_layers)

    def interaction_macs(self) -> int:
        """MACs of the pairwise dots for one sample (0 for concat)."""
        if self.interaction == "concat":
            return 0
        f = self.tables + 1
        return f * (f - 1) // 2 * self.dim

    def scaled(self, max_rows: int) -> "DlrmModel":
        """The same model with every table capped at ``max_rows`` rows (for runs that must
        hold the tables in memory; capping changes the cache behaviour, not the arithmetic)."""
        if max_rows < max(1, self.lookups):
            raise ValueError(f"{self.name}: max_rows {max_rows} is below lookups {self.lookups}")
        rows = tuple(min(r, max_rows) for r in self.table_rows)
        return replace(self, name=f"{self.name}@{max_rows}", table_rows=rows)


MODELS: dict[str, DlrmModel] = {
    m.name: m
    for m in (
        DlrmModel(
            name="rm1", dense_features=128, bottom=(64, 32), top=(256, 64, 1), dim=32,
            table_rows=(4_000_000,) * 8, lookups=80, interaction="concat",
            source="DeepRecSys RM1 (REFERENCE.md)"),
        DlrmModel(
            name="rm2", dense_features=256, bottom=(128, 64), top=(128, 64, 1), dim=64,
            table_rows=(500_000,) * 32, lookups=120, interaction="concat",
            source="DeepRecSys RM2 (REFERENCE.md)"),
        DlrmModel(
            name="rm3", dense_features=2560, bottom=(1024, 256, 32), top=(512, 256, 1), dim=32,
            table_rows=(2_000_000,) * 10, lookups=20, interaction="concat",
            source="DeepRecSys RM3 (REFERENCE.md)"),
        DlrmModel(
            name="dlrm_kaggle", dense_features=13, bottom=(512, 256, 64, 16), top=(512, 256, 1),
            dim=16, table_rows=CRITEO_KAGGLE_ROWS, lookups=1, interaction="dot",
            source="DLRM reference, Criteo Kaggle configuration; rows: CRITEO_KAGGLE_ROWS"),
        DlrmModel(
            name="dlrm_benchmark", dense_features=512, bottom=(512, 64), top=(1024, 1024, 1024, 1),
            dim=64, table_rows=(1_000_000,) * 8, lookups=100, interaction="dot", bags="variable",
            source="DLRM reference benchmark configuration; 'up to 100' lookups: bag sizes "
                   "uniform in [1, 100] as its random generator draws them"),
    )
}


# --------------------------------------------------------------------------------------------
# Index generators


@dataclass(frozen=True)
class Bags:
    """One table's bags for a batch: ``indices[offsets[b]:offsets[b+1]]`` is sample b's bag."""

    indices: np.ndarray  # int64, rows of the table
    offsets: np.ndarray  # int64, batch + 1 prefix sums, offsets[0] == 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "indices", np.asarray(self.indices, dtype=np.int64))
        object.__setattr__(self, "offsets", np.asarray(self.offsets, dtype=np.int64))
        off = self.offsets
        if off.ndim != 1 or len(off) < 1 or off[0] != 0 or off[-1] != len(self.indices) or (np.diff(off) < 0).any():
            raise ValueError("offsets must rise from 0 to len(indices) (prefix sums of the bag sizes)")

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def batch(self) -> int:
        return len(self.offsets) - 1


def _rng(seed: int, table: int, purpose: int, batch_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, table, purpose, batch_index])


_PERMUTE, _DRAW, _SIZES, _PARAMS = range(4)
_MASK64 = (1 << 64) - 1


def _permutation_keys(seed: int, table: int) -> tuple[int, ...]:
    return tuple(int(k) for k in _rng(seed, table, _PERMUTE, 0).integers(0, 1 << 62, size=6))


def rank_to_row(ranks: np.ndarray, rows: int, keys: Sequence[int]) -> np.ndarray:
    """A keyed bijection of [0, rows) (hot ranks -> scattered rows), without an O(rows) table.

    Three rounds of (odd multiply, add, xor-shift) modulo 2**bits, each invertible on
    [0, 2**bits) with bits = ceil(log2 rows); values that land at or above ``rows`` are mapped
    again (cycle walking), which keeps the map a bijection on [0, rows).
    """
    x = np.asarray(ranks, dtype=np.uint64).copy()
    if rows <= 1:
        return x.astype(np.int64)
    bits = max(1, (rows - 1).bit_length())
    mask = np.uint64((1 << bits) - 1)
    shift = np.uint64(max(1, (bits + 1) // 2))
    # The splitmix64/murmur3 finaliser constants make every round mix well whatever the keys
    # (small keys alone would give a near-identity map); the keys pick one map among many.
    strong = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
    mults = [np.uint64(((k ^ c) | 1) & int(mask)) for k, c in zip(map(int, keys[0::2]), strong)]
    adds = [np.uint64(k & int(mask)) for k in map(int, keys[1::2])]

    def mix(v: np.ndarray) -> np.ndarray:
        for m, a in zip(mults, adds):
            v = (v * m) & mask  # uint64 wraps mod 2**64, a multiple of 2**bits
            v = (v + a) & mask
            v = v ^ (v >> shift)
        return v

    x = mix(x)
    todo = x >= np.uint64(rows)
    while todo.any():
        x[todo] = mix(x[todo])
        todo = x >= np.uint64(rows)
    return x.astype(np.int64)


# Bounded: a 10M-row table's CDF is 80 MB.
@lru_cache(maxsize=4)
def _zipf_cdf(rows: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, rows + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    cdf.flags.writeable = False
    return cdf


def draw_ranks(rows: int, count: int, distribution: Distribution, exponent: float,
               rng: np.random.Generator) -> np.ndarray:
    """``count`` 0-based popularity ranks of a table of ``rows`` rows (rank 0 is the hottest)."""
    if distribution == "uniform":
        return rng.integers(0, rows, size=count, dtype=np.int64)
    cdf = _zipf_cdf(rows, float(exponent))
    ranks = np.searchsorted(cdf, rng.random(count), side="right")
    return np.minimum(ranks, rows - 1).astype(np.int64)  # guard u rounding to cdf[-1] == 1.0


def bag_sizes(batch: int, lookups: int, bags: Literal["fixed", "variable"],
              rng: np.random.Generator, min_bag: int = 0) -> np.ndarray:
    if bags == "fixed":
        return np.full(batch, lookups, dtype=np.int64)
    if not 0 <= min_bag <= lookups:
        raise ValueError(f"min_bag must be in [0, lookups = {lookups}], not {min_bag}")
    return rng.integers(min_bag, lookups + 1, size=batch, dtype=np.int64)


def offsets_of(sizes: np.ndarray) -> np.ndarray:
    """Bag offsets: the prefix sums of the bag sizes, with a leading 0."""
    return np.concatenate(([0], np.cumsum(np.asarray(sizes, dtype=np.int64)))).astype(np.int64)


def generate_bags(model: DlrmModel, batch: int, *, distribution: Distribution = "uniform",
                  exponent: float = 0.0, seed: int = 0, bags: Literal["fixed", "variable"] | None = None,
                  min_bag: int | None = None, lookups: int | None = None,
                  batch_index: int = 0) -> tuple[Bags, ...]:
    """One batch of bags per table of ``model`` (see the module docstring).

    ``bags``/``lookups`` default to the model's; ``min_bag`` (variable bags only) defaults to 1
    for the DLRM benchmark's "up to" semantics when the model says variable, else 0.
    ``batch_index`` picks another batch of the same stream (same hot rows, new draws).
    """
    if batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch}")
    if distribution not in ("uniform", "zipf"):
        raise ValueError(f"distribution must be 'uniform' or 'zipf', not {distribution!r}")
    if not (math.isfinite(exponent) and exponent >= 0):
        raise ValueError(f"Zipf exponent must be a finite number >= 0, not {exponent}")
    bags = model.bags if bags is None else bags
    lookups = model.lookups if lookups is None else lookups
    if min_bag is None:
        min_bag = 1 if model.bags == "variable" and lookups >= 1 else 0
    if lookups < 0 or lookups > min(model.table_rows):
        raise ValueError(f"lookups must be in [0, {min(model.table_rows)}] (smallest table), not {lookups}")
    out = []
    for t, rows in enumerate(model.table_rows):
        sizes = bag_sizes(batch, lookups, bags, _rng(seed, t, _SIZES, batch_index), min_bag)
        offsets = offsets_of(sizes)
        ranks = draw_ranks(rows, int(offsets[-1]), distribution, exponent, _rng(seed, t, _DRAW, batch_index))
        out.append(Bags(indices=rank_to_row(ranks, rows, _permutation_keys(seed, t)), offsets=offsets))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Exact integer golden


def requantize(v: np.ndarray, shift: int) -> np.ndarray:
    """Arithmetic shift right by ``shift`` with round half up, saturated to INT8 (int64 out)."""
    v = np.asarray(v, dtype=np.int64)
    if shift < 0:
        raise ValueError(f"shift must be >= 0, not {shift}")
    if shift > 0:
        v = ((v >> (shift - 1)) + 1) >> 1
    lo, hi = int_range(8)
    return np.clip(v, lo, hi)


def default_shift(fan_in: int) -> int:
    """A requantisation shift that keeps random INT8 layer outputs mostly unsaturated: the sum
    of ``fan_in`` products of magnitude ~2**6 x 2**6 spreads as ~sqrt(fan_in) x 2**12, and 2**5
    is a comfortable INT8 magnitude, so shift ~= 7 + log2(fan_in) / 2."""
    return 7 + math.ceil(math.log2(max(fan_in, 1)) / 2)


@dataclass(frozen=True)
class MlpLayer:
    weight: np.ndarray  # int8 [out, in]
    bias: np.ndarray | None  # int64 [out] (at most acc_bits bits) or None
    shift: int  # requantisation shift; unused for the model's last layer


@dataclass(frozen=True)
class DlrmParams:
    tables: tuple[np.ndarray, ...]  # int8 [rows, dim] each
    bottom: tuple[MlpLayer, ...]
    top: tuple[MlpLayer, ...]
    pool_shift: int
    interaction_shift: int  # used by the dot interaction only


def random_params(model: DlrmModel, seed: int = 0, *, bias: bool = True,
                  bias_bits: int = 16) -> DlrmParams:
    """Seeded INT8 tables and weights, optional biases of ``bias_bits`` bits, default shifts.

    Tables are drawn in full (rows x dim bytes each): cap the rows with :meth:`DlrmModel.scaled`
    for models whose tables should not be materialised.
    """
    rng = np.random.default_rng([seed, _PARAMS])
    lo, hi = int_range(8)
    tables = tuple(rng.integers(lo, hi + 1, size=(r, model.dim), dtype=np.int8) for r in model.table_rows)

    def layers(shapes: tuple[tuple[int, int], ...]) -> tuple[MlpLayer, ...]:
        blo, bhi = int_range(bias_bits)
        return tuple(
            MlpLayer(
                weight=rng.integers(lo, hi + 1, size=(o, i), dtype=np.int8),
                bias=rng.integers(blo, bhi + 1, size=o, dtype=np.int64) if bias else None,
                shift=default_shift(i))
            for i, o in shapes)

    return DlrmParams(
        tables=tables, bottom=layers(model.bottom_layers), top=layers(model.top_layers),
        pool_shift=math.ceil(math.log2(max(model.lookups, 1)) / 2),
        interaction_shift=default_shift(model.dim))


def embedding_bag(table: np.ndarray, bags: Bags, acc_bits: int) -> np.ndarray:
    """Sum pooling: [batch, dim] int64, each bag's rows summed exactly, wrapped to ``acc_bits``."""
    idx = np.asarray(bags.indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= table.shape[0]):
        raise ValueError(f"index out of range for a table of {table.shape[0]} rows")
    rows = np.asarray(table)[idx].astype(np.int64)  # gather first: never widen a whole table
    csum = np.concatenate((np.zeros((1, table.shape[1]), np.int64), np.cumsum(rows, axis=0)))
    return wrap(csum[bags.offsets[1:]] - csum[bags.offsets[:-1]], acc_bits)


def mlp_layer(x: np.ndarray, layer: MlpLayer, acc_bits: int, last: bool = False) -> np.ndarray:
    """``wrap(x W^T + b)``; unless ``last``, then ReLU and :func:`requantize` to INT8."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(layer.weight, dtype=np.int64)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"layer input width {x.shape[1]} != weight columns {w.shape[1]}")
    acc = x @ w.T
    if layer.bias is not None:
        acc = acc + np.asarray(layer.bias, dtype=np.int64)
    acc = wrap(acc, acc_bits)
    if last:
        return acc
    return requantize(np.maximum(acc, 0), layer.shift)


def mlp(x: np.ndarray, layers: Sequence[MlpLayer], acc_bits: int, last_is_output: bool) -> np.ndarray:
    for i, layer in enumerate(layers):
        x = mlp_layer(x, layer, acc_bits, last=last_is_output and i == len(layers) - 1)
    return x


def interaction_pairs(features: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of the strictly-lower triangle in DLRM's order: (1,0), (2,0), (2,1), (3,0), …"""
    i, j = np.tril_indices(features, k=-1)
    return i.astype(np.int64), j.astype(np.int64)


def interact(bottom_out: np.ndarray, pooled: Sequence[np.ndarray], kind: Interaction,
             acc_bits: int, shift: int) -> np.ndarray:
    """The top MLP's INT8 input from the INT8 bottom output and INT8 pooled embeddings."""
    bottom_out = np.asarray(bottom_out, dtype=np.int64)
    if kind == "concat":
        return np.concatenate([bottom_out, *[np.asarray(p, np.int64) for p in pooled]], axis=1)
    feats = np.stack([bottom_out, *[np.asarray(p, np.int64) for p in pooled]], axis=1)  # [B, F, d]
    gram = wrap(np.einsum("bfd,bgd->bfg", feats, feats), acc_bits)
    i, j = interaction_pairs(feats.shape[1])
    return np.concatenate([bottom_out, requantize(gram[:, i, j], shift)], axis=1)


@dataclass(frozen=True)
class DlrmTrace:
    """Every stage's result for one batch (int64 arrays holding the stated widths)."""

    bottom_out: np.ndarray  # INT8 [batch, bottom[-1]]
    pooled: tuple[np.ndarray, ...]  # acc_bits [batch, dim] per table
    pooled_int8: tuple[np.ndarray, ...]  # INT8 [batch, dim] per table
    interaction: np.ndarray  # INT8 [batch, interaction_width]
    output: np.ndarray  # acc_bits [batch, top[-1]]


def forward(model: DlrmModel, params: DlrmParams, dense: np.ndarray, bags: Sequence[Bags],
            acc_bits: int) -> DlrmTrace:
    """The exact integer inference of one batch (``dense``: INT8 [batch, dense_features])."""
    dense = np.asarray(dense, dtype=np.int64)
    if dense.ndim != 2 or dense.shape[1] != model.dense_features:
        raise ValueError(f"dense features must be [batch, {model.dense_features}], not {dense.shape}")
    if len(bags) != model.tables or any(b.batch != dense.shape[0] for b in bags):
        raise ValueError(f"need {model.tables} tables of bags for a batch of {dense.shape[0]}")
    lo, hi = int_range(8)
    if dense.size and (dense.min() < lo or dense.max() > hi):
        raise ValueError("dense features must be INT8")
    bottom_out = mlp(dense, params.bottom, acc_bits, last_is_output=False)
    pooled = tuple(embedding_bag(t, b, acc_bits) for t, b in zip(params.tables, bags))
    pooled_int8 = tuple(requantize(p, params.pool_shift) for p in pooled)
    z = interact(bottom_out, pooled_int8, model.interaction, acc_bits, params.interaction_shift)
    out = mlp(z, params.top, acc_bits, last_is_output=True)
    return DlrmTrace(bottom_out=bottom_out, pooled=pooled, pooled_int8=pooled_int8, interaction=z, output=out)


def random_dense(model: DlrmModel, batch: int, seed: int = 0, batch_index: int = 0) -> np.ndarray:
    """Seeded INT8 dense features [batch, dense_features] (as int8)."""
    lo, hi = int_range(8)
    rng = np.random.default_rng([seed, _PARAMS, 1, batch_index])
    return rng.integers(lo, hi + 1, size=(batch, model.dense_features), dtype=np.int8)


# --------------------------------------------------------------------------------------------
# Floating-point counterpart (what a CPU-only deployment runs)


@dataclass(frozen=True)
class Float32Params:
    """:class:`DlrmParams` as float32 arrays, each requantisation shift folded into a scale."""

    tables: tuple[np.ndarray, ...]
    bottom: tuple[tuple[np.ndarray, np.ndarray, np.float32], ...]  # (W [out, in], b [out], scale)
    top: tuple[tuple[np.ndarray, np.ndarray, np.float32], ...]
    pool_scale: np.float32
    interaction_scale: np.float32


def to_float32(params: DlrmParams) -> Float32Params:
    def layers(ls: tuple[MlpLayer, ...]) -> tuple[tuple[np.ndarray, np.ndarray, np.float32], ...]:
        return tuple(
            (np.ascontiguousarray(lay.weight, dtype=np.float32),
             np.zeros(lay.weight.shape[0], np.float32) if lay.bias is None else lay.bias.astype(np.float32),
             np.float32(2.0 ** -lay.shift))
            for lay in ls)

    return Float32Params(
        tables=tuple(np.ascontiguousarray(t, dtype=np.float32) for t in params.tables),
        bottom=layers(params.bottom), top=layers(params.top),
        pool_scale=np.float32(2.0 ** -params.pool_shift),
        interaction_scale=np.float32(2.0 ** -params.interaction_shift))


def pool_float32(params: Float32Params, bags: Sequence[Bags]) -> list[np.ndarray]:
    """Each table's pooled [batch, dim] float32 sums, scaled by ``pool_scale``. Fixed-size bags
    pool by a reshape and a sum over the bag axis, variable ones by ``np.add.reduceat`` (which returns the start row
    for an empty bag: zeroed after)."""
    pooled = []
    for table, bag in zip(params.tables, bags):
        rows = table.take(bag.indices, axis=0)  # about 2x faster than table[indices]
        sizes = bag.sizes
        if bag.batch and (sizes == sizes[0]).all():
            # einsum's reduction over the middle axis beats .sum(axis=1) several times
            p = np.einsum("bld->bd", rows.reshape(bag.batch, int(sizes[0]), -1))
        else:
            # A zero row after the last keeps every start a valid index (trailing empty bags).
            rows = np.concatenate((rows, np.zeros((1, table.shape[1]), np.float32)))
            p = np.add.reduceat(rows, bag.offsets[:-1], axis=0)
            p[sizes == 0] = 0
        pooled.append(p * params.pool_scale)
    return pooled


def forward_float32(model: DlrmModel, params: Float32Params, dense: np.ndarray,
                    bags: Sequence[Bags]) -> np.ndarray:
    """The FP32 inference of one batch, stage for stage the integer golden's, with the
    requantisations replaced by their scales (no rounding, no saturation, no wrap): output
    [batch, top[-1]] float32. Where no integer stage rounds, saturates or wraps it equals
    :func:`forward`'s output exactly (tests pin that); the final sigmoid of DLRM is left out
    like in :func:`forward`.
    """
    x = np.asarray(dense, dtype=np.float32)
    for w, b, scale in params.bottom:
        x = np.maximum(x @ w.T + b, 0) * scale
    pooled = pool_float32(params, bags)
    if model.interaction == "concat":
        z = np.concatenate([x, *pooled], axis=1)
    else:
        feats = np.stack([x, *pooled], axis=1)
        gram = feats @ feats.transpose(0, 2, 1)
        i, j = interaction_pairs(feats.shape[1])
        z = np.concatenate([x, gram[:, i, j] * params.interaction_scale], axis=1)
    last = len(params.top) - 1
    for n, (w, b, scale) in enumerate(params.top):
        z = z @ w.T + b
        if n != last:
            z = np.maximum(z, 0) * scale
    return z
