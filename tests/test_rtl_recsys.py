"""RTL of the ``recsys`` engine (rtl/recsys.py) under Amaranth's simulator.

The gather unit and a pooled-buffer bank run embedding bags out of a memory image served by the
benches' line-request memory (``sparsim.simulator.memory.LineMemory``). The pooled sums must
equal the golden pooling (``dataflow.dlrm.embedding_bag``) with bags of 0 and 1 rows, rows not a
multiple of the line and not aligned to it, one or several channels, tag pools of 1 to 6 and
cache slices; without stalls every line request and every pooling chunk must fall in the cycle
that a plain-Python reading of docs/recsys.md's gather-unit rules gives (tags held up to the
last pooling cycle, arrival order with hits after channels, ``CACHE_HIT_CYCLES``); with random
row gaps, request back-pressure and delayed responses only the sums must stay exact.

The index walker walks random index blocks (bags of 0 to 4 rows, all-empty and never-empty
ones) under random row back-pressure: rows and pooled entries in bag order, each offered in the
cycle docs/recsys.md's walk recurrence gives, and the next GATHER taken right after the last step.

The sparse half together (G gather lanes, each a walker over one block-RAM index bank feeding a
gather unit, and a pooled bank) runs the first mini-batch's GATHER instructions of compiled Programs (case-table points and one
with empty and non-empty bags mixed): sums equal to golden pooling, every line request and the
last GATHER's done cycle (as the lanes' busy flags tell it) where a plain-Python reading of the
walker and gather-unit rules puts them; under random stalls the sums stay golden.

The dense engine runs every GEMM and INTER of case-table Programs (both dataflows, concat and dot,
1 x 1 to 4 x 4 arrays, dims off the array width, both bank parities): output rows equal golden, every
instruction takes its contract cycles; a corrupted weight makes the check fail.
"""

from __future__ import annotations

import contextlib
import random
from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.sim import Simulator

from sparsim.dataflow import recsys_isa as isa
from sparsim.dataflow.dlrm import Bags, embedding_bag
from sparsim.dataflow.golden import wrap
from sparsim.rtl.recsys import GatherLane, GatherUnit, IndexWalker, LineWriteQueue, PooledBuffer, dense_engine
from sparsim.simulator.memory import LineMemory, line_channel

from cases import CASES_BY_ID

ACC_BITS = 32


class _Point:
    """A random gather workload: one table, a batch of bags, a memory and a unit."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.line = int(rng.choice([8, 16, 32]))
        self.dim = int(rng.integers(1, 3 * self.line))
        self.lanes = int(rng.choice([1, 2, 4, 8, 16]))
        self.tags = 1 if seed % 5 == 0 else int(rng.integers(2, 7))
        self.channels = int(rng.integers(1, 4))
        self.bytes_per_cycle = int(rng.choice([2, 4, self.line]))
        self.latency = int(rng.integers(1, 12))
        self.cache_lines = int(rng.choice([0, 0, 2, 8]))
        rows = int(rng.integers(3, 30))
        batch = int(rng.integers(1, 7))
        sizes = rng.integers(0, 6, size=batch)
        sizes[rng.integers(batch)] = int(rng.choice([0, 1]))
        # Skewed indices, so that a cache slice sees reuse.
        indices = np.minimum(rng.zipf(1.4, size=int(sizes.sum())) - 1, rows - 1)
        self.bags = Bags(indices, np.concatenate(([0], np.cumsum(sizes))))
        self.table = rng.integers(-128, 128, size=(rows, self.dim), dtype=np.int64)
        # The table starts off the line so that rows straddle lines in every way.
        self.base = int(rng.integers(0, 3)) * self.line
        image = bytearray(self.base + rows * self.dim + self.line)
        image[self.base: self.base + rows * self.dim] = self.table.astype(np.int8).tobytes()
        self.image = image
        self.batch = batch

    def rows(self):
        """(address, dim, entry) of every row in gather order: bag by bag."""
        out = []
        for b in range(self.batch):
            for index in self.bags.indices[self.bags.offsets[b]: self.bags.offsets[b + 1]]:
                out.append((self.base + int(index) * self.dim, self.dim, b * self.dim))
        return out

    def memory(self) -> LineMemory:
        return LineMemory(bytearray(self.image), channels=self.channels, bytes_per_cycle=self.bytes_per_cycle,
                          latency=self.latency, line_bytes=self.line, max_outstanding=self.tags)

    def golden(self) -> np.ndarray:
        return embedding_bag(self.table, self.bags, ACC_BITS)

    def __repr__(self):
        return (f"seed={self.seed} line={self.line} dim={self.dim} lanes={self.lanes} tags={self.tags} "
                f"channels={self.channels} bpc={self.bytes_per_cycle} latency={self.latency} "
                f"cache={self.cache_lines}")


def reference(pt: _Point):
    """docs/recsys.md's gather-unit rules, cycle by cycle: the requests ``(cycle, line address,
    hit)`` and pooling chunks ``(cycle, element, count)`` of the rows offered from cycle 0."""
    mem = pt.memory()
    pending = deque()
    for addr, dim, entry in pt.rows():
        for ln in range(addr // pt.line, (addr + dim - 1) // pt.line + 1):
            lo, hi = max(addr, ln * pt.line), min(addr + dim, (ln + 1) * pt.line)
            pending.append((ln, entry + lo - addr, hi - lo))
    requests, chunks = [], []
    tags, fifo, hits, pool, cache = 0, deque(), deque(), None, {}
    fills = deque()  # (delivery cycle, line): in its set for the requests of cycle + CACHE_FILL_CYCLES on
    meta = {}
    x = 0
    while pending or fifo or hits or pool or not mem.idle:
        while fills and fills[0][0] + isa.CACHE_FILL_CYCLES <= x:
            _, ln = fills.popleft()
            cache[ln % pt.cache_lines] = ln
        if pool is not None and pool == x - 1:
            pool, tags = None, tags - 1
        if pool is None and fifo and fifo[0][0] < x:
            _, elem, n = fifo.popleft()
            c = -(-n // pt.lanes)
            chunks += [(x + j, elem + j * pt.lanes, min(pt.lanes, n - j * pt.lanes)) for j in range(c)]
            pool = x + c - 1
        if pending and tags < pt.tags:
            ln, elem, n = pending.popleft()
            tags += 1
            hit = bool(pt.cache_lines) and cache.get(ln % pt.cache_lines) == ln
            requests.append((x, ln * pt.line, hit))
            if hit:
                hits.append((x + isa.CACHE_HIT_CYCLES, elem, n))
            else:
                meta[len(requests)] = (ln, elem, n)
                mem.request(x, ln * pt.line, len(requests))
        for _, tag, _ in mem.responses(x):
            ln, elem, n = meta.pop(tag)
            fifo.append((x, elem, n))
            if pt.cache_lines:
                fills.append((x, ln))
        while hits and hits[0][0] == x:
            fifo.append(hits.popleft())
        x += 1
    return requests, chunks


async def read_bank(ctx, buf, reads, *, clear=False):
    """The sums of ``reads`` (counts, one read per cycle, in one run from element 0) from pooled
    bank ``buf``: a read's sums are on ``read_data`` (a register) the cycle after it."""
    out = []
    for count in reads:
        ctx.set(buf.read_count, count)
        ctx.set(buf.read_clear, clear)
        await ctx.tick()
        out.append([ctx.get(buf.read_data[j]) for j in range(len(buf.read_data))])
    ctx.set(buf.read_count, 0)
    ctx.set(buf.read_clear, 0)
    await ctx.tick()  # the next read starts at element 0 again
    return out


