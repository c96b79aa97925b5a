"""RTL of the shared systolic PE array (rtl/systolic.py) under Amaranth's simulator.

Whole GEMMs are cut into folds exactly as the engines do (OS: R-row blocks of p by C-column
blocks of q; WS: R-blocks of compressed steps k' by C-blocks of q, partial sums added at
``acc_bits`` like the output buffer does) and driven fold after fold, each starting in the cycle
the previous one's ``fold_cycles`` end (fold cycle 0 is the cycle after a fold's first
handshake). Every output row must equal the NumPy GEMM wrapped to ``acc_bits`` and leave the
array in the cycle the fold equations of :mod:`sparsim.dataflow.systolic` give; random bubbles
inside folds delay it by one cycle each and keep the values exact.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from sparsim.dataflow import golden
from sparsim.dataflow import systolic
from sparsim.dataflow.systolic import fold_cycles
from sparsim.rtl.systolic import SystolicArray


def _operands(rng, P, K, Q, n, m, *, extreme=False):
    """A (P x K) and B (Q x K) N:M-compressed along K: per group of m, n kept (value, index).

    Returns A zero-padded to whole groups, the kept values and indices (Q x K'), and the
    golden ``A·Bᵀ`` in int64 (unwrapped)."""
    groups = math.ceil(K / m)
    a = np.zeros((P, groups * m), dtype=np.int64)
    if extreme:
        a[:, :K] = -128
        values = np.full((Q, groups * n), -128, dtype=np.int64)
    else:
        a[:, :K] = rng.integers(-128, 128, size=(P, K))
        values = rng.integers(-128, 128, size=(Q, groups * n))
    index = np.zeros((Q, groups * n), dtype=np.int64)
    b_dense = np.zeros((Q, groups * m), dtype=np.int64)
    for q in range(Q):
        for g in range(groups):
            kept = np.sort(rng.choice(m, size=n, replace=False))
            index[q, g * n : (g + 1) * n] = kept
            b_dense[q, g * m + kept] = values[q, g * n : (g + 1) * n]
    # Kept weights in the zero padding of the last group multiply zero activations.
    return a, values, index, a[:, :K] @ b_dense[:, :K].T


def _pack(fields, layout_offsets):
    word = 0
    for (offset, width), value in zip(layout_offsets, fields):
        word |= (int(value) & ((1 << width) - 1)) << offset
    return word


class _Driver:
    """Packs per-cycle stimuli for ``a`` and ``b`` into raw words and runs the simulation."""

    def __init__(self, dut: SystolicArray):
        self.dut = dut
        R, C, M = dut.rows, dut.cols, dut.max_m
        a_lay, b_lay = dut.a_layout, dut.b_layout
        win_off = a_lay["windows"].offset
        self.a_fields = [(win_off + (r * M + i) * 8, 8) for r in range(R) for i in range(M)]
        if dut.dataflow == "os":
            self.a_fields += [(a_lay["first"].offset, 1), (a_lay["last"].offset, 1)]
        ib = dut.index_bits
        self.b_fields = [(b_lay["values"].offset + c * 8, 8) for c in range(C)]
        self.b_fields += [(b_lay["indices"].offset + c * ib, ib) for c in range(C)] if ib else []
        self.a = {}  # cycle -> packed word
        self.b = {}

    def put_a(self, cycle, windows, first=False, last=False):
        fields = list(np.asarray(windows).ravel())
        if self.dut.dataflow == "os":
            fields += [first, last]
        assert cycle not in self.a
        self.a[cycle] = _pack(fields, self.a_fields)

    def put_b(self, cycle, values, indices):
        fields = list(values) + (list(indices) if self.dut.index_bits else [])
        assert cycle not in self.b
        self.b[cycle] = _pack(fields, self.b_fields)

    def run(self, cycles):
        """Run ``cycles`` cycles; garbage payloads where not valid. Returns [(cycle, row)]."""
        dut = self.dut
        a_raw, b_raw, out_raw = Value.cast(dut.a.payload), Value.cast(dut.b.payload), Value.cast(dut.result.payload)
        rows = []
        junk = np.random.default_rng(0)

        async def bench(ctx):
            for cycle in range(cycles):
                for stream, raw, sched in ((dut.a, a_raw, self.a), (dut.b, b_raw, self.b)):
                    valid = cycle in sched
                    ctx.set(stream.valid, int(valid))
                    ctx.set(raw, sched[cycle] if valid else int(junk.integers(0, 1 << 62)) % (1 << len(raw)))
                if ctx.get(dut.result.valid):
                    word = ctx.get(out_raw)
                    row = [(word >> (c * dut.acc_bits)) & ((1 << dut.acc_bits) - 1) for c in range(dut.cols)]
                    rows.append((cycle, golden.wrap(np.array(row, dtype=np.int64), dut.acc_bits)))
                await ctx.tick()

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        return rows


def _window(a, p, kstep, n, m, max_m):
    """The window row p presents for compressed step kstep: A[p] of its group, lanes >= m zero."""
    w = np.zeros(max_m, dtype=np.int64)
    if p < a.shape[0]:
        g = kstep // n
        w[:m] = a[p, g * m : (g + 1) * m]
    return w


def _run_gemm(R, C, dataflow, max_m, acc_bits, P, K, Q, n, m, seed, *, bubbles=0.0, extreme=False):
    """Drive the whole GEMM fold by fold, each starting when the previous one's cycles are
    over. Returns (result, expected, [(cycle of the fold's last result - its start,
    fold_cycles + the bubbles inserted in the fold)]): equal when the last result leaves in
    fold cycle fold_cycles - 1."""
    rng = np.random.default_rng(seed)
    a, values, index, expected = _operands(rng, P, K, Q, n, m, extreme=extreme)
    kp = values.shape[1]
    dut = SystolicArray(rows=R, cols=C, dataflow=dataflow, max_m=max_m, acc_bits=acc_bits)
    drv = _Driver(dut)

    def weights(q0, kstep):
        vals, idxs = np.zeros(C, dtype=np.int64), np.zeros(C, dtype=np.int64)
        for c in range(C):
            if q0 + c < Q and kstep < kp:
                vals[c], idxs[c] = values[q0 + c, kstep], index[q0 + c, kstep]
        return vals, idxs

    folds = []  # (start, fold_cycles + bubbles inside the fold, rows it produces in order)
    t = 0

    def bubble_count():
        nonlocal t
        count = 0
        while rng.random() < bubbles:
            t += 1
            count += 1
        return count

    if dataflow == "os":
        blocks = [(p0, q0) for p0 in range(0, P, R) for q0 in range(0, Q, C)]
    else:
        blocks = [(k0, q0) for k0 in range(0, kp, R) for q0 in range(0, Q, C)]
    for b0, q0 in blocks:
        start, extra = t, 0
        if dataflow == "os":
            for ks in range(kp):
                extra += bubble_count() if ks else 0
                drv.put_a(t, [_window(a, b0 + r, ks, n, m, max_m) for r in range(R)], ks == 0, ks == kp - 1)
                drv.put_b(t, *weights(q0, ks))
                t += 1
            produces = [(b0 + r, q0) for r in reversed(range(R))]
        else:
            for j in range(R):
                extra += bubble_count() if j else 0
                drv.put_b(t, *weights(q0, b0 + R - 1 - j))
                t += 1
            for p in range(P):
                extra += bubble_count()
                drv.put_a(t, [_window(a, p, b0 + r, n, m, max_m) if b0 + r < kp else np.zeros(max_m) for r in range(R)])
                t += 1
            produces = [(p, q0) for p in range(P)]
        total = fold_cycles(systolic.DATAFLOWS[dataflow], R, C, kp, P) + extra
        folds.append((start, total, produces))
        t = start + total
        bubble_count()
    out = drv.run(t + 2)
    result = np.zeros((P, Q), dtype=np.int64)
    timing = []
    it = iter(out)
    for start, fc, produces in folds:
        last = None
        for p, q0 in produces:
            cycle, row = next(it)
            last = cycle
            if p < P:
                width = min(C, Q - q0)
                result[p, q0 : q0 + width] = golden.wrap(result[p, q0 : q0 + width] + row[:width], acc_bits)
        timing.append((last - start, fc))
    assert next(it, None) is None, "the array produced more rows than its folds"
    return result, golden.wrap(expected, acc_bits), timing


_NM = [(1, 1), (2, 4), (1, 4), (2, 8), (4, 8), (4, 16), (3, 4)]


def _random_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        n, m = _NM[i % len(_NM)]
        max_m = int(rng.choice([mm for mm in (1, 2, 4, 8, 16) if mm >= m]))
        R, C = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        dataflow = ("os", "ws")[i % 2]
        P, K, Q = int(rng.integers(1, 2 * R + 3)), int(rng.integers(1, 3 * m + 6)), int(rng.integers(1, 2 * C + 3))
        acc_bits = int(rng.choice([16, 24, 32]))
        cases.append(pytest.param(R, C, dataflow, max_m, acc_bits, P, K, Q, n, m, 1000 + i,
                                  id=f"{dataflow}-{R}x{C}-M{max_m}-{n}of{m}-P{P}K{K}Q{Q}-acc{acc_bits}-s{1000 + i}"))
    return cases


@pytest.mark.parametrize("R,C,dataflow,max_m,acc_bits,P,K,Q,n,m,seed", _random_cases(14, 9))
def test_gemm_matches_numpy_and_fold_equation(R, C, dataflow, max_m, acc_bits, P, K, Q, n, m, seed):
    result, expected, timing = _run_gemm(R, C, dataflow, max_m, acc_bits, P, K, Q, n, m, seed)
    np.testing.assert_array_equal(result, expected)
    # The last result of every fold leaves in its fold cycle fold_cycles - 1.
    assert all(last == fc for last, fc in timing), timing


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("seed", [1, 2])
def test_bubbles_keep_values_exact(dataflow, seed):
    result, expected, timing = _run_gemm(3, 4, dataflow, 8, 32, 7, 21, 6, 2, 8, seed, bubbles=0.35)
    np.testing.assert_array_equal(result, expected)
    # A bubble delays everything behind it by one cycle, no more.
    assert all(last == cycles for last, cycles in timing), timing


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_accumulator_wraps(dataflow):
    # 40 products of (-128)(-128) = 655,360 wraps in 16 bits.
    result, expected, _ = _run_gemm(2, 2, dataflow, 1, 16, 3, 40, 3, 1, 1, 5, extreme=True)
    assert expected[0, 0] != 40 * 128 * 128
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(
    "kwargs,exc,message",
    [
        (dict(rows=0, cols=4, dataflow="os", max_m=4, acc_bits=32), ValueError, "rows must be an integer from 1 to 64, not 0"),
        (dict(rows=4, cols=65, dataflow="os", max_m=4, acc_bits=32), ValueError, "cols must be an integer from 1 to 64, not 65"),
        (dict(rows=4, cols=4, dataflow="is", max_m=4, acc_bits=32), ValueError, "dataflow must be 'os' or 'ws', not 'is'"),
        (dict(rows=4, cols=4, dataflow="ws", max_m=6, acc_bits=32), ValueError, "max_m must be a power of two from 1 to 16, not 6"),
        (dict(rows=4, cols=4, dataflow="ws", max_m=32, acc_bits=32), ValueError, "max_m must be an integer from 1 to 16, not 32"),
        (dict(rows=4, cols=4, dataflow="ws", max_m=4, acc_bits=12), ValueError, "acc_bits must be an integer from 16 to 48, not 12"),
        (dict(rows=4.0, cols=4, dataflow="ws", max_m=4, acc_bits=32), TypeError, "rows must be an integer, not 4.0"),
    ],
)
def test_rejects_bad_parameters(kwargs, exc, message):
    with pytest.raises(exc, match=f"^{message}$"):
        SystolicArray(**kwargs)


def test_parameters_are_keyword_only():
    params = list(inspect.signature(SystolicArray.__init__).parameters.values())[1:]
    assert params and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)


@pytest.mark.verilator
@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("max_m", [1, 16])
def test_lint_clean(dataflow, max_m):
    from sparsim.rtl.verilator import lint_verilog
    from sparsim.rtl.verilog import component_verilog

    text = component_verilog(SystolicArray(rows=3, cols=2, dataflow=dataflow, max_m=max_m, acc_bits=24))
    assert text == component_verilog(SystolicArray(rows=3, cols=2, dataflow=dataflow, max_m=max_m, acc_bits=24))
    assert lint_verilog(text, "top") == ""


@pytest.mark.synth
def test_multipliers_map_to_registered_dsps():
    """What ``synth_xilinx`` makes of the PE pipeline: one DSP48E2 per PE on UltraScale+, and on
    7-series (where Yosys packs DSP registers) every PE's operands, product and accumulator in
    the DSP48E1's AREG/BREG, MREG and PREG; in WS the partial sums run down each column on the
    PCIN cascade."""
    from sparsim.rtl.synth import synthesize_verilog
    from sparsim.rtl.verilog import component_verilog

    R, C = 3, 2
    for dataflow in ("os", "ws"):
        text = component_verilog(SystolicArray(rows=R, cols=C, dataflow=dataflow, max_m=8, acc_bits=32))
        assert synthesize_verilog(text, "top", family="xcup").dsp == R * C
        regs = synthesize_verilog(text, "top", family="xc7").dsp_regs
        cascade = (R - 1) * C if dataflow == "ws" else 0
        assert regs == {"dsp": R * C, "a_or_b_reg": R * C, "mreg": R * C, "preg": R * C, "pcin_cascade": cascade}
