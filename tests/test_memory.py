"""The shared off-chip memory model (simulator/memory.py).

The hand-derived tests pin literal cycles, so they hold the closed-form functions (used by the
Numba kernels) and the cycle-driven models (used by the RTL benches) to docs/dsp_chain.md, not to
each other. The property tests then check that the two implementations agree on random traffic.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsim.simulator.memory import (
    LineMemory,
    StallPolicy,
    StripedMemory,
    line_channel,
    line_read_times,
    line_serve,
    read_start,
    record_offset,
    transfer_end,
    write_start,
)


def _read_cycles(model: StripedMemory, horizon: int = 400) -> list[tuple[int, int]]:
    return [(c, rec) for c in range(horizon) if (rec := model.read_data(c)) is not None]


# ------------------------------------------------------------------------------------------
# Striped streams, by hand


def test_striped_read_small_records_by_hand():
    """BW = 8 B/cycle, latency 3; read A of 5 records of 5 B handshaken in cycle 10, read B of 3
    records in cycle 11.

    off(j) = max(j, ceil(5(j+1)/8) - 1) = j for j = 0..4 (a record is smaller than BW, so the
    one-record-per-cycle limit binds). A: t0 = max(10+3, 0) = 13, records 13..17, read_free 18.
    B: t0 = max(11+3, 18) = 18 (in order behind A), records 18, 19, 20.
    """
    mem = bytearray(range(256))
    model = StripedMemory(mem, bandwidth=8, latency=3, write_bytes=4)
    model.read_request(10, addr=7, count=5, rec_bytes=5)
    model.read_request(11, addr=100, count=3, rec_bytes=5)
    seen = _read_cycles(model)
    assert [c for c, _ in seen] == [13, 14, 15, 16, 17, 18, 19, 20]
    addrs = [7, 12, 17, 22, 27, 100, 105, 110]
    assert [r for _, r in seen] == [int.from_bytes(mem[a : a + 5], "little") for a in addrs]
    assert model.idle
    assert [transfer_end(13, 5, 5, 8), transfer_end(18, 3, 5, 8)] == [17, 20]
    assert read_start(11, 3, 18) == 18 and read_start(10, 3, 0) == 13


def test_striped_read_wide_records_by_hand():
    """BW = 8 B/cycle, latency 3, records of 20 B (wider than the port).

    off(j) = ceil(20(j+1)/8) - 1: 2, 4, 7, 9, 12. A (5 records, request 10): t0 = 13, records
    15, 17, 20, 22, 25; read_free 26. B (3 records, request 11): t0 = max(14, 26) = 26, records
    28, 30, 33.
    """
    model = StripedMemory(bytearray(512), bandwidth=8, latency=3, write_bytes=4)
    model.read_request(10, addr=0, count=5, rec_bytes=20)
    model.read_request(11, addr=200, count=3, rec_bytes=20)
    assert [c for c, _ in _read_cycles(model)] == [15, 17, 20, 22, 25, 28, 30, 33]
    assert [record_offset(j, 20, 8) for j in range(5)] == [2, 4, 7, 9, 12]
    assert [transfer_end(13, 5, 20, 8), transfer_end(26, 3, 20, 8)] == [25, 33]


def test_striped_write_by_hand():
    """BW = 8 B/cycle, output rows of 12 B; the engine holds ``valid`` while it has rows.

    Burst 1 (4 rows) offered from cycle 5: t0 = max(5, 0) = 5, off(j) = ceil(12(j+1)/8) - 1 =
    1, 2, 4, 5, so rows are accepted in 6, 7, 9, 10; write_free = 11. Burst 2 (2 rows) offered
    from cycle 8, while burst 1 is still open, starts when burst 1 is done: t0 = 11, accepted 12
    and 13. Burst 3 (1 row) offered from cycle 20 (port idle since 14): t0 = 20, accepted 21.
    """
    mem = bytearray(256)
    model = StripedMemory(mem, bandwidth=8, latency=1, write_bytes=12)
    bursts = [(5, 4), (8, 2), (20, 1)]  # (first offered cycle, rows)
    accepted: list[int] = []
    pending = [list(range(rows)) for _, rows in bursts]
    b = 0
    for cycle in range(60):
        if b == len(bursts) or cycle < bursts[b][0]:
            assert not model.write_ready(cycle, False)
            continue
        if model.write_ready(cycle, True):
            row = pending[b].pop(0)
            model.write(cycle, 16 * len(accepted), 0x10 + len(accepted), not pending[b])
            accepted.append(cycle)
            b += not pending[b]
    assert accepted == [6, 7, 9, 10, 12, 13, 21]
    assert [mem[16 * i] for i in range(7)] == list(range(0x10, 0x17))
    assert [transfer_end(write_start(5, 0), 4, 12, 8), transfer_end(write_start(8, 11), 2, 12, 8)] == [10, 13]
    assert model.idle


# ------------------------------------------------------------------------------------------
# Striped streams: the cycle-driven model agrees with the closed form on random traffic


_transfers = st.lists(
    st.tuples(st.integers(0, 6), st.integers(1, 6), st.integers(1, 40)),  # (gap, count, bytes)
    min_size=1,
    max_size=8,
)


def _issue_reads(model, transfers, bandwidth, latency):
    """Request ``transfers`` (gap, count, record bytes) back to back in memory on ``model``: per
    transfer its address, count, record bytes and the closed form's start cycle ``t0``, and the
    cycle the port is free after the last."""
    issued, cycle, free, addr = [], 0, 0, 0
    for gap, count, rec_bytes in transfers:
        cycle += gap
        model.read_request(cycle, addr, count, rec_bytes)
        t0 = read_start(cycle, latency, free)
        issued.append((addr, count, rec_bytes, t0))
        free = transfer_end(t0, count, rec_bytes, bandwidth) + 1
        addr += count * rec_bytes
    return issued, free


@settings(max_examples=150, deadline=None)
@given(transfers=_transfers, bandwidth=st.integers(1, 32), latency=st.integers(1, 12))
def test_striped_reads_follow_the_closed_form(transfers, bandwidth, latency):
    model = StripedMemory(bytearray(4096), bandwidth=bandwidth, latency=latency, write_bytes=1)
    issued, free = _issue_reads(model, transfers, bandwidth, latency)
    expected = [t0 + record_offset(j, rec_bytes, bandwidth)
                for _, count, rec_bytes, t0 in issued for j in range(count)]
    assert [c for c, _ in _read_cycles(model, free + 1)] == expected
    assert model.idle


@settings(max_examples=150, deadline=None)
@given(transfers=_transfers, bandwidth=st.integers(1, 32), latency=st.integers(1, 12), stalls=st.booleans())
def test_striped_read_beats_carry_the_stream_and_end_records_on_time(transfers, bandwidth, latency, stalls):
    """``beats=True``: the beats are the transfers' bytes in order, at most BW each (a record of
    at most BW bytes alone); without stalls the beat holding a record's last byte moves exactly
    when the record would, and the port is free at the same cycle."""
    mem = bytearray(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    policy = StallPolicy(seed=3) if stalls else None
    model = StripedMemory(mem, bandwidth=bandwidth, latency=latency, write_bytes=1, stalls=policy, beats=True)
    ends, stream, beat_sizes = [], bytearray(), []
    issued, free = _issue_reads(model, transfers, bandwidth, latency)
    for addr, count, rec_bytes, t0 in issued:
        ends += [t0 + record_offset(j, rec_bytes, bandwidth) for j in range(count)]
        stream += mem[addr : addr + count * rec_bytes]
        beat_sizes += [min(bandwidth, rec_bytes * count - b * bandwidth) for b in range(-(-rec_bytes * count // bandwidth))] \
            if rec_bytes > bandwidth else [rec_bytes] * count
    horizon = free * (20 if stalls else 1) + 100
    seen = _read_cycles(model, horizon)
    got = b"".join(r.to_bytes(n, "little") for (_, r), n in zip(seen, beat_sizes))
    assert len(seen) == len(beat_sizes) and got == bytes(stream)
    assert model.stats.records_read == len(ends)
    if not stalls:
        last_byte_beats = []
        for gap, count, rec_bytes in transfers:
            if rec_bytes > bandwidth:
                last_byte_beats += [((j + 1) * rec_bytes - 1) // bandwidth for j in range(count)]
            else:
                last_byte_beats += list(range(count))
        cycles = [c for c, _ in seen]
        firsts = []
        i = 0
        for gap, count, rec_bytes in transfers:
            n = -(-rec_bytes * count // bandwidth) if rec_bytes > bandwidth else count
            firsts += [cycles[i]] * count
            i += n
        assert [f + b for f, b in zip(firsts, last_byte_beats)] == ends
    assert model.idle


@settings(max_examples=150, deadline=None)
@given(transfers=_transfers, bandwidth=st.integers(1, 32))
def test_striped_writes_follow_the_closed_form(transfers, bandwidth):
    """Each burst's rows are offered back to back from cycle ``v`` (previous offer + gap)."""
    row_bytes = transfers[0][2]
    model = StripedMemory(bytearray(4096), bandwidth=bandwidth, latency=1, write_bytes=row_bytes)
    ends, expected_ends, free, v = [], [], 0, 0
    cycle = 0
    for gap, rows, _ in transfers:
        v = max(v + gap, cycle)  # the engine offers the next burst once the last one is done
        cycle = v
        left = rows
        while left:
            if model.write_ready(cycle, True):
                left -= 1
                model.write(cycle, 0, 0, left == 0)
            cycle += 1
        ends.append(cycle - 1)
        expected_ends.append(transfer_end(write_start(v, free), rows, row_bytes, bandwidth))
        free = expected_ends[-1] + 1
    assert ends == expected_ends