class _Bench(Elaboratable):
    """A gather unit whose pooling output feeds a pooled-buffer bank."""

    def __init__(self, pt: _Point):
        self.unit = GatherUnit(line_bytes=pt.line, max_outstanding=pt.tags, channels=pt.channels,
                               pool_lanes=pt.lanes, cache_lines=pt.cache_lines, entry_bits=10)
        self.buffer = PooledBuffer(entries=max(1, pt.batch * pt.dim), acc_bits=ACC_BITS, lanes=pt.lanes,
                                   ports=1, entry_bits=10)

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit, m.submodules.buffer = self.unit, self.buffer
        wiring.connect(m, self.unit.pool, self.buffer.pool[0])
        return m


def run_rtl(pt: _Point, stall_seed: int | None = None):
    """Run ``pt`` on the RTL; returns requests, chunks, pooled sums and the peak tags in use."""
    dut = _Bench(pt)
    unit, buf = dut.unit, dut.buffer
    mem = pt.memory()
    rng = random.Random(stall_seed)
    stalls = stall_seed is not None
    out = {"requests": [], "chunks": [], "peak": 0}
    rows = deque(pt.rows())

    async def bench(ctx):
        def announce(rows, offered):
            """The row the "row register" takes when it is free (the unit decides on it ahead):
            the one after the offered head, or the head while none is offered."""
            after = list(rows)[1:] if offered else list(rows)
            ctx.set(unit.next_avail, bool(after))
            ctx.set(unit.next_addr, after[0][0] if after else 0)
            ctx.set(unit.next_dim, after[0][1] if after else 0)

        where = {}  # tag -> line address of the request in flight
        delayed = [deque() for _ in range(pt.channels)]
        announce(rows, False)  # the first row is taken into the register in the cycle before cycle 0
        await ctx.tick()
        x = 0
        while x < 20_000:
            for lane in unit.resp:
                ctx.set(lane.valid, 0)
            for _, tag, data in mem.responses(x):
                delayed[line_channel(where[tag], pt.line, pt.channels)].append((tag, data))
            for c, queue in enumerate(delayed):
                if queue and not (stalls and rng.random() < 0.3):
                    tag, data = queue.popleft()
                    del where[tag]
                    ctx.set(unit.resp[c].valid, 1)
                    ctx.set(unit.resp[c].payload.tag, tag)
                    ctx.set(unit.resp[c].payload.data, int.from_bytes(data, "little"))
            offer = bool(rows) and not (stalls and rng.random() < 0.3)
            ctx.set(unit.rows.valid, offer)
            announce(rows, offer)
            if rows:
                # The payload is the head row's while it is offered or not, as a row register's.
                addr, dim, entry = rows[0]
                ctx.set(unit.rows.payload.addr, addr)
                ctx.set(unit.rows.payload.dim, dim)
                ctx.set(unit.rows.payload.entry, entry)
            ready = mem.can_request(x) and not (stalls and rng.random() < 0.3)
            ctx.set(unit.req.ready, ready)
            out["peak"] = max(out["peak"], ctx.get(unit.tags_used))
            if ctx.get(unit.req.valid) and ready:
                addr, tag = ctx.get(unit.req.payload.addr), ctx.get(unit.req.payload.tag)
                assert tag not in where, f"cycle {x}: tag {tag} reused while in flight"
                where[tag] = addr
                mem.request(x, addr, tag)
                out["requests"].append((x, addr, False))
            if ctx.get(unit.hits):
                out["requests"].append((x, ctx.get(unit.req.payload.addr), True))
            if ctx.get(unit.pool.valid):
                p = unit.pool.payload
                out["chunks"].append((x, ctx.get(p.elem), ctx.get(p.count)))
            if offer and ctx.get(unit.rows.ready):
                rows.popleft()
            busy = rows or ctx.get(unit.tags_used) or ctx.get(unit.pool.valid) or any(delayed) or not mem.idle
            await ctx.tick()
            x += 1
            if not busy:
                break
        await ctx.tick()  # a read sees the chunks of two cycles before it and earlier
        sums = [v[0] for v in await read_bank(ctx, buf, [1] * (pt.batch * pt.dim))]
        out["sums"] = np.array(sums, dtype=np.int64).reshape(pt.batch, pt.dim)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


POINTS = [_Point(seed) for seed in range(16)]


@pytest.mark.parametrize("pt", POINTS, ids=repr)
def test_gather_unit_pools_golden_in_contract_cycles(pt):
    got = run_rtl(pt)
    np.testing.assert_array_equal(got["sums"], pt.golden())
    requests, chunks = reference(pt)
    assert got["requests"] == requests
    assert got["chunks"] == chunks
    assert got["peak"] <= pt.tags


@pytest.mark.parametrize("pt", POINTS[:6], ids=repr)
@pytest.mark.parametrize("stall_seed", [1, 2])
def test_random_stalls_keep_the_sums(pt, stall_seed):
    got = run_rtl(pt, stall_seed)
    np.testing.assert_array_equal(got["sums"], pt.golden())
    assert got["peak"] <= pt.tags


def test_the_points_cover_the_corners():
    sizes = np.concatenate([p.bags.sizes for p in POINTS])
    assert {0, 1} <= set(sizes.tolist())
    assert any(p.dim % p.line for p in POINTS) and any(p.base % p.dim for p in POINTS)
    assert any(p.cache_lines for p in POINTS) and any(p.channels > 1 for p in POINTS)
    assert any(p.tags == 1 for p in POINTS)
    assert any(hit for p in POINTS for _, _, hit in reference(p)[0])
    # The tag limit binds: with one more tag most points would issue at other cycles.
    assert sum(_limit_binds(p) for p in POINTS) >= len(POINTS) // 2


