"""The shared RTL shell (rtl/shell.py) under Amaranth's simulator: each component against a
cycle-by-cycle reference of its docstring contract, with random stalls on its streams, plus the
top signature, the instruction layout and constructor validation."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
from amaranth.hdl import Const, Fragment
from amaranth.lib import data, wiring
from amaranth.sim import Simulator

from sparsim.dataflow import dsp_chain_isa as isa
from sparsim.rtl import shell
from sparsim.rtl.dsp_chain import INSTR_LAYOUT, DspChainAccelerator


def _simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


# ------------------------------------------------------------------------------------------
# Layouts and the top signature


def test_instruction_layout_is_the_isa_field_table():
    assert INSTR_LAYOUT.size == isa.INSTR_BITS
    for name, lo, width in isa.FIELDS:
        assert (INSTR_LAYOUT[name].offset, INSTR_LAYOUT[name].width) == (lo, width), name
    reserved = {name for name, _ in INSTR_LAYOUT if name.startswith("reserved_")}
    assert reserved == {"reserved_59"} and INSTR_LAYOUT["reserved_59"].width == 5


def test_instruction_layout_decodes_encoded_words():
    row = np.zeros(1, dtype=isa.INSTR_DTYPE)[0]
    row["op"], row["int4"], row["n_log2"], row["steps"], row["tgroups"] = isa.OP_MM, 1, 3, 513, 7
    row["gpad"], row["sync"], row["addr_a"], row["addr_b"] = 300, 1, 0xDEADBEEF, 0x12345678
    view = data.Const(INSTR_LAYOUT, isa.encode_instruction(row))
    for name, _, _ in isa.FIELDS:
        assert view[name] == int(row[name]), name


@pytest.mark.parametrize(
    "fields,message",
    [
        ((("a", 0, 4), ("b", 3, 2)), "field b at bit 3 overlaps the previous field (ends at 4)"),
        ((("a", 0, 4), ("b", 6, 4)), "fields end at bit 10, beyond the 8-bit word"),
    ],
)
def test_struct_from_fields_rejects_bad_tables(fields, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        shell.struct_from_fields(fields, 8)


def _tiny_top():
    from sparsim.dataflow.config import design_point_from_dict

    hw = design_point_from_dict(
        {
            "hardware": {"preset": "tiny"},
            "workload": {"kind": "gemm", "layers": [{"rows": 2, "k": 8, "sparsity": "2:8"}]},
        }
    ).hardware
    return DspChainAccelerator(hw)


def test_top_ports_state_read_data_is_never_stalled():
    top = _tiny_top()
    rd_data = top.signature.members["rd_data"].signature
    assert rd_data.always_ready
    assert isinstance(top.rd_data.ready, Const)
    names = set(shell.top_ports(top))
    assert "rd_data__ready" not in names
    assert {"instr__ready", "rd_req__valid", "rd_data__valid", "wr__payload", "done", "cycles"} <= names
    Fragment.get(top, None)  # elaborates: every output is driven


def test_top_signature_is_built_from_the_layouts():
    req = shell.read_request_layout(addr_bits=32, count_bits=16, max_rec_bytes=11)
    wr = shell.write_layout(addr_bits=32, data_bits=64)
    sig = shell.top_signature(instr_layout=INSTR_LAYOUT, request_layout=req, read_data_bits=88, write_layout=wr)
    assert sig.members["rd_req"].signature.members["payload"].shape == req
    assert sig.members["wr"].signature.members["payload"].shape == wr
    assert sig.members["instr"].flow == wiring.In
    assert sig.members["cycles"].shape == shell.CYCLE_BITS
    assert req["rec_bytes"].width == 4  # range(12)


# ------------------------------------------------------------------------------------------
# Receiver: in-order routing of read data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_receiver_routes_records_in_request_order(seed):
    rng = np.random.default_rng(seed)
    depth = 3
    dut = shell.Receiver(data_bits=16, targets=3, count_bits=4, depth=depth)
    routes = [(int(rng.integers(0, 3)), int(rng.integers(1, 6))) for _ in range(12)]
    expected = [(t, i, i == n - 1) for t, n in routes for i in range(n)]
    total = len(expected)
    seen = []  # (target, index, last, data)
    sent = []  # data of every record offered while a route was held

    async def bench(ctx):
        pushed = 0
        held = 0  # routes pushed and not yet retired, by our own count
        left_in_head = None
        for _ in range(2000):
            if len(seen) == total:
                break
            # Routes: push whenever one is pending and a coin says so.
            offer = pushed < len(routes) and rng.random() < 0.5
            ctx.set(dut.route.valid, int(offer))
            if offer:
                ctx.set(dut.route.payload.target, routes[pushed][0])
                ctx.set(dut.route.payload.count, routes[pushed][1])
            ready = ctx.get(dut.route.ready)
            assert ready == int(held < depth)
            # Records: only for requests already made (as memory would), with random gaps.
            record = held > 0 and rng.random() < 0.6
            value = int(rng.integers(0, 1 << 16))
            ctx.set(dut.rd_data.valid, int(record))
            ctx.set(dut.rd_data.payload, value)
            if record:
                assert ctx.get(dut.beat.valid)
                seen.append(
                    (
                        ctx.get(dut.beat.payload.target),
                        ctx.get(dut.beat.payload.index),
                        bool(ctx.get(dut.beat.payload.last)),
                        ctx.get(dut.beat.payload.data),
                    )
                )
                sent.append(value)
            else:
                assert not ctx.get(dut.beat.valid)
            if offer and ready:
                pushed += 1
                held += 1
            if record and seen[-1][2]:
                held -= 1
            await ctx.tick()

    _simulate(dut, bench)
    assert [s[:3] for s in seen] == expected
    assert [s[3] for s in seen] == sent


@pytest.mark.parametrize("seed", [0, 1])
def test_receiver_ahead_is_the_next_beat(seed):
    """``ahead=True``: each cycle ``ahead`` holds what the next cycle's beat carries (a route
    held, its target, its last record), for a consumer's own registers."""
    rng = np.random.default_rng(seed)
    depth = 3
    dut = shell.Receiver(data_bits=8, targets=4, count_bits=4, depth=depth, ahead=True)
    routes = [(int(rng.integers(0, 4)), int(rng.integers(1, 5))) for _ in range(12)]
    total = sum(n for _, n in routes)
    checked = []

    async def bench(ctx):
        pushed, held, got = 0, 0, 0
        predicted = None
        for _ in range(2000):
            if got == total:
                break
            offer = pushed < len(routes) and rng.random() < 0.5
            ctx.set(dut.route.valid, int(offer))
            if offer:
                ctx.set(dut.route.payload.target, routes[pushed][0])
                ctx.set(dut.route.payload.count, routes[pushed][1])
            ready = ctx.get(dut.route.ready)
            record = held > 0 and rng.random() < 0.6
            ctx.set(dut.rd_data.valid, int(record))
            if predicted is not None:  # (this cycle's beat, before this cycle's inputs act)
                assert predicted[0] == int(held > 0)
                if held:
                    assert predicted[1:] == (ctx.get(dut.beat.payload.target), ctx.get(dut.beat.payload.last))
                    checked.append(predicted)
            if record:
                got += 1
                if ctx.get(dut.beat.payload.last):
                    held -= 1
            if offer and ready:
                pushed += 1
                held += 1
            predicted = (ctx.get(dut.ahead.held), ctx.get(dut.ahead.target), ctx.get(dut.ahead.last))
            await ctx.tick()

    _simulate(dut, bench)
    assert len(checked) > total


