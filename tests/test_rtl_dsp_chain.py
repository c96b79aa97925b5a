"""RTL of the ``dsp_chain`` engine.

Fast tests (no Verilator): the chain unit under Amaranth's simulator against a NumPy dot product,
constructor validation and Verilog reproducibility; marked ``verilator``: lint and build reuse.
Whole Programs on the whole engine run from the case table at every level, Amaranth's simulator
and Verilator included (tests/test_case_table.py); the memory model the benches use is tested
in tests/test_memory.py.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from amaranth.sim import Simulator

from sparsim.dataflow import golden
from sparsim.dataflow.config import design_point_from_dict
from sparsim.rtl.dsp_chain import DspChainAccelerator, SparseDspChain
from sparsim.rtl.verilog import to_verilog, write_verilog


def _tiny_hw(**overrides):
    return design_point_from_dict(
        {
            "hardware": {"preset": "tiny", **overrides},
            "workload": {"kind": "gemm", "layers": [{"rows": 2, "k": 8, "sparsity": "2:8"}]},
        }
    ).hardware


# ------------------------------------------------------------------------------------------
# Chain unit under Amaranth's simulator


def _run_chain(L, M, lanes, acc_bits, *, dense, weight_bits, seed, groups=6, extreme=None):
    """Feed random token groups (with bubbles) to one chain; return (got, expected) lists of
    (cycle, [lane sums]). ``extreme`` = (weight, activation) fills every slot and lane."""
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
                w = np.full(L, extreme[0], dtype=np.int64)
                acts = np.full((L, lanes, M), extreme[1], dtype=np.int64)
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


@pytest.mark.parametrize("L", [4, 8, 16])
@pytest.mark.parametrize("extreme", [(-128, -128), (-128, 127), (127, -128)], ids=str)
def test_packed_lanes_at_extremes(L, extreme):
    # Every product at +16384 (= -128 · -128) or -16256 (= -128 · 127): the low lane's sum over a
    # cascade segment of 8 slots spans the whole 18-bit field, the bound of CASCADE_SLOTS; with
    # L = 16 two segments are split and added. Both lanes must come out exact.
    got, want = _run_chain(L, 8, 2, 32, dense=False, weight_bits=8, seed=5, extreme=extreme)
    assert got == want


def test_chain_accumulator_wraps():
    # 8 slots x (-128 * -128) = 131072 per step overflows 16 bits; every step must wrap.
    got, want = _run_chain(8, 4, 1, 16, dense=False, weight_bits=8, seed=3, extreme=(-128, -128))
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
# Verilator build


@pytest.mark.verilator
def test_lint_and_single_build():
    from sparsim.rtl import verilator

    hw = _tiny_hw()
    assert verilator.lint(hw) == ""
    built = verilator.build(hw)
    log = built.directory / "build.log"
    before = log.stat().st_mtime_ns
    again = verilator.build(hw)
    assert again.directory == built.directory
    assert log.stat().st_mtime_ns == before  # reused, not rebuilt
    # The make that cocotb starts honours the optimisation level (verilated.mk's default is -Os).
    compiles = [line for line in log.read_text().splitlines() if " -c -o " in line]
    assert compiles and all(" -O0 " in line and "-Os" not in line for line in compiles)


def test_the_cxx_optimisation_level_is_part_of_the_build_key(monkeypatch):
    from sparsim.rtl import verilator

    hw = _tiny_hw()
    default = verilator.hardware_key(hw)
    monkeypatch.setenv(verilator.CXX_OPT_ENV, "-Os")
    assert verilator.hardware_key(hw) != default
    monkeypatch.setenv(verilator.CXX_OPT_ENV, "-O0")
    assert verilator.hardware_key(hw) == default