def test_stalls_are_reproducible_and_keep_data():
    def trace(seed):
        mem = bytearray(range(64))
        model = StripedMemory(mem, bandwidth=4, latency=2, write_bytes=4, stalls=StallPolicy(seed))
        model.read_request(0, addr=0, count=6, rec_bytes=4)
        return _read_cycles(model)

    assert trace(5) == trace(5)
    assert {tuple(trace(s)) for s in (5, 6, 7)} != {tuple(trace(5))}
    want = [int.from_bytes(bytes(range(4 * j, 4 * j + 4)), "little") for j in range(6)]
    assert [r for _, r in trace(6)] == want


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(bandwidth=0, latency=1, write_bytes=4), "bandwidth must be an integer >= 1, not 0"),
        (dict(bandwidth=8, latency=0, write_bytes=4), "latency must be an integer >= 1, not 0"),
        (dict(bandwidth=8, latency=1, write_bytes=2.5), "write_bytes must be an integer >= 1, not 2.5"),
    ],
)
def test_striped_memory_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        StripedMemory(bytearray(8), **kwargs)


# ------------------------------------------------------------------------------------------
# Line requests (the gather interface), by hand and against the cycle-driven model


def _line_times(ready, addr, **kw):
    issue = np.zeros(len(ready), dtype=np.int64)
    done = np.zeros(len(ready), dtype=np.int64)
    line_read_times(np.array(ready, dtype=np.int64), np.array(addr, dtype=np.int64),
                    kw["line_bytes"], kw["channels"], kw["bytes_per_cycle"], kw["latency"],
                    kw["max_outstanding"], issue, done)
    return issue.tolist(), done.tolist()


