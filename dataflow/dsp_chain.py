"""Compiler of the ``dsp_chain`` engine: (hardware, workload) -> Program.

The Program is what the simulator times and what the RTL executes (docs/dsp_chain.md). Each
linear layer becomes, per chunk of tokens that fits an activation bank and an output bank, one
``LDA`` of the chunk's activations and one ``MM`` per tile of ``chains`` output rows. The first
``LDA`` of a layer carries ``sync`` (its input depends on earlier layers' stored outputs); the
others prefetch into the second activation bank.

Two modes: ``with_data=True`` builds the memory image (random seeded INT8 activations and
INT4/INT8 weights pruned N:M by magnitude) and the golden outputs; ``with_data=False`` builds
only the instruction list, which is all the simulator needs (fast enough for whole LLMs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from sparsim.simulator.results import shared_metrics
from sparsim.engine import Engine, Metric, lazy

from . import dsp_chain_isa as isa
from . import golden, sparsity
from .config import (
    ConfigError, DesignPoint, GemmLayer, GemmWorkload, HardwareConfig, LlmWorkload, MemoryConfig, pow2_in,
)
from .workloads import expand_workload

_ALIGN = 64


# --------------------------------------------------------------------------------------------
# Hardware


#: Bytes of one row of each buffer (defined by the packed formats in dataflow/dsp_chain_isa.py).
_ROW_BYTES = {
    "weight_buffer_kib": lambda geo: geo.max_weight_record_bytes,
    "act_buffer_kib": lambda geo: geo.act_row_bytes,
    "out_buffer_kib": lambda geo: geo.out_row_bytes,
}


def _bank_rows(buffer_kib: float, row_bytes: int) -> int:
    """Rows one of the two banks of a ``buffer_kib`` buffer holds."""
    return int(buffer_kib * 1024) // 2 // row_bytes


class DspChainHardware(HardwareConfig):
    """Hardware of the ``dsp_chain`` engine (see docs/dsp_chain.md for each parameter).

    Checks that involve several fields run on the later field, reading the earlier ones, so
    each error names the field to change.
    """

    engine: Literal["dsp_chain"] = "dsp_chain"
    chains: int = Field(gt=0, le=4096, description="parallel chains P")
    chain_len: int = Field(gt=0, description="DSP slots per chain L (power of two)")
    mux_m: int = Field(gt=0, description="group size M of N:M and mux inputs (power of two)")
    min_n: int = Field(default=2, gt=0, description="smallest supported N (power of two)")
    lanes: Literal[1, 2] = Field(default=1, description="tokens sharing one weight per DSP48")
    acc_bits: int = Field(default=32, description="accumulator width in bits")
    # At most 128 MiB each: more than any FPGA holds on chip (U280: ~43 MB of BRAM and URAM).
    weight_buffer_kib: float = Field(gt=0, le=1 << 17, description="two weight banks together, KiB")
    act_buffer_kib: float = Field(gt=0, le=1 << 17, description="two activation banks together, KiB")
    out_buffer_kib: float = Field(gt=0, le=1 << 17, description="two output banks together, KiB")
    memory: MemoryConfig

    @field_validator("chain_len")
    @classmethod
    def _chain_len(cls, v: int) -> int:
        return pow2_in(v, lo=2)

    @field_validator("mux_m")
    @classmethod
    def _mux_m(cls, v: int) -> int:
        return pow2_in(v, 2, 16)

    @field_validator("min_n")
    @classmethod
    def _min_n(cls, v: int, info: ValidationInfo) -> int:
        pow2_in(v)
        mux_m = info.data.get("mux_m")
        if mux_m is not None and v > mux_m:
            raise ValueError(f"min_n={v} must not exceed mux_m={mux_m}")
        return v

    @field_validator("weight_buffer_kib", "act_buffer_kib", "out_buffer_kib")
    @classmethod
    def _holds_a_row(cls, v: float, info: ValidationInfo) -> float:
        try:
            geo = isa.Geometry(**{k: info.data[k] for k in ("chains", "chain_len", "mux_m", "lanes", "acc_bits")})
        except KeyError:
            return v  # a field it depends on is already invalid; that error is reported
        if _bank_rows(v, _ROW_BYTES[info.field_name](geo)) < 1:
            raise ValueError("too small to hold one row of its buffer")
        return v

    # Derived sizes -------------------------------------------------------------------------
    @property
    def dsps(self) -> int:
        return self.chains * self.chain_len

    @property
    def macs_per_cycle(self) -> int:
        return self.dsps * self.lanes

    @property
    def geometry(self) -> isa.Geometry:
        """Record and row sizes of the packed formats (defined in dataflow/dsp_chain_isa.py)."""
        return isa.Geometry(
            chains=self.chains,
            chain_len=self.chain_len,
            mux_m=self.mux_m,
            lanes=self.lanes,
            acc_bits=self.acc_bits,
        )

    @property
    def index_bits(self) -> int:
        return self.geometry.index_bits

    @property
    def act_ports(self) -> int:
        return max(1, self.chain_len // self.min_n)

    @property
    def max_weight_record_bytes(self) -> int:
        return self.geometry.max_weight_record_bytes

    @property
    def weight_bank_depth(self) -> int:
        """Weight records (steps) one bank holds."""
        return _bank_rows(self.weight_buffer_kib, self.geometry.max_weight_record_bytes)

    @property
    def act_depth(self) -> int:
        """Activation rows (lanes × M bytes each) one activation bank holds."""
        return _bank_rows(self.act_buffer_kib, self.geometry.act_row_bytes)

    @property
    def out_bank_depth(self) -> int:
        """Output rows (P × lanes accumulators each) one output bank holds."""
        return _bank_rows(self.out_buffer_kib, self.geometry.out_row_bytes)


#: Hardware presets of the engine (``hardware: {preset: NAME}``). Numbers for real platforms
#: come from ../shared/REFERENCE.md; ``tiny`` builds and simulates under Verilator in seconds.
PRESETS: dict[str, dict] = {
    # U280 HBM2 at the FlightLLM clock: 460 GB/s / 225 MHz ≈ 2,044 bytes per cycle, i.e. 32
    # pseudo-channels × 64 bytes per cycle (2,048 B/cycle ≈ 461 GB/s).
    "u280": {
        "device": "u280",
        "clock_mhz": 225.0,
        # 160 chains × 16 slots: the widest chain array whose double-buffered weight banks
        # (P·L·12 bits wide) fit the U280's 960 URAMs (see simulator/resources.py).
        "chains": 160,
        "chain_len": 16,
        "mux_m": 16,
        "min_n": 2,
        "lanes": 2,
        "acc_bits": 32,
        "weight_buffer_kib": 7680,
        "act_buffer_kib": 256,
        "out_buffer_kib": 128,
        "memory": {"channels": 32, "bytes_per_cycle": 64, "latency_cycles": 64},
    },
    "tiny": {
        "device": None,
        "clock_mhz": 100.0,
        "chains": 2,
        "chain_len": 4,
        "mux_m": 8,
        "min_n": 2,
        "lanes": 1,
        "acc_bits": 32,
        "weight_buffer_kib": 1,
        "act_buffer_kib": 1,
        "out_buffer_kib": 0.5,
        "memory": {"channels": 2, "bytes_per_cycle": 4, "latency_cycles": 6},
    },
}




@dataclass(frozen=True)
class LayerPlan:
    """How one layer maps onto the hardware."""

    name: str
    rows: int
    k: int
    tokens: int
    n: int  # kept per group as the hardware sees it (N = M when dense)
    dense: bool
    weight_bits: int
    groups: int  # ceil(K / M)
    gpad: int  # groups padded so that a row's kept weights fill whole steps
    steps: int  # weight records per row tile
    row_tiles: int
    chunk_tokens: int  # tokens per LDA chunk
    repeat: int

    @property
    def chunks(self) -> int:
        return -(-self.tokens // self.chunk_tokens)

    def chunk_sizes(self) -> list[int]:
        sizes = [self.chunk_tokens] * (self.tokens // self.chunk_tokens)
        if self.tokens % self.chunk_tokens:
            sizes.append(self.tokens % self.chunk_tokens)
        return sizes

    @property
    def useful_macs(self) -> int:
        """MACs on kept weights (what a sparse engine must do), per instance."""
        return self.tokens * self.rows * self.groups * self.n


def plan_layer(hw: DspChainHardware, layer: GemmLayer, path: str) -> LayerPlan:
    """Check that ``layer`` fits ``hw`` and decide its tiling; errors name ``path``."""
    nm = layer.sparsity
    m = hw.mux_m
    if nm.dense:
        n, dense = m, True
    else:
        if nm.m != m:
            raise ConfigError(
                f"{path}.sparsity", f"N:M {nm} needs mux_m={nm.m}, but hardware.mux_m is {m}"
            )
        n, dense = nm.n, False
        if n & (n - 1):
            raise ConfigError(f"{path}.sparsity", f"N must be a power of two for dsp_chain, not {n}")
        if n < hw.min_n:
            raise ConfigError(
                f"{path}.sparsity", f"N={n} is below hardware.min_n={hw.min_n}"
            )
    L = hw.chain_len
    groups = -(-layer.k // m)
    if n <= L:
        per_step = L // n
        gpad = -(-groups // per_step) * per_step
    else:
        gpad = groups
    steps = gpad * n // L
    if steps > hw.weight_bank_depth:
        raise ConfigError(
            f"{path}.k",
            f"K={layer.k} at {n}:{m} needs {steps} weight records per row tile, but a weight bank "
            f"holds {hw.weight_bank_depth} (raise hardware.weight_buffer_kib)",
        )
    if gpad > hw.act_depth:
        raise ConfigError(
            f"{path}.k",
            f"K={layer.k} needs {gpad} activation rows per token group, but an activation "
            f"bank holds {hw.act_depth} (raise hardware.act_buffer_kib)",
        )
    if steps > isa.field_max("steps") or gpad > isa.field_max("gpad"):
        raise ConfigError(
            f"{path}.k",
            f"K={layer.k} needs {steps} steps and {gpad} activation rows per token group, more "
            f"than the {isa.field_width('steps')}-bit steps and {isa.field_width('gpad')}-bit "
            "gpad fields encode",
        )
    # A chunk's LDA counts its rows in the steps field, and its MMs count token groups in the
    # tgroups field.
    tgroups_max = min(
        hw.act_depth // gpad,
        hw.out_bank_depth,
        isa.field_max("tgroups"),
        isa.field_max("steps") // gpad,
    )
    chunk_tokens = min(layer.tokens, tgroups_max * hw.lanes)
    return LayerPlan(
        name=layer.name,
        rows=layer.rows,
        k=layer.k,
        tokens=layer.tokens,
        n=n,
        dense=dense,
        weight_bits=layer.weight_bits,
        groups=groups,
        gpad=gpad,
        steps=steps,
        row_tiles=-(-layer.rows // hw.chains),
        chunk_tokens=chunk_tokens,
        repeat=layer.repeat,
    )


@dataclass
class OutputBlock:
    """Where one MM wrote its output rows."""

    layer: int
    token0: int
    tile: int
    tgroups: int
    addr: int


@dataclass
class LayerData:
    x: np.ndarray  # [T, K] int8
    w: np.ndarray  # [R, K] pruned weights (int8 values in the weight range)
    expected: np.ndarray  # [T, R] golden outputs (int64, wrapped)


@dataclass
class Program:
    """The shared dataflow schedule of one design point."""

    hw: DspChainHardware
    instrs: np.ndarray  # isa.INSTR_DTYPE, ends with END
    plans: list[LayerPlan]
    operators: list[str]
    memory: np.ndarray | None = None  # uint8 image (with_data only)
    layers: list[LayerData] = field(default_factory=list)
    outputs: list[OutputBlock] = field(default_factory=list)

    @property
    def geometry(self) -> isa.Geometry:
        return self.hw.geometry

    def words(self) -> list[int]:
        return isa.encode_program(self.instrs)

    @property
    def useful_macs(self) -> int:
        return sum(p.useful_macs * p.repeat for p in self.plans)

    def expected_outputs(self) -> list[np.ndarray]:
        return [layer.expected for layer in self.layers]

    def read_outputs(self, memory: np.ndarray | bytes | bytearray) -> list[np.ndarray]:
        """Decode every layer's Y[T, R] from a memory image after execution."""
        mem = np.frombuffer(bytes(memory), dtype=np.uint8) if not isinstance(memory, np.ndarray) else memory
        geo = self.geometry
        ys = [np.zeros((p.tokens, p.rows), dtype=np.int64) for p in self.plans]
        P, lanes = self.hw.chains, self.hw.lanes
        for blk in self.outputs:
            nbytes = blk.tgroups * geo.out_row_bytes
            rows = mem[blk.addr : blk.addr + nbytes].reshape(blk.tgroups, geo.out_row_bytes)
            vals = isa.unpack_out_rows(geo, rows)  # [tg, P, lanes]
            plan = self.plans[blk.layer]
            tok = blk.token0 + np.arange(blk.tgroups * lanes).reshape(blk.tgroups, lanes)
            row = blk.tile * P + np.arange(P)
            vals = vals.transpose(0, 2, 1)  # [tg, lanes, P]
            tmask = tok < plan.tokens
            rmask = row < plan.rows
            y = ys[blk.layer]
            for tg in range(blk.tgroups):
                for lane in range(lanes):
                    if tmask[tg, lane]:
                        y[tok[tg, lane], row[rmask]] = vals[tg, lane, rmask]
        return ys


