"""Amaranth RTL of the ``nm_train`` engine (docs/nm_train.md is the contract).

:class:`NmTrainAccelerator` is the engine of one :class:`~sparsim.dataflow.nm_train.NmTrainHardware`:
the shared :class:`~sparsim.rtl.systolic.SystolicArray` (its dataflow is the hardware's), two
input banks, two weight banks with the prune unit in front of them, two output banks, the
compute sequencer that runs MM jobs fold after fold, the pre-generation unit that runs PGS jobs
(prune a dense slab along its rows, or down its columns through a transposing buffer of M rows),
and the shell's loader, receiver and store
(:mod:`sparsim.rtl.shell`), with the shell's ``lib.stream`` ports to the instruction source and
memory. Its timing is the contract's event equations, with the array's fold times from
:mod:`sparsim.dataflow.systolic`, and the banks' pipeline ``MM_PIPE_CYCLES``, the prune unit's
``PRUNE_CYCLES`` and the pre-generation unit's ``PREGEN_CYCLES`` from
:mod:`sparsim.dataflow.nm_train_isa`.
"""

from __future__ import annotations


from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, memory, wiring

from sparsim.dataflow import nm_train_isa as isa
from sparsim.dataflow.nm_train import NmTrainHardware, bank_bytes, weight_group_units, weight_word_entries
from sparsim.dataflow.systolic import PE_PIPELINE_CYCLES

from . import shell
from .collision import NO_COLLISION as _NO_COLLISION
from .collision import poison_collisions
from .collision import seen as _seen
from .shell import rejected_is_not_unused as _rejected_is_not_unused
from .systolic import SystolicArray

__all__ = [
    "INSTR_LAYOUT",
    "Geometry",
    "NmTrainAccelerator",
    "poison_collisions",
    "top_signature",
    "read_request_layout",
    "write_layout",
]

#: Instruction words as the RTL sees them: the ISA's field table as a struct.
INSTR_LAYOUT = shell.struct_from_fields(isa.FIELDS, isa.INSTR_BITS)

#: Receiver targets: input bank 0 and 1, weight bank 0 and 1.
_TARGET_INPUT = 0
_TARGET_WEIGHT = 2
_TARGETS = 4
#: Compute jobs the loader may have dispatched ahead of the one computing (the loader's bank
#: guards keep it at most three in compiled Programs; one spare).
_QUEUE_DEPTH = 4
#: bits of a wide select driven by one copy of its select register (``_copies``): ECP5's routing
#: of a net grows with its loads and their spread, beyond about 64 loads markedly
_SLICE_BITS = 32


