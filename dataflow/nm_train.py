"""Hardware model, training workload and compiler of the ``nm_train`` engine (docs/nm_train.md).

A training step becomes, per GEMM (forward, activation gradient, weight gradient of every
layer, in training order, after BDWP's pre-generation), a sequence of tile loads (``LDA``,
``LDB``) and array runs (``MM``) that fit the double-buffered input, weight and output banks.
``with_data=True`` also builds the memory image (seeded INT8 activations, gradients and
weights), and the golden outputs of every GEMM from ``dataflow/golden.py``; ``with_data=False``
builds only the instruction list, which is all the simulator needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from sparsim.engine import Engine, Metric, lazy
from sparsim.simulator.results import shared_metrics

from . import golden, sparsity
from . import nm_train_isa as isa
from . import systolic
from .config import NM, MAX_DIM, ConfigError, DesignPoint, HardwareConfig, MemoryConfig, WorkloadConfig, _Model, pow2_in

# --------------------------------------------------------------------------------------------
# Hardware


def bank_bytes(buffer_kib: float) -> int:
    """Bytes of one of the two banks of a ``buffer_kib`` buffer."""
    return int(buffer_kib * 1024) // 2


def weight_group_units(max_m: int) -> list[tuple[int, int, int]]:
    """``(n, m_log2, group bytes)`` of every group a weight load can bring on an array of
    ``max_m``: the compressed groups of the plain loads (1:1 and each N:M with M up to
    ``max_m``), then the dense groups of M bytes of the pruning ones."""
    ib = max_m.bit_length() - 1
    plain = [(1, 0, 1)] + [(n, ml, isa.group_bytes(n, 1 << ml)) for ml in range(1, ib + 1) for n in range(1, 1 << ml)]
    return plain + [(n, ml, 1 << ml) for ml in range(1, ib + 1) for n in range(1, 1 << ml)]


def weight_word_entries(hw: "NmTrainHardware") -> int:
    """Entries of a weight sub-bank's RAM word (``rtl.nm_train.Geometry.w_word_entries``): a
    power of two, at least the entries a read-data beat's complete groups give (after the bytes
    held from earlier beats), so that a beat's segment spans at most two words. The
    pre-generation unit reads a slab row this many entries a cycle (docs/nm_train.md, "Timing":
    ``ceil(cols / W)`` cycles a row)."""
    w_entries = max(1, bank_bytes(hw.weight_buffer_kib) // hw.cols)
    in_rec = max(1, bank_bytes(hw.input_buffer_kib) // hw.rows)
    db = min(hw.memory.bandwidth_bytes_per_cycle, max(in_rec, w_entries))
    seg = max(n * ((max(g, db) - 1 + db) // g) for n, _, g in weight_group_units(hw.max_m))
    return 1 << (seg - 1).bit_length()


class NmTrainHardware(HardwareConfig):
    """Hardware of the ``nm_train`` engine: an R x C systolic array (docs/nm_train.md).

    Checks that involve several fields run on the later field, so each error names the field to
    change.
    """

    engine: Literal["nm_train"] = "nm_train"
    rows: int = Field(gt=0, le=256, description="PE rows R")
    cols: int = Field(gt=0, le=256, description="PE columns C")
    dataflow: Literal["os", "ws"] = Field(description="output stationary or weight stationary")
    max_m: int = Field(description="widest N:M group a PE's window mux selects from (power of two, 1..16)")
    acc_bits: int = Field(default=32, description="accumulator width in bits")
    input_buffer_kib: float = Field(gt=0, le=1 << 17, description="two input (A) banks together, KiB")
    weight_buffer_kib: float = Field(gt=0, le=1 << 17, description="two weight (B) banks together, KiB")
    output_buffer_kib: float = Field(gt=0, le=1 << 17, description="two output banks together, KiB")
    memory: MemoryConfig

    @field_validator("max_m")
    @classmethod
    def _max_m(cls, v: int) -> int:
        return pow2_in(v, 1, 16)

    @field_validator("input_buffer_kib", "weight_buffer_kib", "output_buffer_kib")
    @classmethod
    def _holds_a_tile(cls, v: float, info: ValidationInfo) -> float:
        try:
            rows, cols, max_m, acc = (info.data[k] for k in ("rows", "cols", "max_m", "acc_bits"))
        except KeyError:
            return v  # a field it depends on is already invalid; that error is reported
        need = {
            # one group of one A row per array row
            "input_buffer_kib": (rows * max_m, f"rows x max_m = {rows} x {max_m} B"),
            # one widest compressed group per array column
            "weight_buffer_kib": (cols * isa.group_bytes(max_m, max_m),
                                  f"cols x {isa.group_bytes(max_m, max_m)} B (one {max_m}:{max_m} group)"),
            # one array's worth of accumulators
            "output_buffer_kib": (rows * cols * acc // 8, f"rows x cols x acc_bits/8 = {rows * cols * acc // 8} B"),
        }[info.field_name]
        if bank_bytes(v) < need[0]:
            raise ValueError(f"too small for one tile: a bank holds {bank_bytes(v)} B, one tile needs {need[1]}")
        return v

    @property
    def dataflow_code(self) -> int:
        return systolic.DATAFLOWS[self.dataflow]

    @property
    def pes(self) -> int:
        return self.rows * self.cols


#: Hardware presets (``hardware: {preset: NAME}``). Numbers for the VCU1525 come from
#: ../shared/REFERENCE.md; where SAT's paper is silent they are assumed (marked).
PRESETS: dict[str, dict] = {
    # VCU1525 (VU9P), 4 x DDR4-2400 = 76.8 GB/s: at 200 MHz 384 B/cycle = 4 channels x 96 B.
    # Assumed: 32 x 32 PEs, 200 MHz, OS dataflow, 100-cycle memory latency, buffer sizes
    # (4 + 4 + 2 MiB of the VU9P's ~9.5 MB BRAM and 34 MB URAM), max_m = 8 (2:8, 4:8, 1:8, 2:4).
    "vcu1525": {
        "device": "vu9p",
        "clock_mhz": 200.0,
        "rows": 32,
        "cols": 32,
        "dataflow": "os",
        "max_m": 8,
        "acc_bits": 32,
        "input_buffer_kib": 4096,
        "weight_buffer_kib": 4096,
        "output_buffer_kib": 2048,
        "memory": {"channels": 4, "bytes_per_cycle": 96, "latency_cycles": 100},
    },
    # Small enough to build and simulate under Verilator in seconds, and to place and route on
    # an ECP5-85 in well under an hour (its input and weight banks are flat registers and
    # record-wide logic: at 1 KiB each, the preset until 2026-11-28, the top filled three
    # quarters of the device and took hours to route). Other engines have a "tiny" too:
    # {preset: tiny} picks this one for a train workload.
    "tiny": {
        "device": None,
        "clock_mhz": 100.0,
        "rows": 4,
        "cols": 4,
        "dataflow": "os",
        "max_m": 8,
        "acc_bits": 32,
        "input_buffer_kib": 0.25,
        "weight_buffer_kib": 0.25,
        "output_buffer_kib": 0.5,
        "memory": {"channels": 2, "bytes_per_cycle": 4, "latency_cycles": 6},
    },
}


# --------------------------------------------------------------------------------------------
# Training workload


class TrainLayer(_Model):
    """One explicit layer: weights W[cout, k] (k = Cin*kh*kw after im2col, Cin fastest) applied
    at ``positions`` output positions per sample (Ho*Wo of a convolution, tokens of a linear
    layer)."""

    name: str
    k: int = Field(gt=0, le=MAX_DIM, description="reduction length K = Cin*kh*kw")
    cout: int = Field(gt=0, le=MAX_DIM, description="output channels / features")
    positions: int = Field(default=1, gt=0, le=MAX_DIM, description="output positions per sample")


class TrainWorkload(WorkloadConfig):
    """One training step: a built-in network or explicit layers, at ``batch`` samples."""

    kind: Literal["train"]
    network: str | None = Field(default=None, description="built-in network (dataflow/networks.py)")
    layers: list[TrainLayer] | None = Field(default=None, validate_default=True)
    batch: int = Field(gt=0, le=1 << 16, description="samples per step")
    mode: Literal["dense", "sr_ste", "bdwp"] = "bdwp"
    sparsity: NM = Field(default_factory=lambda: NM(n=2, m=8))
    dense_layers: list[str] | None = Field(default=None, validate_default=True,
                                           description="layers kept dense (default: first and last)")
    pregen: Literal["pre", "inline"] = Field(default="pre", description="BDWP copies made once per step, "
                                                                        "or pruned inside every weight load")

    @field_validator("network")
    @classmethod
    def _network(cls, v: str | None) -> str | None:
        if v is not None:
            from .networks import NETWORKS

            if v not in NETWORKS:
                raise ValueError(f"unknown network {v!r}; known: {', '.join(NETWORKS)}")
        return v

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: list[TrainLayer] | None, info: ValidationInfo) -> list[TrainLayer] | None:
        if "network" not in info.data:
            return v  # the network is invalid; that error is reported
        network = info.data["network"]
        if network is not None and v is not None:
            raise ValueError("give either network or layers, not both")
        if network is None and v is None:
            raise ValueError("required key is missing (or give network)")
        if v is not None:
            if not v:
                raise ValueError("list at least one layer")
            names = [layer.name for layer in v]
            dup = next((n for n in names if names.count(n) > 1), None)
            if dup is not None:
                raise ValueError(f"layer name {dup!r} appears twice")
        return v

    @field_validator("dense_layers")
    @classmethod
    def _dense_layers(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if v is None or "layers" not in info.data:
            return v
        known = [s.name for s in _shapes(info.data.get("network"), info.data["layers"], 1)]
        for name in v:
            if name not in known:
                raise ValueError(f"no layer named {name!r}")
        return v

    def layer_shapes(self) -> list["LayerShape"]:
        return _shapes(self.network, self.layers, self.batch)

    def dense_names(self) -> set[str]:
        if self.dense_layers is not None:
            return set(self.dense_layers)
        shapes = self.layer_shapes()
        if self.network is not None:
            from .networks import NETWORKS

            net = NETWORKS[self.network]
            return {net.first_conv, net.classifier}
        return {shapes[0].name, shapes[-1].name}


@dataclass(frozen=True)
class LayerShape:
    """A layer's forward GEMM ``out[p, cout] = A[p, k] . W[cout, k]``, ``count`` times."""

    name: str
    p: int
    k: int
    cout: int
    count: int = 1
    has_weights: bool = True  # False: attention products, whose B is an activation