def test_receiver_drops_records_without_a_route():
    dut = shell.Receiver(data_bits=8, targets=2, count_bits=4, depth=2)

    async def bench(ctx):
        ctx.set(dut.rd_data.valid, 1)
        assert not ctx.get(dut.beat.valid)
        await ctx.tick()
        ctx.set(dut.route.valid, 1)
        ctx.set(dut.route.payload.count, 1)
        ctx.set(dut.route.payload.target, 1)
        ctx.set(dut.rd_data.valid, 0)
        await ctx.tick()
        ctx.set(dut.route.valid, 0)
        ctx.set(dut.rd_data.valid, 1)
        assert ctx.get(dut.beat.valid) and ctx.get(dut.beat.payload.index) == 0
        assert ctx.get(dut.beat.payload.last) and ctx.get(dut.beat.payload.target) == 1

    _simulate(dut, bench)


# ------------------------------------------------------------------------------------------
# Store: bursts under back-pressure


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_store_writes_each_job_in_order_under_back_pressure(seed):
    rng = np.random.default_rng(seed)
    row_bytes, banks = 12, 2
    dut = shell.Store(banks=banks, addr_bits=16, count_bits=4, data_bits=32, row_bytes=row_bytes)
    content = rng.integers(0, 1 << 32, size=(banks, 16), dtype=np.uint64)
    jobs = [(j % banks, int(rng.integers(0, 1000)), int(rng.integers(1, 6))) for j in range(8)]
    ready_p = [1.0, 0.3][seed % 2]
    log = []  # (cycle, event, ...)

    async def bench(ctx):
        nxt = 0
        prev_row = 0
        offered_since = None
        for x in range(400):
            if nxt == len(jobs) and not ctx.get(dut.busy):
                break
            # Synchronous read port of the bank being stored: the row asked for last cycle.
            ctx.set(dut.read_data, int(content[ctx.get(dut.bank), prev_row]))
            offer = nxt < len(jobs) and rng.random() < 0.7
            ctx.set(dut.job.valid, int(offer))
            if offer:
                bank, addr, rows = jobs[nxt]
                ctx.set(dut.job.payload.bank, bank)
                ctx.set(dut.job.payload.addr, addr)
                ctx.set(dut.job.payload.rows, rows)
            w_ready = int(rng.random() < ready_p)
            ctx.set(dut.wr.ready, w_ready)
            busy = ctx.get(dut.busy)
            assert ctx.get(dut.wr.valid) == busy
            finishing = busy and w_ready and ctx.get(dut.wr.payload.last)
            assert ctx.get(dut.job.ready) == int(not busy or finishing)
            assert ctx.get(dut.done) == int(finishing)
            if busy:
                if offered_since is None:
                    offered_since = x
                if w_ready:
                    log.append(
                        ("row", x, ctx.get(dut.wr.payload.addr), ctx.get(dut.wr.payload.data),
                         bool(ctx.get(dut.wr.payload.last)))
                    )
                    offered_since = None
            if offer and ctx.get(dut.job.ready):
                log.append(("job", x, nxt))
                nxt += 1
            prev_row = ctx.get(dut.read_row)
            await ctx.tick()
        assert nxt == len(jobs)

    _simulate(dut, bench)
    rows_seen = [e for e in log if e[0] == "row"]
    want = [
        (addr + i * row_bytes, int(content[bank, i]), i == rows - 1)
        for bank, addr, rows in jobs
        for i in range(rows)
    ]
    assert [(a, d, last) for _, _, a, d, last in rows_seen] == want
    # Each job's first row is offered the cycle after it is taken: with an always-ready port it
    # is accepted then, and the rows of a job follow back to back.
    if ready_p == 1.0:
        taken = [x for kind, x, *_ in log if kind == "job"]
        firsts, i = [], 0
        for _, _, rows in jobs:
            firsts.append(rows_seen[i][1])
            i += rows
        assert firsts == [t + 1 for t in taken]
        i = 0
        for _, _, rows in jobs:
            cycles = [r[1] for r in rows_seen[i : i + rows]]
            assert cycles == list(range(cycles[0], cycles[0] + rows))
            i += rows


