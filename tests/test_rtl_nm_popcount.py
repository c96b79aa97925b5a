"""The rank network's bit-level helpers in rtl/nm_train.py (``_popcount``, ``_less``): right on
every input, and emitted once per adder in the Verilog.

Built as Python expressions, each reuse of an adder's output repeats its whole cone in Amaranth's
Verilog, exponentially in the adder tree's depth: the case table's max_m 16 points grew to 45 MB of
Verilog, whose Verilated C++ took more than 20 GB to compile (docs/nm_train.md, session 16).
Synthesis merges the copies again, so only the size of the text shows it."""

from __future__ import annotations

import itertools

from amaranth import Cat, Module, Signal
from amaranth.back import verilog
from amaranth.sim import Simulator

from sparsim.rtl.nm_train import _less, _popcount

#: a max_m 16 group: 15 bytes that can beat a byte
BITS = 15


def _circuit():
    m = Module()
    bits = [Signal(name=f"b{i}") for i in range(BITS)]
    n = Signal(5, name="n")
    count = Signal(5, name="count")
    less = Signal(name="less")
    total = _popcount(m, "pc", bits)
    m.d.comb += [count.eq(Cat(*total)), less.eq(_less(m, "lt", total, n))]
    return m, bits, n, count, less


def test_popcount_and_less_are_exact():
    m, bits, n, count, less = _circuit()
    sim = Simulator(m)
    vectors = [v for v in range(1 << BITS) if v % 97 == 0 or bin(v).count("1") in (0, 1, 14, 15)]
    failures = []

    async def bench(ctx):
        for v, limit in itertools.product(vectors, (0, 1, 7, 15, 16)):
            for i, b in enumerate(bits):
                ctx.set(b, (v >> i) & 1)
            ctx.set(n, limit)
            want = bin(v).count("1")
            got_count, got_less = ctx.get(count), ctx.get(less)
            if got_count != want or got_less != (want < limit):
                failures.append((v, limit, got_count, got_less))

    sim.add_testbench(bench)
    sim.run()
    assert len(vectors) > 300
    assert not failures, failures[:5]


def test_each_adder_is_emitted_once():
    m, bits, n, count, less = _circuit()
    text = verilog.convert(m, name="pc", ports=[*bits, n, count, less], emit_src=False)
    assigns = sum(1 for line in text.splitlines() if line.lstrip().startswith("assign"))
    # 15 bits: 11 full adders (two outputs each) and a few half adders, 5 compare bits: about 60
    # assignments; written as expressions the same circuit emitted thousands.
    assert assigns < 200, assigns
    # a full adder's carry term appears once, not once per use of the adder
    assert text.count("b0 & b1") <= 1