def _emit_layer(hw: DspChainHardware, plan: LayerPlan, operator: int) -> np.ndarray:
    """Instructions of one layer instance (addresses filled in later for with_data)."""
    per_chunk = 1 + plan.row_tiles
    out = np.zeros(plan.chunks * per_chunk, dtype=isa.INSTR_DTYPE)
    out["operator"] = operator
    n_log2 = plan.n.bit_length() - 1
    for c, tokens in enumerate(plan.chunk_sizes()):
        tg = -(-tokens // hw.lanes)
        base = c * per_chunk
        out[base]["op"] = isa.OP_LDA
        out[base]["steps"] = tg * plan.gpad
        # A layer's input is the previous layer's output: its first load waits until every
        # earlier result is stored. Later chunks are independent tokens of the same layer and
        # load into the other activation bank while the chains still work on this one.
        out[base]["sync"] = 1 if c == 0 else 0
        mm = out[base + 1 : base + per_chunk]
        mm["op"] = isa.OP_MM
        mm["int4"] = 1 if plan.weight_bits == 4 else 0
        mm["dense"] = 1 if plan.dense else 0
        mm["n_log2"] = n_log2
        mm["steps"] = plan.steps
        mm["tgroups"] = tg
        mm["gpad"] = plan.gpad
    return out


#: Largest program and data image compile builds (bytes): the arrays are counted from the
#: plans before anything is allocated, so a huge workload is refused with its size instead of
#: exhausting memory (and a program this long would take minutes to simulate).
MAX_PROGRAM_BYTES = 1 << 30


def _check_size(plans: list[LayerPlan], with_data: bool) -> None:
    instrs = 1 + sum(p.repeat * p.chunks * (1 + p.row_tiles) for p in plans)
    need = instrs * isa.INSTR_DTYPE.itemsize
    what = f"{instrs:,} instructions"
    if with_data:  # weights and activations (int8), and the golden outputs (int64)
        need += sum(p.rows * p.k + p.tokens * p.k + 8 * p.tokens * p.rows for p in plans)
        what += " and their data"
    if need > MAX_PROGRAM_BYTES:
        raise ConfigError("workload", f"{what} would take about {need / 2**30:,.1f} GiB, above the "
                                      f"{MAX_PROGRAM_BYTES >> 30} GiB limit; use fewer or smaller layers")


def compile_layers(
    hw: DspChainHardware,
    layers: list[GemmLayer],
    *,
    with_data: bool = False,
    seed: int = 0,
    path: str = "workload.layers[{i}]",
) -> Program:
    """Compile ``layers``; ``path`` formats each layer's key path in errors ({i}, {name})."""
    plans = [
        plan_layer(hw, layer, path.format(i=i, name=layer.name)) for i, layer in enumerate(layers)
    ]
    _check_size(plans, with_data)
    operators = list(dict.fromkeys(p.name for p in plans))
    op_index = {name: i for i, name in enumerate(operators)}
    blocks = []
    for plan in plans:
        block = _emit_layer(hw, plan, op_index[plan.name])
        blocks.extend([block] * (plan.repeat if not with_data else 1))
    end = np.zeros(1, dtype=isa.INSTR_DTYPE)
    end["op"] = isa.OP_END
    end["operator"] = -1
    instrs = np.concatenate(blocks + [end])
    program = Program(hw=hw, instrs=instrs, plans=plans, operators=operators)
    if with_data:
        if any(p.repeat != 1 for p in plans):
            raise ConfigError("workload", "repeat must be 1 when building data (RTL runs)")
        _fill_data(program, seed)
    return program


def compile_design_point(point: DesignPoint, *, with_data: bool = False) -> Program:
    layers = expand_workload(point.workload)
    path = "workload.layers[{i}]" if point.workload.kind == "gemm" else "workload[operator {name}]"
    return compile_layers(point.hardware, layers, with_data=with_data, seed=point.seed, path=path)


# --------------------------------------------------------------------------------------------
# Data: memory image and golden outputs


def _align(x: int) -> int:
    return -(-x // _ALIGN) * _ALIGN


def _make_layer_data(plan: LayerPlan, m: int, rng: np.random.Generator, acc_bits: int) -> LayerData:
    lo, hi = golden.int_range(8)
    x = rng.integers(lo, hi + 1, size=(plan.tokens, plan.k), dtype=np.int64).astype(np.int8)
    wlo, whi = golden.int_range(plan.weight_bits)
    w = rng.integers(wlo, whi + 1, size=(plan.rows, plan.k), dtype=np.int64).astype(np.int8)
    if not plan.dense:
        kp = plan.groups * m
        wp = np.zeros((plan.rows, kp), dtype=np.int8)
        wp[:, : plan.k] = w
        wp = sparsity.prune_nm(wp, plan.n, m, axis=1)
        w = wp[:, : plan.k]
    return LayerData(x=x, w=w, expected=golden.linear(x, w, acc_bits))


def _weight_records(hw: DspChainHardware, plan: LayerPlan, w: np.ndarray) -> np.ndarray:
    """All weight records of a layer: uint8 [row_tiles, steps, rec_bytes]."""
    P, L, m = hw.chains, hw.chain_len, hw.mux_m
    rows_p = plan.row_tiles * P
    wp = np.zeros((rows_p, plan.gpad * m), dtype=np.int8)
    wp[: plan.rows, : plan.k] = w
    if plan.dense:
        kept = wp.astype(np.int64)
        idx = None
    else:
        values, indices = sparsity.compress_nm(wp, plan.n, m)
        kept = values.reshape(rows_p, -1).astype(np.int64)
        idx = indices.reshape(rows_p, -1).astype(np.int64)
    geo = hw.geometry
    recs = []
    for t in range(plan.row_tiles):
        kt = kept[t * P : (t + 1) * P].reshape(P, plan.steps, L).transpose(1, 0, 2)
        it = None
        if idx is not None:
            it = idx[t * P : (t + 1) * P].reshape(P, plan.steps, L).transpose(1, 0, 2)
        recs.append(isa.pack_weight_records(geo, kt, it, plan.weight_bits))
    return np.stack(recs)


def _act_rows(hw: DspChainHardware, plan: LayerPlan, x: np.ndarray, t0: int, tokens: int) -> np.ndarray:
    """Activation rows of one chunk: uint8 [tg*gpad, lanes*M]."""
    lanes, m = hw.lanes, hw.mux_m
    tg = -(-tokens // lanes)
    xp = np.zeros((tg * lanes, plan.gpad * m), dtype=np.int8)
    xp[:tokens, : plan.k] = x[t0 : t0 + tokens]
    rows = xp.reshape(tg, lanes, plan.gpad, m).transpose(0, 2, 1, 3).reshape(tg * plan.gpad, lanes * m)
    return rows.view(np.uint8)


def _fill_data(program: Program, seed: int) -> None:
    hw = program.hw
    geo = hw.geometry
    rng = np.random.default_rng(seed)
    chunks: list[tuple[int, np.ndarray]] = []  # (address, bytes)
    cursor = 0

    def place(data: np.ndarray) -> int:
        nonlocal cursor
        addr = cursor
        chunks.append((addr, data.reshape(-1)))
        cursor = _align(addr + data.size)
        return addr

    instrs = program.instrs
    pos = 0
    for li, plan in enumerate(program.plans):
        data = _make_layer_data(plan, hw.mux_m, rng, hw.acc_bits)
        program.layers.append(data)
        recs = _weight_records(hw, plan, data.w)
        w_addr = place(recs)
        rec_bytes = recs.shape[2]
        t0 = 0
        for c, tokens in enumerate(plan.chunk_sizes()):
            tg = -(-tokens // hw.lanes)
            acts = _act_rows(hw, plan, data.x, t0, tokens)
            instrs[pos]["addr_a"] = place(acts)
            pos += 1
            for t in range(plan.row_tiles):
                out_bytes = tg * geo.out_row_bytes
                out_addr = place(np.zeros(out_bytes, dtype=np.uint8))
                instrs[pos]["addr_a"] = w_addr + t * plan.steps * rec_bytes
                instrs[pos]["addr_b"] = out_addr
                program.outputs.append(OutputBlock(li, t0, t, tg, out_addr))
                pos += 1
            t0 += tokens
    if cursor > isa.field_max("addr_a") + 1:
        raise ConfigError(
            "workload",
            f"memory image of {cursor} bytes exceeds the {isa.field_width('addr_a')}-bit address space",
        )
    mem = np.zeros(max(cursor, _ALIGN), dtype=np.uint8)
    for addr, data in chunks:
        mem[addr : addr + data.size] = data
    program.memory = mem


# --------------------------------------------------------------------------------------------
# Registration (the pyproject.toml entry point ``dsp_chain = "sparsim.dataflow.dsp_chain:ENGINE"``)


def _describe(hw: DspChainHardware) -> str:
    return (f"dsp_chain P={hw.chains} L={hw.chain_len} M={hw.mux_m} lanes={hw.lanes} "
            f"@ {hw.clock_mhz:g} MHz, {hw.memory.bandwidth_bytes_per_cycle} B/cycle memory")


def _resources(hw: DspChainHardware) -> dict[str, float]:
    from sparsim.simulator.resources import estimate

    return estimate(hw).to_dict()


def _program_cycles(program: Program) -> int:
    from sparsim.simulator.dsp_chain import run

    return run(program).cycles


ENGINE = Engine(
    name="dsp_chain",
    hardware=DspChainHardware,
    workloads=(GemmWorkload, LlmWorkload),
    presets=PRESETS,
    metrics=shared_metrics("token") + (
        Metric("issue_cycles", "cycles", "min", "cycles the chains issue MACs"),
    ),
    simulate=lazy("sparsim.simulator.dsp_chain:simulate"),
    resources=_resources,
    describe=_describe,
    headline=("cycles", "latency_ms", "tokens_per_s", "mac_utilisation", "bandwidth_gbps",
              "bandwidth_utilisation", "bytes_read", "bytes_written", "dsp", "energy_j"),
    breakdown="operator",
    rtl_top=lazy("sparsim.rtl.dsp_chain:DspChainAccelerator"),
    rtl_signature=lazy("sparsim.rtl.dsp_chain:top_signature"),
    compile=compile_design_point,
    program_cycles=_program_cycles,
    bench_kinds=("gemm",),
)