def _drive_line_memory(ready, addr, image, **kw):
    """Requester in program order, one handshake per cycle, as early as the model allows."""
    mem = LineMemory(image, **kw)
    issue, done, data = [None] * len(ready), [None] * len(ready), [None] * len(ready)
    i = 0
    for cycle in range(10_000):
        if i < len(ready) and ready[i] <= cycle and mem.can_request(cycle):
            mem.request(cycle, addr[i], tag=i)
            issue[i] = cycle
            i += 1
        for _, tag, line in mem.responses(cycle):
            done[tag], data[tag] = cycle, line
        if i == len(ready) and mem.idle:
            break
    return issue, done, data


def test_line_requests_by_hand():
    """2 channels of 16 B/cycle, 64 B lines (4 beats each), latency 5; four requests ready at
    cycle 0 for lines 0 (channel 0), 64 (ch 1), 128 (ch 0), 256 (ch 0).

    max_outstanding = 2: #0 issued 0, done max(0+5, 0)+3 = 8; #1 issued 1, done 6+3 = 9. #2
    waits for a slot: #0's frees after 8, so issued 9, done max(14, 9)+3 = 17 (ch 0 free at 18).
    #3 waits for #1's slot (free after 9): issued 10, done max(15, 18)+3 = 21: in order behind #2
    on channel 0.
    max_outstanding = 4: issued 0, 1, 2, 3; #2 done max(7, 9)+3 = 12, #3 done max(8, 13)+3 = 16.
    """
    kw = dict(line_bytes=64, channels=2, bytes_per_cycle=16, latency=5)
    ready, addr = [0, 0, 0, 0], [0, 64, 128, 256]
    image = bytes(range(256)) * 2
    assert [line_channel(a, 64, 2) for a in addr] == [0, 1, 0, 0]
    for limit, issue, done in (
        (2, [0, 1, 9, 10], [8, 9, 17, 21]),
        (4, [0, 1, 2, 3], [8, 9, 12, 16]),
    ):
        assert _line_times(ready, addr, **kw, max_outstanding=limit) == (issue, done)
        got_issue, got_done, data = _drive_line_memory(ready, addr, image, **kw, max_outstanding=limit)
        assert (got_issue, got_done) == (issue, done)
        assert data == [image[a : a + 64] for a in addr]