# ------------------------------------------------------------------------------------------
# Loader: fetch, issue, wait, end


_OP_WAIT, _OP_NOWAIT, _OP_END = 1, 2, 0
_TEST_INSTR = shell.struct_from_fields((("op", 0, 2), ("count", 2, 4), ("addr", 8, 8)), 16)


def _test_loader(**options):
    """A loader of the test ISA above: one waiting and one non-waiting load, two targets."""
    request = shell.read_request_layout(addr_bits=8, count_bits=4, max_rec_bytes=3)
    return shell.Loader(
        instr_layout=_TEST_INSTR,
        op_field="op",
        loads={_OP_WAIT: True, _OP_NOWAIT: False},
        request_layout=request,
        targets=2,
        **options,
    )


def _encode(program):
    return [op | (count << 2) | (addr << 8) for op, count, addr in program]


def _drive_loader(ctx, dut, words, pc, *, offer, load_valid):
    """One cycle of a :func:`_test_loader`'s inputs from the test benches below: instruction
    ``pc`` offered or not, and the engine's load (the current instruction's fields) allowed or
    not. Returns the current instruction."""
    ctx.set(dut.instr.valid, int(offer))
    if offer:
        ctx.set(dut.instr.payload.as_value(), words[pc])
    cur = ctx.get(dut.current)
    ctx.set(dut.load.valid, int(load_valid))
    ctx.set(dut.load.payload.request.addr, cur.addr)
    ctx.set(dut.load.payload.request.count, cur.count)
    ctx.set(dut.load.payload.request.rec_bytes, 3)
    ctx.set(dut.load.payload.target, cur.op & 1)
    return cur