def _shift_slices(width, positions, unit=8):
    """Slices of a ``width``-bit shift or rotation by one of ``positions`` offsets (of ``unit``
    bits), each to be shifted by its own copy of the offset: ``_SLICE_BITS`` at 4 positions,
    narrower as the positions grow (a shift's select bit drives a LUT per output bit per
    level: at 16 positions a 32-bit slice's copy drove ~190 loads), never below ``unit``."""
    step = max(unit, _SLICE_BITS * 4 // max(1, positions))
    return [(lo, min(lo + step, width)) for lo in range(0, width, step)]


def _log2(value: int) -> int:
    return value.bit_length() - 1


class Geometry:
    """Sizes of the engine's storage for one hardware configuration, bounded by what the compiler
    can emit (docs/nm_train.md, "Compiler"): A records of at most ``input bank / R`` bytes (pruning
    loads too), 1:1 B records of at most ``weight bank / C`` bytes, output rows of at most
    ``output bank / (R * acc_bytes)`` accumulators, dense pre-generation slabs rows of at most
    ``weight bank / C`` bytes.

    An input or weight sub-bank holds ``in_sub_bytes`` bytes (``w_sub_entries`` entries) in RAM
    words: the records it receives lie back to back, so its size is the most any load that fits
    the bank (``count * width <= bank``, the functional model's check) puts in one sub-bank,
    ``ceil(count / subs) * width`` at the worst width, not (most records) x (widest record)."""

    def __init__(self, hw: NmTrainHardware):
        R, C = hw.rows, hw.cols
        self.in_bank = bank_bytes(hw.input_buffer_kib)
        self.w_bank = bank_bytes(hw.weight_buffer_kib)
        self.out_bank = bank_bytes(hw.output_buffer_kib)
        self.acc_bytes = hw.acc_bits // 8
        #: input sub-banks: R-way row banking in OS, one store of whole rows in WS
        self.in_subs = R if hw.dataflow == "os" else 1
        #: widest A record, and widest dense record a pruning LDB reads
        self.in_rec_bytes = max(1, self.in_bank // R)
        self.in_sub_bytes = _sub_capacity(self.in_bank, self.in_rec_bytes, self.in_subs)
        #: kept entries of the widest B record, and entries of a weight sub-bank (a B record's
        #: group takes at least as many bytes as it keeps entries)
        self.w_entries = max(1, self.w_bank // C)
        self.w_sub_entries = _sub_capacity(self.w_bank, self.w_entries, C)
        #: accumulators of the widest output row (a multiple of C), and most rows in a tile or
        #: records a PGS writes (compressed groups take at least 2 bytes: 1:2)
        self.out_lanes = -(-max(C, self.out_bank // (R * self.acc_bytes)) // C) * C
        self.out_rows = max(R, self.out_bank // (min(self.acc_bytes, 2) if hw.max_m > 1 else self.acc_bytes))
        self.read_bytes = max(self.in_rec_bytes, self.w_entries)
        #: bytes of a read-data beat: the memory's BW, or the widest record if that is smaller
        #: (records of at most BW bytes move one per beat, alone)
        self.beat_bytes = min(hw.memory.bandwidth_bytes_per_cycle, self.read_bytes)
        #: OS input sub-banks are RAM words of ``in_word_bytes`` (a power of two, at least a beat
        #: and a window: a beat's bytes for one record, and a window, span at most two words),
        #: even and odd words in two RAMs, each holding the sub-bank of both input banks
        #: (``2 ** in_word_addr_bits`` words each, the bank the address's top bit)
        self.in_word_bytes = 1 << (max(2, self.beat_bytes, hw.max_m) - 1).bit_length()
        half_words = (((self.in_sub_bytes - 1) // self.in_word_bytes) + 2) // 2 + 1
        self.in_word_addr_bits = max(1, (half_words - 1).bit_length())
        self.out_row_bytes = self.out_lanes * self.acc_bytes
        #: weight loads are written from the beats a group at a time: the bytes not yet written
        #: (of the group in progress, or of the next record when one ends inside a beat) wait in
        #: a register of ``w_hold_bytes``, a beat after them is ``w_seq_bytes``,
        #: whose complete groups give at most ``w_seg_entries`` entries; sub-banks are written
        #: in words of ``w_word_entries`` (a power of two, at least a beat's entries, so that
        #: they span at most two words)
        DB = self.beat_bytes
        units = _weight_units(_log2(hw.max_m))
        # held: a group in progress (less than a group), or the next record's first bytes when a
        # record ends inside a beat (less than a beat)
        self.w_hold_bytes = max(max(g, DB) - 1 for _, _, g in units)
        self.w_seq_bytes = self.w_hold_bytes + DB
        self.w_seg_entries = max(n * ((max(g, DB) - 1 + DB) // g) for n, _, g in units)
        self.w_word_entries = weight_word_entries(hw)
        assert self.w_word_entries == 1 << (self.w_seg_entries - 1).bit_length()
        #: weight sub-banks are RAM words of ``w_word_entries`` entries (an INT8 value and its
        #: index), even and odd words in two RAMs per sub-bank and bank of ``2 **
        #: w_word_addr_bits`` words: a segment, a slab row's chunk read by the pre-generation
        #: unit, spans at most two words
        w_half = (((self.w_sub_entries - 1) // self.w_word_entries) + 2) // 2 + 1
        self.w_word_addr_bits = max(1, (w_half - 1).bit_length())
        #: (RAMs of two words, sub-banks of at most about two words such as mid_ecp5's 28 entries,
        #: are LUT RAM too since session 23: as registers with record-wide read selects they held
        #: two thirds of mid_ecp5's routing congestion; LUT RAM (16 words deep on ECP5, 32 on xcup)
        #: leaves most of its cells' depth unused but keeps the words and their read select inside
        #: the RAM cells, read asynchronously as before)
        #: bytes a pruning load hands the rank network per beat (its complete dense groups lie in
        #: them)
        self.prune_bytes = max(hw.max_m, DB) - 1 + DB if hw.max_m > 1 else 0


def _weight_units(ib: int) -> list[tuple[int, int, int]]:
    """``(n, m_log2, group bytes)`` of every group a weight load can bring
    (``dataflow.nm_train.weight_group_units``)."""
    return weight_group_units(1 << ib)


def _sub_capacity(bank: int, widest: int, subs: int) -> int:
    """Most words one of ``subs`` sub-banks receives from a load of records of at most
    ``widest`` words that fits a bank of ``bank`` words, record i going to sub-bank i % subs."""
    return max(-(-(bank // w) // subs) * w for w in range(1, widest + 1))


def read_request_layout(hw: NmTrainHardware) -> data.StructLayout:
    """Payload of a memory read request: byte address, record count and bytes per record."""
    return shell.read_request_layout(
        addr_bits=isa.field_width("addr"), count_bits=isa.field_width("count"),
        max_rec_bytes=Geometry(hw).read_bytes,
    )


def write_layout(hw: NmTrainHardware) -> data.StructLayout:
    """Payload of a memory write: byte address, one output row, its size in bytes, last row."""
    geo = Geometry(hw)
    return shell.write_layout(
        addr_bits=isa.field_width("addr"), data_bits=geo.out_row_bytes * 8, max_row_bytes=geo.out_row_bytes
    )


def top_signature(hw: NmTrainHardware) -> wiring.Signature:
    """Ports of :class:`NmTrainAccelerator` for ``hw``: :func:`sparsim.rtl.shell.top_signature`
    with the ``nm_train`` payloads."""
    return shell.top_signature(
        instr_layout=INSTR_LAYOUT,
        request_layout=read_request_layout(hw),
        read_data_bits=Geometry(hw).beat_bytes * 8,
        write_layout=write_layout(hw),
    )


def _job_layout(geo: Geometry) -> data.StructLayout:
    """A compute job in the queue: its instruction's fields, and terms of them that the
    sequencers compare their counters with, computed at dispatch so that they are registers
    from the job's first cycle on."""
    count_bits = isa.field_width("count")
    return data.StructLayout({
        "acc": 1, "store": 1, "n": isa.field_width("n"), "m_log2": isa.field_width("m_log2"),
        "count": count_bits, "width": isa.field_width("width"),
        "k_steps": isa.field_width("k_steps"), "addr": isa.field_width("addr"),
        "a_bank": 1, "b_bank": 1,
        "pgs": 1, "axis": 1,  # a pre-generation job, and its axis
        "m": 5,  # M = 2^m_log2
        "fold_last": 18,  # an MM fold's last cycle: fold_cycles - 1
        "row_bytes": range(geo.out_row_bytes + 1),  # an output row's bytes
        # PGS: its last row (axis 0), the last cycle of a group of rows (axis 1: M + count - 1),
        # and the kept entries before its last group (axis 1: k_steps - N, at least 0)
        "count_last": count_bits, "phase_last": count_bits + 1, "kept_last": isa.field_width("k_steps"),
    })


class NmTrainAccelerator(wiring.Component):
    """The ``nm_train`` engine of one hardware configuration, executing a Program.

    Behaviour and timing are those of docs/nm_train.md: cycle 0 is the first cycle after reset;
    with an always-valid instruction stream, an always-ready memory (the memory model of the
    docs) and no back-pressure, ``cycles`` ends equal to the simulator's cycle count.

    An MM job starting in cycle ``c`` registers the first step's read offsets in ``c`` (the input
    RAMs' address), registers the windows' RAM words and the weight entries they select from the
    banks in ``c + 1`` and hands the first step to the array in ``c + 2``; the folds follow back
    to back (:class:`~sparsim.rtl.systolic.SystolicArray` timing); each result row is read-added
    into (or written to) its output bank row one cycle after it leaves the array, the job's last
    in ``e = c + D - 1 + MM_PIPE_CYCLES``.

    Members
    -------
    :func:`top_signature`, the shell's top signature with these payloads:

    instr : In(stream.Signature(INSTR_LAYOUT))
        Instruction words (``sparsim.dataflow.nm_train_isa`` encoding); unknown opcodes behave
        as ``END`` (and ``PGS`` on an array with ``max_m`` 1, which no compiled Program has).
    rd_req : Out(stream.Signature(read_request_layout(hw)))
        Memory read requests: ``addr``, ``count`` records of ``rec_bytes`` bytes, consecutive;
        offered from a register, ``LOAD_REQUEST_CYCLES`` (1) after the load's issue.
    rd_data : In(stream.Signature(Geometry(hw).beat_bytes * 8, always_ready=True))
        Read data in request order, the memory's beats (``StripedMemory(beats=True)``): a
        transfer of records wider than a beat as its byte stream, ``beat_bytes`` a beat (its
        last beat may be shorter), records of at most ``beat_bytes`` one per beat in the low
        ``rec_bytes * 8`` bits. Never stalled: every record is taken in the cycle of its last
        byte's beat (pruned records PRUNE_CYCLES later) and in its bank LOAD_READY_CYCLES (2)
        cycles after: the segment register, then the sub-banks' write stage.
    wr : Out(stream.Signature(write_layout(hw)))
        Output rows: ``addr``, ``data`` (accumulators, little-endian), ``bytes`` (the row's size,
        ``Q_t * acc_bits / 8``) and ``last``.
    done : Out(1)
        High from the cycle after ``END`` completed.
    cycles : Out(32)
        Cycle number while running; once ``done``, the Program's cycle count ``d + 1``.
    """

    def __init__(self, hw: NmTrainHardware):
        with _rejected_is_not_unused(self):
            if not isinstance(hw, NmTrainHardware):
                raise TypeError(f"hw must be an NmTrainHardware, not {type(hw).__name__}")
        self._hw = hw
        super().__init__(top_signature(hw))

    @property
    def hw(self) -> NmTrainHardware:
        return self._hw

    def elaborate(self, platform):
        m = Module()
        hw = self._hw
        R, C, M, A = hw.rows, hw.cols, hw.max_m, hw.acc_bits
        os_flow = hw.dataflow == "os"
        geo = Geometry(hw)
        ib = _log2(M)
        lanes = geo.out_lanes
        out_bits = lanes * A
        count_bits = isa.field_width("count")

        # ---- storage --------------------------------------------------------------------
        # Input and weight sub-banks hold records back to back from a running base (records of
        # one load have one width), written from the read-data beats: a record is in its bank
        # two cycles after its last byte's beat (a segment register, then each RAM's write stage).
        # Nothing reads a bank before then (a job starts at the earliest LOAD_READY_CYCLES after
        # the last record's beat, and reads in the cycle after its start). Reads select a window at a byte (entry) offset. A bank is
        # rewritten only once no job reads it (the loader's guards). OS: R-way row banking (row p in sub-bank p % R), so a fold's R rows
        # are read in one cycle; WS: one store of whole rows, a step's R windows from one row.
        in_subs = geo.in_subs
        # Each input sub-bank is RAM words (``_WordStore``, both banks' in one, the bank the
        # address's top bit: a beat writes one bank, a job reads one), written from the read-data
        # beats themselves (``_input_beat_writes``) and read a window a cycle at a registered
        # offset; WS: one read port per array row.
        in_ram = [_WordStore(m, f"input_{s}", geo.in_word_bytes, 2 << geo.in_word_addr_bits,
                             reads=1 if os_flow else R) for s in range(in_subs)]
        # Weight sub-banks (record q in sub-bank q % C): each record as its kept entries (an
        # INT8 value and its ``ib``-bit index), RAM words of ``w_word_entries`` entries (even and
        # odd words in two RAMs, a pair per sub-bank and bank: a pruned segment of one bank and a
        # plain one of the other may be written in the same cycle), written from the beats'
        # segments (``_weight_segment_writes``); read an entry per column (MM) or a slab row's
        # chunk of ``w_word_entries`` (PGS) a cycle at a registered offset.
        WE = geo.w_sub_entries
        w_ram = [[_WordStore(m, f"weight{b}_{s}", geo.w_word_entries, 1 << geo.w_word_addr_bits,
                             unit_bits=8 + ib, comb_reads=True) for s in range(C)]
                 for b in range(2)]
        # Output banks: one row per tile row, written accumulator by accumulator. Two copies
        # written together (synthesis makes one RAM per read port anyway): the read-add's, whose
        # reads never meet a write of their row in the same cycle (``no_rw_check``, so that
        # its read register goes into the block RAM: rtl/ecp5_pack.py), and the store's.
        out_wp, out_rmw, out_st = [], [], []
        for b in range(2):
            mem = memory.Memory(shape=out_bits, depth=geo.out_rows, init=[])
            add_mem = memory.Memory(shape=out_bits, depth=geo.out_rows, init=[], attrs=_NO_COLLISION)
            m.submodules[f"output{b}"] = mem
            m.submodules[f"output{b}_add"] = add_mem
            # Byte enables: MM writes whole accumulators, PGS along an axis 1 one group.
            wp = mem.write_port(granularity=8)
            out_wp.append((wp, add_mem.write_port(granularity=8)))
            out_rmw.append(add_mem.read_port())
            # Transparent: the store may read a row in the very cycle compute writes it.
            out_st.append(mem.read_port(transparent_for=(wp,)))

        # ---- shell: loader, receiver, store ---------------------------------------------
        loader = m.submodules.loader = shell.Loader(
            instr_layout=INSTR_LAYOUT,
            op_field="op",
            loads={isa.OP_LDA: False, isa.OP_LDB: False},
            request_layout=read_request_layout(hw),
            targets=_TARGETS,
            # A dense-only array (max_m 1) runs no Program with pre-generation.
            dispatches=(isa.OP_MM, isa.OP_PGS) if M > 1 else (isa.OP_MM,),
            # The request and its route from registers, a cycle after the issue
            # (LOAD_REQUEST_CYCLES): neither memory's ``ready`` nor the issue's conditions reach
            # the receiver's lookahead or the bank state.
            registered_request=True,
        )
        assert isa.LOAD_REQUEST_CYCLES == 1, "the loader's request register"
        # Loads in flight: at most one per bank (a bank's next load waits for its readers,
        # which wait for its data): four, one spare.
        receiver = m.submodules.receiver = shell.Receiver(
            data_bits=geo.beat_bytes * 8, targets=_TARGETS, count_bits=count_bits, depth=5, ahead=True
        )
        store = m.submodules.store = shell.Store(
            banks=2, addr_bits=isa.field_width("addr"), count_bits=count_bits, data_bits=out_bits,
            row_bytes=0, max_row_bytes=geo.out_row_bytes,
        )
        wiring.connect(m, wiring.flipped(self.instr), loader.instr)
        wiring.connect(m, wiring.flipped(self.rd_req), loader.rd_req)
        wiring.connect(m, loader.route, receiver.route)
        wiring.connect(m, wiring.flipped(self.wr), store.wr)
        m.d.comb += [self.done.eq(loader.done), self.cycles.eq(loader.cycles)]

        # ---- job queue: entry 0 is the job computing or next to compute ------------------
        job_layout = _job_layout(geo)
        queue = [Signal(job_layout, name=f"job{i}", reset_less=True) for i in range(_QUEUE_DEPTH)]
        level = Signal(range(_QUEUE_DEPTH + 1))
        job = queue[0]
        push = Signal()
        pop = Signal()  # the computing job finishes this cycle (cycle e)

        # ---- loader: which load may issue -------------------------------------------------
        cur = loader.current
        a_next = Signal()  # input bank of the next LDA (LDA count % 2)
        b_next = Signal()
        a_ready = Signal(2)  # the bank's latest load has fully arrived
        b_ready = Signal(2)
        # Jobs dispatched before the previous LDA (LDB): a load into a bank waits for them, the
        # readers of the load two before it (docs: g_A, g_B). Counted as those not yet done
        # (jobs finish in order, the oldest first: at a load's issue the jobs in the queue, less
        # one finishing then), and whether none is left registered from the next cycle's count,
        # so that a load's issue condition is a register, not a 16-bit compare of job counters.
        a_wait = Signal(range(_QUEUE_DEPTH + 1), name="a_wait")
        b_wait = Signal(range(_QUEUE_DEPTH + 1), name="b_wait")
        a_guard_ok = Signal(init=1, name="a_guard_ok")
        b_guard_ok = Signal(init=1, name="b_guard_ok")
        b_prune = Signal(2)  # per weight bank: its latest load prunes
        b_n = Array(Signal(isa.field_width("n"), name=f"weight{b}_n", reset_less=True) for b in range(2))
        b_mlog2 = Array(Signal(isa.field_width("m_log2"), name=f"weight{b}_mlog2", reset_less=True)
                        for b in range(2))
        # Record sizes of each bank's latest load: an LDA's bytes, an LDB's kept entries.
        a_width = Array(Signal(range(geo.in_rec_bytes + 1), name=f"input{b}_width", reset_less=True)
                        for b in range(2))
        b_ksteps = Array(Signal(range(geo.w_entries + 1), name=f"weight{b}_ksteps", reset_less=True)
                         for b in range(2))
        b_width = [Signal(range(geo.read_bytes + 1), name=f"weight{b}_width", reset_less=True) for b in range(2)]
        busy = Signal()  # a job is computing
        out_busy = Signal(2)  # output bank holds an open or unstored tile
        # No job queued or computing, no tile open or unstored (so the store is idle too): a
        # register, loaded with the next cycle's value (below, with the store), so that a sync
        # load's issue is a gate of registers.
        engines_idle = Signal(init=1, name="engines_idle")
        m.d.comb += [
            loader.idle.eq(engines_idle),
            loader.load.payload.request.addr.eq(cur.addr),
            loader.load.payload.request.count.eq(cur.count),
            loader.load.payload.request.rec_bytes.eq(cur.width),
        ]

        with m.Switch(cur.op):
            with m.Case(isa.OP_LDA):
                m.d.comb += [
                    loader.load.valid.eq(Mux(cur.sync, engines_idle, a_guard_ok)),
                    loader.load.payload.target.eq(_TARGET_INPUT + a_next),
                ]
            with m.Case(isa.OP_LDB):
                m.d.comb += [
                    loader.load.valid.eq(Mux(cur.sync, engines_idle, b_guard_ok)),
                    loader.load.payload.target.eq(_TARGET_WEIGHT + b_next),
                ]
        issued = loader.load.valid & loader.load.ready
        for wait, ok, op in ((a_wait, a_guard_ok, isa.OP_LDA), (b_wait, b_guard_ok, isa.OP_LDB)):
            wait_next = Signal.like(wait, name=f"{wait.name}_next")
            m.d.comb += wait_next.eq(Mux(issued & (cur.op == op), level - pop, Mux(wait != 0, wait - pop, 0)))
            m.d.sync += [wait.eq(wait_next), ok.eq(wait_next == 0)]
        with m.If(issued & (cur.op == isa.OP_LDA)):
            m.d.sync += [a_next.eq(~a_next), a_ready.bit_select(a_next, 1).eq(0),
                         a_width[a_next].eq(cur.width)]
        # Per weight bank: its latest load's rows of the held bytes' arithmetic (a table of the
        # formats, _weight_beat_rows) and its unpack format (one bit per format), registered
        # a cycle after the load issues (below): its first beat comes two cycles after the issue
        # at the earliest. Both are decoded from the instruction when the loader takes it (into
        # ``current``, a cycle before its issue at the earliest) and registered then, so that
        # the bank only copies them.
        fetched = self.instr.payload
        fetch = Signal(name="instr_fetch")
        m.d.comb += fetch.eq(self.instr.valid & self.instr.ready)
        # (registered at fetch: the load's group unit as one bit per unit, and its format; the
        # rows are a table of the unit's bit, an OR of constants, at the issue)
        new_unit = _weight_beat_unit(m, fetched.n, fetched.m_log2, fetched.prune if M > 1 else Const(0), ib)
        new_fmt = _weight_beat_format(m, fetched.n, fetched.m_log2, fetched.prune if M > 1 else Const(0), ib)
        cur_unit = Signal.like(new_unit, name="instr_unit", reset_less=True)
        cur_fmt = Signal.like(new_fmt, name="instr_format", reset_less=True)
        with m.If(fetch):
            m.d.sync += [cur_unit.eq(new_unit), cur_fmt.eq(new_fmt)]
        # A weight bank's fields are written a cycle after its LDB's issue (cycle r), from
        # registers: ``ldb_into[b]`` (an LDB issued last cycle into bank b) and the instruction's
        # fields, registered every cycle (``ldb_*_q``). The issue's condition (the loader's state
        # and the guards) then loads two flags and the bank toggles, not the clock enables of
        # every bank field and of the transfer's copies (the routed ranking of d60f76b: 12.1 ns
        # at ``w_cur_ksteps`` and ``weight#_ksteps``, through nets of 62, 138 and 125 loads). Who
        # reads a bank's fields in r + 1: the transfer's copies (below: from the registered
        # fields) and the receiver's lookahead (the record size: ``ldb_into``'s select); jobs
        # read them once the bank is ready, at least LOAD_READY_CYCLES after its last beat.
        ldb_issue = issued & (cur.op == isa.OP_LDB)
        ldb_into = [Signal(name=f"ldb_into{b}") for b in range(2)]
        m.d.sync += [ldb_into[b].eq(ldb_issue & (b_next == b)) for b in range(2)]
        iq_unit = _reg(m, cur_unit, "ldb_unit_q", reset_less=True)
        iq_fmt = _reg(m, cur_fmt, "ldb_format_q", reset_less=True)
        iq_prune = _reg(m, cur.prune, "ldb_prune_q", reset_less=True)
        iq_n = _reg(m, cur.n, "ldb_n_q", reset_less=True)
        iq_mlog = _reg(m, cur.m_log2, "ldb_m_log2_q", reset_less=True)
        iq_ksteps = _reg(m, cur.k_steps, "ldb_k_steps_q", reset_less=True)
        iq_width = _reg(m, cur.width, "ldb_width_q", reset_less=True)
        cur_rows = _weight_beat_rows_of(m, geo, iq_unit, ib)
        b_rows = [[Signal(_beat_row_layout(geo), name=f"weight{b}_row{h}") for h in range(len(cur_rows))]
                  for b in range(2)]
        b_fmts = [Signal.like(cur_fmt, name=f"weight{b}_format") for b in range(2)]
        for b in range(2):
            with m.If(ldb_into[b]):
                m.d.sync += [r.eq(c) for r, c in zip(b_rows[b], cur_rows)]
                m.d.sync += [b_fmts[b].eq(iq_fmt), b_prune[b].eq(iq_prune), b_n[b].eq(iq_n),
                             b_mlog2[b].eq(iq_mlog), b_ksteps[b].eq(iq_ksteps), b_width[b].eq(iq_width)]
        with m.If(ldb_issue):
            m.d.sync += [b_next.eq(~b_next), b_ready.bit_select(b_next, 1).eq(0)]
        # Per receiver target: bytes per record of its latest load (registers). A load's issue
        # sets its bank's in cycle r (a weight bank's: in r + 1, selected by ``ldb_into`` in r +
        # 1); its route reaches the receiver in r + 1 (the loader's request register), so the
        # lookahead for its first beat (r + 2 at the earliest) reads the register, and a
        # target's earlier load has no beat left then (a bank's next load waits for its readers,
        # which wait for its data).
        rec_bytes = [a_width[0], a_width[1], *(Mux(ldb_into[b], iq_width, b_width[b]) for b in range(2))]
        rx = self._count_beats(m, geo, receiver, rec_bytes)

        # ---- dispatch into the queue ------------------------------------------------------
        # The queue's fill also as registers of their own: one-hot (``level_oh[i]``: ``level == i``)
        # and whether there is room, so that each entry's load enable is a gate of registers (the
        # loader's state, the room, two one-hot bits, the compute engine's done terms) instead of
        # a subtraction and a compare after the dispatch handshake.
        level_oh = Signal(_QUEUE_DEPTH + 1, init=1, name="job_level_oh")
        room = Signal(init=1, name="job_room")
        m.d.comb += [loader.dispatch.ready.eq(room), push.eq(loader.dispatch.valid & room)]
        level_oh_next = Signal.like(level_oh, name="job_level_oh_next")
        m.d.comb += level_oh_next.eq(Mux(push & ~pop, level_oh << 1, Mux(pop & ~push, level_oh >> 1, level_oh)))
        m.d.sync += [level_oh.eq(level_oh_next), room.eq(~level_oh_next[_QUEUE_DEPTH])]
        new_job = Signal(job_layout)
        cur_m = Const(1, 5) << cur.m_log2
        m.d.comb += [
            new_job.acc.eq(cur.acc), new_job.store.eq(cur.store | (cur.op == isa.OP_PGS)), new_job.n.eq(cur.n),
            new_job.m_log2.eq(cur.m_log2), new_job.count.eq(cur.count), new_job.width.eq(cur.width),
            new_job.k_steps.eq(cur.k_steps), new_job.addr.eq(cur.addr),
            new_job.pgs.eq(cur.op == isa.OP_PGS), new_job.axis.eq(cur.axis),
            # The latest LDA's and LDB's banks.
            new_job.a_bank.eq(~a_next), new_job.b_bank.eq(~b_next),
            new_job.m.eq(cur_m),
            new_job.fold_last.eq(2 * R + C - 3 + PE_PIPELINE_CYCLES + (cur.k_steps if os_flow else cur.count)),
            # MM rows are Q_t accumulators; PGS records are ``width`` bytes.
            new_job.row_bytes.eq(Mux(cur.op == isa.OP_PGS, cur.width, cur.width * geo.acc_bytes)),
            new_job.count_last.eq(cur.count - 1),
            new_job.phase_last.eq(cur_m + cur.count - 1),
            new_job.kept_last.eq(Mux(cur.k_steps > cur.n, cur.k_steps - cur.n, 0)),
        ]
        # (each slice of 64 bits of an entry loaded under its own copy of ``level_oh``, so that
        # its clock enable is a LUT of its own: one enable drove every bit of an entry)
        q_bits = job_layout.size
        q_slices = [(lo, min(lo + 2 * _SLICE_BITS, q_bits)) for lo in range(0, q_bits, 2 * _SLICE_BITS)]
        q_oh = _copies(m, level_oh_next, len(q_slices), "job_level_oh", reset_less=False, init=1)
        for i in range(_QUEUE_DEPTH):
            nxt = queue[i + 1] if i + 1 < _QUEUE_DEPTH else queue[i]
            for oh, (lo, hi) in zip(q_oh, q_slices):
                # (the entry a push writes: ``level - pop``)
                with m.If(push & Mux(pop, oh[i + 1], oh[i])):
                    m.d.sync += queue[i].as_value()[lo:hi].eq(new_job.as_value()[lo:hi])
                with m.Elif(pop):
                    m.d.sync += queue[i].as_value()[lo:hi].eq(nxt.as_value()[lo:hi])
        m.d.sync += level.eq(level + push - pop)
        # The computing job's weight bank from the next cycle on (entry 0's next ``b_bank``): the
        # weight RAMs' bank select, per column, in registers of their own (one job-queue bit
        # drove every weight word's select: 2,337 LUT inputs at tiny).
        # (the head job from the next cycle on: the start condition's and the PGS sequencer's
        # registers are loaded with its fields a cycle ahead)
        head_next = Signal(job_layout, name="job_head_next")
        m.d.comb += head_next.eq(Mux(push & Mux(pop, level_oh[1], level_oh[0]), new_job,
                                     Mux(pop, queue[1], queue[0])))
        # (whether the head job from the next cycle on has a count of 1: per candidate from
        # registers, selected last)
        head_next_single = Signal(name="job_head_next_single")
        m.d.comb += head_next_single.eq(Mux(push & Mux(pop, level_oh[1], level_oh[0]), cur.count == 1,
                                            Mux(pop, queue[1].count_last == 0, queue[0].count_last == 0)))
        b_bank_next = Signal(name="job_b_bank_next")
        m.d.comb += b_bank_next.eq(Mux(push & Mux(pop, level_oh[1], level_oh[0]), new_job.b_bank,
                                       Mux(pop, queue[1].b_bank, queue[0].b_bank)))

        # ---- receiver: records into the banks -----------------------------------------------
        beat = receiver.beat
        bt = beat.payload
        # (beat.valid & the target's kind, from the read data's valid and a register: _count_beats)
        to_input = self.rd_data.valid & rx["in_take"]
        to_weight = self.rd_data.valid & rx["w_take"]
        bank_of_beat = bt.target[0]
        def sub_counter(name, subs, size, cap, enable):
            """(sub-bank, base) of the record in progress: record i of a transfer of records of
            ``size`` words goes to sub-bank i % subs at word (i // subs) * size, counted without a
            divider or a multiplier (registers, cleared by a transfer's last record: its next one
            lies at word 0 of sub-bank 0)."""
            # (one bit wide with a single sub-bank: Verilog has no zero-width wires)
            sub = Signal(range(max(subs, 2)), name=f"{name}_sub")
            base = Signal(range(cap + 1), name=f"{name}_base")
            wraps = Const(1) if subs == 1 else sub == subs - 1
            base_next = Signal(range(cap + 1), name=f"{name}_base_next")
            m.d.comb += base_next.eq(Mux(wraps, base + size, base))
            with m.If(enable):
                m.d.sync += base.eq(Mux(bt.last, 0, base_next))
                if subs > 1:
                    m.d.sync += sub.eq(Mux(wraps | bt.last, 0, sub + 1))
            return sub, base

        in_sub, in_base = sub_counter("in_wr", in_subs, a_width[bank_of_beat], geo.in_sub_bytes, to_input)
        _input_beat_writes(m, geo, rx, self.rd_data, bt, in_sub, in_base, in_ram)
        # (a bank is ready LOAD_READY_CYCLES after its last record's beat: the beat's segment
        # register, then the sub-banks' write stage; the ready bit is set that much later)
        assert isa.LOAD_READY_CYCLES == 2, "the segment register, then the RAMs' write stage"

        def ready_event(valid, bank, name):
            for d in range(1, isa.LOAD_READY_CYCLES):
                valid, bank = _reg(m, valid, f"{name}_d{d}"), _reg(m, bank, f"{name}_bank_d{d}", reset_less=True)
            return valid, bank

        a_set, a_set_bank = ready_event(to_input & bt.last, bank_of_beat, "in_ready")
        with m.If(a_set):
            m.d.sync += a_ready.bit_select(a_set_bank, 1).eq(1)

        # Weight loads are written from the beats a group at a time (``_weight_beat_groups``):
        # the complete groups of the record in progress in a beat (after the bytes held from
        # earlier beats) are unpacked (plain loads) or ranked and squeezed (pruning loads, PRUNE_CYCLES
        # cycles later) into entries, one segment at the record's base plus the entries it had
        # so far; the next record's bytes in that beat wait for the next beat, in which its last
        # byte comes at the earliest. A segment is registered, and the next cycle rotated into
        # the two words it spans and written (``_weight_segment_writes``): a record is in its
        # bank two cycles after its last byte's beat, through each RAM's write stage (pruned:
        # PRUNE_CYCLES later).
        # The weight transfer whose beats arrive: weight loads are read in issue order into banks
        # 0, 1, 0, ... (LDB j into bank j % 2), so its bank is a toggle (``w_cur_bank``, flipped
        # by a transfer's last record), and its load's fields, rows and format are copies of its
        # bank's (``w_cur_*``): loaded when a load issues into the bank current from the next
        # cycle on, or when a transfer ends, from the other bank's registers. A beat's group
        # arithmetic starts from registers of its own transfer, with no select by its bank.
        wq = Signal(name="w_cur_bank")
        wq_cur = Signal(name="w_cur_bank_copy")  # (the same toggle, for the copies' loads alone)
        w_end = Signal(name="w_transfer_end")
        m.d.comb += w_end.eq(self.rd_data.valid & rx["w_end"])  # (to_weight & bt.last)
        m.d.sync += [wq.eq(wq ^ w_end), wq_cur.eq(wq_cur ^ w_end)]
        cw_rows = [Signal(_beat_row_layout(geo), name=f"w_cur_row{h}") for h in range(len(cur_rows))]
        cw_fmt = Signal.like(cur_fmt, name="w_cur_format")
        cw_prune = Signal(name="w_cur_prune")
        cw_n = Signal.like(b_n[0], name="w_cur_n")
        cw_mlog = Signal.like(b_mlog2[0], name="w_cur_m_log2")
        cw_ksteps = Signal.like(b_ksteps[0], name="w_cur_ksteps")
        other = ~wq_cur
        cw_regs = [*cw_rows, cw_fmt, cw_prune, cw_n, cw_mlog, cw_ksteps]
        from_issue = [*(r.as_value() for r in cur_rows), iq_fmt, iq_prune, iq_n, iq_mlog, iq_ksteps]
        from_bank = [*(Mux(other, b_rows[1][h].as_value(), b_rows[0][h].as_value()) for h in range(len(cur_rows))),
                     Mux(other, b_fmts[1], b_fmts[0]), b_prune.bit_select(other, 1), b_n[other], b_mlog2[other],
                     b_ksteps[other]]
        # (an LDB issues into the current bank only with no weight transfer in flight, and into
        # the other one while one is. The copies take the registered fields a cycle after an
        # issue into the bank current then (``ldb_into``; its first beat comes a cycle later at
        # the earliest), and the other bank's at a transfer's end: its registered fields if it
        # was issued into in the cycle before (its bank fields are written at this edge), else
        # its bank fields; if it is issued into in the cycle of the end, the copies take the
        # stale fields, then its registered ones a cycle later, before its first beat)
        into_cur = Mux(wq_cur, ldb_into[1], ldb_into[0])
        into_other = Mux(wq_cur, ldb_into[0], ldb_into[1])
        with m.If(into_cur | w_end):
            m.d.sync += [r.eq(Mux(w_end & ~into_other, bv, v)) for r, v, bv in zip(cw_regs, from_issue, from_bank)]
        # (the first row's value next cycle, for the beat's copies of its row's fields)
        first_next = Signal.like(cw_rows[0], name="w_cur_row0_next")
        m.d.comb += first_next.eq(Mux(into_cur | w_end, Mux(w_end & ~into_other, from_bank[0], from_issue[0]),
                                      cw_rows[0].as_value()))
        w_sub, w_rec_base = sub_counter("w_wr", C, cw_ksteps, WE, to_weight)
        w_beat = Signal(name="w_beat")
        m.d.comb += w_beat.eq(self.rd_data.valid & (bt.target[1] == 1))
        w_pruning = cw_prune if M > 1 else Const(0)
        groups = _weight_beat_groups(m, geo, rx, bt.last, self.rd_data.payload, w_beat, ib, cw_rows, cw_fmt, first_next)
        e_done = Signal(range(WE + 1), name="w_rec_entries")  # entries of the record in progress so far
        # (a beat that does not complete its record gives its row's count: ``rx_need`` is not
        # in this loop)
        with m.If(w_beat):
            m.d.sync += e_done.eq(Mux(rx["completes_w"], 0, e_done + groups["row_count"]))
        segs = {"bank": wq, "last": w_end,
                "seg": (w_beat, w_sub, w_rec_base + e_done, groups["count"])}
        plain_lists = _split_entries(groups["entries"], geo.w_seg_entries, ib)
        if M > 1:
            rank = _RankStage(geo, ib)
            pruned = self._prune_unit(m, geo, rank, groups["seq"], w_beat & w_pruning, segs,
                                      cw_n, cw_mlog, ib)
        else:  # a dense-only array: no N:M load to prune
            pruned = None
        # One segment register per bank: a pruned beat's segments come PRUNE_CYCLES after it, when
        # a plain load into the other bank may already be arriving.
        for b in range(2):
            plain = w_beat & ~w_pruning & (wq == b)
            if pruned is None:
                _weight_segment_writes(m, geo, f"weight{b}", [(plain, segs, plain_lists)], w_ram[b], ib)
            else:
                from_prune = pruned["segs"]["seg"][0] & (pruned["segs"]["bank"] == b)
                _weight_segment_writes(m, geo, f"weight{b}",
                                       [(from_prune, pruned["segs"], pruned["lists"]), (plain, segs, plain_lists)],
                                       w_ram[b], ib)
        b_set, b_set_bank = ready_event(w_end & ~w_pruning, wq, "w_ready")
        with m.If(b_set):
            m.d.sync += b_ready.bit_select(b_set_bank, 1).eq(1)
        if pruned is not None:
            p_set, p_set_bank = ready_event(pruned["segs"]["last"] & pruned["pruning"], pruned["segs"]["bank"],
                                            "prune_ready")
            with m.If(p_set):
                m.d.sync += b_ready.bit_select(p_set_bank, 1).eq(1)

        # ---- compute: start conditions ------------------------------------------------------
        tile_bank = Signal(init=1)  # output bank of the open tile (tile t in bank t % 2)
        opens = ~job.acc | job.pgs
        new_bank = ~tile_bank
        # The head job starts when the queue holds it, no job computes, its input bank (MM) and
        # weight bank are ready and, if it opens a tile, its output bank is free:
        # ``~level_oh[0] & ~busy & (job.pgs | a_ready[job.a_bank]) & b_ready[job.b_bank] &
        # (~opens | ~out_busy[new_bank])``, as a register loaded with the next cycle's value of
        # each term (``start_next``, below), so that the sequencers' and the read stage's
        # enables start from a register.
        start = Signal(name="compute_start")
        start_mm = Signal()
        start_pgs = Signal()
        m.d.comb += [start_mm.eq(start & ~job.pgs), start_pgs.eq(start & job.pgs)]
        job_bank = Signal()  # output bank of the computing job
        out_full = Signal(2)  # output bank waits for the store
        out_addr = Array(Signal(isa.field_width("addr"), name=f"out{b}_addr", reset_less=True) for b in range(2))
        out_rows = Array(Signal(count_bits, name=f"out{b}_rows", reset_less=True) for b in range(2))
        out_row_bytes = Array(Signal(range(geo.out_row_bytes + 1), name=f"out{b}_row_bytes", reset_less=True)
                              for b in range(2))
        bank_now = Mux(opens, new_bank, tile_bank)
        # (the job's output bank, a copy per output lane for its reads and write enables)
        out_bank = _copies(m, Mux(start, bank_now, job_bank), lanes, "out_bank", reset_less=False)
        with m.If(start):
            m.d.sync += [
                busy.eq(1),
                job_bank.eq(bank_now),
                out_addr[bank_now].eq(job.addr),
                out_rows[bank_now].eq(job.count),
                out_row_bytes[bank_now].eq(job.row_bytes),
            ]
            with m.If(opens):
                m.d.sync += [tile_bank.eq(new_bank), out_busy.bit_select(new_bank, 1).eq(1)]

        # ---- compute: read stage (cycle x), fold after fold ---------------------------------
        # The job's fields are queue-entry registers from its start to its end, so the read
        # stage may use them in its first cycle.
        fold_last = job.fold_last
        rs_run = Signal()
        rs = Signal()  # the read stage works on the job this cycle
        m.d.comb += rs.eq(start_mm | rs_run)
        fc = Signal(18)  # fold cycle
        q0 = Signal(count_bits)
        qb = Signal(count_bits)
        # A fold's last cycle as a register: the fold counter counts every cycle of an MM job's
        # read stage from 0 at its start, so it is fold_last next cycle when it is fold_last - 1
        # now (folds take at least five cycles).
        fold_end = Signal(name="fold_end")
        m.d.sync += fold_end.eq(rs & ~fold_end & (fc + 1 == fold_last))
        # Whether the fold is the last of its column (row, k) blocks: compares registered every
        # cycle, read at a fold's end only (q0, p0 and k0 change at fold ends, a job's fields are
        # fixed from its start, and a fold takes at least five cycles), so that the fold's end
        # conditions are registers, not carry chains.
        last_qb = Signal(name="last_qb")
        m.d.sync += last_qb.eq(q0 + C >= job.width)
        last_blk = Signal(name="last_block")
        rs_finish = Signal()  # the job's last fold ends this cycle
        # Read offsets: the input window's (WS: the row's, and each array row's window's) first
        # byte in its sub-bank, the weight entry's in each column's; record bases are running
        # sums of the loads' record sizes.
        a_size = a_width[job.a_bank]
        b_size = b_ksteps[job.b_bank]
        in_off = Signal(range(geo.in_sub_bytes + 1))
        w_base = Signal(range(WE + 1))  # record qb in every weight sub-bank
        with m.If(fold_end):
            m.d.sync += w_base.eq(Mux(last_qb, 0, w_base + b_size))

        # What the read stage hands on (to be registered twice: data stage, select stage).
        ctl = {}
        if os_flow:
            p0 = Signal(count_bits)
            p_base = Signal(range(geo.in_sub_bytes + 1))  # row p0 in its sub-bank: (p0 / R) * width
            g = Signal(count_bits)  # the step's group
            j = Signal(5)  # the step's entry within its group
            stream = Signal()
            m.d.comb += stream.eq(rs & (fc < job.k_steps))
            m.d.comb += in_off.eq(p_base + (g << job.m_log2))
            with m.If(stream):
                with m.If(j + 1 == job.n):
                    m.d.sync += [j.eq(0), g.eq(g + 1)]
                with m.Else():
                    m.d.sync += j.eq(j + 1)
            m.d.sync += last_blk.eq(p0 + R >= job.count)
            m.d.comb += rs_finish.eq(fold_end & last_qb & last_blk)
            with m.If(fold_end):
                m.d.sync += [fc.eq(0), g.eq(0), j.eq(0)]
                with m.If(last_qb):
                    m.d.sync += [q0.eq(0), qb.eq(0), p0.eq(p0 + R), p_base.eq(p_base + a_size)]
                with m.Else():
                    m.d.sync += [q0.eq(q0 + C), qb.eq(qb + 1)]
            with m.Elif(rs):
                m.d.sync += fc.eq(fc + 1)
            step_now = fc
            ctl.update(stream=stream, first=fc == 0, last=fc + 1 == job.k_steps, p0=p0, q0=q0,
                       fold_start=rs & (fc == 0), qb=qb,
                       # the fold's rows and columns inside the tile (compared here, off the
                       # select stage's path into the array)
                       rows_in=Cat(*(p0 + r < job.count for r in range(R))),
                       cols_in=Cat(*(q0 + c < job.width for c in range(C))))
            with m.If(rs_finish):
                m.d.sync += [p0.eq(0), p_base.eq(0)]
        else:
            k0 = Signal(count_bits)
            # Groups of the steps k0 .. k0+R-1 (one per array row), counted up while the fold's
            # weights preload; base_g / base_j are those of k0.
            run_g, run_j = Signal(count_bits), Signal(5)
            base_g, base_j = Signal(count_bits), Signal(5)
            row_g = [Signal(count_bits, name=f"row{r}_group") for r in range(R)]
            row_v = [Signal(name=f"row{r}_valid") for r in range(R)]
            preload = Signal()
            stream = Signal()
            m.d.comb += [
                preload.eq(rs & (fc < R)),
                stream.eq(rs & (fc >= R) & (fc < R + job.count)),
            ]
            cur_g = Mux(fc == 0, base_g, run_g)
            cur_j = Mux(fc == 0, base_j, run_j)
            with m.If(preload):
                m.d.sync += [row_g[R - 1].eq(cur_g), row_v[R - 1].eq(k0 + fc < job.k_steps)]
                m.d.sync += [row_g[r].eq(row_g[r + 1]) for r in range(R - 1)]
                m.d.sync += [row_v[r].eq(row_v[r + 1]) for r in range(R - 1)]
                with m.If(cur_j + 1 == job.n):
                    m.d.sync += [run_j.eq(0), run_g.eq(cur_g + 1)]
                with m.Else():
                    m.d.sync += [run_j.eq(cur_j + 1), run_g.eq(cur_g)]
            wstep = Signal(count_bits + 1)  # the preloaded row's step: k0 + R - 1 - fc
            m.d.comb += wstep.eq(k0 + (R - 1) - fc)
            # Row fc - R streams: its base steps by the row width from the fold's first row.
            p_base = Signal(range(geo.in_sub_bytes + 1))
            with m.If(preload):
                m.d.sync += p_base.eq(0)
            with m.Elif(stream):
                m.d.sync += p_base.eq(p_base + a_size)
            m.d.comb += in_off.eq(p_base)
            # Row r's window: the group of its step in the streaming row (``row_g`` is stable
            # while the fold streams).
            in_offs = [Signal(range(geo.in_sub_bytes + 1), name=f"in_offset{r}_next") for r in range(R)]
            for r in range(R):
                m.d.comb += in_offs[r].eq(p_base + (row_g[r] << job.m_log2))
            m.d.sync += last_blk.eq(k0 + R >= job.k_steps)
            m.d.comb += rs_finish.eq(fold_end & last_qb & last_blk)
            with m.If(fold_end):
                m.d.sync += fc.eq(0)
                with m.If(last_qb):
                    m.d.sync += [q0.eq(0), qb.eq(0), k0.eq(k0 + R), base_g.eq(run_g), base_j.eq(run_j)]
                with m.Else():
                    m.d.sync += [q0.eq(q0 + C), qb.eq(qb + 1)]
            with m.Elif(rs):
                m.d.sync += fc.eq(fc + 1)
            with m.If(rs_finish):
                m.d.sync += [k0.eq(0), base_g.eq(0), base_j.eq(0)]
            step_now = wstep
            ctl.update(preload=preload, stream=stream, step=wstep, q0=q0, qb=qb,
                       fold_start=rs & (fc == 0), add=job.acc | (k0 != 0),
                       cols_in=Cat(*((q0 + c < job.width) & (wstep < job.k_steps) for c in range(C))))
        with m.If(start_mm):
            m.d.sync += rs_run.eq(1)
        with m.If(rs_finish):
            m.d.sync += rs_run.eq(0)

        # ---- data stage (x+1) and select stage (x+2) ------------------------------------------
        def stage(values, name):
            out = {}
            for key, v in values.items():
                v = v if not isinstance(v, bool) else Const(v)
                reg = Signal.like(v, name=f"{name}_{key}") if hasattr(v, "shape") else Signal(name=f"{name}_{key}")
                m.d.sync += reg.eq(v)
                out[key] = reg
            return out

        s1 = stage(ctl, "s1")
        s2 = stage(s1, "s2")
        a_sel = Signal()  # the job's input bank, from the data stage on
        m.d.comb += a_sel.eq(job.a_bank)
        # The offsets are registered in the read stage (the input RAMs' address); the data stage
        # registers what they select: per input window its two RAM words (the RAMs' read data;
        # the window's bytes are selected from them in the select stage), per column its weight
        # entry.
        in_off_q = Signal.like(in_off, name="in_offset", reset_less=True)
        w_off_q = Signal(20, name="w_offset", reset_less=True)
        m.d.sync += [in_off_q.eq(in_off), w_off_q.eq(w_base + step_now)]
        if not os_flow:
            in_offs_q = [_reg(m, in_offs[r], f"in_offset{r}", reset_less=True) for r in range(R)]
        if os_flow:
            in_data = _input_window_reads(m, geo, M, [in_off_q], a_sel, in_ram)
        else:
            in_data = _input_window_reads(m, geo, M, in_offs_q, a_sel, in_ram)
        # Weight entries: every weight RAM is read at the registered offset (the PGS unit's
        # offset while it reads a slab row: the two never run at once); the data stage's
        # register is the RAMs' read data, from which the select stage takes each column's
        # entry (its word by parity, then the entry).
        lww = _log2(geo.w_word_entries)
        # (registers: the pre-generation unit's offset and select, and both units' even RAM word
        # addresses, so that the RAMs' read address is a 2:1 select of registers)
        # (the RAMs read at the pre-generation unit's offset whenever a PGS job is at the queue's
        # head, idle, reading or emitting: no MM reads then; its offset is 0 until it starts. A
        # copy of the head job's ``pgs`` per weight RAM pair and one for the entry select,
        # loaded with the next head's)
        pg_sel = _copies(m, head_next.pgs, 2 * C + 1, "w_pgs_select", reset_less=False) if M > 1 else None
        pg_offset = Signal(range(WE + 1), name="pg_ram_offset")
        pg_even = Signal(max(1, len(pg_offset) - lww), name="pg_ram_even_word")
        w_rd_off = Signal(max(WE.bit_length(), lww + 1), name="w_read_offset")
        m.d.comb += w_rd_off.eq(Mux(pg_sel[2 * C], pg_offset, w_off_q) if M > 1 else w_off_q)
        w_rd_word = w_rd_off[lww:]
        # The RAMs are read asynchronously: the MM's data stage registers every word, the
        # pre-generation unit only its sub-bank's pair (selected before the register). (Each
        # RAM's address from its own copies of the MM's word registers, so that no one net
        # reaches every RAM: the read address is the widest fan-out of the top.)
        wab = geo.w_word_addr_bits
        mm_even = _copies(m, (((w_base + step_now)[lww:] + 1) >> 1)[:wab], 2 * C, "w_even_word")
        mm_offset = Signal.like(w_rd_off, name="w_offset_next")
        m.d.comb += mm_offset.eq(w_base + step_now)
        mm_odd_word = _copies(m, mm_offset[lww + 1 : lww + 1 + wab], 2 * C, "w_odd_word")
        w_async = [[w_ram[b][c].read(m, Mux(pg_sel[b * C + c], pg_even[:wab], mm_even[b * C + c]) if M > 1
                                     else mm_even[b * C + c],
                                     Mux(pg_sel[b * C + c], (pg_offset >> (lww + 1))[:wab], mm_odd_word[b * C + c])
                                     if M > 1 else mm_odd_word[b * C + c])
                    for c in range(C)] for b in range(2)]
        # (per column the word the offset lies in, of the job's bank, selected before the
        # register: the select stage's path into the array is the entry select alone)
        # (the job's bank: a copy of ``b_bank`` per column for the MM's words, and per column
        # for the pre-generation unit's)
        # (and the MM's offset's word parity: the RAMs read the MM's offset while the MM reads):
        # a copy of each per slice of ``_SLICE_BITS`` of each column's word
        ww_bits = geo.w_word_entries * (8 + ib)
        slices = [(lo, min(lo + _SLICE_BITS, ww_bits)) for lo in range(0, ww_bits, _SLICE_BITS)]
        w_bank_mm = _copies(m, b_bank_next, C * len(slices), "w_bank")
        w_odd = _copies(m, (w_base + step_now)[lww], C * len(slices), "w_odd")
        w_words = []
        for c in range(C):
            parts = []
            for i, (lo, hi) in enumerate(slices):
                bank, odd = w_bank_mm[c * len(slices) + i], w_odd[c * len(slices) + i]
                parts.append(Mux(bank, Mux(odd, w_async[1][c][1][lo:hi], w_async[1][c][0][lo:hi]),
                                 Mux(odd, w_async[0][c][1][lo:hi], w_async[0][c][0][lo:hi])))
            w_words.append(_reg(m, Cat(*parts), f"weight_word{c}", reset_less=True))
        # (the pre-generation unit's: a copy per column and word)
        w_bank = _copies(m, b_bank_next, 2 * C, "w_bank_pg")
        # (the entry within the word: a copy per column, and the pre-generation unit's)
        w_ent = _copies(m, w_rd_off[:lww] if lww else Const(0, 1), C + 1, "w_entry")
        w_ent_q = w_ent[C]
        w_value = [Signal(8, name=f"w_value{c}") for c in range(C)]
        w_index = [Signal(max(1, ib), name=f"w_index{c}") for c in range(C)]
        EW = 8 + ib
        for c in range(C):
            word = w_words[c]
            entry = word.word_select(w_ent[c], EW) if lww else word[:EW]
            m.d.comb += w_value[c].eq(entry[:8])
            if ib:
                m.d.comb += w_index[c].eq(entry[8:])

        array = m.submodules.array = SystolicArray(rows=R, cols=C, dataflow=hw.dataflow, max_m=M, acc_bits=A)
        a_in = data.View(array.a_layout, array.a.payload)
        b_in = data.View(array.b_layout, array.b.payload)
        result = data.View(array.result_layout, array.result.payload)
        # (the job's lanes below its M, registered: the job's fields are fixed from its start,
        # the select stage comes two cycles later)
        lane_on = Signal(M, name="lane_on")
        m.d.sync += lane_on.eq(Cat(*(lane < job.m for lane in range(M))))

        def masked(raw):
            """Lanes at and above the job's M read as zero."""
            return Cat(*(Mux(lane_on[lane], raw[8 * lane : 8 * lane + 8], 0) for lane in range(M)))

        def weight_entry(c, valid):
            m.d.comb += b_in.values[c].eq(Mux(valid, w_value[c], 0))
            if ib:
                m.d.comb += b_in.indices[c].eq(w_index[c])

        if os_flow:
            m.d.comb += [array.a.valid.eq(s2["stream"]), array.b.valid.eq(s2["stream"]),
                         a_in.first.eq(s2["first"]), a_in.last.eq(s2["last"])]
            for r in range(R):
                m.d.comb += a_in.windows[r].eq(Mux(s2["rows_in"][r], masked(in_data[r]), 0))
            for c in range(C):
                weight_entry(c, s2["cols_in"][c])
        else:
            m.d.comb += [array.a.valid.eq(s2["stream"]), array.b.valid.eq(s2["preload"])]
            for r in range(R):
                m.d.comb += a_in.windows[r].eq(Mux(row_v[r], masked(in_data[r]), 0))
            for c in range(C):
                weight_entry(c, s2["cols_in"][c])

        # ---- output: result rows read-added into the output bank ------------------------------
        # The fold whose results leave the array: latched at its first handshake, so the
        # previous fold's last row (leaving in that very cycle) still sees its own.
        of_qb = Signal(count_bits)
        of_add = Signal()
        with m.If(s2["fold_start"]):
            m.d.sync += of_qb.eq(s2["qb"])
            if os_flow:
                m.d.sync += of_add.eq(job.acc)
        if os_flow:
            # The fold's rows leave last first (p0 + R - 1 down to p0): the row of the result
            # leaving (``out_p``) and the row one below it as registers, loaded a fold's first
            # rows from the select stage's p0 a cycle ahead (the data stage's), so that the
            # read row below is a select of registers, no adder (it drives the block RAMs'
            # addresses).
            out_p = Signal(count_bits, name="out_row")
            out_p_m1 = Signal(count_bits, name="out_row_below", init=(1 << count_bits) - 1)
            p0_top = _reg(m, (s1["p0"] + (R - 1))[:count_bits], "out_row_top", reset_less=True)
            p0_top_m1 = _reg(m, (s1["p0"] + (R - 2))[:count_bits], "out_row_top_below", reset_less=True)
            with m.If(s2["fold_start"]):
                m.d.sync += out_p_m1.eq(p0_top_m1)
            with m.Elif(array.result.valid):
                m.d.sync += out_p_m1.eq(out_p_m1 - 1)
        else:
            orow = Signal(count_bits)
            with m.If(s2["fold_start"]):
                m.d.sync += [orow.eq(0), of_add.eq(s2["add"])]
            with m.Elif(array.result.valid):
                m.d.sync += orow.eq(orow + 1)
            out_p = orow
        res_row = Signal(count_bits)
        m.d.comb += res_row.eq(out_p)
        # The row of the next result to leave, read a cycle before it leaves: the read row
        # passes a plain register (the block RAM's output register) before the add.
        next_row = Signal(count_bits)
        if os_flow:
            m.d.comb += next_row.eq(Mux(s2["fold_start"], p0_top, Mux(array.result.valid, out_p_m1, out_p)))
            m.d.sync += out_p.eq(next_row)
        else:
            m.d.comb += next_row.eq(Mux(s2["fold_start"], 0, Mux(array.result.valid, orow + 1, orow)))
        old_q = []
        for b in range(2):
            m.d.comb += out_rmw[b].addr.eq(next_row)
            old_q.append(_reg(m, _seen(m, out_wp[b][1], out_rmw[b], f"output{b}_add"), f"output{b}_old",
                              reset_less=True))
        w_valid = Signal()
        w_row = Signal(count_bits, reset_less=True)
        w_qb = Signal(count_bits, reset_less=True)
        w_add = _copies(m, of_add, lanes, "w_add")  # (a copy per output lane)
        w_res = Signal(array.result_layout, reset_less=True)
        m.d.sync += [
            w_valid.eq(array.result.valid & (res_row < job.count)),
            w_row.eq(res_row), w_qb.eq(of_qb), w_res.eq(result),
        ]
        old = Signal(out_bits)
        m.d.comb += old.eq(Cat(*(Mux(out_bank[lane], old_q[1][lane * A : (lane + 1) * A], old_q[0][lane * A : (lane + 1) * A])
                                 for lane in range(lanes))))
        new_row = []
        lane_en = []
        for lane in range(lanes):
            prev = old[lane * A : (lane + 1) * A]
            # (the accumulate's select before the add, in the bank select's LUT: after it, it
            # was a LUT level between the carry chain and the write stage)
            new_row.append((Mux(w_add[lane], prev, 0) + w_res[lane % C])[:A])
            lane_en.append((w_valid & (w_qb == lane // C)).replicate(geo.acc_bytes))
        if M > 1:
            def read_chunk(sub):
                """The ``w_word_entries`` slab entries from the offset read a cycle earlier in weight
                sub-bank ``sub`` (the sequencer's, in the read's cycle) of the job's weight bank:
                their values (a 1:1 slab's indices are zero), from the offset's word and the next
                one. The sub-bank's two words' values are selected from the RAMs' read data in
                the read's cycle and registered (the MM registers every word)."""
                WW = geo.w_word_entries
                sb = max(1, (C - 1).bit_length())

                def values(word):
                    return Cat(*(word[k * EW : k * EW + 8] for k in range(WW)))

                pairs = []
                for c in range(1 << sb):
                    b0, b1 = w_async[0][min(c, C - 1)], w_async[1][min(c, C - 1)]
                    c_ = min(c, C - 1)
                    pairs.append(Cat(values(Mux(w_bank[2 * c_], b1[0], b0[0])),
                                     values(Mux(w_bank[2 * c_ + 1], b1[1], b0[1]))))
                pair_now = Signal(2 * WW * 8, name="pg_words_now")
                m.d.comb += pair_now.eq(Array(pairs)[sub[:sb]])
                pair = _reg(m, pair_now, "pg_words", reset_less=True)
                even, odd = pair[: WW * 8], pair[WW * 8 :]
                # (each slice of ``_SLICE_BITS`` swapped by its own copy of the word's parity,
                # and each of ``_shift_slices`` shifted by its own copy of the entry: one
                # register of each drove ~260 and ~300 loads)
                sl = [(lo, min(lo + _SLICE_BITS, 8 * WW)) for lo in range(0, 8 * WW, _SLICE_BITS)]
                pg_odd_q = _copies(m, w_rd_word[0], 2 * len(sl), "pg_odd_q")
                vals = Cat(*(Mux(o, odd[lo:hi], even[lo:hi]) for o, (lo, hi) in zip(pg_odd_q, sl)),
                           *(Mux(o, even[lo:hi], odd[lo:hi]) for o, (lo, hi) in zip(pg_odd_q[len(sl):], sl)))
                chunk = Signal(8 * WW, name="pg_chunk")
                if lww:
                    e_sl = _shift_slices(8 * WW, WW)
                    ents = [w_ent_q] + _copies(m, w_rd_off[:lww], len(e_sl) - 1, "pg_entry")
                    m.d.comb += chunk.eq(Cat(*((vals >> Cat(Const(0, 3), e))[lo:hi] for e, (lo, hi) in zip(ents, e_sl))))
                else:
                    m.d.comb += chunk.eq(vals[: 8 * WW])
                return chunk

            pg = self._pregen_unit(m, geo, rank, job, head_next, head_next_single, start_pgs, busy, read_chunk, b_size, [b_ksteps[0], b_ksteps[1]], C, ib)
            m.d.comb += [pg_offset.eq(pg["offset"]), pg_even.eq(pg["even_word"])]
            rank.build(m)
            pg_done = _reg(m, pg["done"], "pg_done_q")  # (the output RAMs' write stage)
            # (per output lane its own copy of the unit's write valid)
            pg_write = pg["write_copies"]
            row_addr = Mux(pg["write"], pg["row"], w_row)
            row_data = Cat(*(Mux(pg_write[lane], pg["data"][lane * A : (lane + 1) * A], new_row[lane])
                             for lane in range(lanes)))
            ab = geo.acc_bytes
            row_en = Cat(*(Mux(pg_write[lane], pg["en"][lane * ab : (lane + 1) * ab], lane_en[lane])
                           for lane in range(lanes)))
        else:
            pg_done = Const(0)
            row_addr, row_data, row_en = w_row, Cat(*new_row), Cat(*lane_en)
        # The output RAMs' write stage: per RAM (a bank's two copies) its row, data and byte
        # enables registered, written the cycle after (the last cycle of MM_PIPE_CYCLES and of
        # PREGEN_CYCLES), so that each block RAM's write port is fed by registers alone.
        for b in range(2):
            en = Cat(*(Mux(out_bank[lane] == b, row_en[lane * geo.acc_bytes : (lane + 1) * geo.acc_bytes], 0)
                       for lane in range(lanes)))
            for k, wp in enumerate(out_wp[b]):
                name = f"output{b}" + ("_add" if k else "")
                m.d.comb += [wp.addr.eq(_reg(m, row_addr, f"{name}_wa", reset_less=True)),
                             wp.data.eq(_reg(m, row_data, f"{name}_wd", reset_less=True)),
                             wp.en.eq(_reg(m, en, f"{name}_we"))]

        # ---- compute: the job drains the pipeline and finishes (cycle e) ----------------------
        # MM_PIPE_CYCLES after the read stage's last cycle: select (x+2) -> array -> result
        # leaves at x+3 (the fold's end) -> read-add at x+4 -> the RAMs' write stage at x+5.
        draining = Signal()
        drain_left = Signal(range(isa.MM_PIPE_CYCLES))
        with m.If(rs_finish):
            m.d.sync += [draining.eq(1), drain_left.eq(isa.MM_PIPE_CYCLES - 1)]
        with m.If(draining):
            m.d.sync += drain_left.eq(drain_left - 1)
        # (the drain's last cycle registered: drain_left is 1 the cycle before)
        assert isa.MM_PIPE_CYCLES == 5, "read offsets, read data; output read, add, the RAMs' write stage"
        drain_end = Signal(name="drain_end")
        m.d.sync += drain_end.eq(draining & (drain_left == 1))
        compute_done = Signal()
        m.d.comb += [compute_done.eq(drain_end | pg_done), pop.eq(compute_done)]
        with m.If(compute_done):
            m.d.sync += [draining.eq(0), busy.eq(0)]
            with m.If(job.store):
                m.d.sync += out_full.bit_select(job_bank, 1).eq(1)

        # ---- store: finished output banks in tile order ---------------------------------------
        st_next = Signal()
        m.d.comb += [
            store.job.valid.eq(out_full.bit_select(st_next, 1) | (compute_done & job.store & (job_bank == st_next))),
            store.job.payload.bank.eq(st_next),
            store.job.payload.addr.eq(out_addr[st_next]),
            store.job.payload.rows.eq(out_rows[st_next]),
            store.job.payload.row_bytes.eq(out_row_bytes[st_next]),
        ]
        # The stored bank's read data, per slice of ``_SLICE_BITS`` by its own copy of the store's
        # bank register (loaded when the store takes a job, as that register is).
        st_slices = [(lo, min(lo + _SLICE_BITS, out_bits)) for lo in range(0, out_bits, _SLICE_BITS)]
        st_bank = _copies(m, Mux(store.job.valid & store.job.ready, st_next, store.bank), len(st_slices),
                          "store_bank", reset_less=False)
        m.d.comb += store.read_data.eq(Cat(*(Mux(k, out_st[1].data[lo:hi], out_st[0].data[lo:hi])
                                             for k, (lo, hi) in zip(st_bank, st_slices))))
        for b in range(2):
            m.d.comb += out_st[b].addr.eq(store.read_row)
        # After compute's update of out_full, so that a bank taken in the cycle it fills stays empty.
        with m.If(store.job.valid & store.job.ready):
            m.d.sync += [out_full.bit_select(st_next, 1).eq(0), st_next.eq(~st_next)]
        with m.If(store.done):
            m.d.sync += out_busy.bit_select(store.bank, 1).eq(0)
        # engines_idle next cycle: the queue empty then (a computing job stays in it until its
        # done, ``busy`` only while it is there) and no output bank busy then (a tile opened at
        # a job's start, freed at its store's done: ``store.busy`` only while its bank is busy).
        out_busy_next = Signal(2, name="out_busy_next")
        for b in range(2):
            m.d.comb += out_busy_next[b].eq(
                (out_busy[b] | (start & opens & (new_bank == b))) & ~(store.done & (store.bank == b)))
        m.d.sync += engines_idle.eq(level_oh_next[0] & (out_busy_next == 0))

        # start next cycle, from every term's next value (each as the updates above make it):
        # the head job then (``head_next``'s select), busy (set by a start, cleared by a done,
        # which needs busy), the ready bits (cleared by an issue into the bank, set by the
        # arrival events, which win), the open tile's bank and out_busy_next.
        busy_next = start | (busy & ~compute_done)
        new_bank_next = ~Mux(start & opens, new_bank, tile_bank)
        out_free_next = ~out_busy_next.bit_select(new_bank_next, 1)

        def start_given(iss, psh):
            """``start``'s next value were the loader's load handshake ``issued`` and the queue's
            ``push`` (both the loader's state decoded through its guards) ``iss`` and ``psh``."""
            a_rn, b_rn = [], []
            for b in range(2):
                a_rn.append((a_ready[b] & ~(iss & (cur.op == isa.OP_LDA) & (a_next == b)))
                            | (a_set & (a_set_bank == b)))
                b_rn.append((b_ready[b] & ~(iss & (cur.op == isa.OP_LDB) & (b_next == b)))
                            | (b_set & (b_set_bank == b))
                            | ((p_set & (p_set_bank == b)) if pruned is not None else Const(0)))

            def can_start(j):
                # (the job ``j`` as the head job next cycle finds its banks ready then)
                return ((j.pgs | Mux(j.a_bank, a_rn[1], a_rn[0])) & Mux(j.b_bank, b_rn[1], b_rn[0])
                        & (~(~j.acc | j.pgs) | out_free_next))

            empty_next = Mux(psh & ~pop, 0, Mux(pop & ~psh, level_oh[1], level_oh[0]))
            head_new = psh & Mux(pop, level_oh[1], level_oh[0])
            return (~empty_next & ~busy_next
                    & Mux(head_new, can_start(new_job), Mux(pop, can_start(queue[1]), can_start(queue[0]))))

        # (as a function of the loader's two late handshakes, selected by them last: the condition
        # of each job that can be the head next cycle (the dispatched one, entries 0 and 1), from
        # registers and the next ready bits; the head job's select (``head_next``) and the load
        # issue fed every bank bit select of the condition: the routed critical path at ca211da,
        # dispatch's ready -> pg_done_q -> the head job's b_bank (34 loads) -> compute_start)
        one, zero = Const(1), Const(0)
        m.d.sync += start.eq(Mux(issued, Mux(push, start_given(one, one), start_given(one, zero)),
                                 Mux(push, start_given(zero, one), start_given(zero, zero))))
        return m

    def _count_beats(self, m, geo, receiver, rec_bytes):
        """Records counted in the read-data beats: the shell's receiver sees a record in the
        cycle of the beat that holds its last byte, when a record port would have delivered it,
        and numbers and routes it as before (its data is that beat; the banks take the beats
        themselves). ``got`` counts the bytes of the record in progress from earlier beats; a
        beat's bytes past its record's end are the next record's first (records wider than a
        beat lie back to back in the stream). ``rec_bytes``: per receiver target, its latest
        load's record size, registered at least a cycle before that load's route is pushed.

        What a beat needs of its record, its size (``size``, whether it fits in a beat,
        ``small``), its bytes left (``need = size - got``) and whether the beat ends it
        (``completes``, ``need <= DB``), are registers, loaded with the values of the target the
        receiver's next beat has (``receiver.ahead``): no select by the target and no compare
        lies between a beat's arrival and the enables of the bank writes and loads it gates,
        which fan out over the whole weight and input write paths."""
        DB, RB = geo.beat_bytes, geo.read_bytes
        got = Signal(range(RB + 1), name="rx_got")  # bytes of the record in progress so far
        ahead = receiver.ahead.target  # the next cycle's oldest route's target
        size = Signal(range(RB + 1), name="rx_rec_bytes")
        need = Signal(range(RB + 1), name="rx_need")
        completes = Signal(init=1, name="rx_completes")
        is_small = Signal(init=1, name="rx_small")
        m.d.comb += [receiver.rd_data.valid.eq(self.rd_data.valid & completes),
                     receiver.rd_data.payload.eq(self.rd_data.payload)]
        got_next = Signal.like(got, name="rx_got_next")
        m.d.comb += got_next.eq(got)
        with m.If(self.rd_data.valid):
            with m.If(completes):
                m.d.comb += got_next.eq(Mux(receiver.beat.payload.last | is_small, 0, DB - need))
            with m.Else():
                m.d.comb += got_next.eq(got + DB)
        m.d.sync += got.eq(got_next)
        # per target: its record size less ``got`` next cycle, and whether that is at most a beat
        # (meaningful for the oldest route's target)
        left_next = [Signal(range(RB + 1), name=f"rx_left{t}_next") for t in range(len(rec_bytes))]
        fits_next = []
        for t in range(len(rec_bytes)):
            m.d.comb += left_next[t].eq(rec_bytes[t] - got_next)
            fits_next.append(_less(m, f"rx_fits{t}_next", [left_next[t][i] for i in range(len(left_next[t]))],
                                   Const(DB + 1, (DB + 1).bit_length())))
        completes_next = Signal(name="rx_completes_next")
        m.d.comb += completes_next.eq(Array(fits_next)[ahead])
        need_next = Signal.like(need, name="rx_need_next")
        m.d.comb += need_next.eq(Array(left_next)[ahead])
        small_next = Signal(name="rx_small_next")
        m.d.comb += small_next.eq(Array([r <= DB for r in rec_bytes])[ahead])
        m.d.sync += [
            size.eq(Array(rec_bytes)[ahead]),
            is_small.eq(small_next),
            need.eq(need_next),
            completes.eq(completes_next),
        ]
        # (``need`` reached about 100 LUT inputs at tiny, the head of the routed ranking at
        # d60f76b: a copy per group of consumers, the input segments', the weight beat's entry
        # count and its held bytes'; ``need`` itself the byte count's)
        need_copies = _copies(m, need_next, 3, "rx_need")
        # Per group of consumers its own registers (so that no one net reaches them all): a copy
        # of ``completes`` for the input writes, the weight beat's entries and its held bytes;
        # and, with ``receiver.ahead``'s held route, target and last record, whether a beat now
        # is one of an input record (``in_take``), of a weight record (``w_take``), and a weight
        # transfer's last (``w_end``): a beat's enable is then the read data's valid AND one
        # register.
        copies = _copies(m, completes_next, 3, "rx_completes", reset_less=False, init=1)
        nxt = receiver.ahead
        takes = {}
        for key, cond in (("in_take", ~nxt.target[1]), ("w_take", nxt.target[1]),
                          ("w_end", nxt.target[1] & nxt.last)):
            takes[key] = Signal(name=f"rx_{key}")
            m.d.sync += takes[key].eq(nxt.held & completes_next & cond)
        # The weight beat's held bytes and row take, after a beat that completes its record, the
        # first row when nothing follows the record in the beat (the transfer's last record, or
        # a record that fits in a beat), else the row of the bytes past it: ``ends`` (the beat's
        # ``last`` OR ``small``) and the two conditions with ``completes``, registered here from
        # their next values (the two conditions: a copy for the row, one for the held bytes), so
        # that no gate lies between these registers and the ~120 selects they drive.
        ends_next = Signal(name="rx_ends_next")
        m.d.comb += ends_next.eq(nxt.last | small_next)
        ends = _copies(m, ends_next, 1, "rx_ends", reset_less=False, init=1)
        to_first = _copies(m, completes_next & ends_next, 2, "rx_to_first", reset_less=False, init=1)
        to_rev = _copies(m, completes_next & ~ends_next, 2, "rx_to_rev", reset_less=False)
        return {"got": got, "need": need, "completes": completes, "size": size, "small": is_small,
                "completes_in": copies[0], "completes_w": copies[1], "completes_h": copies[2],
                "need_in": need_copies[0], "need_w": need_copies[1], "need_h": need_copies[2],
                "ends_h": ends, "to_first": to_first, "to_rev": to_rev, **takes}

    @staticmethod
    def _pregen_unit(m, geo, rank, job, head_next, head_next_single, start, busy, read_chunk, slab_cols, bank_cols, C, ib):
        """The pre-generation unit (PGS): prunes the weight bank's dense slab N:M into compressed
        records written to the job's output bank (docs/nm_train.md, "Pre-generation unit").

        A sequencer reads a slab row ``W = w_word_entries`` entries a cycle from the job's start
        ``c``, ``ceil(cols / W)`` cycles a row (row r: weight sub-bank r % C, entries
        ``(r // C) * cols + k * W`` onwards in its k-th cycle): the offset is the weight RAMs'
        address, their words are read a cycle later and the chunk's entries selected from them
        into the rank stage's input register (its positions ``k * W ..``, the rest kept), so
        that a row is whole there two cycles after its last chunk's read, as the flat stores'
        whole-row read had it. Axis 0: a row whose last chunk is read in cycle t goes through the
        shared network's stages (:class:`_RankStage`: compared in t + 2, ranked in t + 3,
        shifted in t + 4, half squeezed in t + 5), is squeezed in t + 6, packed into its
        record (registered) in t + 7 and written to output row r in t + 8 (the output RAMs'
        write stage). Axis 1 (groups of M rows down each column): per group of rows,
        its rows are read into a transposing buffer of M rows (a chunk a cycle, as into the
        input register), then one cycle per column hands that column's M bytes from the buffer
        (selected into a register in its emit cycle) to the same rank / pack stages (into the
        rank stage's input register a cycle later), from the cycle after the buffer is whole:
        ``TRANSPOSE_WRITE_CYCLES`` = 2 a group (the buffer's write stage writes the group's
        last chunk, then the column is selected from it),
        whose group is written into output row ``column`` at the group's byte offset. The last
        write is ``PREGEN_CYCLES = 8`` cycles after the last sequencer cycle.
        """
        assert isa.PREGEN_CYCLES == 2 + _RankStage.STAGES + 2, \
            "read, data register, the network's stages, the packed record's register, the RAMs' write stage"
        assert isa.TRANSPOSE_WRITE_CYCLES == 2, "the buffer's write stage, then its column's register"
        Mmax = 1 << ib
        E = geo.w_entries
        WW = geo.w_word_entries
        chunks = -(-E // WW)  # chunk slots of the widest row
        P = geo.out_row_bytes
        count_bits = isa.field_width("count")
        rows_m = Signal(5, name="pg_m")  # M of the job
        m.d.comb += rows_m.eq(job.m)
        # A group's bytes N + ceil(N log2 M / 8) and their write enables, registered from the job's
        # fields off the write path: the job is at the queue's head from its start on, and the
        # first use is two cycles later (a group's first phase_end; its first write later still). The
        # size is a table of the N:M formats the array runs (a multiplier and carry chains
        # otherwise), the enables its thermometer code.
        sizes = {(n, mlog): n + -(-n * mlog // 8) for mlog in range(1, ib + 1) for n in range(1, 1 << mlog)}
        gb_now = Signal(range(max(sizes.values()) + 1), name="pg_group_bytes_now")
        with m.Switch(Cat(job.n, job.m_log2)):
            for (n, mlog), size in sizes.items():
                with m.Case(n | (mlog << isa.field_width("n"))):
                    m.d.comb += gb_now.eq(size)
        gb = _reg(m, gb_now, "pg_group_bytes", reset_less=True)
        # (the enables from the registered size, a cycle later: their first use is many later)
        group_en = _reg(m, Cat(*(gb > j if j < max(sizes.values()) else Const(0) for j in range(P))),
                        "pg_group_en", reset_less=True)

        # ---- sequencer ----
        run = Signal(name="pg_run")
        active = Signal(name="pg_active")
        m.d.comb += active.eq(start | run)
        sub = Signal(range(max(C, 2)), name="pg_sub")  # read row r: sub-bank r % C, at (r // C) * cols
        base = Signal(range(geo.w_sub_entries + 1), name="pg_base")
        ck = Signal(range(max(chunks, 2)), name="pg_chunk_no")  # the row's chunk read
        coff = Signal(range(E + WW + 1), name="pg_chunk_offset")  # ck * W
        row = Signal(count_bits, name="pg_row")  # axis 0: the row read = the record written
        grow = Signal(5, name="pg_group_row")  # axis 1: the row read within its group of M
        col = Signal(count_bits, name="pg_column")  # axis 1: the column emitted
        emit_ph = Signal(name="pg_emit_phase")  # axis 1: the group's columns are emitted
        # (axis 1: the emit phase's first TRANSPOSE_WRITE_CYCLES cycles, a count down: the buffer's
        # write stage writes the group's last chunk, then the buffer is whole; columns are
        # emitted from the next cycle on)
        settle = Signal(range(isa.TRANSPOSE_WRITE_CYCLES + 1), name="pg_settle")
        kept = Signal(count_bits + 1, name="pg_kept")  # axis 1: kept entries of earlier groups
        off = Signal(range(P + 1), name="pg_offset")  # axis 1: the group's byte offset in a record
        reading = Signal(name="pg_reading")
        emitting = Signal(name="pg_emitting")  # axis 1: a column goes to the rank stage
        # (the row's last chunk is read: a register, loaded with the next cycle's compare)
        row_end = Signal(init=1, name="pg_row_end")
        # (per weight bank the chunk number of a slab row's last chunk, ceil(cols / W) - 1,
        # registered from its latest load's record size: a PGS job starts at least two cycles
        # after its LDB issued)
        ck_lasts, ck_lasts_next = [], []
        for b in range(2):
            cl = Signal.like(ck, name=f"pg_chunk_last{b}")
            cl_next = Signal.like(ck, name=f"pg_chunk_last{b}_next")
            m.d.comb += cl_next.eq((bank_cols[b] - 1) >> _log2(WW))
            m.d.sync += cl.eq(cl_next)
            ck_lasts.append(cl)
            ck_lasts_next.append(cl_next)
        last = Signal(name="pg_last")  # the sequencer's last cycle
        col_end = Signal(name="pg_column_end")
        # (axis 1: whether the groups before hold the job's kept entries but the last, registered:
        # ``kept`` changes at a group's last column only, and is read at the next group's last
        # column, at least M rows' reads later; a job starts with it 0)
        kept_all = Signal(name="pg_kept_all")
        m.d.sync += kept_all.eq(kept >= job.kept_last)
        # (whether the row read, the column emitted, is the job's last: registers, loaded with
        # the next cycle's compare, from the head job's count before its start, so that no
        # count-wide compare lies between the sequencer's registers and its counters' resets)
        row_last = Signal(name="pg_row_last")
        row_next_last = Signal(name="pg_row_next_last")
        m.d.comb += row_next_last.eq(row + 1 == job.count_last)
        col_last = Signal(name="pg_column_last")
        m.d.comb += [
            reading.eq(active & ~emit_ph),
            emitting.eq(active & emit_ph & (settle == 0)),
            col_end.eq(col_last),
            last.eq(active & Mux(job.axis, emit_ph & (settle == 0) & col_end & kept_all,
                                 row_end & row_last)),
        ]
        # The read offset base + coff as a register of its own (the weight RAMs' address: no
        # adder after the sequencer's registers), and its even RAM's word address.
        rd_off = Signal(range(geo.w_sub_entries + E + WW + 1), name="pg_read_offset")
        rd_off_next = Signal.like(rd_off, name="pg_read_offset_next")
        m.d.comb += rd_off_next.eq(rd_off)
        lww = _log2(WW)
        rd_even = Signal(max(1, len(rd_off) - lww), name="pg_read_even_word")
        m.d.sync += rd_off.eq(rd_off_next)
        # (the even word of each offset the next can be (as the updates below choose it), each
        # from registers, selected by the sequencer's conditions last: the adder after the
        # select ended the conditions' cone, 11.0 ns estimated at ca211da)
        def even_of(x):
            return (x[: len(rd_off)][lww:] + 1) >> 1
        even_row = Mux(sub == C - 1, even_of(base + slab_cols), even_of(base))
        m.d.sync += rd_even.eq(Mux(last, 0, Mux(reading, Mux(row_end, even_row, even_of(rd_off + WW)),
                                                even_of(rd_off))))
        with m.If(reading):
            with m.If(row_end):
                m.d.sync += [ck.eq(0), coff.eq(0), row.eq(row + 1)]
                m.d.comb += rd_off_next.eq(Mux(sub == C - 1, base + slab_cols, base))
                with m.If(sub == C - 1):
                    m.d.sync += [sub.eq(0), base.eq(base + slab_cols)]
                with m.Else():
                    m.d.sync += sub.eq(sub + 1)
                with m.If(job.axis):
                    with m.If(grow == rows_m - 1):
                        m.d.sync += [grow.eq(0), emit_ph.eq(1), settle.eq(isa.TRANSPOSE_WRITE_CYCLES)]
                    with m.Else():
                        m.d.sync += grow.eq(grow + 1)
            with m.Else():
                m.d.sync += [ck.eq(ck + 1), coff.eq(coff + WW)]
                m.d.comb += rd_off_next.eq(rd_off + WW)
        # ``row_end`` next cycle: the chunk number then (0 after a row's last chunk or the job's
        # last cycle, the next one while reading, else kept) against the head job's bank's last
        # chunk number then (``head_next``: the job from the next cycle on), compared per bank
        # and per case from registers and selected last (the compare after the selects ended the
        # sequencer's conditions' cone, which sets the read offsets: ca211da's pg_read_even_word)
        def end_at(value):
            eqs = [value == cl for cl in ck_lasts_next]
            return Mux(head_next.b_bank, eqs[1], eqs[0])
        m.d.sync += row_end.eq(Mux(last | (reading & row_end), end_at(Const(0, len(ck))),
                                   Mux(reading, end_at((ck + 1)[: len(ck)]), end_at(ck))))
        with m.If(settle != 0):
            m.d.sync += settle.eq(settle - 1)
        with m.If(emitting):
            with m.If(col_end):
                m.d.sync += [col.eq(0), emit_ph.eq(0), kept.eq(kept + job.n), off.eq(off + gb)]
            with m.Else():
                m.d.sync += col.eq(col + 1)
        # (the next job starts with row and column 0: whether its count is 1, as the head job from
        # the next cycle on, per candidate compared from registers and selected by the queue's
        # push and pop last; the count's subtraction and the head select lay before the compare)
        with m.If(~active):
            m.d.sync += [row_last.eq(head_next_single), col_last.eq(head_next_single)]
        with m.If(reading & row_end):
            m.d.sync += row_last.eq(row_next_last)
        with m.If(emitting):
            m.d.sync += col_last.eq(Mux(col_end, job.count_last == 0, col + 1 == job.count_last))
        with m.If(start):
            m.d.sync += run.eq(1)
        with m.If(last):
            m.d.sync += [run.eq(0), sub.eq(0), base.eq(0), ck.eq(0), coff.eq(0), row.eq(0), grow.eq(0),
                         col.eq(0), emit_ph.eq(0), kept.eq(0), off.eq(0)]
            m.d.comb += rd_off_next.eq(0)

        # ---- one cycle later the chunk is read into the rank stage's input register ----
        d1_read = _reg(m, reading, "pg_read_d1")
        d1_emit = _reg(m, emitting, "pg_emit_d1")
        d1_ck = _reg(m, ck, "pg_chunk_no_d1", True)
        d1_row_end = _reg(m, reading & row_end, "pg_row_end_d1")
        d2_read = _reg(m, d1_row_end, "pg_read_d2")  # a whole row is in the input register
        d2_emit = _reg(m, d1_emit, "pg_emit_d2")
        d1_slot = _reg(m, grow[: max(1, ib)], "pg_slot_d1", True)
        d1_out_row = _reg(m, Mux(job.axis, col, row), "pg_out_row_d1", True)
        d2_out_row = _reg(m, d1_out_row, "pg_out_row_d2", True)
        d2_off = _reg(m, _reg(m, off, "pg_off_d1", True), "pg_off_d2", True)
        d2_done = _reg(m, _reg(m, last, "pg_done_d1"), "pg_done_d2")
        chunk = read_chunk(sub)
        # Axis 1: the chunk also goes into the transposing buffer, the group's rows one per
        # slot, at its positions, through a write stage: the chunk (a copy per slot) and the
        # slot's chunk-position enables (one-hot) are registered, and the buffer takes them the
        # next cycle, so each buffer byte is fed by registers alone. A group's last row's last
        # chunk, read in the cycle before the emit phase, is in the buffer at the end of the
        # emit phase's second cycle (``settle``); a column is emitted from the next on: selected
        # from the buffer by the column counter into a register (``pg_column_q``) in its emit
        # cycle, and handed on from that register a cycle later.
        buf = [[Signal(8, name=f"pg_buffer{i}_{e}", reset_less=True) for e in range(E)] for i in range(Mmax)]
        for i in range(Mmax):
            bw_data = _reg(m, chunk, f"pg_buf_data{i}", reset_less=True)
            bw_en = _reg(m, Cat(*(d1_read & job.axis & (d1_slot == i) & (d1_ck == k) for k in range(chunks))),
                         f"pg_buf_en{i}")
            for e in range(E):
                with m.If(bw_en[e // WW]):
                    m.d.sync += buf[i][e].eq(bw_data[8 * (e % WW) : 8 * (e % WW) + 8])
        column = [Signal(8, name=f"pg_column_q{i}", reset_less=True) for i in range(Mmax)]
        # (the column counter's select bits, a copy per buffer row: one register drove every
        # row's 8 x E:1 select, 335 LUT inputs at tiny; each copy is loaded with the counter's
        # next value, the updates above: a job's last cycle, then the emit's)
        col_next = Signal.like(col, name="pg_column_next")
        m.d.comb += col_next.eq(Mux(last, 0, Mux(emitting, Mux(col_end, 0, col + 1), col)))
        col_sel = _copies(m, col_next[: max(1, (E - 1).bit_length())], Mmax, "pg_column_sel", reset_less=False)
        for i in range(Mmax):
            m.d.sync += column[i].eq(Mux(i < rows_m, Array(buf[i])[col_sel[i]], 0))
        values = [Signal(8, name=f"pg_in{e}") for e in range(E)]
        loads = [Signal(name=f"pg_load{e}") for e in range(E)]
        # (copies of the emit flag and of the rank stage's load select, each for
        # ``_SLICE_BITS`` of the input bytes: one register drove ~230 loads)
        per = max(1, _SLICE_BITS // 8)
        groups = -(-E // per)
        emits = _copies(m, emitting, groups, "pg_emit_sel", reset_less=False)
        ons = _copies(m, reading | emitting, groups, "pg_on", reset_less=False)
        for e in range(E):
            m.d.comb += [
                values[e].eq(Mux(emits[e // per], column[e] if e < Mmax else 0, chunk[8 * (e % WW) : 8 * (e % WW) + 8])),
                loads[e].eq(emits[e // per] | (d1_ck == e // WW)),
            ]
        d2_valid = Signal(name="pg_d2_valid")
        m.d.comb += d2_valid.eq(Mux(job.axis, d2_emit, d2_read))
        rank.load("pgs", [ons[e // per] for e in range(E)], values, job.n, job.m_log2, loads)

        # ---- the shared stage's registers (_RankStage.STAGES of them from its input
        # register's), the last one's (each group's kept bytes at its front) packed into the
        # record and registered, then written ----
        # (the last of PREGEN_CYCLES is the output RAMs' write stage, at the top level)
        T = isa.PREGEN_CYCLES - 1
        t_valid, t_row, t_off, t_done = d2_valid, d2_out_row, d2_off, d2_done
        for t in range(3, T + 1):
            if t == T:  # (the write's valid, and a copy of it per output lane)
                write_copies = _copies(m, t_valid, geo.out_lanes, "pg_write", reset_less=False)
            t_valid = _reg(m, t_valid, f"pg_t{t}_valid")
            t_row = _reg(m, t_row, f"pg_t{t}_row", reset_less=True)
            if t < T:  # (the offset goes into the write enables' register)
                t_off = _reg(m, t_off, f"pg_t{t}_off", reset_less=True)
            t_done = _reg(m, t_done, f"pg_t{t}_done")
        tw_valid, tw_row, tw_done = t_valid, t_row, t_done
        # The record packed from the network's last registers (group g's kept entries at its
        # positions g M ..: the shared gather is not needed), one candidate per N:M format
        # (a group: N values, then N indices of log2 M bits, little-endian) and axis: along
        # axis 1 the column's one group repeated every group's bytes, so that the write
        # enables alone place it at its offset. The job's format and axis as one bit each,
        # registered (its fields are fixed from its start; its first write comes later).
        formats = [(k, ml, ax) for k, ml in _formats(Mmax) for ax in range(2)]
        nw = isa.field_width("n")
        fmt = Signal(len(formats), name="pg_format")
        m.d.comb += fmt.eq(Cat(*((Cat(job.n, job.m_log2) == (k | (ml << nw))) & (job.axis == ax)
                                 for k, ml, ax in formats)))
        # (a copy of the registered format per slice of 4 x ``_SLICE_BITS`` of the packed row
        # (a format bit drives a LUT per bit it takes): one register drove ~260 loads)
        tw_sl = [(lo, min(lo + 4 * _SLICE_BITS, 8 * P)) for lo in range(0, 8 * P, 4 * _SLICE_BITS)]
        fmts = _copies(m, fmt, len(tw_sl), "pg_format_q")
        cands = []
        for f, (k, ml, ax) in enumerate(formats):
            M_, gb_ = 1 << ml, k + -(-k * ml // 8)
            groups = 1 if ax else -(-P // gb_)
            pos = [(t // k) * M_ + t % k for t in range(groups * k)]
            packed = _pack([rank.sq_valid[q] if q < E else Const(0) for q in pos],
                           [rank.sq_value[q] if q < E else Const(0, 8) for q in pos],
                           [rank.sq_index[q] if q < E else Const(0, max(1, ib)) for q in pos], k, ml, gb_ * groups)
            if ax:
                packed = Cat(*(packed[8 * (o % gb_) : 8 * (o % gb_) + 8] for o in range(P)))
            cands.append(Cat(*(Mux(fk[f], packed[lo:hi], 0) for fk, (lo, hi) in zip(fmts, tw_sl))))
        tw_data = _reg(m, _or_all(cands, 8 * P), "pg_tw_packed", reset_less=True)
        # The write enables: axis 1 the group's bytes at its offset, registered beside the data.
        tw_en = _reg(m, Mux(job.axis, (group_en << t_off)[:P], Const((1 << P) - 1, P)), "pg_tw_en", reset_less=True)
        return {
            "active": active,
            "offset": rd_off,
            "even_word": rd_even,
            "write": tw_valid,
            # (the same, a copy per output lane)
            "write_copies": write_copies,
            "row": tw_row,
            # Axis 1 writes one group at its offset; axis 0 the whole record.
            "data": tw_data,
            "en": tw_en,
            "done": tw_done,
        }

    @staticmethod
    def _prune_unit(m, geo, rank, seq, valid, segs, n, m_log2, ib):
        """The prune unit on the weight banks' write path (LDB with ``prune``): a dense record of
        groups of M bytes becomes its kept entries, N per group, in ascending position order
        (docs/nm_train.md, "Pruning rule": largest |w|, ties to the lower position), a beat's
        complete groups at a time (``seq``: the bytes of the group in progress from earlier
        beats, then the beat's; ``segs``: where the beat's entries go, ``_weight_beat_groups``).

        Cycle t: the beat's groups are registered in the rank stage's input register, each byte
        with its |w|. t+1 .. t+4: the shared network's stages (:class:`_RankStage`: the pairwise
        compares, the ranks and kept bytes, the shifts, the first half of the squeeze), each
        registered. t+5: the rest of the squeeze moves the kept bytes into place and the
        entries go to the segment register (in the bank at t+6, as a plain beat's at t+1 would
        be): the bank is ready ``PRUNE_CYCLES = 5`` cycles after a plain load's would be.
        """
        assert isa.PRUNE_CYCLES == _RankStage.STAGES + 1, "the input register, then the network's stages"

        def delayed(value, name):
            if isinstance(value, tuple):
                return tuple(delayed(v, f"{name}{i}") for i, v in enumerate(value))
            if isinstance(value, Const):
                return value
            for d in range(1, isa.PRUNE_CYCLES + 1):
                value = _reg(m, value, f"{name}_d{d}", reset_less=True)
            return value

        pruning = valid
        for d in range(1, isa.PRUNE_CYCLES + 1):
            pruning = _reg(m, pruning, f"prune{d}_valid")
        out = {key: delayed(v, f"prune_{key}") for key, v in segs.items()}
        out["seg"] = (pruning, *out["seg"][1:])
        rank.load("prune", valid, [seq[8 * e : 8 * e + 8] for e in range(geo.prune_bytes)], n, m_log2)
        EB = geo.w_seg_entries
        values = [rank.value[o] if o < rank.E else Const(0, 8) for o in range(EB)]
        indices = [rank.index[o][:ib] if o < rank.E else Const(0, ib) for o in range(EB)] if ib else None
        return {"segs": out, "pruning": pruning, "lists": (values, indices)}


class _RankStage:
    """The rank and squeeze network that the prune unit and the pre-generation unit share: an
    input register, then ``STAGES`` register stages: each byte's |w| and the pairwise compares
    (:func:`_rank_compare`), each byte's rank in its group and whether it is kept
    (:func:`_rank_keep`), the dropped bytes before it in its group (:func:`_rank_drops`), the
    kept bytes moved to the front of their group (:func:`_squeeze_groups`), and, combinational
    after the last, the groups' kept bytes gathered side by side (:func:`_gather_groups`). A
    Program prunes in its LDBs or by PGS, never both (docs/nm_train.md, "Prune unit"), so they
    never load it in the same cycle. Values loaded in cycle t-1 (the pre-generation unit's when
    it loads, else the prune unit's) are compared in t; ``valid``, ``value`` and ``index`` are
    the squeezed entries in ``t + STAGES``. ``inputs`` are the registered bytes. Bytes past the
    loading unit's own width are never kept, as if its network were its width alone. Every
    stage carries its N:M (a load's may follow another's in the next cycle)."""

    #: register stages after the input register (the squeezed entries come after the last)
    STAGES = 4

    def __init__(self, geo, ib):
        self.widths = {"prune": geo.prune_bytes, "pgs": geo.w_entries}
        self.E = max(self.widths.values())
        self.Mmax = 1 << ib
        self.ib = ib
        self.loads = {}
        self.valid = [Signal(name=f"rank_valid{e}") for e in range(self.E)]
        self.value = [Signal(8, name=f"rank_value{e}") for e in range(self.E)]
        self.index = [Signal(max(1, ib), name=f"rank_index{e}") for e in range(self.E)]
        self.inputs = [Signal(8, name=f"rank_in{e}", reset_less=True) for e in range(self.E)]
        #: the last stage's registers: each group's kept bytes at its front (the pre-generation
        #: unit packs its records from them)
        self.sq_valid = [Signal(name=f"rank_sq_valid{e}") for e in range(self.E)]
        self.sq_value = [Signal(8, name=f"rank_sq_val{e}", reset_less=True) for e in range(self.E)]
        self.sq_index = [Signal(max(1, ib), name=f"rank_sq_idx{e}", reset_less=True) for e in range(self.E)]

    def load(self, unit, active, values, n, m_log2, enables=None):
        """``unit``'s ``values`` (with its N:M) go into the input register this cycle when
        ``active`` (a signal, or a list of copies of it, one per input position: each position's
        select from its own), to be compared in the next; with ``enables``, only the positions
        whose enable is high (the others keep their bytes)."""
        self.loads[unit] = (active, values, n, m_log2, enables)

    def build(self, m):
        E, Mmax = self.E, self.Mmax
        pg_on, pg_vals, pg_n, pg_mlog, pg_en = self.loads["pgs"]
        _, pr_vals, pr_n, pr_mlog, _ = self.loads["prune"]
        # (``pg_on``: a signal, or per input position a copy of it)
        ons = pg_on if isinstance(pg_on, list) else [pg_on] * E
        sel = Signal(name="rank_load_pgs")
        m.d.comb += sel.eq(ons[0])
        for e in range(E):
            on = ons[min(e, len(ons) - 1)]
            v = Mux(on, pg_vals[e] if e < len(pg_vals) else 0, pr_vals[e] if e < len(pr_vals) else 0)
            with m.If(~on | (pg_en[e] if pg_en is not None and e < len(pg_en) else 1)):
                m.d.sync += self.inputs[e].eq(v)
        pgs = _reg(m, sel, "rank_pgs")
        n = _reg(m, Mux(sel, pg_n, pr_n), "rank_n", reset_less=True)
        mlog = _reg(m, Mux(sel, pg_mlog, pr_mlog), "rank_m_log2", reset_less=True)
        gmask = _reg(m, _group_mask(m, "rank_load", Mux(sel, pg_mlog, pr_mlog)), "rank_gmask", reset_less=True)

        def stage(k, values, n, mlog, pgs):
            return ([_reg(m, v, f"rank_val{k}_{e}", reset_less=True) for e, v in enumerate(values)],
                    _reg(m, n, f"rank_n{k}", reset_less=True), _reg(m, mlog, f"rank_m_log2_{k}", reset_less=True),
                    _reg(m, pgs, f"rank_pgs{k}", reset_less=True))

        # 1: |w| and the pairwise compares, registered
        mags = [_magnitude(m, f"rank_in{e}", v) for e, v in enumerate(self.inputs)]
        # (who beats whom within its group, registered: the group's mask is the input's)
        beaten = {k: _reg(m, w, f"rank_beat{k[0]}_{k[1]}_q", reset_less=True)
                  for k, w in _rank_beaten(m, "rank", _rank_compare(m, "rank", mags, Mmax), E, gmask, Mmax).items()}
        vals, n, mlog, pgs = stage(1, self.inputs, n, mlog, pgs)
        gmask = _reg(m, gmask, "rank_gmask1", reset_less=True)
        # 2: ranks and kept bytes (only the loading unit's own positions), registered
        keep = _rank_keep_from(m, "rank", beaten, E, n, Mmax)
        own = [Mux(pgs, e < self.widths["pgs"], e < self.widths["prune"]) for e in range(E)]
        keep = [_reg(m, k & o, f"rank_keep{e}") for e, (k, o) in enumerate(zip(keep, own))]
        vals, n, mlog, pgs = stage(2, vals, n, mlog, pgs)
        gmask = _reg(m, gmask, "rank_gmask2", reset_less=True)
        # 3: the dropped bytes before each in its group, registered
        drops = [_reg(m, d, f"rank_drops{e}", reset_less=True)
                 for e, d in enumerate(_rank_drops(m, "rank", keep, gmask, Mmax))]
        keep = [_reg(m, k, f"rank_keep3_{e}") for e, k in enumerate(keep)]
        vals, n, mlog, pgs = stage(3, vals, n, mlog, pgs)
        gmask = _reg(m, gmask, "rank_gmask3", reset_less=True)
        # 4: each group's kept bytes at its front, registered, and the N:M as one bit per format
        v, val, idx = _squeeze_groups(m, "rank_sq", keep, vals, drops, gmask, Mmax)
        m.d.sync += [r.eq(x) for r, x in zip(self.sq_valid + self.sq_value + self.sq_index, v + val + idx)]
        v, val, idx = self.sq_valid, self.sq_value, self.sq_index
        formats = _formats(Mmax)
        nw = len(n)
        fmt = Signal(len(formats), name="rank_format")
        m.d.comb += fmt.eq(Cat(*(Cat(n, mlog) == (k | (ml << nw)) for k, ml in formats)))
        fmt = _reg(m, fmt, "rank_format_q", reset_less=True)
        # then the groups' kept bytes side by side
        pos_valid, pos_val, pos_idx = _gather_groups(m, "rank_g", v, val, idx, fmt, formats, E)
        for e in range(E):
            m.d.comb += [self.valid[e].eq(pos_valid[e]), self.value[e].eq(pos_val[e]),
                         self.index[e].eq(pos_idx[e])]


class _WordStore:
    """A sub-bank as RAM words of ``word`` units (bytes, or weight entries of ``unit_bits``),
    even and odd words in two RAMs of ``depth`` words (word w in RAM w % 2 at w // 2), so that
    any two consecutive words, where a beat's bytes for a record or a window lie, are written or
    read in one cycle. Each RAM has a write
    port with byte enables and a synchronous read port (asynchronous with ``comb_reads``); a bank is never read and written at once
    (the loader's guards), so the read port need not be transparent."""

    def __init__(self, m, name, word, depth, reads=1, unit_bits=8, logic=False, comb_reads=False):
        self.word = word
        self.ports = []
        for half in ("even", "odd"):
            # (``logic``: registers, not LUT RAM: a RAM of a few words wastes most of its cells)
            mem = memory.Memory(shape=unit_bits * word, depth=depth, init=[],
                                attrs={"ram_style": "logic"} if logic else {})
            m.submodules[f"{name}_{half}"] = mem
            wp = mem.write_port(granularity=unit_bits)
            # (``comb_reads``: asynchronous read ports, the reader registers what it needs)
            self.ports.append((wp, [mem.read_port(domain="comb" if comb_reads else "sync") for _ in range(reads)]))

    def write(self, m, writes, name, own_addr=False):
        """``writes``: ``(enable, (even addr, data, byte enables), (odd addr, data, byte enables))``
        choices, at most one enabled in a cycle. The chosen address, data and enables are
        registered (this store's own registers: ``name``) and the RAMs take them the next cycle,
        so that each RAM's write port is fed by registers (``LOAD_READY_CYCLES``). ``own_addr``:
        the address register is this store's even where another store registers the same
        value (Yosys merges such registers: the weight sub-banks of a bank share their write
        address, one register drove every LUT RAM cell of the bank, 384 at mid_ecp5)."""
        for h, (wp, _) in enumerate(self.ports):
            addr, dat, en = writes[-1][1 + h]
            en = Mux(writes[-1][0], en, 0)
            for enable, *halves in reversed(writes[:-1]):
                a, d, e = halves[h]
                addr, dat, en = Mux(enable, a, addr), Mux(enable, d, dat), Mux(enable, e, en)
            half = ("even", "odd")[h]
            wa = _copies(m, addr, 1, f"{name}_{half}_wa")[0] if own_addr else \
                _reg(m, addr, f"{name}_{half}_wa", reset_less=True)
            m.d.comb += [wp.addr.eq(wa),
                         wp.data.eq(_reg(m, dat, f"{name}_{half}_wd", reset_less=True)),
                         wp.en.eq(_reg(m, en, f"{name}_{half}_we"))]

    def read(self, m, even_addr, odd_addr, port=0):
        """The even and odd words at these addresses, a cycle later (through read port ``port``;
        in this cycle with ``comb_reads``)."""
        (_, evens), (_, odds) = self.ports
        even, odd = evens[port], odds[port]
        m.d.comb += [even.addr.eq(even_addr), odd.addr.eq(odd_addr)]
        return even.data, odd.data


def _input_beat_writes(m, geo, rx, rd_data, bt, sub, base, stores):
    """OS input loads written from the read-data beats into the sub-banks' RAM words
    (``_WordStore``). In a beat's cycle its bytes are registered as at most two segments: the
    record in progress's (record i, sub-bank ``sub``, at byte ``base + got`` of it) and, when
    that record ends inside the beat and the transfer goes on, the next record's first bytes (at
    its own sub-bank and base; with one sub-bank the two are contiguous, one segment). The next
    cycle each segment is rotated into the two words it spans (a funnel of two words) and written
    with byte enables through each RAM's write stage (``_WordStore.write``): a record is in its
    bank two cycles after its last byte's beat (``LOAD_READY_CYCLES``)."""
    DB, W = geo.beat_bytes, geo.in_word_bytes
    subs = geo.in_subs
    lw, ab = _log2(W), geo.in_word_addr_bits
    target = bt.target
    beat = Signal(name="in_beat")
    m.d.comb += beat.eq(rd_data.valid & (target[1] == 0))
    data = rd_data.payload
    got, need, completes, size = rx["got"], rx["need_in"], rx["completes_in"], rx["size"]
    goes_on = Signal(name="in_beat_goes_on")  # the beat also holds the next record's first bytes
    m.d.comb += goes_on.eq(completes & ~bt.last & ~rx["small"])
    len_a = Signal(range(DB + 1), name="in_seg_a_len")
    m.d.comb += len_a.eq(Mux(completes & ~(goes_on & (subs == 1)), need, DB))
    segments = [("a", beat, sub, base + got, data, len_a)]
    if subs > 1:
        wraps = sub == subs - 1
        segments.append(("b", beat & goes_on, Mux(wraps, 0, sub + 1), Mux(wraps, base + size, base),
                         data >> (need * 8), (DB - need)[: (DB).bit_length()]))
    writes = []
    for name, valid, seg_sub, pos, seg_data, length in segments:
        v = _reg(m, valid, f"in_seg_{name}_valid")
        bank = _reg(m, target[0], f"in_seg_{name}_bank", reset_less=True)
        ssub = _reg(m, seg_sub, f"in_seg_{name}_sub", reset_less=True)
        spos = Signal(range(geo.in_sub_bytes + 1), name=f"in_seg_{name}_pos")
        m.d.comb += spos.eq(pos)
        spos_now, spos = spos, _reg(m, spos, f"in_seg_{name}_pos_q", reset_less=True)
        sdat = _reg(m, seg_data[: 8 * DB], f"in_seg_{name}_data", reset_less=True)
        smask = _reg(m, _length_mask(length, DB), f"in_seg_{name}_mask", reset_less=True)
        byte, word = spos[:lw], spos[lw:]
        # (each slice of the rotated bytes, ``_shift_slices``, shifted by its own copy of the
        # byte offset, and each slice of ``_SLICE_BITS`` of a word placed by its own copy of the
        # word's parity: one register of them drove ~170 loads)
        rot_slices = _shift_slices(16 * W, W)
        bytes_ = _copies(m, spos_now[:lw], len(rot_slices), f"in_seg_{name}_byte") if lw else [Const(0, 1)] * len(rot_slices)
        rot = Signal(16 * W, name=f"in_seg_{name}_rot")
        ren = Signal(2 * W, name=f"in_seg_{name}_en")
        m.d.comb += [rot.eq(Cat(*((Cat(sdat, Const(0, 16 * W)) << (bk * 8))[lo:hi]
                                  for bk, (lo, hi) in zip(bytes_, rot_slices)))),
                     ren.eq((Cat(smask, Const(0, 2 * W)) << byte)[: 2 * W])]
        lo, hi = rot[: 8 * W], rot[8 * W :]
        en_lo, en_hi = ren[:W], ren[W:]
        half_slices = [(a, min(a + _SLICE_BITS, 8 * W)) for a in range(0, 8 * W, _SLICE_BITS)]
        odds = _copies(m, spos_now[lw], len(half_slices), f"in_seg_{name}_odd")
        odd = word[0]
        even_w = (Cat(((word + 1) >> 1)[:ab], bank),
                  Cat(*(Mux(o, hi[a:b], lo[a:b]) for o, (a, b) in zip(odds, half_slices))), Mux(odd, en_hi, en_lo))
        odd_w = (Cat((word >> 1)[:ab], bank),
                 Cat(*(Mux(o, lo[a:b], hi[a:b]) for o, (a, b) in zip(odds, half_slices))), Mux(odd, en_lo, en_hi))
        writes.append((v, ssub, even_w, odd_w))
    for s in range(subs):
        stores[s].write(m, [(v & (ssub == s), ev, od) for v, ssub, ev, od in writes], f"input_{s}")


def _input_window_reads(m, geo, M, offsets, a_sel, stores):
    """The ``M``-byte windows at byte ``offsets`` (registers: the RAMs' addresses, with ``a_sel``)
    of input bank ``a_sel``, a cycle later: OS, one offset, a window per sub-bank; WS, one offset
    per array row, each read through its own read port of the one sub-bank. Each window's two
    words are read (the RAMs' read data is the data stage's register) and its bytes selected
    from them."""
    lw, ab = _log2(geo.in_word_bytes), geo.in_word_addr_bits
    reads = [(stores[s], 0, offsets[0]) for s in range(geo.in_subs)] if len(offsets) == 1 \
        else [(stores[0], r, off) for r, off in enumerate(offsets)]
    if len(offsets) == 1:  # (one offset: its byte and word parity registered per sub-bank)
        byte_qs = _copies(m, offsets[0][:lw], len(reads), "in_byte")
        odd_qs = _copies(m, offsets[0][lw], len(reads), "in_odd")
    windows = []
    for i, (store, port, offset) in enumerate(reads):
        word = offset[lw:]
        if len(offsets) == 1:
            byte_q, odd_q = byte_qs[i], odd_qs[i]
        else:
            byte_q = _reg(m, offset[:lw], f"in_byte_q{i}", reset_less=True)
            odd_q = _reg(m, word[0], f"in_odd_q{i}", reset_less=True)
        even, odd = store.read(m, Cat(((word + 1) >> 1)[:ab], a_sel), Cat((word >> 1)[:ab], a_sel), port)
        sel = Signal(8 * M, name=f"in_q{i}")
        m.d.comb += sel.eq((Cat(Mux(odd_q, odd, even), Mux(odd_q, even, odd)) >> (byte_q * 8))[: 8 * M])
        windows.append(sel)
    return windows


def _beat_row_layout(geo):
    """Fields of a row of :func:`_weight_beat_rows` (one per count of held bytes h): the bytes
    held after a beat that does not complete its record (``next``, (h + DB) mod g), whether it
    takes no group (``zero``), where the held bytes then start in the beat (``shift``, the
    groups' bytes taken less h), the entries it gives (``count``), and the entries a beat that
    completes its record with ``x`` bytes gives (``ccount``, x = 0 .. DB)."""
    DB, HB, EB = geo.beat_bytes, geo.w_hold_bytes, geo.w_seg_entries
    cb = max(1, EB.bit_length())
    return data.StructLayout({
        "next": unsigned(max(1, HB.bit_length())), "zero": unsigned(1), "shift": unsigned(max(1, DB.bit_length())),
        "count": unsigned(cb), "ccount": data.ArrayLayout(unsigned(cb), DB + 1),
    })


def _weight_beat_unit(m, n, m_log2, prune, ib):
    """One bit per group unit of :func:`_weight_units` (bit 0: 1:1, and any load matching no
    other) for a weight load of ``n``:2^``m_log2`` (``prune``: dense groups of M bytes),
    combinational."""
    units = _weight_units(ib) if ib else [(1, 0, 1)]
    nw = isa.field_width("n")
    n_plain = 1 + sum((1 << ml) - 1 for ml in range(1, ib + 1))  # (1:1 and the N:M formats)
    bits = [(Cat(n[:nw], m_log2, prune) == (n_ | (ml << nw) | (int(i >= n_plain) << (nw + len(m_log2)))))
            for i, (n_, ml, _) in enumerate(units[1:], start=1)]
    one = Signal(len(units), name="w_unit_new")
    m.d.comb += one.eq(Cat(~Cat(*bits).any() if bits else Const(1), *bits))
    return one


def _weight_beat_rows_of(m, geo, unit, ib):
    """Per count of held bytes h = 0 .. ``w_hold_bytes`` the row of :func:`_beat_row_layout` of
    the group unit whose bit of ``unit`` (:func:`_weight_beat_unit`) is set: constants of the
    unit (the loads' group sizes are few) as an AND-OR of its bit, combinational. The top
    registers a bank's rows when its load issues, so that a beat's group arithmetic is a
    select of registers (:func:`_weight_beat_groups`)."""
    DB, HB, EB = geo.beat_bytes, geo.w_hold_bytes, geo.w_seg_entries
    layout = _beat_row_layout(geo)
    units = _weight_units(ib) if ib else [(1, 0, 1)]
    rows = []
    for h in range(HB + 1):
        row = Signal(layout, name=f"w_row_new{h}")
        consts = []
        for n_, _, g in units:
            t = h + DB
            used = t // g * g
            c = layout.const({"next": t - used, "zero": int(used == 0), "shift": max(0, used - h),
                                    "count": min(t // g * n_, EB),
                                    "ccount": [min((h + x) // g * n_, EB) for x in range(DB + 1)]})
            consts.append(c.as_value())
        m.d.comb += row.eq(_or_all([Mux(unit[i], c, 0) for i, c in enumerate(consts)], len(consts[0])))
        rows.append(row)
    return rows


def _weight_beat_rows(m, geo, n, m_log2, prune, ib):
    """:func:`_weight_beat_rows_of` of a weight load of ``n``:2^``m_log2`` (``prune``: dense
    groups of M bytes), combinational."""
    return _weight_beat_rows_of(m, geo, _weight_beat_unit(m, n, m_log2, prune, ib), ib)


def _weight_beat_format(m, n, m_log2, prune, ib):
    """One bit per plain format a weight load's groups are unpacked in (``_weight_units``' 1:1
    and N:M, in order), for a load of ``n``:2^``m_log2`` (``prune``: none but 1:1's, whose
    entries a pruning load does not use), combinational; the top registers a bank's when its
    load issues."""
    units = _weight_units(ib) if ib else [(1, 0, 1)]
    n_plain = 1 + sum((1 << ml) - 1 for ml in range(1, ib + 1))
    nw = isa.field_width("n")
    bits = [~prune & (Cat(n[:nw], m_log2) == (n_ | (ml << nw))) for n_, ml, _ in units[1:n_plain]]
    fmt = Signal(n_plain, name="w_format_new")
    m.d.comb += fmt.eq(Cat(~Cat(*bits).any() if bits else Const(1), *bits))
    return fmt


def _weight_beat_groups(m, geo, rx, last, data_, valid, ib, rows, fmt, first_next):
    """A weight load's beat as whole groups: the bytes not yet written from earlier beats (a
    register of ``w_hold_bytes``) followed by the beat's (``seq``), of which the complete groups
    of the record in progress (compressed groups of the load's N:M, or dense groups of M bytes
    when it prunes) are taken, and the rest held for the next beat: a group in progress, or,
    when the record ends inside the beat, the next record's first bytes (a record is whole
    groups, so the record's end is a group's). Returns ``seq``, ``entries`` (a plain load's
    groups unpacked: ``w_seg_entries`` entries of an INT8 value and an ``ib``-bit index; 1:1:
    entry k is byte k with index 0), ``count`` (the entries of the groups taken) and
    ``row_count`` (the count of a beat that does not complete its record: the row's, without
    the receiver's ``need``). ``rx``: the receiver's byte count of the record in progress
    (``_count_beats``). ``rows``: the transfer's load's :func:`_weight_beat_rows` (registers),
    ``fmt`` its :func:`_weight_beat_format` (a register), ``first_next`` the value ``rows[0]``
    takes next cycle.

    The held bytes' arithmetic is a row of a table, a register (``w_row``): the row of the
    held bytes, selected in the beat before from the load's rows by what that beat left held,
    or, in a transfer's first beat (no bytes held), the first row. So a beat's groups taken,
    entries and held bytes come from registers through selects, without an adder or a
    division in the loop from one beat's held bytes to the next's. The held bytes are zero
    past the ``h`` held (``w_hold``), so the sequence is the held bytes ORed with the beat's
    shifted past them; the unpack takes each entry bit as an AND-OR over the sequence bits
    the formats put there, each with the OR of those formats' bits (registers)."""
    DB, HB, SQ, EB = geo.beat_bytes, geo.w_hold_bytes, geo.w_seq_bytes, geo.w_seg_entries
    need, completes, size = rx["need_h"], rx["completes_h"], rx["size"]
    layout = _beat_row_layout(geo)
    h = Signal(range(HB + 1), name="w_held")
    hold = Signal(8 * HB, name="w_hold", reset_less=True)
    row_q = Signal(layout, name="w_row")  # the row of ``h`` (within a transfer)
    fresh = Signal(init=1, name="w_fresh")  # no transfer in progress: h is 0, the row the first
    row = Signal(layout, name="w_row_now")
    first = rows[0].as_value()  # the row of no bytes held
    m.d.comb += row.eq(Mux(fresh, first, row_q.as_value()))
    placed = Signal(8 * SQ, name="w_beat_placed")
    # (the shift by a copy of ``h`` per slice of the sequence: each copy drives one slice's)
    h_slices = [(lo, min(lo + _SLICE_BITS, 8 * SQ)) for lo in range(0, 8 * SQ, _SLICE_BITS)]
    h_next = Signal(range(HB + 1), name="w_held_next")
    h_copies = _copies(m, Mux(valid, h_next, h), len(h_slices), "w_held", reset_less=False)
    m.d.comb += placed.eq(Cat(*((Cat(data_, Const(0, 8 * HB)) << (hk * 8))[lo:hi]
                                for hk, (lo, hi) in zip(h_copies, h_slices))))
    seq = Signal(8 * SQ, name="w_seq")
    m.d.comb += seq.eq(Cat(hold, Const(0, 8 * (SQ - HB))) | placed)
    # A beat that completes its record takes the record's last ``need`` bytes after the held
    # ones (whole groups); if the transfer goes on past it inside the beat, the rest is held.
    # (``ends``: nothing after the record in this beat, the beat's ``last`` OR ``small``;
    # ``to_first`` / ``to_rev``: a completing beat with / without ``ends``: the receiver's
    # registers, ``_count_beats``)
    ends, to_first, to_rev = rx["ends_h"][0], rx["to_first"], rx["to_rev"]
    count = Signal(range(EB + 1), name="w_beat_entries")
    m.d.comb += count.eq(Mux(rx["completes_w"], row.ccount[rx["need_w"][: max(1, DB.bit_length())]], row.count))
    entries = Signal(EB * (8 + ib), name="w_beat_entries_unpacked")
    units = _weight_units(ib) if ib else [(1, 0, 1)]
    m.d.comb += entries.eq(_unpack_select(seq, fmt, [(n_, ml) for n_, ml, _ in units[: len(fmt)]], EB, ib))
    # The next beat's held bytes and row: the bank's row of them (by need reversed: DB - need
    # held after a completed record the transfer goes on past).
    m.d.comb += h_next.eq(Mux(completes, Mux(ends, 0, DB - need), row.next))
    load_rows = Array([x.as_value() for x in rows])
    rev = Array([(rows[DB - x] if DB - x <= HB else rows[0]).as_value() for x in range(DB + 1)])
    nx = need[: max(1, DB.bit_length())]
    row_next = Signal(layout, name="w_row_next")
    with m.If(to_first[0]):
        m.d.comb += row_next.eq(first)
    with m.Elif(to_rev[0]):
        m.d.comb += row_next.eq(rev[nx])
    with m.Else():
        m.d.comb += row_next.eq(load_rows[row.next])
    data_ext = Cat(data_, Const(0, 8 * HB))
    # (the held bytes' select takes the row's ``zero`` and ``shift`` from registers of their
    # own, loaded with the row's next fields: no select by ``fresh`` on the held bytes' path)
    zero_q = Signal(name="w_row_zero_q")
    shift_q = Signal.like(row_q.shift, name="w_row_shift_q")
    fresh_next = Signal(name="w_fresh_next")
    m.d.comb += fresh_next.eq(Mux(valid, completes & last, fresh))
    nxt_row = Mux(fresh_next, Value.cast(first_next), Mux(valid, row_next.as_value(), row_q.as_value()))
    m.d.sync += [zero_q.eq(layout(nxt_row).zero), shift_q.eq(layout(nxt_row).shift)]
    with m.If(valid):
        m.d.sync += [
            h.eq(h_next), row_q.eq(row_next), fresh.eq(completes & last),
            # (zero past the bytes held: none when the transfer ends; the beat shifted by where
            # the held bytes start in it, ``need`` or the row's, both shifts in parallel)
            hold.eq(Mux(to_first[1], 0, Mux(to_rev[1], (data_ext >> (nx * 8))[: 8 * HB],
                        Mux(zero_q, seq[: 8 * HB], (data_ext >> (shift_q * 8))[: 8 * HB])))),
        ]
    return {"seq": seq, "entries": entries, "count": count, "row_count": row.count}


def _unpack_positions(n, m_log2, entries, ib, nbits):
    """Per output bit of :func:`_unpack` of a record of ``nbits`` bits, the record bit it
    takes, or ``None`` where it is zero."""
    gb = n + -(-n * m_log2 // 8)
    out = []
    for t in range(entries):
        g, j = divmod(t, n)
        at = 8 * (g * gb + j)
        out += [at + i if at + 8 <= nbits else None for i in range(8)]
        if ib:
            bit = 8 * (g * gb + n) + j * m_log2
            ok = m_log2 and bit + m_log2 <= nbits
            out += [bit + k if ok and k < m_log2 else None for k in range(ib)]
    return out


def _unpack_select(record, fmt, formats, entries, ib):
    """:func:`_unpack` of ``record`` in the format whose bit of ``fmt`` is set (``formats``: its
    ``(n, m_log2)`` per bit), as one AND-OR per output bit over the record bits the formats
    take there, each ANDed with the OR of the format bits that take it (a function of ``fmt``
    alone, off the record's path)."""
    lists = [_unpack_positions(n_, ml, entries, ib, len(record)) for n_, ml in formats]
    out = []
    for o in range(entries * (8 + ib)):
        by = {}
        for i, pos in enumerate(lists):
            if pos[o] is not None:
                by.setdefault(pos[o], []).append(i)
        bit = Const(0, 1)
        for p, fs in by.items():
            bit = bit | (record[p] & Cat(*(fmt[i] for i in fs)).any())
        out.append(bit)
    return Cat(*out)


def _split_entries(entries, count, ib):
    """``count`` entries of an INT8 value and an ``ib``-bit index as (values, indices) lists."""
    eb = 8 + ib
    values = [entries[k * eb : k * eb + 8] for k in range(count)]
    indices = [entries[k * eb + 8 : (k + 1) * eb] for k in range(count)] if ib else None
    return values, indices


def _weight_segment_writes(m, geo, name, sources, stores, ib):
    """A weight bank's segment register and the writes of its C sub-banks (``stores``: a
    ``_WordStore`` of ``w_word_entries`` entries of an INT8 value and an ``ib``-bit index per
    sub-bank). ``sources``: ``(enable, segs, (values, indices))`` choices, the first enabled
    taken; ``segs["seg"]`` is ``(valid, sub-bank, entry position, entry count)``, the count's
    first entries of the lists. This cycle the segment is registered as its word, its rotation
    and its entry count; the next cycle its entry mask (the count's low bits set) and entries
    are rotated into the two words of ``w_word_entries`` it spans (a funnel of two words),
    which the sub-bank's even and odd RAMs take (entry enables) through their write stage
    (``_WordStore.write``: the cycle after)."""
    W, EB, WE = geo.w_word_entries, geo.w_seg_entries, geo.w_sub_entries
    lw = _log2(W)
    ab = geo.w_word_addr_bits
    words = -(-WE // W)
    ibp = 1 << (ib - 1).bit_length() if ib else 0
    valid = Signal(name=f"{name}_seg_valid")
    sub = Signal(range(max(len(stores), 2)), name=f"{name}_seg_sub", reset_less=True)
    word = Signal(range(words + 1), name=f"{name}_seg_word", reset_less=True)
    rot = Signal(max(1, lw), name=f"{name}_seg_rot", reset_less=True)
    count = Signal(range(EB + 1), name=f"{name}_seg_count", reset_less=True)
    vals = Signal(8 * EB, name=f"{name}_seg_values", reset_less=True)
    idxs = Signal(max(1, ibp * EB), name=f"{name}_seg_indices", reset_less=True)
    m.d.sync += valid.eq(0)
    positions = []
    for i, (_, segs, _) in enumerate(sources):
        positions.append(Signal(range(WE + 1), name=f"{name}_seg_pos{i}"))
        m.d.comb += positions[-1].eq(segs["seg"][2])
    # (the word and rotation the segment register takes next, for their copies below)
    word_next = Signal.like(word, name=f"{name}_seg_word_next")
    rot_next = Signal.like(rot, name=f"{name}_seg_rot_next")
    m.d.comb += [word_next.eq(word), rot_next.eq(rot)]
    for i, (enable, segs, (values, indices)) in enumerate(sources):
        seg_valid, seg_sub, _, seg_count = segs["seg"]
        posw = positions[i]
        with (m.If(enable) if i == 0 else m.Elif(enable)):
            m.d.comb += word_next.eq(posw[lw:])
            if lw:
                m.d.comb += rot_next.eq(posw[:lw])
            m.d.sync += [valid.eq(seg_valid), sub.eq(seg_sub), word.eq(posw[lw:]),
                         count.eq(seg_count), vals.eq(Cat(*values))]
            if lw:
                m.d.sync += rot.eq(posw[:lw])
            if ib:
                m.d.sync += idxs.eq(Cat(*(Cat(x, Const(0, ibp - ib)) for x in indices)))
    # The next cycle: the entry mask (the low ``count`` bits) from the registered count (not
    # in the cycle of the beat, whose count comes from the receiver's ``need`` through the
    # row's table), then rotated into two words (even, odd) and written. (Each slice of
    # ``_SLICE_BITS`` of a rotated field is shifted by its own copy of the rotation, and each
    # slice of a word placed by its own copy of the word's parity.)
    mask = Signal(EB, name=f"{name}_seg_mask")
    m.d.comb += mask.eq(Cat(*(count > j for j in range(EB))))
    halves = {}
    for field, src, bits in (("v", vals, 8), ("i", idxs, ibp), ("e", mask, 1)):
        if field == "i" and not ib:
            continue
        wide = Cat(src, Const(0, (2 * W - EB) * bits))
        # (per ``_SLICE_BITS``, not ``_shift_slices``: at 16 positions a copy per 8 bits put
        # ~240 copies on the rotation's next value, routed late themselves, session 21)
        slices = [(lo, min(lo + _SLICE_BITS, 2 * W * bits)) for lo in range(0, 2 * W * bits, _SLICE_BITS)]
        rots = _copies(m, rot_next, len(slices), f"{name}_seg_rot_{field}") if lw else [None] * len(slices)
        parts = []
        for (lo, hi), rk in zip(slices, rots):
            sh = (Cat(Const(0, _log2(bits)), rk) if bits > 1 else rk) if lw else Const(0, 1)
            parts.append((wide << sh)[lo:hi])
        rt = Signal(2 * W * bits, name=f"{name}_seg_rot_{field}")
        m.d.comb += rt.eq(Cat(*parts))
        lo_h, hi_h = rt[: W * bits], rt[W * bits :]
        halves_slices = [(lo, min(lo + _SLICE_BITS, W * bits)) for lo in range(0, W * bits, _SLICE_BITS)]
        odds = _copies(m, word_next[0], len(halves_slices), f"{name}_seg_odd_{field}")
        even_w = Cat(*(Mux(o, hi_h[lo:hi], lo_h[lo:hi]) for o, (lo, hi) in zip(odds, halves_slices)))
        odd_w = Cat(*(Mux(o, lo_h[lo:hi], hi_h[lo:hi]) for o, (lo, hi) in zip(odds, halves_slices)))
        halves[field] = (even_w, odd_w)
    addrs = (((word + 1) >> 1)[:ab], (word >> 1)[:ab])
    ports = []
    for h in range(2):
        en = Signal(W, name=f"{name}_en{h}")
        m.d.comb += en.eq(Mux(valid, halves["e"][h], 0))
        dat = Signal(W * (8 + ib), name=f"{name}_data{h}")
        m.d.comb += dat.eq(Cat(*(Cat(halves["v"][h].word_select(e, 8),
                                      halves["i"][h].word_select(e, ibp)[:ib] if ib else Const(0, 0))
                                  for e in range(W))))
        ports.append((addrs[h], dat, en))
    for s, store in enumerate(stores):
        store.write(m, [(valid & (sub == s), ports[0], ports[1])], f"{name}_{s}", own_addr=True)


def _magnitude(m, name, value):
    """|value| of an INT8 byte (0..128, unsigned)."""
    v = value.as_signed()
    a = Signal(unsigned(8), name=f"{name}_mag")
    m.d.comb += a.eq(Mux(v < 0, -v, v))
    return a


def _write_stage(m, name, base, placed, cap, enables, fields):
    """Records written at word ``base`` of flat stores of ``cap`` words, the words that
    ``placed`` (``cap`` bits) marks, into the stores whose entry of ``enables`` is high:
    ``fields`` are ``(words, stores)`` pairs (words of a power-of-two width, one store per
    enable), such as a weight record's values and indices. This cycle the words, the base, the
    mask and the enables are registered; the next cycle a shifter moves the words to the base and
    the stores take them. A stored word's only logic besides the shifter is its clock enable,
    ``enable & mask[j]`` of two registers, shared by the word's bits: the mask stays one net per
    word instead of being folded into every stored bit's function, and what makes a record (the
    receiver's unpack, the prune unit's squeeze) and the shifter are in different cycles."""
    base_q = _reg(m, base, f"{name}_base_q", reset_less=True)
    mask = _reg(m, placed, f"{name}_mask", reset_less=True)
    ens = [_reg(m, enable, f"{name}_en{i}") for i, enable in enumerate(enables)]
    for f, (words, stores) in enumerate(fields):
        wb = len(words[0])
        lw = (wb - 1).bit_length()
        assert wb == 1 << lw and len(stores) == len(ens)
        record = _reg(m, Cat(*words), f"{name}_record{f}", reset_less=True)
        data = Signal(cap * wb, name=f"{name}_data{f}")
        m.d.comb += data.eq((record << Cat(Const(0, lw), base_q))[: cap * wb])
        for en, store in zip(ens, stores):
            with m.If(en):
                for j in range(cap):
                    with m.If(mask[j]):
                        m.d.sync += store.word_select(j, wb).eq(data.word_select(j, wb))


def _length_mask(length, n):
    """``n`` bits, the low ``length`` (at most ``n``) of them ones."""
    return ((Const(1, n + 1) << length[: n.bit_length()]) - 1)[:n]


def _read_bytes(store, offset, nbytes, word):
    """``nbytes`` bytes from byte ``offset`` of ``store`` (zeros past its end): a select of
    whole words of ``word`` bytes (a power of two), then of the bytes within them, which is
    cheaper than one byte-granular shifter over the whole store."""
    lw = (word - 1).bit_length()
    padded = Cat(store, Const(0, 8 * (nbytes + word)))
    seg = padded.bit_select(Cat(Const(0, lw + 3), offset[lw:]), 8 * (nbytes + word))
    if lw == 0:
        return seg[: 8 * nbytes]
    return seg.bit_select(Cat(Const(0, 3), offset[:lw]), 8 * nbytes)


def _unpack(record, n, m_log2, entries, ib):
    """The first ``entries`` entries (INT8 value, ``ib``-bit index) of a compressed record of
    a fixed ``n``:2^``m_log2`` (per group: n values, then n indices of m_log2 bits, packed)."""
    gb = n + -(-n * m_log2 // 8)
    out = []
    for t in range(entries):
        g, j = divmod(t, n)
        at = 8 * (g * gb + j)
        value = record[at : at + 8] if at + 8 <= len(record) else Const(0, 8)
        if not ib:
            out.append(value)
            continue
        bit = 8 * (g * gb + n) + j * m_log2
        if m_log2 == 0 or bit + m_log2 > len(record):
            index = Const(0, ib)
        else:
            index = Cat(record[bit : bit + m_log2], Const(0, ib - m_log2))
        out.append(Cat(value, index))
    return Cat(*out)


def _pack(valid, values, indices, n, m_log2, nbytes):
    """``nbytes`` bytes of compressed groups of a fixed ``n``:2^``m_log2`` from the squeezed
    kept entries (entry ``g*n + j`` is the j-th kept one of group g)."""
    ib = m_log2
    gb = n + -(-n * ib // 8)
    E = len(values)
    out = []
    for o in range(nbytes):
        g, s = divmod(o, gb)
        if s < n:
            t = g * n + s
            out.append(Mux(valid[t], values[t], 0) if t < E else Const(0, 8))
            continue
        bits = []
        for k in range(8):
            bit = 8 * (s - n) + k
            j, within = divmod(bit, ib)
            t = g * n + j
            bits.append(indices[t][within] if j < n and t < E else Const(0, 1))
        out.append(Cat(*bits))
    return Cat(*out)


def _reg(m, value, name, reset_less=False):
    """``value`` registered (one cycle later)."""
    r = Signal.like(value, name=name, reset_less=reset_less) if hasattr(value, "shape") else Signal(name=name)
    m.d.sync += r.eq(value)
    return r


def _copies(m, value, count, name, reset_less=True, init=0):
    """``count`` registers each loaded with ``value`` every cycle (so each equals a register of
    ``value``: give each a share of a wide fan-out, so that no one net reaches across the die).
    Each is written as itself XOR (``value`` XOR itself), the same value: Yosys merges
    registers whose D inputs are one net, and these D inputs differ until logic optimisation
    has made each ``value`` again, after the merge."""
    if len(value) == 0:  # (nothing to copy: Verilog has no zero-width wires)
        return [Const(0, 0)] * count
    regs = []
    for k in range(count):
        r = Signal(len(value), name=f"{name}_copy{k}", reset_less=reset_less, init=init)
        m.d.sync += r.eq(r ^ (value ^ r))
        regs.append(r)
    return regs


def _rank(m, prefix, mag, n, m_log2, Mmax):
    """Which of the bytes whose magnitudes |w| are ``mag`` (groups of M = 2^m_log2 <= Mmax from
    position 0) an N:M prune keeps, and how many bytes of its group before it are dropped:
    ``(keep, drops)``, combinational (:func:`_rank_compare`, :func:`_rank_keep`,
    :func:`_rank_drops` in one cycle; :class:`_RankStage` registers between them)."""
    mask = _group_mask(m, prefix, m_log2)
    keep = _rank_keep(m, prefix, _rank_compare(m, prefix, mag, Mmax), len(mag), n, mask, Mmax)
    return keep, _rank_drops(m, prefix, keep, mask, Mmax)


def _rank_compare(m, prefix, mag, Mmax):
    """One comparator per pair of positions that may share a group (within an aligned block of
    ``Mmax``): ``{(e, f): mag[e] >= mag[f]}`` for e < f, the lower position beating the higher
    one on |w| >= and losing otherwise (so the two directions are one compare and its
    complement)."""
    E = len(mag)
    lower_wins = {}
    for e in range(E):
        base, i = e - e % Mmax, e % Mmax
        for other in range(i + 1, Mmax):
            if base + other < E:
                w = Signal(name=f"{prefix}_ge{e}_{base + other}")
                m.d.comb += w.eq(mag[e] >= mag[base + other])
                lower_wins[e, base + other] = w
    return lower_wins


def _group_mask(m, prefix, m_log2):
    """M - 1 of M = 2^m_log2 (5 bits), a table of ``m_log2`` (no carry chain)."""
    mask = Signal(5, name=f"{prefix}_group_mask")
    m.d.comb += mask.eq(Array([Const((1 << ml) - 1, 5) for ml in range(5)] + [Const(31, 5)] * 3)[m_log2[:3]])
    return mask


def _rank_beaten(m, prefix, lower_wins, E, group_mask, Mmax):
    """``{(e, b): byte b of e's group beats byte e}`` (larger |w|, or equal |w| at a lower
    position; ``lower_wins`` of :func:`_rank_compare`; ``group_mask``: M - 1,
    :func:`_group_mask`), for every b of e's aligned block of ``Mmax``."""
    beaten = {}
    for e in range(E):
        base, i = e - e % Mmax, e % Mmax
        for other in range(Mmax):
            if other == i or base + other >= E:
                continue
            same = Signal(name=f"{prefix}_same{e}_{other}")
            m.d.comb += same.eq(((Const(other ^ i, 5)) & ~group_mask) == 0)
            b = base + other
            stronger = lower_wins[b, e] if b < e else ~lower_wins[e, b]
            beaten[e, b] = same & stronger
    return beaten


def _rank_keep(m, prefix, lower_wins, E, n, group_mask, Mmax):
    """Per position whether an N:M prune keeps it: fewer than N bytes of its group beat it
    (:func:`_rank_beaten`)."""
    return _rank_keep_from(m, prefix, _rank_beaten(m, prefix, lower_wins, E, group_mask, Mmax), E, n, Mmax)


def _rank_keep_from(m, prefix, beaten_by, E, n, Mmax):
    """Per position whether an N:M prune keeps it: fewer than N of ``beaten_by`` (of
    :func:`_rank_beaten`, or registers of it) are set for it."""
    keep = []
    for e in range(E):
        beaten = [v for (x, _), v in beaten_by.items() if x == e]
        k = Signal(name=f"{prefix}_keep{e}")
        m.d.comb += k.eq(_less(m, f"{prefix}_keep{e}", _popcount(m, f"{prefix}_keep{e}", beaten), n))
        keep.append(k)
    return keep


def _popcount(m, prefix, bits):
    """The number of set bits among ``bits`` as a list of bits (least significant first), as
    explicit full and half adders: LUT logic, not the carry chains Yosys maps a sum of bits to
    (deeper for a few bits). Each adder's sum and carry is a signal of its own (``prefix``):
    as expressions, every use of an adder's output would repeat its whole cone in the Verilog,
    exponentially in the adder tree's depth (synthesis merges the copies again, but the
    Verilated model of a max_m 16 point took 20 GB to compile)."""
    columns = [list(bits)]
    w = 0
    k = 0

    def wire(value):
        nonlocal k
        sig = Signal(name=f"{prefix}_pc{k}")
        k += 1
        m.d.comb += sig.eq(value)
        return sig

    while w < len(columns):
        col = columns[w]
        while len(col) > 1:
            if len(columns) == w + 1:
                columns.append([])
            if len(col) >= 3:
                a, b, c = col.pop(0), col.pop(0), col.pop(0)
                col.append(wire(a ^ b ^ c))
                columns[w + 1].append(wire((a & b) | (a & c) | (b & c)))
            else:
                a, b = col.pop(0), col.pop(0)
                col.append(wire(a ^ b))
                columns[w + 1].append(wire(a & b))
        w += 1
    return [col[0] if col else Const(0, 1) for col in columns]


def _less(m, prefix, a_bits, b):
    """``a < b`` for ``a`` a list of bits (least significant first) and ``b`` a value, as
    explicit logic from the most significant bit down (no carry chain; the running terms are
    signals, ``prefix``, so that the Verilog does not repeat them)."""
    width = max(len(a_bits), len(b))
    lt, eq = Const(0, 1), Const(1, 1)
    for i in reversed(range(width)):
        ai = a_bits[i] if i < len(a_bits) else Const(0, 1)
        bi = b[i] if i < len(b) else Const(0, 1)
        lt_i, eq_i = Signal(name=f"{prefix}_lt{i}"), Signal(name=f"{prefix}_eq{i}")
        m.d.comb += [lt_i.eq(lt | (eq & ~ai & bi)), eq_i.eq(eq & ~(ai ^ bi))]
        lt, eq = lt_i, eq_i
    return lt


def _rank_drops(m, prefix, keep, group_mask, Mmax):
    """Per position the dropped bytes before it in its own group (of M <= Mmax, from position 0;
    ``group_mask``: M - 1): how far a kept byte moves to the front of its group
    (:func:`_squeeze_groups`)."""
    E = len(keep)
    bits = max(1, (Mmax - 1).bit_length())
    drops = []
    for e in range(E):
        base, i = e - e % Mmax, e % Mmax
        local = []
        for other in range(i):
            same = Signal(name=f"{prefix}_before{e}_{other}")
            m.d.comb += same.eq(((Const(other ^ i, 5)) & ~group_mask) == 0)
            local.append(same & ~keep[base + other])
        d = Signal(bits, name=f"{prefix}_drops{e}")
        m.d.comb += d.eq(Cat(*_popcount(m, f"{prefix}_drops{e}", local))[:bits] if local else 0)
        drops.append(d)
    return drops


def _squeeze_groups(m, prefix, keep, values, drops, group_mask, Mmax):
    """Each group's kept bytes moved to its front, in position order, each with its index in
    its group: ``(valid, value, index)`` per position, combinational. Position x of an aligned
    block of ``Mmax`` takes the kept byte i >= x of the block whose dropped bytes before it
    (``drops``, within its group: no byte leaves its group) are i - x: a one-hot AND-OR of at
    most ``Mmax`` candidates (each select a function of the byte's keep and drops bits)."""
    E = len(values)
    ib = max(1, (Mmax - 1).bit_length())
    out_v, out_val, out_idx = [], [], []
    for x in range(E):
        base, j = x - x % Mmax, x % Mmax
        cands = []
        for i in range(j, Mmax):
            e = base + i
            if e >= E:
                break
            sel = Signal(name=f"{prefix}_sel{x}_{i}")
            m.d.comb += sel.eq(keep[e] & (drops[e] == i - j))
            cands.append((sel, e, i))
        v = Signal(name=f"{prefix}_v{x}")
        val = Signal(8, name=f"{prefix}_val{x}")
        ix = Signal(ib, name=f"{prefix}_idx{x}")
        m.d.comb += [
            v.eq(Cat(*(c for c, _, _ in cands)).any() if cands else 0),
            val.eq(_or_all([Mux(c, values[e], 0) for c, e, _ in cands], 8)),
            ix.eq(_or_all([Mux(c, (Const(i, 5) & group_mask)[:ib], 0) for c, _, i in cands], ib)),
        ]
        out_v.append(v)
        out_val.append(val)
        out_idx.append(ix)
    return out_v, out_val, out_idx


def _formats(Mmax):
    """``(N, m_log2)`` of every N:M an N:M prune may have (1 <= N < M <= Mmax)."""
    return [(k, ml) for ml in range(1, (Mmax - 1).bit_length() + 1) for k in range(1, 1 << ml)]


def _gather_groups(m, prefix, valid, values, idx, fmt, formats, outputs):
    """The first N positions of every group of M (:func:`_squeeze_groups`' output) side by side:
    output o takes position ``(o // N) * M + o % N`` of the format whose bit of ``fmt`` is set
    (``formats``: its ``(N, m_log2)`` per bit), an AND-OR of one candidate per format:
    ``(valid, value, index)`` for ``outputs`` positions, combinational."""
    E = len(values)
    out_v, out_val, out_idx = [], [], []
    for o in range(outputs):
        srcs = []
        for f, (k, ml) in enumerate(formats):
            src = (o // k) * (1 << ml) + o % k
            if src < E:
                srcs.append((fmt[f], src))
        v = Signal(name=f"{prefix}_v{o}")
        val = Signal(8, name=f"{prefix}_val{o}")
        ix = Signal(len(idx[0]), name=f"{prefix}_idx{o}")
        m.d.comb += [
            v.eq(Cat(*(f & valid[src] for f, src in srcs)).any() if srcs else 0),
            val.eq(_or_all([Mux(f, values[src], 0) for f, src in srcs], 8)),
            ix.eq(_or_all([Mux(f, idx[src], 0) for f, src in srcs], len(idx[0]))),
        ]
        out_v.append(v)
        out_val.append(val)
        out_idx.append(ix)
    return out_v, out_val, out_idx


def _or_all(terms, width):
    out = Const(0, width)
    for t in terms:
        out = out | t
    return out
