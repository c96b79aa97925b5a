"""A second reading of docs/recsys.md's timing, in plain Python on the cycle-driven memory model
the RTL benches use (``sparsim.simulator.memory.LineMemory``), against the Numba kernel.

The reference shares no code with simulator/recsys.py: its line requests come from the bags by
NumPy, its tags, caches, pooling queues and engines are plain Python objects, and every read and
write goes through ``LineMemory`` (which also serves the lines' bytes: the reference pools them
and checks the pooled sums against the golden model's). Cycles, dense-engine stalls and request
counts must equal the kernel's on every recsys case of the case table.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from cases import RS_CASES, Case, rs_gather_bound_point
from sparsim.dataflow import recsys_isa as isa
from sparsim.dataflow.dlrm import embedding_bag
from sparsim.simulator.memory import LineMemory
from sparsim.simulator.recsys import run

INF = float("inf")


def _gather_steps(program, i):
    """The index walker's steps of GATHER ``i``, in order: ``None`` for an empty bag, else a
    row's lines as (line address, first byte, last byte + 1, (table, sample, row address))."""
    row = program.instrs[i]
    t, first, n, dim = int(row["b"]), int(row["k"]), int(row["p"]), int(row["q"])
    bag = program.bags[t]
    s0 = program.plan.mini_starts()[int(row["mb"])] + first
    out = []
    line = program.hw.line_bytes
    for b in range(n):
        indices = bag.indices[bag.offsets[s0 + b]: bag.offsets[s0 + b + 1]]
        if not len(indices):
            out.append(None)
        for index in indices:
            a = int(row["addr"]) + int(index) * dim
            out.append([(ln * line, max(a, ln * line), min(a + dim, (ln + 1) * line), (t, s0 + b, a))
                        for ln in range(a // line, (a + dim - 1) // line + 1)])
    return out


def reference(program):
    hw, ins = program.hw, program.instrs
    line, acc_bits = hw.line_bytes, hw.acc_bits
    mem = LineMemory(bytearray(program.memory), channels=hw.memory.channels,
                     bytes_per_cycle=hw.memory.bytes_per_cycle, latency=hw.memory.latency_cycles,
                     line_bytes=line, max_outstanding=hw.max_outstanding)
    op = [int(v) for v in ins["op"]]
    mbs = [int(v) for v in ins["mb"]]
    n_mb = program.plan.mini_batches
    ev = {k: [INF] * n_mb for k in ("ldd", "ldi", "gall", "bot", "inter", "top", "store")}
    w_done = INF
    g_left = [0] * n_mb
    g_max = [-1] * n_mb
    for i, o in enumerate(op):
        if o == isa.OP_GATHER:
            g_left[mbs[i]] += 1
    for m in range(n_mb):
        if not g_left[m]:
            ev["gall"][m] = -1
    loader = deque(i for i, o in enumerate(op) if o == isa.OP_LOAD)
    units = [deque(i for i, o in enumerate(op) if o == isa.OP_GATHER and int(ins[i]["a"]) == u)
             for u in range(hw.gather_units)]
    dense = deque(i for i, o in enumerate(op) if o in (isa.OP_GEMM, isa.OP_INTER))
    stores = deque(i for i, o in enumerate(op) if o == isa.OP_STORE)
    steps_of = {i: _gather_steps(program, i) for i, o in enumerate(op) if o == isa.OP_GATHER}
    lines_of = {i: sum(len(s) for s in steps if s) for i, steps in steps_of.items()}
    walked = set()
    load_left = {i: isa.load_lines(ins[i]) for i in loader}

    class Unit:
        def __init__(self):
            self.walk = None  # [instr, steps left, cycle of the next step]
            self.row = None  # (offered from, instr, pending lines): the row register
            self.row2 = None  # (instr, pending lines): the row buffer's second slot
            self.tags = 0
            self.fifo = deque()  # (arrival, instr, lo, hi, entry, data)
            self.hits = deque()  # (due, instr, lo, hi, entry, data)
            self.pool = None  # (end, instr)
            self.cache = {}
            self.fills = deque()  # (delivery cycle, line): in its set from + CACHE_FILL_CYCLES on

    us = [Unit() for _ in range(hw.gather_units)]
    g_pooled = {i: 0 for i in lines_of}
    loader_cur = None  # (instr, next line)
    written = -1  # cycle of the loader's latest line write
    store_cur = None
    store_max = -1
    d_end, last = -1, -1
    dense_stalls = [0] * 5
    counts = {"requests": 0, "cache_hits": 0, "loader_lines": 0, "store_lines": 0}
    tag_ids = iter(range(1 << 40))
    meta = {}
    pooled: dict[tuple[int, int], np.ndarray] = {}

    def gather_done(i, t):
        nonlocal last
        m = mbs[i]
        g_left[m] -= 1
        g_max[m] = max(g_max[m], t)
        if not g_left[m]:
            ev["gall"][m] = g_max[m]
        last = max(last, t)

    x = 0
    while True:
        for u in us:  # tags back after pooling, then the next pooling
            if u.pool is not None and u.pool[0] == x - 1:
                i = u.pool[1]
                u.pool = None
                u.tags -= 1
                g_pooled[i] += 1
                if g_pooled[i] == lines_of[i] and i in walked:
                    gather_done(i, x - 1)
            if u.pool is None and u.fifo and u.fifo[0][0] < x:
                _, i, lo, hi, (t, sample, row_addr), data = u.fifo.popleft()
                u.pool = (x + -(-(hi - lo) // hw.pool_lanes) - 1, i)
                acc = pooled.setdefault((t, sample), np.zeros(int(ins[i]["q"]), np.int64))
                acc[lo - row_addr: hi - row_addr] += np.frombuffer(data, np.int8)[lo % line: lo % line + hi - lo]
        for u in us:  # cache fills become visible to this cycle's lookups
            while u.fills and u.fills[0][0] + isa.CACHE_FILL_CYCLES <= x:
                _, ln = u.fills.popleft()
                u.cache[ln % hw.cache_lines] = ln
        # Loader.
        if loader_cur is None and loader:
            i = loader[0]
            m, a = mbs[i], int(ins[i]["a"])
            ok = (a == isa.LOAD_WEIGHT or (a == isa.LOAD_DENSE and (m < 2 or ev["bot"][m - 2] < x))
                  or (a == isa.LOAD_INDEX and (m < 2 or ev["gall"][m - 2] + isa.LOAD_WAIT_CYCLES < x)))
            if ok:
                loader.popleft()
                loader_cur = [i, 0]
        if loader_cur is not None and mem.can_request(x, 0):
            i, j = loader_cur
            tag = next(tag_ids)
            meta[tag] = ("load", i)
            mem.request(x, int(ins[i]["addr"]) + j * line, tag, 0)
            counts["loader_lines"] += 1
            loader_cur[1] += 1
            if loader_cur[1] == isa.load_lines(ins[i]):
                loader_cur = None
        # Gather units: walker start, the offered row's next line, then the walker's step.
        for g, u in enumerate(us):
            if u.walk is None and units[g]:
                i = units[g][0]
                m = mbs[i]
                if ev["ldi"][m] < x and (m < 2 or ev["inter"][m - 2] < x):
                    units[g].popleft()
                    u.walk = [i, deque(steps_of[i]), x + isa.WALK_CYCLES - 1]
            second_free = u.row2 is None  # at the start of the cycle: a row step needs it
            if u.row is not None and u.row[0] <= x and u.tags < hw.max_outstanding:
                _, i, pending = u.row
                addr, lo, hi, entry = pending.popleft()
                counts["requests"] += 1
                u.tags += 1
                ln = addr // line
                if hw.cache_lines and u.cache.get(ln % hw.cache_lines) == ln:
                    counts["cache_hits"] += 1
                    u.hits.append((x + isa.CACHE_HIT_CYCLES, i, lo, hi, entry, bytes(mem.image[addr: addr + line])))
                else:
                    tag = next(tag_ids)
                    meta[tag] = ("row", i, lo, hi, entry, ln)
                    mem.request(x, addr, tag, 1 + g)
                if not pending:
                    u.row = None if u.row2 is None else (x + 1, *u.row2)
                    u.row2 = None
            if u.walk is not None and u.walk[2] <= x:
                i, steps, _ = u.walk
                if steps[0] is None:
                    steps.popleft()
                elif not second_free:
                    continue
                elif u.row is None:
                    u.row = (x + 1, i, deque(steps.popleft()))
                else:
                    u.row2 = (i, deque(steps.popleft()))
                u.walk[2] = x + 1
                if not steps:
                    u.walk = None
                    walked.add(i)
                    if g_pooled[i] == lines_of[i]:
                        gather_done(i, x)
        # Store.
        if store_cur is None and stores and ev["top"][mbs[stores[0]]] < x:
            i = stores.popleft()
            nbytes = int(ins[i]["p"]) * int(ins[i]["k"]) * hw.acc_bytes
            store_cur = [i, 0, -(-nbytes // line)]
            store_max = x - 1
        if store_cur is not None:
            i, j, n = store_cur
            addr = int(ins[i]["addr"]) + j * line
            store_max = max(store_max, mem.write(x, addr, bytes(mem.image[addr: addr + line])))
            counts["store_lines"] += 1
            store_cur[1] += 1
            if store_cur[1] == n:
                ev["store"][mbs[i]] = store_max
                last = max(last, store_max)
                store_cur = None
        # Deliveries: channels in order, then the cache hits.
        for requester, tag, data in mem.responses(x):
            kind = meta.pop(tag)
            if kind[0] == "load":
                i = kind[1]
                written = max(x, written + 1)  # one line write per cycle, in delivery order
                load_left[i] -= 1
                if not load_left[i]:
                    last = max(last, written)
                    a, m = int(ins[i]["a"]), mbs[i]
                    # (done LOAD_DONE_CYCLES after the last line's write; the END waits for the write)
                    if a == isa.LOAD_WEIGHT:
                        w_done = written + isa.LOAD_DONE_CYCLES
                    else:
                        ev["ldd" if a == isa.LOAD_DENSE else "ldi"][m] = written + isa.LOAD_DONE_CYCLES
            else:
                _, i, lo, hi, entry, ln = kind
                u = us[requester - 1]
                u.fifo.append((x, i, lo, hi, entry, data))
                if hw.cache_lines:
                    u.fills.append((x, ln))
        for u in us:
            while u.hits and u.hits[0][0] == x:
                _, i, lo, hi, entry, data = u.hits.popleft()
                u.fifo.append((x, i, lo, hi, entry, data))
        # Dense engine.
        if dense and d_end < x:
            i = dense[0]
            m, fb = mbs[i], int(ins[i]["b"])
            if op[i] == isa.OP_INTER:
                cause = 2 if ev["gall"][m] >= x else -1
            elif w_done >= x:
                cause = 0
            elif fb & isa.SRC_DENSE and ev["ldd"][m] >= x:
                cause = 1
            elif fb & isa.DST_OUT and m >= 2 and ev["store"][m - 2] >= x:
                cause = 3
            else:
                cause = -1
            if cause >= 0:
                dense_stalls[cause] += 1
            else:
                dense.popleft()
                d_end = x + int(program.gemm_cycles[i]) - 1
                last = max(last, d_end)
                if op[i] == isa.OP_INTER:
                    ev["inter"][m] = d_end
                else:
                    if fb & isa.SRC_DENSE:
                        ev["bot"][m] = d_end
                    if fb & isa.DST_OUT:
                        ev["top"][m] = d_end
        busy = (loader or loader_cur or stores or store_cur or dense or d_end >= x or not mem.idle
                or any(u.walk or u.row or u.pool or u.fifo or u.hits or units[g] for g, u in enumerate(us)))
        if not busy:
            break
        x += 1
    cycles = last + 2
    dense_stalls[4] = cycles - (d_end + 1)
    return cycles, dense_stalls, counts, pooled


REFERENCE_CASES = RS_CASES + tuple(Case(id=f"gather-bound-{k}", point=rs_gather_bound_point(k, k)) for k in range(8))


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=lambda c: c.id)
def test_kernel_equals_the_reference(case):
    program = case.program()
    cycles, dense_stalls, counts, pooled = reference(program)
    timed = run(program)
    assert timed.cycles == cycles
    assert [timed.stalls[k] for k in ("dense_weights", "dense_load", "dense_gather", "dense_out_bank",
                                       "dense_tail")] == dense_stalls
    for name, value in counts.items():
        assert timed.counters[name] == value, name
    # The lines LineMemory delivered hold the rows the golden model pools.
    for t, (table, bag) in enumerate(zip(program.params.tables, program.bags)):
        want = embedding_bag(table, bag, 64)
        got = np.stack([pooled.get((t, s), np.zeros(table.shape[1], np.int64)) for s in range(bag.batch)])
        np.testing.assert_array_equal(got, want)