@settings(max_examples=150, deadline=None)
@given(
    requests=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 31)), min_size=1, max_size=24),
    channels=st.integers(1, 4),
    bytes_per_cycle=st.sampled_from([4, 8, 16, 32, 64]),
    latency=st.integers(1, 20),
    max_outstanding=st.integers(1, 6),
    line_bytes=st.sampled_from([32, 64]),
)
def test_line_model_follows_the_closed_form(requests, channels, bytes_per_cycle, latency,
                                            max_outstanding, line_bytes):
    ready = list(np.cumsum([gap for gap, _ in requests]))
    addr = [line * line_bytes for _, line in requests]
    kw = dict(line_bytes=line_bytes, channels=channels, bytes_per_cycle=bytes_per_cycle,
              latency=latency, max_outstanding=max_outstanding)
    issue, done, _ = _drive_line_memory(ready, addr, bytes(32 * line_bytes), **kw)
    assert (issue, done) == _line_times(ready, addr, **kw)


def test_line_memory_rejects_unaligned_and_excess_requests():
    mem = LineMemory(bytes(256), channels=1, bytes_per_cycle=8, latency=2, max_outstanding=1)
    with pytest.raises(ValueError, match="^line request address must be a multiple of 64, not 32$"):
        mem.request(0, 32, tag=0)
    mem.request(0, 0, tag=0)
    with pytest.raises(ValueError, match="^cycle 1: requester 0 may not issue a request$"):
        mem.request(1, 64, tag=1)
    assert mem.can_request(1, requester=1)  # the limit is per requester


def test_posted_line_writes_share_the_channel_queues_by_hand():
    """1 channel of 16 B/cycle, 64 B lines (4 beats), latency 5. A read of line 0 handshaken in
    cycle 0 holds the channel 5..8 (done 8). A posted write handshaken in cycle 1 queues behind
    it: 9..12 (done 12, no latency); a read handshaken in cycle 2 then waits for the write:
    max(2+5, 13)+3 = 16. A write on an idle channel completes beats - 1 cycles after its
    handshake."""
    mem = LineMemory(bytearray(256), channels=1, bytes_per_cycle=16, latency=5, max_outstanding=4)
    mem.request(0, 0, tag=0)
    assert mem.write(1, 64, b"\x07" * 64) == 12
    mem.request(2, 128, tag=1)
    assert [c for c in range(20) if mem.responses(c)] == [8, 16]
    assert bytes(mem.image[64:128]) == b"\x07" * 64
    free = np.zeros(1, dtype=np.int64)
    assert line_serve(free, 0, 30, 4) == 33 and free[0] == 34
    with pytest.raises(ValueError, match="crosses a 64-byte line"):
        mem.write(30, 60, b"\x00" * 8)