def _limit_binds(pt: _Point) -> bool:
    more = _Point(pt.seed)
    more.tags = pt.tags + 1
    return reference(more)[0] != reference(pt)[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"line_bytes": 24}, "line_bytes must be a power of two >= 4, not 24"),
    ({"max_outstanding": 0}, "max_outstanding must be an integer >= 1, not 0"),
    ({"cache_lines": 3}, "cache_lines must be 0 or a power of two, not 3"),
    ({"pool_lanes": 3}, "pool_lanes must be a power of two >= 1, not 3"),
])
def test_gather_unit_rejects_bad_parameters(kwargs, message):
    params = {"line_bytes": 16, "max_outstanding": 2, "channels": 1, "pool_lanes": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        GatherUnit(**params)


def test_pooled_bank_forwards_and_the_reader_clears():
    """Back-to-back chunks on one row add through the read-add-write pipeline (forwarding), two
    ports' disjoint elements read as one buffer, a read sees a sum written in its cycle, and a
    clearing read leaves zeros behind for the next mini-batch."""
    buf = PooledBuffer(entries=6, acc_bits=16, lanes=2, ports=2, entry_bits=4)
    seen = []

    async def bench(ctx):
        def chunk(port, elem, values):
            ctx.set(buf.pool[port].valid, 1)
            ctx.set(buf.pool[port].payload.elem, elem)
            ctx.set(buf.pool[port].payload.count, len(values))
            for i, v in enumerate(values):  # in the memories' order: element elem + i in memory (elem + i) % 2
                ctx.set(buf.pool[port].payload.values[(elem + i) % 2], v)

        def idle(port):
            ctx.set(buf.pool[port].valid, 0)

        chunk(0, 0, [100, -5])
        chunk(1, 3, [7])
        await ctx.tick()
        chunk(0, 1, [127, 1])  # element 1 again, the cycle after: forwarded
        chunk(1, 3, [-128])
        await ctx.tick()
        chunk(0, 0, [127])
        idle(1)
        await ctx.tick()
        chunk(0, 0, [127])  # three in a row on element 0: 16-bit sum 100 + 127 + 127
        await ctx.tick()
        idle(0)
        await ctx.tick()  # the first read, two cycles after the last chunk: read ahead in the
        # cycle its sum is written, which the transparent port forwards
        seen.extend(v[0] for v in await read_bank(ctx, buf, [1] * 7, clear=True))
        seen.extend(v[0] for v in await read_bank(ctx, buf, [1] * 6))

    sim = Simulator(buf)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [354, 122, 1, -121, 0, 0, 0] + [0] * 6


def _bunched_deliveries(rng: random.Random, *, lanes: int, tags: int, cycles: int):
    """A loader's deliveries as a line memory can make them: one request per cycle while one of
    ``tags`` tags is free (free again the cycle after its delivery), each delivered later on a
    lane not yet taken in that cycle, most of them together at the end of their window of 8
    cycles; returns {cycle: [(lane, value)]}."""
    free_at = [0] * tags
    out: dict[int, list[tuple[int, int]]] = {}
    value = 0
    for x in range(cycles):
        t = min(range(tags), key=lambda i: free_at[i])
        if free_at[t] > x or rng.random() < 0.2:
            continue
        # Mostly converging on the end of the window of 8 cycles: bursts of deliveries.
        d = (x // 8) * 8 + 10 if rng.random() < 0.7 else x + rng.randint(1, 12)
        while len(out.get(d, [])) == lanes:
            d += 1
        used = {lane for lane, _ in out.get(d, [])}
        out.setdefault(d, []).append((rng.choice([k for k in range(lanes) if k not in used]), value))
        value += 1
        free_at[t] = d + 1
    return {d: sorted(v) for d, v in out.items()}


@pytest.mark.parametrize("lanes, tags, seed", [(1, 3, 1), (2, 1, 2), (2, 2, 3), (3, 3, 4), (4, 4, 5), (3, 8, 6)])
def test_line_write_queue_writes_in_delivery_order_one_per_cycle(lanes, tags, seed):
    """Bunched deliveries (several lanes in a cycle, from a bounded tag pool) are written in
    delivery order, lane order within a cycle, each in max(delivery, previous write + 1): the
    loader timing of docs/recsys.md; the queue, filled to its depth of tags - 1, loses no line."""
    rng = random.Random(seed)
    deliveries = _bunched_deliveries(rng, lanes=lanes, tags=tags, cycles=300)
    expected, last = [], -1
    for d in sorted(deliveries):
        for _, v in deliveries[d]:
            last = max(d, last + 1)
            expected.append((last, v))
    assert any(len(v) > 1 for v in deliveries.values()) == (lanes > 1 and tags > 1)
    waiting = max(sum(d <= x < w for d, w in zip(sorted(c for c in deliveries for _ in deliveries[c]),
                                                  (w for w, _ in expected)))
                  for x in range(expected[-1][0] + 1))
    if lanes >= tags:
        assert waiting == tags - 1  # the queue fills to its depth
    dut = LineWriteQueue(unsigned(16), lanes=lanes, max_outstanding=tags)
    seen = []

    async def bench(ctx):
        for x in range(expected[-1][0] + 2):
            for lane in range(lanes):
                ctx.set(dut.lines[lane].valid, 0)
            for lane, v in deliveries.get(x, []):
                ctx.set(dut.lines[lane].valid, 1)
                ctx.set(dut.lines[lane].payload, v)
            if ctx.get(dut.write.valid):
                seen.append((x, ctx.get(dut.write.payload)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == expected


def test_pooled_bank_wide_read_clears_what_it_reads():
    """Reads of up to ``read_width`` consecutive sums in one run from element 0 (starts across
    the lane memories and both ports) return them in order, zeros past ``read_count`` and past
    the bank's end, and clear only those read; the next run starts at element 0 again."""
    buf = PooledBuffer(entries=10, acc_bits=16, lanes=4, ports=2, entry_bits=4, read_width=3)
    expect = np.zeros(10, np.int64)
    seen = []

    async def bench(ctx):
        rng = np.random.default_rng(5)
        for e in range(10):
            port = e % 2
            v = int(rng.integers(-128, 128))
            expect[e] += v
            ctx.set(buf.pool[port].valid, 1)
            ctx.set(buf.pool[port].payload.elem, e)
            ctx.set(buf.pool[port].payload.count, 1)
            ctx.set(buf.pool[port].payload.values[e % 4], v)  # element e is in memory e % 4
            await ctx.tick()
            ctx.set(buf.pool[port].valid, 0)
        await ctx.tick()  # no read in the cycle after a chunk
        seen.append(await read_bank(ctx, buf, (3, 2, 3), clear=True))
        seen.append(await read_bank(ctx, buf, (3, 3, 3, 3)))

    sim = Simulator(buf)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen[0] == [list(expect[0:3]), [*expect[3:5], 0], list(expect[5:8])]
    # Elements 0..7 were read with the clear; 8 and 9 were not.
    after = np.zeros(12, np.int64)
    after[8:10] = expect[8:10]
    assert seen[1] == [list(after[i: i + 3]) for i in (0, 3, 6, 9)]


@pytest.mark.verilator
def test_lint_clean():
    from sparsim.rtl.verilator import lint_verilog
    from sparsim.rtl.verilog import component_verilog

    # The tiny preset's unit (8 cache sets per unit), one pooled bank of its 1 KiB buffer and a
    # walker over a 1 KiB index bank.
    unit = component_verilog(GatherUnit(line_bytes=16, max_outstanding=4, channels=2, pool_lanes=8,
                                        cache_lines=8, entry_bits=8))
    bank = component_verilog(PooledBuffer(entries=128, acc_bits=32, lanes=8, ports=2, entry_bits=8, read_width=4))
    walker = component_verilog(IndexWalker(word_addr_bits=8, entry_bits=8))
    lane = component_verilog(GatherLane(word_addr_bits=8, line_bytes=16, max_outstanding=4, channels=2,
                                        pool_lanes=8, cache_lines=8, entry_bits=8))
    from sparsim.rtl.verilator import lint

    hw = CASES_BY_ID["rs-example-tiny"].point.hardware  # the tiny preset
    dense = component_verilog(dense_engine(hw))
    assert lint_verilog(dense, "top") == ""
    # The engine top on the tiny preset and on the 1 x 1 array (one-bit counters).
    assert lint(hw) == ""
    assert lint(CASES_BY_ID["rs-hand-one-sample"].point.hardware) == ""
    assert lint_verilog(lane, "top") == ""
    assert lint_verilog(unit, "top") == ""
    assert lint_verilog(bank, "top") == ""
    assert lint_verilog(walker, "top") == ""


# ------------------------------------------------------------------------------------------
# Index walker


class _WalkPoint:
    """A random index block (``tables`` x ``batch`` bags, docs/recsys.md's layout) cut into
    GATHER ranges, and row dims and table bases to turn indices into row addresses."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(500 + seed)
        self.seed = seed
        self.tables = int(rng.integers(1, 4))
        self.batch = int(rng.integers(1, 8))
        self.dim = int(rng.integers(1, 70))
        empty_p = (0.0, 0.3, 0.7, 1.0)[seed % 4]
        sizes = np.where(rng.random((self.tables, self.batch)) < empty_p, 0,
                         rng.integers(1, 5, size=(self.tables, self.batch)))
        npos = self.tables * (self.batch + 1)
        words, indices = [], []
        at = npos
        for t in range(self.tables):
            words += [at + int(sizes[t, :b].sum()) for b in range(self.batch + 1)]
            idx = rng.integers(0, 1000, size=int(sizes[t].sum())).tolist()
            indices += idx
            at += len(idx)
        self.words = words + indices
        self.sizes = sizes
        self.bases = [int(rng.integers(0, 1 << 20)) for _ in range(self.tables)]
        # GATHER ranges: per table, contiguous runs of samples.
        self.cmds = []  # (table, first, bags)
        for t in range(self.tables):
            first = 0
            while first < self.batch:
                n = int(rng.integers(1, self.batch - first + 1))
                self.cmds.append((t, first, n))
                first += n

    def rows(self, t, first, n):
        """(addr, entry) of the rows of GATHER (t, first, n), and the walk's steps: the row
        number of each step, or None for an empty bag."""
        rows, steps = [], []
        for b in range(first, first + n):
            start = self.words[t * (self.batch + 1) + b]
            if not self.sizes[t, b]:
                steps.append(None)
            for i in self.words[start: start + int(self.sizes[t, b])]:
                steps.append(len(rows))
                rows.append((self.bases[t] + i * self.dim, (t * self.batch + b) * self.dim))
        return rows, steps

    def __repr__(self):
        return f"seed={self.seed} tables={self.tables} batch={self.batch} dim={self.dim}"


def _index_port(m, port, bank):
    """``port`` (a walker's) on a read port of ``bank`` with the read word registered once more,
    moving with the port's reads, as :class:`~sparsim.rtl.recsys.GatherSide` reads its index banks."""
    rd = bank.read_port()
    data = Signal(32)
    m.d.comb += [rd.addr.eq(port.addr), rd.en.eq(port.en), port.data.eq(data)]
    with m.If(port.en):
        m.d.sync += data.eq(rd.data)


class _WalkBench(Elaboratable):
    def __init__(self, pt: _WalkPoint):
        from amaranth.lib.memory import Memory

        self.bits = max(1, (len(pt.words) - 1).bit_length())
        self.walker = IndexWalker(word_addr_bits=self.bits, entry_bits=12)
        self.bank = Memory(shape=32, depth=1 << self.bits, init=pt.words)

    def elaborate(self, platform):
        m = Module()
        m.submodules.walker, m.submodules.bank = self.walker, self.bank
        _index_port(m, self.walker.pos_port, self.bank)
        _index_port(m, self.walker.idx_port, self.bank)
        return m


def run_walker(pt: _WalkPoint, stall_seed: int):
    """Walk every GATHER of ``pt``, offering the next one as soon as the walker takes it (or
    after random gaps) and taking rows with random back-pressure. Returns the accepted cycle
    of each GATHER, the first cycle after it in which ``cmd`` is ready again, and per row
    (addr, entry, first cycle offered, cycle taken)."""
    dut = _WalkBench(pt)
    w = dut.walker
    rng = random.Random(stall_seed)
    out = {"starts": [], "ready_again": [], "rows": []}

    async def bench(ctx):
        cmds = deque(pt.cmds)
        offered_since = None
        for x in range(5000):
            offer = bool(cmds) and rng.random() >= 0.2
            ctx.set(w.cmd.valid, offer)
            if offer:
                t, first, n = cmds[0]
                ctx.set(w.cmd.payload.pos, t * (pt.batch + 1) + first)
                ctx.set(w.cmd.payload.bags, n)
                ctx.set(w.cmd.payload.base, pt.bases[t])
                ctx.set(w.cmd.payload.dim, pt.dim)
                ctx.set(w.cmd.payload.entry, (t * pt.batch + first) * pt.dim)
            ready = rng.random() >= 0.4
            ctx.set(w.rows.ready, ready)
            if len(out["ready_again"]) < len(out["starts"]) and ctx.get(w.cmd.ready):
                out["ready_again"].append(x)
            if offer and ctx.get(w.cmd.ready):
                out["starts"].append(x)
                cmds.popleft()
            if ctx.get(w.rows.valid):
                if offered_since is None:
                    offered_since = x
                if ready:
                    p = w.rows.payload
                    out["rows"].append((ctx.get(p.addr), ctx.get(p.entry), offered_since, x))
                    offered_since = None
            if not cmds and ctx.get(w.cmd.ready) and not ctx.get(w.rows.valid):
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


WALK_POINTS = [_WalkPoint(seed) for seed in range(8)]


@pytest.mark.parametrize("pt", WALK_POINTS, ids=repr)
def test_index_walker_offers_rows_in_contract_cycles(pt):
    """Rows and pooled entries in bag order; each row offered in the cycle docs/recsys.md's
    walk recurrence gives (w_k = max(w_{k-1} + 1, the row before the previous one taken + 1)
    for a row step, offered from max(w_k + 1, the previous row taken + 1), one cycle per empty
    bag, WALK_CYCLES to the first row); the next GATHER is taken only after the previous
    walk's last step."""
    got = run_walker(pt, pt.seed)
    assert len(got["starts"]) == len(pt.cmds)
    rows = got["rows"]
    k = 0
    taken_prev, taken_prev2 = -1, -1
    for (t, first, n), s, again in zip(pt.cmds, got["starts"], got["ready_again"]):
        want, steps = pt.rows(t, first, n)
        w = s + isa.WALK_CYCLES - 2
        for row in steps:
            w = w + 1 if row is None else max(w + 1, taken_prev2 + 1)
            if row is not None:
                addr, entry, offered, taken = rows[k]
                assert (addr, entry) == want[row], f"row {k}"
                due = max(w + 1, taken_prev + 1)
                assert offered == due, f"row {k} offered in {offered}, the contract says {due}"
                taken_prev2, taken_prev = taken_prev, taken
                k += 1
        assert again == w + 1, f"cmd ready again in {again}, the walk's last step was in {w}"
    assert k == len(rows)


def test_walk_points_cover_the_corners():
    sizes = np.concatenate([p.sizes.ravel() for p in WALK_POINTS])
    assert (sizes == 0).any() and (sizes == 1).any() and (sizes > 1).any()
    assert any(p.sizes.all() for p in WALK_POINTS) and any(not p.sizes.any() for p in WALK_POINTS)


# ------------------------------------------------------------------------------------------
# The sparse half together: G index walkers and gather units and a pooled bank, on the first
# mini-batch's GATHERs of compiled case-table Programs


def _first_gathers(program):
    """Per unit, the GATHERs of mini-batch 0 in Program order, and that mini-batch's index block
    as words."""
    ins = program.instrs
    units = [[i for i in range(len(ins)) if ins[i]["op"] == isa.OP_GATHER and ins[i]["mb"] == 0
              and ins[i]["a"] == u] for u in range(program.hw.gather_units)]
    load = next(i for i in range(len(ins)) if ins[i]["op"] == isa.OP_LOAD and ins[i]["a"] == isa.LOAD_INDEX
                and ins[i]["mb"] == 0)
    start, n = int(ins[load]["addr"]), isa.load_lines(ins[load]) * program.hw.line_bytes
    words = np.frombuffer(bytes(program.memory[start: start + n]), dtype="<i4").tolist()
    return units, words


def sparse_reference(program):
    """docs/recsys.md's walker and gather-unit rules in plain Python, every condition met from
    cycle 0: the cycle in which the last GATHER of mini-batch 0 is done, and every line request
    as (cycle, unit, line address)."""
    from test_simulator_recsys_reference import _gather_steps

    hw = program.hw
    line = hw.line_bytes
    mem = LineMemory(bytearray(program.memory), channels=hw.memory.channels,
                     bytes_per_cycle=hw.memory.bytes_per_cycle, latency=hw.memory.latency_cycles,
                     line_bytes=line, max_outstanding=hw.max_outstanding)
    queues, _ = _first_gathers(program)
    queues = [deque(q) for q in queues]
    done = -1
    requests = []

    class Unit:
        walk = row = row2 = pool = None
        tags = 0

    us = [Unit() for _ in queues]
    for u in us:
        u.fifo, u.hits, u.cache = deque(), deque(), {}
    x = 0
    while True:
        for u in us:
            if u.pool is not None and u.pool == x - 1:
                u.pool, u.tags = None, u.tags - 1
                done = max(done, x - 1)
            if u.pool is None and u.fifo and u.fifo[0][0] < x:
                _, n = u.fifo.popleft()
                u.pool = x + -(-n // hw.pool_lanes) - 1
        for g, u in enumerate(us):
            if u.walk is None and queues[g]:
                u.walk = [deque(_gather_steps(program, queues[g].popleft())), x + isa.WALK_CYCLES - 1]
            second_free = u.row2 is None  # at the start of the cycle: a row step needs it
            if u.row is not None and u.row[0] <= x and u.tags < hw.max_outstanding:
                addr, lo, hi, _ = u.row[1].popleft()
                requests.append((x, g, addr))
                u.tags += 1
                ln = addr // line
                if hw.cache_lines and u.cache.get(ln % hw.cache_lines) == ln:
                    u.hits.append((x + isa.CACHE_HIT_CYCLES, hi - lo))
                else:
                    mem.request(x, addr, (g, ln, hi - lo), 1 + g)
                if not u.row[1]:
                    u.row = None if u.row2 is None else (x + 1, u.row2)
                    u.row2 = None
            if u.walk is not None and u.walk[1] <= x:
                steps = u.walk[0]
                if steps[0] is None or second_free:
                    step = steps.popleft()
                    if step is not None and u.row is None:
                        u.row = (x + 1, deque(step))
                    elif step is not None:
                        u.row2 = deque(step)
                    u.walk[1] = x + 1
                    if not steps:
                        u.walk = None
                        done = max(done, x)
        for _, (g, ln, n), _ in mem.responses(x):
            us[g].fifo.append((x, n))
            if hw.cache_lines:
                us[g].cache[ln % hw.cache_lines] = ln
        for u in us:
            while u.hits and u.hits[0][0] == x:
                u.fifo.append((x, u.hits.popleft()[1]))
        if not (any(queues) or not mem.idle
                or any(u.walk or u.row or u.pool is not None or u.fifo or u.hits for u in us)):
            return done, requests
        x += 1


class _SparseBench(Elaboratable):
    def __init__(self, program):
        from amaranth.lib.memory import Memory

        hw = program.hw
        self.units_q, words = _first_gathers(program)
        self.entries = program.plan.mini * program.plan.model.tables * program.plan.model.dim
        self.bits = max(1, (len(words) - 1).bit_length())
        entry_bits = max(1, self.entries.bit_length())
        self.lanes = [GatherLane(word_addr_bits=self.bits, line_bytes=hw.line_bytes,
                                 max_outstanding=hw.max_outstanding, channels=hw.memory.channels,
                                 pool_lanes=hw.pool_lanes, cache_lines=hw.cache_lines, entry_bits=entry_bits)
                      for _ in self.units_q]
        self.buffer = PooledBuffer(entries=self.entries, acc_bits=hw.acc_bits, lanes=hw.pool_lanes,
                                   ports=len(self.units_q), entry_bits=entry_bits)
        self.bank = Memory(shape=32, depth=1 << self.bits, init=[w & 0xFFFFFFFF for w in words])

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer, m.submodules.bank = self.buffer, self.bank
        for g, lane in enumerate(self.lanes):
            m.submodules[f"lane{g}"] = lane
            _index_port(m, lane.pos_port, self.bank)
            _index_port(m, lane.idx_port, self.bank)
            wiring.connect(m, lane.pool, self.buffer.pool[g])
        return m


def run_sparse(program, stall_seed: int | None = None):
    """Mini-batch 0's GATHERs on the RTL, each unit's next one offered as soon as its walker
    takes it (with ``stall_seed``: after random gaps, with random request back-pressure and
    responses delayed on their lanes). Returns the cycle the last GATHER is done (the cycle
    before the first in which every GATHER has been handed out and no lane is busy with parity
    0), every line request (cycle, unit, line address) and the pooled sums."""
    hw = program.hw
    dut = _SparseBench(program)
    mem = LineMemory(bytearray(program.memory), channels=hw.memory.channels,
                     bytes_per_cycle=hw.memory.bytes_per_cycle, latency=hw.memory.latency_cycles,
                     line_bytes=hw.line_bytes, max_outstanding=hw.max_outstanding)
    ins = program.instrs
    mini, dim = program.plan.mini, program.plan.model.dim
    out = {"done": -1, "requests": []}
    rng = random.Random(stall_seed)
    stalls = stall_seed is not None
    channels = hw.memory.channels

    async def bench(ctx):
        queues = [deque(q) for q in dut.units_q]
        delayed = [[deque() for _ in range(channels)] for _ in dut.lanes]
        for x in range(200_000):
            for unit in dut.lanes:
                for lane in unit.resp:
                    ctx.set(lane.valid, 0)
            for requester, tag, data in mem.responses(x):
                delayed[requester - 1][line_channel(tag[1], hw.line_bytes, channels)].append((tag[0], data))
            for g, unit in enumerate(dut.lanes):
                for c, waiting in enumerate(delayed[g]):
                    if waiting and not (stalls and rng.random() < 0.3):
                        tag, data = waiting.popleft()
                        ctx.set(unit.resp[c].valid, 1)
                        ctx.set(unit.resp[c].payload.tag, tag)
                        ctx.set(unit.resp[c].payload.data, int.from_bytes(data, "little"))
            all_given = not any(queues)
            any_busy = False
            for g, lane in enumerate(dut.lanes):
                offer = bool(queues[g]) and not (stalls and rng.random() < 0.3)
                ctx.set(lane.cmd.valid, offer)
                if offer:
                    row = ins[queues[g][0]]
                    t, first = int(row["b"]), int(row["k"])
                    ctx.set(lane.cmd.payload.pos, t * (mini + 1) + first)
                    ctx.set(lane.cmd.payload.bags, int(row["p"]))
                    ctx.set(lane.cmd.payload.base, int(row["addr"]))
                    ctx.set(lane.cmd.payload.dim, dim)
                    ctx.set(lane.cmd.payload.entry, (t * mini + first) * dim)
                    ctx.set(lane.cmd.payload.ctx, int(row["mb"]) % 2)
                    if ctx.get(lane.cmd.ready):
                        queues[g].popleft()
                req_ready = mem.can_request(x, 1 + g) and not (stalls and rng.random() < 0.3)
                ctx.set(lane.req.ready, req_ready)
                if ctx.get(lane.req.valid) and req_ready:
                    addr = ctx.get(lane.req.payload.addr)
                    mem.request(x, addr, (ctx.get(lane.req.payload.tag), addr), 1 + g)
                    out["requests"].append((x, g, addr))
                if ctx.get(lane.hits):
                    out["requests"].append((x, g, ctx.get(lane.req.payload.addr)))
                assert not ctx.get(lane.busy[1]), "no GATHER of odd parity was given"
                any_busy = any_busy or ctx.get(lane.busy[0])
            if all_given and not any_busy:
                # As the sequencer sees it: every GATHER handed out and no lane busy with the
                # parity, so they were all done by the cycle before.
                out["done"] = x - 1
                assert mem.idle and not any(q for lanes in delayed for q in lanes)
                break
            await ctx.tick()
        await ctx.tick()
        sums = [v[0] for v in await read_bank(ctx, dut.buffer, [1] * dut.entries)]
        out["sums"] = np.array(sums, dtype=np.int64).reshape(program.plan.model.tables, mini, dim)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


def _golden_first_pool(program):
    """Mini-batch 0's pooled sums [tables, mini, dim] (golden embedding-bag pooling)."""
    model, mini = program.plan.model, program.plan.mini
    out = np.zeros((model.tables, mini, model.dim), np.int64)
    for t, bags in enumerate(program.bags):
        rows = -(-(int(bags.indices.max(initial=0)) + 1))
        table = np.frombuffer(bytes(program.memory[program.table_base[t]: program.table_base[t] + rows * model.dim]),
                              np.int8).reshape(rows, model.dim)
        first = Bags(bags.indices[: bags.offsets[mini]], bags.offsets[: mini + 1])
        out[t] = embedding_bag(table, first, program.hw.acc_bits)
    return out


def _mixed_bags_program():
    """Two units, bags of 0 to 3 rows mixed in one mini-batch (the case table's variable bags
    start at one row), rows straddling 16-byte lines, a cache slice."""
    from sparsim.dataflow.config import design_point_from_dict
    from sparsim.dataflow.recsys import compile_design_point

    point = design_point_from_dict({
        "hardware": {"preset": "tiny", "engine": "recsys", "gather_units": 2, "max_outstanding": 3,
                     "line_bytes": 16, "pool_lanes": 4, "cache_kib": 2 * 4 * 16 / 1024, "mini_batch": 4,
                     "memory": {"channels": 2, "bytes_per_cycle": 8, "latency_cycles": 5}},
        "workload": {"kind": "dlrm", "dense_features": 2, "bottom": [3], "top": [2], "dim": 12,
                     "table_rows": [40, 30], "lookups": 3, "bags": "variable", "min_bag": 0, "batch": 4,
                     "indices": {"distribution": "zipf", "exponent": 1.2}},
        "seed": 3,
    })
    return compile_design_point(point, with_data=True)


#: Case-table points with one to four units, caches or none, all-empty bags, and the mixed
#: point above (the rest of the table costs more Amaranth-sim time than it adds).
SPARSE_CASES = ("rs-hand-one-sample", "rs-example-tiny", "rs-dp0-data1", "rs-dp2-data2", "rs-dp3-data3",
                "rs-dp5-data1", "rs-dp6-data2", "rs-dp7-data3", "mixed-bags")


@pytest.mark.parametrize("case_id", SPARSE_CASES)
def test_sparse_half_pools_golden_in_contract_cycles(case_id):

    program = _mixed_bags_program() if case_id == "mixed-bags" else CASES_BY_ID[case_id].program()
    got = run_sparse(program)
    np.testing.assert_array_equal(got["sums"], _golden_first_pool(program))
    done, requests = sparse_reference(program)
    assert got["requests"] == requests
    assert got["done"] == done


@pytest.mark.parametrize("case_id", ("rs-example-tiny", "rs-dp5-data1", "mixed-bags"))
@pytest.mark.parametrize("stall_seed", (1, 2))
def test_sparse_half_stalls_keep_the_sums(case_id, stall_seed):

    program = _mixed_bags_program() if case_id == "mixed-bags" else CASES_BY_ID[case_id].program()
    got = run_sparse(program, stall_seed)
    np.testing.assert_array_equal(got["sums"], _golden_first_pool(program))


def test_mixed_bags_point_mixes_bags():
    program = _mixed_bags_program()
    sizes = np.concatenate([b.sizes[: program.plan.mini] for b in program.bags])
    assert (sizes == 0).any() and (sizes > 0).any()


# ------------------------------------------------------------------------------------------
# The dense engine: a compiled Program's GEMM and INTER instructions, each offered as soon as the
# engine is free, with the weight and dense lines written as the loader would and the pooled
# sums (golden pooling) served as a pooled bank would. Every output row on ``out`` must equal the
# golden outputs, and every instruction must take its contract cycles
# (``Program.gemm_cycles``, from ``dataflow.recsys.dense_cycles``).


def _golden_pooled(program, m: int) -> np.ndarray:
    """Mini-batch ``m``'s pooled sums by entry ((t * P + b) * dim + d), as the GATHERs leave them."""
    hw, pl = program.hw, program.plan
    size, start = pl.mini_sizes()[m], pl.mini_starts()[m]
    out = np.zeros((pl.model.tables, size, pl.model.dim), np.int64)
    for t, bag in enumerate(program.bags):
        table = np.asarray(program.params.tables[t], np.int64)
        for b in range(size):
            idx = bag.indices[bag.offsets[start + b]: bag.offsets[start + b + 1]]
            if idx.size:
                out[t, b] = wrap(table[idx].sum(axis=0), hw.acc_bits)
    return out.reshape(-1)


def run_dense(program):
    """Run every GEMM and INTER of ``program`` on :func:`dense_engine`; returns the out rows by
    (mini-batch, sample, column) and (instruction, start cycle, end cycle) of each."""
    hw, ins, mem, line = program.hw, program.instrs, program.memory, program.hw.line_bytes
    dut = dense_engine(hw)
    words = program.words()
    dense_ops = [i for i in range(len(ins)) if ins[i]["op"] in (isa.OP_GEMM, isa.OP_INTER)]
    loads = {(int(r["a"]), int(r["mb"])): r for r in ins if r["op"] == isa.OP_LOAD}
    pooled = {m: _golden_pooled(program, m) for m in range(program.plan.mini_batches)}
    outs, timing = {}, []

    def lines(row):
        a = int(row["addr"])
        return [int.from_bytes(bytes(mem[a + i * line: a + (i + 1) * line]), "little") for i in range(isa.load_lines(row))]

    async def bench(ctx):
        for i, word in enumerate(lines(loads[(isa.LOAD_WEIGHT, 0)])):
            ctx.set(dut.weight_wr.valid, 1)
            ctx.set(dut.weight_wr.payload.addr, i)
            ctx.set(dut.weight_wr.payload.data, word)
            await ctx.tick()
        ctx.set(dut.weight_wr.valid, 0)
        x, running, written, last_read = 0, None, set(), None
        pending = list(dense_ops)
        while pending or running is not None:
            mb = int(ins[pending[0]]["mb"]) if pending else None
            if running is None and mb is not None and mb not in written:
                # The dense bank of the mini-batch, while the engine is idle (the loader's work).
                for i, word in enumerate(lines(loads[(isa.LOAD_DENSE, mb)])):
                    ctx.set(dut.dense_wr.valid, 1)
                    ctx.set(dut.dense_wr.payload.bank, mb % 2)
                    ctx.set(dut.dense_wr.payload.addr, i)
                    ctx.set(dut.dense_wr.payload.data, word)
                    await ctx.tick()
                    x += 1
                ctx.set(dut.dense_wr.valid, 0)
                written.add(mb)
            offer = running is None and mb is not None
            ctx.set(dut.cmd.valid, offer)
            if offer:
                ctx.set(Value.cast(dut.cmd.payload), words[pending[0]])
            if last_read is not None:  # the pooled bank's answer to last cycle's read
                addr, count, cur = last_read
                for c in range(hw.cols):
                    ctx.set(dut.pool_data[c], int(pooled[cur][addr + c]) if c < count else 0)
            last_read = None
            if ctx.get(dut.pool_rd.en):
                assert ctx.get(dut.pool_rd.bank) == running[2] % 2
                last_read = (ctx.get(dut.pool_rd.addr), ctx.get(dut.pool_rd.count), running[2])
            if ctx.get(dut.out.valid):
                row, col = ctx.get(dut.out.payload.row), ctx.get(dut.out.payload.col)
                # the out bank's index of the row's first value, kept by increments
                assert ctx.get(dut.out.payload.n) == row * int(ins[running[0]]["q"]) + col
                for c in range(ctx.get(dut.out.payload.count)):
                    outs[(running[2], row, col + c)] = ctx.get(dut.out.payload.values[c])
            if ctx.get(dut.ended):
                timing.append((running[0], running[1], x))
                running = None
            if offer and ctx.get(dut.cmd.ready):
                running = (pending.pop(0), x, mb)
            await ctx.tick()
            x += 1
            assert x < 100_000, "the dense engine made no progress"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return outs, timing


def _dense_mismatches(program, outs) -> list[str]:
    expected, starts = program.expected, program.plan.mini_starts()
    bad = [f"mb {m} sample {b} out {q}: rtl {v} golden {expected[starts[m] + b, q]}"
           for (m, b, q), v in outs.items() if v != expected[starts[m] + b, q]]
    if len(outs) != expected.size:
        bad.append(f"{len(outs)} outputs, golden has {expected.size}")
    return bad


#: Case-table points: both dataflows, concat and dot, dims off the array width, several
#: mini-batches (both bank parities), 1 x 1 to 4 x 4 arrays.
DENSE_CASES = ("rs-hand-one-sample", "rs-example-tiny", "rs-dp1-data1", "rs-dp4-data2", "rs-dp5-data1",
               "rs-dp6-data2")


@pytest.mark.parametrize("case_id", DENSE_CASES)
def test_dense_engine_is_golden_in_contract_cycles(case_id):
    program = CASES_BY_ID[case_id].program()
    outs, timing = run_dense(program)
    assert _dense_mismatches(program, outs) == []
    assert [(i, end - start + 1) for i, start, end in timing] == [
        (i, int(program.gemm_cycles[i])) for i, _, _ in timing]
    assert len(timing) == int(np.isin(program.instrs["op"], (isa.OP_GEMM, isa.OP_INTER)).sum())


def test_dense_cases_cover_both_interactions():
    models = [CASES_BY_ID[c].program().plan.model for c in DENSE_CASES]
    assert {mo.interaction for mo in models} == {"concat", "dot"}
    hws = [CASES_BY_ID[c].program().hw for c in DENSE_CASES]
    assert any(mo.dim % hw.cols for mo, hw in zip(models, hws))
    assert {(hw.rows, hw.cols) for hw in hws} >= {(1, 1), (4, 4)}
    assert {(hw.dataflow, mo.interaction) for mo, hw in zip(models, hws)} == {
        ("os", "concat"), ("os", "dot"), ("ws", "concat"), ("ws", "dot")}


def test_dense_engine_negative_control():
    """A corrupted weight makes the outputs differ: the check can fail."""
    program = CASES_BY_ID["rs-dp4-data2"].program()
    program.memory[0] ^= 0x5A  # the first weight of the first bottom layer
    outs, _ = run_dense(program)
    assert _dense_mismatches(program, outs)


def test_rtl_refuses_what_it_does_not_run_in_one_line(capsys):
    from sparsim.cli import main

    assert main(["rtl", "examples/recsys_tiny.yaml", "--set", "hardware.pool_lanes=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sparsim: error: hardware.cols") and "\n" not in err and "Traceback" not in err
    # A fold's biases (8 columns x 4 bytes) must lie in two lines of 16 bytes.
    assert main(["rtl", "examples/recsys_tiny.yaml", "--set", "hardware.cols=8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sparsim: error: hardware.cols") and "biases" in err and "\n" not in err


@pytest.mark.parametrize("poison", (False, True))
def test_collision_poison_inverts_a_read_of_the_word_being_written(poison):
    """Negative control of the ``no_rw_check`` check (tests/test_case_table.py): with the poison
    on, a line read in the cycle it is written comes back inverted; without it, old (Amaranth's
    rule for these read ports), so the case-table check can fail."""
    from sparsim.rtl import recsys as rs_rtl

    m = Module()
    with (rs_rtl.poison_collisions() if poison else contextlib.nullcontext()):
        copies = rs_rtl._LineCopies(m, "t", copies=1, depth=4, line=2)
        en, addr, wdata, raddr = Signal(), Signal(2), Signal(16), Signal(3)
        copies.write(en, addr, wdata)
        copies.read(0, raddr)
        out = Signal(8)
        m.d.comb += out.eq(copies.data(0))
    seen = []

    async def bench(ctx):
        # Line 1 written (0x3412) as its read address (byte 2 = line 1, byte 0) is registered;
        # in the next cycle it is read while 0x7856 is written to it: a collision.
        ctx.set(en, 1), ctx.set(addr, 1), ctx.set(wdata, 0x3412), ctx.set(raddr, 2)
        await ctx.tick()
        ctx.set(wdata, 0x7856)
        await ctx.tick()
        ctx.set(en, 0)
        for _ in range(4):
            await ctx.tick()
            seen.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert (0x12 ^ 0xFF if poison else 0x12) in seen, [hex(v) for v in seen]


@pytest.mark.parametrize("poison", (False, True))
def test_collision_poison_reaches_the_walker_through_an_index_bank(poison):
    """Negative control of the same check for the index banks (``no_rw_check`` too): a GATHER
    taken in the cycle its index line is rewritten reads the line as it is written; with the
    poison the walker sees its words inverted and the row's request is lost, without it the
    old (identical) words give the row at index 5: line 80."""
    from sparsim.rtl import recsys as rs_rtl

    side = rs_rtl.GatherSide(units=1, line_bytes=16, max_outstanding=2, channels=1, pool_lanes=8,
                             cache_lines=0, index_lines=4, entries=64, acc_bits=16, read_width=2)
    line = 2 | 3 << 32 | 5 << 64  # positions 2 and 3 (one bag of one row), index 5
    seen = []

    async def bench(ctx):
        ctx.set(side.req[0].ready, 1)
        ctx.set(side.idx_wr.payload.data, line)
        ctx.set(side.idx_wr.valid, 1)
        await ctx.tick()
        # The same line written again as the GATHER is taken: both of its first reads collide.
        cmd = side.cmd[0]
        ctx.set(cmd.payload.pos, 0), ctx.set(cmd.payload.bags, 1), ctx.set(cmd.payload.dim, 16)
        ctx.set(cmd.valid, 1)
        await ctx.tick()
        ctx.set(cmd.valid, 0), ctx.set(side.idx_wr.valid, 0)
        for _ in range(20):
            if ctx.get(side.req[0].valid):
                seen.append(ctx.get(side.req[0].payload.addr))
            await ctx.tick()

    with (rs_rtl.poison_collisions() if poison else contextlib.nullcontext()):
        sim = Simulator(side)  # elaborates it
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert (seen == [80]) != poison, seen
