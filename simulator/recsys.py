"""Cycle-level simulator of the ``recsys`` engine (docs/recsys.md, "Engines and timing").

One Numba kernel steps the Program cycle by cycle and, inside each cycle, request by request:
the loader's and every gather unit's line requests (index walkers offering rows through a row
buffer of two, tag pools of ``max_outstanding``, the per-unit line caches, the shared memory model's
per-channel in-order queues through :func:`sparsim.simulator.memory.line_serve`), the pooling units taking delivered lines in
arrival order, the dense engine's instructions (their cycles from dataflow/systolic.py via the
compiler) and the store's posted writes. Within a cycle it follows the contract's order:
tags returned by events of the previous cycle, pooling starts, request handshakes (loader, units
0 … G−1, store), deliveries (which fill the caches for later cycles), then the dense engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from sparsim.dataflow import recsys_isa as isa
from sparsim.dataflow.recsys import Program, layer_issued_macs

from . import results
from .memory import line_serve

INF = np.int64(1) << 62
#: Cycles without any instruction finishing after which the kernel reports a deadlock.
_NO_PROGRESS = 1 << 26

#: Activities whose busy cycles the simulator reports (``op_cycles_*``), in kernel order.
ACTIVITIES = ("gather", "pooling", "bottom_mlp", "interaction", "top_mlp", "load", "store")
#: Stall causes (``stall_*``), in kernel order: the dense engine's (which with its busy cycles add
#: up to the cycle count) and the gather units' (the mean over units of each unit's cycles).
STALL_CAUSES = ("dense_weights", "dense_load", "dense_gather", "dense_out_bank", "dense_tail",
                "gather_tags", "gather_index_load", "gather_pooled_bank", "gather_link")
_COUNTERS = ("requests", "cache_hits", "cache_misses", "loader_lines", "store_lines", "in_flight_sum",
             "peak_in_flight", "channel_queue_cycles", "overlap_cycles", "pooled_elements")


@njit(cache=True)
def _kernel(op, mb, fa, fb, fp, fk, fq, addr, lines, dense_cyc, bag_idx, bag_off, tab_idx, tab_off, mb_start,
            loader_q, unit_ptr, unit_q, dense_q, store_q, n_mb, units, channels, line_bytes, beats,
            latency, max_out, cache_lines, hit_cycles, walk_cycles, load_done, load_wait, fill_cycles, pool_lanes, n_bottom, skip_quiet, activity, stalls,
            counters):
    n_ins = op.shape[0]
    # Events per mini-batch (INF: not yet); a condition on an event in cycle y holds from y + 1.
    ldd_done = np.full(n_mb, INF, np.int64)
    ldi_done = np.full(n_mb, INF, np.int64)
    g_left = np.zeros(n_mb, np.int64)
    g_max = np.full(n_mb, -1, np.int64)
    g_all = np.full(n_mb, INF, np.int64)
    bot_first_end = np.full(n_mb, INF, np.int64)
    inter_end = np.full(n_mb, INF, np.int64)
    top_end = np.full(n_mb, INF, np.int64)
    store_done = np.full(n_mb, INF, np.int64)
    w_done = INF
    for i in range(n_ins):
        if op[i] == isa.OP_GATHER:
            g_left[mb[i]] += 1
    for m in range(n_mb):
        if g_left[m] == 0:
            g_all[m] = -1
    load_left = lines.copy()  # LOAD: lines still to deliver
    g_issued = np.zeros(n_ins, np.int64)  # GATHER: lines issued, pooled, all issued
    g_pooled = np.zeros(n_ins, np.int64)
    g_closed = np.zeros(n_ins, np.bool_)
    last_event = np.int64(-1)

    free = np.zeros(channels, np.int64)
    cap = (units + 1) * max_out + 1
    ch_done = np.zeros((channels, cap), np.int64)
    ch_who = np.zeros((channels, cap), np.int64)  # 0 loader, 1 + u gather unit u
    ch_ins = np.zeros((channels, cap), np.int64)
    ch_line = np.zeros((channels, cap), np.int64)
    ch_elems = np.zeros((channels, cap), np.int64)
    ch_head = np.zeros(channels, np.int64)
    ch_n = np.zeros(channels, np.int64)
    ucap = max_out + 1
    fifo_ins = np.zeros((units, ucap), np.int64)
    fifo_elems = np.zeros((units, ucap), np.int64)
    fifo_arr = np.zeros((units, ucap), np.int64)
    fifo_head = np.zeros(units, np.int64)
    fifo_n = np.zeros(units, np.int64)
    hit_ins = np.zeros((units, ucap), np.int64)
    hit_elems = np.zeros((units, ucap), np.int64)
    hit_done = np.zeros((units, ucap), np.int64)
    hit_head = np.zeros(units, np.int64)
    hit_n = np.zeros(units, np.int64)
    tags = np.full((units, max(cache_lines, 1)), -1, np.int64)
    pool_end = np.full(units, -2, np.int64)  # -2: idle (never x - 1)
    pool_ins = np.zeros(units, np.int64)
    u_inflight = np.zeros(units, np.int64)
    u_pos = np.zeros(units, np.int64)
    u_active = np.zeros(units, np.int64)
    # Each unit's index walker: its GATHER (-1: idle), the cycle of its next step, the current
    # bag (sample) and its end, the index word and the end of the bag's words.
    wk_ins = np.full(units, -1, np.int64)
    wk_next = np.zeros(units, np.int64)
    u_s = np.zeros(units, np.int64)
    u_s_end = np.zeros(units, np.int64)
    u_j = np.zeros(units, np.int64)
    u_j_end = np.zeros(units, np.int64)
    # Each unit's row register (walker -> gather unit): its GATHER, the cycle it is offered
    # from, the row's byte address and the line to request next and the last one.
    rr_valid = np.zeros(units, np.bool_)
    rr_ins = np.zeros(units, np.int64)
    rr_offer = np.zeros(units, np.int64)
    rr_row = np.zeros(units, np.int64)
    rr_line = np.zeros(units, np.int64)
    rr_line_last = np.zeros(units, np.int64)
    # The row buffer's second slot (behind the row register): its GATHER and row; its row is
    # offered from the cycle after it moves into the row register.
    r2_valid = np.zeros(units, np.bool_)
    r2_ins = np.zeros(units, np.int64)
    r2_row = np.zeros(units, np.int64)

    # Each unit's cache fills not yet visible (in delivery order): a line delivered in y is in
    # its set for the lookups of cycles y + fill_cycles and later.
    pcap = channels * fill_cycles + 1
    pf_cyc = np.zeros((units, pcap), np.int64)
    pf_line = np.zeros((units, pcap), np.int64)
    pf_head = np.zeros(units, np.int64)
    pf_n = np.zeros(units, np.int64)

    l_pos = 0
    l_started = False
    l_next = 0
    l_inflight = 0
    l_deliv_last = 0
    l_written = np.int64(-1)  # cycle of the loader's latest line write (one per cycle)
    s_pos = 0
    s_started = False
    s_next = 0
    s_start = np.int64(0)
    s_max = np.int64(-1)
    d_pos = 0
    d_start = np.int64(0)
    d_end = np.int64(-1)
    d_kind = 0

    x = np.int64(0)
    while True:
        # (a) Tags returned after the events of cycle x - 1, then (b) pooling starts: the oldest
        # line delivered before this cycle.
        l_inflight -= l_deliv_last
        for u in range(units):
            if pool_end[u] == x - 1:
                pool_end[u] = -2
                u_inflight[u] -= 1
                g = pool_ins[u]
                g_pooled[g] += 1
                if (g_closed[g] and g_pooled[g] == g_issued[g] and not (rr_valid[u] and rr_ins[u] == g)
                        and not (r2_valid[u] and r2_ins[u] == g)):
                    _gather_done(g, x - 1, mb, g_left, g_max, g_all)
                    u_active[u] -= 1
                    if x - 1 > last_event:
                        last_event = x - 1
            if pool_end[u] < 0 and fifo_n[u] > 0 and fifo_arr[u, fifo_head[u]] < x:
                h = fifo_head[u]
                pool_ins[u] = fifo_ins[u, h]
                pool_end[u] = x + (fifo_elems[u, h] + pool_lanes - 1) // pool_lanes - 1
                counters[9] += fifo_elems[u, h]
                fifo_head[u] = (h + 1) % ucap
                fifo_n[u] -= 1
        if cache_lines > 0:
            for u in range(units):
                while pf_n[u] > 0 and pf_cyc[u, pf_head[u]] + fill_cycles <= x:
                    ln = pf_line[u, pf_head[u]]
                    tags[u, ln % cache_lines] = ln
                    pf_head[u] = (pf_head[u] + 1) % pcap
                    pf_n[u] -= 1
        # (c) Request handshakes: loader, gather units 0 .. G-1, store.
        if l_pos < loader_q.shape[0]:
            i = loader_q[l_pos]
            if not l_started:
                m = mb[i]
                if fa[i] == isa.LOAD_WEIGHT:
                    ok = True
                elif fa[i] == isa.LOAD_DENSE:
                    ok = m < 2 or bot_first_end[m - 2] < x
                else:
                    ok = m < 2 or g_all[m - 2] + load_wait < x
                if ok:
                    l_started = True
                    l_next = 0
                    if lines[i] == 0:
                        _load_done(i, x + load_done, fa, mb, ldd_done, ldi_done)
                        if fa[i] == isa.LOAD_WEIGHT:
                            w_done = x + load_done
                        l_started = False
                        l_pos += 1
            if l_started and l_inflight < max_out:
                line = addr[i] // line_bytes + l_next
                c = line % channels
                done = line_serve(free, c, x + latency, beats)
                counters[7] += done - (x + latency + beats - 1)
                k = (ch_head[c] + ch_n[c]) % cap
                ch_done[c, k] = done
                ch_who[c, k] = 0
                ch_ins[c, k] = i
                ch_n[c] += 1
                l_inflight += 1
                counters[3] += 1
                l_next += 1
                if l_next == lines[i]:
                    l_started = False
                    l_pos += 1
        walk_done_now = False
        for u in range(units):
            # Walker start: the unit's next GATHER, once its previous walk has ended.
            if wk_ins[u] < 0 and u_pos[u] < unit_ptr[u + 1] - unit_ptr[u]:
                i = unit_q[unit_ptr[u] + u_pos[u]]
                m = mb[i]
                if ldi_done[m] >= x:
                    if not rr_valid[u]:
                        stalls[6] += 1
                elif m >= 2 and inter_end[m - 2] >= x:
                    if not rr_valid[u]:
                        stalls[7] += 1
                else:
                    wk_ins[u] = i
                    u_pos[u] += 1
                    u_active[u] += 1
                    t = fb[i]
                    u_s[u] = tab_off[t] + mb_start[m] + fk[i]
                    u_s_end[u] = u_s[u] + fp[i]
                    u_j[u] = tab_idx[t] + bag_off[u_s[u]]
                    u_j_end[u] = tab_idx[t] + bag_off[u_s[u] + 1]
                    wk_next[u] = x + walk_cycles - 1
            # Line request of the offered row. The walker steps a row only if the buffer's second
            # slot was free at the start of the cycle.
            second_free = not r2_valid[u]
            if rr_valid[u] and rr_offer[u] <= x:
                i = rr_ins[u]
                dim = fq[i]
                line = rr_line[u]
                if u_inflight[u] >= max_out:
                    # Every tag in use. If the next line's channel is booked beyond the latency, it
                    # would queue even with a free tag: the link limits; else the round trip does.
                    if (not (cache_lines > 0 and tags[u, line % cache_lines] == line)
                            and free[line % channels] > x + latency):
                        stalls[8] += 1
                    else:
                        stalls[5] += 1
                else:
                    lo = rr_row[u] if rr_row[u] > line * line_bytes else line * line_bytes
                    hi = rr_row[u] + dim
                    if hi > (line + 1) * line_bytes:
                        hi = (line + 1) * line_bytes
                    counters[0] += 1
                    g_issued[i] += 1
                    u_inflight[u] += 1
                    if cache_lines > 0 and tags[u, line % cache_lines] == line:
                        counters[1] += 1
                        k = (hit_head[u] + hit_n[u]) % ucap
                        hit_ins[u, k] = i
                        hit_elems[u, k] = hi - lo
                        hit_done[u, k] = x + hit_cycles
                        hit_n[u] += 1
                    else:
                        counters[2] += 1
                        c = line % channels
                        done = line_serve(free, c, x + latency, beats)
                        counters[7] += done - (x + latency + beats - 1)
                        k = (ch_head[c] + ch_n[c]) % cap
                        ch_done[c, k] = done
                        ch_who[c, k] = 1 + u
                        ch_ins[c, k] = i
                        ch_line[c, k] = line
                        ch_elems[c, k] = hi - lo
                        ch_n[c] += 1
                    if line < rr_line_last[u]:
                        rr_line[u] = line + 1
                    elif r2_valid[u]:  # taken: the second slot's row moves in, offered next cycle
                        r2_valid[u] = False
                        _load_row(u, r2_ins[u], r2_row[u], x + 1, fq, line_bytes, rr_valid, rr_ins, rr_offer,
                                  rr_row, rr_line, rr_line_last)
                    else:
                        rr_valid[u] = False  # taken: a row stepped in this cycle may enter it
            # Walker step: an empty bag, or the next row into the row buffer (the row register if
            # it is free at the end of the cycle, else the second slot).
            i = wk_ins[u]
            if i >= 0 and wk_next[u] <= x:
                t = fb[i]
                stepped = False
                if u_j[u] == u_j_end[u]:
                    stepped = True
                elif second_free:
                    stepped = True
                    row = addr[i] + bag_idx[u_j[u]] * fq[i]
                    if not rr_valid[u]:
                        _load_row(u, i, row, x + 1, fq, line_bytes, rr_valid, rr_ins, rr_offer, rr_row,
                                  rr_line, rr_line_last)
                    else:
                        r2_valid[u] = True
                        r2_ins[u] = i
                        r2_row[u] = row
                    u_j[u] += 1
                if stepped:
                    wk_next[u] = x + 1
                    if u_j[u] == u_j_end[u]:  # the bag ends: the next bag's end is known
                        u_s[u] += 1
                        if u_s[u] < u_s_end[u]:
                            u_j_end[u] = tab_idx[t] + bag_off[u_s[u] + 1]
                    if u_s[u] == u_s_end[u]:
                        g_closed[i] = True
                        wk_ins[u] = -1
                        if (g_pooled[i] == g_issued[i] and not (rr_valid[u] and rr_ins[u] == i)
                                and not (r2_valid[u] and r2_ins[u] == i)):
                            _gather_done(i, x, mb, g_left, g_max, g_all)
                            u_active[u] -= 1
                            walk_done_now = True  # the GATHER was busy in its done cycle
                            if x > last_event:
                                last_event = x
        if s_pos < store_q.shape[0]:
            i = store_q[s_pos]
            if not s_started and top_end[mb[i]] < x:
                s_started = True
                s_next = 0
                s_start = x
                s_max = x - 1
            if s_started:
                line = addr[i] // line_bytes + s_next
                done = line_serve(free, line % channels, x, beats)
                if done > s_max:
                    s_max = done
                counters[4] += 1
                s_next += 1
                if s_next == lines[i]:
                    store_done[mb[i]] = s_max
                    activity[6] += s_max - s_start + 1
                    if s_max > last_event:
                        last_event = s_max
                    s_started = False
                    s_pos += 1
        # (d) Deliveries of this cycle: channels in order, then each unit's cache hits.
        l_deliv_last = 0
        for c in range(channels):
            if ch_n[c] > 0 and ch_done[c, ch_head[c]] == x:
                h = ch_head[c]
                i = ch_ins[c, h]
                ch_head[c] = (h + 1) % cap
                ch_n[c] -= 1
                if ch_who[c, h] == 0:
                    l_deliv_last += 1
                    # Delivered lines are written one per cycle, in delivery order.
                    l_written = x if x > l_written else l_written + 1
                    load_left[i] -= 1
                    if load_left[i] == 0:
                        # Done LOAD_DONE_CYCLES after its last line's write (the END waits for
                        # the write only: nothing is left to do for the LOAD after it).
                        _load_done(i, l_written + load_done, fa, mb, ldd_done, ldi_done)
                        if fa[i] == isa.LOAD_WEIGHT:
                            w_done = l_written + load_done
                        if l_written > last_event:
                            last_event = l_written
                else:
                    u = ch_who[c, h] - 1
                    k = (fifo_head[u] + fifo_n[u]) % ucap
                    fifo_ins[u, k] = i
                    fifo_elems[u, k] = ch_elems[c, h]
                    fifo_arr[u, k] = x
                    fifo_n[u] += 1
                    if cache_lines > 0:
                        k = (pf_head[u] + pf_n[u]) % pcap
                        pf_cyc[u, k] = x
                        pf_line[u, k] = ch_line[c, h]
                        pf_n[u] += 1
        gather_busy = walk_done_now
        pool_busy = False
        in_flight = l_inflight
        for u in range(units):
            if hit_n[u] > 0 and hit_done[u, hit_head[u]] == x:
                h = hit_head[u]
                k = (fifo_head[u] + fifo_n[u]) % ucap
                fifo_ins[u, k] = hit_ins[u, h]
                fifo_elems[u, k] = hit_elems[u, h]
                fifo_arr[u, k] = x
                fifo_n[u] += 1
                hit_head[u] = (h + 1) % ucap
                hit_n[u] -= 1
            if u_active[u] > 0:
                gather_busy = True
            if pool_end[u] >= x:
                pool_busy = True
            in_flight += u_inflight[u]
        # (e) Dense engine: the next instruction starts once the engine is idle and it is ready.
        if d_pos < dense_q.shape[0] and d_end < x:
            i = dense_q[d_pos]
            m = mb[i]
            cause = _dense_cause(i, x, op, mb, fb, w_done, ldd_done, g_all, store_done)
            if cause >= 0:
                stalls[cause] += 1
            else:
                d_start = x
                d_end = x + dense_cyc[i] - 1
                if op[i] == isa.OP_INTER:
                    inter_end[m] = d_end
                    d_kind = 3
                else:
                    if (fb[i] & isa.SRC_DENSE) != 0:
                        bot_first_end[m] = d_end
                    if (fb[i] & isa.DST_OUT) != 0:
                        top_end[m] = d_end
                    d_kind = 2 if fa[i] < n_bottom else 4
                activity[d_kind] += dense_cyc[i]
                if d_end > last_event:
                    last_event = d_end
                d_pos += 1
        # (f) What was busy in this cycle.
        if gather_busy:
            activity[0] += 1
            if d_start <= x and x <= d_end:
                counters[8] += 1
        if pool_busy:
            activity[1] += 1
        if l_inflight > 0:
            activity[5] += 1
        counters[5] += in_flight
        if in_flight > counters[6]:
            counters[6] = in_flight
        # (g) Finished: every queue drained, nothing in flight, the dense engine idle.
        if (in_flight == 0 and l_pos == loader_q.shape[0] and s_pos == store_q.shape[0]
                and d_pos == dense_q.shape[0] and d_end <= x):
            idle = True
            for u in range(units):
                if (u_pos[u] < unit_ptr[u + 1] - unit_ptr[u] or pool_end[u] >= 0 or fifo_n[u] > 0
                        or wk_ins[u] >= 0 or rr_valid[u]):
                    idle = False
            if idle:
                break
        x += 1
        # Quiet (nothing in flight, pooling or issuing): no engine can act before the next
        # recorded event makes a condition true, so jump there, charging the skipped cycles
        # exactly as stepping through them would.
        quiet = skip_quiet and in_flight == 0 and not l_started and not s_started
        for u in range(units):
            if pool_end[u] >= 0 or fifo_n[u] > 0 or wk_ins[u] >= 0 or rr_valid[u]:
                quiet = False
            elif u_pos[u] < unit_ptr[u + 1] - unit_ptr[u]:
                m = mb[unit_q[unit_ptr[u] + u_pos[u]]]
                if ldi_done[m] < x and (m < 2 or inter_end[m - 2] < x):
                    quiet = False  # it starts in this cycle
        if quiet and l_pos < loader_q.shape[0]:
            i = loader_q[l_pos]
            m = mb[i]
            if (fa[i] == isa.LOAD_WEIGHT or (fa[i] == isa.LOAD_DENSE and (m < 2 or bot_first_end[m - 2] < x))
                    or (fa[i] == isa.LOAD_INDEX and (m < 2 or g_all[m - 2] + load_wait < x))):
                quiet = False
        if quiet and s_pos < store_q.shape[0] and top_end[mb[store_q[s_pos]]] < x:
            quiet = False
        if (quiet and d_pos < dense_q.shape[0] and d_end < x
                and _dense_cause(dense_q[d_pos], x, op, mb, fb, w_done, ldd_done, g_all, store_done) < 0):
            quiet = False
        if quiet:
            nxt = INF
            if d_end >= x - 1 and d_end + 1 < nxt:
                nxt = d_end + 1
            if w_done >= x - 1 and w_done + 1 < nxt:
                nxt = w_done + 1
            for m in range(n_mb):
                for t in (ldd_done[m], ldi_done[m], g_all[m], bot_first_end[m], inter_end[m], top_end[m],
                          store_done[m]):
                    if t >= x - 1 and t < INF and t + 1 < nxt:
                        nxt = t + 1
            if nxt < INF and nxt > x:
                skip = nxt - x
                if d_pos < dense_q.shape[0] and d_end < x:
                    cause = _dense_cause(dense_q[d_pos], x, op, mb, fb, w_done, ldd_done, g_all, store_done)
                    if cause >= 0:
                        stalls[cause] += skip
                for u in range(units):
                    if u_pos[u] < unit_ptr[u + 1] - unit_ptr[u]:
                        m = mb[unit_q[unit_ptr[u] + u_pos[u]]]
                        if ldi_done[m] >= x:
                            stalls[6] += skip
                        elif m >= 2 and inter_end[m - 2] >= x:
                            stalls[7] += skip
                x = nxt
        if x > last_event + _NO_PROGRESS:  # a deadlock is a bug in this kernel: say so
            return -1
    # END completes in d = 1 + the last event; the Program takes d + 1 cycles.
    cycles = last_event + 2
    stalls[4] += cycles - (d_end + 1)
    return cycles


@njit(cache=True, inline="always")
def _load_row(u, i, row, offer, fq, line_bytes, rr_valid, rr_ins, rr_offer, rr_row, rr_line, rr_line_last):
    """Row ``row`` of GATHER ``i`` into unit ``u``'s row register, offered from ``offer``."""
    rr_valid[u] = True
    rr_ins[u] = i
    rr_offer[u] = offer
    rr_row[u] = row
    rr_line[u] = row // line_bytes
    rr_line_last[u] = (row + fq[i] - 1) // line_bytes


