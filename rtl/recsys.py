"""Amaranth RTL of the ``recsys`` engine (docs/recsys.md is the contract).

The sparse half so far:

- :class:`IndexWalker`: one gather unit's index walker: walks a ``GATHER``'s bags in the index
  bank (two block-RAM read ports) and offers the gather unit one row per step through its row
  register;
- :class:`GatherLane`: an index walker feeding a gather unit, with per-mini-batch-parity busy
  flags from which the sequencer learns when every ``GATHER`` of a mini-batch is done;
- :class:`GatherUnit`: one gather unit: splits embedding rows into line requests, one per cycle
  while a tag of its pool of ``max_outstanding`` is free, looks each line up in its direct-mapped
  cache slice, matches tagged responses arriving on several channels in one cycle, and pools
  the delivered lines in arrival order, ``pool_lanes`` elements per cycle;
- :class:`PooledBuffer`: one bank of the pooled-embedding buffer: ``acc_bits`` sums in block
  RAM, read–add–written by the gather units' pooling outputs and cleared by the reader.

Timing follows docs/recsys.md ("Units", "Engines and timing" 2): the request of a row's first
line leaves in the cycle the row is offered, a line delivered in cycle ``y`` starts pooling
from ``y + 1`` at the earliest, lines delivered in one cycle pool in channel order with cache
hits after them, and a tag is free again in the cycle after its slice's last pooling cycle.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sparsim.dataflow import recsys_isa as isa

from .shell import rejected_is_not_unused as _rejected_is_not_unused

__all__ = ["ADDR_BITS", "DIM_BITS", "WORD_BITS", "walk_layout", "row_layout", "request_layout",
           "response_layout", "pool_layout", "IndexWalker", "GatherLane", "GatherUnit", "PooledBuffer"]

#: Byte addresses (the ISA's ``addr`` field).
ADDR_BITS = isa.field_width("addr")
#: Row bytes (the ``GATHER``'s ``q`` field).
DIM_BITS = isa.field_width("q")
#: Bits of an index-block word (positions and indices, :data:`~sparsim.dataflow.recsys_isa.INDEX_BYTES`).
WORD_BITS = 8 * isa.INDEX_BYTES


def _check_int(name: str, value: object, *, minimum: int, pow2: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum or (pow2 and value & (value - 1)):
        kind = "a power of two" if pow2 else "an integer"
        raise ValueError(f"{name} must be {kind} >= {minimum}, not {value}")
    return value


def _bits(n: int) -> int:
    """Bits of an unsigned counter holding 0 … n - 1 (at least 1)."""
    return max(1, (n - 1).bit_length())


def row_layout(entry_bits: int, ctx_bits: int) -> data.StructLayout:
    """One embedding row to gather: its byte address, its bytes (``dim`` >= 1), the pooled
    element its first byte adds into and an opaque ``ctx`` carried to the pooling output."""
    return data.StructLayout({"addr": unsigned(ADDR_BITS), "dim": unsigned(DIM_BITS),
                              "entry": unsigned(entry_bits), "ctx": unsigned(ctx_bits)})


def walk_layout(word_addr_bits: int, entry_bits: int, ctx_bits: int) -> data.StructLayout:
    """One ``GATHER`` for the index walker: the word address of its first bag's position in the
    index bank, its bags (``P`` >= 1, the ``GATHER``'s ``p``), the table's byte address, the row
    bytes, the pooled element of the first bag's first byte and the rows' ``ctx``."""
    return data.StructLayout({"pos": unsigned(word_addr_bits), "bags": unsigned(isa.field_width("p")),
                              "base": unsigned(ADDR_BITS), "dim": unsigned(DIM_BITS),
                              "entry": unsigned(entry_bits), "ctx": unsigned(ctx_bits)})


def request_layout(tag_bits: int) -> data.StructLayout:
    """A line read: line-aligned byte address and the tag its response carries back."""
    return data.StructLayout({"addr": unsigned(ADDR_BITS), "tag": unsigned(tag_bits)})


def response_layout(line_bytes: int, tag_bits: int) -> data.StructLayout:
    """A delivered line (little-endian bytes) and the tag of its request."""
    return data.StructLayout({"tag": unsigned(tag_bits), "data": unsigned(8 * line_bytes)})


def pool_layout(lanes: int, entry_bits: int, ctx_bits: int) -> data.StructLayout:
    """``count`` (1 … lanes) INT8 values to add into elements ``elem`` … ``elem + count - 1``;
    ``last`` marks a line's final chunk (its tag is free from the next cycle)."""
    return data.StructLayout({"elem": unsigned(entry_bits), "count": unsigned(_bits(lanes + 1)),
                              "values": data.ArrayLayout(signed(8), lanes), "last": 1,
                              "ctx": unsigned(ctx_bits)})


class IndexWalker(wiring.Component):
    """One gather unit's index walker (docs/recsys.md, "Index walker g" and "Engines and timing" 2).

    A ``GATHER`` accepted on ``cmd`` in cycle ``s`` reads positions ``pos`` and ``pos + 1`` (the
    first bag's start and end) in ``s``, the first index word and the third position in ``s + 1``,
    and takes its first step in ``s + 2`` (``WALK_CYCLES`` = 3 to the first offered row). Each
    later cycle takes one step while bags are left: at an empty bag (word pointer equal to the
    bag's end) the step over it, else the bag's next row into the row register if the register
    is free or its row is taken in that cycle. A row at index ``i`` of bag ``b`` is offered from
    the cycle after its step as ``addr = base + i·dim`` and ``entry = entry + b·dim``. The end
    position of the bag after the current one is always read ahead on ``pos_port``, so leaving
    a bag costs no cycle; ``idx_port`` holds the next index word. ``cmd`` is ready when no walk
    is in progress (after the last step's cycle).

    Parameters (keyword-only)
    -------------------------
    word_addr_bits : int
        Word-address width of the index bank, >= 1.
    entry_bits, ctx_bits : int
        As for :class:`GatherUnit`.

    Members
    -------
    cmd : In(stream.Signature(walk_layout(word_addr_bits, entry_bits, ctx_bits)))
    rows : Out(stream.Signature(row_layout(entry_bits, ctx_bits)))
        The row register.
    pos_port, idx_port : In(memory.ReadPort.Signature(addr_width=word_addr_bits, shape=WORD_BITS))
        Two read ports of the index bank (one-cycle reads; the data hold while ``en`` is low).
    """

    def __init__(self, *, word_addr_bits: int, entry_bits: int = 16, ctx_bits: int = 1):
        with _rejected_is_not_unused(self):
            self._wbits = _check_int("word_addr_bits", word_addr_bits, minimum=1)
            self._entry_bits = _check_int("entry_bits", entry_bits, minimum=1)
            self._ctx_bits = _check_int("ctx_bits", ctx_bits, minimum=1)
        port = memory.ReadPort.Signature(addr_width=word_addr_bits, shape=WORD_BITS)
        super().__init__({
            "cmd": In(stream.Signature(walk_layout(word_addr_bits, entry_bits, ctx_bits))),
            "rows": Out(stream.Signature(row_layout(entry_bits, ctx_bits))),
            "pos_port": In(port),
            "idx_port": In(port),
        })

    def elaborate(self, platform):
        m = Module()
        wbits = self._wbits
        cmd = self.cmd.payload
        pos_port, idx_port = self.pos_port, self.idx_port

        # The walk's registers (reset-less data; ``phase`` is the control state).
        phase = Signal(range(3))  # 0 idle, 1 the cycle after cmd, 2 stepping
        cur = Signal(walk_layout(wbits, self._entry_bits, self._ctx_bits), reset_less=True)
        # Positions run up to the bank's depth (the end of its last word): one bit more.
        word = Signal(wbits + 1, reset_less=True)  # next index word of the current bag
        end = Signal(wbits + 1, reset_less=True)  # the current bag's end position
        pos_next = Signal(wbits, reset_less=True)  # address of the next position read ahead
        bags_left = Signal.like(cur.bags, reset_less=True)
        entry = Signal.like(cur.entry, reset_less=True)

        m.d.comb += [pos_port.en.eq(0), idx_port.en.eq(0), self.cmd.ready.eq(phase == 0)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.comb += [pos_port.en.eq(1), pos_port.addr.eq(cmd.pos),
                         idx_port.en.eq(1), idx_port.addr.eq(cmd.pos + 1)]
            m.d.sync += [phase.eq(1), cur.eq(cmd), bags_left.eq(cmd.bags), entry.eq(cmd.entry)]
        with m.If(phase == 1):
            # pos_port holds the first bag's start, idx_port its end.
            m.d.comb += [pos_port.en.eq(1), pos_port.addr.eq(cur.pos + 2),
                         idx_port.en.eq(1), idx_port.addr.eq(pos_port.data)]
            m.d.sync += [phase.eq(2), word.eq(pos_port.data), end.eq(idx_port.data),
                         pos_next.eq(cur.pos + 3)]

        # Stepping: pos_port.data is the end of the bag after the current one, idx_port.data
        # the index at ``word``.
        register_free = ~self.rows.valid | self.rows.ready
        empty = word == end
        row_step = (phase == 2) & ~empty & register_free
        step = (phase == 2) & (empty | register_free)
        with m.If(self.rows.ready):
            m.d.sync += self.rows.valid.eq(0)
        with m.If(row_step):
            m.d.sync += [
                self.rows.valid.eq(1),
                self.rows.payload.addr.eq(cur.base + idx_port.data * cur.dim),
                self.rows.payload.dim.eq(cur.dim),
                self.rows.payload.entry.eq(entry),
                self.rows.payload.ctx.eq(cur.ctx),
                word.eq(word + 1),
            ]
            m.d.comb += [idx_port.en.eq(1), idx_port.addr.eq(word + 1)]
        bag_ends = step & (empty | (word + 1 == end))
        with m.If(bag_ends):
            m.d.comb += [pos_port.en.eq(1), pos_port.addr.eq(pos_next)]
            m.d.sync += [end.eq(pos_port.data), pos_next.eq(pos_next + 1), bags_left.eq(bags_left - 1),
                         entry.eq(entry + cur.dim)]
            with m.If(bags_left == 1):
                m.d.sync += phase.eq(0)
        return m


class GatherLane(wiring.Component):
    """An :class:`IndexWalker` feeding a :class:`GatherUnit` (one ``gather_units`` lane), with
    the rows' ``ctx`` being the ``GATHER``'s mini-batch parity.

    ``busy[p]`` is high while the lane holds work of parity ``p``: a walk of a ``GATHER`` of that
    parity in progress, a row of it in the row register, or lines of it requested and not yet
    pooled to their last chunk. A ``GATHER`` is done in the later of its last walk step and its
    last pooling cycle (docs/recsys.md, "Engines and timing" 2); ``busy[p]`` falls in the cycle
    after the last such event of the lane's ``GATHER``s of parity ``p``, so once the sequencer
    has handed every lane all ``GATHER``s of a mini-batch, the first cycle in which no lane is
    busy with its parity is the cycle after they are all done.

    Parameters (keyword-only): those of :class:`IndexWalker` and :class:`GatherUnit`.

    Members
    -------
    cmd, pos_port, idx_port : as for :class:`IndexWalker` (``ctx_bits`` = 1: the parity)
    req, resp, pool, tags_used, hits : as for :class:`GatherUnit`
    busy : Out(2)
    """

    def __init__(self, *, word_addr_bits: int, line_bytes: int, max_outstanding: int, channels: int,
                 pool_lanes: int, cache_lines: int = 0, entry_bits: int = 16):
        self._walker = IndexWalker(word_addr_bits=word_addr_bits, entry_bits=entry_bits)
        self._unit = GatherUnit(line_bytes=line_bytes, max_outstanding=max_outstanding, channels=channels,
                                pool_lanes=pool_lanes, cache_lines=cache_lines, entry_bits=entry_bits)
        members = {name: self._walker.signature.members[name] for name in ("cmd", "pos_port", "idx_port")}
        members |= {name: self._unit.signature.members[name] for name in ("req", "resp", "pool", "tags_used", "hits")}
        members["busy"] = Out(2)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        walker, unit = self._walker, self._unit
        m.submodules.walker, m.submodules.unit = walker, unit
        wiring.connect(m, wiring.flipped(self.cmd), walker.cmd)
        wiring.connect(m, wiring.flipped(self.pos_port), walker.pos_port)
        wiring.connect(m, wiring.flipped(self.idx_port), walker.idx_port)
        wiring.connect(m, walker.rows, unit.rows)
        wiring.connect(m, unit.req, wiring.flipped(self.req))
        for mine, its in zip(self.resp, unit.resp):
            wiring.connect(m, wiring.flipped(mine), its)
        wiring.connect(m, unit.pool, wiring.flipped(self.pool))
        m.d.comb += [self.tags_used.eq(unit.tags_used), self.hits.eq(unit.hits)]

        # Per parity: a walk in progress (the walker takes no command while it walks), a row in
        # the row register, and lines taken (requested or hit) and not yet pooled.
        walk_parity = Signal()
        with m.If(walker.cmd.valid & walker.cmd.ready):
            m.d.sync += walk_parity.eq(walker.cmd.payload.ctx)
        take = (unit.req.valid & unit.req.ready) | unit.hits
        row = walker.rows
        lines = [Signal(range(self._unit._tags + 1), name=f"lines{p}") for p in range(2)]
        for p in range(2):
            up = take & (row.payload.ctx == p)
            down = unit.pool.valid & unit.pool.payload.last & (unit.pool.payload.ctx == p)
            m.d.sync += lines[p].eq(lines[p] + up - down)
            m.d.comb += self.busy[p].eq(
                (~walker.cmd.ready & (walk_parity == p)) | (row.valid & (row.payload.ctx == p))
                | (lines[p] != 0))
        return m


class GatherUnit(wiring.Component):
    """One gather unit with its tag pool, cache slice and pooling stage.

    A row at byte address ``a`` of ``dim`` bytes touches lines ``a // line`` …
    ``(a + dim - 1) // line``; the unit requests them in order, one per cycle while a tag is
    free (``max_outstanding`` tags; a tag is held from the request up to and including the last
    pooling cycle of its slice). A line found in the cache slice (``cache_lines`` sets, direct
    mapped by line number; 0: no cache) takes a tag but no memory request and is delivered
    ``CACHE_HIT_CYCLES`` after its lookup; a miss fills its set in its delivery cycle. The
    pooling stage takes delivered lines in arrival order (same cycle: channel 0 first, hits
    last) from the cycle after their delivery and emits ``ceil(n / pool_lanes)`` chunks of a
    slice of ``n`` elements, one per cycle, back to back.

    Parameters (keyword-only)
    -------------------------
    line_bytes : int
        Bytes of a line, a power of two >= 4.
    max_outstanding : int
        Tags (line requests in flight or waiting to pool), >= 1.
    channels : int
        Response lanes (memory channels that may deliver in the same cycle), >= 1.
    pool_lanes : int
        Elements pooled per cycle, a power of two >= 1.
    cache_lines : int
        Sets of the cache slice, 0 or a power of two.
    entry_bits, ctx_bits : int
        Widths of the pooled element index and of the opaque row context.

    Members
    -------
    rows : In(stream.Signature(row_layout(entry_bits, ctx_bits)))
        Rows to gather; a row is taken (``ready``) in the cycle its last line is requested.
    req : Out(stream.Signature(request_layout(tag_bits)))
        Line reads to memory (cache misses).
    resp : In(stream.Signature(response_layout(line_bytes, tag_bits), always_ready=True)).array(channels)
        Delivered lines, one lane per channel.
    pool : Out(stream.Signature(pool_layout(pool_lanes, entry_bits, ctx_bits), always_ready=True))
        Elements to add into the pooled buffer, one chunk per cycle.
    tags_used : Out(range(max_outstanding + 1))
        Tags in use at the start of the cycle (requested, queued or pooling).
    hits : Out(1)
        The line requested this cycle was a cache hit.
    """

    def __init__(self, *, line_bytes: int, max_outstanding: int, channels: int, pool_lanes: int,
                 cache_lines: int = 0, entry_bits: int = 16, ctx_bits: int = 1):
        with _rejected_is_not_unused(self):
            self._line = _check_int("line_bytes", line_bytes, minimum=4, pow2=True)
            self._tags = _check_int("max_outstanding", max_outstanding, minimum=1)
            self._channels = _check_int("channels", channels, minimum=1)
            self._lanes = _check_int("pool_lanes", pool_lanes, minimum=1, pow2=True)
            self._cache = _check_int("cache_lines", cache_lines, minimum=0)
            if self._cache and self._cache & (self._cache - 1):
                raise ValueError(f"cache_lines must be 0 or a power of two, not {cache_lines}")
            self._entry_bits = _check_int("entry_bits", entry_bits, minimum=1)
            self._ctx_bits = _check_int("ctx_bits", ctx_bits, minimum=1)
        self.tag_bits = _bits(self._tags)
        super().__init__({
            "rows": In(stream.Signature(row_layout(entry_bits, ctx_bits))),
            "req": Out(stream.Signature(request_layout(self.tag_bits))),
            "resp": In(stream.Signature(response_layout(line_bytes, self.tag_bits),
                                        always_ready=True)).array(channels),
            "pool": Out(stream.Signature(pool_layout(pool_lanes, entry_bits, ctx_bits), always_ready=True)),
            "tags_used": Out(range(max_outstanding + 1)),
            "hits": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        line, tags, lanes = self._line, self._tags, self._lanes
        lb = line.bit_length() - 1
        ln_bits = ADDR_BITS - lb
        entry_bits, ctx_bits = self._entry_bits, self._ctx_bits
        off_bits, n_bits = _bits(line), _bits(line + 1)

        # Tag pool and per-tag metadata (reset-less: meaningful only while the tag is held).
        free = Signal(tags, init=(1 << tags) - 1)
        meta_layout = data.StructLayout({"off": unsigned(off_bits), "n": unsigned(n_bits),
                                         "elem": unsigned(entry_bits), "ctx": unsigned(ctx_bits),
                                         "line": unsigned(ln_bits)})
        meta = Array(Signal(meta_layout.as_shape(), reset_less=True, name=f"meta{i}") for i in range(tags))
        store = Array(Signal(8 * line, reset_less=True, name=f"line{i}") for i in range(tags))
        m.d.comb += self.tags_used.eq(sum(~free[i] & 1 for i in range(tags)))

        # Lowest free tag.
        new_tag = Signal(self.tag_bits)
        any_free = free.any()
        for i in reversed(range(tags)):
            with m.If(free[i]):
                m.d.comb += new_tag.eq(i)

        # Line splitter over the offered row: ``mid`` once its first line was requested, then
        # ``next_line`` is the line to request (registered, to keep an adder off the lookup).
        row = self.rows.payload
        mid = Signal()
        next_line = Signal(ln_bits)
        cur_line = Signal(ln_bits)
        m.d.comb += cur_line.eq(Mux(mid, next_line, row.addr[lb:]))
        row_last = Signal(ADDR_BITS)
        m.d.comb += row_last.eq(row.addr + row.dim - 1)
        last_line = row_last[lb:] == cur_line
        lo = Signal(ADDR_BITS)
        m.d.comb += lo.eq(Mux(mid, Cat(Const(0, lb), cur_line), row.addr))
        slice_meta = Signal(meta_layout)
        m.d.comb += [
            slice_meta.off.eq(lo[:lb]),
            slice_meta.n.eq(Mux(last_line, row_last + 1, Cat(Const(0, lb), cur_line + 1)) - lo),
            slice_meta.elem.eq(row.entry + (lo - row.addr)),
            slice_meta.ctx.eq(row.ctx),
            slice_meta.line.eq(cur_line),
        ]

        # Cache slice: a lookup in cycle x sees the fills of cycles before x.
        hit = Signal()
        if self._cache:
            sets = self._cache
            sb = sets.bit_length() - 1
            c_valid = Signal(sets)
            c_line = Array(Signal(ln_bits, reset_less=True, name=f"cline{i}") for i in range(sets))
            c_data = Array(Signal(8 * line, reset_less=True, name=f"cdata{i}") for i in range(sets))
            s = cur_line[:sb] if sb else Const(0, 1)
            m.d.comb += hit.eq(c_valid.bit_select(s, 1) & (c_line[s] == cur_line))
            # Hits wait CACHE_HIT_CYCLES in a tag delay line, then join the arrival order.
            hit_pipe = [Signal(1 + self.tag_bits, name=f"hit_pipe{i}") for i in range(isa.CACHE_HIT_CYCLES)]

        take = Signal()  # a line leaves this cycle (to memory or as a hit)
        m.d.comb += [
            self.req.valid.eq(self.rows.valid & any_free & ~hit),
            self.req.payload.addr.eq(Cat(Const(0, lb), cur_line)),
            self.req.payload.tag.eq(new_tag),
            take.eq(self.rows.valid & any_free & (hit | self.req.ready)),
            self.hits.eq(self.rows.valid & any_free & hit),
            self.rows.ready.eq(take & last_line),
        ]
        with m.If(take):
            m.d.sync += meta[new_tag].eq(slice_meta)
            m.d.sync += [mid.eq(~last_line), next_line.eq(cur_line + 1)]

        # Arrival queue of tags (capacity: every tag), filled by the channel lanes in channel
        # order and then the cache hit due this cycle.
        q_tags = Array(Signal(self.tag_bits, reset_less=True, name=f"q{i}") for i in range(tags))
        q_head = Signal(self.tag_bits)
        q_count = Signal(range(tags + 1))
        pushes = []  # (valid, tag)
        for lane in self.resp:
            pushes.append((lane.valid, lane.payload.tag))
        if self._cache:
            due = hit_pipe[-1]
            pushes.append((due[0], due[1:]))
            m.d.sync += hit_pipe[0].eq(Cat(take & hit, new_tag))
            for a, b in zip(hit_pipe, hit_pipe[1:]):
                m.d.sync += b.eq(a)
            with m.If(take & hit):
                m.d.sync += store[new_tag].eq(c_data[s])
            for lane in self.resp:
                with m.If(lane.valid):
                    filled = data.View(meta_layout, meta[lane.payload.tag]).line
                    fset = filled[:sb] if sb else Const(0, 1)
                    m.d.sync += [c_valid.bit_select(fset, 1).eq(1),
                                 c_line[fset].eq(filled),
                                 c_data[fset].eq(lane.payload.data)]
        for lane in self.resp:
            with m.If(lane.valid):
                m.d.sync += store[lane.payload.tag].eq(lane.payload.data)

        # Pooling: the active slice, or else the queue head (queued in an earlier cycle).
        active = Signal()
        act_tag = Signal(self.tag_bits)
        chunk_off = Signal(n_bits)  # elements of the slice already pooled
        popping = Signal()
        cur_tag = Signal(self.tag_bits)
        m.d.comb += [
            popping.eq(~active & (q_count != 0)),
            cur_tag.eq(Mux(active, act_tag, q_tags[q_head])),
            self.pool.valid.eq(active | popping),
        ]
        cm = data.View(meta_layout, meta[cur_tag])
        left = Signal(n_bits)
        m.d.comb += left.eq(cm.n - chunk_off)
        last_chunk = left <= lanes
        shifted = Signal(8 * line)
        m.d.comb += shifted.eq(store[cur_tag] >> ((cm.off + chunk_off) * 8))
        m.d.comb += [
            self.pool.payload.elem.eq(cm.elem + chunk_off),
            self.pool.payload.count.eq(Mux(last_chunk, left, lanes)),
            self.pool.payload.values.eq(shifted[: 8 * lanes] if 8 * lanes <= 8 * line
                                        else shifted),
            self.pool.payload.last.eq(last_chunk),
            self.pool.payload.ctx.eq(cm.ctx),
        ]
        freed = Signal(tags)
        with m.If(self.pool.valid):
            with m.If(last_chunk):
                m.d.sync += [active.eq(0), chunk_off.eq(0)]
                m.d.comb += freed.eq(1 << cur_tag)
            with m.Else():
                m.d.sync += [active.eq(1), act_tag.eq(cur_tag), chunk_off.eq(chunk_off + lanes)]
        taken = Signal(tags)
        with m.If(take):
            m.d.comb += taken.eq(1 << new_tag)
        m.d.sync += free.eq((free & ~taken) | freed)

        # Queue pointers: pushes land at consecutive slots after the tail, in lane order.
        n_push = 0
        q_tail = Signal(self.tag_bits)
        for valid, tag in pushes:
            slot = Signal(self.tag_bits + 1)
            m.d.comb += slot.eq(q_tail + n_push)
            with m.If(valid):
                m.d.sync += q_tags[Mux(slot >= tags, slot - tags, slot)[: self.tag_bits]].eq(tag)
            n_push = n_push + valid
        npush = Signal(range(len(pushes) + 1))
        m.d.comb += npush.eq(n_push)
        tail_next = Signal(self.tag_bits + 2)
        m.d.comb += tail_next.eq(q_tail + npush)
        m.d.sync += [
            q_tail.eq(Mux(tail_next >= tags, tail_next - tags, tail_next)),
            q_count.eq(q_count + npush - popping),
        ]
        with m.If(popping):
            m.d.sync += q_head.eq(Mux(q_head == tags - 1, 0, q_head + 1))
        return m


class PooledBuffer(wiring.Component):
    """One bank of the pooled-embedding buffer: ``entries`` sums of ``acc_bits`` in block RAM,
    zero when the bank is free (docs/recsys.md, "Pooled-embedding buffer").

    Each pooling port owns ``lanes`` memories (element e of port p in memory e % lanes of p, at
    row e // lanes), so a chunk's consecutive elements fall in distinct memories and every
    memory takes at most one element per cycle: a read–add–write pipeline per memory reads the
    row in the chunk's cycle x and writes the sum at the end of x + 1; the read port is
    transparent to the write port, so a chunk of x + 1 on the same row sees the sum of x (the
    forwarding). The units write disjoint elements, so an element's value is the sum over the
    ports' memories (the others hold 0). ``read_addr`` in cycle y gives that sum on
    ``read_data`` in y + 1 (a sum written at the end of y included); with ``read_clear`` the
    element is zeroed at the end of y + 1, so the reader (the ``INTER``) leaves the bank free for
    the next mini-batch but one without a clearing pass. Pooling and reading never overlap on a
    bank (the ``GATHER``s of m wait for the ``INTER`` of m − 2).

    Members
    -------
    pool : In(stream.Signature(pool_layout(lanes, entry_bits, ctx_bits), always_ready=True)).array(ports)
    read_addr : In(entry_bits)
    read_clear : In(1)
    read_data : Out(signed(acc_bits))
    """

    def __init__(self, *, entries: int, acc_bits: int, lanes: int, ports: int,
                 entry_bits: int = 16, ctx_bits: int = 1):
        with _rejected_is_not_unused(self):
            self._entries = _check_int("entries", entries, minimum=1)
            self._acc_bits = _check_int("acc_bits", acc_bits, minimum=8)
            self._lanes = _check_int("lanes", lanes, minimum=1, pow2=True)
            self._ports = _check_int("ports", ports, minimum=1)
            if entries > 1 << entry_bits:
                raise ValueError(f"entries ({entries}) do not fit entry_bits ({entry_bits})")
        super().__init__({
            "pool": In(stream.Signature(pool_layout(lanes, entry_bits, ctx_bits), always_ready=True)).array(ports),
            "read_addr": In(entry_bits),
            "read_clear": In(1),
            "read_data": Out(signed(acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        n, acc, lanes = self._entries, self._acc_bits, self._lanes
        lb = lanes.bit_length() - 1
        depth = -(-n // lanes)
        row_bits = _bits(depth)
        a = self.read_addr
        read_bank = a[:lb] if lb else Const(0, 1)
        read_row = a[lb:]
        # The reader's bank and clear, one cycle on (the read data's cycle).
        bank_q = Signal.like(read_bank)
        clear_q = Signal()
        row_q = Signal(row_bits)
        in_range_q = Signal()
        m.d.sync += [bank_q.eq(read_bank), clear_q.eq(self.read_clear & (a < n)), row_q.eq(read_row),
                     in_range_q.eq(a < n)]
        port_sums = []
        for p, port in enumerate(self.pool):
            elem = port.payload.elem
            outs = []
            for b in range(lanes):
                mem = memory.Memory(shape=signed(acc), depth=depth, init=[])
                m.submodules[f"sums{p}_{b}"] = mem
                wr = mem.write_port()
                rd = mem.read_port(transparent_for=(wr,))
                lane = Signal(max(1, lb), name=f"lane{p}_{b}")
                m.d.comb += lane.eq(b - elem[:lb] if lb else 0)
                e = Signal(len(elem) + 1, name=f"elem{p}_{b}")
                m.d.comb += e.eq(elem + lane)
                active = Signal(name=f"active{p}_{b}")
                m.d.comb += active.eq(port.valid & (lane < port.payload.count) & (e < n))
                # Stage 1 (the chunk's cycle): read the row; stage 2: add and write.
                add_q = Signal(name=f"add{p}_{b}")
                addr_q = Signal(row_bits, name=f"row{p}_{b}")
                value_q = Signal(signed(8), name=f"value{p}_{b}", reset_less=True)
                m.d.comb += rd.addr.eq(Mux(active, e[lb:], read_row))
                m.d.sync += [add_q.eq(active), addr_q.eq(e[lb:]), value_q.eq(port.payload.values[lane])]
                with m.If(add_q):
                    m.d.comb += [wr.en.eq(1), wr.addr.eq(addr_q), wr.data.eq(rd.data + value_q)]
                with m.Elif(clear_q & (bank_q == b)):
                    m.d.comb += [wr.en.eq(1), wr.addr.eq(row_q), wr.data.eq(0)]
                outs.append(rd.data)
            port_sums.append(Array(outs)[bank_q])
        total = port_sums[0]
        for extra in port_sums[1:]:
            total = total + extra
        m.d.comb += self.read_data.eq(Mux(in_range_q, total, 0))
        return m