def test_loader_issues_loads_waits_and_ends():
    dut = _test_loader()
    program = [(_OP_NOWAIT, 3, 10), (_OP_WAIT, 2, 20), (_OP_NOWAIT, 1, 30), (_OP_END, 0, 0)]
    words = _encode(program)
    events = []

    async def bench(ctx):
        pc = 0
        arrive_at = None
        for x in range(60):
            if ctx.get(dut.done):
                events.append(("done", x, ctx.get(dut.cycles)))
                break
            # The engine allows each load two cycles after its instruction is taken.
            allow = bool(events) and events[-1][0] == "fetch" and x >= events[-1][1] + 2
            cur = _drive_loader(ctx, dut, words, pc, offer=pc < len(words), load_valid=allow)
            ctx.set(dut.rd_req.ready, 1)
            ctx.set(dut.route.ready, 1)
            ctx.set(dut.arrived, int(arrive_at == x))
            ctx.set(dut.idle, int(x >= 40))
            assert ctx.get(dut.rd_req.valid) == ctx.get(dut.route.valid)
            if ctx.get(dut.instr.ready) and pc < len(words):
                events.append(("fetch", x, pc))
                pc += 1
            if ctx.get(dut.rd_req.valid):
                assert ctx.get(dut.load.ready)
                events.append(
                    ("issue", x, ctx.get(dut.rd_req.payload.addr), ctx.get(dut.route.payload.count),
                     ctx.get(dut.route.payload.target))
                )
                if cur.op == _OP_WAIT:
                    arrive_at = x + 5
            await ctx.tick()

    _simulate(dut, bench)
    assert events == [
        ("fetch", 0, 0),
        ("issue", 2, 10, 3, 0),
        ("fetch", 3, 1),  # the cycle after the issue
        ("issue", 5, 20, 2, 1),
        ("fetch", 11, 2),  # the cycle after the data arrived (5 + 5 = 10)
        ("issue", 13, 30, 1, 0),
        ("fetch", 14, 3),
        ("done", 41, 41),  # idle from 40: done from 41, and the counter stopped at 41
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loader_under_random_stalls_issues_each_load_once_in_order(seed):
    """Gaps on the instruction stream, late permission from the engine, back-pressure from
    memory and from the receiver's route queue: every load is issued exactly once, in program
    order, with its own fields, and a waiting load holds the next fetch until its data."""
    rng = np.random.default_rng(seed)
    dut = _test_loader()
    program = [(int(rng.choice([_OP_WAIT, _OP_NOWAIT])), int(rng.integers(1, 16)), int(rng.integers(0, 256)))
               for _ in range(10)] + [(_OP_END, 0, 0)]
    words = _encode(program)
    issued = []
    fetched = []

    async def bench(ctx):
        pc = 0
        waiting = False
        arrive_at = None
        for x in range(1000):
            if ctx.get(dut.done):
                break
            offer = pc < len(words) and rng.random() < 0.6
            cur = _drive_loader(ctx, dut, words, pc, offer=offer, load_valid=rng.random() < 0.5)
            ctx.set(dut.rd_req.ready, int(rng.random() < 0.6))
            ctx.set(dut.route.ready, int(rng.random() < 0.8))
            ctx.set(dut.arrived, int(arrive_at == x))
            ctx.set(dut.idle, int(pc == len(words)))
            if ctx.get(dut.instr.ready):
                assert not waiting, "fetched while a waiting load's data was outstanding"
                if offer:
                    fetched.append(pc)
                    pc += 1
            req = ctx.get(dut.rd_req.valid) and ctx.get(dut.rd_req.ready)
            route = ctx.get(dut.route.valid) and ctx.get(dut.route.ready)
            assert req == route  # a request and its route go together
            if req:
                issued.append((ctx.get(dut.rd_req.payload.addr), ctx.get(dut.route.payload.count),
                               ctx.get(dut.route.payload.target)))
                if cur.op == _OP_WAIT:
                    waiting, arrive_at = True, x + int(rng.integers(1, 6))
            if arrive_at == x:
                waiting, arrive_at = False, None
            await ctx.tick()
        assert ctx.get(dut.done)

    _simulate(dut, bench)
    assert fetched == list(range(len(words)))
    assert issued == [(addr, count, op & 1) for op, count, addr in program if op != _OP_END]


def test_registered_loader_offers_each_request_a_cycle_after_its_issue():
    """``registered_request``: the load is taken (issued) without ``rd_req.ready``; its request
    and route are offered from the next cycle; fetches follow the issue as without it."""
    dut = _test_loader(registered_request=True)
    program = [(_OP_NOWAIT, 3, 10), (_OP_WAIT, 2, 20), (_OP_NOWAIT, 1, 30), (_OP_END, 0, 0)]
    words = _encode(program)
    events = []

    async def bench(ctx):
        pc = 0
        arrive_at = None
        fetched_at = None
        for x in range(60):
            if ctx.get(dut.done):
                events.append(("done", x, ctx.get(dut.cycles)))
                break
            cur = _drive_loader(ctx, dut, words, pc, offer=pc < len(words),
                                load_valid=fetched_at is not None and x >= fetched_at + 2)
            # memory refuses every request in its first cycle: the issue does not wait for it
            ctx.set(dut.rd_req.ready, 0)
            ctx.set(dut.route.ready, 1)
            ctx.set(dut.arrived, int(arrive_at == x))
            ctx.set(dut.idle, int(x >= 40))
            if ctx.get(dut.instr.ready) and pc < len(words):
                events.append(("fetch", x, pc))
                fetched_at = x
                pc += 1
            if ctx.get(dut.load.valid) and ctx.get(dut.load.ready):
                events.append(("issue", x))
                fetched_at = None
            if ctx.get(dut.route.valid):
                events.append(("route", x, ctx.get(dut.route.payload.count), ctx.get(dut.route.payload.target)))
            if ctx.get(dut.rd_req.valid):
                if events[-1][0] == "request" and events[-1][2] == ctx.get(dut.rd_req.payload.addr):
                    ctx.set(dut.rd_req.ready, 1)  # the second cycle it is offered
                    if cur.op == _OP_WAIT:
                        arrive_at = x + 5
                else:
                    events.append(("request", x, ctx.get(dut.rd_req.payload.addr)))
            await ctx.tick()

    _simulate(dut, bench)
    assert events == [
        ("fetch", 0, 0),
        ("issue", 2),
        ("fetch", 3, 1),  # the cycle after the issue
        ("route", 3, 3, 0), ("request", 3, 10),  # held until taken in 4
        ("issue", 5),
        ("route", 6, 2, 1), ("request", 6, 20),  # taken in 7, its data in 12
        ("fetch", 13, 2),
        ("issue", 15),
        ("fetch", 16, 3),
        ("route", 16, 1, 0), ("request", 16, 30),
        ("done", 41, 41),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_registered_loader_under_random_stalls_requests_each_load_once_in_order(seed):
    """``registered_request`` with back-pressure on memory and the route queue: each issued load
    becomes exactly one request and one route, in program order, each offered until taken; no
    load issues while an earlier request or route waits; END waits for both."""
    rng = np.random.default_rng(seed)
    dut = _test_loader(registered_request=True)
    program = [(_OP_NOWAIT, int(rng.integers(1, 16)), int(rng.integers(0, 256))) for _ in range(10)]
    program.append((_OP_END, 0, 0))
    words = _encode(program)
    requests, routes, issues = [], [], []

    async def bench(ctx):
        pc = 0
        held = {"req": None, "route": None}
        for x in range(1000):
            if ctx.get(dut.done):
                break
            offer = pc < len(words) and rng.random() < 0.6
            cur = _drive_loader(ctx, dut, words, pc, offer=offer, load_valid=rng.random() < 0.5)
            ctx.set(dut.rd_req.ready, int(rng.random() < 0.4))
            ctx.set(dut.route.ready, int(rng.random() < 0.6))
            ctx.set(dut.idle, 1)
            if ctx.get(dut.instr.ready) and offer:
                pc += 1
            if ctx.get(dut.load.valid) and ctx.get(dut.load.ready):
                assert held == {"req": None, "route": None}, "issued while a request or route waited"
                issues.append((cur.addr, cur.count, cur.op & 1))
            for key, stream, got in (("req", dut.rd_req, requests), ("route", dut.route, routes)):
                if ctx.get(stream.valid):
                    value = (ctx.get(stream.payload.addr),) if key == "req" else (
                        ctx.get(stream.payload.count), ctx.get(stream.payload.target))
                    assert held[key] in (None, value), "a waiting payload changed"
                    held[key] = value
                    if ctx.get(stream.ready):
                        got.append(value)
                        held[key] = None
                else:
                    assert held[key] is None, "a waiting payload was dropped"
            await ctx.tick()
        assert ctx.get(dut.done)
        assert held == {"req": None, "route": None}

    _simulate(dut, bench)
    loads = [(addr, count, op & 1) for op, count, addr in program if op != _OP_END]
    assert issues == loads
    assert requests == [(addr,) for addr, _, _ in loads]
    assert routes == [(count, target) for _, count, target in loads]


# ------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    "make,exc,message",
    [
        (lambda: shell.Receiver(data_bits=0, targets=2, count_bits=4, depth=2), ValueError,
         "data_bits must be a positive integer, not 0"),
        (lambda: shell.Receiver(data_bits=8, targets=2, count_bits=4, depth=2.0), TypeError,
         "depth must be an integer, not 2.0"),
        (lambda: shell.Store(banks=2, addr_bits=16, count_bits=4, data_bits=8, row_bytes=-1), ValueError,
         "row_bytes must be a positive integer, not -1"),
        (lambda: shell.Loader(instr_layout=_TEST_INSTR, op_field="opcode", loads={1: True},
                              request_layout=shell.read_request_layout(addr_bits=8, count_bits=4, max_rec_bytes=3),
                              targets=2), ValueError,
         "op_field must name a field of instr_layout, not 'opcode'"),
        (lambda: shell.Loader(instr_layout=_TEST_INSTR, op_field="op", loads={4: True},
                              request_layout=shell.read_request_layout(addr_bits=8, count_bits=4, max_rec_bytes=3),
                              targets=2), ValueError,
         "load opcodes must be integers from 0 to 3, not 4"),
        (lambda: shell.Loader(instr_layout=16, op_field="op", loads={1: True},
                              request_layout=shell.read_request_layout(addr_bits=8, count_bits=4, max_rec_bytes=3),
                              targets=2), TypeError,
         "instr_layout must be a data.Layout, not 16"),
    ],
)
def test_components_reject_bad_parameters(make, exc, message):
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        make()


@pytest.mark.parametrize("cls", [shell.Loader, shell.Receiver, shell.Store])
def test_component_parameters_are_keyword_only(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert params and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)


# ------------------------------------------------------------------------------------------
# The cocotb port map and the Verilator build key


def _hw(**overrides):
    from sparsim.dataflow.config import design_point_from_dict

    return design_point_from_dict(
        {
            "hardware": {"preset": "tiny", **overrides},
            "workload": {"kind": "gemm", "layers": [{"rows": 2, "k": 8, "sparsity": "2:8"}]},
        }
    ).hardware


def test_port_map_is_derived_from_the_signature_and_matches_the_verilog():
    from sparsim.rtl.dsp_chain import read_request_layout, write_layout
    from sparsim.rtl.verilator import port_map
    from sparsim.rtl.verilog import to_verilog

    hw = _hw()
    ports = port_map(hw)
    req, wr = read_request_layout(hw), write_layout(hw)
    assert ports.streams["rd_req"].fields == {name: (f.offset, f.width) for name, f in req}
    assert ports.streams["wr"].fields == {name: (f.offset, f.width) for name, f in wr}
    assert ports.streams["instr"].fields["steps"] == isa.FIELD_LAYOUT["steps"]
    assert ports.streams["rd_data"].ready is None  # always_ready: no port
    assert ports.signals == {"done": "done", "cycles": "cycles"}
    # Every named port exists in the Verilog module header, with the width of its member.
    text = to_verilog(hw)
    header = text[text.index("module top(") : text.index("endmodule")]
    names = [n for s in ports.streams.values() for n in (s.payload, s.valid, s.ready) if n]
    names += list(ports.signals.values())
    for name in names:
        assert f" {name};" in header, name
    assert f"[{wr.size - 1}:0] {ports.streams['wr'].payload};" in header
    assert "rd_data__ready" not in header


def test_build_key_follows_the_verilog_not_the_config():
    from sparsim.rtl.verilator import hardware_key

    base = hardware_key(_hw())
    assert hardware_key(_hw(clock_mhz=250.0)) == base
    assert hardware_key(_hw(memory={"channels": 2, "bytes_per_cycle": 4, "latency_cycles": 9})) == base
    assert hardware_key(_hw(chains=3)) != base


@pytest.mark.verilator
def test_a_clock_or_latency_change_reuses_the_build():
    """One Verilated build serves configurations that differ only outside the RTL; each run
    still follows its own memory timing (cycles equal the simulator's for its latency)."""
    from sparsim.dataflow.config import design_point_from_dict
    from sparsim.dataflow.dsp_chain import compile_design_point
    from sparsim.rtl import verilator

    def program(**overrides):
        point = design_point_from_dict(
            {
                "hardware": {"preset": "tiny", **overrides},
                "workload": {"kind": "gemm", "layers": [{"rows": 3, "k": 20, "tokens": 3, "sparsity": "2:8"}]},
                "seed": 7,
            }
        )
        return compile_design_point(point, with_data=True)

    base = program()
    slow = program(clock_mhz=300.0, memory={**base.hw.memory.model_dump(), "latency_cycles": 17})
    first = verilator.build(base.hw)
    log = first.directory / "build.log"
    before = log.stat().st_mtime_ns
    second = verilator.build(slow.hw)
    assert second.directory == first.directory and second.key == first.key
    assert log.stat().st_mtime_ns == before  # reused, not rebuilt
    results = verilator.verify_all([(base, None), (slow, None)])
    assert all(r.ok for r in results), [r.summary() for r in results]
    assert results[1].cycles_rtl > results[0].cycles_rtl  # the longer latency really applied