@njit(cache=True, inline="always")
def _dense_cause(i, x, op, mb, fb, w_done, ldd_done, g_all, store_done):
    """The first unmet condition of dense instruction ``i`` in cycle ``x`` (-1: ready)."""
    m = mb[i]
    if op[i] == isa.OP_INTER:
        return 2 if g_all[m] >= x else -1
    if w_done >= x:
        return 0
    if (fb[i] & isa.SRC_DENSE) != 0 and ldd_done[m] >= x:
        return 1
    if (fb[i] & isa.DST_OUT) != 0 and m >= 2 and store_done[m - 2] >= x:
        return 3
    return -1


@njit(cache=True, inline="always")
def _gather_done(i, t, mb, g_left, g_max, g_all):
    m = mb[i]
    g_left[m] -= 1
    if t > g_max[m]:
        g_max[m] = t
    if g_left[m] == 0:
        g_all[m] = g_max[m]


@njit(cache=True, inline="always")
def _load_done(i, t, fa, mb, ldd_done, ldi_done):
    if fa[i] == isa.LOAD_DENSE:
        ldd_done[mb[i]] = t
    elif fa[i] == isa.LOAD_INDEX:
        ldi_done[mb[i]] = t


# ------------------------------------------------------------------------------------------


@dataclass
class Timed:
    """What one simulation says; every field is a plain number so results serialise."""

    cycles: int
    activity: dict[str, int]
    stalls: dict[str, int]
    counters: dict[str, int]


