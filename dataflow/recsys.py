"""The ``recsys`` engine's hardware model, workload model and compiler: (hardware, DLRM) -> Program.

Centaur-style hybrid inference (docs/recsys.md): gather units with tag pools pool embedding bags
over the shared line memory while the systolic array (dataflow/systolic.py, shared with
``nm_train``) runs the MLPs; mini-batches are pipelined through double-buffered banks. The
compiler cuts the batch into mini-batches that fit the banks, lays out the memory image
(weights, per-mini-batch dense features and index blocks, outputs, tables), splits each
mini-batch's bags over the gather units and emits the instructions of recsys_isa.py.

Indices are always generated (the simulator times the real addresses); ``with_data=True``
also builds the tables, weights and dense features and the golden outputs, which needs tables
small enough to hold (``workload.max_rows``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from sparsim.engine import Engine, Metric, lazy
from sparsim.simulator.results import shared_metrics

from . import dlrm, systolic
from . import recsys_isa as isa
from .config import ConfigError, DesignPoint, HardwareConfig, MemoryConfig, WorkloadConfig, _Model, is_pow2, pow2_in

# --------------------------------------------------------------------------------------------
# Hardware


class RecsysHardware(HardwareConfig):
    """Hardware of the ``recsys`` engine (each parameter in docs/recsys.md, "Hardware
    parameters"). Checks involving several fields run on the later field."""

    engine: Literal["recsys"] = "recsys"
    gather_units: int = Field(gt=0, le=64, description="gather units G")
    max_outstanding: int = Field(gt=0, le=1024, description="line requests in flight per requester")
    line_bytes: int = Field(default=64, description="bytes per line request (power of two, 16 to 1024)")
    pool_lanes: int = Field(default=64, description="INT8 elements a pooling unit adds per cycle (power of two)")
    cache_kib: float = Field(default=0, ge=0, le=1 << 17, description="on-chip line cache, KiB (0: none)")
    rows: int = Field(gt=0, le=256, description="systolic array rows R")
    cols: int = Field(gt=0, le=256, description="systolic array columns C")
    dataflow: Literal["os", "ws"] = Field(default="os", description="array dataflow")
    acc_bits: int = Field(default=32, description="accumulator width in bits")
    mini_batch: int = Field(default=64, gt=0, le=isa.MAX_MINI_BATCH, description="largest mini-batch, samples")
    # At most 128 MiB each: more than any FPGA holds on chip.
    index_buffer_kib: float = Field(gt=0, le=1 << 17, description="two index banks together, KiB")
    pooled_buffer_kib: float = Field(gt=0, le=1 << 17, description="two pooled-embedding banks together, KiB")
    act_buffer_kib: float = Field(gt=0, le=1 << 17, description="dense banks, ping-pong and interaction regions, KiB")
    weight_buffer_kib: float = Field(gt=0, le=1 << 17, description="every MLP layer's weights and biases, KiB")
    out_buffer_kib: float = Field(gt=0, le=1 << 17, description="two output banks together, KiB")
    memory: MemoryConfig

    @field_validator("line_bytes")
    @classmethod
    def _line_bytes(cls, v: int) -> int:
        return pow2_in(v, 16, 1024)

    @field_validator("pool_lanes")
    @classmethod
    def _pool_lanes(cls, v: int) -> int:
        return pow2_in(v, 1, 1024)

    @field_validator("cache_kib")
    @classmethod
    def _cache(cls, v: float, info: ValidationInfo) -> float:
        g, line = info.data.get("gather_units"), info.data.get("line_bytes")
        if v == 0 or g is None or line is None:
            return v
        lines = v * 1024 / line / g
        if lines != int(lines) or not is_pow2(int(lines)):
            raise ValueError(f"must give each of the {g} gather units a power-of-two number of "
                             f"{line}-byte lines, not {lines:g}")
        return v

    @property
    def cache_lines(self) -> int:
        """Lines of each gather unit's cache slice (0: no cache)."""
        return int(self.cache_kib * 1024 / self.line_bytes / self.gather_units)

    @property
    def acc_bytes(self) -> int:
        return self.acc_bits // 8

    @property
    def macs_per_cycle(self) -> int:
        return self.rows * self.cols


#: Hardware presets (``hardware: {preset: NAME, engine: recsys}``).
PRESETS: dict[str, dict] = {
    # Intel HARPv2 (Centaur's platform): a Broadwell Xeon and an Arria 10 GX1150 in one package;
    # the FPGA has no memory of its own, every line crosses the coherent links (one QPI, two
    # PCIe). ASSUMED, not from the paper: 200 MHz; the links as 2 channels x 64 B/cycle =
    # 25.6 GB/s (REFERENCE.md: about 20-28 GB/s); 400 ns = 80 cycles of read latency; 8 gather
    # units with 64 tags each; a 64 KiB FPGA-side cache of host lines; a 32 x 32 array. The
    # buffers and the cache (5.8 MiB together) fit the device's 2,713 M20K blocks (6.6 MiB); the
    # act buffer holds RM3's 2,560 dense features for mini-batches of 64.
    "harpv2": {
        "device": "arria10_gx1150",
        "clock_mhz": 200.0,
        "gather_units": 8,
        "max_outstanding": 64,
        "line_bytes": 64,
        "pool_lanes": 64,
        "cache_kib": 64,
        "rows": 32,
        "cols": 32,
        "dataflow": "os",
        "acc_bits": 32,
        "mini_batch": 64,
        "index_buffer_kib": 512,
        "pooled_buffer_kib": 256,
        "act_buffer_kib": 1024,
        "weight_buffer_kib": 4096,
        "out_buffer_kib": 16,
        "memory": {"channels": 2, "bytes_per_cycle": 64, "latency_cycles": 80},
    },
    # Alveo U280 HBM2 as in the dsp_chain preset: 32 pseudo-channels x 64 B/cycle at 225 MHz
    # (~461 GB/s), 64 cycles of latency; one gather unit per pseudo-channel; no line cache.
    "u280": {
        "device": "u280",
        "clock_mhz": 225.0,
        "gather_units": 32,
        "max_outstanding": 64,
        "line_bytes": 64,
        "pool_lanes": 64,
        "cache_kib": 0,
        "rows": 32,
        "cols": 32,
        "dataflow": "os",
        "acc_bits": 32,
        "mini_batch": 64,
        "index_buffer_kib": 1024,
        "pooled_buffer_kib": 512,
        "act_buffer_kib": 512,
        "weight_buffer_kib": 4096,
        "out_buffer_kib": 64,
        "memory": {"channels": 32, "bytes_per_cycle": 64, "latency_cycles": 64},
    },
    # For the RTL benches: small enough to build and run under Verilator in seconds.
    "tiny": {
        "device": None,
        "clock_mhz": 100.0,
        "gather_units": 2,
        "max_outstanding": 4,
        "line_bytes": 16,
        "pool_lanes": 8,
        "cache_kib": 0.25,
        "rows": 4,
        "cols": 4,
        "dataflow": "os",
        "acc_bits": 32,
        "mini_batch": 4,
        "index_buffer_kib": 1,
        "pooled_buffer_kib": 1,
        "act_buffer_kib": 1,
        "weight_buffer_kib": 4,
        "out_buffer_kib": 0.25,
        "memory": {"channels": 2, "bytes_per_cycle": 4, "latency_cycles": 6},
    },
}


# --------------------------------------------------------------------------------------------
# Workload


class IndexGenerator(_Model):
    """Seeded index generator: ``uniform``, or ``zipf`` with weight ``1/r**exponent`` by rank."""

    distribution: Literal["uniform", "zipf"] = "uniform"
    exponent: float = Field(default=1.0, le=16, description="Zipf exponent s >= 0 (zipf only)")

    @field_validator("exponent")
    @classmethod
    def _exponent(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"must be >= 0 (rank r has weight 1/r**s), not {v:g}")
        return v


_MAX_WIDTH = 1 << 15


class DlrmWorkload(WorkloadConfig):
    """One batch of DLRM inference: a built-in ``model`` (dataflow/dlrm.py) or explicit shapes
    (the explicit fields override the model's)."""

    kind: Literal["dlrm"]
    model: Literal["rm1", "rm2", "rm3", "dlrm_kaggle", "dlrm_benchmark"] | None = None
    dense_features: int | None = Field(default=None, gt=0, le=_MAX_WIDTH, description="bottom MLP input width")
    bottom: list[int] | None = Field(default=None, min_length=1, description="bottom MLP output widths")
    top: list[int] | None = Field(default=None, min_length=1, description="top MLP output widths")
    dim: int | None = Field(default=None, gt=0, le=4096, description="embedding dimension (bytes per row)")
    table_rows: list[int] | None = Field(default=None, description="rows of each embedding table")
    interaction: Literal["concat", "dot"] | None = None
    max_rows: int | None = Field(default=None, gt=0, description="cap every table at this many rows")
    bags: Literal["fixed", "variable"] | None = None
    lookups: int | None = Field(default=None, ge=0, le=1 << 16, description="indices per bag (largest, if variable)")
    min_bag: int | None = Field(default=None, ge=0, description="smallest bag (variable bags)")
    batch: int = Field(gt=0, le=1 << 16, description="samples per batch")
    batches: int = Field(default=1, gt=0, le=1 << 12,
                         description="batches the Program runs back to back (weights are loaded once)")
    indices: IndexGenerator = Field(default_factory=IndexGenerator)

    @field_validator("bottom", "top")
    @classmethod
    def _widths(cls, v: list[int] | None) -> list[int] | None:
        for w in v or ():
            if isinstance(w, bool) or w < 1 or w > _MAX_WIDTH:
                raise ValueError(f"widths must be from 1 to {_MAX_WIDTH}, not {w}")
        return v

    @field_validator("table_rows")
    @classmethod
    def _tables(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("must list at least one table")
        if len(v) > 255:
            raise ValueError(f"at most 255 tables, not {len(v)}")
        for r in v:
            if isinstance(r, bool) or r < 1 or r > 1 << 31:
                raise ValueError(f"table rows must be from 1 to 2**31, not {r}")
        return v

    @field_validator("lookups")
    @classmethod
    def _lookups(cls, v: int | None, info: ValidationInfo) -> int | None:
        rows = info.data.get("table_rows")
        if rows is None and info.data.get("model") is not None:
            rows = dlrm.MODELS[info.data["model"]].table_rows
        if v is not None and rows:
            smallest = min(rows)
            if info.data.get("max_rows") is not None:
                smallest = min(smallest, info.data["max_rows"])
            if v > smallest:
                raise ValueError(f"{v} lookups exceed the smallest table ({smallest} rows)")
        return v

    @field_validator("min_bag")
    @classmethod
    def _min_bag(cls, v: int | None, info: ValidationInfo) -> int | None:
        lookups = info.data.get("lookups")
        if v is not None and lookups is not None and v > lookups:
            raise ValueError(f"must not exceed lookups={lookups}, not {v}")
        return v

    @model_validator(mode="after")
    def _resolves(self) -> "DlrmWorkload":
        self.dlrm_model()  # raises ValueError with the reason
        return self

    def dlrm_model(self) -> dlrm.DlrmModel:
        """The :class:`~sparsim.dataflow.dlrm.DlrmModel` this workload describes."""
        base = dlrm.MODELS[self.model] if self.model is not None else None
        explicit = {
            "dense_features": self.dense_features,
            "bottom": tuple(self.bottom) if self.bottom else None,
            "top": tuple(self.top) if self.top else None,
            "dim": self.dim,
            "table_rows": tuple(self.table_rows) if self.table_rows else None,
            "interaction": self.interaction,
            "lookups": self.lookups,
            "bags": self.bags,
        }
        if base is None:
            missing = [k for k in ("dense_features", "bottom", "top", "dim", "table_rows") if explicit[k] is None]
            if missing:
                raise ValueError(f"give a model ({', '.join(dlrm.MODELS)}) or {', '.join(missing)}")
            values = {k: v for k, v in explicit.items() if v is not None}
            values.setdefault("interaction", "concat")
            values.setdefault("lookups", 1)
            model = dlrm.DlrmModel(name="custom", **values)
        else:
            from dataclasses import replace

            model = replace(base, **{k: v for k, v in explicit.items() if v is not None})
        if self.max_rows is not None:
            model = model.scaled(self.max_rows)
        return model


# --------------------------------------------------------------------------------------------
# Plan: mini-batches, buffers, memory layout


def _align(x: int, to: int) -> int:
    return -(-x // to) * to


@dataclass(frozen=True)
class Plan:
    """How a batch maps onto the hardware: mini-batch size, layout and widths."""

    model: dlrm.DlrmModel
    batch: int  # samples per batch
    batches: int
    mini: int
    act_width: int  # widest ping-pong activation (bytes per sample)
    weight_offsets: tuple[int, ...]  # weight-buffer byte offset of each layer (bottom then top)
    weight_bytes: int

    @property
    def samples(self) -> int:
        return self.batch * self.batches

    @property
    def mini_batches(self) -> int:
        return self.batches * -(-self.batch // self.mini)

    def mini_sizes(self) -> list[int]:
        """Samples of each mini-batch; a mini-batch never spans two batches."""
        per_batch = [min(self.mini, self.batch - s) for s in range(0, self.batch, self.mini)]
        return per_batch * self.batches

    def mini_starts(self) -> list[int]:
        """First sample (in the Program's stream of ``batch * batches``) of each mini-batch."""
        per_batch = list(range(0, self.batch, self.mini))
        return [b * self.batch + s for b in range(self.batches) for s in per_batch]

    @property
    def layers(self) -> tuple[tuple[int, int], ...]:
        return self.model.bottom_layers + self.model.top_layers


def _weight_layout(hw: RecsysHardware, model: dlrm.DlrmModel) -> tuple[tuple[int, ...], int]:
    offsets = []
    cursor = 0
    for k, q in model.bottom_layers + model.top_layers:
        offsets.append(cursor)
        cursor = _align(cursor + q * k, hw.line_bytes)
        cursor = _align(cursor + q * hw.acc_bytes, hw.line_bytes)
    return tuple(offsets), cursor


#: Most lookups one Program generates and times (their indices are held in memory).
MAX_LOOKUPS = 1 << 26


def plan(hw: RecsysHardware, wl: DlrmWorkload) -> Plan:
    """Check that the workload fits ``hw`` and pick the mini-batch; errors name the buffer."""
    model = wl.dlrm_model()
    T, D, acc = model.tables, model.dim, hw.acc_bytes
    hidden = [q for _, q in model.bottom_layers + model.top_layers[:-1]]
    act_width = max(hidden + [k for k, _ in model.top_layers[1:]] + [1])
    offsets, wbytes = _weight_layout(hw, model)
    if wbytes > hw.weight_buffer_kib * 1024:
        raise ConfigError("hardware.weight_buffer_kib",
                          f"the MLP weights and biases take {wbytes:,} B, more than "
                          f"{hw.weight_buffer_kib:g} KiB")
    # Bytes one sample needs in one bank of each double-buffered buffer (the act buffer holds
    # two dense banks, two ping-pong regions and the interaction region).
    lookups = model.lookups
    per_sample = {
        "index_buffer_kib": (T * (1 + lookups) * isa.INDEX_BYTES, T * isa.INDEX_BYTES, 2),
        "pooled_buffer_kib": (T * D * acc, 0, 2),
        "out_buffer_kib": (model.top[-1] * acc, 0, 2),
        "act_buffer_kib": (2 * model.dense_features + 2 * act_width + model.interaction_width, 0, 1),
    }
    lookups_total = wl.batch * wl.batches * T * max(lookups, 1)
    if lookups_total > MAX_LOOKUPS:
        raise ConfigError("workload.batches", f"{wl.batches} batches of {wl.batch} samples make {lookups_total:,} "
                                              f"lookups, above the {MAX_LOOKUPS:,} one Program holds")
    mini = min(hw.mini_batch, wl.batch, isa.MAX_MINI_BATCH)
    for key, (sample, fixed, banks) in per_sample.items():
        bank = int(getattr(hw, key) * 1024) // banks
        fits = (bank - fixed) // sample if sample else mini
        if fits < 1:
            raise ConfigError(f"hardware.{key}", f"one sample needs {sample + fixed:,} B per bank "
                                                 f"({banks} banks), more than {getattr(hw, key):g} KiB holds")
        mini = min(mini, fits)
    if hw.dataflow == "os" and hw.rows < mini < wl.batch:
        # An OS fold covers R samples: a mini-batch that is a multiple of R leaves no array
        # rows idle in any fold (34 samples on 32 rows would take two folds per block).
        mini = mini // hw.rows * hw.rows
    for k, q in model.bottom_layers + model.top_layers:
        if max(k, q) > isa.field_max("k"):
            raise ConfigError("workload", f"a layer of {k} x {q} exceeds the 16-bit K and Q fields")
    if D > isa.field_max("q") or model.interaction_width > isa.field_max("k"):
        raise ConfigError("workload.dim", f"dim {D} does not fit the instruction fields")
    return Plan(model=model, batch=wl.batch, batches=wl.batches, mini=mini, act_width=act_width, weight_offsets=offsets,
                weight_bytes=wbytes)


# --------------------------------------------------------------------------------------------
# Program


@dataclass
class Program:
    """The shared dataflow schedule of one design point (docs/recsys.md)."""

    hw: RecsysHardware
    plan: Plan
    instrs: np.ndarray  # isa.INSTR_DTYPE, ends with END
    bags: tuple[dlrm.Bags, ...]  # every batch's bags, one after the other, per table
    table_base: tuple[int, ...]  # byte address of each table
    out_addr: tuple[int, ...]  # byte address of each mini-batch's outputs
    memory: np.ndarray | None = None  # uint8 image (with_data only)
    params: dlrm.DlrmParams | None = None
    dense: np.ndarray | None = None  # INT8 [samples, dense_features]
    expected: np.ndarray | None = None  # golden outputs [samples, top[-1]]
    gemm_cycles: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def words(self) -> list[int]:
        return isa.encode_program(self.instrs)

    def expected_outputs(self) -> list[np.ndarray]:
        """The golden outputs, as :meth:`read_outputs` returns them (one array)."""
        return [self.expected]

    def read_outputs(self, memory) -> list[np.ndarray]:
        """Every sample's outputs [samples, top[-1]] decoded from a memory image after execution
        (one array in a list, as the RTL harness compares outputs layer by layer)."""
        mem = np.frombuffer(bytes(memory), dtype=np.uint8) if not isinstance(memory, np.ndarray) else memory
        width = self.plan.model.top[-1]
        acc = self.hw.acc_bytes
        rows = []
        for m, size in enumerate(self.plan.mini_sizes()):
            raw = mem[self.out_addr[m]: self.out_addr[m] + size * width * acc].reshape(size * width, acc)
            rows.append(_signed(raw, self.hw.acc_bits).reshape(size, width))
        return [np.concatenate(rows)]

    @property
    def useful_macs(self) -> int:
        model = self.plan.model
        return self.plan.samples * (model.mlp_macs() + model.interaction_macs())


def _signed(raw: np.ndarray, bits: int) -> np.ndarray:
    """Little-endian ``bits``-bit two's-complement values from bytes [n, bits/8]."""
    v = np.zeros(raw.shape[0], dtype=np.int64)
    for i in range(raw.shape[1]):
        v |= raw[:, i].astype(np.int64) << (8 * i)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v)


def to_bytes(values: np.ndarray, nbytes: int) -> np.ndarray:
    """Little-endian two's-complement bytes of int64 ``values``: uint8 [..., nbytes]."""
    v = np.asarray(values, dtype=np.int64)
    return np.stack([(v >> (8 * i)) & 0xFF for i in range(nbytes)], axis=-1).astype(np.uint8)


def layer_cycles(hw: RecsysHardware, p: int, k: int, q: int) -> int:
    """Array cycles of one dense GEMM out[P, Q] = A[P, K] B[Q, K]^T (docs/nm_train.md)."""
    return int(systolic.gemm_cycles(systolic.DATAFLOWS[hw.dataflow], hw.rows, hw.cols, p, q, k))


def layer_issued_macs(hw: RecsysHardware, p: int, k: int, q: int) -> int:
    """PE multiply slots the array spends on that GEMM (useful or padding)."""
    return int(systolic.issued_macs(systolic.DATAFLOWS[hw.dataflow], hw.rows, hw.cols, p, q, k))


def gemm_instruction_cycles(hw: RecsysHardware, p: int, k: int, q: int) -> int:
    """Cycles of a ``GEMM`` (docs/recsys.md, "Engines and timing" 3)."""
    return isa.DECODE_CYCLES + isa.READ_CYCLES + layer_cycles(hw, p, k, q) + isa.POST_CYCLES


def inter_cycles(hw: RecsysHardware, mode: int, p: int, tables: int, dim: int) -> int:
    """Cycles of an ``INTER`` (docs/recsys.md, "Engines and timing" 3): the requantisation
    phase, one chunk of up to C sums of one pooled entry per cycle, and for ``dot`` the Gram
    phase on the array."""
    cycles = isa.DECODE_CYCLES + p * tables * -(-dim // hw.cols) + isa.POST_CYCLES
    if mode == isa.INTER_DOT:
        f = tables + 1
        cycles += isa.READ_CYCLES + p * layer_cycles(hw, f, dim, f) + isa.POST_CYCLES
    return cycles


def _split_units(sizes: np.ndarray, tables: int, mini: int, units: int) -> list[list[tuple[int, int, int]]]:
    """Cut the mini-batch's (table, sample) bags, table-major, into ``units`` contiguous runs of
    about equal lookups; returns per unit its (table, first, samples) pieces."""
    n_bags = tables * mini
    weights = np.asarray(sizes, dtype=np.int64).reshape(n_bags)
    if weights.sum() == 0:  # every bag empty: split the bags evenly
        weights = np.ones_like(weights)
    cum = np.cumsum(weights)
    bounds = [0]
    for u in range(1, units):
        cut = int(np.searchsorted(cum, cum[-1] * u / units, side="left")) + 1
        bounds.append(min(max(cut, bounds[-1]), n_bags))
    bounds.append(n_bags)
    out = []
    for u in range(units):
        pieces = []
        pos = bounds[u]
        while pos < bounds[u + 1]:
            t, b = divmod(pos, mini)
            n = min(mini - b, bounds[u + 1] - pos)
            pieces.append((t, b, n))
            pos += n
        out.append(pieces)
    return out


def compile_design_point(point: DesignPoint, *, with_data: bool = False) -> Program:
    """Compile a recsys design point (see the module docstring)."""
    hw: RecsysHardware = point.hardware
    wl: DlrmWorkload = point.workload
    pl = plan(hw, wl)
    model = pl.model
    T, D, line = model.tables, model.dim, hw.line_bytes
    gen = wl.indices
    exponent = gen.exponent if gen.distribution == "zipf" else 0.0
    try:
        bags = _bags(model, wl.batch, wl.batches, gen.distribution, exponent, point.seed, wl.min_bag)
    except ValueError as exc:
        raise ConfigError("workload", str(exc)) from None
    sizes = np.stack([b.sizes for b in bags])  # [T, samples]
    starts = pl.mini_starts()

    # Layout: weights, per mini-batch dense features and index block, outputs, then tables.
    cursor = pl.weight_bytes
    dense_addr, index_addr, index_words = [], [], []
    for m, size in enumerate(pl.mini_sizes()):
        dense_addr.append(cursor)
        cursor = _align(cursor + size * model.dense_features, line)
        index_addr.append(cursor)
        words = T * (size + 1) + int(sizes[:, starts[m]: starts[m] + size].sum())
        index_words.append(words)
        cursor = _align(cursor + words * isa.INDEX_BYTES, line)
    out_bytes = model.top[-1] * hw.acc_bytes
    out_addr = []
    for size in pl.mini_sizes():
        out_addr.append(cursor)
        cursor = _align(cursor + size * out_bytes, line)
    table_base = []
    for rows in model.table_rows:
        table_base.append(cursor)
        cursor = _align(cursor + rows * D, line)
    if cursor > isa.field_max("addr") + 1:
        raise ConfigError("workload", f"the memory image of {cursor:,} B exceeds the 32-bit address space")

    instrs: list[dict] = [dict(op=isa.OP_LOAD, a=isa.LOAD_WEIGHT, lines=pl.weight_bytes // line, addr=0)]
    nb = len(model.bottom_layers)
    n_layers = len(pl.layers)
    for m, size in enumerate(pl.mini_sizes()):
        instrs.append(dict(op=isa.OP_LOAD, mb=m, a=isa.LOAD_DENSE, addr=dense_addr[m],
                           lines=-(-size * model.dense_features // line)))
        instrs.append(dict(op=isa.OP_LOAD, mb=m, a=isa.LOAD_INDEX, addr=index_addr[m],
                           lines=-(-index_words[m] * isa.INDEX_BYTES // line)))
        msizes = sizes[:, starts[m]: starts[m] + size]
        for u, pieces in enumerate(_split_units(msizes, T, size, hw.gather_units)):
            for t, first, n in pieces:
                instrs.append(dict(op=isa.OP_GATHER, mb=m, a=u, b=t, p=n, k=first, q=D, shift=size,
                                   addr=table_base[t]))
        for j, (k, q) in enumerate(pl.layers):
            flags = isa.HAS_BIAS
            top_j = j - nb
            if j == 0:
                flags |= isa.SRC_DENSE
            elif top_j == 0:
                flags |= isa.SRC_Z
            elif (top_j if top_j > 0 else j) % 2 == 0:
                flags |= isa.SRC_REGION
            if j == n_layers - 1:
                flags |= isa.DST_OUT
            elif j == nb - 1:
                flags |= isa.DST_Z
            elif (top_j if top_j >= 0 else j) % 2 == 1:
                flags |= isa.DST_REGION
            # random_params' shift; a data build rewrites it from the parameters it draws.
            instrs.append(dict(op=isa.OP_GEMM, mb=m, a=j, b=flags, p=size, k=k, q=q, shift=dlrm.default_shift(k),
                               addr=pl.weight_offsets[j]))
            if j == nb - 1:
                mode = isa.INTER_DOT if model.interaction == "dot" else isa.INTER_CONCAT
                pool_shift, inter_shift = _shifts(model)
                instrs.append(dict(op=isa.OP_INTER, mb=m, a=mode, b=T, p=size, k=D, q=q,
                                   shift=pool_shift | (inter_shift << 6)))
        instrs.append(dict(op=isa.OP_STORE, mb=m, p=size, k=model.top[-1], addr=out_addr[m]))
    instrs.append(dict(op=isa.OP_END))
    arr = np.zeros(len(instrs), dtype=isa.INSTR_DTYPE)
    for i, fields in enumerate(instrs):
        lines = fields.pop("lines", None)
        for name, value in fields.items():
            arr[i][name] = value
        if lines is not None:
            if lines > isa.MAX_LOAD_LINES:
                raise ConfigError("workload", f"a LOAD of {lines} lines exceeds its 32-bit count")
            isa.set_load_lines(arr[i], lines)
    for name in ("mb", "p"):
        if int(arr[name].max()) > isa.field_max(name):
            raise ConfigError("workload.batch", f"{int(arr[name].max())} mini-batches or samples exceed "
                                                f"the {isa.field_width(name)}-bit {name} field")
    program = Program(hw=hw, plan=pl, instrs=arr, bags=bags, table_base=tuple(table_base),
                      out_addr=tuple(out_addr))
    program.gemm_cycles = dense_cycles(program)
    if with_data:
        _fill_data(program, point.seed, dense_addr, index_addr, cursor)
    return program


#: Recently generated bags by every input of the generator. A sweep over hardware parameters
#: compiles the same workload again and again, and drawing Zipf indices over million-row tables
#: costs more than the whole simulation; only results of up to 2**22 indices are kept.
_BAGS_CACHE: OrderedDict[tuple, tuple[dlrm.Bags, ...]] = OrderedDict()
_BAGS_CACHE_ENTRIES = 8
_BAGS_CACHE_MAX_INDICES = 1 << 22


def _bags(model: dlrm.DlrmModel, batch: int, batches: int, distribution: str, exponent: float, seed: int,
          min_bag: int | None) -> tuple[dlrm.Bags, ...]:
    """Every table's bags for ``batches`` batches as one stream of samples (read-only arrays)."""
    key = (model, batch, batches, distribution, exponent, seed, min_bag)
    if key in _BAGS_CACHE:
        _BAGS_CACHE.move_to_end(key)
        return _BAGS_CACHE[key]
    per_batch = [dlrm.generate_bags(model, batch, distribution=distribution, exponent=exponent, seed=seed,
                                    min_bag=min_bag, batch_index=b) for b in range(batches)]
    bags = tuple(_concat_bags([one[t] for one in per_batch]) for t in range(model.tables))
    for bag in bags:
        bag.indices.flags.writeable = False
        bag.offsets.flags.writeable = False
    if sum(b.indices.size for b in bags) <= _BAGS_CACHE_MAX_INDICES:
        _BAGS_CACHE[key] = bags
        while len(_BAGS_CACHE) > _BAGS_CACHE_ENTRIES:
            _BAGS_CACHE.popitem(last=False)
    return bags


def _concat_bags(parts: list[dlrm.Bags]) -> dlrm.Bags:
    """One table's bags of several batches as one stream of samples."""
    shift = np.cumsum([0] + [p.indices.size for p in parts[:-1]])
    offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, shift)])
    return dlrm.Bags(indices=np.concatenate([p.indices for p in parts]), offsets=offsets)


def _shifts(model: dlrm.DlrmModel) -> tuple[int, int]:
    """The pool and interaction shifts :func:`sparsim.dataflow.dlrm.random_params` picks."""
    return (math.ceil(math.log2(max(model.lookups, 1)) / 2), dlrm.default_shift(model.dim))


def dense_cycles(program: Program) -> np.ndarray:
    """Dense-engine cycles of every instruction (0 for the others)."""
    hw = program.hw
    ins = program.instrs
    out = np.zeros(len(ins), dtype=np.int64)
    cache: dict[tuple, int] = {}
    for i, row in enumerate(ins):
        op = int(row["op"])
        if op == isa.OP_GEMM:
            key = (op, int(row["p"]), int(row["k"]), int(row["q"]))
            if key not in cache:
                cache[key] = gemm_instruction_cycles(hw, *key[1:])
        elif op == isa.OP_INTER:
            key = (op, int(row["a"]), int(row["p"]), int(row["b"]), int(row["k"]))
            if key not in cache:
                cache[key] = inter_cycles(hw, *key[1:])
        else:
            continue
        out[i] = cache[key]
    return out


def _fill_data(program: Program, seed: int, dense_addr: list[int], index_addr: list[int], size: int) -> None:
    hw, pl = program.hw, program.plan
    model = pl.model
    if size > 1 << 28:
        raise ConfigError("workload.max_rows", f"a memory image of {size:,} B is too large to build "
                                               "for a data run; cap the tables with max_rows")
    params = dlrm.random_params(model, seed)
    dense = np.concatenate([dlrm.random_dense(model, pl.batch, seed, batch_index=b) for b in range(pl.batches)])
    program.params, program.dense = params, dense
    program.expected = dlrm.forward(model, params, dense, program.bags, hw.acc_bits).output
    mem = np.zeros(_align(max(size, 1), hw.line_bytes), dtype=np.uint8)
    n_layers = len(pl.layers)
    gemm_rows = np.flatnonzero(program.instrs["op"] == isa.OP_GEMM)
    inter_rows = program.instrs["op"] == isa.OP_INTER
    program.instrs["shift"][inter_rows] = params.pool_shift | (params.interaction_shift << 6)
    for j, layer in enumerate(params.bottom + params.top):
        off = pl.weight_offsets[j]
        w = np.asarray(layer.weight, dtype=np.int8).reshape(-1).view(np.uint8)
        mem[off: off + w.size] = w
        boff = _align(off + w.size, hw.line_bytes)
        bias = layer.bias if layer.bias is not None else np.zeros(w.size and layer.weight.shape[0], np.int64)
        b = to_bytes(bias, hw.acc_bytes).reshape(-1)
        mem[boff: boff + b.size] = b
        program.instrs["shift"][gemm_rows[j::n_layers]] = layer.shift
    T = model.tables
    for m, (msize, b0) in enumerate(zip(pl.mini_sizes(), pl.mini_starts())):
        d = np.asarray(dense[b0: b0 + msize], dtype=np.int8).reshape(-1).view(np.uint8)
        mem[dense_addr[m]: dense_addr[m] + d.size] = d
        pos = np.zeros((T, msize + 1), dtype=np.int64)
        cursor = T * (msize + 1)
        chunks = []
        for t, bag in enumerate(program.bags):
            off = bag.offsets[b0: b0 + msize + 1]
            pos[t] = cursor + off - off[0]
            idx = bag.indices[off[0]: off[-1]]
            chunks.append(idx)
            cursor += idx.size
        words = np.concatenate([pos.reshape(-1)] + chunks).astype(np.int32).view(np.uint8)
        mem[index_addr[m]: index_addr[m] + words.size] = words
    for t, table in enumerate(params.tables):
        raw = np.asarray(table, dtype=np.int8).reshape(-1).view(np.uint8)
        mem[program.table_base[t]: program.table_base[t] + raw.size] = raw
    program.memory = mem


# --------------------------------------------------------------------------------------------
# Registration (the pyproject.toml entry point ``recsys = "sparsim.dataflow.recsys:ENGINE"``)


def _describe(hw: RecsysHardware) -> str:
    cache = f", {hw.cache_kib:g} KiB cache" if hw.cache_kib else ""
    return (f"recsys G={hw.gather_units} x {hw.max_outstanding} tags, array {hw.rows}x{hw.cols} "
            f"{hw.dataflow}{cache} @ {hw.clock_mhz:g} MHz, "
            f"{hw.memory.channels} x {hw.memory.bytes_per_cycle} B/cycle memory")


def _resources(hw: RecsysHardware) -> dict[str, float]:
    from sparsim.simulator.recsys import resources

    return resources(hw)


def _rtl_resources(hw: RecsysHardware) -> dict[str, float]:
    from sparsim.simulator.recsys import rtl_resources

    return rtl_resources(hw)


def _program_cycles(program: Program) -> int:
    from sparsim.simulator.recsys import run

    return run(program).cycles


ENGINE = Engine(
    name="recsys",
    hardware=RecsysHardware,
    workloads=(DlrmWorkload,),
    presets=PRESETS,
    metrics=shared_metrics("inference") + (
        Metric("overlap_cycles", "cycles", "max", "cycles gathers and the dense engine overlap"),
        Metric("requests", "count", "min", "line requests"),
        Metric("cache_hits", "count", "max", "line cache hits"),
        Metric("mean_in_flight", "count", "max", "mean requests in flight"),
        Metric("peak_in_flight", "count", "max", "peak requests in flight"),
        Metric("channel_queue_cycles", "cycles", "min", "cycles requests queued behind other lines"),
        Metric("mini_batch", "count", "max", "samples per mini-batch"),
    ),
    simulate=lazy("sparsim.simulator.recsys:simulate"),
    resources=_resources,
    describe=_describe,
    headline=("cycles", "latency_ms", "inferences_per_s", "bandwidth_gbps", "mean_in_flight", "cache_hits",
              "energy_per_inference_j"),
    breakdown="activity",
    compile=compile_design_point,
    program_cycles=_program_cycles,
    bench_kinds=("dlrm",),
    rtl_top=lazy("sparsim.rtl.recsys:RecsysAccelerator"),
    rtl_signature=lazy("sparsim.rtl.recsys:top_signature"),
    rtl_resources=_rtl_resources,
    rtl_check=lazy("sparsim.rtl.recsys:check_program"),
)
