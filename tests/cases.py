"""The case table: one list of design points and Programs that every level runs.

tests/test_case_table.py runs each :class:`Case` against the functional model, the cycle
simulator, Amaranth's simulator and the Verilator build (one simulator process per hardware
configuration, on a build shared by every configuration with the same Verilog). Programs stay at
a few hundred cycles: Amaranth's simulator (700-2,500 cycles/s measured here) takes 0.2-3 s per
case. Hand-timed cases carry their cycle count, derived by hand in the case's ``derivation``;
they depend on ``PIPE = L + 2`` (sparsim.dataflow.dsp_chain_isa.pipeline_cycles) and must be
re-derived if it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from sparsim import engine as engines
from sparsim.dataflow.config import DesignPoint, design_point_from_dict
from sparsim.dataflow.dsp_chain import Program, compile_design_point


@dataclass(frozen=True)
class Case:
    """One design point with its data seed (inside ``point``) and what is known about it."""

    id: str
    point: DesignPoint
    hand_cycles: int | None = None
    derivation: str = ""

    def program(self) -> Program:
        """A fresh Program with its memory image (callers may break it), compiled by the
        point's engine."""
        return engines.of(self.point.hardware).compile(self.point, with_data=True)


def _tiny(layers: list[dict], seed: int = 0, **hw) -> DesignPoint:
    return design_point_from_dict(
        {"hardware": {"preset": "tiny", **hw}, "workload": {"kind": "gemm", "layers": layers}, "seed": seed}
    )


_HAND_GEMV = Case(
    id="hand-gemv",
    point=_tiny([{"rows": 2, "k": 32, "tokens": 1, "sparsity": "8:8", "weight_bits": 8}]),
    hand_cycles=46,
    derivation="""P=2, L=4, M=8, BW = 2 channels x 4 B = 8 B/cycle, latency 6,
    PIPE = min(L, 8) + 6 = 10; one dense INT8 GEMV of 2x32: one LDA of 4 rows of 8 B, one MM of
    8 records of 2*4*8/8 = 8 B.
    LDA: taken 0, request 1, t0 = 1+6 = 7, rows 7..10 (one 8 B row per cycle); loader free 11.
    MM: taken 11, request 12, t0 = 18, records 18..25; compute 26..33 (8 steps), done
    33 + PIPE = 43. Store: one 8 B row offered and accepted in 44. END completes in
    max(11+1, 43+1, 44+1) = 45, so the Program takes 46 cycles.""",
)

_HAND_DOUBLE_BUFFER = Case(
    id="hand-double-buffer",
    point=_tiny(
        [
            {"name": "a", "rows": 2, "k": 32, "tokens": 2, "sparsity": "8:8", "weight_bits": 8},
            {"name": "b", "rows": 2, "k": 32, "tokens": 1, "sparsity": "8:8", "weight_bits": 8},
        ],
        act_buffer_kib=0.0625,
    ),
    hand_cycles=109,
    derivation="""Same hardware as hand-gemv (PIPE = 10) but activation banks of 4 rows (one
    token each), so layer a runs as two chunks. Records and rows are 8 B: one per cycle.
    LDA0 (sync, bank 0): request 1, rows 7..10, loader free 11.
    MM0: request 12, records 18..25, compute 26..33, done 43; store 44.
    LDA1 (bank 1): its bank has no readers yet: request 14 while MM0's records stream; its rows
      queue behind them: 26..29. (Single-buffered it would wait for MM0 to finish: request 44.)
    MM1: taken 30, request 31, records 37..44, compute 45..52 (its last record arrives one
      cycle after MM0's done), done 62; store 63.
    LDA2 (sync, bank 0): waits for every store: request 64, rows 70..73.
    MM2: taken 74, request 75, records 81..88, compute 89..96, done 106; store 107. END in 108:
    109 cycles.""",
)


def _example(name: str) -> DesignPoint:
    path = Path(__file__).resolve().parent.parent / "examples" / name
    return design_point_from_dict(yaml.safe_load(path.read_text()))


_EXAMPLE_TINY_GEMM = Case(id="example-tiny-gemm", point=_example("tiny_gemm.yaml"))


# ------------------------------------------------------------------------------------------
# Random design points: a spread over the hardware parameters