def _shapes(network: str | None, layers: list[TrainLayer] | None, batch: int) -> list[LayerShape]:
    if network is not None:
        from .networks import NETWORKS

        out = []
        for layer in NETWORKS[network].layers:
            g = layer.gemm(batch)
            out.append(LayerShape(layer.name, g.m, g.k, g.n, g.count, layer.has_weights))
        return out
    return [LayerShape(l.name, batch * l.positions, l.k, l.cout) for l in layers or []]


# --------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class GemmPlan:
    """One GEMM of the step and its tiling: P x Q x K with B in ``n``:``m`` format (1:1 dense),
    pruned on load when ``prune``; ``gc`` groups per K chunk, ``pt`` x ``qt`` output tiles,
    ``outer`` the operand whose tiles form the outer loop (one chunk only)."""

    layer: int
    name: str
    pass_: int
    p: int
    q: int
    k: int
    n: int
    m: int
    prune: bool
    count: int
    gc: int
    pt: int
    qt: int
    outer: str

    @property
    def groups(self) -> int:
        return -(-self.k // self.m)

    @property
    def chunks(self) -> int:
        return -(-self.groups // self.gc)

    @property
    def k_steps(self) -> int:
        return self.groups * self.n

    @property
    def useful_macs(self) -> int:
        """MACs on kept weights, all instances."""
        return self.count * self.p * self.q * self.k_steps


@dataclass(frozen=True)
class PregenPass:
    """One sweep of pre-generation over a dense W: slabs of ``rows`` x ``cols``, each loaded
    (LDB) and pruned into the forward copy (``fwd``, PGS axis 0) and/or the backward copy
    (``bwd``, PGS axis 1)."""

    rows: int
    cols: int
    fwd: bool
    bwd: bool

    def slabs(self, cout_pad: int, k_pad: int) -> int:
        return -(-k_pad // self.cols) * -(-cout_pad // self.rows)

    @property
    def per_slab(self) -> int:
        return 1 + self.fwd + self.bwd


@dataclass(frozen=True)
class PregenPlan:
    """Pre-generation of one layer's compressed copies from its dense W[cout, k]: the forward
    copy is chunk-major by the forward GEMM's K chunks (``kc`` columns), the backward copy by
    the act_grad GEMM's Cout chunks (``rb`` rows); ``both`` for bdwp. One pass of ``rb`` x ``kc``
    slabs makes both copies when such a slab fits the banks; otherwise two passes (forward copy
    from slabs of whole ``kc`` columns, backward copy from slabs of whole ``rb`` rows) read W
    twice instead of cutting the GEMMs' chunks."""

    layer: int
    name: str
    cout: int
    k: int
    n: int
    m: int
    kc: int
    rb: int
    both: bool
    passes: tuple[PregenPass, ...]

    @property
    def cout_pad(self) -> int:
        return -(-self.cout // self.m) * self.m

    @property
    def k_pad(self) -> int:
        return -(-self.k // self.m) * self.m

    @property
    def instructions(self) -> int:
        return sum(p.slabs(self.cout_pad, self.k_pad) * p.per_slab for p in self.passes)


def _fit(total: int, cap: int, unit: int) -> int:
    """``total`` if it fits ``cap`` (and the count field), else the largest multiple of
    ``unit`` that does (at least ``unit``)."""
    cap = min(cap, isa.field_max("count"))
    return total if total <= cap else max(unit, cap // unit * unit)


def _tile(hw: NmTrainHardware, p: int, q: int, k: int, n: int, m: int, prune: bool, *,
          gc_cap: int | None = None) -> tuple[int, int, int, str]:
    """(groups per chunk, tile rows, tile columns, outer loop) of a GEMM (docs/nm_train.md,
    "Compiler"). Always fits, because the hardware validators guarantee that a bank holds R A
    rows, C B rows and R output rows of one group / one array's columns."""
    R, C, ab = hw.rows, hw.cols, hw.acc_bits // 8
    in_bank, w_bank, out_bank = (bank_bytes(hw.input_buffer_kib), bank_bytes(hw.weight_buffer_kib),
                                 bank_bytes(hw.output_buffer_kib))
    groups = -(-k // m)
    gb = isa.group_bytes(n, m)
    load_group = m if prune else gb
    gc = min(groups,
             in_bank // (R * m),
             w_bank // (C * gb),
             isa.field_max("width") // max(m, load_group),
             isa.field_max("k_steps") // n,
             gc_cap or groups)
    chunks = -(-groups // gc)
    gc = -(-groups // chunks)  # equal chunks
    qt = min(_fit(q, w_bank // (gc * gb), C), _fit(q, out_bank // (R * ab), C))
    pt = min(_fit(p, in_bank // (gc * m), R), _fit(p, out_bank // (qt * ab), R))
    outer = "q"
    if chunks == 1:
        np_, nq = -(-p // pt), -(-q // qt)
        a_bytes, b_bytes = p * groups * m, q * groups * load_group
        if a_bytes + b_bytes * np_ < b_bytes + a_bytes * nq:
            outer = "p"
    return gc, pt, qt, outer


def _slab_fits(hw: NmTrainHardware, rows: int, cols: int, n: int, m: int, fwd: bool, bwd: bool) -> bool:
    """Whether a pre-generation slab of ``rows`` x ``cols`` fits: dense in a weight bank, each
    compressed copy it makes in an output bank, every record within a bank row (bank / R) and
    the 16-bit fields."""
    gb = isa.group_bytes(n, m)
    w_bank, out_bank = bank_bytes(hw.weight_buffer_kib), bank_bytes(hw.output_buffer_kib)
    # A slab's rows are B records of the weight bank: at most w_bank / C bytes.
    ok = (rows * cols <= w_bank and cols <= w_bank // hw.cols and max(rows, cols) <= isa.field_max("count")
          and cols <= isa.field_max("width"))
    if fwd:
        rec = cols // m * gb
        ok = ok and rows * rec <= out_bank and rec <= out_bank // hw.rows
    if bwd:
        rec = rows // m * gb
        ok = ok and cols * rec <= out_bank and rec <= out_bank // hw.rows
    return ok


def _largest(total: int, m: int, fits) -> int:
    """The largest multiple of ``m`` up to ``total`` for which ``fits`` holds (0 if none);
    ``fits`` is monotone, so a binary search over the multiples."""
    lo, hi = 0, total // m
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid * m):
            lo = mid
        else:
            hi = mid - 1
    return lo * m


def _pregen_passes(hw: NmTrainHardware, name: str, cout: int, k: int, kc: int, rb: int | None,
                   n: int, m: int) -> tuple[int, int, tuple[PregenPass, ...]]:
    """(kc, rb, passes) of a layer's pre-generation, from the forward GEMM's K chunk ``kc`` and
    the act_grad GEMM's Cout chunk ``rb`` (None: sr_ste, no backward copy). ``kc`` or ``rb``
    shrink only when not even M rows (columns) of them fit."""
    cp, kp = -(-cout // m) * m, -(-k // m) * m

    def refuse() -> ConfigError:
        w_bank, out_bank = bank_bytes(hw.weight_buffer_kib), bank_bytes(hw.output_buffer_kib)
        if m * m > w_bank:
            return ConfigError("hardware.weight_buffer_kib",
                               f"too small for one pre-generation slab of layer {name!r}: {m} x {m} dense bytes "
                               f"need {m * m} B of a weight bank, which holds {w_bank} B")
        return ConfigError("hardware.output_buffer_kib",
                           f"too small for one pre-generation slab of layer {name!r}: its compressed copies need "
                           f"{m * isa.group_bytes(n, m)} B of an output bank (which holds {out_bank} B) in "
                           f"records of at most bank / rows = {out_bank // hw.rows} B")

    if rb is not None and _slab_fits(hw, rb, kc, n, m, True, True):
        return kc, rb, (PregenPass(rb, kc, True, True),)
    kc = _largest(kc, m, lambda c: _slab_fits(hw, m, c, n, m, True, False))
    if kc == 0:
        raise refuse()
    passes = [PregenPass(_largest(cp, m, lambda r: _slab_fits(hw, r, kc, n, m, True, False)), kc, True, False)]
    if rb is not None:
        rb = _largest(rb, m, lambda r: _slab_fits(hw, r, m, n, m, False, True))
        if rb == 0:
            raise refuse()
        passes.append(PregenPass(rb, _largest(kp, m, lambda c: _slab_fits(hw, rb, c, n, m, False, True)), False, True))
    return kc, rb or cp, tuple(passes)


def plan_step(hw: NmTrainHardware, wl: TrainWorkload) -> tuple[list[PregenPlan], list[GemmPlan], list[LayerShape]]:
    """Pre-generation plans and GEMM plans of one training step, in training order."""
    shapes = wl.layer_shapes()
    nm = wl.sparsity
    if wl.mode != "dense" and not nm.dense and nm.m > hw.max_m:
        raise ConfigError("workload.sparsity", f"M={nm.m} exceeds hardware.max_m={hw.max_m}")
    dense_names = wl.dense_names()
    sparse = [wl.mode != "dense" and s.has_weights and s.name not in dense_names and not nm.dense
              for s in shapes]
    pre = wl.pregen == "pre"

    def gemm(i: int, pass_: int, p: int, q: int, k: int, sparse_b: bool, gc_cap: int | None = None) -> GemmPlan:
        n, m = (nm.n, nm.m) if sparse_b else (1, 1)
        prune = sparse_b and not pre
        gc, pt, qt, outer = _tile(hw, p, q, k, n, m, prune, gc_cap=gc_cap)
        return GemmPlan(i, shapes[i].name, pass_, p, q, k, n, m, prune, shapes[i].count, gc, pt, qt, outer)

    # Sparse layers with pre-generated copies: the forward (and act_grad) GEMMs' K chunks are
    # the slabs' columns (and rows), so each chunk of a copy is one contiguous block.
    fwd_plans, act_plans, pregens = {}, {}, []
    for i, s in enumerate(shapes):
        bwd_sparse = sparse[i] and wl.mode == "bdwp"
        if sparse[i] and pre:
            fwd = gemm(i, isa.FORWARD, s.p, s.cout, s.k, True)
            act = gemm(i, isa.ACT_GRAD, s.p, s.k, s.cout, True) if bwd_sparse and i > 0 else None
            kc, rb, _ = _pregen_passes(hw, s.name, s.cout, s.k, fwd.gc * nm.m, act.gc * nm.m if act else None,
                                       nm.n, nm.m)
            fwd = gemm(i, isa.FORWARD, s.p, s.cout, s.k, True, gc_cap=kc // nm.m)
            if bwd_sparse:  # the backward copy exists even when the first layer has no act_grad
                act = gemm(i, isa.ACT_GRAD, s.p, s.k, s.cout, True, gc_cap=rb // nm.m)
            else:
                act = gemm(i, isa.ACT_GRAD, s.p, s.k, s.cout, False)
            # Equal chunks may have shrunk the GEMMs' chunks below the caps: slab the final ones.
            kc, rb, passes = _pregen_passes(hw, s.name, s.cout, s.k, fwd.gc * nm.m,
                                            act.gc * nm.m if bwd_sparse else None, nm.n, nm.m)
            pregens.append(PregenPlan(i, s.name, s.cout, s.k, nm.n, nm.m, kc, rb, bwd_sparse, passes))
        else:
            fwd = gemm(i, isa.FORWARD, s.p, s.cout, s.k, sparse[i])
            act = gemm(i, isa.ACT_GRAD, s.p, s.k, s.cout, bwd_sparse)
        fwd_plans[i], act_plans[i] = fwd, act
    gemms = [fwd_plans[i] for i in range(len(shapes))]
    for i in reversed(range(len(shapes))):
        s = shapes[i]
        if i > 0:  # nothing consumes the gradient of the network's input
            gemms.append(act_plans[i])
        gemms.append(gemm(i, isa.WEIGHT_GRAD, s.cout, s.k, s.p, False))
    return pregens, gemms, shapes


# --------------------------------------------------------------------------------------------
# Instruction emission


def _ranges(total: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, total, size, dtype=np.int64)
    return starts, np.minimum(size, total - starts)


def _emit_gemm(hw: NmTrainHardware, g: GemmPlan, a_base: int, b_base: int, b_rows: int, out_base: int) -> np.ndarray:
    """The instructions of one GEMM instance (loop order in docs/nm_train.md, "Compiler").
    Operands are chunk-major (``b_rows`` rows per chunk of B), outputs tile-major."""
    p0, psz = _ranges(g.p, g.pt)
    q0, qsz = _ranges(g.q, g.qt)
    g0, gsz = _ranges(g.groups, g.gc)
    npt, nqt, nch = len(p0), len(q0), len(g0)
    if nch == 1:
        n_out, n_in = (nqt, npt) if g.outer == "q" else (npt, nqt)
        per = 1 + 2 * n_in
        pos = np.arange(n_out * per)
        o, r = pos // per, pos % per
        inner = np.maximum(r - 1, 0) // 2
        op = np.where(r == 0, 0, np.where(r % 2 == 1, 1, 2))  # 0 outer load, 1 inner load, 2 MM
        if g.outer == "q":
            tq, tp = o, inner
            code = np.where(op == 0, isa.OP_LDB, np.where(op == 1, isa.OP_LDA, isa.OP_MM))
        else:
            tp, tq = o, inner
            code = np.where(op == 0, isa.OP_LDA, np.where(op == 1, isa.OP_LDB, isa.OP_MM))
        ch = np.zeros_like(pos)
    else:
        per = 3 * nch
        pos = np.arange(nqt * npt * per)
        blk, r = pos // per, pos % per
        tq, tp = blk // npt, blk % npt
        ch = r // 3
        code = np.array([isa.OP_LDA, isa.OP_LDB, isa.OP_MM])[r % 3]
    out = np.zeros(len(pos), dtype=isa.INSTR_DTYPE)
    out["op"] = code
    out["pass_"] = g.pass_
    out["layer"] = g.layer
    m_log2 = g.m.bit_length() - 1
    gb = isa.group_bytes(g.n, g.m)
    load_group = g.m if g.prune else gb
    lda, ldb, mm = code == isa.OP_LDA, code == isa.OP_LDB, code == isa.OP_MM
    out["count"][lda] = psz[tp[lda]]
    out["width"][lda] = gsz[ch[lda]] * g.m
    out["addr"][lda] = a_base + ch[lda] * (g.p * g.gc * g.m) + p0[tp[lda]] * gsz[ch[lda]] * g.m
    out["count"][ldb] = qsz[tq[ldb]]
    out["width"][ldb] = gsz[ch[ldb]] * load_group
    out["k_steps"][ldb] = gsz[ch[ldb]] * g.n
    out["addr"][ldb] = b_base + ch[ldb] * (b_rows * g.gc * load_group) + q0[tq[ldb]] * gsz[ch[ldb]] * load_group
    out["prune"][ldb] = 1 if g.prune else 0
    ab = hw.acc_bits // 8
    out["count"][mm] = psz[tp[mm]]
    out["width"][mm] = qsz[tq[mm]]
    out["k_steps"][mm] = gsz[ch[mm]] * g.n
    out["acc"][mm] = ch[mm] > 0
    out["store"][mm] = ch[mm] == nch - 1
    out["addr"][mm] = out_base + p0[tp[mm]] * g.q * ab + q0[tq[mm]] * psz[tp[mm]] * ab
    out["n"][ldb | mm] = g.n
    out["m_log2"][ldb | mm] = m_log2
    out["sync"][0] = 1  # the GEMM's operands are earlier GEMMs' results
    return out


def _emit_pregen(pg: PregenPlan, w_bases: list[int], f_base: int, b_base: int) -> np.ndarray:
    """Per pass (dense W at ``w_bases[pass]``, chunk-major by the pass's slab columns) and per
    slab (column block outer, row block inner): LDB of the dense slab, then PGS of its block of
    the forward copy (chunk-major by ``kc`` columns) and/or of the backward copy (chunk-major
    by ``rb`` rows), each one contiguous block."""
    gb = isa.group_bytes(pg.n, pg.m)
    cp, kp, m = pg.cout_pad, pg.k_pad, pg.m
    blocks = []
    for ps, w_base in zip(pg.passes, w_bases):
        cc0, ccs = _ranges(kp, ps.cols)
        rr0, rrs = _ranges(cp, ps.rows)
        c0, r0 = np.repeat(cc0, len(rr0)), np.tile(rr0, len(cc0))
        csz, rsz = np.repeat(ccs, len(rr0)), np.tile(rrs, len(cc0))
        per = ps.per_slab
        out = np.zeros(len(c0) * per, dtype=isa.INSTR_DTYPE)
        out["pass_"] = isa.PREGEN
        out["layer"] = pg.layer
        ld = out[0::per]
        ld["op"] = isa.OP_LDB
        ld["n"], ld["m_log2"] = 1, 0
        ld["count"], ld["width"], ld["k_steps"] = rsz, csz, csz
        ld["addr"] = w_base + c0 * cp + r0 * csz
        slot = 1
        if ps.fwd:  # columns are whole kc chunks
            fw = out[slot::per]
            fw["op"], fw["axis"] = isa.OP_PGS, 0
            fw["count"], fw["width"], fw["k_steps"] = rsz, csz // m * gb, csz // m * pg.n
            fw["addr"] = f_base + c0 // m * gb * cp + r0 * (csz // m * gb)
            fw["n"], fw["m_log2"] = pg.n, m.bit_length() - 1
            slot += 1
        if ps.bwd:  # rows are whole rb chunks
            bw = out[slot::per]
            bw["op"], bw["axis"] = isa.OP_PGS, 1
            bw["count"], bw["width"], bw["k_steps"] = csz, rsz // m * gb, rsz // m * pg.n
            bw["addr"] = b_base + r0 // m * gb * kp + c0 * (rsz // m * gb)
            bw["n"], bw["m_log2"] = pg.n, m.bit_length() - 1
        blocks.append(out)
    return np.concatenate(blocks)


# --------------------------------------------------------------------------------------------
# Program


@dataclass
class GemmData:
    """One GEMM's operands as placed in memory, where its output goes, and the golden output."""

    out_addr: int
    expected: np.ndarray  # [P, Q] int64, wrapped


@dataclass
class Program:
    """The shared dataflow schedule of one design point. Without data, addresses are zero."""

    hw: NmTrainHardware
    instrs: np.ndarray  # isa.INSTR_DTYPE, ends with END
    gemms: list[GemmPlan]
    pregens: list[PregenPlan]
    layers: list[str]
    batch: int
    memory: np.ndarray | None = None
    data: list[GemmData] = field(default_factory=list)  # per GEMM, with_data only

    def words(self) -> list[int]:
        return isa.encode_program(self.instrs)

    @property
    def useful_macs(self) -> int:
        return sum(g.useful_macs for g in self.gemms)

    def expected_outputs(self) -> list[np.ndarray]:
        return [d.expected for d in self.data]

    def read_outputs(self, memory: np.ndarray | bytes | bytearray) -> list[np.ndarray]:
        """Every GEMM's output [P, Q] decoded from a memory image after execution."""
        mem = memory if isinstance(memory, np.ndarray) else np.frombuffer(bytes(memory), dtype=np.uint8)
        ab = self.hw.acc_bits // 8
        outs = []
        for g, d in zip(self.gemms, self.data):
            y = np.zeros((g.p, g.q), dtype=np.int64)
            for p0, psz in zip(*_ranges(g.p, g.pt)):
                for q0, qsz in zip(*_ranges(g.q, g.qt)):  # tile-major: tile (p0, q0) is one block
                    at = d.out_addr + p0 * g.q * ab + q0 * psz * ab
                    raw = mem[at : at + psz * qsz * ab].reshape(psz, qsz * ab)
                    y[p0 : p0 + psz, q0 : q0 + qsz] = isa.unpack_acc_rows(raw, self.hw.acc_bits)
            outs.append(y)
        return outs


#: Largest Program and data image compile builds (bytes), counted before allocating.
MAX_PROGRAM_BYTES = 1 << 30


def _instr_count(g: GemmPlan) -> int:
    npt, nqt = -(-g.p // g.pt), -(-g.q // g.qt)
    if g.chunks == 1:
        n_out, n_in = (nqt, npt) if g.outer == "q" else (npt, nqt)
        return n_out * (1 + 2 * n_in)
    return 3 * g.chunks * npt * nqt


def compile_step(hw: NmTrainHardware, wl: TrainWorkload, *, with_data: bool = False, seed: int = 0) -> Program:
    pregens, gemms, shapes = plan_step(hw, wl)
    instrs = sum(_instr_count(g) * g.count for g in gemms) + sum(pg.instructions for pg in pregens)
    need = (instrs + 1) * isa.INSTR_DTYPE.itemsize
    if with_data:
        if any(g.count != 1 for g in gemms):
            raise ConfigError("workload", "layers with several GEMM instances (attention) run timing-only; "
                                          "data images need explicit layers")
        need += sum(10 * (g.p * g.k + g.q * g.k + g.p * g.q) for g in gemms)
    if need > MAX_PROGRAM_BYTES:
        raise ConfigError("workload", f"{instrs:,} instructions{' and their data' if with_data else ''} would take "
                                      f"about {need / 2**30:,.1f} GiB, above the {MAX_PROGRAM_BYTES >> 30} GiB limit")
    program = Program(hw=hw, instrs=np.zeros(0, isa.INSTR_DTYPE), gemms=gemms, pregens=pregens,
                      layers=[s.name for s in shapes], batch=wl.batch)
    if with_data:
        blocks = _fill_data(program, wl, shapes, seed)
    else:
        blocks = [_emit_pregen(pg, [0] * len(pg.passes), 0, 0) for pg in pregens]
        for g in gemms:
            block = _emit_gemm(hw, g, 0, 0, 0, 0)
            blocks.append(np.tile(block, g.count) if g.count > 1 else block)
    end = np.zeros(1, dtype=isa.INSTR_DTYPE)
    end["op"] = isa.OP_END
    end["layer"] = -1
    end["pass_"] = -1
    program.instrs = np.concatenate(blocks + [end])
    return program


def compile_design_point(point: DesignPoint, *, with_data: bool = False) -> Program:
    return compile_step(point.hardware, point.workload, with_data=with_data, seed=point.seed)


# --------------------------------------------------------------------------------------------
# Data: memory image and golden outputs

_ALIGN = 64


def _chunk_major(mat: np.ndarray, group_width: int, gc: int) -> np.ndarray:
    """``mat`` [rows, G*group_width] as chunks of ``gc`` groups, each chunk's rows consecutive:
    the layout in which every tile load reads one contiguous block."""
    groups = mat.shape[1] // group_width
    starts, sizes = _ranges(groups, gc)
    return np.concatenate([mat[:, g0 * group_width : (g0 + gs) * group_width].reshape(-1)
                           for g0, gs in zip(starts, sizes)])


def _fill_data(program: Program, wl: TrainWorkload, shapes: list[LayerShape], seed: int) -> list[np.ndarray]:
    """Random operands, the memory image, addresses and golden outputs; returns the blocks."""
    hw = program.hw
    rng = np.random.default_rng(seed)
    nm = wl.sparsity
    chunks: list[tuple[int, np.ndarray]] = []
    cursor = 0

    def place(data: np.ndarray) -> int:
        nonlocal cursor
        addr = cursor
        chunks.append((addr, np.ascontiguousarray(data).reshape(-1).view(np.uint8)))
        cursor = -(-(addr + data.size) // _ALIGN) * _ALIGN
        return addr

    def reserve(nbytes: int) -> int:
        return place(np.zeros(nbytes, dtype=np.uint8))

    lo, hi = golden.int_range(8)
    data = []
    for s in shapes:
        x = rng.integers(lo, hi + 1, size=(s.p, s.k), dtype=np.int64)
        dy = rng.integers(lo, hi + 1, size=(s.p, s.cout), dtype=np.int64)
        w = rng.integers(lo, hi + 1, size=(s.cout, s.k), dtype=np.int64)
        data.append((x, dy, w))

    def padded(a: np.ndarray, m: int) -> np.ndarray:
        return sparsity.pad_to_multiple(a.astype(np.int8), m, axis=1)

    blocks = []
    pregen_regions: dict[int, tuple[int, int, int, int]] = {}
    for pg in program.pregens:
        _, _, w = data[pg.layer]
        wd = np.zeros((pg.cout_pad, pg.k_pad), dtype=np.int8)
        wd[: pg.cout, : pg.k] = w
        gb = isa.group_bytes(pg.n, pg.m)
        # One dense copy per pass, in the layout its slabs read.
        w_addrs = [place(_chunk_major(wd, 1, ps.cols)) for ps in pg.passes]
        f_addr = reserve(pg.cout_pad * pg.k_pad // pg.m * gb)
        b_addr = reserve(pg.k_pad * pg.cout_pad // pg.m * gb) if pg.both else 0
        pregen_regions[pg.layer] = (f_addr, b_addr, pg.cout_pad, pg.k_pad)
        blocks.append(_emit_pregen(pg, w_addrs, f_addr, b_addr))
    dense_names = wl.dense_names()
    for g in program.gemms:
        x, dy, w = data[g.layer]
        name = shapes[g.layer].name
        layer_mode = "dense" if (wl.mode == "dense" or name in dense_names or nm.dense) else wl.mode
        pre_addr = None
        if g.pass_ == isa.FORWARD:
            a = x
            expected = golden.forward(x, w, layer_mode, nm.n, nm.m, hw.acc_bits)
            b_dense = w if g.m == 1 or g.prune else None
            if g.m > 1 and not g.prune:
                pre_addr, _, b_rows, _ = pregen_regions[g.layer]
        elif g.pass_ == isa.ACT_GRAD:
            a = dy
            expected = golden.activation_gradient(dy, w, layer_mode, nm.n, nm.m, hw.acc_bits)
            if layer_mode == "sr_ste":  # dX = dY . Wf, run dense
                b_dense = sparsity.prune_compress_nm(w, nm.n, nm.m).dense().T
            else:
                b_dense = w.T if g.m == 1 or g.prune else None
            if g.m > 1 and not g.prune:
                _, pre_addr, _, b_rows = pregen_regions[g.layer]
        else:
            a, b_dense = dy.T, x.T
            expected = golden.weight_gradient(dy, x, hw.acc_bits)
        a_addr = place(_chunk_major(padded(a, g.m), g.m, g.gc))
        if pre_addr is None:  # dense bytes: 1:1 records, or the input of pruning loads
            b_addr, b_rows = place(_chunk_major(padded(b_dense, g.m), g.m if g.prune else 1, g.gc)), g.q
        else:
            b_addr = pre_addr
        out_addr = reserve(g.p * g.q * hw.acc_bits // 8)
        blocks.append(_emit_gemm(hw, g, a_addr, b_addr, b_rows, out_addr))
        program.data.append(GemmData(out_addr=out_addr, expected=expected))
    if cursor > isa.field_max("addr") + 1:
        raise ConfigError("workload", f"memory image of {cursor} bytes exceeds the "
                                      f"{isa.field_width('addr')}-bit address space")
    mem = np.zeros(max(cursor, _ALIGN), dtype=np.uint8)
    for addr, raw in chunks:
        mem[addr : addr + raw.size] = raw
    program.memory = mem
    return blocks


# --------------------------------------------------------------------------------------------
# Resources and registration


BRAM36_BITS = 36 * 1024
URAM_BITS = 288 * 1024
#: Banks of at least this many bits are counted as URAM288, smaller ones as BRAM36.
URAM_THRESHOLD_BITS = 512 * 1024


def resources(hw: NmTrainHardware) -> dict[str, float]:
    """Counted from what the array instantiates (the architecture's array and buffers; the RTL as
    built, with its record-wide logic, is ``simulator.nm_train.rtl_resources``): one
    multiplier (DSP48E2) per PE; per PE the window register (8·max_m FFs), the moving and the
    held (value, index) registers, the selected-lane, A/B operand and product registers (40),
    the accumulator and the partial-sum register (2·acc_bits); LUTs for the M:1 mux (one LUT6
    per 4:1 slice of each of 8 bits) and the two acc_bits-wide adders; the six banks as URAM288
    (from 512 Kib) or BRAM36."""
    import math

    ib = max(1, hw.max_m.bit_length() - 1)
    pe_ff = 8 * hw.max_m + 2 * (8 + ib) + 40 + 2 * hw.acc_bits
    pe_lut = 8 * math.ceil((hw.max_m - 1) / 3) + 2 * hw.acc_bits
    bram, uram = 0, 0
    for kib in (hw.input_buffer_kib, hw.weight_buffer_kib, hw.output_buffer_kib):
        bits = bank_bytes(kib) * 8
        if bits >= URAM_THRESHOLD_BITS:
            uram += 2 * math.ceil(bits / URAM_BITS)
        else:
            bram += 2 * math.ceil(bits / BRAM36_BITS)
    return {"dsp": hw.pes, "lut": hw.pes * pe_lut, "ff": hw.pes * pe_ff, "bram36": bram, "uram": uram}


def _rtl_resources(hw: NmTrainHardware) -> dict[str, float]:
    from sparsim.simulator.nm_train import rtl_resources

    return rtl_resources(hw)


def _describe(hw: NmTrainHardware) -> str:
    return (f"nm_train {hw.rows}x{hw.cols} {hw.dataflow.upper()} max_m={hw.max_m} @ {hw.clock_mhz:g} MHz, "
            f"{hw.memory.bandwidth_bytes_per_cycle} B/cycle memory")


ENGINE = Engine(
    name="nm_train",
    hardware=NmTrainHardware,
    workloads=(TrainWorkload,),
    presets=PRESETS,
    metrics=shared_metrics("sample") + (
        Metric("stream_cycles", "cycles", "min", "cycles the array streams reduction steps"),
        Metric("pregen_cycles", "cycles", "min", "cycles of pre-generation jobs"),
        Metric("folds", "count", "min", "array folds"),
        *(Metric(f"offchip_bytes_{name}", "B", "min", f"off-chip bytes of the {name.replace('_', ' ')} pass")
          for name in isa.PASSES),
    ),
    simulate=lazy("sparsim.simulator.nm_train:simulate"),
    resources=resources,
    rtl_resources=_rtl_resources,
    describe=_describe,
    headline=("cycles", "latency_ms", "samples_per_s", "mac_utilisation", "bandwidth_gbps", "dsp", "energy_j"),
    breakdown="pass",
    rtl_top=lazy("sparsim.rtl.nm_train:NmTrainAccelerator"),
    rtl_signature=lazy("sparsim.rtl.nm_train:top_signature"),
    compile=compile_design_point,
    program_cycles=lazy("sparsim.simulator.nm_train:program_cycles"),
    bench_kinds=("train",),
    read_beats=True,
)
