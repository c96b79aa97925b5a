"""RTL of the ``dsp_chain`` engine.

Fast tests (no Verilator): the chain unit under Amaranth's simulator against a NumPy dot product,
constructor validation and Verilog reproducibility (the memory model the benches use is tested
in tests/test_memory.py). Tests marked ``verilator`` build random design points and run
Programs of random data on them: values must equal the golden model bit for bit and, with the
exact memory timing of the docs, the cycle count must equal the simulator's; with random stalls
on every stream the values must still be exact.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
from amaranth.sim import Simulator

from dataflow import dsp_chain_isa as isa
from dataflow import golden
from dataflow.config import design_point_from_dict
from dataflow.dsp_chain import compile_design_point
from rtl.dsp_chain import DspChainAccelerator, SparseDspChain
from rtl.verilog import to_verilog, write_verilog
from simulator.dsp_chain import run


def _tiny_hw(**overrides):
    return design_point_from_dict(
        {
            "hardware": {"preset": "tiny", **overrides},
            "workload": {"kind": "gemm", "layers": [{"rows": 2, "k": 8, "sparsity": "2:8"}]},
        }
    ).hardware


# ------------------------------------------------------------------------------------------
# Chain unit under Amaranth's simulator


def _run_chain(L, M, lanes, acc_bits, *, dense, weight_bits, seed, groups=6, extreme=False):
    """Feed random token groups (with bubbles) to one chain; return (got, expected) lists of
    (cycle, [lane sums])."""
    rng = np.random.default_rng(seed)
    lo, hi = golden.int_range(weight_bits)
    ibits = M.bit_length() - 1
    schedule = []  # per cycle: None (bubble) or a step dict
    expected = []
    for _ in range(groups):
        nsteps = int(rng.integers(1, 5))
        total = np.zeros(lanes, dtype=np.int64)
        for s in range(nsteps):
            if extreme:
                w = np.full(L, lo, dtype=np.int64)
                acts = np.full((L, lanes, M), -128, dtype=np.int64)
            else:
                w = rng.integers(lo, hi + 1, size=L)
                acts = rng.integers(-128, 128, size=(L, lanes, M))
            idx = rng.integers(0, M, size=L)
            k_base = int(rng.integers(0, M))
            eff = (k_base + np.arange(L)) % M if dense else idx
            for lane in range(lanes):
                total[lane] += int(np.sum(w * acts[np.arange(L), lane, eff]))
            schedule.append(
                dict(w=w, idx=idx, acts=acts, k_base=k_base, first=s == 0, last=s == nsteps - 1)
            )
            while rng.random() < 0.3:
                schedule.append(None)
        expected.append(golden.wrap(total, acc_bits).tolist())

    dut = SparseDspChain(chain_len=L, mux_m=M, lanes=lanes, acc_bits=acc_bits)
    got = []
    last_cycles = []

    async def bench(ctx):
        ctx.set(dut.dense, int(dense))
        for x in range(len(schedule) + dut.latency + 2):
            step = schedule[x] if x < len(schedule) else None
            if step is None:
                # Garbage operands on bubbles must not reach the accumulator.
                ctx.set(dut.valid, 0)
                ctx.set(dut.weights[0], int(rng.integers(-128, 128)))
                ctx.set(dut.first, int(rng.integers(0, 2)))
                ctx.set(dut.last, int(rng.integers(0, 2)))
            else:
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, int(step["first"]))
                ctx.set(dut.last, int(step["last"]))
                ctx.set(dut.k_base, step["k_base"])
                for j in range(L):
                    ctx.set(dut.weights[j], int(step["w"][j]))
                    ctx.set(dut.indices[j], int(step["idx"][j]) & ((1 << ibits) - 1))
                    for lane in range(lanes):
                        for i in range(M):
                            ctx.set(dut.acts[j][lane][i], int(step["acts"][j, lane, i]))
                if step["last"]:
                    last_cycles.append(x)
            if ctx.get(dut.result_valid):
                got.append((x, [ctx.get(dut.result[lane]) for lane in range(lanes)]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, [(c + dut.latency, e) for c, e in zip(last_cycles, expected)]


@pytest.mark.parametrize(
    "L,M,lanes,acc_bits,dense,weight_bits",
    [
        (4, 8, 1, 32, False, 8),
        (4, 8, 1, 32, True, 8),
        (2, 16, 2, 24, False, 4),
        (8, 4, 2, 32, True, 4),
        (8, 16, 1, 48, False, 8),
        (2, 2, 1, 16, True, 8),
        (4, 8, 2, 32, False, 8),  # packed two-lane multiply at full INT8 range
        (4, 16, 2, 48, True, 8),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_chain_matches_dot_product(L, M, lanes, acc_bits, dense, weight_bits, seed):
    got, want = _run_chain(L, M, lanes, acc_bits, dense=dense, weight_bits=weight_bits, seed=seed)
    assert got == want


def test_packed_lanes_at_extremes():
    # Both lanes at -128 with -128 weights: the packed product's low half is +2^14 and the
    # high half must come out exact.
    got, want = _run_chain(4, 8, 2, 32, dense=False, weight_bits=8, seed=5, extreme=True)
    assert got == want


def test_chain_accumulator_wraps():
    # 8 slots x (-128 * -128) = 131072 per step overflows 16 bits; every step must wrap.
    got, want = _run_chain(8, 4, 1, 16, dense=False, weight_bits=8, seed=3, extreme=True)
    assert got == want
    assert any(abs(v) < 8 * 128 * 128 for _, vals in want for v in vals)  # really wrapped


@pytest.mark.parametrize(
    "kwargs,exc,message",
    [
        (dict(chain_len=3, mux_m=8, lanes=1, acc_bits=32), ValueError, "chain_len must be a power of two >= 2, not 3"),
        (dict(chain_len=4, mux_m=32, lanes=1, acc_bits=32), ValueError, "mux_m must be a power of two from 2 to 16, not 32"),
        (dict(chain_len=4, mux_m=8, lanes=3, acc_bits=32), ValueError, "lanes must be 1 or 2, not 3"),
        (dict(chain_len=4, mux_m=8, lanes=1, acc_bits=12), ValueError, "acc_bits must be an integer from 16 to 48, not 12"),
        (dict(chain_len=4.0, mux_m=8, lanes=1, acc_bits=32), TypeError, "chain_len must be an integer, not 4.0"),
    ],
)
def test_chain_rejects_bad_parameters(kwargs, exc, message):
    with pytest.raises(exc, match=f"^{message}$"):
        SparseDspChain(**kwargs)


def test_chain_parameters_are_keyword_only():
    params = list(inspect.signature(SparseDspChain.__init__).parameters.values())[1:]
    assert params and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)


def test_accelerator_rejects_a_dict():
    with pytest.raises(TypeError, match="^hw must be a DspChainHardware, not dict$"):
        DspChainAccelerator({"chains": 2})


# ------------------------------------------------------------------------------------------
# Verilog


def test_verilog_is_reproducible(tmp_path):
    hw = _tiny_hw()
    text = to_verilog(hw)
    assert text == to_verilog(_tiny_hw())
    assert "module top(" in text
    path = write_verilog(hw, tmp_path / "sub" / "top.v")
    assert path.read_text() == text
    assert to_verilog(_tiny_hw(chain_len=8)) != text


# ------------------------------------------------------------------------------------------
# Verilator: random design points, exact against golden values and simulator cycles

#: N:M of each design point's sparse layers (its M is the hardware's mux_m); "16:16" is dense.
_NM_PER_POINT = ("2:4", "2:8", "4:16", "8:16", "16:16", "2:8", "4:16", "2:4")
_CHAIN_LEN_PER_POINT = (2, 4, 8, 4, 2, 8, 4, 2)
DESIGN_SEEDS = tuple(range(len(_NM_PER_POINT)))
EXACT_DATA_SEEDS = (1, 2, 3)
STALL_CASES = ((4, 101), (5, 102))  # (data seed, stall seed)

# Small buffers keep the Verilated memories at tens of rows.
_WEIGHT_BANK_ROWS = 64
_ACT_ROWS = 48


def random_design_point(dp_seed: int, data_seed: int):
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


def test_random_design_points_cover_the_required_corners():
    points = [random_design_point(d, 1) for d in DESIGN_SEEDS]
    programs = [compile_design_point(p, with_data=True) for p in points]
    assert {p.hardware.lanes for p in points} == {1, 2}
    assert {p.hardware.chain_len for p in points} >= {2, 4, 8}
    assert len({p.hardware.chains for p in points}) > 1
    nms = {f"{pl.n}:{p.hw.mux_m}" for p in programs for pl in p.plans}
    assert nms >= {"2:4", "2:8", "4:16", "8:16", "16:16"}
    assert {pl.weight_bits for p in programs for pl in p.plans} == {4, 8}
    for prog in programs:
        gemv, gemm, _ = prog.plans
        assert gemv.tokens == 1 and gemm.chunks > 1 and gemm.row_tiles > 1
        assert all(pl.k % prog.hw.mux_m for pl in prog.plans)
        hw = prog.hw
        assert max(hw.weight_bank_depth, hw.act_depth, hw.out_bank_depth) <= 64
        # The GEMM's later chunks prefetch into the second activation bank while the chains
        # work, so the RTL's cycle counts test double buffering: synced loads would be slower.
        lda = prog.instrs["op"] == isa.OP_LDA
        assert not prog.instrs["sync"][lda].all()
        synced = copy.copy(prog)
        synced.instrs = prog.instrs.copy()
        synced.instrs["sync"][lda] = 1
        assert run(synced).cycles > run(prog).cycles


@pytest.fixture(scope="module", params=DESIGN_SEEDS, ids=lambda d: f"dp{d}")
def design_results(request):
    """Build design point ``dp`` once and run all its data seeds (exact and stalled) in one
    simulator process; tests then look up their case."""
    from rtl.verilator import verify_all

    dp = request.param
    cases = [(compile_design_point(random_design_point(dp, s), with_data=True), None) for s in EXACT_DATA_SEEDS]
    cases += [
        (compile_design_point(random_design_point(dp, s), with_data=True), stall)
        for s, stall in STALL_CASES
    ]
    results = verify_all(cases)
    keys = [("exact", s) for s in EXACT_DATA_SEEDS] + [("stall", s) for s, _ in STALL_CASES]
    return dict(zip(keys, results))


@pytest.mark.verilator
def test_lint_and_single_build():
    from rtl import verilator

    hw = _tiny_hw()
    assert verilator.lint(hw) == ""
    built = verilator.build(hw)
    log = built.directory / "build.log"
    before = log.stat().st_mtime_ns
    again = verilator.build(hw)
    assert again.directory == built.directory
    assert log.stat().st_mtime_ns == before  # reused, not rebuilt


@pytest.mark.verilator
@pytest.mark.parametrize("data_seed", EXACT_DATA_SEEDS, ids=lambda s: f"data{s}")
def test_rtl_exact_values_and_cycles(design_results, data_seed):
    res = design_results[("exact", data_seed)]
    assert not res.errors, res.summary()
    assert res.outputs_match, res.summary()
    assert res.cycles_rtl == res.cycles_sim, res.summary()


@pytest.mark.verilator
@pytest.mark.parametrize(
    "data_seed,stall_seed", STALL_CASES, ids=[f"data{d}-stall{s}" for d, s in STALL_CASES]
)
def test_rtl_exact_values_under_random_stalls(design_results, data_seed, stall_seed):
    res = design_results[("stall", data_seed)]
    assert res.stall_seed == stall_seed
    assert not res.errors, res.summary()
    assert res.outputs_match, res.summary()
    assert res.cycles_rtl > res.cycles_sim  # the stalls really slowed the run down