#: N:M of each design point's sparse layers (its M is the hardware's mux_m); "16:16" is dense.
_NM_PER_POINT = ("2:4", "2:8", "4:16", "8:16", "16:16", "2:8", "4:16", "2:4")
_CHAIN_LEN_PER_POINT = (2, 4, 8, 4, 2, 8, 4, 2)
DESIGN_SEEDS = tuple(range(len(_NM_PER_POINT)))
DATA_SEEDS = (1, 2, 3)
#: (design point, data seed, stall seed): runs with random stalls on every stream (Verilator).
STALL_RUNS = tuple((dp, data, stall) for dp in DESIGN_SEEDS for data, stall in ((4, 101), (5, 102)))

# Small buffers keep the Verilated memories at tens of rows.
_WEIGHT_BANK_ROWS = 64
_ACT_ROWS = 48


def random_design_point(dp_seed: int, data_seed: int) -> DesignPoint:
    """Design point ``dp_seed`` (hardware and layer shapes) with data from ``data_seed``.

    Every point has a GEMV layer, a GEMM layer needing several token chunks and row tiles, and
    a small dense layer, all with K not a multiple of M; lanes, weight widths, chains, chain
    length, accumulator width, memory bandwidth and latency vary between points.
    """
    rng = np.random.default_rng(10_000 + dp_seed)
    n, m = (int(v) for v in _NM_PER_POINT[dp_seed].split(":"))
    L = _CHAIN_LEN_PER_POINT[dp_seed]
    P = int(rng.integers(1, 5))
    lanes = 1 + dp_seed % 2
    acc_bits = int(rng.choice([16, 24, 32, 48]))
    min_n = int(rng.choice([v for v in (1, 2, 4, 8, 16) if v <= n]))
    out_rows = int(rng.integers(2, 5))
    ibits = m.bit_length() - 1
    max_rec = -(-P * L * (8 + ibits) // 8)
    hardware = {
        "preset": "tiny",
        "chains": P,
        "chain_len": L,
        "mux_m": m,
        "min_n": min_n,
        "lanes": lanes,
        "acc_bits": acc_bits,
        "weight_buffer_kib": 2 * _WEIGHT_BANK_ROWS * max_rec / 1024,
        "act_buffer_kib": 2 * _ACT_ROWS * lanes * m / 1024,  # two banks
        "out_buffer_kib": 2 * out_rows * P * lanes * acc_bits // 8 / 1024,
        "memory": {
            "channels": int(rng.integers(1, 3)),
            "bytes_per_cycle": int(rng.choice([2, 4, 8])),
            "latency_cycles": int(rng.integers(1, 9)),
        },
    }

    def k():  # 2 to 6 groups, the last one partial
        return m * int(rng.integers(1, 6)) + int(rng.integers(1, m))

    bits = (4, 8) if dp_seed % 2 else (8, 4)
    layers = [
        {"name": "gemv", "rows": P + int(rng.integers(1, P + 2)), "k": k(), "tokens": 1,
         "sparsity": f"{n}:{m}", "weight_bits": bits[0]},
        {"name": "gemm", "rows": P + int(rng.integers(1, 3 * P + 1)), "k": k(),
         "tokens": 2 * out_rows * lanes + int(rng.integers(1, 2 * lanes + 1)),
         "sparsity": f"{n}:{m}", "weight_bits": bits[1]},
        {"name": "dense", "rows": int(rng.integers(1, 2 * P + 1)), "k": k(),
         "tokens": int(rng.integers(1, 2 * lanes + 2)), "sparsity": f"{m}:{m}",
         "weight_bits": int(rng.choice([4, 8]))},
    ]
    return design_point_from_dict(
        {"hardware": hardware, "workload": {"kind": "gemm", "layers": layers}, "seed": data_seed}
    )


CASES: tuple[Case, ...] = (
    _HAND_GEMV,
    _HAND_DOUBLE_BUFFER,
    _EXAMPLE_TINY_GEMM,
    *(
        Case(id=f"dp{dp}-data{seed}", point=random_design_point(dp, seed))
        for dp in DESIGN_SEEDS
        for seed in DATA_SEEDS
    ),
)

CASES_BY_ID = {case.id: case for case in CASES}


# ------------------------------------------------------------------------------------------
# nm_train: every level (tests/test_case_table.py says which run under Verilator by default)

_NM_HAND = Case(
    id="nm-hand-step",
    point=design_point_from_dict({
        "hardware": {"preset": "tiny", "rows": 2, "cols": 2, "max_m": 1,
                     "memory": {"channels": 1, "bytes_per_cycle": 4, "latency_cycles": 5}},
        "workload": {"kind": "train", "batch": 1, "mode": "dense",
                     "layers": [{"name": "l", "k": 4, "cout": 2, "positions": 2}]},
    }),
    hand_cycles=77,
    derivation="""R = C = 2 (OS), L = 3, MM_PIPE_CYCLES = 5, LOAD_READY_CYCLES = 2, LOAD_REQUEST_CYCLES = 1,
    BW = 4 B/cycle, latency 5; one
    layer, P = 2, K = 4, Cout = 2: forward (P 2, Q 2, K 4) and weight gradient (P = Cout 2,
    Q = K 4, K = P 2); the first layer has no act_grad. Instructions LDB, LDA, MM, LDB, LDA, MM,
    END. A load issued in r has its request taken by memory in r + 1 (t0 = r + 1 + latency).
    i0 LDB fwd (sync): issue 1, request 2, t0 = 7, 2 records of 4 B at 7, 8; weight bank ready
       8 + 2 = 10.
    i1 LDA fwd: issue 3, t0 = max(9, read_free 9) = 9, records 9, 10; input bank ready 12.
    i2 MM: dispatched 5; starts max(0, 6, 12, 10) = 12 (input_stream 12); one fold of
       2R + C + K' - 2 + L = 4 + 2 + 4 - 2 + 3 = 11 cycles, plus the 5 of the bank pipeline:
       done 12 + 11 - 1 + 5 = 27 (stream 4, fill/drain 7, bank_pipe 5).
       Store: 2 records of 8 B from 28: off = 1, 3, last accepted 31.
    i3 LDB wgrad (sync): waits for the store: issue 32, t0 = 38, 4 records of 2 B at
       38..41; ready 43.
    i4 LDA wgrad: issue 34, t0 = max(40, 42) = 42, 2 records of 2 B at 42, 43; ready 45.
    i5 MM: starts 45 (input_stream 45 - 28 = 17); 1 x 2 folds of 4 + 2 + 2 - 2 + 3 = 9: done
       45 + 18 - 1 + 5 = 67 (stream 4, fill/drain 14, bank_pipe 5). Store: 2 records of 16 B
       from 68: off = 3, 7, last 75.
    END: max(38, 68, 76) = 76: 77 cycles; tail 77 - 68 = 9.
    Forward owns 0..27 (28 cycles), weight_grad 28..76 (49).""",
)

_NM_HAND_DOUBLE_BUFFER = Case(
    id="nm-hand-double-buffer",
    point=design_point_from_dict({
        "hardware": {"preset": "tiny", "rows": 2, "cols": 2, "max_m": 1, "input_buffer_kib": 8 / 1024,
                     "weight_buffer_kib": 8 / 1024, "output_buffer_kib": 32 / 1024,
                     "memory": {"channels": 1, "bytes_per_cycle": 4, "latency_cycles": 2}},
        "workload": {"kind": "train", "batch": 1, "mode": "dense",
                     "layers": [{"name": "l", "k": 2, "cout": 2, "positions": 6}]},
    }),
    hand_cycles=110,
    derivation="""R = C = 2 (OS), L = 3, MM_PIPE_CYCLES = 5, LOAD_READY_CYCLES = 2, LOAD_REQUEST_CYCLES = 1,
    BW = 4 B/cycle, latency 2; banks
    of 4 B (input, weight) and 16 B (output). Forward P = 6, Q = 2, K = 2: three 2-row tiles
    under one weight tile (LDB, then LDA + MM per tile); weight gradient P = 2, Q = 2, K = 6 in
    three chunks of 2 (LDA, LDB, MM per chunk; acc from the second, store on the third). Every
    fold 2R + C + K' - 2 + L = 9 cycles (K' = 2), stream 2, fill/drain 7; every MM job one fold
    plus the bank pipeline: 14 cycles. A load issued in r: t0 = max(r + 1 + 2, read_free).
    i0 LDB (sync): issue 1, records (2 B) 4, 5; weight bank ready 5 + 2 = 7.
    i1 LDA0: issue 3, records 6, 7; ready 9.
    i2 MM0: dispatched 5, starts 9 (input_stream 9), done 22; store of 2 x 8 B from 23, last 26.
    i3 LDA1 (bank 1, no readers yet): issue 7, records 10, 11; ready 13.
    i4 MM1: starts 23, done 36; store from 37 (write port free 27), last 40.
    i5 LDA2 (bank 0): waits for its reader MM0 (done 22): issue 23, records 26, 27; ready 29.
    i6 MM2: starts 37 (its output bank 0 was drained at 26), done 50; store 51..54.
    i7 LDA (wgrad, sync): waits for the last store: issue 55, records 58, 59; ready 61.
    i8 LDB: issue 57 (its bank's last reader was before i0: none), records 60, 61; ready 63.
    i9 MM: dispatched 59, starts 63 (weight_stream 63 - 51 = 12), done 76.
    i10 LDA (bank 0; its reader MM2 done 50): issue 61, records 64, 65. i11 LDB: issue 63,
    records 66, 67; ready 69.
    i12 MM (acc): starts 77, done 90.
    i13 LDA: waits for i9 (done 76): issue 77, records 80, 81; ready 83. i14 LDB: issue 79,
    records 82, 83; ready 85. i15 MM (acc, store): starts 91, done 104; store from 105, last 108.
    END: max(83, 105, 109) = 109: 110 cycles; tail 110 - 105 = 5. Forward 0..50 (51 cycles: 9
    waiting + 3 jobs), weight_grad 51..109 (59: 12 waiting + 3 jobs + 5 tail).""",
)

_NM_EXAMPLE_TINY = Case(id="nm-example-tiny", point=_example("nm_train_tiny.yaml"))
#: The 8 x 8 point small enough for an ECP5-85 (docs/nm_train.md, "RTL (measured)").
_NM_EXAMPLE_MID_ECP5 = Case(id="nm-example-mid-ecp5", point=_example("nm_train_mid_ecp5.yaml"))

#: N:M of each nm_train design point's sparse layer ("1:1" dense), issue 9's list.
_NM_TRAIN_SPARSITY = ("2:4", "1:4", "2:8", "4:8", "4:16", "1:1", "2:8", "4:16")
_NM_TRAIN_MODES = ("bdwp", "bdwp", "sr_ste", "bdwp", "bdwp", "dense", "bdwp", "sr_ste")
NM_DESIGN_SEEDS = tuple(range(len(_NM_TRAIN_SPARSITY)))


def nm_random_design_point(dp_seed: int, data_seed: int) -> DesignPoint:
    """nm_train design point ``dp_seed`` with data from ``data_seed``: a three-layer step whose
    middle layer is sparse (every pass runs: forward, act_grad of layers 2 and 3, weight_grad of
    all), with R, C, dataflow, max_m, acc_bits, memory and the pre-generation switch varying,
    K, Cout and P not multiples of R, C or M, and banks small enough that the weight gradients
    run in K chunks."""
    rng = np.random.default_rng(20_000 + dp_seed)
    nm = _NM_TRAIN_SPARSITY[dp_seed]
    m = int(nm.split(":")[1])
    rows, cols = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    max_m = max(m, int(rng.choice([1, 4, 8])))
    acc = int(rng.choice([16, 24, 32]))
    hardware = {
        "preset": "tiny", "rows": rows, "cols": cols, "dataflow": ("os", "ws")[dp_seed % 2],
        "max_m": max_m, "acc_bits": acc,
        "input_buffer_kib": 2 * max(rows * max_m, 48) / 1024,
        # a pre-generation slab: every Cout (at most 12, padded to 16) x M dense bytes
        "weight_buffer_kib": 2 * 256 / 1024,
        "output_buffer_kib": 2 * max(rows * cols * acc // 8, 96) / 1024,
        "memory": {"channels": int(rng.integers(1, 3)), "bytes_per_cycle": int(rng.choice([2, 4, 8])),
                   "latency_cycles": int(rng.integers(1, 9))},
    }

    def k():  # 1 to 4 groups, the last one partial
        return m * int(rng.integers(0, 4)) + int(rng.integers(1, m + 1)) if m > 1 else int(rng.integers(3, 40))

    layers = [{"name": f"l{i}", "k": k(), "cout": int(rng.integers(2, 13)), "positions": int(rng.integers(1, 4))}
              for i in range(3)]
    workload = {"kind": "train", "batch": int(rng.integers(1, 4)), "mode": _NM_TRAIN_MODES[dp_seed],
                "sparsity": nm if nm != "1:1" else "2:4", "pregen": ("pre", "inline")[(dp_seed // 2) % 2],
                "layers": layers}
    return design_point_from_dict({"hardware": hardware, "workload": workload, "seed": data_seed})


NM_CASES: tuple[Case, ...] = (
    _NM_HAND,
    _NM_HAND_DOUBLE_BUFFER,
    _NM_EXAMPLE_TINY,
    _NM_EXAMPLE_MID_ECP5,
    *(
        Case(id=f"nm-dp{dp}-data{seed}", point=nm_random_design_point(dp, seed))
        for dp in NM_DESIGN_SEEDS
        for seed in DATA_SEEDS
    ),
)

CASES_BY_ID.update({case.id: case for case in NM_CASES})

#: Cycles of :func:`nm_hand_pregen_program`, derived by hand in its docstring.
NM_HAND_PGS_CYCLES = 64


def nm_hand_pregen_program():
    """A Program of one dense 8 x 4 slab pruned 2:4 along both axes (no GEMM): LDB, PGS axis 0,
    PGS axis 1, END, on R = C = 2, max_m 4, one channel of 4 B/cycle, latency 2. The slab's
    INT8 values are small (-3..3, seeded) so that |w| ties decide kept entries along both axes.

    The weight RAM words hold W = weight_word_entries = 8 entries (4 B beats, max_m 4), so a
    slab row of 4 entries is one read: ceil(4 / 8) = 1 cycle a row.
    i0 LDB (8 records of 4 B): issue 1, request taken 2 (LOAD_REQUEST_CYCLES 1), t0 = 4,
       records 4..11; weight bank ready 11 + LOAD_READY_CYCLES 2 = 13.
    i1 PGS axis 0 (8 records of 3 B: group_bytes(2, 4) = 3): dispatched 3, starts 13
       (weight_stream 13), D = 8 rows x 1 + PREGEN_CYCLES 8 = 16, done 28. Store from 29:
       off(j) = j for 3 B records at 4 B/cycle, last 36.
    i2 PGS axis 1 (4 records of 6 B, k_steps 4: G = 4 / 2 = 2 groups of M = 4 rows):
       dispatched 5, starts 29 (its output bank 1 is free), D = G (M x 1 +
       TRANSPOSE_WRITE_CYCLES 2 + 4 columns) + 8 = 28, done 56. Store from 57: off = 1, 2, 4, 5
       for 6 B records, last 62.
    END: max(7, 57, 63) = 63: 64 cycles (pregen 44, weight_stream 13, tail 7).
    """
    from sparsim.dataflow import nm_train_isa as isa
    from sparsim.dataflow.nm_train import Program

    hw = design_point_from_dict({
        "hardware": {"preset": "tiny", "rows": 2, "cols": 2, "max_m": 4, "input_buffer_kib": 64 / 1024,
                     "weight_buffer_kib": 64 / 1024, "output_buffer_kib": 96 / 1024,
                     "memory": {"channels": 1, "bytes_per_cycle": 4, "latency_cycles": 2}},
        "workload": {"kind": "train", "batch": 1, "layers": [{"name": "slab", "k": 4, "cout": 8}]},
    }).hardware
    ins = np.zeros(4, dtype=isa.INSTR_DTYPE)
    ins["pass_"], ins["layer"] = isa.PREGEN, 0
    for i, (op, axis, n, m_log2, count, width, k_steps, addr) in enumerate((
        (isa.OP_LDB, 0, 1, 0, 8, 4, 4, 0),
        (isa.OP_PGS, 0, 2, 2, 8, 3, 2, 64),
        (isa.OP_PGS, 1, 2, 2, 4, 6, 4, 128),
        (isa.OP_END, 0, 0, 0, 0, 0, 0, 0),
    )):
        ins[i]["op"], ins[i]["axis"], ins[i]["n"], ins[i]["m_log2"] = op, axis, n, m_log2
        ins[i]["count"], ins[i]["width"], ins[i]["k_steps"], ins[i]["addr"] = count, width, k_steps, addr
    memory = np.zeros(192, dtype=np.uint8)
    memory[:32] = np.random.default_rng(9).integers(-3, 4, size=32).astype(np.int8).view(np.uint8)
    return Program(hw=hw, instrs=ins, gemms=[], pregens=[], layers=["slab"], batch=1, memory=memory)


def nm_hand_format_switch_program():
    """Two weight transfers of different formats whose beats follow each other: LDA, LDB of 4
    dense 1:1 records of 8 B (8 entries), MM, LDB (no sync) of 4 compressed 2:4 records of 2
    groups (6 B), MM, END, on R = C = 2, max_m 4, one channel of 4 B/cycle, latency 2. The
    second LDB issues into the other bank while the first transfer is in flight, so its first
    beat comes the cycle after the first transfer's last beat. The first transfer's beats hold
    no bytes (8 B records in 4 B beats), the second's first beat holds one (a 3 B group taken of
    4): the weight beat's held bytes in that beat take the second load's first row, which the
    RTL loads the cycle before (``w_cur_row0_next``), not the first load's. Values seeded."""
    from sparsim.dataflow import nm_train_isa as isa
    from sparsim.dataflow.nm_train import Program

    hw = design_point_from_dict({
        "hardware": {"preset": "tiny", "rows": 2, "cols": 2, "max_m": 4, "acc_bits": 24,
                     "input_buffer_kib": 64 / 1024, "weight_buffer_kib": 64 / 1024,
                     "output_buffer_kib": 96 / 1024,
                     "memory": {"channels": 1, "bytes_per_cycle": 4, "latency_cycles": 2}},
        "workload": {"kind": "train", "batch": 1, "layers": [{"name": "a", "k": 8, "cout": 4}]},
    }).hardware
    gb = isa.group_bytes(2, 4)
    ins = np.zeros(6, dtype=isa.INSTR_DTYPE)
    ins["pass_"], ins["layer"] = isa.FORWARD, 0
    for i, (op, sync, store, n, m_log2, count, width, k_steps, addr) in enumerate((
        (isa.OP_LDA, 1, 0, 0, 0, 2, 8, 0, 0),
        (isa.OP_LDB, 1, 0, 1, 0, 4, 8, 8, 32),
        (isa.OP_MM, 0, 1, 1, 0, 2, 4, 8, 96),
        (isa.OP_LDB, 0, 0, 2, 2, 4, 2 * gb, 4, 64),
        (isa.OP_MM, 0, 1, 2, 2, 2, 4, 4, 128),
        (isa.OP_END, 0, 0, 0, 0, 0, 0, 0, 0),
    )):
        ins[i]["op"], ins[i]["sync"], ins[i]["store"], ins[i]["n"], ins[i]["m_log2"] = op, sync, store, n, m_log2
        ins[i]["count"], ins[i]["width"], ins[i]["k_steps"], ins[i]["addr"] = count, width, k_steps, addr
    rng = np.random.default_rng(11)
    memory = np.zeros(160, dtype=np.uint8)
    memory[:48] = rng.integers(-128, 128, size=48).astype(np.int8).view(np.uint8)
    values = rng.integers(-128, 128, size=(4, 2, 2))
    indices = np.sort([[rng.choice(4, 2, replace=False) for _ in range(2)] for _ in range(4)], axis=-1)
    memory[64 : 64 + 8 * gb] = isa.pack_groups(values, indices, 4).reshape(-1)
    return Program(hw=hw, instrs=ins, gemms=[], pregens=[], layers=["a"], batch=1, memory=memory)


# ------------------------------------------------------------------------------------------
# recsys: functional and simulator levels (rtl/recsys.py adds its levels when it exists)

_RS_HAND_HW = {"engine": "recsys", "clock_mhz": 100, "gather_units": 1, "max_outstanding": 1,
               "line_bytes": 16, "pool_lanes": 16, "cache_kib": 0, "rows": 1, "cols": 1, "mini_batch": 1,
               "index_buffer_kib": 1, "pooled_buffer_kib": 1, "act_buffer_kib": 1, "weight_buffer_kib": 1,
               "out_buffer_kib": 1, "memory": {"channels": 1, "bytes_per_cycle": 16, "latency_cycles": 4}}

_RS_HAND = Case(
    id="rs-hand-one-sample",
    point=design_point_from_dict({
        "hardware": _RS_HAND_HW,
        "workload": {"kind": "dlrm", "dense_features": 1, "bottom": [1], "top": [1], "dim": 16,
                     "table_rows": [4], "lookups": 1, "batch": 1},
    }),
    hand_cycles=103,
    derivation="""G = 1 unit with 1 tag, 16 B lines, 1 channel of 16 B/cycle (a line per cycle),
    latency 4, a 1 x 1 array (OS fold = K + 4 with L = 3, GEMM = DECODE 1 + READ 4 + fold +
    POST 4, INTER = DECODE 1 + P x tables x ceil(dim / C) + POST 4), concat.
    Loader, one tag: 5 weight lines handshaken 0, 5, 10, 15, 20 (delivered 4 .. 24), dense line
    25 -> 29, index line 30 -> 34; each LOAD done LOAD_DONE_CYCLES (1) after its last line's
    write: weights 25, dense 30, index 35. GATHER starts 36, its walker offers the row from 36 +
    WALK_CYCLES (8) = 44: request 44, delivered 48, pooled 49.
    Bottom GEMM (K 1: 14 cycles) 31..44 (weights 25, dense 30); INTER (1 + 16 + 4) 50..70 after
    the gather; top GEMM (K 17: 30 cycles) 71..100; STORE handshaken 101, done 101; END 102: 103 cycles.
    (tests/test_simulator_recsys.py::test_hand_derived_program checks the stalls as well.)""",
)

_RS_EXAMPLE_TINY = Case(id="rs-example-tiny", point=_example("recsys_tiny.yaml"))

#: Per recsys design point: embedding dim, lookups per bag (bags "v"ariable or "f"ixed),
#: interaction. Dims off the line size, bags of 0 and 1, both interactions.
_RS_SHAPES = ((24, 3, "v", "dot"), (13, 1, "f", "concat"), (16, 0, "f", "concat"), (33, 4, "v", "concat"),
              (8, 2, "f", "dot"), (20, 1, "v", "dot"), (5, 6, "f", "concat"), (40, 2, "v", "concat"))
RS_DESIGN_SEEDS = tuple(range(len(_RS_SHAPES)))


def rs_random_design_point(dp_seed: int, data_seed: int) -> DesignPoint:
    """recsys design point ``dp_seed`` with data from ``data_seed``: G, tags, line size, pooling
    width, cache, array shape and dataflow, accumulator width, mini-batch, memory channels,
    bandwidth and latency vary; dims are off the line size; bags of 0 and 1; concat and dot;
    batches of several mini-batches (so gathers and MLPs pipeline)."""
    rng = np.random.default_rng(30_000 + dp_seed)
    dim, lookups, bags, interaction = _RS_SHAPES[dp_seed]
    units = int(rng.integers(1, 5))
    line = int(rng.choice([16, 32, 64]))
    cache_lines = (0, 2, 4, 8)[dp_seed % 4]
    hardware = {
        "preset": "tiny", "engine": "recsys", "gather_units": units,
        "max_outstanding": int(rng.integers(1, 9)), "line_bytes": line,
        "pool_lanes": int(rng.choice([4, 8, 16, 64])), "cache_kib": units * cache_lines * line / 1024,
        "rows": int(rng.integers(1, 5)), "cols": int(rng.integers(1, 5)),
        "dataflow": ("os", "ws")[dp_seed % 2], "acc_bits": int(rng.choice([16, 24, 32])),
        "mini_batch": int(rng.integers(1, 5)),
        "index_buffer_kib": 8, "pooled_buffer_kib": 8, "act_buffer_kib": 8, "weight_buffer_kib": 16,
        "out_buffer_kib": 1,
        "memory": {"channels": int(rng.integers(1, 4)), "bytes_per_cycle": int(rng.choice([2, 4, 8, 16])),
                   "latency_cycles": int(rng.integers(1, 10))},
    }
    tables = [int(rng.integers(max(lookups, 8), 200)) for _ in range(int(rng.integers(1, 4)))]
    bottom_out = dim if interaction == "dot" else int(rng.integers(1, 12))
    workload = {
        "kind": "dlrm", "dense_features": int(rng.integers(1, 12)),
        "bottom": [int(rng.integers(1, 12)), bottom_out][int(rng.integers(0, 2)):],
        "top": [int(rng.integers(1, 12)), int(rng.integers(1, 3))],
        "dim": dim, "table_rows": tables, "lookups": lookups, "bags": {"v": "variable", "f": "fixed"}[bags],
        "interaction": interaction, "batch": int(rng.integers(1, 10)),
        "indices": {"distribution": ("uniform", "zipf")[dp_seed % 2], "exponent": 1.1},
    }
    return design_point_from_dict({"hardware": hardware, "workload": workload, "seed": data_seed})


def rs_gather_bound_point(k: int, data_seed: int) -> DesignPoint:
    """recsys point ``k`` whose time the gathers set (many lookups of hot rows, slow memory), so
    that the tags, the caches and pooling show in the cycle count and the dense engine waits for
    its gathers: on the random design points above it never does, so their cycles are the same
    for every data seed."""
    rng = np.random.default_rng(40_000 + k)
    units = int(rng.integers(1, 4))
    line = (16, 32)[k % 2]
    hardware = {"preset": "tiny", "engine": "recsys", "gather_units": units,
                "max_outstanding": int(rng.integers(1, 7)), "line_bytes": line,
                "pool_lanes": int(rng.choice([2, 4, 16])), "cache_kib": units * (0, 4, 8)[k % 3] * line / 1024,
                "rows": 4, "cols": 4, "mini_batch": int(rng.integers(2, 5)), "index_buffer_kib": 8,
                "pooled_buffer_kib": 8, "act_buffer_kib": 8, "weight_buffer_kib": 16, "out_buffer_kib": 1,
                "memory": {"channels": int(rng.integers(1, 3)), "bytes_per_cycle": int(rng.choice([2, 4])),
                           "latency_cycles": int(rng.integers(2, 12))}}
    workload = {"kind": "dlrm", "dense_features": 4, "bottom": [6], "top": [4, 1], "dim": int(rng.integers(5, 40)),
                "table_rows": [int(rng.integers(12, 60)) for _ in range(int(rng.integers(1, 4)))],
                "lookups": 12, "bags": ("fixed", "variable")[k % 2], "batch": int(rng.integers(3, 9)),
                "indices": {"distribution": "zipf", "exponent": 1.3}}
    return design_point_from_dict({"hardware": hardware, "workload": workload, "seed": data_seed})


#: The gather-bound point of the case table (at the RTL levels in ``make test``).
RS_GATHER_POINT = 4
#: A gather-bound point whose cycles the row buffer of two sets (one unit, three tags, one
#: channel, a cache): with a one-row register it took 781, 815 and 796 cycles for data seeds
#: 1-3, with the buffer 780, 814 and 791 (the walker steps ahead of the unit's takes); 781, 815
#: and 792 since a LOAD is done LOAD_DONE_CYCLES after its last line's write.
RS_ROW_BUFFER_POINT = 20
#: A gather-bound point whose index LOADs wait on the GATHERs of two mini-batches before (three
#: units, two tags, one channel, a cache): the only point here where that condition binds, so
#: ``LOAD_WAIT_CYCLES`` shows (1,455, 1,549 and 1,501 cycles for data seeds 1-3 without it; 1,474,
#: 1,550 and 1,506 with it; data seed 1 1,448 since ``CACHE_FILL_CYCLES`` 2: a fill seen a
#: cycle later changes which requests hit there, 135 instead of 133, and the run ends sooner).
RS_LOAD_WAIT_POINT = 32

RS_CASES: tuple[Case, ...] = (
    _RS_HAND,
    _RS_EXAMPLE_TINY,
    *(
        Case(id=f"rs-dp{dp}-data{seed}", point=rs_random_design_point(dp, seed))
        for dp in RS_DESIGN_SEEDS
        for seed in DATA_SEEDS
    ),
    *(
        Case(id=f"rs-gather{RS_GATHER_POINT}-data{seed}", point=rs_gather_bound_point(RS_GATHER_POINT, seed))
        for seed in DATA_SEEDS
    ),
    *(
        Case(id=f"rs-gather{RS_ROW_BUFFER_POINT}-data{seed}", point=rs_gather_bound_point(RS_ROW_BUFFER_POINT, seed))
        for seed in DATA_SEEDS
    ),
    *(
        Case(id=f"rs-gather{RS_LOAD_WAIT_POINT}-data{seed}", point=rs_gather_bound_point(RS_LOAD_WAIT_POINT, seed))
        for seed in DATA_SEEDS
    ),
)

CASES_BY_ID.update({case.id: case for case in RS_CASES})
