"""Analytical CPU-only DLRM inference time: the baseline an accelerator's speedup is taken over.

Documented in docs/recsys_cpu.md (equations, parameters, which values are assumed). In short,
one batch runs its stages one after another on all cores, each stage bounded by the slowest of
its resources:

- **embedding gathers**: every looked-up row touches ``lines_per_row`` cache lines. A fraction
  ``h`` of the lookups hits the LLC, modelled as an ideal cache holding the hottest rows (the
  top-K rows by access probability over all tables, K = the LLC bytes left after the MLP
  weights / bytes per cached row), so ``h`` grows with Zipf skew; this is an upper bound on an
  LRU cache's hit rate, which makes the CPU faster, never slower. Misses go to DRAM. Time is the
  largest of: latency-bound (each core keeps ``misses_per_core`` line fills in flight, Little's
  law), bandwidth-bound (DRAM time of the misses plus LLC time of the hits) and the vector adds
  of the pooling;
- **MLP layers** (and the dot interaction): the larger of the FLOPs at ``gemm_efficiency`` of
  the AVX2 FMA peak and the weight bytes at the bandwidth of where the weights live (LLC when
  all MLP weights fit, else DRAM) — so a batch-1 layer is a weight-streaming GEMV;
- the concat interaction moves its bytes at LLC bandwidth.

Pure Python (a few dozen operations per call); it names no engine, because it models a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

from sparsim.dataflow.dlrm import DlrmModel

EULER_MACLAURIN_HEAD = 32  # terms summed exactly before the Euler-Maclaurin tail


@dataclass(frozen=True)
class CpuParams:
    """A CPU socket as the model sees it. Units in the names; see docs/recsys_cpu.md."""

    name: str
    cores: int
    clock_ghz: float
    simd_fp32_lanes: int  # FP32 lanes of one vector register (AVX2: 8)
    fma_per_cycle: int  # vector FMA instructions issued per cycle per core
    llc_mib: float
    llc_latency_ns: float
    llc_bandwidth_gbs: float  # aggregate over the cores
    dram_latency_ns: float
    dram_bandwidth_gbs: float  # sustained, not the DIMMs' peak
    misses_per_core: int  # line fills in flight per core (L1D fill buffers)
    line_bytes: int
    gemm_efficiency: float  # achieved fraction of the FMA peak in the MLP GEMMs
    element_bytes: int  # bytes of an embedding element and a weight (FP32: 4)
    tdp_w: float  # package power drawn while busy, for energy per batch
    op_overhead_us: float  # fixed software cost per operator (layer, table), 0 = hardware only
    assumed: tuple[str, ...] = ()  # fields whose value is an assumption, not a datasheet fact

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("name", "assumed"):
                continue
            if f.name in ("op_overhead_us", "llc_mib"):
                ok = v >= 0
            elif f.name == "gemm_efficiency":
                ok = 0 < v <= 1
            else:
                ok = v > 0
            if not ok:
                raise ValueError(f"{self.name}: {f.name} out of range: {v}")
        unknown = set(self.assumed) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"{self.name}: assumed names unknown fields {sorted(unknown)}")

    @property
    def peak_flops(self) -> float:
        """FP32 FLOP/s of the socket: lanes x FMA issue x 2 FLOP x cores x clock."""
        return self.simd_fp32_lanes * self.fma_per_cycle * 2 * self.cores * self.clock_ghz * 1e9


# HARPv2's host: a Broadwell-EP Xeon in one package with the Arria 10 (REFERENCE.md). The exact
# SKU, memory population and measured latencies of the Centaur testbed are not in the facts we
# hold; those values are marked assumed (typical of an E5-2680 v4-class part with 4 channels of
# DDR4-2400). AVX2 width, two FMA ports, 10 L1D fill buffers and 64-byte lines are Broadwell
# architecture facts.
HARPV2_XEON = CpuParams(
    name="harpv2_xeon", cores=14, clock_ghz=2.4, simd_fp32_lanes=8, fma_per_cycle=2,
    llc_mib=35.0, llc_latency_ns=18.0, llc_bandwidth_gbs=200.0,
    dram_latency_ns=90.0, dram_bandwidth_gbs=60.0, misses_per_core=10, line_bytes=64,
    gemm_efficiency=0.7, element_bytes=4, tdp_w=120.0, op_overhead_us=0.0,
    assumed=("cores", "clock_ghz", "llc_mib", "llc_latency_ns", "llc_bandwidth_gbs",
             "dram_latency_ns", "dram_bandwidth_gbs", "gemm_efficiency", "tdp_w"),
)


@dataclass(frozen=True)
class CpuTime:
    """Modelled time of one batch, seconds, by stage (stages run one after another)."""

    batch: int
    embedding_s: float
    bottom_mlp_s: float
    interaction_s: float
    top_mlp_s: float
    llc_hit_rate: float  # fraction of embedding lines served by the LLC
    embedding_lines: float  # cache lines the gathers touch per batch
    embedding_bound: Literal["latency", "bandwidth", "compute"]
    energy_j: float

    @property
    def total_s(self) -> float:
        return self.embedding_s + self.bottom_mlp_s + self.interaction_s + self.top_mlp_s

    @property
    def inferences_per_s(self) -> float:
        return self.batch / self.total_s


def harmonic(n: int, s: float) -> float:
    """Generalised harmonic number H(n, s) = sum_{r=1..n} r**-s: the first terms summed, the
    rest by Euler-Maclaurin to the B4 term (relative error below 1e-11 for s <= 3)."""
    if n <= 0:
        return 0.0
    m = min(n, EULER_MACLAURIN_HEAD)
    head = math.fsum(r ** -s for r in range(1, m + 1))
    if n == m:
        return head
    integral = math.log(n / m) if s == 1 else (n ** (1 - s) - m ** (1 - s)) / (1 - s)
    f_n, f_m = n ** -s, m ** -s
    df_n, df_m = -s * n ** (-s - 1), -s * m ** (-s - 1)
    c3 = -s * (s + 1) * (s + 2)
    d3f_n, d3f_m = c3 * n ** (-s - 3), c3 * m ** (-s - 3)
    return head + integral + (f_n - f_m) / 2 + (df_n - df_m) / 12 - (d3f_n - d3f_m) / 720


def mean_bag(model: DlrmModel, lookups: int | None = None, min_bag: int | None = None) -> float:
    """Mean lookups per bag: fixed bags have ``lookups``; variable ones are uniform on
    [min_bag, lookups] (``min_bag`` defaulting as in :func:`sparsim.dataflow.dlrm.generate_bags`)."""
    lookups = model.lookups if lookups is None else lookups
    if model.bags == "fixed":
        return float(lookups)
    lo = (1 if lookups >= 1 else 0) if min_bag is None else min_bag
    return (lo + lookups) / 2


def lines_per_row(row_bytes: int, line_bytes: int) -> float:
    """Mean cache lines one row touches, rows packed back to back from a line-aligned base
    (averaged over the row offsets modulo the line, which repeat every line / gcd rows)."""
    period = line_bytes // math.gcd(row_bytes, line_bytes)
    total = 0
    for r in range(period):
        start = r * row_bytes
        total += (start + row_bytes - 1) // line_bytes - start // line_bytes + 1
    return total / period


def llc_hit_rate(table_rows: tuple[int, ...], weights: tuple[float, ...], capacity_rows: float,
                 exponent: float) -> float:
    """Probability that a lookup hits an ideal cache of the ``capacity_rows`` most probable rows.

    Table t receives a share ``weights[t]`` of the lookups; within it rank r has probability
    r**-s / H(N_t, s). The cache holds every row whose probability reaches a threshold p, found
    by bisection on log p so that the rows held fit the capacity.
    """
    total_w = sum(weights)
    if capacity_rows <= 0 or total_w <= 0:
        return 0.0
    if capacity_rows >= sum(table_rows):
        return 1.0
    if exponent == 0:
        # Every row of a table is equally likely: fill with the densest tables first.
        hit, room = 0.0, capacity_rows
        for rows, w in sorted(zip(table_rows, weights), key=lambda x: -x[1] / x[0]):
            take = min(rows, room)
            hit += w * take / rows
            room -= take
        return hit / total_w
    norm = [harmonic(n, exponent) for n in table_rows]

    def held(log_p: float) -> list[int]:
        # rows of table t with w_t r**-s / H_t >= p  <=>  r <= (w_t / (H_t p)) ** (1 / s)
        out = []
        for n, w, h in zip(table_rows, weights, norm):
            if w <= 0:
                out.append(0)
                continue
            log_r = (math.log(w / h) - log_p) / exponent
            out.append(0 if log_r < 0 else min(n, int(math.exp(min(log_r, 60.0)) + 1e-9)))
        return out

    lo, hi = -200.0, 1.0  # log p: at hi nothing is held, at lo everything
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(held(mid)) > capacity_rows:
            lo = mid
        else:
            hi = mid
    ks = held(hi)
    return sum(w * harmonic(k, exponent) / h for k, w, h in zip(ks, weights, norm)) / total_w


def dlrm_batch_time(model: DlrmModel, batch: int, cpu: CpuParams = HARPV2_XEON, *,
                    exponent: float = 0.0, lookups: int | None = None,
                    min_bag: int | None = None) -> CpuTime:
    """Modelled CPU time of one batch of ``model`` (``exponent`` 0 = uniform indices)."""
    if batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch}")
    if not (math.isfinite(exponent) and exponent >= 0):
        raise ValueError(f"Zipf exponent must be a finite number >= 0, not {exponent}")
    eb = cpu.element_bytes
    ns = 1e-9
    overhead = cpu.op_overhead_us * 1e-6
    llc_bytes = cpu.llc_mib * (1 << 20)

    # MLP weights: resident in the LLC when they all fit there, else streamed from DRAM.
    layers = model.bottom_layers + model.top_layers
    weight_bytes = sum(i * o for i, o in layers) * eb
    weights_in_llc = weight_bytes <= llc_bytes
    weight_bw = (cpu.llc_bandwidth_gbs if weights_in_llc else cpu.dram_bandwidth_gbs) * 1e9
    flops_rate = cpu.peak_flops * cpu.gemm_efficiency

    def layer_time(i: int, o: int) -> float:
        return max(2 * batch * i * o / flops_rate, i * o * eb / weight_bw) + overhead

    bottom = sum(layer_time(i, o) for i, o in model.bottom_layers)
    top = sum(layer_time(i, o) for i, o in model.top_layers)

    # Embedding gathers.
    bag = mean_bag(model, lookups, min_bag)
    row_lines = lines_per_row(model.dim * eb, cpu.line_bytes)
    lookups_per_batch = batch * bag * model.tables
    lines = lookups_per_batch * row_lines
    room = max(0.0, llc_bytes - (weight_bytes if weights_in_llc else 0))
    capacity_rows = room / (row_lines * cpu.line_bytes)
    hit = llc_hit_rate(model.table_rows, (1.0,) * model.tables, capacity_rows, exponent)
    hit_lines, miss_lines = lines * hit, lines * (1 - hit)
    cores = min(cpu.cores, batch * model.tables)  # bags are the unit of work
    t_latency = (miss_lines * cpu.dram_latency_ns + hit_lines * cpu.llc_latency_ns) * ns / (
        cores * cpu.misses_per_core)
    # Summed, not overlapped: hits and misses fill through the same per-core fill buffers and
    # ring, and a sum keeps more hits (more skew) never slower when the LLC outpaces DRAM.
    t_bandwidth = (miss_lines * cpu.line_bytes / (cpu.dram_bandwidth_gbs * 1e9)
                   + hit_lines * cpu.line_bytes / (cpu.llc_bandwidth_gbs * 1e9))
    adds_per_s = cores * cpu.clock_ghz * 1e9 * cpu.simd_fp32_lanes * cpu.fma_per_cycle
    t_compute = lookups_per_batch * model.dim / adds_per_s
    terms = {"latency": t_latency, "bandwidth": t_bandwidth, "compute": t_compute}
    bound = max(terms, key=terms.__getitem__)
    embedding = terms[bound] + overhead * model.tables

    if model.interaction == "concat":
        interaction = batch * model.interaction_width * eb / (cpu.llc_bandwidth_gbs * 1e9) + overhead
    else:
        f = model.tables + 1  # the full F x F Gram matrix, as a batched GEMM computes it
        interaction = 2 * batch * f * f * model.dim / flops_rate + overhead

    total = embedding + bottom + interaction + top
    return CpuTime(
        batch=batch, embedding_s=embedding, bottom_mlp_s=bottom, interaction_s=interaction,
        top_mlp_s=top, llc_hit_rate=hit, embedding_lines=lines, embedding_bound=bound,
        energy_j=total * cpu.tdp_w)