def _bag_arrays(program: Program) -> tuple[np.ndarray, ...]:
    """Every table's indices and bag offsets, concatenated, with each table's start in both:
    the gather units generate their line requests from these (docs/recsys.md, "Gather unit")."""
    bags = program.bags
    idx = np.concatenate([b.indices for b in bags]).astype(np.int64)
    off = np.concatenate([b.offsets for b in bags]).astype(np.int64)
    tab_idx = np.concatenate(([0], np.cumsum([b.indices.size for b in bags])[:-1])).astype(np.int64)
    tab_off = np.concatenate(([0], np.cumsum([b.offsets.size for b in bags])[:-1])).astype(np.int64)
    return idx, off, tab_idx, tab_off


def _queues(program: Program) -> tuple[np.ndarray, ...]:
    ins = program.instrs
    op = ins["op"]
    units = program.hw.gather_units
    unit_lists = [np.flatnonzero((op == isa.OP_GATHER) & (ins["a"] == u)) for u in range(units)]
    unit_ptr = np.zeros(units + 1, np.int64)
    unit_ptr[1:] = np.cumsum([len(q) for q in unit_lists])
    unit_q = np.concatenate(unit_lists).astype(np.int64) if units else np.zeros(0, np.int64)
    return (np.flatnonzero(op == isa.OP_LOAD).astype(np.int64), unit_ptr, unit_q,
            np.flatnonzero((op == isa.OP_GEMM) | (op == isa.OP_INTER)).astype(np.int64),
            np.flatnonzero(op == isa.OP_STORE).astype(np.int64))


