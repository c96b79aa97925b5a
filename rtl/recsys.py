"""Amaranth RTL of the ``recsys`` engine (docs/recsys.md is the contract).

The components so far:

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
- :class:`GatherSide` (:func:`gather_side` for a hardware configuration): the top's gather
  side, the lanes with their index-bank copies and the two pooled banks (placed and routed
  alone by benchmarks/bench_recsys_fmax.py).
- :class:`DenseEngine` (:func:`dense_engine` for a hardware configuration): the dense half:
  ``GEMM`` and ``INTER`` (concat and dot) instructions on the shared
  :class:`~sparsim.rtl.systolic.SystolicArray` (either dataflow), with the weight buffer,
  dense banks, activation regions, ``Z`` and the dot's feature store, bias, ReLU and
  requantisation, output rows for the out bank.

- :class:`RecsysAccelerator` (ports :func:`top_signature`): the engine top: the Program taken
  into per-engine queues, the loader's tagged line requests, index banks, gather lanes, pooled
  banks, the dense engine, the out banks and the store, under the contract's conditions.

Timing follows docs/recsys.md ("Units", "Engines and timing" 2): the request of a row's first
line leaves in the cycle the row is offered, a line delivered in cycle ``y`` starts pooling
from ``y + 1`` at the earliest, lines delivered in one cycle pool in channel order with cache
hits after them, and a tag is free again in the cycle after its slice's last pooling cycle.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sparsim.dataflow import recsys_isa as isa
from sparsim.dataflow.config import ConfigError
from sparsim.dataflow.systolic import PE_PIPELINE_CYCLES

from .collision import NO_COLLISION as _NO_COLLISION
from .collision import poison_collisions
from .collision import seen as _seen
from .shell import rejected_is_not_unused as _rejected_is_not_unused
from .shell import struct_from_fields
from .systolic import SystolicArray

__all__ = ["ADDR_BITS", "DIM_BITS", "WORD_BITS", "walk_layout", "row_layout", "request_layout",
           "response_layout", "pool_layout", "IndexWalker", "GatherLane", "GatherUnit", "PooledBuffer",
           "LineWriteQueue", "GatherSide", "gather_side", "top_front", "poison_collisions"]

#: Byte addresses (the ISA's ``addr`` field).
ADDR_BITS = isa.field_width("addr")
#: Row bytes (the ``GATHER``'s ``q`` field).
DIM_BITS = isa.field_width("q")
#: Bits of an index-block word (positions and indices, :data:`~sparsim.dataflow.recsys_isa.INDEX_BYTES`).
WORD_BITS = 8 * isa.INDEX_BYTES
#: The copies of a cache set's fill enable and source-lane select (:class:`GatherUnit`), as
#: (reset_less, init): copies of one register that differ in these stay apart through synthesis.
FILL_COPY_KINDS = ((False, 0), (True, 0), (True, 1), (False, 1))


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
    """``count`` (1 … lanes) INT8 values to add into elements ``elem`` … ``elem + count - 1``,
    in the pooled memories' order: ``values[b]`` is the value of the element that falls in
    memory ``b`` (element ``elem + ((b - elem) mod lanes)``, its place ``(b - elem) mod lanes``
    in the chunk; the others are don't-cares); ``last`` marks a line's final chunk (its tag is
    free from the next cycle)."""
    return data.StructLayout({"elem": unsigned(entry_bits), "count": unsigned(_bits(lanes + 1)),
                              "values": data.ArrayLayout(signed(8), lanes), "last": 1,
                              "ctx": unsigned(ctx_bits)})


class IndexWalker(wiring.Component):
    """One gather unit's index walker (docs/recsys.md, "Index walker g" and "Engines and timing" 2).

    A ``GATHER`` accepted on ``cmd`` in cycle ``s`` reads positions ``pos`` and ``pos + 1`` (the
    first bag's start and end) in ``s`` and the third position in ``s + 1``, has the first two in
    ``s + 2`` and reads the first index word there, fills its row-address pipeline in ``s + 3`` …
    ``s + 6`` and takes its first step in ``s + 7`` (``WALK_CYCLES`` = 8 to the first offered
    row). Each later cycle takes one step while bags are left: at an empty bag (word pointer
    equal to the bag's end) the step over it, else the bag's next row into the row buffer if
    its second slot was free at the start of the cycle (a register: the step does not wait on
    the take of the cycle). The buffer is the row register (``rows``, the head the gather unit
    requests from) and a second slot behind it: a stepped row goes into the head if the head is
    free at the end of the cycle (empty or taken), else into the second slot, which moves into
    the head in the cycle the head's row is taken. A row at index ``i`` of bag ``b`` is offered
    from the cycle after it enters the head as ``addr = base + i·dim`` and ``entry = entry +
    b·dim``. The index bank's reads take two enabled cycles (:class:`GatherSide`'s two-stage
    ports: the read address and the word, or the read line twice), so the ports run two reads ahead:
    the end positions of the two bags after the current one are read ahead on ``pos_port``, so
    leaving a bag costs no cycle; the row-address pipeline runs four index words ahead on
    ``idx_port`` (the two words in the port, the next registered, multiplied by ``dim`` in two
    partial products, added to the base), shifting on each row step, so that a step moves
    registers and the multiply is off its path. ``cmd`` is ready when no walk is in progress
    (after the last step's cycle).

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
        The row register (the row buffer's head).
    pos_port, idx_port : In(memory.ReadPort.Signature(addr_width=word_addr_bits, shape=WORD_BITS))
        Two read ports of the index bank, each a two-stage pipeline that moves only in a cycle
        with ``en`` high: ``data`` is the word of the read enabled before the last enabled cycle
        (it holds while ``en`` is low).
    next_addr, next_dim, next_avail : Out(ADDR_BITS), Out(DIM_BITS), Out(1)
        A row at ``next_addr`` of ``next_dim`` bytes is there for the row register (the second
        slot's, or a row stepped now), which takes it at the end of this cycle if it is free
        then (empty or taken), for :class:`GatherUnit`'s decisions ahead.
    last_step : Out(1)
        The walk's last step is in this cycle (``cmd`` is ready from the next), for
        :class:`GatherLane`'s ``busy`` flags ahead.
    holds : Out(2)
        Bit ``p``: a row whose ``ctx`` is ``p`` is in the row buffer (a register).
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
            "next_addr": Out(ADDR_BITS),
            "next_dim": Out(DIM_BITS),
            "next_avail": Out(1),
            "last_step": Out(1),
            "holds": Out(2),
        })

    def elaborate(self, platform):
        m = Module()
        wbits = self._wbits
        cmd = self.cmd.payload
        pos_port, idx_port = self.pos_port, self.idx_port
        fill_end = isa.WALK_CYCLES - 1  # the phase in which the walk steps

        # The walk's registers (reset-less data; ``phase`` is the control state).
        phase = Signal(range(fill_end + 1))  # 0 idle, 1 the cycle after cmd, 2 .. filling, fill_end stepping
        cur = Signal(walk_layout(wbits, self._entry_bits, self._ctx_bits), reset_less=True)
        # Positions run up to the bank's depth (the end of its last word): one bit more.
        word = Signal(wbits + 1, reset_less=True)  # next index word of the current bag
        end = Signal(wbits + 1, reset_less=True)  # the current bag's end position
        pos_next = Signal(wbits, reset_less=True)  # address of the next position read ahead
        fetch = Signal(wbits, reset_less=True)  # address of the next index word to read
        bags_left = Signal.like(cur.bags, reset_less=True)
        entry = Signal.like(cur.entry, reset_less=True)
        # The row address pipeline, ahead of ``word``: idx_port holds the indices at word + 4 and
        # word + 3 (the latter on its data), ``index_q`` the one at word + 2, ``lo``/``hi`` the
        # partial products index x dim of word + 1 (one multiplier each), ``row_addr`` the byte
        # address of the row at ``word``. It shifts on every row step (and while it fills), so the
        # step only enables registers: the multiply and the adds are off the step's path.
        index_q = Signal(WORD_BITS, reset_less=True)
        lo = Signal(18 + DIM_BITS, reset_less=True)
        hi = Signal(ADDR_BITS - 18, reset_less=True)
        row_addr = Signal(ADDR_BITS, reset_less=True)

        # The read addresses default to registers (the next position and index word to read ahead),
        # so that a step only enables the reads.
        m.d.comb += [pos_port.en.eq(0), pos_port.addr.eq(pos_next), idx_port.en.eq(0), idx_port.addr.eq(fetch),
                     self.cmd.ready.eq(phase == 0)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.comb += [pos_port.en.eq(1), pos_port.addr.eq(cmd.pos),
                         idx_port.en.eq(1), idx_port.addr.eq(cmd.pos + 1)]
            m.d.sync += [phase.eq(1), cur.eq(cmd), bags_left.eq(cmd.bags), entry.eq(cmd.entry)]
        with m.If(phase == 1):
            # Both ports move the first bag's start and end to their data; pos_port reads the
            # second bag's end (idx_port's read is not used).
            m.d.comb += [pos_port.en.eq(1), pos_port.addr.eq(cur.pos + 2), idx_port.en.eq(1)]
        with m.If(phase == 2):
            # pos_port holds the first bag's start, idx_port its end: the first index word's read.
            m.d.comb += [pos_port.en.eq(1), pos_port.addr.eq(cur.pos + 3),
                         idx_port.en.eq(1), idx_port.addr.eq(pos_port.data)]
            m.d.sync += [word.eq(pos_port.data), end.eq(idx_port.data),
                         pos_next.eq(cur.pos + 4), fetch.eq(pos_port.data + 1)]

        # Stepping: pos_port.data is the end of the bag after the current one, ``row_addr`` the
        # row at ``word``. Whether the bag is empty (``word == end``) and whether ``word`` is its
        # last row (``word + 1 == end``) are registers, loaded for each outcome of the cycle's row
        # step and bag end from compares of registers and picked by those last, so that no carry
        # chain precedes the step decision and the reads and clock enables behind it.
        stepping = phase == fill_end
        # The row buffer: the row register (``rows``, the head) and a second slot behind it. A
        # row step needs a free second slot at the start of the cycle (a register), so the
        # step does not wait on the gather unit's take of the head in the same cycle; the take
        # only picks where the stepped row goes (the head if it is free at the end of the cycle,
        # else the second slot) and moves the second slot's row into the head.
        second = Signal(row_layout(self._entry_bits, self._ctx_bits), reset_less=True)
        second_valid = Signal()
        head_free = ~self.rows.valid | self.rows.ready
        empty = Signal()
        last_row = Signal()
        row_step = stepping & ~empty & ~second_valid
        step = stepping & (empty | ~second_valid)
        bag_ends = step & (empty | last_row)
        first_word = Signal.like(word)
        first_end = Signal.like(end)
        next_end = Signal.like(end)  # the end of the bag after this one
        word_p1 = Signal.like(word)
        word_p2 = Signal.like(word)
        m.d.comb += [first_word.eq(pos_port.data), first_end.eq(idx_port.data), next_end.eq(pos_port.data),
                     word_p1.eq(word + 1), word_p2.eq(word + 2)]
        with m.If(phase == 2):
            m.d.sync += [empty.eq(first_word == first_end), last_row.eq(first_word + 1 == first_end)]
        with m.If(stepping):
            m.d.sync += [empty.eq(Mux(bag_ends, Mux(row_step, word_p1 == next_end, word == next_end),
                                      Mux(row_step, last_row, empty))),
                         last_row.eq(Mux(bag_ends, Mux(row_step, word_p2 == next_end, word_p1 == next_end),
                                         Mux(row_step, word_p2 == end, last_row)))]
        with m.If((phase >= 1) & ~stepping):
            m.d.sync += phase.eq(phase + 1)
        # The fill shifts from s + 3 (idx_port's data is the first word from s + 4 on).
        row_addr_next = Signal.like(row_addr)
        m.d.comb += row_addr_next.eq(row_addr)
        with m.If(((phase >= 3) & ~stepping) | row_step):
            m.d.comb += [idx_port.en.eq(1), row_addr_next.eq(cur.base + lo + Cat(Const(0, 18), hi))]
            m.d.sync += [fetch.eq(fetch + 1), index_q.eq(idx_port.data), lo.eq(index_q[:18] * cur.dim),
                         hi.eq(index_q[18:] * cur.dim)]
        m.d.sync += row_addr.eq(row_addr_next)
        stepped = Signal.like(second)
        m.d.comb += [stepped.addr.eq(row_addr), stepped.dim.eq(cur.dim), stepped.entry.eq(entry),
                     stepped.ctx.eq(cur.ctx)]
        # The row the head takes at the end of this cycle (if it is free then): the second
        # slot's, else the one stepped now.
        incoming = Signal.like(second)
        # ``incoming``'s address as a register of its own (the row the head takes next: the
        # second slot's, or the row-address pipeline's head while that slot is empty), loaded
        # with the buffer, so the gather unit's lookup of the new row starts from a register and
        # not from the select of the two.
        next_row_addr = Signal(ADDR_BITS, reset_less=True)
        m.d.comb += [incoming.eq(Mux(second_valid, second, stepped)),
                     self.next_avail.eq(second_valid | row_step),
                     self.next_addr.eq(next_row_addr), self.next_dim.eq(incoming.dim)]
        # The next cycle's ``next_row_addr``: the second slot's row if it holds one then (a row
        # stepped now into it, or its row kept), else the pipeline's head after this cycle.
        m.d.sync += next_row_addr.eq(row_addr_next)
        with m.If(head_free):
            m.d.sync += self.rows.valid.eq(second_valid | row_step)
            with m.If(second_valid | row_step):
                m.d.sync += self.rows.payload.eq(incoming)
            m.d.sync += second_valid.eq(0)
        with m.Elif(row_step):
            m.d.sync += [second.eq(stepped), second_valid.eq(1), next_row_addr.eq(row_addr)]
        with m.Elif(second_valid):
            m.d.sync += next_row_addr.eq(second.addr)
        with m.If(row_step):
            m.d.sync += word.eq(word + 1)
        # Per parity, a row of it in the buffer in the next cycle (for GatherLane's ``busy``).
        head_next = Mux(head_free, second_valid | row_step, 1)
        head_ctx = Mux(head_free & (second_valid | row_step), incoming.ctx, self.rows.payload.ctx)
        second_next = ~head_free & (second_valid | row_step)
        second_ctx = Mux(second_valid, second.ctx, cur.ctx)
        for p in range(2):
            m.d.sync += self.holds[p].eq((head_next & (head_ctx == p)) | (second_next & (second_ctx == p)))
        with m.If(bag_ends):
            m.d.comb += pos_port.en.eq(1)
            m.d.sync += [end.eq(pos_port.data), pos_next.eq(pos_next + 1), bags_left.eq(bags_left - 1),
                         entry.eq(entry + cur.dim)]
            with m.If(bags_left == 1):
                m.d.comb += self.last_step.eq(1)
                m.d.sync += phase.eq(0)
        return m


class GatherLane(wiring.Component):
    """An :class:`IndexWalker` feeding a :class:`GatherUnit` (one ``gather_units`` lane), with
    the rows' ``ctx`` being the ``GATHER``'s mini-batch parity.

    ``busy[p]`` is high while the lane holds work of parity ``p``: a walk of a ``GATHER`` of that
    parity in progress, a row of it in the row buffer, or lines of it requested and not yet
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
        m.d.comb += [unit.next_addr.eq(walker.next_addr), unit.next_dim.eq(walker.next_dim),
                     unit.next_avail.eq(walker.next_avail)]
        wiring.connect(m, unit.req, wiring.flipped(self.req))
        for mine, its in zip(self.resp, unit.resp):
            wiring.connect(m, wiring.flipped(mine), its)
        wiring.connect(m, unit.pool, wiring.flipped(self.pool))
        m.d.comb += [self.tags_used.eq(unit.tags_used), self.hits.eq(unit.hits)]

        # Per parity: a walk in progress (the walker takes no command while it walks), a row in
        # the row buffer (the walker's ``holds``), and lines taken (requested or hit) and not yet
        # pooled. Each is a flag register set and cleared by the events that change it (the same
        # cycles as the walker's and the unit's own state), so ``busy`` is an OR of three
        # registers: it enters the top's issue decisions, which wait on it in the cycle it falls.
        accepted = walker.cmd.valid & walker.cmd.ready
        take = (unit.req.valid & unit.req.ready) | unit.hits
        row = walker.rows
        lines = [Signal(range(self._unit._tags + 1), name=f"lines{p}") for p in range(2)]
        for p in range(2):
            walking = Signal(name=f"walking{p}")  # ~walker.cmd.ready & (walk_parity == p)
            holding = Signal(name=f"holding{p}")  # a row of parity p in the row buffer
            pending = Signal(name=f"pending{p}")  # lines[p] != 0
            with m.If(accepted):
                m.d.sync += walking.eq(walker.cmd.payload.ctx == p)
            with m.Elif(walker.last_step):
                m.d.sync += walking.eq(0)
            m.d.comb += holding.eq(walker.holds[p])
            up = take & (row.payload.ctx == p)
            down = unit.pool.valid & unit.pool.payload.last & (unit.pool.payload.ctx == p)
            m.d.sync += [lines[p].eq(lines[p] + up - down),
                         pending.eq(Mux(up == down, lines[p] != 0, up | (lines[p] != 1)))]
            m.d.comb += self.busy[p].eq(walking | holding | pending)
        return m


class GatherUnit(wiring.Component):
    """One gather unit with its tag pool, cache slice and pooling stage.

    A row at byte address ``a`` of ``dim`` bytes touches lines ``a // line`` …
    ``(a + dim - 1) // line``; the unit requests them in order, one per cycle while a tag is
    free (``max_outstanding`` tags; a tag is held from the request up to and including the last
    pooling cycle of its slice). A line found in the cache slice (``cache_lines`` sets, direct
    mapped by line number; 0: no cache) takes a tag but no memory request and is delivered
    ``CACHE_HIT_CYCLES`` after its lookup; a miss fills its set for the lookups of
    ``CACHE_FILL_CYCLES`` after its delivery and later. The
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
        Elements to add into the pooled buffer, one chunk per cycle, in the pooled memories'
        order (each memory's byte picked out of the line by a select of its own).
    tags_used : Out(range(max_outstanding + 1))
        Tags in use at the start of the cycle (requested, queued or pooling).
    hits : Out(1)
        The line requested this cycle was a cache hit.
    next_addr, next_dim, next_avail : In(ADDR_BITS), In(DIM_BITS), In(1)
        The row source has a row (byte address ``next_addr``, ``next_dim`` bytes) for its row
        register (``next_avail``), which takes it at the end of a cycle in which the register
        is free then (``rows`` not valid, or its row's last line taken; none is taken while a
        row is part-way requested): the unit looks the next cycle's line up and decides whether
        a row's first line is its last one cycle ahead. The payload of ``rows`` holds while no
        new row is taken; every row is announced so, the first one too.
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
            "next_addr": In(ADDR_BITS),
            "next_dim": In(DIM_BITS),
            "next_avail": In(1),
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
        # ``cur_line`` is ``Mux(mid, next_line, row.addr[lb:])`` as a register of its own (loaded
        # below with the decisions that change ``mid``, ``next_line`` and the row register), so the
        # request's address, the cache's set select and the line compares start from a register.
        cur_line = Signal(ln_bits)
        row_last = Signal(ADDR_BITS)
        m.d.comb += row_last.eq(row.addr + row.dim - 1)
        # Whether the line to request is the row's last: for its first line from its offset and
        # bytes, for a later one a flag registered with ``next_line`` (keeps the row's end
        # address and a line-number compare off the take decision, which the walker waits on).
        first_last = Signal()  # of the row in the row register, decided when it was announced
        mid_last = Signal()
        last_line = Signal()
        m.d.comb += last_line.eq(Mux(mid, mid_last, first_last))
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

        # Cache slice: a lookup in cycle x sees the fills of cycles before x. It is made in x - 1,
        # of the line the unit will request in x (that of its registers' next state) against the
        # cache after x - 1's fills, and registered, which keeps the set select and the line
        # compare off the take decision (and the walker's step, which waits on it).
        hit = Signal()
        if self._cache:
            sets = self._cache
            sb = sets.bit_length() - 1
            c_valid = Signal(sets)
            c_line = Array(Signal(ln_bits, reset_less=True, name=f"cline{i}") for i in range(sets))
            # Hits wait CACHE_HIT_CYCLES in a tag delay line, then join the arrival order.
            hit_pipe = [Signal(1 + self.tag_bits, name=f"hit_pipe{i}") for i in range(isa.CACHE_HIT_CYCLES)]
            # A fill (per response lane): its line, set (one-hot) and data registered in the cycle
            # after its delivery, from which the set is written at the end of that cycle and the
            # lookups of that cycle see it (``CACHE_FILL_CYCLES`` = 2: the requests of the cycle
            # after): the delivered tag's line read is off the lookups and the sets' enables.
            pend = [(Signal(name=f"pend{c}_valid"), Signal(sets, name=f"pend{c}_set"),
                     Signal(8 * line, reset_less=True, name=f"pend{c}_data"),
                     Signal(ln_bits, reset_less=True, name=f"pend{c}_line")) for c in range(len(self.resp))]

        take = Signal()  # a line leaves this cycle (to memory or as a hit)
        m.d.comb += [
            self.req.valid.eq(self.rows.valid & any_free & ~hit),
            self.req.payload.addr.eq(Cat(Const(0, lb), cur_line)),
            self.req.payload.tag.eq(new_tag),
            take.eq(self.rows.valid & any_free & (hit | self.req.ready)),
            self.hits.eq(self.rows.valid & any_free & hit),
            self.rows.ready.eq(take & last_line),
        ]
        # The line after ``cur_line`` as a register of its own: ``next_line + 1`` while ``mid``,
        # else the row's first line + 1 (``first_p1``, registered when the row was announced),
        # so no carry chain or select by ``mid`` precedes the next line's cache lookup.
        following = Signal(ln_bits)
        first_p1 = Signal(ln_bits)
        first_p1_next = Signal(ln_bits)
        m.d.comb += first_p1_next.eq(first_p1)
        # The line's slice is written into the lowest free tag's meta in every cycle, taken or
        # not: a free tag's meta is read by nothing (fills, the arrival queue and pooling read held
        # tags only), so the write's enable is the free bits' decode (registers) and not the take,
        # which waits on ``req.ready`` (routed at 119a6f3: ``meta#`` 388 of 720 endpoints late).
        for i in range(tags):
            with m.If(free[i] & ~(free[:i].any() if i else Const(0, 1))):
                m.d.sync += meta[i].eq(slice_meta)
        with m.If(take):
            m.d.sync += [mid.eq(~last_line), next_line.eq(following),
                         mid_last.eq(row_last[lb:] == following)]
        # Whether the row register takes the announced row at the end of this cycle (it does when
        # it is free then: empty, or its row's last line taken), and the choices below, are formed
        # for both outcomes of ``take`` from registers and the announcement, and ``take`` (which
        # waits on ``req.ready``) picks last: one select behind it, not a chain of decisions with
        # nets of 58 and 59 loads (routed at 6e29c65: ``hit_pick_adv`` -> ``req.ready`` ->
        # ``take`` -> ``cur_set``, 12.99 ns).
        load_if_take = Signal()  # take: the row leaves when its last line is taken
        load_if_not = Signal()  # no take: the register is empty
        m.d.comb += [load_if_take.eq(last_line & self.next_avail),
                     load_if_not.eq(~self.rows.valid & ~mid & self.next_avail)]
        row_in = Signal()  # the register takes the announced row (while no row is part-way)
        m.d.comb += row_in.eq(Mux(take, load_if_take, load_if_not))
        next_p1 = Signal(ln_bits)
        m.d.comb += next_p1.eq(self.next_addr[lb:] + 1)
        with m.If(row_in):
            m.d.comb += first_p1_next.eq(next_p1)
            m.d.sync += first_last.eq(self.next_addr[:lb] + self.next_dim <= line)
        fol_take = Mux(~last_line, following + 1, Mux(self.next_avail, next_p1, first_p1))
        fol_not = Mux(mid, following, Mux(load_if_not, next_p1, first_p1))
        m.d.sync += [first_p1.eq(first_p1_next), following.eq(Mux(take, fol_take, fol_not))]
        # The next cycle's line: the row's next (``following``), a new row's first (the row
        # register taking one while no row is part-way), the row's first after its last line
        # leaves without a new row (``mid`` falls: what the row register holds), else this one.
        # ``cur_set``: a copy of ``cur_line``'s set bits (reset-less, so synthesis keeps it apart)
        # for the hit's read of its set, so the register behind the request's address does not
        # also drive the line-wide set select.
        cur_set = Signal(max(1, self._cache.bit_length() - 1), reset_less=True)
        cur_next = Signal(ln_bits)
        cur_take = Mux(~last_line, following, Mux(self.next_avail, self.next_addr[lb:], row.addr[lb:]))
        cur_not = Mux(load_if_not, self.next_addr[lb:], cur_line)
        m.d.comb += cur_next.eq(Mux(take, cur_take, cur_not))
        m.d.sync += [cur_line.eq(cur_next), cur_set.eq(cur_next[:len(cur_set)])]
        if self._cache:
            # The line of the next cycle: the row's next line, the same one, or (the row register
            # taking a new row, ``row_in``, while no row is part-way) the new row's first line.
            # Each candidate comes from registers (the new row from the row buffer's second slot
            # or the walker's row-address pipeline, whose step waits on no take), so the lookups
            # run side by side and the take only picks a result.
            def lookup(ln, name, before=None):
                """Whether line ``ln`` is in the cache after this cycle's fills (the last lane's
                fill of a set wins, as in the fill below), from ``before``, whether it is in
                the cache before them (default: the set's line compared with ``ln``). Each
                tag's line is compared with ``ln`` (set and line) from registers and the
                delivered tag only selects a result, so no tag-indexed line read precedes a
                compare."""
                ls = ln[:sb] if sb else Const(0, 1)
                found = Signal(name=name)
                result = c_valid.bit_select(ls, 1) & (c_line[ls] == ln) if before is None else before
                for valid, onehot, _, pline in pend:
                    result = Mux(valid & onehot.bit_select(ls, 1), pline == ln, result)
                m.d.comb += found.eq(result)
                return found

            # The same line as this cycle's: ``hit`` is its lookup against the cache before
            # this cycle's fills (every line is looked up in full when it becomes the line to
            # request, by ``adv`` or ``new_row``, and only fills change a set), so only this
            # cycle's fills are applied to it (no set select or line compare on the row
            # register's line).
            # Each of the three lookups is registered as it stands (``h_adv``, ``h_new``,
            # ``h_same``) and the cycle's outcome only loads two flags that pick one of them in
            # the next cycle, so ``hit`` is a select of registers and the take (which waits on
            # ``req.ready``, and so on ``hit`` through ``req.valid``) ends in those two flags,
            # not in front of the lookups' selects and compares: routed at 119a6f3, ``hit`` ->
            # ``req.ready`` -> ``take`` -> the lookups' line selects -> ``hit`` was the critical
            # path (12.99 ns).
            h_adv, h_new, h_same = Signal(name="hit_adv"), Signal(name="hit_new"), Signal(name="hit_kept")
            pick_adv, pick_new = Signal(name="hit_pick_adv"), Signal(name="hit_pick_new")
            same, adv = lookup(cur_line, "hit_same", before=hit), lookup(following, "hit_next_line")
            new_row = lookup(self.next_addr[lb:], "hit_new_row")
            m.d.comb += hit.eq(Mux(pick_adv, h_adv, Mux(pick_new, h_new, h_same)))
            m.d.sync += [h_adv.eq(adv), h_new.eq(new_row), h_same.eq(same),
                         pick_adv.eq(take & ~last_line), pick_new.eq(row_in)]

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
            m.d.sync += hit_pipe[0].eq(Cat(self.hits, new_tag))  # take & hit, without req.ready
            for a, b in zip(hit_pipe, hit_pipe[1:]):
                m.d.sync += b.eq(a)
            # A hit's line is copied into its tag's store the cycle after the lookup (pooling reads
            # it CACHE_HIT_CYCLES + 1 later at the earliest), so the take decision does not steer
            # a line-wide write; the set is read in the lookup cycle, before that cycle's fill.
            # A fill's line data is written into its set the cycle after its delivery, from
            # registers (its set one-hot, the line), so the delivered tag's meta read and the set
            # decode are not in front of the line-wide write enables; a hit's read of its set in
            # that cycle takes the pending line instead (the later lane's, as in the write).
            # The set's line and valid bit, which the lookups read, are written in the delivery
            # cycle as before.
            hit_data = Signal(8 * line, reset_less=True)
            # The set is read as it stands: a fill delivered in the cycle before the lookup's is
            # not in it yet (``CACHE_FILL_CYCLES``), nor in the lookup, so no forwarding.
            # The sets' lines are in LUT RAM, one memory per response lane (each written by its
            # lane's pending fill, so one write port each), and a register per set (``cfrom#``)
            # says which lane's memory holds the set's last fill (the later lane's, when both fill
            # it in one cycle): read asynchronously at ``cur_set``, as the flip-flops they replace
            # (mid: 16 sets of 128 bits in flip-flops with per-set write selects).
            chans = len(self.resp)
            c_from = [Signal(range(chans), name=f"cfrom{i}") for i in range(sets)] if chans > 1 else []
            c_rd = []
            for c, (valid, _, pdata, pline) in enumerate(pend):
                cmem = memory.Memory(shape=8 * line, depth=sets, init=[])
                m.submodules[f"cdata_l{c}"] = cmem
                cw = cmem.write_port()
                cr = cmem.read_port(domain="comb")
                m.d.comb += [cw.en.eq(valid), cw.addr.eq(pline[:sb] if sb else 0), cw.data.eq(pdata),
                             cr.addr.eq(cur_set[:sb] if sb else 0)]
                c_rd.append(cr.data)
            if chans > 1:
                src_lane = Array(c_from)[cur_set[:sb]] if sb else c_from[0]
                m.d.sync += hit_data.eq(Array(c_rd)[src_lane])
            else:
                m.d.sync += hit_data.eq(c_rd[0])
            with m.If(hit_pipe[0][0]):
                m.d.sync += store[hit_pipe[0][1:]].eq(hit_data)
            # Each set's write enable and source lane (the later lane's fill of a set wins) are
            # registers of their own, loaded in the delivery cycle beside ``pend``, in
            # copies per set (``FILL_COPY_KINDS``), each driving a group of the line's bits (and a
            # share of the line number's), so the set's enables and data selects are one hop
            # from a register with a few dozen loads: as OR and select of the ``pend`` registers
            # they were two LUTs with 157-load nets in series on the tiny top (routed at 119a6f3:
            # ``cdata#`` 4,082 of 4,096 clock enables late, ``cline#`` 896, up to 12.6 ns). The
            # copies differ in their reset and initial values, so synthesis keeps them apart; the
            # set's valid bit takes copy 0, the one reset to 0 (the others may write a line of
            # an invalid set in reset or the first cycle, which no lookup reads).
            n_copies = len(FILL_COPY_KINDS)
            fills = [(lane.valid, data.View(meta_layout, meta[lane.payload.tag]).line) for lane in self.resp]
            chans = len(self.resp)
            for i in range(sets):
                hits_i = [v & ((ln[:sb] == i) if sb else Const(1, 1)) for v, ln in fills]
                src = Const(0, range(chans))
                for c, h in enumerate(hits_i):
                    src = Mux(h, c, src)
                en_c, sel_c = [], []
                for k in range(n_copies):
                    rl, init = FILL_COPY_KINDS[k]
                    en = Signal(name=f"fill{i}_en{k}", reset_less=rl, init=init)
                    m.d.sync += en.eq(Cat(*hits_i).any())
                    en_c.append(en)
                    if chans > 1:
                        sel = Signal(range(chans), name=f"fill{i}_sel{k}", reset_less=rl, init=init)
                        m.d.sync += sel.eq(src)
                        sel_c.append(sel)
                    else:
                        sel_c.append(Const(0, 1))
                plines = [pl for _, _, _, pl in pend]
                for k in range(n_copies):
                    with m.If(en_c[k]):
                        for j in range(k, ln_bits, n_copies):
                            m.d.sync += c_line[i][j].eq(Array(pl[j] for pl in plines)[sel_c[k]])
                with m.If(en_c[0]):
                    m.d.sync += c_valid[i].eq(1)
                    if chans > 1:
                        m.d.sync += c_from[i].eq(sel_c[0])
            for lane, (valid, onehot, line_data, pline), (_, filled) in zip(self.resp, pend, fills):
                fset = filled[:sb] if sb else Const(0, 1)
                m.d.sync += [valid.eq(lane.valid), onehot.eq(1 << fset), line_data.eq(lane.payload.data),
                             pline.eq(filled)]
        for lane in self.resp:
            with m.If(lane.valid):
                m.d.sync += store[lane.payload.tag].eq(lane.payload.data)

        # Pooling: the active slice, or else the queue head (queued in an earlier cycle). The
        # chunk's tag and its place in the slice are registers set a cycle ahead (the active
        # slice's next chunk, or the first chunk of the queue's head after this cycle's pop and
        # pushes, from its meta), so the chunk's line read and shift start from registers and
        # no tag-indexed meta read or adder is on that path.
        active = Signal()
        popping = Signal()
        cur_tag = Signal(self.tag_bits)
        c_left = Signal(n_bits)  # elements of the slice not yet pooled
        c_elem = Signal(entry_bits)  # the chunk's first element
        c_ctx = Signal(ctx_bits)
        m.d.comb += [
            popping.eq(~active & (q_count != 0)),
            self.pool.valid.eq(active | popping),
        ]
        # Whether the chunk is the slice's last (``c_left <= lanes``) and its element count
        # (``min(c_left, lanes)``) are registers of their own, set a cycle ahead beside
        # ``c_left`` (a new slice's from its tag's meta, per tag before the tag's select), so the
        # pooled banks' per-memory enables and read address selects start from registers.
        last_chunk = Signal(init=1, name="c_last")
        c_count = Signal(range(lanes + 1), name="c_count")
        # Pooled memory b takes byte ``off + elements pooled + ((b - c_elem) mod lanes)`` of the
        # line (modulo the line: exact for the chunk's places below ``count``, the only ones added): the
        # rotation into the memories' order is in each byte's select, a small sum of registers
        # formed beside the tag's line select, and not behind the pooled bank's value register.
        pb = lanes.bit_length() - 1
        # The chunk's line is read through ``cur_tag`` in copies, one per group of the line's
        # bytes (each with its own reset value, so synthesis keeps them apart), so no register
        # drives every byte's tag select (``cur_tag`` had 263 loads on the tiny top at 8cf9044,
        # where seed 2's routed limit ran from it to a pooled bank's value register).
        # Up to eight copies (one per two bytes of a 16-byte line): reset to 0 … 2^tag_bits - 1 and,
        # beyond those, reset-less ones with those initial values (routed at ec38709, a copy with
        # 197 loads headed the tiny top: ``cur_tag_c1`` -> ``gather.pooled1.values1``, 11.55 ns).
        n_copies = min(8, 2 << self.tag_bits, line)
        cur_tags = [cur_tag] + [Signal(self.tag_bits, init=i % (1 << self.tag_bits), name=f"cur_tag_c{i}",
                                       reset_less=i >= 1 << self.tag_bits) for i in range(1, n_copies)]
        cur = Signal(8 * line)
        m.d.comb += cur.eq(Cat(*[Array(st[8 * j:8 * j + 8] for st in store)[cur_tags[j * n_copies // line]]
                                 for j in range(line)]))
        # Each memory's byte select is a register of its own, in copies (one per group of the
        # byte's bits, each with its own reset value so synthesis keeps them apart), set a cycle
        # ahead beside ``c_elem``: the slice's next chunk adds ``lanes`` to it, a new slice takes
        # ``off + ((b - elem) mod lanes)`` of the queued tag, formed per tag from its meta before
        # the tag's select. As a sum of a shift register and ``c_elem`` behind the line's byte
        # multiplexer it headed the routed tiny top at 69f2f43 (``c_elem`` -> a pooled bank's
        # value register, 12.07 ns, nets of 16 and 132 loads).
        sel_copies = 4 if lb else 1
        sel_regs = []
        for b in range(lanes):
            regs = [Signal(lb, name=f"c_sel{b}_{k}", init=k % (1 << lb)) for k in range(sel_copies)]
            sel_regs.append(regs)
            byte = Cat(*[cur.word_select(regs[k * sel_copies // 8], 8)[k] for k in range(8)])
            m.d.comb += self.pool.payload.values[b].eq(byte)
        m.d.comb += [
            self.pool.payload.elem.eq(c_elem),
            self.pool.payload.count.eq(c_count),
            self.pool.payload.last.eq(last_chunk),
            self.pool.payload.ctx.eq(c_ctx),
        ]
        freed = Signal(tags)
        stays = Signal()  # the slice is active in the next cycle
        m.d.comb += stays.eq(self.pool.valid & ~last_chunk)
        m.d.sync += active.eq(stays)
        with m.If(self.pool.valid & last_chunk):
            m.d.comb += freed.eq(1 << cur_tag)
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
        q_head1 = Signal(self.tag_bits)  # q_head + 1, wrapped
        m.d.comb += q_head1.eq(Mux(q_head == tags - 1, 0, q_head + 1))
        with m.If(popping):
            m.d.sync += q_head.eq(q_head1)
        # The next cycle's head: a tag queued now (behind a popped one, if any), else the first
        # one pushed in this cycle.
        first_push = Signal(self.tag_bits)
        for valid, tag in reversed(pushes):
            with m.If(valid):
                m.d.comb += first_push.eq(tag)
        queued_next = Signal(self.tag_bits)
        more = (q_count > 1) if tags > 1 else Const(0, 1)  # more than the popped tag queued
        m.d.comb += queued_next.eq(Mux(popping, Mux(more, q_tags[q_head1], first_push),
                                       Mux(q_count != 0, q_tags[q_head], first_push)))
        nm = data.View(meta_layout, meta[queued_next])
        # Per tag and memory: the byte select of the slice's first chunk, from the tag's meta.
        first_sels = []
        for b in range(lanes):
            per_tag = []
            for t in range(tags):
                mt = data.View(meta_layout, meta[t])
                fs = Signal(lb, name=f"first_sel{b}_t{t}")
                m.d.comb += fs.eq(mt.off + ((b - mt.elem[:pb])[:pb] if pb else 0))
                per_tag.append(fs)
            first_sels.append(Array(per_tag)[queued_next])
        first_lasts = Array(data.View(meta_layout, meta[t]).n <= lanes for t in range(tags))
        first_counts = Array(Mux(data.View(meta_layout, meta[t]).n <= lanes, data.View(meta_layout, meta[t]).n, lanes)
                             for t in range(tags))
        with m.If(stays):
            m.d.sync += [c_left.eq(c_left - lanes), c_elem.eq(c_elem + lanes),
                         last_chunk.eq(c_left <= 2 * lanes),
                         c_count.eq(Mux(c_left <= 2 * lanes, c_left - lanes, lanes))]
            for regs in sel_regs:
                m.d.sync += [r.eq(r + lanes) for r in regs]
        with m.Else():
            m.d.sync += [cur_tag.eq(queued_next), c_left.eq(nm.n), c_elem.eq(nm.elem),
                         last_chunk.eq(first_lasts[queued_next]), c_count.eq(first_counts[queued_next]),
                         c_ctx.eq(nm.ctx), *[c.eq(queued_next) for c in cur_tags[1:]]]
            for regs, fs in zip(sel_regs, first_sels):
                m.d.sync += [r.eq(fs) for r in regs]
        return m


class PooledBuffer(wiring.Component):
    """One bank of the pooled-embedding buffer: ``entries`` sums of ``acc_bits`` in block RAM,
    zero when the bank is free (docs/recsys.md, "Pooled-embedding buffer").

    Each pooling port owns ``lanes`` memories (element e of port p in memory e % lanes of p, at
    row e // lanes), so a chunk's consecutive elements fall in distinct memories and every
    memory takes at most one element per cycle: a read–add–write pipeline per memory reads the
    row in the chunk's cycle x (its values, which come in the memories' order, registered) and
    writes the sum at the end of x + 1 (the read line plus the memory's value register: no
    select between the add and a register); the read port
    is transparent to its write port, so a chunk of x + 1 on the same row sees the sum of x (the
    forwarding). The units write disjoint elements and the others hold 0, so an element's value
    is the OR over the ports' memories (no adder).

    The reader (the ``INTER``) reads up to ``read_width`` (<= ``lanes``) consecutive elements per
    cycle, which lie in distinct memories for the same reason, in one run from element 0: a read
    of ``read_count`` elements (0: none) in cycle y starts at the element after the last one
    read in y - 1, or at element 0 if none was read in y - 1 (how an ``INTER`` reads its bank:
    its entries in order, docs/recsys.md). So the bank knows in y - 1 where the read of y
    starts, reads its memories then, and the sums leave it from a register: the read of y is on
    ``read_data`` in y + 1, with the sums written up to the end of y - 1 (chunks of y - 2 and
    before; the memory ports serve the pooling first, so no chunk may come in y - 1); with
    ``read_clear`` they are zeroed at the end of y + 1, so the reader leaves the bank free for
    the next mini-batch but one without a clearing pass. Pooling and reading never overlap on
    a bank (the ``GATHER``s of m wait for the ``INTER`` of m − 2, the ``INTER`` of m for the
    ``GATHER``s of m).

    Members
    -------
    pool : In(stream.Signature(pool_layout(lanes, entry_bits, ctx_bits), always_ready=True)).array(ports)
    read_count : In(range(read_width + 1))
    read_clear : In(1)
    read_data : Out(data.ArrayLayout(signed(acc_bits), read_width)) (elements at and beyond
        ``read_count`` read as 0).
    """

    def __init__(self, *, entries: int, acc_bits: int, lanes: int, ports: int,
                 entry_bits: int = 16, ctx_bits: int = 1, read_width: int = 1):
        with _rejected_is_not_unused(self):
            self._entries = _check_int("entries", entries, minimum=1)
            self._acc_bits = _check_int("acc_bits", acc_bits, minimum=8)
            self._lanes = _check_int("lanes", lanes, minimum=1, pow2=True)
            self._ports = _check_int("ports", ports, minimum=1)
            self._width = _check_int("read_width", read_width, minimum=1)
            if entries > 1 << entry_bits:
                raise ValueError(f"entries ({entries}) do not fit entry_bits ({entry_bits})")
            if read_width > lanes:
                raise ValueError(f"read_width ({read_width}) must not exceed lanes ({lanes})")
        super().__init__({
            "pool": In(stream.Signature(pool_layout(lanes, entry_bits, ctx_bits), always_ready=True)).array(ports),
            "read_count": In(range(read_width + 1)),
            "read_clear": In(1),
            "read_data": Out(data.ArrayLayout(signed(acc_bits), read_width)),
        })

    def elaborate(self, platform):
        m = Module()
        n, acc, lanes, width = self._entries, self._acc_bits, self._lanes, self._width
        lb = lanes.bit_length() - 1
        depth = -(-n // lanes)
        row_bits = _bits(depth)
        # Where the next cycle's read starts: row ``hi`` and memory ``lo`` (registers, with hi + 1
        # and hi + 2), advanced by this cycle's read_count: memory b's element of the next read
        # is in row hi' + (b < lo'), one of hi, hi + 1, hi + 2, picked without an adder.
        count = self.read_count
        lo = Signal(max(1, lb))
        rw = row_bits + 2  # rows past the bank's end (a read ahead after the last) do not wrap
        hi = Signal(rw)
        hi1 = Signal(rw, init=1)
        hi2 = Signal(rw, init=2)
        s = Signal(lb + 1 if lb else 1)
        m.d.comb += s.eq((lo if lb else 0) + count)
        carry = Signal()
        m.d.comb += carry.eq(s >= lanes)
        lo_next = Signal.like(lo)
        m.d.comb += lo_next.eq(Mux(count != 0, s[:lb] if lb else 0, 0))
        with m.If(count == 0):
            m.d.sync += [lo.eq(0), hi.eq(0), hi1.eq(1), hi2.eq(2)]
        with m.Elif(carry):
            m.d.sync += [lo.eq(lo_next), hi.eq(hi1), hi1.eq(hi2), hi2.eq(hi2 + 1)]
        with m.Else():
            m.d.sync += lo.eq(lo_next)
        first_q = lo
        pre = []

        def exists(row, b):
            """Whether element row * lanes + b exists (< entries)."""
            return (row < n // lanes) | ((row == n // lanes) & (b < n % lanes))

        for b in range(lanes):
            row = Signal(rw, name=f"nrow{b}")
            row_q = Signal(row_bits, name=f"rrow{b}")
            exists_q = Signal(name=f"rexists{b}")
            # Memory b's row of the next read is one of 0, hi, hi + 1, hi + 2, a function of the
            # registers ``lo`` and ``read_count`` alone: decoded from them as a table (one-hot),
            # then an AND-OR of the rows, so no adder or compare lies between the count and the
            # memory's read address; whether the element exists likewise, from each row's own test.
            pick = Signal(4, name=f"npick{b}")  # 0, hi, hi + 1, hi + 2
            with m.Switch(Cat(lo, count) if lb else count):
                for lo_v in range(lanes):
                    for c in range(width + 1):
                        if c == 0:
                            choice = 0
                        else:
                            s_v = lo_v + c
                            later_v = b < lanes - 1 and b < s_v % lanes
                            choice = 1 + (s_v >= lanes) + later_v
                        with m.Case(lo_v | (c << lb)):
                            m.d.comb += pick.eq(1 << choice)
            rows = [Const(0, rw), hi, hi1, hi2]
            m.d.comb += row.eq(Cat(*[Cat(*[pick[i] & rows[i][k] for i in range(4)]).any() for k in range(rw)]))
            exists_d = Signal(name=f"nexists{b}")
            m.d.comb += exists_d.eq(Cat(*[pick[i] & exists(rows[i], b) for i in range(4)]).any())
            m.d.sync += [row_q.eq(row), exists_q.eq(exists_d)]
            pre.append((row, row_q, exists_q, exists_d))
        # Per memory b in the read's cycle: whether its element is read (its place j from the
        # first below read_count), registered for the clear of the next cycle.
        clear_on = []
        clear_row = []
        for b in range(lanes):
            j = Signal(max(1, lb), name=f"rj{b}")
            m.d.comb += j.eq(b - first_q if lb else 0)
            on = Signal(name=f"ron{b}")
            m.d.comb += on.eq((j < self.read_count) & pre[b][2])
            c_on = Signal(name=f"clr_on{b}")
            c_row = Signal(row_bits, name=f"clr_row{b}")
            m.d.sync += [c_on.eq(on & self.read_clear), c_row.eq(pre[b][1])]
            clear_on.append(c_on)
            clear_row.append(c_row)
        bank_or = [0] * lanes
        for p, port in enumerate(self.pool):
            elem = port.payload.elem
            values_q = Signal(data.ArrayLayout(signed(8), lanes), name=f"values{p}", reset_less=True)
            m.d.sync += values_q.eq(port.payload.values)
            for b in range(lanes):
                mem = memory.Memory(shape=signed(acc), depth=depth, init=[])
                m.submodules[f"sums{p}_{b}"] = mem
                wr = mem.write_port()
                rd = mem.read_port(transparent_for=(wr,))
                lane = Signal(max(1, lb), name=f"lane{p}_{b}")
                m.d.comb += lane.eq(b - elem[:lb] if lb else 0)
                row = Signal(row_bits, name=f"prow{p}_{b}")
                m.d.comb += row.eq(elem[lb:] + (Const(b, lb) < elem[:lb]) if b < lanes - 1 else elem[lb:])
                active = Signal(name=f"active{p}_{b}")
                m.d.comb += active.eq(port.valid & (lane < port.payload.count))
                # Stage 1 (the chunk's cycle): read the row; stage 2: add and write.
                add_q = Signal(name=f"add{p}_{b}")
                addr_q = Signal(row_bits, name=f"row{p}_{b}")
                m.d.comb += rd.addr.eq(Mux(active, row, pre[b][0]))
                m.d.sync += [add_q.eq(active), addr_q.eq(row)]
                with m.If(add_q):
                    m.d.comb += [wr.en.eq(1), wr.addr.eq(addr_q),
                                 wr.data.eq(rd.data + values_q[b])]
                with m.Elif(clear_on[b]):
                    m.d.comb += [wr.en.eq(1), wr.addr.eq(clear_row[b]), wr.data.eq(0)]
                bank_or[b] = bank_or[b] | rd.data.as_unsigned()
        # Element j of the read is memory (first + j) % lanes: per j a one-hot select of the
        # memories, registered in the cycle before the read (``lo_next``, the next read's first
        # memory, and whether each memory's element exists), so the read data pass an AND-OR of
        # the memories' outputs, not a multiplexer whose select is decoded behind them (routed at
        # 482a599, the banks' read data arrived at 10.6 ns).
        for j in range(width):
            sel = Signal(lanes, name=f"rd_sel{j}")
            m.d.sync += sel.eq(Cat(*[(((lo_next + j)[:lb] == b) if lb else Const(1, 1)) & pre[b][3]
                                     for b in range(lanes)]))
            picked = 0
            for b in range(lanes):
                picked = picked | (bank_or[b] & sel[b].replicate(acc))
            m.d.sync += self.read_data[j].eq(Mux(j < self.read_count, picked, 0))
        return m


class LineWriteQueue(wiring.Component):
    """The loader's delivered lines into one write per cycle (docs/recsys.md, "Loader"): lines
    delivered in cycle ``x`` (``lines``, lane order) are written in delivery order, the first
    one in ``x`` when no earlier line waits, each later one in the cycle after the one before.

    Depth: in a stretch of cycles a … b in which lines wait, every line delivered was in flight
    at a (at most ``max_outstanding``, the loader's tags) or requested in a … b - 1 (one per
    cycle), and b - a + 1 lines were written, so at most ``max_outstanding - 1`` wait.

    Members
    -------
    lines : In(stream.Signature(layout, always_ready=True)).array(lanes)
    write : Out(stream.Signature(layout, always_ready=True))
    waiting : Out(1)
        Lines wait (the write of this cycle is the oldest of them).
    """

    def __init__(self, layout, *, lanes: int, max_outstanding: int):
        with _rejected_is_not_unused(self):
            self._lanes = _check_int("lanes", lanes, minimum=1)
            self._depth = max(1, _check_int("max_outstanding", max_outstanding, minimum=1) - 1)
        self._layout = layout
        super().__init__({
            "lines": In(stream.Signature(layout, always_ready=True)).array(lanes),
            "write": Out(stream.Signature(layout, always_ready=True)),
            "waiting": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        q = Array(Signal(self._layout, reset_less=True, name=f"q{i}") for i in range(depth))
        head = Signal(_bits(depth))
        # The slot the next joining line takes, one-hot, and "lines wait" as a register (its next
        # value computed from the count's), so a slot's write enable is a few gates on the lanes'
        # valid bits rather than a pointer sum and a compare.
        tail = Signal(depth, init=1)
        count = Signal(range(depth + 1))
        queued = Signal()
        # The oldest waiting line (``q[head]``) kept in a register of its own, loaded with the
        # line that becomes the oldest (the one behind it, or the first line to join), so the
        # line written while lines wait comes from a register, not through the slot select.
        oldest = Signal(self._layout, reset_less=True)
        several = Signal()  # count >= 2, registered
        m.d.comb += self.waiting.eq(queued)
        m.d.comb += [self.write.payload.eq(oldest), self.write.valid.eq(queued)]
        for lane in reversed(self.lines):
            with m.If(~queued & lane.valid):
                m.d.comb += [self.write.payload.eq(lane.payload), self.write.valid.eq(1)]
        # The lines not written now join the queue in lane order behind its tail: lane k is the
        # j-th to join, j = (valid lanes before it) - 1 + queued.
        def rot(j):
            return Cat(*[tail[(i - j) % depth] for i in range(depth)])

        before = [Const(0, 1)]
        for lane in self.lines[:-1]:
            before.append(before[-1] + lane.valid)
        # The oldest line of the next cycle: the one behind the head when two or more wait, else
        # the first line to join (the slot at the tail, which is then the next head).
        head_next = Mux(head == depth - 1, 0, head + 1)
        m.d.sync += oldest.eq(q[head_next])
        for k, lane in reversed(list(enumerate(self.lines))):
            with m.If(~(queued & several) & lane.valid & Mux(queued, before[k] == 0, before[k] == 1)):
                m.d.sync += oldest.eq(lane.payload)
        for k, lane in enumerate(self.lines):
            slot = Signal(depth, name=f"slot{k}")
            for j in range(min(k + 1, depth)):
                # j-th to join: j + 1 valid lanes before it while nothing waits, j while lines wait
                with m.If(Mux(queued, before[k] == j, before[k] == j + 1)):
                    m.d.comb += slot.eq(rot(j))
            for i in range(depth):
                with m.If(lane.valid & slot[i]):
                    m.d.sync += q[i].eq(lane.payload)
        arrived = Signal(range(len(self.lines) + 1))
        m.d.comb += arrived.eq(before[-1] + self.lines[-1].valid)
        joined = Signal(range(len(self.lines) + 1))
        m.d.comb += joined.eq(arrived - self.write.valid + queued)
        with m.Switch(joined):
            for j in range(1, len(self.lines) + 1):
                with m.Case(j):
                    m.d.sync += tail.eq(rot(j))
        count_next = Signal(range(depth + 1))
        m.d.comb += count_next.eq(count + arrived - self.write.valid)
        m.d.sync += [count.eq(count_next), queued.eq(count_next != 0), several.eq(count_next >= 2)]
        with m.If(queued):
            m.d.sync += head.eq(head_next)
        return m


class GatherSide(wiring.Component):
    """The engine top's gather side (docs/recsys.md, "RTL (measured)"): ``gather_units``
    :class:`GatherLane`\\ s, each reading its own copy of the two index banks (one per mini-batch
    parity, two read ports each, all written through ``idx_wr``), pooling into the two
    :class:`PooledBuffer` banks, which ``rd_*`` reads and clears (the ``INTER``).

    Each index port is a two-stage pipeline moving with its reads, so the walker sees a
    register: banks of up to 64 lines (LUT RAM) register the read address, then the word read
    from it (parity and word picked before that register); larger ones (block RAM) register the
    read line once more (the block RAMs' output registers on ECP5) and pick after it. Either way
    no read whose word is used meets a write of its line: an index ``LOAD`` writes bank
    ``m % 2`` only after every ``GATHER`` of ``m - 2`` has finished its walk, and a walk starts
    only after its ``LOAD`` is done (the walker's reads ahead past a walk's end are never used),
    so the block RAM form is ``no_rw_check`` and the LUT RAM form may read a line a stage later
    than it was addressed (the collision poison checks both claims).

    A lane's chunk of cycle x goes straight into the banks (its values into a register there),
    and its sum is written at the end of x + 1. The banks' sums leave them from a register: each
    bank reads its memories a cycle ahead of the ``INTER``'s read, at the element after the
    previous read's last (or at 0 after a cycle without a read), because an ``INTER`` reads its
    bank's entries in order from element 0 in one run (docs/recsys.md: chunks of entries (t, b),
    tables outer, entry (t, b) at (t·P + b)·dim), so ``rd_count`` alone tells where the next read
    starts. The first read of an ``INTER`` (in x + 2 at the earliest: the ``GATHER`` done in x, the
    ``INTER`` taken in x + 1) is read ahead in x + 1 and sees the sum written at its end through
    the banks' transparent read ports; no chunk reaches that bank after x.

    Members
    -------
    idx_wr : In(stream.Signature({bank, addr, data}, always_ready=True))
        A line of index bank ``bank``.
    cmd : In(stream.Signature(walk_layout(...))).array(G)
    req : Out(stream.Signature(request_layout(tag_bits))).array(G)
    resp : In(stream.Signature(response_layout(line_bytes, tag_bits), always_ready=True)).array(G, channels)
    busy : Out(2).array(G)
        As :class:`GatherLane`'s.
    rd_en, rd_bank, rd_count : In
        Read (and clear) the next ``rd_count`` sums of bank ``rd_bank`` when ``rd_en`` (the first
        read after a cycle without one starts at element 0).
    rd_data : Out(data.ArrayLayout(signed(acc_bits), read_width))
        The sums read in the previous cycle (a register).
    """

    def __init__(self, *, units: int, line_bytes: int, max_outstanding: int, channels: int, pool_lanes: int,
                 cache_lines: int, index_lines: int, entries: int, acc_bits: int, read_width: int):
        self._units, self._line, self._tags, self._channels = units, line_bytes, max_outstanding, channels
        self._pool_lanes, self._cache_lines, self._index_lines = pool_lanes, cache_lines, index_lines
        self._entries, self._acc, self._width = entries, acc_bits, read_width
        self.word_bits = _bits(index_lines * line_bytes // isa.INDEX_BYTES)
        self.entry_bits = _bits(entries + 1)
        tag_bits = _bits(max_outstanding)
        super().__init__({
            "idx_wr": In(stream.Signature(data.StructLayout(
                {"bank": 1, "addr": unsigned(_bits(index_lines)), "data": unsigned(8 * line_bytes)}),
                always_ready=True)),
            "cmd": In(stream.Signature(walk_layout(self.word_bits, self.entry_bits, 1))).array(units),
            "req": Out(stream.Signature(request_layout(tag_bits))).array(units),
            "resp": In(stream.Signature(response_layout(line_bytes, tag_bits), always_ready=True)).array(
                units, channels),
            "busy": Out(2).array(units),
            "rd_en": In(1), "rd_bank": In(1), "rd_count": In(range(read_width + 1)),
            "rd_data": Out(data.ArrayLayout(signed(acc_bits), read_width)),
        })

    def elaborate(self, platform):
        m = Module()
        line = self._line
        wl = (line // isa.INDEX_BYTES).bit_length() - 1
        w = self.idx_wr
        pools = []
        for g in range(self._units):
            lane = GatherLane(word_addr_bits=self.word_bits, line_bytes=line, max_outstanding=self._tags,
                              channels=self._channels, pool_lanes=self._pool_lanes, cache_lines=self._cache_lines,
                              entry_bits=self.entry_bits)
            m.submodules[f"lane{g}"] = lane
            wiring.connect(m, wiring.flipped(self.cmd[g]), lane.cmd)
            wiring.connect(m, lane.req, wiring.flipped(self.req[g]))
            for c in range(self._channels):
                wiring.connect(m, wiring.flipped(self.resp[g][c]), lane.resp[c])
            m.d.comb += self.busy[g].eq(lane.busy)
            par = Signal(name=f"lane_par{g}")
            with m.If(lane.cmd.valid & lane.cmd.ready):
                m.d.sync += par.eq(lane.cmd.payload.ctx)
            # Index banks: per parity one copy per lane, two read ports each, each port a two-stage
            # pipeline moving with its reads (``en``). Banks of up to 64 lines are LUT RAM (Yosys,
            # ECP5 and xcup): there the first stage is the read address's register (one per memory)
            # and the second the 32-bit word the walker uses, read from that address (an
            # asynchronous LUT RAM read), its parity and word picked before the register, so the
            # LUT RAMs' address lines come from a register, not from the walker's address select,
            # and the walker's ``data`` is a register, not a select of four registered lines.
            # Reading at the second stage instead of the first is the same word: a walk's bank is
            # not written between its reads (above). Larger banks (block RAM) keep the read line
            # registered once more (in the block RAM's output register on ECP5, rtl/ecp5_pack.py,
            # with the port's enable as its clock enable).
            for port_name in ("pos_port", "idx_port"):
                port = getattr(lane, port_name)
                if self._index_lines <= 64:
                    m.d.comb += port.data.eq(self._lutram_port(m, port, par, f"{port_name}{g}"))
                    continue
                sel_rd = Signal(max(1, wl), name=f"{port_name}_sel{g}_rd")
                sel = Signal(max(1, wl), name=f"{port_name}_sel{g}")
                with m.If(port.en):
                    m.d.sync += [sel_rd.eq(port.addr[:wl] if wl else 0), sel.eq(sel_rd)]
                outs = []
                for p in range(2):
                    mem = memory.Memory(shape=8 * line, depth=self._index_lines, init=[], attrs=_NO_COLLISION)
                    m.submodules[f"index{p}_{g}_{port_name}"] = mem
                    wr = mem.write_port()
                    m.d.comb += [wr.en.eq(w.valid & (w.payload.bank == p)), wr.addr.eq(w.payload.addr),
                                 wr.data.eq(w.payload.data)]
                    rd = mem.read_port()
                    m.d.comb += [rd.addr.eq(port.addr[wl:]), rd.en.eq(port.en)]
                    line_q = Signal(8 * line, name=f"index{p}_{g}_{port_name}_q", reset_less=True)
                    with m.If(port.en):
                        m.d.sync += line_q.eq(_seen(m, wr, rd, f"index{p}_{g}_{port_name}"))
                    outs.append(line_q.word_select(sel, 32) if wl else line_q[:32])
                m.d.comb += port.data.eq(Mux(par, outs[1], outs[0]))
            pools.append(lane.pool)
        banks = []
        for p in range(2):
            buf = PooledBuffer(entries=self._entries, acc_bits=self._acc, lanes=self._pool_lanes, ports=self._units,
                               entry_bits=self.entry_bits, read_width=self._width)
            m.submodules[f"pooled{p}"] = buf
            banks.append(buf)
            for g, pool in enumerate(pools):
                m.d.comb += [buf.pool[g].valid.eq(pool.valid & (pool.payload.ctx == p)),
                             buf.pool[g].payload.eq(pool.payload)]
            on = self.rd_en & (self.rd_bank == p)
            m.d.comb += [buf.read_count.eq(Mux(on, self.rd_count, 0)), buf.read_clear.eq(on)]
        # The bank not read gives zeros.
        for c in range(self._width):
            m.d.comb += self.rd_data[c].eq(banks[0].read_data[c].as_unsigned() | banks[1].read_data[c].as_unsigned())
        return m

    def _lutram_port(self, m, port, par, name):
        """An index port on LUT RAM banks (see :meth:`elaborate`): the read address registered
        per memory in the port's enabled cycle, the word of both parities' lines read from it and
        picked (parity, then word) into a 32-bit register in the next enabled cycle. With the
        collision poison on, the word is inverted when its line was written from the first stage's
        cycle up to (not including) the second's, where the registered-line form would have read
        it earlier (so a design using such a read fails the golden comparison)."""
        from .collision import _POISON

        line, w = self._line, self.idx_wr
        wl = (line // isa.INDEX_BYTES).bit_length() - 1
        abits = len(port.addr)
        lines = []
        for p in range(2):
            mem = memory.Memory(shape=8 * line, depth=self._index_lines, init=[])
            m.submodules[f"index{p}_{name}"] = mem
            wr = mem.write_port()
            wen = w.valid & (w.payload.bank == p)
            m.d.comb += [wr.en.eq(wen), wr.addr.eq(w.payload.addr), wr.data.eq(w.payload.data)]
            addr_q = Signal(abits, name=f"index{p}_{name}_addr", reset_less=True)
            with m.If(port.en):
                m.d.sync += addr_q.eq(port.addr)
            rd = mem.read_port(domain="comb")
            m.d.comb += rd.addr.eq(addr_q[wl:])
            word = rd.data.word_select(addr_q[:wl], 32) if wl else rd.data[:32]
            if _POISON:
                dirty = Signal(name=f"index{p}_{name}_collision")
                with m.If(port.en):
                    m.d.sync += dirty.eq(wen & (w.payload.addr == port.addr[wl:]))
                with m.Elif(wen & (w.payload.addr == addr_q[wl:])):
                    m.d.sync += dirty.eq(1)
                word = Mux(dirty, ~word, word)
            lines.append(word)
        data = Signal(32, name=f"{name}_data", reset_less=True)
        with m.If(port.en):
            m.d.sync += data.eq(Mux(par, lines[1], lines[0]))
        return data


def gather_side(hw) -> GatherSide:
    """The :class:`GatherSide` of a :class:`~sparsim.dataflow.recsys.RecsysHardware`, as
    :class:`RecsysAccelerator` holds it."""
    line = hw.line_bytes
    return GatherSide(units=hw.gather_units, line_bytes=line, max_outstanding=hw.max_outstanding,
                      channels=hw.memory.channels, pool_lanes=hw.pool_lanes, cache_lines=hw.cache_lines,
                      index_lines=max(1, int(hw.index_buffer_kib * 1024) // 2 // line),
                      entries=int(hw.pooled_buffer_kib * 1024) // 2 // hw.acc_bytes, acc_bits=hw.acc_bits,
                      read_width=max(2, hw.cols))


#: Instruction words as the RTL sees them: the ISA's field table as a struct.
INSTR_LAYOUT = struct_from_fields(isa.FIELDS, isa.INSTR_BITS)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class _Requantizer:
    """``dlrm.requantize`` (arithmetic shift right rounding half up, saturated to INT8) of
    ``acc``-bit values in two pipeline stages, for any shift >= 0.

    With ``u = 2v`` and ``t = u >> s`` (arithmetic), ``requantize(v, s) = sat((t + 1) >> 1)``
    (``s = 0``: ``t = 2v``, ``(2v + 1) >> 1 = v``); it saturates high iff ``u >= 255·2^s`` and
    low iff ``u < -257·2^s``. Stage A (:meth:`stage_a`, registered) compares ``u`` with those
    two thresholds, which depend on the shift alone and are registers, and keeps ``t``'s low 9
    bits plus one (the rounding); stage B (:meth:`stage_b`, combinational) saturates, one LUT
    per bit in front of the skewed stores' write rotation. So no stage holds more than one wide
    carry chain or the shifter (the single-cycle form limited the dense engine to 43 MHz on
    ECP5). ``shift`` may change; the thresholds follow it two cycles later."""

    def __init__(self, m: Module, shift, acc: int, name: str, clamped: bool = False):
        self._m, self._acc, self._name = m, acc, name
        w = acc + 2  # signed: u (acc + 1 bits) and the thresholds +2^acc / -2^acc ("never")
        self._s = Signal(range(acc + 2), name=f"{name}_s")  # the shift, clamped to acc + 1
        self._s_next = Signal(range(acc + 2), name=f"{name}_s_next")
        # ``clamped``: ``shift`` is already at most acc + 1.
        m.d.comb += self._s_next.eq(shift if clamped else Mux(shift > acc + 1, acc + 1, shift))
        m.d.sync += self._s.eq(self._s_next)
        self._hi = Signal(signed(w), name=f"{name}_hi", reset_less=True)
        self._lo = Signal(signed(w), name=f"{name}_lo", reset_less=True)
        m.d.sync += [self._hi.eq(Mux(self._s <= acc - 8, Const(255, w) << self._s, 1 << acc)),
                     self._lo.eq(Mux(self._s <= acc - 9, -(Const(257, w) << self._s), -(1 << acc)))]

    def stage_a(self, value, zero, index: int):
        """Registers of ``value`` (a register, ``signed(acc)``) after stage A; ``zero``: the
        result is 0 (ReLU of a negative value)."""
        m, name = self._m, f"{self._name}{index}"
        u = Signal(signed(self._acc + 1), name=f"{name}_u")
        m.d.comb += u.eq(Cat(Const(0, 1), value))
        over = Signal(name=f"{name}_over")
        under = Signal(name=f"{name}_under")
        rounded = Signal(9, name=f"{name}_r", reset_less=True)
        z = Signal(name=f"{name}_zero")
        # The shift in a copy per value (its own reset value, so synthesis keeps the copies
        # apart): one register drove every value's shifter (106 loads, a 4.15 ns route in front of
        # ``rq#_r``, the routed limit of the tiny top at c3ae06b).
        s = Signal(range(self._acc + 2), name=f"{name}_sc", init=(index + 1) % (self._acc + 2))
        m.d.sync += s.eq(self._s_next)
        m.d.sync += [over.eq(u >= self._hi), under.eq(u < self._lo), rounded.eq((u >> s)[:9] + 1), z.eq(zero)]
        return over, under, rounded, z

    def stage_b(self, a, index: int):
        """The INT8 result (``signed(8)``, combinational) of the stage-A registers ``a``."""
        over, under, rounded, zero = a
        m, name = self._m, f"{self._name}{index}"
        out = Signal(signed(8), name=f"{name}_q")
        m.d.comb += out.eq(Mux(zero, 0, Mux(over, 127, Mux(under, -128, rounded[1:9].as_signed()))))
        return out


def _lagged(m: Module, value, cycles: int, name: str):
    """``value`` after ``cycles`` registers."""
    for d in range(cycles):
        reg = Signal.like(value, name=f"{name}_l{d + 1}") if isinstance(value, Signal) else \
            Signal(Value.cast(value).shape(), name=f"{name}_l{d + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


def _clog2(m: Module, value, bits: int, name: str):
    """``ceil(log2(value))`` for ``value`` >= 1 (combinational): the bit length of ``value - 1``."""
    less = Signal(len(Value.cast(value)), name=f"{name}_m1")
    m.d.comb += less.eq(value - 1)
    return _bit_length(m, less, bits, name)


def _bit_length(m: Module, value, bits: int, name: str):
    """The bit length ``c`` of ``value`` (combinational; 0 for 0), from the thermometer
    ``t[i] = value[i:] != 0`` (``c > i``): bit j of ``c`` is set where ``c`` lies in
    ``[k + 2^j, k + 2^(j+1))`` for some multiple ``k`` of ``2^(j+1)``, an OR of ``t[k + 2^j - 1]
    & ~t[k + 2^(j+1) - 1]``, so the encoder is two shallow OR trees, not a priority chain."""
    value = Value.cast(value)
    w = len(value)
    therm = [Signal(name=f"{name}_t{i}") for i in range(w)]
    for i in range(w):
        m.d.comb += therm[i].eq(value[i:].any())
    t = lambda i: therm[i] if i < w else Const(0, 1)
    out = Signal(bits, name=name)
    for j in range(bits):
        step = 1 << (j + 1)
        terms = [t(k + (1 << j) - 1) & ~t(k + step - 1) for k in range(0, w + 1, step) if k + (1 << j) - 1 < w]
        m.d.comb += out[j].eq(Cat(*terms).any() if terms else 0)
    return out


class _LineCopies:
    """``copies`` line-wide memories written together through one write port, each read at its
    own byte address (one INT8 operand per copy and cycle, on ``data(i)`` three cycles after
    ``read(i, ...)``: the line address is registered, then read, and the read line passes a
    plain register before its byte is selected, so that no logic follows the block RAM's
    unregistered output, and rtl/ecp5_pack.py moves that register into the RAM's output register;
    the dense engine registers the selected byte once more, READ_CYCLES = 4 in all);
    copy 0 has ``extra_ports`` more line read ports (their data one cycle after their address).
    With ``banks`` = 2 each copy holds two banks of ``depth`` lines, the bank the line address's
    top bit (``write`` and ``read`` take it): the dense engine's two dense banks share their
    block RAMs (a bank's copy of 64 or 128 lines filled an eighth or a quarter of an ECP5 one), so
    the operand needs no bank select either.
    No read whose data is used meets a write of its line in the same cycle (the weight buffer
    is loaded once, before the first GEMM; a dense bank is refilled only after the last GEMM
    reading it has finished), so Yosys is told the collision rule does not matter
    (``no_rw_check``): otherwise it emulates a non-transparent port's read-old-data rule with
    a bypass multiplexer behind the block RAM, which keeps the read register out of the RAM."""

    def __init__(self, m: Module, name: str, *, copies: int, depth: int, line: int, extra_ports: int = 0,
                 banks: int = 1):
        self._lb = line.bit_length() - 1
        self._line = line
        self._aw = _bits(depth)  # line address bits of one bank
        self.ports, self.wr, self._byte_q, self._line_q = [], [], [], []
        self.extra = []
        for i in range(copies):
            mem = memory.Memory(shape=8 * line, depth=depth if banks == 1 else banks << self._aw, init=[],
                                attrs=_NO_COLLISION)
            m.submodules[f"{name}{i}"] = mem
            self.wr.append(mem.write_port())
            port = mem.read_port()
            self.ports.append(port)
            if i == 0:
                self.extra = [mem.read_port() for _ in range(extra_ports)]
                self.extra_data = [_seen(m, self.wr[0], p, f"{name}0_x{k}") for k, p in enumerate(self.extra)]
            self._byte_q.append(Signal(max(1, self._lb), name=f"{name}{i}_byte"))
            line_q = Signal(8 * line, name=f"{name}{i}_line_q", reset_less=True)
            m.d.sync += line_q.eq(_seen(m, self.wr[i], port, f"{name}{i}"))
            self._line_q.append(line_q)
        self._m = m

    def _line_addr(self, addr, bank):
        return addr if bank is None else Cat(addr[: self._aw], bank)

    def write(self, en, addr, data, bank=None) -> None:
        for port in self.wr:
            self._m.d.comb += [port.en.eq(en), port.addr.eq(self._line_addr(addr, bank)), port.data.eq(data)]

    def read(self, i: int, byte_addr, bank=None) -> None:
        self._m.d.sync += self.ports[i].addr.eq(self._line_addr(byte_addr[self._lb:], bank))
        byte = _lagged(self._m, byte_addr[: self._lb] if self._lb else Const(0, 1), 3, f"{self._byte_q[i].name}")
        self._m.d.comb += self._byte_q[i].eq(byte)

    def data(self, i: int):
        return self._line_q[i].word_select(self._byte_q[i], 8).as_signed()


class _SkewedStores:
    """INT8 stores of values ``(p, k)``, rows ``p < P`` (``P`` from the instruction), in ``banks``
    byte-wide memories each (a power of two >= the array's rows and columns): ``(p, k)`` lives
    in memory ``(p + k) % banks`` at word ``(k // banks) * 2^lp + p``, ``2^lp`` the power of two
    at or above ``P`` (``lp`` a register the caller keeps). Any ``banks`` consecutive values of
    a column (the array's rows reading one step of R samples, OS) or of a row (R steps of one
    sample, WS; a result run of up to C bytes) lie in distinct memories, so each takes one read
    or one write per cycle. A store of ``P x W`` values uses ``ceil(W / banks) * 2^lp`` words of
    each memory, less than ``2 (P W / banks + P)``: the power-of-two row stride makes a word
    address a shift and an OR, where a stride of ``P`` took a multiplier in the address path
    (59 MHz on ECP5), at twice the depth. The stores of one group share their read and write
    addresses (one instruction reads or writes one of them at a time). A read's value is on
    :meth:`data` three cycles after :meth:`read` (the word addresses are registered, then the
    memory's read register, then a plain register, so that no logic follows a block RAM's
    unregistered output; rtl/ecp5_pack.py moves it into the RAM). An instruction reads one
    store and writes another, and the next instruction's first read follows the last write
    of the one before, so no used read meets a write of its word in the same cycle
    (``no_rw_check``, as in :class:`_LineCopies`)."""

    ADDR_BITS = 24

    def __init__(self, m: Module, name: str, *, stores: int, banks: int, depth: int):
        self._m = m
        self._nb = banks
        self._lb = banks.bit_length() - 1
        self.mems = []
        self._data_q = []
        for st in range(stores):
            ports, regs = [], []
            for b in range(banks):
                mem = memory.Memory(shape=signed(8), depth=depth, init=[], attrs=_NO_COLLISION)
                m.submodules[f"{name}{st}_{b}"] = mem
                wr, rd = mem.write_port(), mem.read_port()
                ports.append((wr, rd))
                reg = Signal(signed(8), name=f"{name}{st}_{b}_q", reset_less=True)
                m.d.sync += reg.eq(_seen(m, wr, rd, f"{name}{st}_{b}"))
                regs.append(reg)
            self.mems.append(ports)
            self._data_q.append(regs)
        self._base_q = Signal(max(1, self._lb), name=f"{name}_base_q")
        self._name = name

    def _lane(self, b: int, base, kind: str):
        """The run element that memory ``b`` holds, for a run starting in memory ``base``."""
        lane = Signal(max(1, self._lb), name=f"{self._name}_{kind}lane{b}")
        self._m.d.comb += lane.eq((b - base) if self._lb else 0)
        return lane

    def _words(self, k, lp, kind: str):
        """The word offsets of column ``k``'s word and of the next word: ``(k // banks) << lp``
        and ``(k // banks + 1) << lp``."""
        here = Signal(self.ADDR_BITS, name=f"{self._name}_{kind}col")
        there = Signal(self.ADDR_BITS, name=f"{self._name}_{kind}next")
        kw = k >> self._lb
        self._m.d.comb += [here.eq(kw << lp), there.eq((kw + 1) << lp)]
        return here, there

    def _first(self, row, k):
        return (row + k)[: self._lb] if self._lb else 0

    def _crosses(self, k, i):
        """Whether run element ``i`` from position ``k`` lies in the next word of its memory."""
        lb = self._lb
        return (Cat(k[:lb], Const(0, 1)) + i)[lb] if lb else Const(0, 1)

    def address(self, row, offset, lp) -> None:
        """First write stage: the word addresses of ``(row, offset + i)`` into registers, for
        the :meth:`write` of the next cycle."""
        m, lb, name = self._m, self._lb, self._name
        here, there = self._words(offset, lp, "w")
        self._w_base = Signal(self.ADDR_BITS, name=f"{name}_wbase_q", reset_less=True)
        self._w_next = Signal(self.ADDR_BITS, name=f"{name}_wnext_q", reset_less=True)
        self._w_first = Signal(max(1, lb), name=f"{name}_wfirst_q", reset_less=True)
        self._w_k = Signal(max(1, lb), name=f"{name}_wk_q", reset_less=True)
        m.d.sync += [self._w_base.eq(here | row), self._w_next.eq(there | row),
                     self._w_first.eq(self._first(row, offset)), self._w_k.eq(offset[:lb] if lb else 0)]

    def write(self, ens, count, values) -> None:
        """Second write stage: ``values[0 .. count-1]`` (at most ``banks``) at the positions
        :meth:`address` took in the previous cycle, into store ``s`` where ``ens[s]``, rotated
        into registers per memory; the memories write them in the next cycle (a third stage:
        the rotation and the route to the block RAMs of every store in one cycle limited the
        dense engine to 101 MHz on ECP5, 88.7 MHz on ``mid``)."""
        m = self._m
        vals = Array(values)
        for b in range(self._nb):
            i = self._lane(b, self._w_first, "w")
            addr = Signal(self.ADDR_BITS, name=f"{self._name}_waddr{b}", reset_less=True)
            data = Signal(signed(8), name=f"{self._name}_wdata{b}", reset_less=True)
            en = Signal(len(self.mems), name=f"{self._name}_wen{b}")
            m.d.sync += [addr.eq(Mux(self._crosses(self._w_k, i), self._w_next, self._w_base)), data.eq(vals[i]),
                         en.eq(Cat(*ens) & (i < count).replicate(len(self.mems)))]
            for st, ports in enumerate(self.mems):
                wr = ports[b][0]
                m.d.comb += [wr.en.eq(en[st]), wr.addr.eq(addr), wr.data.eq(data)]

    def read(self, row0, k0, along_rows, lp) -> None:
        """Reader ``i`` reads ``(row0 + i, k0)`` if ``along_rows``, else ``(row0, k0 + i)``; its
        value is on ``data(store, i)`` three cycles later. (A row beyond the store's ``P`` rows
        reads an unspecified value.)"""
        m = self._m
        here, there = self._words(k0, lp, "r")
        first = Signal(max(1, self._lb), name=f"{self._name}_rfirst")
        m.d.comb += first.eq(self._first(row0, k0))
        self._base_p = _lagged(m, first, 2, f"{self._name}_rfirst")
        m.d.sync += self._base_q.eq(self._base_p)
        for b in range(self._nb):
            i = self._lane(b, first, "r")
            addr = Signal(self.ADDR_BITS, name=f"{self._name}_raddr{b}")
            m.d.comb += addr.eq(Mux(along_rows, here | (row0 + i), Mux(self._crosses(k0, i), there, here) | row0))
            for ports in self.mems:
                m.d.sync += ports[b][1].addr.eq(addr)

    def selects(self, i: int, en) -> list:
        """Reader ``i``'s value as one-hot memory selects, registered: select ``b`` is set in
        the cycle :meth:`words` holds the read if ``en`` held in the cycle before and memory
        ``b`` holds the reader's value (a registered one-hot select puts one AND-OR level, not
        a multiplexer tree on an index, behind the block RAMs' output registers)."""
        lane = (self._base_p + i)[: self._lb] if self._lb else Const(0, 1)
        sels = [Signal(name=f"{self._name}_sel{i}_{b}") for b in range(self._nb)]
        self._m.d.sync += [sel.eq(en & (lane == b)) for b, sel in enumerate(sels)]
        return sels

    def words(self, store: int) -> list:
        """Store ``store``'s memories' read data, memory by memory (:meth:`read`'s addresses
        three cycles before)."""
        return self._data_q[store]


def out_row_layout(cols: int, acc_bits: int, row_bits: int) -> data.StructLayout:
    """A GEMM's output row for the out bank: ``values[0 .. count-1]`` are ``out[row, col ..]``,
    and ``n`` is ``row * q + col`` (the GEMM's ``q``), the out bank's index of ``values[0]``."""
    q_bits = isa.field_width("q")
    return data.StructLayout({"bank": 1, "row": unsigned(row_bits), "col": unsigned(q_bits),
                              "n": unsigned(row_bits + q_bits),
                              "count": range(cols + 1), "values": data.ArrayLayout(signed(acc_bits), cols)})


def _times(value, k: int):
    """``value * k`` for a constant ``k`` >= 1 as a sum of shifts (no multiplier cell: synthesis
    may map a constant product onto a DSP block)."""
    terms = [value << i for i in range(k.bit_length()) if (k >> i) & 1]
    if not terms:
        return Const(0, 1)
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


class DenseEngine(wiring.Component):
    """The dense engine: ``GEMM`` and ``INTER`` instructions on the shared systolic array
    (rtl/systolic.py, dense, in the hardware's dataflow), with the weight buffer, the dense banks, the two
    ping-pong activation regions and the interaction region ``Z`` (docs/recsys.md, "Dense engine"
    and "Engines and timing" 3).

    An instruction accepted on ``cmd`` in cycle ``c`` takes the contract's cycles and ``ended``
    is high in its last one; ``cmd`` is ready again from the next cycle. ``GEMM``: ``c`` loads
    the fold counters, ``c + 1`` reads the first operands, which pass a register on their way to
    the array (``DECODE_CYCLES + READ_CYCLES``), then the folds run back to back on the array
    (OS: R-blocks of samples by C-blocks of outputs; WS: R-blocks of the reduction by C-blocks
    of outputs, each streaming every sample, the k-blocks' partial rows summed in an accumulator
    memory); each final result row passes bias add (registered), the requantisation's two
    stages (:class:`_Requantizer`) and ReLU into its destination (``POST_CYCLES``), or goes on
    ``out`` without them for the out bank (in the cycle after its bias add). ``INTER``: from
    ``c + 1`` one chunk of up to C pooled sums of one entry per cycle is read from the pooled
    bank (``pool_rd``, data on ``pool_data`` the next cycle, registered there), requantised in
    the same two stages and written into ``Z`` (concat) or into the feature store (dot); a dot
    then reads its first operands and runs
    one F x F Gram matrix per sample on the array (features: the bottom output in ``Z`` and the
    requantised pooled vectors), whose strictly lower triangle is requantised into ``Z``.

    Storage (what the RTL holds, beyond the contract's capacities): the weight buffer in C
    copies (one per array column; copy 0 also reads the biases), the two dense banks in R
    copies (one per array row, each copy holding both banks), every copy with one write port
    (``weight_wr``, ``dense_wr``); the two
    activation regions and ``Z`` (each up to ``act_bytes``) and the dot's feature store (the
    requantised pooled vectors, ``entries`` bytes, in two copies: one for the Gram's rows, one
    for its columns) in skewed banks (:class:`_SkewedStores`, ``pow2(max(R, C))`` byte-wide
    memories each), one read and one write port per memory.

    Members
    -------
    cmd : In(stream.Signature(INSTR_LAYOUT))
    weight_wr : In(stream.Signature({addr, data}, always_ready=True))
        Lines of the weight buffer (line index, line bytes), up to one per cycle.
    dense_wr : In(stream.Signature({bank, addr, data}, always_ready=True))
        Lines of dense bank ``bank``.
    pool_rd : Out({bank, addr, count, en})
        Pooled sums to read (and clear): ``count`` elements from ``addr`` of bank ``bank``.
    pool_data : In(data.ArrayLayout(signed(acc_bits), cols))
        The sums read in the previous cycle.
    out : Out(stream.Signature(out_row_layout(...), always_ready=True))
    ended : Out(1)
    """

    def __init__(self, *, rows: int, cols: int, acc_bits: int, line_bytes: int, weight_lines: int,
                 dense_lines: int, max_samples: int, act_bytes: int, entries: int,
                 dataflow: str = "os"):
        with _rejected_is_not_unused(self):
            self._rows = _check_int("rows", rows, minimum=1)
            self._cols = _check_int("cols", cols, minimum=1)
            self._acc = _check_int("acc_bits", acc_bits, minimum=16)
            self._line = _check_int("line_bytes", line_bytes, minimum=4, pow2=True)
            self._weight_lines = _check_int("weight_lines", weight_lines, minimum=1)
            self._dense_lines = _check_int("dense_lines", dense_lines, minimum=1)
            self._samples = _check_int("max_samples", max_samples, minimum=1)
            self._act = _check_int("act_bytes", act_bytes, minimum=1)
            self._entries = _check_int("entries", entries, minimum=1)
            if dataflow not in ("os", "ws"):
                raise ValueError(f"dataflow must be 'os' or 'ws', not {dataflow!r}")
            self._dataflow = dataflow
            if cols * (acc_bits // 8) > line_bytes + 1:
                raise ValueError(f"a fold's biases ({cols} x {acc_bits // 8} bytes) must lie in two lines of "
                                 f"{line_bytes} bytes (cols x acc bytes <= line_bytes + 1)")
        entry_bits = _bits(entries + 1)
        self.row_bits = _bits(max_samples)
        line_word = 8 * line_bytes
        super().__init__({
            "cmd": In(stream.Signature(INSTR_LAYOUT)),
            "weight_wr": In(stream.Signature(data.StructLayout(
                {"addr": unsigned(_bits(weight_lines)), "data": unsigned(line_word)}),
                always_ready=True)),
            "dense_wr": In(stream.Signature(data.StructLayout(
                {"bank": 1, "addr": unsigned(_bits(dense_lines)), "data": unsigned(line_word)}),
                always_ready=True)),
            "pool_rd": Out(data.StructLayout({"bank": 1, "addr": unsigned(entry_bits), "count": range(cols + 1),
                                              "en": 1})),
            "pool_data": In(data.ArrayLayout(signed(acc_bits), cols)),
            "out": Out(stream.Signature(out_row_layout(cols, acc_bits, self.row_bits), always_ready=True)),
            "ended": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        R, C, acc, line = self._rows, self._cols, self._acc, self._line
        lb = line.bit_length() - 1
        acc_bytes = acc // 8
        ws = self._dataflow == "ws"
        array = m.submodules.array = SystolicArray(rows=R, cols=C, dataflow=self._dataflow, max_m=1, acc_bits=acc)
        a_in = data.View(array.a_layout, array.a.payload)
        b_in = data.View(array.b_layout, array.b.payload)
        result = data.View(array.result_layout, array.result.payload)

        weights = _LineCopies(m, "weights", copies=C, depth=self._weight_lines, line=line, extra_ports=1)
        dense = _LineCopies(m, "dense", copies=R, depth=self._dense_lines, line=line, banks=2)
        weights.write(self.weight_wr.valid, self.weight_wr.payload.addr, self.weight_wr.payload.data)
        dense.write(self.dense_wr.valid, self.dense_wr.payload.addr, self.dense_wr.payload.data,
                    bank=self.dense_wr.payload.bank)
        NB = _pow2_at_least(max(R, C))
        # Stores 0 and 1: the ping-pong regions, 2: Z. A store of P x W values needs
        # ceil(W / NB) * P words per memory, P * W <= act_bytes.
        acts = _SkewedStores(m, "act", stores=3, banks=NB, depth=2 * (-(-self._act // NB) + self._samples))
        # dot: the requantised pooled vector of table t, sample b is feature row b * T + t
        # (features of one sample in consecutive rows); one copy for the Gram's rows, one for its
        # columns. ceil(dim / NB) * P * T <= entries.
        feat = [_SkewedStores(m, f"feat{side}_", stores=1, banks=NB, depth=2 * self._entries) for side in "ab"]

        ins = Signal(INSTR_LAYOUT, reset_less=True)
        is_inter = Signal()
        dot = Signal()
        gram = Signal()  # the dot's Gram phase (array folds of an INTER)
        gemm = ~is_inter
        flags = Mux(gemm, ins.b, 0)
        parity = ins.mb[0]
        P, K, Q = ins.p, ins.k, ins.q
        T, D, width = ins.b, ins.k, ins.q  # INTER: tables, dim, bottom output width
        F = Signal(9)  # INTER: the features, tables + 1 (a register: the fold limits follow it)
        busy = Signal()
        m.d.comb += self.cmd.ready.eq(~busy)
        accept = self.cmd.valid & self.cmd.ready
        new = self.cmd.payload
        new_inter = new.op == isa.OP_INTER

        # ---- fold issue: fold f runs local cycles j = 0 .. FC-1; its step k is read in j = k and
        # presented to the array in j + READ_CYCLES. GEMM: R-blocks of samples (inner) by C-blocks of
        # outputs; Gram: per sample, R-blocks of features by C-blocks of features ------------
        fold_extra = 2 * R + C - 2 + PE_PIPELINE_CYCLES
        j_last = Signal(18)  # FC - 1, the fold's last local cycle
        j = Signal.like(j_last)
        issuing = Signal()
        steps = Mux(gram, D, K)
        stream_len = Mux(gram, F, P)  # WS: the rows streamed through a fold
        lim_p = steps if ws else Mux(gram, F, P)  # the inner blocks: of k (WS), of samples (OS)
        lim_q = Mux(gram, F, Q)
        p0 = Signal(16)
        q0 = Signal(16)
        gb = Signal(16)  # Gram: the sample
        ab = [Signal(32, name=f"ab{r}") for r in range(R)]  # GEMM: dense address of sample p0 + r
        ab0 = [Signal(32, name=f"ab0_{r}") for r in range(R)]
        rb = [Signal(ADDR_BITS, name=f"rb{c}") for c in range(C)]  # GEMM: weight address of output q0 + c
        rk = Signal(32)  # R * K
        ck = Signal(ADDR_BITS)  # C * K
        qk = Signal(ADDR_BITS)  # Q * K
        bq = Signal(ADDR_BITS)  # q0 * acc bytes
        # Gram: feature f (table f - 1) of sample gb is feature row gbt + f - 1 (gbt = gb * T)
        # of a store of P * T rows.
        gbt = Signal(_SkewedStores.ADDR_BITS)
        # The feature rows the Gram reads (gbt + p0 - 1 for its rows, OS; gbt + q0 - 1 for its
        # columns) and gbt - 1, kept as registers so that no adder precedes the reads' addresses.
        frow_a = Signal(_SkewedStores.ADDR_BITS)
        frow_b = Signal(_SkewedStores.ADDR_BITS)
        gbt_m1 = Signal(_SkewedStores.ADDR_BITS)
        pt = Signal(_SkewedStores.ADDR_BITS)
        # log2 of the skewed stores' row strides (_SkewedStores): the instruction's P rows of the
        # activation stores, the INTER's P x T rows of the feature stores.
        lp_act = Signal(5)
        lp_feat = Signal(5)

        # The instruction's counters load in the cycle it is taken (DECODE_CYCLES). While the
        # engine is idle nothing of an instruction is in flight (its last write has ended it), so
        # its datapath registers follow the offered word in every idle cycle and only the
        # control bits (``busy``, ``issuing``, ``chunking``) wait for the handshake: the issue
        # decision, which the gather lanes' ``busy`` enters late, then enables a few flip-flops
        # instead of every register an instruction loads.
        with m.If(accept):
            m.d.sync += busy.eq(1)
        with m.If(self.cmd.ready):
            m.d.sync += [ins.eq(new), is_inter.eq(new_inter), dot.eq(new_inter & (new.a == isa.INTER_DOT)),
                         gram.eq(0), F.eq(new.b + 1)]
            # A GEMM's Q * K (where its biases start), an INTER's P * T (its feature rows).
            m.d.sync += [qk.eq(new.q * new.k), pt.eq(new.p * new.b), lp_act.eq(_clog2(m, new.p, 5, "lp_new"))]
        # The feature store's row stride follows its P x T rows (first used by the first
        # chunk's write address, three cycles after the INTER is taken: ``pt`` is loaded in the
        # cycle it is taken, ``pt - 1`` in the next and its bit length in the one after, so
        # neither the carry chain nor the priority encoder is in front of the other).
        pt_m1 = Signal.like(pt, name="pt_m1")
        m.d.sync += [pt_m1.eq(pt - 1), lp_feat.eq(_bit_length(m, pt_m1, 5, "lp_pt"))]
        with m.If(accept & ~new_inter):
            m.d.sync += issuing.eq(1)
        with m.If(self.cmd.ready & ~new_inter):
            chain = Const(0, 32)
            for r in range(R):
                m.d.sync += [ab[r].eq(chain), ab0[r].eq(chain)]
                chain = chain + new.k
            m.d.sync += rk.eq(chain)
            chain = Const(0, ADDR_BITS)
            for c in range(C):
                m.d.sync += rb[c].eq(new.addr + chain)
                chain = chain + new.k
            m.d.sync += [ck.eq(chain), bq.eq(0), p0.eq(0), q0.eq(0), gb.eq(0), j.eq(0),
                         j_last.eq((new.p if ws else new.k) + fold_extra - 1)]

        src_dense = Signal()
        src_z = Signal()
        src_reg = Signal()
        m.d.comb += [src_dense.eq(flags & isa.SRC_DENSE != 0), src_z.eq(flags & isa.SRC_Z != 0),
                     src_reg.eq(flags & isa.SRC_REGION != 0)]
        row_ok = [Signal(name=f"row_ok{r}") for r in range(R)]
        col_ok = [Signal(name=f"col_ok{c}") for c in range(C)]
        # The operands read in cycle x reach the array in x + READ_CYCLES (address register,
        # block RAM read, its output register, the selected sources' registers); the flags that
        # go with them follow through as many registers.
        lag = isa.READ_CYCLES
        # The operand selects are registers set in x + 2 (from the flags lagged by sel_lag),
        # for the read data of x + 3, see _operand below.
        sel_lag = lag - 2
        row_z_p = Signal()  # Gram: the A operand is feature 0 (the bottom output, in Z)
        col_z_p = Signal()  # Gram: column 0 is feature 0
        row_ok_p = _lagged(m, Cat(*row_ok), sel_lag, "row_ok")
        col_ok_p = _lagged(m, Cat(*col_ok), sel_lag, "col_ok")
        if not ws:
            # OS: step k is read in j = k (rows: samples p0 + r; columns: outputs q0 + c).
            reading = issuing & (j < steps)
            k_step = j
            for r in range(R):
                m.d.comb += row_ok[r].eq(p0 + r < lim_p)
                dense.read(r, ab[r] + k_step, bank=parity)
            # Row r: sample p0 + r (a Gram: feature p0 + r; feature 0 is the bottom output in Z,
            # the same value for row 0 and column 0).
            acts.read(Mux(gram, gb, p0), k_step, 1, lp_act)
            feat[0].read(frow_a, k_step, 1, lp_feat)
            for c in range(C):
                m.d.comb += col_ok[c].eq(q0 + c < lim_q)
                weights.read(c, rb[c] + k_step)
            feat[1].read(frow_b, k_step, 1, lp_feat)
            step_q = _lagged(m, reading, lag, "step")
            first_q = _lagged(m, j == 0, lag, "first")
            last_q = _lagged(m, j == steps - 1, lag, "last")
            m.d.comb += [row_z_p.eq(_lagged(m, p0 == 0, sel_lag, "row_z")),
                         col_z_p.eq(_lagged(m, q0 == 0, sel_lag, "col_z"))]
            m.d.comb += [array.a.valid.eq(step_q), array.b.valid.eq(step_q), a_in.first.eq(first_q),
                         a_in.last.eq(last_q)]
        else:
            # WS: in j = 0 .. R-1 the weights of step k0 + R-1-j (preload, bottom row first);
            # in j = R + s the streamed row s (sample, or Gram feature), row r at step k0 + r.
            # p0 holds k0.
            preload = issuing & (j < R)
            streaming = issuing & (j >= R) & (j < R + stream_len)
            k_pre = Signal(17)
            m.d.comb += k_pre.eq(p0 + (R - 1) - j)
            s_idx = Signal(16)
            m.d.comb += s_idx.eq(j - R)
            pa = Signal(32)  # s * K: the dense address of sample s
            with m.If(issuing & (j == 0)):
                m.d.sync += pa.eq(0)
            with m.Elif(streaming):
                m.d.sync += pa.eq(pa + K)
            for r in range(R):
                m.d.comb += row_ok[r].eq(p0 + r < steps)
                dense.read(r, pa + p0 + r, bank=parity)
            # Row r: step p0 + r of the streamed sample (or feature); reader 0 also gives the
            # preload its column of feature 0 (the phases never overlap).
            acts.read(Mux(gram, gb, s_idx), Mux(preload, k_pre, p0), 0, lp_act)
            feat[0].read(gbt + s_idx - 1, p0, 0, lp_feat)
            for c in range(C):
                m.d.comb += col_ok[c].eq((q0 + c < lim_q) & (k_pre < steps))
                weights.read(c, rb[c] + k_pre)
            feat[1].read(frow_b, k_pre, 1, lp_feat)
            preload_q = _lagged(m, preload, lag, "preload")
            streaming_q = _lagged(m, streaming, lag, "streaming")
            m.d.comb += [row_z_p.eq(_lagged(m, s_idx == 0, sel_lag, "row_z")),
                         col_z_p.eq(_lagged(m, q0 == 0, sel_lag, "col_z"))]
            m.d.comb += [array.a.valid.eq(streaming_q), array.b.valid.eq(preload_q)]
        # Each operand is an OR of its sources gated by registered one-hot selects (the
        # instruction's source, the Gram phase, the row or column in range and the memory that
        # holds it, decided a cycle ahead), in two register stages behind the block RAMs' output
        # registers: each line copy's byte select and each skewed store group's AND-OR into a
        # register of its own (a line copy's next to its block RAMs, a 16:1 select on 16-byte
        # lines: as one stage with the OR behind it, it limited the dense engine to 104 MHz on
        # ECP5), then the OR of those few registers into the array. Every select is clear for an
        # operand out of range, which is then 0.
        def _operand(pairs):
            out = Const(0, signed(8))
            for sel, value in pairs:
                out = out | Mux(sel, value, 0)
            return out

        def _any(regs):
            out = regs[0]
            for reg in regs[1:]:
                out = out | reg
            return out

        def _stage(pairs, name):
            reg = Signal(signed(8), name=name, reset_less=True)
            m.d.sync += reg.eq(_operand(pairs))
            return reg

        def _one(en, name):
            sel = Signal(name=name)
            m.d.sync += sel.eq(en)
            return sel

        src_store = [~src_z & ~src_reg, ~src_z & src_reg, src_z]
        for r in range(R):
            ok = row_ok_p[r]
            # Gram: row r is feature f0 + r (OS; only row 0 of the first block is feature 0, in
            # Z) or every row reads the streamed feature (WS).
            z_row = row_z_p if ws or r == 0 else Const(0, 1)
            pairs = []
            for st in range(3):
                en = ok & Mux(gram, z_row if st == 2 else 0, ~src_dense & src_store[st])
                pairs += zip(acts.selects(r, en), acts.words(st))
            regs = [_stage(pairs, f"a{r}_act"),
                    _stage(zip(feat[0].selects(r, ok & gram & ~z_row), feat[0].words(0)), f"a{r}_feat")]
            regs.append(_stage([(_one(ok & ~gram & src_dense, f"dense_sel{r}"), dense.data(r))], f"a{r}_dense"))
            m.d.comb += a_in.windows[r][0].eq(_any(regs))
        for c in range(C):
            ok = col_ok_p[c]
            regs = [_stage([(_one(ok & ~gram, f"weight_sel{c}"), weights.data(c))], f"b{c}_weight")]
            pairs = []
            if c == 0:
                pairs += zip(acts.selects(0, ok & gram & col_z_p), acts.words(2))
            z_col = col_z_p if c == 0 else Const(0, 1)
            pairs += zip(feat[1].selects(c, ok & gram & ~z_col), feat[1].words(0))
            regs.append(_stage(pairs, f"b{c}_feat"))
            m.d.comb += b_in.values[c].eq(_any(regs))

        # Fold counters: the next fold starts in j = FC (then j = 0 of it).
        # The fold's end and where the next fold goes are registers, computed in two stages from
        # p0, q0, gb and the limits: the next block's first row, column and sample and the limits
        # (the phase's multiplexer) registered, then compared. A fold lasts at least five cycles
        # (j_last >= 4) and the limits settle in the cycle after the instruction (or the Gram
        # phase) starts, so the flags are current at j = j_last; computed there, they put the
        # limits' compares in front of every fold counter's next state, and in one stage the
        # add, the phase's multiplexer and the compare (114.7 MHz on ECP5, tiny).
        p_next, q_next, gb_next = Signal(17), Signal(17), Signal(17)
        lim_p_q, lim_q_q, P_q = Signal(16), Signal(16), Signal(16)
        gram_q = Signal()
        m.d.sync += [p_next.eq(p0 + R), q_next.eq(q0 + C), gb_next.eq(gb + 1), lim_p_q.eq(lim_p),
                     lim_q_q.eq(lim_q), P_q.eq(P), gram_q.eq(gram)]
        p_wrap = Signal()
        q_wrap = Signal()
        last_fold = Signal()
        at_end = Signal()
        m.d.sync += [p_wrap.eq(p_next >= lim_p_q), q_wrap.eq(q_next >= lim_q_q),
                     last_fold.eq((p_next >= lim_p_q) & (q_next >= lim_q_q) & (~gram_q | (gb_next >= P_q))),
                     at_end.eq(issuing & (j + 1 == j_last))]
        with m.If(issuing):
            m.d.sync += j.eq(j + 1)
            with m.If(at_end):
                m.d.sync += j.eq(0)
                with m.If(last_fold):
                    m.d.sync += issuing.eq(0)
                with m.Elif(~p_wrap):
                    m.d.sync += [p0.eq(p0 + R), frow_a.eq(frow_a + R)]
                    for r in range(R):
                        m.d.sync += ab[r].eq(ab[r] + rk)
                with m.Else():
                    m.d.sync += p0.eq(0)
                    for r in range(R):
                        m.d.sync += ab[r].eq(ab0[r])
                    with m.If(~q_wrap):
                        m.d.sync += [q0.eq(q0 + C), bq.eq(bq + C * acc_bytes), frow_a.eq(gbt_m1),
                                     frow_b.eq(frow_b + C)]
                        for c in range(C):
                            m.d.sync += rb[c].eq(rb[c] + ck)
                    with m.Else():
                        m.d.sync += [q0.eq(0), gb.eq(gb + 1), gbt.eq(gbt + T), gbt_m1.eq(gbt_m1 + T),
                                     frow_a.eq(gbt_m1 + T), frow_b.eq(gbt_m1 + T)]

        # Biases of the fold's columns: the C biases (acc bytes each) from
        # line_align(addr + Q*K) + q0 * acc bytes lie in two consecutive lines (C * acc bytes <=
        # line + 1). Their line addresses are registered in j = 1 and 2 (bpos holds the fold's
        # position from j = 1), read in j = 2 and 3, pass a register and
        # are latched in j = 5: after the previous fold's last row has passed the bias add
        # (in j = READ_CYCLES) and before this fold's first row does (a fold lasts at least
        # j = 0 .. 4, so j = 5 may be the next fold's j = 0: the latch follows a delay line, not j).
        bbase = Signal(ADDR_BITS)
        m.d.comb += bbase.eq(((ins.addr + qk + line - 1) >> lb) << lb)
        bias = [Signal(signed(acc), name=f"bias{c}", reset_less=True) for c in range(C)]
        bpos = Signal(ADDR_BITS, reset_less=True)
        bline = Signal(ADDR_BITS - lb, reset_less=True)  # the second line
        m.d.sync += [bpos.eq(bbase + bq), bline.eq((bbase + bq)[lb:] + 1)]
        port = weights.extra[0]
        bias_addr = Signal.like(port.addr, reset_less=True)
        m.d.sync += bias_addr.eq(Mux(j == 1, bpos[lb:], bline))
        m.d.comb += port.addr.eq(bias_addr)
        bias_read = issuing & (j == 1)
        bsel = Signal(max(1, lb), reset_less=True)  # the first bias's byte in its line
        with m.If(bias_read):
            m.d.sync += bsel.eq(bpos[:lb] if lb else 0)
        bias_line = Signal(8 * line, reset_less=True)
        m.d.sync += bias_line.eq(weights.extra_data[0])
        low = Signal(8 * line, reset_less=True)
        with m.If(_lagged(m, bias_read, 3, "bias_low")):
            m.d.sync += low.eq(bias_line)
        both = Signal(16 * line)
        m.d.comb += both.eq(Cat(low, bias_line) >> (bsel * 8))
        with m.If(_lagged(m, bias_read, 4, "bias_latch")):
            for c in range(C):
                m.d.sync += bias[c].eq(Mux(flags & isa.HAS_BIAS != 0, both[c * acc: (c + 1) * acc], 0))

        # ---- results, folds in issue order: OS rows R-1 .. 0 of each fold; WS the streamed
        # rows 0 .. S-1, summed over the k-blocks in an accumulator memory -------------------
        rrow = Signal(16, init=0 if ws else R - 1)
        rp0 = Signal(16)
        rq0 = Signal(16)
        rgb = Signal(16)
        fold_done = (rrow + 1 >= stream_len) if ws else (rrow == 0)
        # The row arriving (OS: rp0 + rrow) and, for a Gram, tri(f) = f (f - 1) / 2 of its
        # feature f (the pairs of Z's lower triangle before row f's) and width + rq0 (Z's
        # column of its first pair), all kept by increments: a multiplier and the adders behind
        # it in the result cycle limited the dense engine on ECP5. OS rows come R-1 .. 0 per
        # fold: tri(f - 1) = tri(f) - (f - 1); the next R-block's top row x + R (x = rp0 + R - 1)
        # has tri(x + R) = tri(x) + R rp0 + 3 R (R - 1) / 2 (top_inc). WS rows come 0 .. S-1:
        # tri(f + 1) = tri(f) + f.
        tri_here = Signal(24)
        zoff = Signal(24)
        fr = Signal(16, init=0 if ws else R - 1)
        fm1 = Signal(16)
        tri_top = Signal(24)
        top_inc = Signal(24)
        tri0 = (R - 1) * (R - 2) // 2
        # Whether another R-block (C-block) follows the result's, as registers a cycle behind
        # rp0 and rq0 (their compares in front of the result counters' enables limited the
        # dense engine to 101 MHz on ECP5): a fold's last row comes at least fold_extra >= 2
        # cycles after the one before, and a limit changes only at the instruction's (or the
        # Gram phase's) start, long before its first result.
        rp_more = Signal()
        rq_more = Signal()
        m.d.sync += [rp_more.eq(rp0 + R < lim_p), rq_more.eq(rq0 + C < lim_q)]
        with m.If(self.cmd.ready):  # idle: no result arrives
            m.d.sync += [rp0.eq(0), rq0.eq(0), rgb.eq(0), rrow.eq(0 if ws else R - 1), zoff.eq(new.q)]
            if ws:
                m.d.sync += tri_here.eq(0)
            else:
                m.d.sync += [fr.eq(R - 1), fm1.eq((R - 2) % (1 << 16)), tri_here.eq(tri0), tri_top.eq(tri0),
                             top_inc.eq(3 * R * (R - 1) // 2)]
        with m.Elif(array.result.valid):
            if ws:
                m.d.sync += [rrow.eq(Mux(fold_done, 0, rrow + 1)), tri_here.eq(Mux(fold_done, 0, tri_here + rrow))]
            else:
                m.d.sync += rrow.eq(Mux(rrow == 0, R - 1, rrow - 1))
                with m.If(~fold_done):
                    m.d.sync += [fr.eq(fr - 1), fm1.eq(fm1 - 1), tri_here.eq(tri_here - fm1)]
            with m.If(fold_done):
                with m.If(rp_more):
                    m.d.sync += rp0.eq(rp0 + R)
                    if not ws:
                        m.d.sync += [fr.eq(rp0 + 2 * R - 1), fm1.eq(rp0 + 2 * R - 2),
                                     tri_here.eq(tri_top + top_inc), tri_top.eq(tri_top + top_inc),
                                     top_inc.eq(top_inc + R * R)]
                with m.Else():
                    if not ws:
                        m.d.sync += [fr.eq(R - 1), fm1.eq((R - 2) % (1 << 16)), tri_here.eq(tri0),
                                     tri_top.eq(tri0), top_inc.eq(3 * R * (R - 1) // 2)]
                    with m.If(rq_more):
                        m.d.sync += [rp0.eq(0), rq0.eq(rq0 + C), zoff.eq(zoff + C)]
                    with m.Else():
                        m.d.sync += [rp0.eq(0), rq0.eq(0), rgb.eq(rgb + 1), zoff.eq(width)]
        # A GEMM row's place in the out bank, ``rowq`` = its row times Q, kept by increments
        # like the row itself, so the out bank's ``n = row * Q + col`` is an add of registers
        # (a MULT18X18D without registers, 3.93 ns, and the adder behind it in front of the out
        # banks' ``n0`` were the critical path of the tiny top routed at 482a599, 12.94 ns).
        # OS rows come R-1 .. 0 per fold (subtract Q); the next R-block's top row rp0 + 2R - 1 is
        # rp0q + (2R - 1) Q (rp0q = rp0 * Q); a new C-block's is R - 1. WS rows come 0 .. S-1.
        # The multiples of Q are registers loaded from ``ins`` (steady from the cycle after the
        # instruction is taken); ``rowq`` starts from them two cycles after it, long before
        # the first result.
        n_bits = len(self.out.payload.n)
        rowq = Signal(n_bits)
        rp0q = Signal(n_bits)
        if not ws:
            q_r, q_r1, q_2r1 = (Signal(n_bits, name=f"q_r{k}") for k in ("", "1", "2r1"))
            m.d.sync += [q_r.eq(_times(Q, R)), q_r1.eq(_times(Q, R - 1)), q_2r1.eq(_times(Q, 2 * R - 1))]
            rowq_init = _lagged(m, accept, 2, "rowq_init")
            with m.If(self.cmd.ready):
                m.d.sync += rp0q.eq(0)
            with m.Elif(rowq_init):
                m.d.sync += rowq.eq(q_r1)
            with m.Elif(array.result.valid):
                with m.If(~fold_done):
                    m.d.sync += rowq.eq(rowq - Q)
                with m.Elif(rp_more):
                    m.d.sync += [rowq.eq(rp0q + q_2r1), rp0q.eq(rp0q + q_r)]
                with m.Else():
                    m.d.sync += [rowq.eq(q_r1), rp0q.eq(0)]
        else:
            with m.If(self.cmd.ready):
                m.d.sync += rowq.eq(0)
            with m.Elif(array.result.valid):
                m.d.sync += rowq.eq(Mux(fold_done, 0, rowq + Q))
        sums = [Signal(signed(acc), name=f"sum{c}") for c in range(C)]
        if ws:
            # Row s of k-block k0's partial sums: the first block stores them, later ones add,
            # the last passes the total on. The row arriving next is read a cycle ahead.
            partial = memory.Memory(shape=data.ArrayLayout(signed(acc), C), depth=max(self._samples, 256), init=[])
            m.submodules.partial = partial
            p_wr = partial.write_port()
            p_rd = partial.read_port()
            m.d.comb += p_rd.addr.eq(Mux(array.result.valid, Mux(fold_done, 0, rrow + 1), rrow))
            first_k = rp0 == 0
            final = ~rp_more  # lim_p is steps (WS)
            for c in range(C):
                m.d.comb += sums[c].eq(result[c] + Mux(first_k, 0, p_rd.data[c]))
                m.d.comb += p_wr.data[c].eq(sums[c])
            m.d.comb += [p_wr.en.eq(array.result.valid & ~final), p_wr.addr.eq(rrow)]
            row_here = rrow
            last_row = array.result.valid & fold_done & final
        else:
            for c in range(C):
                m.d.comb += sums[c].eq(result[c])
            final = Const(1, 1)
            row_here = fr
            last_row = array.result.valid & fold_done & ~rp_more
        # ---- INTER requantisation phase: chunks of up to C sums of one pooled entry (t, b),
        # tables outer; read in cycle i, taken into stage 1 in i + 1 (the sums arrive on
        # pool_data), then the two requantisation stages, written in i + 3 (concat: into Z; dot:
        # into the feature store, for the Gram phase) -------------------------------------
        chunking = Signal()
        ct = Signal(8)
        cb = Signal(16)
        cd = Signal(16)
        ebase = Signal(32)
        zt = Signal(17)
        frow = Signal(_SkewedStores.ADDR_BITS)  # dot: the feature row of entry (t, b), b * T + t
        # The chunk's place is known from registers alone: ``left`` counts the entry's sums from
        # cd on, ``e_last``, ``b_last`` and ``t_last`` say that the chunk ends its entry, the
        # entry is its table's last sample and the table the last, each loaded from its next
        # value (limit compares in front of these counters held the engine to 98.9 MHz on ECP5).
        left = Signal(16)
        e_last = Signal()
        b_last = Signal()
        t_last = Signal()
        b_left = Signal(16)  # samples after cb
        t_left = Signal(8)  # tables after ct
        d_small = Signal()  # dim <= C: every entry is one chunk
        # The chunk's size ``Mux(e_last, left, C)`` as a register, loaded wherever ``left`` and
        # ``e_last`` are, so the pooled banks' read of the next element (``pool_rd.count``) starts
        # from registers.
        n = Signal(range(C + 1), init=C)
        with m.If(accept & new_inter):
            m.d.sync += chunking.eq(1)
        with m.If(self.cmd.ready & new_inter):
            m.d.sync += [ct.eq(0), cb.eq(0), cd.eq(0), ebase.eq(0), zt.eq(new.q), frow.eq(0),
                         left.eq(new.k), e_last.eq(new.k <= C), d_small.eq(new.k <= C), n.eq(Mux(new.k <= C, new.k, C)),
                         b_left.eq(new.p - 1), b_last.eq(new.p <= 1), t_left.eq(new.b - 1), t_last.eq(new.b <= 1)]
        last_chunk = e_last & b_last & t_last
        with m.If(chunking):
            with m.If(e_last):
                m.d.sync += [cd.eq(0), ebase.eq(ebase + D), left.eq(D), e_last.eq(d_small),
                             n.eq(Mux(d_small, D, C))]
                with m.If(b_last):
                    m.d.sync += [cb.eq(0), ct.eq(ct + 1), zt.eq(zt + D), frow.eq(ct + 1), b_left.eq(P - 1),
                                 b_last.eq(P <= 1), t_left.eq(t_left - 1), t_last.eq(t_left == 1)]
                    with m.If(t_last):
                        m.d.sync += chunking.eq(0)
                with m.Else():
                    m.d.sync += [cb.eq(cb + 1), frow.eq(frow + T), b_left.eq(b_left - 1), b_last.eq(b_left == 1)]
            with m.Else():
                m.d.sync += [cd.eq(cd + C), left.eq(left - C), e_last.eq(left <= 2 * C),
                             n.eq(Mux(left <= 2 * C, left - C, C))]
        m.d.comb += [self.pool_rd.en.eq(chunking), self.pool_rd.bank.eq(parity),
                     self.pool_rd.addr.eq(ebase + cd), self.pool_rd.count.eq(n)]
        r1_valid = Signal()
        r1_last = Signal()
        r1_row = Signal(_SkewedStores.ADDR_BITS, reset_less=True)
        r1_off = Signal(32, reset_less=True)
        r1_n = Signal(range(C + 1), reset_less=True)
        m.d.sync += [r1_valid.eq(chunking), r1_last.eq(chunking & last_chunk), r1_row.eq(Mux(dot, frow, cb)),
                     r1_off.eq(Mux(dot, cd, zt + cd)), r1_n.eq(n)]

        # ---- post-processing, POST_CYCLES = 4 stages -------------------------------------------
        # Stage 1, the last result's cycle: bias add (GEMM), the pairs' place in Z (Gram); or an
        # INTER chunk's sums as they arrive. Stage 2: the out bank's row (no ReLU, no
        # requantisation), requantisation stage A and the destination's word addresses.
        # Stage 3: requantisation stage B, rotated into the write registers. Stage 4: the write.
        f = Signal(16)
        m.d.comb += f.eq(row_here)
        s1_valid = Signal()
        s1_last = Signal()  # the instruction's (or the dot's requantisation phase's) last row
        s1_row = Signal(_SkewedStores.ADDR_BITS, reset_less=True)
        s1_off = Signal(32, reset_less=True)
        s1_n = Signal(n_bits, reset_less=True)  # a GEMM's: rowq + rq0
        s1_count = Signal(range(C + 1), reset_less=True)
        s1_vals = [Signal(signed(acc), name=f"s1_{c}", reset_less=True) for c in range(C)]
        gemm_count = Mux(Q - rq0 >= C, C, Q - rq0)
        gram_count = Mux(f <= rq0, 0, Mux(f - rq0 >= C, C, f - rq0))
        with m.If(r1_valid):
            m.d.sync += [s1_valid.eq(1), s1_last.eq(r1_last), s1_row.eq(r1_row), s1_off.eq(r1_off),
                         s1_count.eq(r1_n)]
            for c in range(C):
                m.d.sync += s1_vals[c].eq(self.pool_data[c])
        with m.Else():
            m.d.sync += [
                s1_valid.eq(array.result.valid & final & Mux(gram, (f < F) & (f > rq0), row_here < P)),
                s1_last.eq(last_row & ~rq_more & (~gram | (rgb + 1 >= P))),
                s1_row.eq(Mux(gram, rgb, row_here)),
                s1_off.eq(Mux(gram, zoff + tri_here, rq0)),
                s1_n.eq(rowq + rq0),
                s1_count.eq(Mux(gram, gram_count, gemm_count)),
            ]
            for c in range(C):
                m.d.sync += s1_vals[c].eq(sums[c] + Mux(gram, 0, bias[c]))
        to_out = Signal()
        m.d.comb += to_out.eq(flags & isa.DST_OUT != 0)
        m.d.comb += [
            self.out.valid.eq(s1_valid & to_out),
            self.out.payload.bank.eq(parity),
            self.out.payload.row.eq(s1_row),
            self.out.payload.col.eq(s1_off),
            self.out.payload.n.eq(s1_n),
            self.out.payload.count.eq(s1_count),
        ]
        for c in range(C):
            m.d.comb += self.out.payload.values[c].eq(s1_vals[c])
        chunks = is_inter & ~gram  # the INTER's requantisation phase
        w_last = Signal()  # the write of the instruction's (or the dot's requantisation's) last row
        # The requantisation shift (``Mux(gram, shift[6:12], Mux(is_inter, shift[:6], shift))``,
        # clamped to acc + 1) is a register of its own, loaded where ``ins``, ``is_inter`` and
        # ``gram`` are: as that select and clamp behind them it ended the routed tiny top's
        # second-longest paths at 69f2f43 (``rq_s``, ``rq#_sc``: 11.3 ns).
        def clamp(v):
            return Mux(v > acc + 1, acc + 1, v)

        shift = Signal(range(acc + 2), name="rq_shift")
        with m.If(self.cmd.ready):
            m.d.sync += shift.eq(clamp(Mux(new_inter, new.shift[:6], new.shift)))
        with m.If(w_last & chunks & dot):  # gram <- 1
            m.d.sync += shift.eq(clamp(ins.shift[6:12]))
        requant = _Requantizer(m, shift, acc, "rq", clamped=True)
        relu = ~is_inter  # a GEMM's hidden layers; the Gram's dots and pooled sums have none
        stage_a = [requant.stage_a(s1_vals[c], relu & s1_vals[c][-1], c) for c in range(C)]
        a_valid = Signal()
        a_last = Signal()
        a_count = Signal(range(C + 1), reset_less=True)
        m.d.sync += [a_valid.eq(s1_valid & ~to_out), a_last.eq(s1_last), a_count.eq(s1_count)]
        acts.address(s1_row, s1_off, lp_act)
        for side in feat:
            side.address(s1_row, s1_off, lp_feat)
        values = [requant.stage_b(stage_a[c], c) for c in range(C)]

        # ---- writes (one writer per store and cycle: instructions run alone) -----------------
        dst_z = Signal()
        dst_reg = Signal()
        m.d.comb += [dst_z.eq(gram | (flags & isa.DST_Z != 0) | (chunks & ~dot)),
                     dst_reg.eq(flags & isa.DST_REGION != 0)]
        to_acts = a_valid & ~(chunks & dot)
        acts.write([to_acts & ~dst_z & ~dst_reg, to_acts & ~dst_z & dst_reg, to_acts & dst_z], a_count, values)
        for side in feat:
            side.write([a_valid & chunks & dot], a_count, values)
        # After the dot's last requantised chunk is written, the Gram folds start (READ_CYCLES).
        m.d.sync += w_last.eq(a_last)
        with m.If(w_last & chunks & dot):
            m.d.sync += [gram.eq(1), issuing.eq(1), j.eq(0), j_last.eq((F if ws else D) + fold_extra - 1), p0.eq(0),
                         q0.eq(0), gb.eq(0), gbt.eq(0), frow_a.eq(-1), frow_b.eq(-1), gbt_m1.eq(-1)]

        ended = Signal()
        m.d.comb += ended.eq(w_last & ~(chunks & dot))
        m.d.comb += self.ended.eq(ended)
        with m.If(ended):
            m.d.sync += busy.eq(0)
        return m


def dense_engine(hw) -> DenseEngine:
    """The :class:`DenseEngine` of a :class:`~sparsim.dataflow.recsys.RecsysHardware`, its storage
    sized by the hardware's buffer capacities (rows and row widths up to what the act buffer and
    the largest mini-batch allow)."""
    act = int(hw.act_buffer_kib * 1024)
    pooled_entries = int(hw.pooled_buffer_kib * 1024) // 2 // hw.acc_bytes
    return DenseEngine(rows=hw.rows, cols=hw.cols, acc_bits=hw.acc_bits, line_bytes=hw.line_bytes,
                       weight_lines=int(hw.weight_buffer_kib * 1024) // hw.line_bytes,
                       dense_lines=-(-act // hw.line_bytes), max_samples=hw.mini_batch, act_bytes=act,
                       entries=pooled_entries, dataflow=hw.dataflow)


#: Instructions each engine's queue of :class:`RecsysAccelerator` holds: the whole Program is
#: loaded before it starts, so a Program with more instructions for one engine does not run.
QUEUE_DEPTH = 256


def check_program(program) -> None:
    """Raise ``ConfigError`` (at ``workload.batch``) when a compiled recsys Program has more words
    for one of :class:`RecsysAccelerator`'s instruction queues than it holds: the top takes the
    whole Program in before it starts, so such a Program would stall its intake for ever (the
    simulator has no such limit)."""
    op, unit = program.instrs["op"], program.instrs["a"]
    queues = {"the loader (LOAD)": op == isa.OP_LOAD,
              "the dense engine (GEMM and INTER)": (op == isa.OP_GEMM) | (op == isa.OP_INTER),
              "the store (STORE)": op == isa.OP_STORE}
    for u in sorted(set(unit[op == isa.OP_GATHER].tolist())):
        queues[f"gather unit {u} (GATHER)"] = (op == isa.OP_GATHER) & (unit == u)
    for name, words in queues.items():
        n = int(words.sum())
        if n > QUEUE_DEPTH:
            raise ConfigError("workload.batch", f"the recsys RTL holds {QUEUE_DEPTH} instructions per queue "
                                                f"and this Program has {n} for {name}: too large to run on "
                                                f"the RTL (sparsim simulate has no such limit); use a smaller "
                                                f"batch")


class _HeadQueue(Elaboratable):
    """An instruction queue of :class:`RecsysAccelerator` whose head is a register: the ports of
    ``SyncFIFOBuffered`` (``w_data``, ``w_en``, ``w_level``, ``r_data``, ``r_rdy``, ``r_en``), over
    one. That FIFO's head is its block RAM's output (5.6 ns clock-to-output on ECP5) and its
    read enable steers its pointers and block RAM, so with the issue conditions, which compare
    queue heads and then read them, it made the top's slowest paths. Here three registers, the
    head and the next two words, sit in front of the FIFO, which is read whenever the last of
    them is empty (a registered decision); a read of the head moves the next word into it and
    the FIFO's output into the chain behind, so while the queue holds words, the word after a
    read is the head in the next cycle and the head's successor is always a register.

    ``adv`` is high when the head takes ``cand_rdy`` / ``cand_data`` (the next-word register) at
    the end of the cycle (the head is empty or read), so a condition on the next cycle's head can
    be computed from registers for both outcomes and picked by ``adv`` last
    (:meth:`RecsysAccelerator.elaborate`'s registered issue conditions). Every word passes the
    FIFO, so words take a few cycles to reach the registers: ``settled`` is high once the first
    three words (or all, if fewer) are in them, which the top waits for before its Program
    starts."""

    def __init__(self, *, width: int, depth: int):
        self._fifo_args = {"width": width, "depth": depth}
        self.w_data = Signal(width)
        self.w_en = Signal()
        self.w_level = Signal(range(depth + 1))
        self.r_data = Signal(width, reset_less=True)
        self.r_rdy = Signal()
        self.r_en = Signal()
        self.adv = Signal()
        self.cand_rdy = Signal()
        self.cand_data = Signal(width)
        self.settled = Signal()

    def elaborate(self, platform):
        from amaranth.lib.fifo import SyncFIFOBuffered

        m = Module()
        fifo = m.submodules.fifo = SyncFIFOBuffered(**self._fifo_args)
        n1 = Signal.like(self.r_data, reset_less=True)
        n2 = Signal.like(self.r_data, reset_less=True)
        n1_valid, n2_valid = Signal(), Signal()
        moved = fifo.r_rdy & ~n2_valid  # the FIFO's output leaves it this cycle
        m.d.comb += [self.w_level.eq(fifo.w_level), fifo.w_data.eq(self.w_data),
                     fifo.w_en.eq(self.w_en), fifo.r_en.eq(~n2_valid),
                     self.adv.eq(~self.r_rdy | self.r_en),
                     self.cand_rdy.eq(n1_valid), self.cand_data.eq(n1),
                     self.settled.eq(Mux(fifo.r_level != 0, self.r_rdy & n1_valid & n2_valid,
                                         self.r_rdy | ~n1_valid))]
        # Only the head and the next word's register are enabled by ``adv`` (the read decision,
        # late in its cycle); their data does not depend on it: the next word takes the word
        # behind it (a register, or the FIFO's output if that is empty, in which case it is empty
        # too), and the register behind follows the FIFO's output while it is empty.
        with m.If(self.adv):
            m.d.sync += [self.r_rdy.eq(self.cand_rdy), self.r_data.eq(self.cand_data),
                         n1_valid.eq(n2_valid | moved), n2_valid.eq(0)]
        with m.Elif(~n1_valid):
            m.d.sync += n1_valid.eq(moved)
        with m.Elif(~n2_valid):
            m.d.sync += n2_valid.eq(moved)
        with m.If(self.adv | ~n1_valid):
            m.d.sync += n1.eq(Mux(n2_valid, n2, fifo.r_data))
        with m.If(~n2_valid):
            m.d.sync += n2.eq(fifo.r_data)
        return m


def loader_entry_layout(count_bits: int, line_bits: int) -> data.StructLayout:
    """A ``LOAD`` as the loader queue holds it: its target, mini-batch and mini-batch minus 2 (the
    mini-batch whose GATHERs an index LOAD waits for), its line count and first line number,
    computed on the way in; only what the loader reads, so that the queue's read enables as few
    flip-flops as possible."""
    mb = unsigned(isa.field_width("mb"))
    return data.StructLayout({"a": 2, "mb": mb, "mb_m2": mb, "lines": unsigned(count_bits),
                              "line": unsigned(line_bits)})


def top_signature(hw) -> wiring.Signature:
    """Ports of :class:`RecsysAccelerator` for ``hw`` (every member a plain signal or a stream):

    ``instr``: ``In(stream(INSTR_LAYOUT))``, the Program's words, END last (the Program starts
    a few cycles after END's handshake, once the queues' first words are in their registers:
    the first cycle in which ``running`` is high);
    ``req0`` (the loader) … ``req<G>`` (gather unit G-1): ``Out(stream({addr, tag}))`` line reads;
    ``resp0`` … ``resp<channels-1>``: ``In(stream({requester, tag, data}, always_ready=True))``,
    the line each channel delivers this cycle; ``wr``: ``Out(stream({addr, data, bank}))``
    posted line writes of the store; ``wr_ack`` / ``wr_ack_bank``: ``In(channels)``, a write
    (of that out bank) completes on the channel this cycle; ``running``, ``done``, ``cycles``
    (counted from the Program's cycle 0).
    """
    from .shell import CYCLE_BITS

    G, tags, line, ch = hw.gather_units, hw.max_outstanding, hw.line_bytes, hw.memory.channels
    tag_bits = _bits(tags)
    members = {"instr": In(stream.Signature(INSTR_LAYOUT))}
    for i in range(G + 1):
        members[f"req{i}"] = Out(stream.Signature(request_layout(tag_bits)))
    resp = data.StructLayout({"requester": unsigned(_bits(G + 2)), "tag": unsigned(tag_bits),
                              "data": unsigned(8 * line)})
    for c in range(ch):
        members[f"resp{c}"] = In(stream.Signature(resp, always_ready=True))
    members["wr"] = Out(stream.Signature(data.StructLayout(
        {"addr": unsigned(ADDR_BITS), "data": unsigned(8 * line), "bank": 1})))
    members["wr_ack"] = In(ch)
    members["wr_ack_bank"] = In(ch)
    members["running"] = Out(1)
    members["done"] = Out(1)
    members["cycles"] = Out(CYCLE_BITS)
    return wiring.Signature(members)


def top_front(hw) -> "RecsysAccelerator":
    """The engine top's own logic for ``hw`` (instruction queues, conditions, loader, out banks,
    store) without its :class:`GatherSide` and :class:`DenseEngine`, whose interfaces are ports:
    what benchmarks/bench_recsys_fmax.py ``--block front`` places and routes, since the two
    blocks are placed alone (``--block gather``, ``--block dense``)."""
    return RecsysAccelerator(hw, blocks_as_ports=True)


def _popcount(bits) -> object:
    total = Const(0, 1)
    for i in range(len(bits)):
        total = total + bits[i]
    return total


class RecsysAccelerator(wiring.Component):
    """The ``recsys`` engine of one :class:`~sparsim.dataflow.recsys.RecsysHardware`, executing a
    Program (docs/recsys.md): the whole Program is taken into per-engine instruction queues
    (loader, each gather unit, dense engine, store; ``GATHER``'s walk parameters and ``STORE``'s
    line count are computed on the way in), then every engine runs its queue under the
    contract's conditions ("Engines and timing"): the loader's line requests with their tags
    into the weight buffer, dense banks and index banks; the :class:`GatherLane`\\ s over the
    index banks into the two :class:`PooledBuffer` banks; the :class:`DenseEngine`; the out
    banks and the store's posted line writes, done when the memory acknowledges the last one.
    Ports: :func:`top_signature`; with ``blocks_as_ports`` (:func:`top_front`) also the members
    of the :class:`GatherSide` and the :class:`DenseEngine` flipped, as ``gather_<name>`` and
    ``dense_<name>``, the two blocks being left out.
    """

    def __init__(self, hw, *, blocks_as_ports: bool = False):
        self._hw = hw
        self._blocks_as_ports = blocks_as_ports
        with _rejected_is_not_unused(self):
            if hw.cols > hw.pool_lanes:
                raise ConfigError("hardware.cols", f"the recsys RTL's INTER reads C = {hw.cols} pooled sums per "
                                                   f"cycle from pool_lanes = {hw.pool_lanes} memories: at most "
                                                   "that many columns (more is not in this RTL yet)")
            if hw.cols * hw.acc_bytes > hw.line_bytes + 1:
                raise ConfigError("hardware.cols", f"the recsys RTL reads a fold's {hw.cols} biases of "
                                                   f"{hw.acc_bytes} bytes from two lines of {hw.line_bytes}: at "
                                                   "most line_bytes + 1 bytes of them")
            self._dense = dense_engine(hw)
            self._gather = gather_side(hw)
        members = dict(top_signature(hw).members)
        if blocks_as_ports:
            # The top's own logic alone (benchmarks/bench_recsys_fmax.py --block front): the gather
            # side and the dense engine leave the netlist and their interfaces become ports.
            for block in ("gather", "dense"):
                getattr(self, f"_{block}")._MustUse__silence = True  # only its signature is used
                for name, member in getattr(self, f"_{block}").signature.members.items():
                    members[f"{block}_{name}"] = member.flip()
        super().__init__(wiring.Signature(members))

    def _block_ports(self, block: str):
        """The ``blocks_as_ports`` ports of ``block`` as the top would see the block itself."""
        def inner(value):
            if isinstance(value, list):
                return [inner(v) for v in value]
            return value if isinstance(value, (Value, data.View)) else wiring.flipped(value)

        names = getattr(self, f"_{block}").signature.members
        return SimpleNamespace(**{name: inner(getattr(self, f"{block}_{name}")) for name in names})

    def elaborate(self, platform):
        m = Module()
        hw = self._hw
        G, tags, line, ch = hw.gather_units, hw.max_outstanding, hw.line_bytes, hw.memory.channels
        lb = line.bit_length() - 1
        acc_bytes = hw.acc_bytes
        tag_bits = _bits(tags)
        index_lines = max(1, int(hw.index_buffer_kib * 1024) // 2 // line)
        # A LOAD's lines fit the buffer it fills (the compiler's bank sizes), so its line counts
        # and indices are as wide as the largest buffer's line count, not the ISA's 32 bits.
        max_lines = max(int(hw.weight_buffer_kib * 1024) // line, -(-int(hw.act_buffer_kib * 1024) // line),
                        index_lines)
        idx_bits, count_bits = _bits(max_lines), _bits(max_lines + 1)
        loader_entry = loader_entry_layout(count_bits, ADDR_BITS - lb)
        if self._blocks_as_ports:
            gs, dense = self._block_ports("gather"), self._block_ports("dense")
        else:
            gs = m.submodules.gather = self._gather
            dense = m.submodules.dense = self._dense
        word_bits, entry_bits = self._gather.word_bits, self._gather.entry_bits
        running = Signal()
        m.d.comb += self.running.eq(running)

        # ---- instruction intake: stage A registers the word, stage B the products of a GATHER's
        # walk and a STORE's line count, stage C queues (one multiply per stage) ----------------
        walk = walk_layout(word_bits, entry_bits, 1)
        unit_entry = data.StructLayout({"mb": unsigned(16), "walk": walk})
        # A STORE writes at most one out bank.
        store_lines_bits = _bits(-(-int(hw.out_buffer_kib * 1024) // 2 // line) + 1)
        store_entry = data.StructLayout({"mb": unsigned(16), "addr": unsigned(ADDR_BITS),
                                         "lines": unsigned(store_lines_bits), "one": 1})
        loader_q = m.submodules.loader_q = _HeadQueue(width=loader_entry.size, depth=QUEUE_DEPTH)
        dense_q = m.submodules.dense_q = _HeadQueue(width=isa.INSTR_BITS, depth=QUEUE_DEPTH)
        store_q = m.submodules.store_q = _HeadQueue(width=store_entry.size, depth=QUEUE_DEPTH)
        unit_q = [_HeadQueue(width=unit_entry.size, depth=QUEUE_DEPTH) for _ in range(G)]
        for u, q in enumerate(unit_q):
            m.submodules[f"unit_q{u}"] = q
        queues = [loader_q, dense_q, store_q, *unit_q]
        # Two words may be on their way (stages A and B) besides the one taken now, so a word may be
        # taken while every queue holds fewer than QUEUE_DEPTH - 2; ``room`` is that test on the
        # levels of the cycle before (a register), one word stricter, since a queue gains at most
        # one word a cycle.
        room = Signal(init=1)
        m.d.sync += room.eq(Cat(*[q.w_level < QUEUE_DEPTH - 3 for q in queues]).all())
        a_valid = Signal()
        a_word = Signal(INSTR_LAYOUT, reset_less=True)
        # A GATHER's samples + 1 (``shift`` + 1), registered in stage A, so stage B's product
        # ``t * (samples + 1)`` starts from registers (its carry chain was in front of the
        # multiplier: routed at 482a599, a_word -> adder -> MULT18X18D -> adder -> the unit
        # queue's word, 11.15 ns).
        a_samples_p1 = Signal(len(a_word.shift) + 1, reset_less=True)
        ended_intake = Signal()
        m.d.comb += self.instr.ready.eq(room & ~ended_intake)
        m.d.sync += a_valid.eq(self.instr.valid & self.instr.ready)
        with m.If(self.instr.valid & self.instr.ready):
            m.d.sync += [a_word.eq(self.instr.payload), a_samples_p1.eq(self.instr.payload.shift + 1)]
            with m.If(self.instr.payload.op == isa.OP_END):
                m.d.sync += ended_intake.eq(1)
        b_valid = Signal()
        b_word = Signal(INSTR_LAYOUT, reset_less=True)
        b_pos = Signal(word_bits, reset_less=True)
        b_first_entry = Signal(entry_bits, reset_less=True)  # t * samples + first
        b_store_lines = Signal(store_lines_bits, reset_less=True)
        b_mb_m2 = Signal.like(a_word.mb, reset_less=True)
        t, first, samples = a_word.b, a_word.k, a_word.shift
        m.d.sync += [b_valid.eq(a_valid), b_word.eq(a_word), b_pos.eq(t * a_samples_p1 + first),
                     b_first_entry.eq(t * samples + first), b_mb_m2.eq(a_word.mb - 2),
                     b_store_lines.eq((a_word.p * a_word.k * acc_bytes + line - 1) >> lb)]
        op = b_word.op
        # The Program's cycle 0: the first cycle after END has left stage B and every queue's
        # first words are in its registers.
        ended_b = Signal()
        with m.If(b_valid & (op == isa.OP_END)):
            m.d.sync += ended_b.eq(1)
        running_next = Signal()
        m.d.comb += running_next.eq(running | (ended_b & Cat(*[q.settled for q in queues]).all()))
        m.d.sync += running.eq(running_next)
        le = Signal(loader_entry)
        m.d.comb += [le.a.eq(b_word.a), le.mb.eq(b_word.mb), le.mb_m2.eq(b_mb_m2),
                     le.lines.eq(Cat(b_word.p, b_word.k)), le.line.eq(b_word.addr[lb:])]
        m.d.comb += [loader_q.w_data.eq(le), loader_q.w_en.eq(b_valid & (op == isa.OP_LOAD)),
                     dense_q.w_data.eq(b_word),
                     dense_q.w_en.eq(b_valid & ((op == isa.OP_GEMM) | (op == isa.OP_INTER)))]
        st = Signal(store_entry)
        m.d.comb += [st.mb.eq(b_word.mb), st.addr.eq(b_word.addr), st.lines.eq(b_store_lines),
                     st.one.eq(b_store_lines == 1),
                     store_q.w_data.eq(st), store_q.w_en.eq(b_valid & (op == isa.OP_STORE))]
        ue = Signal(unit_entry)
        dim = b_word.q
        m.d.comb += [ue.mb.eq(b_word.mb), ue.walk.pos.eq(b_pos), ue.walk.bags.eq(b_word.p),
                     ue.walk.base.eq(b_word.addr), ue.walk.dim.eq(dim),
                     ue.walk.entry.eq(b_first_entry * dim), ue.walk.ctx.eq(b_word.mb[0])]
        for u, q in enumerate(unit_q):
            m.d.comb += [q.w_data.eq(ue), q.w_en.eq(b_valid & (op == isa.OP_GATHER) & (b_word.a == u))]

        # ---- events, as counters or per-parity counts (a condition on an event of cycle y holds
        # from y + 1: every counter is a register) -----------------------------------------
        w_done = Signal()
        w_fin = Signal()  # the weight LOAD is done this cycle
        ldd_count = [Signal(16, name=f"ldd_count{p}") for p in range(2)]  # dense LOADs done, parity p
        ldi_count = [Signal(16, name=f"ldi_count{p}") for p in range(2)]
        # The conditions compare a mini-batch m >= 2 with these against m - 1, so they count from 1.
        bot_p1 = Signal(17, init=1)  # 1 + mini-batches whose first bottom GEMM ended
        inter_p1 = Signal(17, init=1)  # 1 + mini-batches whose INTER ended
        top_count = Signal(16)
        store_count = [Signal(16, name=f"store_count{p}") for p in range(2)]
        # Each counter's increment this cycle (its next value is ``counter + inc``).
        ldd_inc = [Signal(name=f"ldd_inc{p}") for p in range(2)]
        ldi_inc = [Signal(name=f"ldi_inc{p}") for p in range(2)]
        bot_inc, inter_inc, top_inc = Signal(), Signal(), Signal()
        store_inc = [Signal(name=f"store_inc{p}") for p in range(2)]
        # Each counter keeps its value plus one in a register of its own, so an increment is a
        # multiplexer between two registers (no carry chain behind the event) and a condition on
        # the next value compares registers (``after``).
        plus1 = {}
        for cnt, inc in [*zip(ldd_count, ldd_inc), *zip(ldi_count, ldi_inc), (bot_p1, bot_inc),
                         (inter_p1, inter_inc), (top_count, top_inc), *zip(store_count, store_inc)]:
            cnt_p1 = Signal.like(cnt, name=f"{cnt.name}_p1", init=(cnt.init + 1) % (1 << len(cnt)))
            plus1[id(cnt)] = cnt_p1
            m.d.sync += [cnt.eq(Mux(inc, cnt_p1, cnt)), cnt_p1.eq(Mux(inc, cnt_p1 + 1, cnt_p1))]
        m.d.sync += w_done.eq(w_done | w_fin)

        # The issue conditions are registers holding next cycle's value (cycle-neutral: the
        # contract's conditions on registered state, computed a cycle ahead), so an issue decision
        # starts from a register. Each is computed for every outcome of this cycle's events — a
        # counter incremented or not, a queue's head kept or replaced by its candidate — and the
        # outcome picks it last (the increments and the queues' ``adv``), which keeps the compares
        # off the handshakes' paths.
        def after(cnt, inc, test):
            """``test`` of the counter's value in the next cycle (``inc`` a signal, or a constant
            when the increment is an event that ``ahead`` picks last)."""
            if isinstance(inc, bool):
                return test(plus1[id(cnt)] if inc else cnt)
            return Mux(inc, test(plus1[id(cnt)]), test(cnt))

        # The loader's and the dense engine's queues advance on an issue that waits on the lanes'
        # ``busy`` flags ("every GATHER of m done"), which fall in the cycle they are read. For
        # these queues ``adv`` is ``~r_rdy | (nb & go)``, ``nb`` the "no lane busy" test and
        # ``go`` the rest of the issue handshake (registers and the port's ready): the
        # conditions ahead are computed for both values of ``nb`` and ``nb`` picks last, so a
        # falling ``busy`` reaches them through the OR of the flags and one multiplexer, not
        # through the handshake and the queue's advance.
        late = {}

        nexts = {}

        def ahead(name, f, *qs, events=()):
            """A register holding ``f`` of the queues' heads (``(rdy, data)`` pairs) in the next
            cycle; the first queue's ``adv`` picks last (for a queue in ``late``, its ``nb``).
            With ``events`` (signals of this cycle), ``f`` takes one more argument per event, its
            value (a Python bool), and the events pick after everything else, the first last:
            an event that comes late in its cycle then passes only multiplexers."""
            def pick(i, heads, g):
                if i == len(qs):
                    return g(*heads)
                q = qs[i]
                took = pick(i + 1, [*heads, (q.cand_rdy, q.cand_data)], g)
                kept = pick(i + 1, [*heads, (q.r_rdy, q.r_data)], g)
                if id(q) in late:
                    nb, go = late[id(q)]
                    return Mux(nb, Mux(~q.r_rdy | go, took, kept), Mux(q.r_rdy, kept, took))
                return Mux(q.adv, took, kept)
            def over(j, values):
                if j == len(events):
                    return pick(0, [], lambda *h: f(*h, *values))
                return Mux(events[j], over(j + 1, [*values, True]), over(j + 1, [*values, False]))

            reg = Signal(name=name)
            nxt = Signal(name=f"{name}_next")
            m.d.comb += nxt.eq(over(0, []))
            m.d.sync += reg.eq(nxt)
            nexts[id(reg)] = nxt
            return reg

        def beyond(unit_head, mb):
            """Unit ``u``'s queue holds no GATHER of mini-batch ``mb`` or earlier at its head
            (its words are in Program order)."""
            rdy, word = unit_head
            return ~rdy | (data.View(unit_entry, word).mb > mb)

        def no_busy(chk):
            """No lane busy with parity p where ``chk[p]``: with the heads' ``beyond`` flags,
            "every GATHER of m done" (``GatherLane.busy`` is a register)."""
            return ~Cat(*[(chk[0] & gs.busy[u][0]) | (chk[1] & gs.busy[u][1]) for u in range(G)]).any()

        # ---- loader (requester 0) ----------------------------------------------------------
        head = data.View(loader_entry, loader_q.r_data)

        def waits_gathers(lh):
            """The head LOAD ``lh`` is an index LOAD of a mini-batch m >= 2 (it waits for the
            GATHERs of m - 2)."""
            rdy, word = lh
            w = data.View(loader_entry, word)
            return rdy & (w.a != isa.LOAD_WEIGHT) & (w.a != isa.LOAD_DENSE) & (w.mb >= 2)

        def ld_ready(lh):
            rdy, word = lh
            w = data.View(loader_entry, word)
            return rdy & ((w.a != isa.LOAD_DENSE) | (w.mb < 2) | after(bot_p1, bot_inc, lambda v: v >= w.mb))

        ld_nb, ld_go = Signal(), Signal()
        late[id(loader_q)] = (ld_nb, ld_go)
        ld_ok = ahead("ld_ok", ld_ready, loader_q)
        ld_chk = [ahead(f"ld_chk{p}", lambda lh, p=p: waits_gathers(lh)
                        & (data.View(loader_entry, lh[1]).mb_m2[0] == p), loader_q) for p in range(2)]
        ld_beyond = [ahead(f"ld_beyond{u}", lambda lh, uh: ~waits_gathers(lh)
                           | beyond(uh, data.View(loader_entry, lh[1]).mb_m2), loader_q, q)
                     for u, q in enumerate(unit_q)]
        head_ok = Signal()
        # "No lane busy with the head's parity" a cycle late (``LOAD_WAIT_CYCLES``): registered
        # from the busy flags of this cycle and the checks of the next cycle's head (``ld_chk``'s
        # next values). While an index LOAD of m waits, no GATHER of m's parity can start (those
        # of m wait for it), so the flags only fall and the late test never lets it go early.
        # The lanes' ``busy`` then reach only this register, not the request and the tag
        # registers' enables behind it.
        ld_nb_q = Signal(name="ld_nb_q")
        m.d.sync += ld_nb_q.eq(no_busy([nexts[id(c)] for c in ld_chk]))
        m.d.comb += [ld_nb.eq(ld_nb_q), head_ok.eq(ld_ok & Cat(*ld_beyond).all() & ld_nb)]
        cur = Signal()  # a LOAD past its first request
        cur_target = Signal(2)
        cur_bank = Signal()
        cur_line = Signal(ADDR_BITS - lb)
        cur_idx = Signal(idx_bits)
        cur_left = Signal(count_bits)
        cur_last = Signal()  # cur_left == 1, registered off the request handshake
        free = Signal(tags, init=(1 << tags) - 1)
        # ``kind``: the (target, parity) one-hot, bit 2 * target + parity, so that "the written line
        # is of (target, parity)" is one bit through the write queue's selects, not a compare.
        meta = Array(Signal(data.StructLayout({"target": 2, "bank": 1, "kind": 6, "idx": idx_bits}), name=f"ltag{i}",
                            reset_less=True) for i in range(tags))
        new_tag = Signal(tag_bits)
        for i in reversed(range(tags)):
            with m.If(free[i]):
                m.d.comb += new_tag.eq(i)
        lines_of_head = head.lines
        starting = Signal()
        m.d.comb += starting.eq(running & ~cur & head_ok)
        req0 = self.req0
        m.d.comb += [req0.valid.eq((cur | starting) & free.any()),
                     req0.payload.addr.eq(Cat(Const(0, lb), Mux(cur, cur_line, head.line))),
                     req0.payload.tag.eq(new_tag)]
        handshake = req0.valid & req0.ready
        # A LOAD's first request reads the queue: ``handshake & ~cur``, split as ``late`` wants.
        m.d.comb += [ld_go.eq(running & ~cur & ld_ok & Cat(*ld_beyond).all() & free.any() & req0.ready),
                     loader_q.r_en.eq(ld_nb & ld_go)]
        target = Mux(cur, cur_target, head.a)
        bank = Mux(cur, cur_bank, head.mb[0])
        taken = Signal(tags)
        with m.If(handshake):
            m.d.comb += taken.eq(1 << new_tag)
            m.d.sync += [meta[new_tag].target.eq(target), meta[new_tag].bank.eq(bank),
                         meta[new_tag].kind.eq(1 << Cat(bank, target)),
                         meta[new_tag].idx.eq(Mux(cur, cur_idx, 0))]
            with m.If(cur):
                m.d.sync += [cur_line.eq(cur_line + 1), cur_idx.eq(cur_idx + 1), cur_left.eq(cur_left - 1),
                             cur_last.eq(cur_left == 2)]
                with m.If(cur_last):
                    m.d.sync += cur.eq(0)
            with m.Else():
                m.d.sync += [cur_target.eq(head.a), cur_bank.eq(head.mb[0]), cur_line.eq(head.line + 1),
                             cur_idx.eq(1), cur_left.eq(lines_of_head - 1), cur.eq(lines_of_head > 1),
                             cur_last.eq(lines_of_head == 2)]
        # Delivered lines are written one per cycle in delivery order, so every loader-fed memory
        # has one write port (LineWriteQueue); a tag is free again after its delivery cycle.
        line_write = data.StructLayout({"target": 2, "bank": 1, "kind": 6, "idx": unsigned(idx_bits),
                                        "data": unsigned(8 * line)})
        wq = m.submodules.line_writes = LineWriteQueue(line_write, lanes=ch, max_outstanding=tags)
        freed = Signal(tags)
        for c in range(ch):
            resp = getattr(self, f"resp{c}")
            mine = resp.valid & (resp.payload.requester == 0)
            mt = meta[resp.payload.tag]
            with m.If(mine):
                m.d.comb += freed.bit_select(resp.payload.tag, 1).eq(1)
            lw = wq.lines[c].payload
            m.d.comb += [wq.lines[c].valid.eq(mine), lw.target.eq(mt.target), lw.bank.eq(mt.bank),
                         lw.kind.eq(mt.kind),
                         lw.idx.eq(mt.idx), lw.data.eq(resp.payload.data)]
            # Gather units' lines.
            for g in range(G):
                m.d.comb += [gs.resp[g][c].valid.eq(resp.valid & (resp.payload.requester == g + 1)),
                             gs.resp[g][c].payload.tag.eq(resp.payload.tag),
                             gs.resp[g][c].payload.data.eq(resp.payload.data)]
        m.d.sync += free.eq((free & ~taken) | freed)
        write, write_en, queued = wq.write.payload, wq.write.valid, wq.waiting
        # The write stage: the line the queue gives in cycle w is written into its memory at the
        # end of w + 1, from registers (its target's enable, bank, line number and data), so the
        # queue's lane pick and the tag's ``ltag`` read end in a register, not in the LUT RAMs'
        # and block RAMs' write inputs. Cycle-neutral: nothing reads a LOAD's lines before its
        # done (``LOAD_DONE_CYCLES``: w + 1 for the last line's write in w), which its readers see
        # in w + 2 at the earliest (their issue conditions are registers picked by the done), and
        # a LOAD starts only after the readers of the bank it refills have finished. The counts
        # of lines left and the done below follow the queue's write itself, as before; the END
        # does not wait for the stage (nothing reads a line written after it).
        ws = Signal(line_write, reset_less=True)
        ws_en = {tg: Signal(name=f"ws_en{tg}") for tg in (isa.LOAD_WEIGHT, isa.LOAD_DENSE, isa.LOAD_INDEX)}
        m.d.sync += [ws.eq(write), *[en.eq(write_en & (write.target == tg)) for tg, en in ws_en.items()]]
        m.d.comb += [dense.weight_wr.valid.eq(ws_en[isa.LOAD_WEIGHT]),
                     dense.weight_wr.payload.addr.eq(ws.idx), dense.weight_wr.payload.data.eq(ws.data),
                     dense.dense_wr.valid.eq(ws_en[isa.LOAD_DENSE]),
                     dense.dense_wr.payload.bank.eq(ws.bank), dense.dense_wr.payload.addr.eq(ws.idx),
                     dense.dense_wr.payload.data.eq(ws.data)]
        # Lines each (target, parity) still waits for: set at a LOAD's first request; a LOAD is
        # done in its last line's write cycle. A LOAD's first line is written a cycle after its
        # first request at the earliest (latency_cycles >= 1), and the LOAD before it of the same
        # (target, parity) is done by then (its condition waits for that; the weight LOAD is the
        # only one of its target), so no line of that (target, parity) is written in a cycle in
        # which a LOAD of it starts: "done" is the line written and the registered "one left"
        # flag, without the request handshake, which would put the loader's start (and the gather
        # lanes' ``busy`` behind it) in front of every issue condition that counts finished LOADs.
        # The count left and "it is 1" are computed for a line written and for none before the
        # write picks one (no subtraction or compare behind the written line's target). Nor is the
        # request handshake behind them: while no LOAD of a (target, parity) is in flight (from
        # its first request to its last line's write, ``inflight``) and no LOAD is past its first
        # request, the head LOAD's count is loaded whenever the head is of that (target, parity),
        # which the head keeps until its first request; so at that request the count holds the
        # head's, and none of its lines is written before it.
        head_one = Signal()
        m.d.comb += head_one.eq(lines_of_head == 1)
        for tg in range(3):
            for p in range(2):
                sig = Signal(count_bits, name=f"left{tg}_{p}")
                sig_one = Signal(name=f"left_one{tg}_{p}")  # sig == 1
                n_written = write_en & write.kind[2 * tg + p]
                of_head = ~cur & loader_q.r_rdy & (head.a == tg) & (head.mb[0] == p)
                starts_here = handshake & of_head
                inflight = Signal(name=f"inflight{tg}_{p}")
                loads = Signal(name=f"left_load{tg}_{p}")
                m.d.comb += loads.eq(of_head & ~inflight)
                sig_m1 = Signal(count_bits, name=f"left_m1{tg}_{p}")
                sig_two = Signal(name=f"left_two{tg}_{p}")
                m.d.comb += [sig_m1.eq(sig - 1), sig_two.eq(sig == 2)]
                m.d.sync += [sig.eq(Mux(loads, lines_of_head, Mux(n_written, sig_m1, sig))),
                             sig_one.eq(Mux(loads, head_one, Mux(n_written, sig_two, sig_one)))]
                finished = n_written & sig_one
                # The LOAD is done the cycle after its last line's write (``LOAD_DONE_CYCLES``):
                # "last line written" registered, so the events that count finished LOADs (and the
                # issue conditions picked by them) start from a register, not from the write
                # queue's lane pick and the tag's kind.
                fin_q = Signal(name=f"load_fin{tg}_{p}")
                m.d.sync += fin_q.eq(finished)
                with m.If(starts_here):
                    m.d.sync += inflight.eq(1)
                with m.Elif(fin_q):
                    # A LOAD of the same (target, parity) starts only after something that waited
                    # for this one's done, so clearing a cycle late never delays its count.
                    m.d.sync += inflight.eq(0)
                if tg == isa.LOAD_WEIGHT:
                    if p == 0:
                        m.d.comb += w_fin.eq(fin_q)
                else:
                    m.d.comb += (ldd_inc if tg == isa.LOAD_DENSE else ldi_inc)[p].eq(fin_q)

        m.d.comb += [gs.idx_wr.valid.eq(ws_en[isa.LOAD_INDEX]),
                     gs.idx_wr.payload.bank.eq(ws.bank), gs.idx_wr.payload.addr.eq(ws.idx),
                     gs.idx_wr.payload.data.eq(ws.data)]

        # ---- gather lanes: the unit queues, under the GATHER's conditions ---------------------
        for g, q in enumerate(unit_q):
            head_u = data.View(unit_entry, q.r_data)

            def g_ready(uh, inc0, inc1):
                rdy, word = uh
                mb = data.View(unit_entry, word).mb
                loaded = Mux(mb[0], after(ldi_count[1], inc1, lambda v: v > (mb >> 1)),
                             after(ldi_count[0], inc0, lambda v: v > (mb >> 1)))
                return rdy & loaded & ((mb < 2) | after(inter_p1, inter_inc, lambda v: v >= mb))

            # the index LOADs' "done" (the written line's target) pick last
            ok = ahead(f"g_ok{g}", g_ready, q, events=ldi_inc)
            cmd = gs.cmd[g]
            m.d.comb += [cmd.valid.eq(running & ok), cmd.payload.eq(head_u.walk),
                         q.r_en.eq(cmd.valid & cmd.ready)]
            wiring.connect(m, gs.req[g], wiring.flipped(getattr(self, f"req{g + 1}")))

        # ---- pooled banks ---------------------------------------------------------------------
        # The gather side follows the INTER's reads from element 0 itself (``pool_rd.addr`` is the
        # element after the previous read's last, GatherSide).
        m.d.comb += [gs.rd_en.eq(dense.pool_rd.en), gs.rd_bank.eq(dense.pool_rd.bank),
                     gs.rd_count.eq(dense.pool_rd.count)]
        for c in range(hw.cols):
            m.d.comb += dense.pool_data[c].eq(gs.rd_data[c])

        # ---- dense engine: its queue under the GEMM / INTER conditions ------------------------
        dh = data.View(INSTR_LAYOUT, dense_q.r_data)
        dmb = dh.mb

        # The condition is ``rdy & (op != GEMM | (w & l & s))`` for the weight, dense LOAD and
        # out bank terms, kept as the three registers ``rdy & (op != GEMM | w)``, ``op != GEMM | l``
        # and ``op != GEMM | s`` (their AND is the condition), so that each is picked last by its
        # own events only: the weight LOAD's ``w_fin``, the dense LOADs' ``ldd_inc`` (the written
        # line's target) and the STOREs' ``store_inc`` (the write handshake and acknowledgements).
        def not_gemm(word):
            return data.View(INSTR_LAYOUT, word).op != isa.OP_GEMM

        def per_parity(mb, counts, incs, test):
            return Mux(mb[0], after(counts[1], incs[1], test), after(counts[0], incs[0], test))

        def d_weight(dhd, fin):
            rdy, word = dhd
            return rdy & (not_gemm(word) | w_done | fin)

        def d_dense(dhd, inc0, inc1):
            w = data.View(INSTR_LAYOUT, dhd[1])
            return (not_gemm(dhd[1]) | ((w.b & isa.SRC_DENSE) == 0)
                    | per_parity(w.mb, ldd_count, (inc0, inc1), lambda v: v > (w.mb >> 1)))

        def d_out(dhd, inc0, inc1):
            w = data.View(INSTR_LAYOUT, dhd[1])
            return (not_gemm(dhd[1]) | ((w.b & isa.DST_OUT) == 0) | (w.mb < 2)
                    | per_parity(w.mb, store_count, (inc0, inc1), lambda v: v >= (w.mb >> 1)))

        def d_inter(dhd):
            rdy, word = dhd
            return rdy & (data.View(INSTR_LAYOUT, word).op != isa.OP_GEMM)

        d_nb, d_go = Signal(), Signal()
        late[id(dense_q)] = (d_nb, d_go)
        d_ok = Signal()
        m.d.comb += d_ok.eq(ahead("d_ok_w", d_weight, dense_q, events=(w_fin,))
                            & ahead("d_ok_l", d_dense, dense_q, events=ldd_inc)
                            & ahead("d_ok_s", d_out, dense_q, events=store_inc))
        d_chk = [ahead(f"d_chk{p}", lambda dhd, p=p: d_inter(dhd) & (data.View(INSTR_LAYOUT, dhd[1]).mb[0] == p),
                       dense_q) for p in range(2)]
        d_beyond = [ahead(f"d_beyond{u}", lambda dhd, uh: ~d_inter(dhd)
                          | beyond(uh, data.View(INSTR_LAYOUT, dhd[1]).mb), dense_q, q)
                    for u, q in enumerate(unit_q)]
        m.d.comb += [d_nb.eq(no_busy(d_chk)), d_go.eq(running & d_ok & Cat(*d_beyond).all() & dense.cmd.ready),
                     dense.cmd.valid.eq(running & d_ok & Cat(*d_beyond).all() & d_nb),
                     dense.cmd.payload.eq(dh),
                     dense_q.r_en.eq(d_nb & d_go)]
        # The engine's instruction: it follows the offered word while the engine is idle (it is
        # read only while the engine is busy), so the issue handshake does not enable it.
        d_cur = Signal(INSTR_LAYOUT, reset_less=True)
        with m.If(dense.cmd.ready):
            m.d.sync += d_cur.eq(dh)
        with m.If(dense.ended):
            with m.If(d_cur.op == isa.OP_INTER):
                m.d.comb += inter_inc.eq(1)
            with m.Elif(d_cur.b & isa.SRC_DENSE != 0):
                m.d.comb += bot_inc.eq(1)
            with m.If((d_cur.op == isa.OP_GEMM) & (d_cur.b & isa.DST_OUT != 0)):
                m.d.comb += top_inc.eq(1)

        # ---- out banks: values n = row * V + col in B memories (value n in n % B) -------------
        acc = hw.acc_bits
        out_values = max(1, int(hw.out_buffer_kib * 1024) // 2 // acc_bytes)
        B = _pow2_at_least(max(hw.cols, (line - 1) // acc_bytes + 2))
        lB = B.bit_length() - 1
        out_depth = -(-out_values // B) + 1
        row_bits = max(1, (out_depth - 1).bit_length())
        # The read's value index ``n_lo`` modulo the memories' span (B values a row, 2^row_bits
        # rows): the addresses wrap there anyway, so no 32-bit adder or register behind it.
        nlo_bits = lB + row_bits
        # A row the dense engine gives in cycle f is written in f + 1, its first value's index
        # ``n = row * V + col`` (the dense engine's, from its registers) registered in f. A read
        # sees the rows given up to its cycle: written before it, in it (transparent ports) or,
        # for the row given in its cycle, from the write of the next (a compare on the address
        # read), so the store's first line, read in the last top GEMM's final cycle, sees its last
        # row.
        o = dense.out.payload
        n0 = Signal(32)
        w_valid = Signal()
        w_bank = Signal()
        w_count = Signal.like(o.count)
        w_values = Signal.like(o.values, reset_less=True)
        n0_next = Signal(32)
        m.d.comb += n0_next.eq(o.n)
        m.d.sync += [n0.eq(n0_next), w_valid.eq(dense.out.valid), w_bank.eq(o.bank),
                     w_count.eq(o.count), w_values.eq(o.values)]
        # Per memory b, registered with ``n0``: the place in the row of the value it takes
        # (``c_of`` = (b - n0) mod B) and whether that value is in the next line of memories
        # (b < n0 mod B), so its write address is ``n0 // B`` plus that bit and its value select
        # and enable start from registers of its own (``n0``'s low bits drove 530 loads on the
        # tiny top: routed at 119a6f3 the out banks' write data was 1,950 of 2,560 late).
        c_ofs, incs = [], []
        for b in range(B):
            c_of = Signal(lB if lB else 1, name=f"out_c{b}")
            inc = Signal(name=f"out_inc{b}")
            m.d.sync += [c_of.eq((b - n0_next[:lB]) if lB else 0), inc.eq((b < n0_next[:lB]) if b < B - 1 else 0)]
            c_ofs.append(c_of)
            incs.append(inc)
        # The store's read: line i's values n_lo … n_lo + B - 1, then bytes from ``off``.
        rd_bank = Signal()
        rd_nlo = Signal(nlo_bits)
        rd_off = Signal(range(acc_bytes))
        # The read address is the next line's (``adv_nlo``, from registers), the same line's (the
        # address register of the cycle before) or the first line's, picked by the write
        # handshake last (``rd_on``, ``rd_adv``), so no adder follows the handshake.
        adv_nlo = Signal(nlo_bits)
        rd_on, rd_adv = Signal(), Signal()
        # Both out banks in one memory per b, the bank the address's top bit (a read is of one bank,
        # a write of one bank, so one port each suffices): no bank select behind the memories'
        # outputs (routed at c814805, ``rd_bank_q`` drove that select's 1,768 cell inputs, and on
        # mid the per-memory forward and bank selects, copied into each rotated value's select,
        # made the line assembly ~14,870 LUT4).
        rd_bank_q = Signal()
        rd_nlo_q = Signal(max(1, lB))
        rd_off_q = Signal(range(acc_bytes))
        m.d.sync += [rd_bank_q.eq(rd_bank), rd_nlo_q.eq(rd_nlo[:lB] if lB else 0), rd_off_q.eq(rd_off)]
        bank_data = [None] * B
        for b in range(B):
            mem = memory.Memory(shape=signed(acc), depth=2 << row_bits, init=[])
            m.submodules[f"out_{b}"] = mem
            wr = mem.write_port()
            rd = mem.read_port(transparent_for=(wr,))
            c_of = c_ofs[b]
            vals = Array(w_values[c] for c in range(hw.cols))
            m.d.comb += [wr.en.eq(w_valid & (c_of < w_count)),
                         wr.addr.eq(Cat(((n0 >> lB) + incs[b])[:row_bits], w_bank)), wr.data.eq(vals[c_of])]
            # The row of the first value at or after ``adv_nlo`` in memory b: ``adv_nlo``'s row, or
            # the next one if b is below ``adv_nlo``'s memory.
            k = Signal(name=f"out_k{b}")
            m.d.comb += k.eq((b < adv_nlo[:lB]) if lB and b < B - 1 else 0)
            read_row = Signal(row_bits, name=f"out_ra{b}")
            row_next = Signal(row_bits, name=f"out_rn{b}")
            m.d.comb += row_next.eq(Mux(rd_on, Mux(rd_adv, ((adv_nlo >> lB) + k)[:row_bits], read_row), 0))
            m.d.comb += rd.addr.eq(Cat(row_next, rd_bank))
            m.d.sync += read_row.eq(row_next)
            forward = Signal(name=f"out_fwd{b}")
            m.d.comb += forward.eq(wr.en & (wr.addr == Cat(read_row, rd_bank_q)))
            bank_data[b] = Mux(forward, wr.data, rd.data)
        rotated = []
        sel = Array(bank_data)
        for kk in range(B):
            rotated.append(sel[(rd_nlo_q + kk)[:lB] if lB else 0])
        line_data = Signal(8 * line)
        m.d.comb += line_data.eq((Cat(*rotated) >> (rd_off_q * 8))[: 8 * line])

        # ---- store: posted line writes, done when the memory acknowledges the last one --------
        sh = data.View(store_entry, store_q.r_data)
        s_active = Signal()
        s_bank = Signal()
        s_addr = Signal(ADDR_BITS)
        s_left = Signal(store_lines_bits)
        s_start = Signal()
        st_ok = ahead("st_ok", lambda sq: sq[0] & after(top_count, top_inc,
                                                         lambda v: v > data.View(store_entry, sq[1]).mb), store_q)
        # ``st_ok`` in copies per consumer group, so no one register drives the write port, the
        # store's state and the per-bank offer flags across the device (on the tiny top placed and
        # routed at 8cf9044, ``st_ok`` -> ``wr.valid`` -> the offer flags was the critical path,
        # 11.18 of its 13.08 ns routing): ``st_ok`` for the write port and the store's state,
        # ``st_ok_b`` (reset-less, so synthesis does not merge it back) for the offer flags.
        st_ok_b = Signal(name="st_ok_b", reset_less=True)
        m.d.sync += st_ok_b.eq(nexts[id(st_ok)])
        # ``wr.valid`` (``s_active | running & st_ok``) as registers computed a cycle ahead, in two
        # copies: ``st_go`` for the write port, the handshake and the store's state, ``st_go_rd_n``
        # (its complement, so synthesis does not merge the two) for the out banks' read select
        # (routed at c814805, ``running`` -> ``wr.valid`` -> the read select's 50 loads ->
        # ``rd_bank_q`` was the critical path, 12.62 ns).
        st_go = Signal(name="st_go")
        st_go_rd_n = Signal(name="st_go_rd_n", init=1)
        m.d.comb += s_start.eq(st_go & ~s_active)
        wr = self.wr
        m.d.comb += [wr.valid.eq(st_go), wr.payload.addr.eq(Mux(s_active, s_addr, sh.addr)),
                     wr.payload.data.eq(line_data), wr.payload.bank.eq(Mux(s_active, s_bank, sh.mb[0]))]
        accepted = wr.valid & wr.ready
        lines_left = Mux(s_active, s_left, sh.lines)
        s_one = Signal()  # s_left == 1, registered
        one_sel = Mux(s_active, s_one, sh.one)
        last_line = accepted & one_sel
        s_active_next = Mux(accepted, ~last_line, s_active)
        go_next = Signal(name="st_go_next")
        # ``running`` (registered) in place of ``running_next``, as for ``st_head`` below: in the first
        # running cycle no top GEMM has ended, so ``st_ok`` is low.
        m.d.comb += go_next.eq(s_active_next | (running & nexts[id(st_ok)]))
        m.d.sync += [st_go.eq(go_next), st_go_rd_n.eq(~go_next)]
        with m.If(s_start & accepted):
            m.d.comb += store_q.r_en.eq(1)
        with m.If(accepted):
            m.d.sync += [s_active.eq(~last_line), s_addr.eq(Mux(s_active, s_addr, sh.addr) + line),
                         s_left.eq(lines_left - 1), s_one.eq(lines_left == 2), s_bank.eq(wr.payload.bank)]
        # The line to read for the next cycle's offer: the next line, the same one (not
        # accepted), or the next STORE's first line.
        step_nlo = line // acc_bytes
        step_off = line % acc_bytes
        cur_nlo = Signal(nlo_bits)
        cur_off = Signal(range(acc_bytes))
        nxt_off = Signal(range(2 * acc_bytes))
        m.d.comb += nxt_off.eq(cur_off + step_off)
        m.d.comb += adv_nlo.eq(cur_nlo + step_nlo + (nxt_off >= acc_bytes))
        # Reading on (a STORE active or starting, its last line not accepted): computed from
        # registers for both outcomes of the handshake and ``wr.ready`` picking last; advancing
        # is ``wr.ready`` itself (read only while reading on, when ``wr.valid`` is high). The bank
        # is the active STORE's unless its last line is accepted, else the head STORE's (its bank's
        # current contents while waiting).
        go_rd = ~st_go_rd_n
        m.d.comb += [rd_on.eq(Mux(wr.ready, go_rd & ~one_sel, go_rd)), rd_adv.eq(wr.ready),
                     rd_bank.eq(Mux(wr.ready, Mux(s_active & ~s_one, s_bank, sh.mb[0]),
                                    Mux(s_active, s_bank, sh.mb[0])))]
        with m.If(rd_on):
            with m.If(rd_adv):
                m.d.comb += [rd_nlo.eq(adv_nlo),
                             rd_off.eq(Mux(nxt_off >= acc_bytes, nxt_off - acc_bytes, nxt_off))]
            with m.Else():
                m.d.comb += [rd_nlo.eq(cur_nlo), rd_off.eq(cur_off)]
        with m.Else():
            # Waiting: the head STORE's first line.
            m.d.comb += [rd_nlo.eq(0), rd_off.eq(0)]
        m.d.sync += [cur_nlo.eq(rd_nlo), cur_off.eq(rd_off)]
        # Per out bank p, as registers holding this cycle's offer: a write of bank p of the active
        # STORE (``st_act``, ``st_act_last`` its last line) and the head STORE's first write, of
        # bank p, if ``st_ok`` (``st_head``, ``st_head_last`` if it is its only line; running,
        # no STORE active). So "a write of bank p handshaken" and "its STORE's last" are a gate on
        # them, ``st_ok`` and ``wr.ready``, not the handshake's multiplexers behind ``st_ok``.
        # Their next values are computed from registers for both outcomes of the handshake
        # (accepted: the active STORE's next line or the head STORE's first, read from the queue
        # if no STORE was active; not accepted: the state kept) and ``accepted`` picks last, so
        # the handshake reaches them through one multiplexer, not through the queue's ``adv``.
        outcomes = []
        for acc_ in (True, False):
            if acc_:
                a_active = ~Mux(s_active, s_one, sh.one)
                a_bank = Mux(s_active, s_bank, sh.mb[0])
                a_one = lines_left == 2
                a_adv = ~store_q.r_rdy | ~s_active  # accepted with no STORE active: its start
            else:
                a_active, a_bank, a_one, a_adv = s_active, s_bank, s_one, ~store_q.r_rdy
            a_sh = data.View(store_entry, Mux(a_adv, store_q.cand_data, store_q.r_data))
            outcomes.append((a_active, a_bank, a_one, a_sh))
        issued_p, last_p = [], []
        for p in range(2):
            act = Signal(name=f"st_act{p}")
            act_last = Signal(name=f"st_act_last{p}")
            hd = Signal(name=f"st_head{p}")
            hd_last = Signal(name=f"st_head_last{p}")
            flags = []
            for a_active, a_bank, a_one, a_sh in outcomes:
                act_next = a_active & (a_bank == p)
                # ``running`` (registered) in place of ``running_next``: in the first running cycle
                # no top GEMM has ended, so ``st_ok`` is low and ``st_head`` is not read.
                hd_next = running & ~a_active & (a_sh.mb[0] == p)
                flags.append((act_next, act_next & a_one, hd_next, hd_next & a_sh.one))
            m.d.sync += [reg.eq(Mux(accepted, took, kept))
                         for reg, took, kept in zip((act, act_last, hd, hd_last), *flags)]
            issued_p.append((act | (st_ok_b & hd)) & wr.ready)
            last_p.append((act_last | (st_ok_b & hd_last)) & wr.ready)
        # Acknowledgements: a STORE is done when its last write is acknowledged. The writes in
        # flight and whether none are left are computed for a write issued and for none before
        # the handshake picks one (the handshake's path is a multiplexer).
        outstanding = [Signal(store_lines_bits + 1, name=f"st_out{p}") for p in range(2)]
        open_ = [Signal(name=f"st_open{p}") for p in range(2)]
        # "None left" is not a compare behind the subtraction either: ``out_eq[k]`` (a register)
        # says the writes in flight are k, for k up to the acknowledgements a cycle can bring, so
        # "drained" is those flags against the cycle's acknowledgement count.
        for p in range(2):
            issued = issued_p[p]
            acks = _popcount(Cat(*[self.wr_ack[c] & (self.wr_ack_bank[c] == p) for c in range(ch)]))
            if_none = Signal.like(outstanding[p], name=f"st_none{p}")
            if_one = Signal.like(outstanding[p], name=f"st_one{p}")
            m.d.comb += [if_none.eq(outstanding[p] - acks), if_one.eq(outstanding[p] + 1 - acks)]
            m.d.sync += outstanding[p].eq(Mux(issued, if_one, if_none))
            out_eq = [Signal(name=f"st_out{p}_is{k}", init=int(k == 0)) for k in range(ch + 1)]
            # The next cycle's "k in flight" without the subtraction: for each acknowledgement
            # count a, the count now compared with the constant k + a (k + a - 1 if a write is
            # issued), the acknowledgements and the handshake picking last.
            n_acks = [Signal(name=f"st_acks{p}_is{a}") for a in range(ch + 1)]
            m.d.comb += [n_acks[a].eq(acks == a) for a in range(ch + 1)]
            for k in range(ch + 1):
                def now_is(v, p=p):
                    return (outstanding[p] == v) if v >= 0 else Const(0, 1)
                m.d.sync += out_eq[k].eq(Mux(issued, Cat(*[n_acks[a] & now_is(k + a - 1) for a in range(ch + 1)]).any(),
                                             Cat(*[n_acks[a] & now_is(k + a) for a in range(ch + 1)]).any()))
            drained = Mux(issued, Cat(*[out_eq[k] & (acks == k + 1) for k in range(ch)]).any(),
                          Cat(*[out_eq[k] & (acks == k) for k in range(ch + 1)]).any())
            closing = open_[p] | last_p[p]
            with m.If(closing & drained):
                m.d.comb += store_inc[p].eq(1)
                m.d.sync += open_[p].eq(0)
            with m.Elif(last_p[p]):
                m.d.sync += open_[p].eq(1)

        # ---- END: done once every engine is idle ----------------------------------------------
        idle = Signal()
        m.d.comb += idle.eq(
            running & ~Cat(*[q.r_rdy for q in queues]).any() & ~cur & free.all() & ~queued & dense.cmd.ready
            & Cat(*[~gs.busy[g].any() & gs.cmd[g].ready for g in range(G)]).all() & ~s_active
            & (outstanding[0] == 0) & (outstanding[1] == 0) & ~open_[0] & ~open_[1])
        from .shell import CYCLE_BITS

        done = Signal()
        cycles = Signal(CYCLE_BITS)
        with m.If(idle):
            m.d.sync += done.eq(1)
        with m.If(running & ~done):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += [self.done.eq(done), self.cycles.eq(cycles)]
        return m