def run(program: Program, *, skip_quiet: bool = True) -> Timed:
    """Time ``program`` on its hardware. ``skip_quiet=False`` steps through every cycle even
    when no engine can act (the reference the skipping is tested against)."""
    hw, pl, ins = program.hw, program.plan, program.instrs
    line = hw.line_bytes
    op = ins["op"].astype(np.int64)
    lines = np.zeros(len(ins), np.int64)
    load = op == isa.OP_LOAD
    lines[load] = ins["p"][load].astype(np.int64) | (ins["k"][load].astype(np.int64) << 16)
    store = op == isa.OP_STORE
    out_bytes = ins["p"][store].astype(np.int64) * ins["k"][store] * hw.acc_bytes
    lines[store] = -(-out_bytes // line)
    activity = np.zeros(len(ACTIVITIES), np.int64)
    stalls = np.zeros(len(STALL_CAUSES), np.int64)
    counters = np.zeros(len(_COUNTERS), np.int64)
    mem = hw.memory
    col = (lambda name: ins[name].astype(np.int64))
    cycles = _kernel(
        op, col("mb"), col("a"), col("b"), col("p"), col("k"), col("q"), col("addr"), lines,
        program.gemm_cycles, *_bag_arrays(program), np.asarray(pl.mini_starts(), np.int64),
        *_queues(program), np.int64(pl.mini_batches), np.int64(hw.gather_units), np.int64(mem.channels),
        np.int64(line), np.int64(-(-line // mem.bytes_per_cycle)), np.int64(mem.latency_cycles),
        np.int64(hw.max_outstanding), np.int64(hw.cache_lines), np.int64(isa.CACHE_HIT_CYCLES), np.int64(isa.WALK_CYCLES),
        np.int64(isa.LOAD_DONE_CYCLES), np.int64(isa.LOAD_WAIT_CYCLES),
        np.int64(isa.CACHE_FILL_CYCLES), np.int64(hw.pool_lanes), np.int64(len(pl.model.bottom_layers)), skip_quiet, activity, stalls, counters)
    if cycles < 0:
        raise RuntimeError("recsys simulator: no instruction finished for 2**26 cycles (a deadlock)")
    return Timed(
        cycles=int(cycles),
        activity={k: int(v) for k, v in zip(ACTIVITIES, activity)},
        # A gather stall is counted per unit and cycle: report the mean unit's, in cycles.
        stalls={k: int(v) if k.startswith("dense_") else int(round(v / hw.gather_units))
                for k, v in zip(STALL_CAUSES, stalls)},
        counters={k: int(v) for k, v in zip(_COUNTERS, counters)},
    )


def _dense_work(program: Program) -> tuple[int, int, int]:
    """Useful MACs, issued MAC slots and on-chip operand bytes of the dense engine: each GEMM
    reads A once per column block and B once per row block and writes P x Q results."""
    hw, model = program.hw, program.plan.model
    useful = issued = onchip = 0
    for size in program.plan.mini_sizes():
        for k, q in program.plan.layers:
            useful += size * k * q
            issued += layer_issued_macs(hw, size, k, q)
            onchip += size * k * -(-q // hw.cols) + q * k * -(-size // hw.rows) + size * q
        if model.interaction == "dot":
            f = model.tables + 1
            useful += size * f * (f - 1) // 2 * model.dim
            issued += size * layer_issued_macs(hw, f, model.dim, f)
            onchip += size * 3 * f * model.dim
    return useful, issued, onchip


def simulate(point) -> results.RawCounts:
    """Compile a :class:`~sparsim.dataflow.config.DesignPoint` (indices, no data), time it and
    count what the shared derivation needs (simulator/results.py)."""
    from sparsim.dataflow.recsys import compile_design_point

    program = compile_design_point(point, with_data=False)
    timed = run(program)
    hw = point.hardware
    c = timed.counters
    useful, issued, dense_onchip = _dense_work(program)
    line = hw.line_bytes
    read_lines = c["cache_misses"] + c["loader_lines"]
    # Pooling reads and writes each element's sum; loads write their lines into buffers;
    # cache hits read a line.
    onchip = (2 * c["pooled_elements"] * hw.acc_bytes + c["loader_lines"] * line
              + c["cache_hits"] * line + dense_onchip)
    return results.RawCounts(
        cycles=timed.cycles,
        clock_mhz=hw.clock_mhz,
        useful_macs=useful,
        issued_macs=issued,
        peak_macs_per_cycle=hw.macs_per_cycle,
        bytes_read=read_lines * line,
        bytes_written=c["store_lines"] * line,
        onchip_bytes=onchip,
        # A channel moves one line per ceil(line / bytes_per_cycle) cycles.
        peak_bytes_per_cycle=hw.memory.channels * line / -(-line // hw.memory.bytes_per_cycle),
        breakdown=timed.activity,
        stalls=timed.stalls,
        counts={
            "overlap_cycles": c["overlap_cycles"],
            "requests": c["requests"] + c["loader_lines"],
            "cache_hits": c["cache_hits"],
            "mean_in_flight": c["in_flight_sum"] / timed.cycles,
            "peak_in_flight": c["peak_in_flight"],
            "channel_queue_cycles": c["channel_queue_cycles"],
            "mini_batch": program.plan.mini,
        },
        items=program.plan.samples,
        item="inference",
    )


#: DSP blocks of one index walker's 32 x 16-bit ``index x dim`` multiply (2 DSP48E2 under
#: synth_xilinx -family xcup, 2 MULT18X18D under synth_ecp5: docs/recsys.md, measured).
WALKER_DSPS = 2


#: LUT RAM also takes memories this narrow and smaller than this many bits beyond 64 rows (as
#: RAM64M8 columns of 64 rows: the tiny point's feature banks, 8 x 256; its skewed activation
#: banks, 8 x 520, and the mid point's, 8 x 528, and its 8 x 1,024 feature banks are block RAM).
_NARROW_LUTRAM = (8, 4096)
#: The engine top's logic beyond the counted terms (the Program intake, the per-engine queues'
#: control, the loader, the store, the conditions' counters, the dense engine's fold counters and
#: post-processing), fitted on the tiny point's synthesis.
LUT_BASE = 9_753
FF_BASE = 2_880
#: Multipliers of the dense engine beyond the array, each one DSP48E2: an instruction's Q x K (where
#: a GEMM's biases start) and P x T (an INTER's feature rows).
FIXED_DSPS = 2
#: Yosys's synth_xilinx maps a multiplier to a DSP block only if its product, as wide as what
#: reads it (after ``wreduce``), has at least this many bits (mul2dsp's ``DSP_Y_MINWIDTH``);
#: narrower ones become LUTs.
DSP_MIN_PRODUCT_BITS = 9


def _bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _and_or_luts(pairs: int) -> int:
    """LUT6 per bit of an OR of ``pairs`` (select AND value) terms: a LUT takes three pairs,
    each further LUT five more inputs beside the chain."""
    inputs = 2 * pairs
    return 1 + max(0, -(-(inputs - 6) // 5))


def _operand_selects(hw) -> tuple[int, int]:
    """The dense engine's operand AND-OR (rtl/recsys.py ``DenseEngine``, ``_operand``): LUTs of the
    AND-ORs of each row's skewed-store sources (the three activation stores' and the features'
    banks) and each column's feature banks (column 0 also Z's), and the final OR of each
    operand's registers; and the registered one-hot selects (a LUT and an FF each: reader,
    store, bank)."""
    R, C = hw.rows, hw.cols
    nb = 1 << max(0, (max(R, C) - 1).bit_length())
    luts = 8 * (R * (_and_or_luts(3 * nb) + _and_or_luts(nb) + 1)
                + C * (_and_or_luts(nb) + 1) + _and_or_luts(2 * nb) - _and_or_luts(nb))
    selects = 3 * R * nb + R * nb + C * nb + nb
    return luts, selects


def _address_counters(hw) -> tuple[int, int]:
    """The dense engine's per-row dense and per-column weight byte addresses (``ab``, ``ab0``,
    ``rb``: OS), as wide as the memories' byte addresses: LUTs of the step add, the next-value
    select, the load chain's add and the read address's add per counter, and their FFs (row 0's
    start address is 0)."""
    line = hw.line_bytes
    lb = line.bit_length() - 1
    dense_bits = lb + _bits(-(-int(hw.act_buffer_kib * 1024) // line))
    weight_bits = lb + _bits(int(hw.weight_buffer_kib * 1024) // line)
    luts = 4 * (hw.rows * dense_bits + hw.cols * weight_bits)
    ffs = (2 * hw.rows - 1) * dense_bits + hw.cols * weight_bits
    return luts, ffs


def _store_lines_bits(hw) -> int:
    """Bits of a STORE's line count in the RTL (at most one out bank's lines)."""
    return _bits(-(-int(hw.out_buffer_kib * 1024) // 2 // hw.line_bytes) + 1)


def _loader_entry_bits(hw) -> int:
    """Bits of a loader queue entry in the RTL (target, mini-batch and mini-batch - 2, line count
    as wide as the largest buffer's, first line number)."""
    line = hw.line_bytes
    index_lines = max(1, int(hw.index_buffer_kib * 1024) // 2 // line)
    max_lines = max(int(hw.weight_buffer_kib * 1024) // line, -(-int(hw.act_buffer_kib * 1024) // line),
                    index_lines)
    return 2 + 16 + 16 + _bits(max_lines + 1) + isa.field_width("addr") - (line.bit_length() - 1)


def _unit_entry_bits(hw) -> int:
    """Bits of a gather unit's queue entry in the RTL (mini-batch and walk)."""
    index_lines = max(1, int(hw.index_buffer_kib * 1024) // 2 // hw.line_bytes)
    word_bits = _bits(index_lines * hw.line_bytes // isa.INDEX_BYTES)
    entry_bits = _bits(int(hw.pooled_buffer_kib * 1024) // 2 // hw.acc_bytes + 1)
    return 16 + word_bits + 16 + 32 + 16 + entry_bits + 1


def _intake_products(hw) -> list[int]:
    """Bits kept of each product the top's instruction intake computes for a GATHER or a STORE
    (rtl/recsys.py, stage B): the walk's first index word ``t * (samples + 1) + first``, its first
    pooled entry ``t * samples + first`` and that entry times ``dim`` (both entry-wide), and a
    STORE's ``p * k`` (its line count times the line over the accumulator bytes)."""
    index_lines = max(1, int(hw.index_buffer_kib * 1024) // 2 // hw.line_bytes)
    word_bits = _bits(index_lines * hw.line_bytes // isa.INDEX_BYTES)
    entry_bits = _bits(int(hw.pooled_buffer_kib * 1024) // 2 // hw.acc_bytes + 1)
    lines_product = _store_lines_bits(hw) + (hw.line_bytes.bit_length() - 1) - (hw.acc_bytes.bit_length() - 1)
    return [word_bits, entry_bits, entry_bits, lines_product]


def _memories(hw) -> list[tuple[str, int, int, int, bool, bool]]:
    """Every memory of the engine top (rtl/recsys.py) as (name, width in bits, depth, copies =
    read ports, read port transparent, read data registered once more: the dense engine's
    operand stores and the index banks)."""
    R, C, G, line = hw.rows, hw.cols, hw.gather_units, hw.line_bytes
    acc_bytes = hw.acc_bytes
    act = int(hw.act_buffer_kib * 1024)
    index_lines = max(1, int(hw.index_buffer_kib * 1024) // 2 // line)
    entries = int(hw.pooled_buffer_kib * 1024) // 2 // acc_bytes
    banks = 1 << max(0, (max(R, C) - 1).bit_length())
    out_values = max(1, int(hw.out_buffer_kib * 1024) // 2 // acc_bytes)
    out_banks = 1 << max(0, (max(C, (line - 1) // acc_bytes + 2) - 1).bit_length())
    word_bits = max(1, (index_lines * line // isa.INDEX_BYTES - 1).bit_length())
    entry_bits = max(1, entries.bit_length())
    mems = [
        ("weights", 8 * line, int(hw.weight_buffer_kib * 1024) // line, C + 1, False, True),  # + bias port
        # both dense banks in each of the R copies (a bank's lines padded to a power of two)
        ("dense", 8 * line, 2 << _bits(-(-act // line)), R, False, True),
        # parity x lane x port; up to 64 lines LUT RAM read from a registered address (the word
        # into a register of its own, counted in rtl_resources), else block RAM with the read line
        # registered once more
        ("index", 8 * line, index_lines, 4 * hw.gather_units, index_lines <= 64, index_lines > 64),
        ("act", 8, 2 * (-(-act // banks) + hw.mini_batch), 3 * banks, False, True),  # power-of-two row strides
        ("features", 8, 2 * entries, 2 * banks, False, True),
        ("pooled", hw.acc_bits, -(-entries // hw.pool_lanes), 2 * G * hw.pool_lanes, True, False),
        # both out banks in each of the out_banks memories (the bank the address's top bit)
        # the gather units' cache lines: one memory per response lane (LUT RAM, read asynchronously)
        *([("cache", 8 * line, hw.cache_lines, G * hw.memory.channels, True, False)] if hw.cache_lines else []),
        ("out", hw.acc_bits, 2 << max(0, (-(-out_values // out_banks)).bit_length()), out_banks, True, False),
        # The per-engine instruction queues (SyncFIFOBuffered of 256: 255 rows in memory); the
        # loader's entries hold only what the loader reads.
        ("loader_queue", _loader_entry_bits(hw), 255, 1, False, False),
        ("dense_queue", isa.INSTR_BITS, 255, 1, False, False),
        ("store_queue", 16 + 32 + _store_lines_bits(hw) + 1, 255, 1, False, False),
        ("unit_queues", _unit_entry_bits(hw), 255, G, False, False),
    ]
    if hw.dataflow == "ws":
        mems.append(("partial", C * hw.acc_bits, max(hw.mini_batch, 256), 1, False, False))
    return mems


def rtl_resources(hw) -> dict[str, float]:
    """The engine top as rtl/recsys.py builds it (docs/recsys.md, "RTL (measured)"): every
    memory mapped as Yosys maps it (``sparsim.simulator.resources.memory_cost``; narrow small
    memories beyond 64 rows as RAM64M8 columns); one DSP per PE, WALKER_DSPS per gather unit,
    FIXED_DSPS and one per intake product of at least DSP_MIN_PRODUCT_BITS bits; LUTs and FFs
    counted from the datapath widths (the PEs, the operand copies' byte selects, the gather
    units' line stores, cache slices and shifters, the pooled and out banks, the skewed stores'
    address adders and rotations, the loader's write queue, the dense engine's operand AND-ORs
    and address counters) plus LUT_BASE and FF_BASE, fitted on the tiny point
    (tests/test_resources_recsys.py)."""
    from .resources import _mux_luts, memory_cost

    R, C, G, tags, line = hw.rows, hw.cols, hw.gather_units, hw.max_outstanding, hw.line_bytes
    acc, lanes = hw.acc_bits, hw.pool_lanes
    lut = ff = 0.0
    bram = uram = 0.0
    for _, width, depth, copies, transparent, out_reg in _memories(hw):
        if depth > 64 and width <= _NARROW_LUTRAM[0] and width * depth < _NARROW_LUTRAM[1]:
            lut += copies * 8 * -(-depth // 64) * -(-width // 7)
            ff += copies * width * out_reg
            continue
        cost = memory_cost(width, depth, copies, transparent=transparent, output_register=out_reg)
        lut += cost.lutram_luts
        ff += cost.read_ffs
        bram += cost.bram36
        uram += cost.uram
    banks = 1 << max(0, (max(R, C) - 1).bit_length())
    out_banks = 1 << max(0, (max(C, (line - 1) // hw.acc_bytes + 2) - 1).bit_length())
    sets = max(1, hw.cache_lines)
    line_bits = 8 * line
    sel_luts, sel_regs = _operand_selects(hw)
    addr_luts, addr_ffs = _address_counters(hw)
    lut += (R * C * (2 * acc + 24)  # accumulator adder and its clear, operand gating
            + 8 * _mux_luts(line) * (C + R)  # an operand byte out of each copy's line
            # unit: tag, shift, the cache's lane select (its lines in LUT RAM, one memory per lane)
            + G * line_bits * (_mux_luts(tags) + _mux_luts(line) + _mux_luts(hw.memory.channels))
            # the cache lookup ahead: the next line's and the new row's besides the current one's
            + (2 * G * (32 - line.bit_length() + 1) * _mux_luts(sets) if hw.cache_lines else 0)
            + 2 * G * lanes * 2 * acc  # pooled banks: read-add-write adder and the units' OR
            + out_banks * acc * (_mux_luts(C) + _mux_luts(out_banks))  # out banks in and out
            + 6 * banks * 24 + 8 * R * 4 * _mux_luts(banks)  # skewed stores: addresses, rotation
            + 2 * C * 3 * acc  # requantisers
            # each tag's line register takes a response lane's line or a hit's (a LUT per bit)
            + G * tags * line_bits * _mux_luts(hw.memory.channels + (1 if hw.cache_lines else 0))
            + sel_luts + sel_regs  # the dense engine's operand AND-ORs and one-hot selects
            + addr_luts  # the dense engine's row and column address counters
            + LUT_BASE)
    index_lines = max(1, int(hw.index_buffer_kib * 1024) // 2 // line)
    word_bits = max(1, (index_lines * line // isa.INDEX_BYTES - 1).bit_length())
    entry_bits = max(1, (int(hw.pooled_buffer_kib * 1024) // 2 // hw.acc_bytes).bit_length())
    depths = {name: depth for name, _, depth, _, _, _ in _memories(hw)}
    act_depth, feat_depth = depths["act"], depths["features"]
    store_lines_bits = _store_lines_bits(hw)
    loader_idx_bits = _bits(max(int(hw.weight_buffer_kib * 1024) // line, -(-int(hw.act_buffer_kib * 1024) // line),
                                index_lines))
    ff += (R * C * (40 + 2 * acc)  # operand, product, accumulator and drain registers
           + 8 * (3 * R + 2 * C)  # the operands' source registers (dense, act, feature; weight, feature)
           # the skewed stores' write registers (word address, byte, an enable per store), per memory
           + banks * (_bits(act_depth) + 8 + 3 + 2 * (_bits(feat_depth) + 8 + 1))
           # line store; cache: each set's line number and valid bit, and the lane holding its line
           + G * (tags * (line_bits + 48) + hw.cache_lines * (32 + (_bits(hw.memory.channels)
                                                                   if hw.memory.channels > 1 else 0)))
           + G * ((line_bits + 1 if hw.cache_lines else 0) + 1  # a hit's line, copied the cycle after; the hit; first line last
                  + 32 + 34 + 14 + 32 + word_bits  # the walker's row-address pipeline
                  # the index ports' words (LUT RAM banks: the word select's bits are address
                  # register bits beside the line address the memory counts)
                  + (2 * (32 + 2 * (line // isa.INDEX_BYTES).bit_length() - 2) if index_lines <= 64 else 0)
                  + 32 + isa.field_width("q") + entry_bits + 2  # the row buffer's second slot
                  + 32  # the address of the row the head takes next
                  # the pooling's byte selects (a register per memory in four copies), the
                  # chunk's last flag and count (registers), for the shift they replace
                  + lanes * 4 * (line.bit_length() - 1) + 1 + _bits(lanes + 1) - _bits(line + 1)
                  # the cache fills pending a cycle (valid, set one-hot, line), each set's fill
                  # enable and source lane in four copies, the three lookups and two picks
                  + (hw.memory.channels * (line_bits + hw.cache_lines + 1)
                     + 4 * hw.cache_lines * (1 + (_bits(hw.memory.channels) if hw.memory.channels > 1 else 0))
                     + 4 if hw.cache_lines else 0))
           # pooled banks: each memory's value select and the registered sums of the reads
           + 2 * (G * lanes * max(1, (lanes - 1).bit_length()) + max(2, C) * acc)
           # loader: write queue (its slots and the oldest line's register), tag targets
           + (max(1, tags - 1) + 1) * (line_bits + 16) + 1 + tags * (3 + loader_idx_bits)
           + 8 * line + loader_idx_bits + 1 + 3  # the loader's write stage (line, its number, bank, enables)
           + 2 * (hw.memory.channels + 1)  # the store's "k writes in flight" flags
           # the out banks' write stage (a row and its first value's index; per memory its value's
           # place and line-carry bit) and read addresses
           + C * acc + 40 + out_banks * _bits(-(-max(1, int(hw.out_buffer_kib * 1024) // 2 // hw.acc_bytes)
                                                  // out_banks) + 1)
           + out_banks * (max(1, (out_banks - 1).bit_length()) + 1)
           # the queues' head and two next-word registers, the intake's second stage
           + 3 * (isa.INSTR_BITS + _loader_entry_bits(hw) + 49 + store_lines_bits + G * _unit_entry_bits(hw))
           + isa.INSTR_BITS + word_bits + entry_bits + store_lines_bits + 17
           + _bits(acc + 2)  # the requantisation shift, a register of its own
           + sel_regs + addr_ffs  # the dense engine's one-hot operand selects, address counters
           + FF_BASE)
    return {
        "dsp": float(R * C + WALKER_DSPS * G + FIXED_DSPS
                     + sum(bits >= DSP_MIN_PRODUCT_BITS for bits in _intake_products(hw))),
        "lut": float(lut),
        "ff": float(ff),
        "bram36": float(bram),
        "uram": float(uram),
    }


def resources(hw) -> dict[str, float]:
    """First-order estimate of the architecture docs/recsys.md describes, with one copy of
    each buffer (what sweeps and the presets' device budgets use): one DSP per PE (INT8
    multiply) and WALKER_DSPS per gather unit (its index walker's index x dim); per PE 60 LUTs
    and 3 x acc_bits FFs; per gather unit a pooling adder of pool_lanes x acc_bits bits and its
    tag pool; block RAM from the buffer capacities and the cache. Not calibrated: the RTL as
    built keeps operand copies and per-unit pooled memories that do not scale to the
    ``harpv2`` and ``u280`` presets (:func:`rtl_resources`, docs/recsys.md "RTL (measured)")."""
    pes = hw.rows * hw.cols
    per_unit_lut = hw.pool_lanes * hw.acc_bits + 40 * hw.max_outstanding + 400
    per_unit_ff = hw.pool_lanes * hw.acc_bits + 48 * hw.max_outstanding + 300
    kib = (hw.index_buffer_kib + hw.pooled_buffer_kib + hw.act_buffer_kib + hw.weight_buffer_kib
           + hw.out_buffer_kib + hw.cache_kib)
    return {
        "dsp": float(pes + WALKER_DSPS * hw.gather_units),
        "lut": float(60 * pes + hw.gather_units * per_unit_lut + 2000),
        "ff": float(3 * hw.acc_bits * pes + hw.gather_units * per_unit_ff + 2000),
        "bram36": float(np.ceil(kib * 1024 * 8 / 36864)),
        "uram": 0.0,
    }
