"""Amaranth RTL of the ``dsp_chain`` engine (docs/dsp_chain.md is the contract).

Two public components:

- :class:`SparseDspChain`: one chain of L DSP slots: per-slot, per-lane M:1 sparse mux, skew
  delay lines, DSP48E2 slots with registered inputs, product and output, cascade segments of at
  most 8 slots through PCIN→PCOUT with two lanes kept packed, and a wrapping accumulator.
- :class:`DspChainAccelerator`: the whole engine of one :class:`~sparsim.dataflow.dsp_chain.DspChainHardware`
  (P chains, activation buffer, two weight banks, two output banks, the compute engine and the
  shared loader, receiver and store of :mod:`sparsim.rtl.shell`), with the shell's ``lib.stream`` ports
  to the instruction source and memory.

The pipeline depth is not a local constant: it comes from
:func:`sparsim.dataflow.dsp_chain_isa.pipeline_cycles`, the number the simulator uses too.
"""

from __future__ import annotations

from amaranth.hdl import Array, C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from sparsim.dataflow import dsp_chain_isa as isa
from sparsim.dataflow.dsp_chain import DspChainHardware

from . import shell
from .shell import rejected_is_not_unused as _rejected_is_not_unused

__all__ = [
    "INSTR_LAYOUT",
    "SparseDspChain",
    "DspChainAccelerator",
    "top_signature",
    "read_request_layout",
    "write_layout",
    "read_data_bytes",
]

#: Activations and weights enter the multipliers as signed 8-bit values (INT4 sign-extended).
OPERAND_BITS = 8
#: Bit offset of the second lane in the packed DSP48 multiplier operand (FlightLLM packing):
#: the packed operand ``a1·2^18 + a0`` needs 27 signed bits, the width of the DSP48E2's A port.
PACK_SHIFT = 18
#: Most negative product of two signed bytes (-128 · 127). A packed cascade segment of S slots
#: starts from BIAS = S·16256, so its low field holds ``S0 + BIAS``, which lies in
#: ``[0, S·32640]`` (products range over [-16256, 16384]) and so fits the 18 bits below the
#: high lane without a borrow exactly when ``S <= 8``: the bound behind ``CASCADE_SLOTS``.
PACK_LOW_MIN = 128 * 127


def _check_pow2(name: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum or value & (value - 1):
        raise ValueError(f"{name} must be a power of two >= {minimum}, not {value}")
    return value


def _log2(value: int) -> int:
    return value.bit_length() - 1


class SparseDspChain(wiring.Component):
    """One sparse DSP chain: ``chain_len`` slots that each multiply one kept weight by ``lanes``
    activations picked from a group of ``mux_m`` by the weight's index, summed along pipelined
    DSP48E2 cascades and accumulated across the steps of a token group.

    Maths: for the step presented with ``valid``, slot ``j`` and lane ``l`` compute
    ``p[j][l] = weights[j] * acts[j][l][idx[j]]`` with ``idx[j] = indices[j]``, or in dense mode
    ``idx[j] = (k_base + j) % mux_m`` (the implicit index ``k % M`` of kept weight
    ``k = s*L + j``). A token group's result is ``sum over its steps and slots of p``, wrapped to
    ``acc_bits`` two's complement.

    Structure (what ``synth_xilinx`` maps, checked on its netlist by tests/test_synth.py): the
    slots form ``L / S`` cascade segments of ``S = min(L, CASCADE_SLOTS)`` slots. Slot ``j'`` of
    a segment is one DSP48E2: its operands wait ``j'`` cycles in a reset-less delay line (SRLs,
    the last one or two stages become AREG/BREG), the product is registered (MREG) and added to
    the previous slot's registered sum arriving on PCIN (PREG). With two lanes both
    activations share the 27-bit A operand, ``a1·2^18 + a0`` (FlightLLM's packing), and stay
    packed through the whole segment: the cascade carries ``S1·2^18 + S0 + BIAS`` and the lanes
    are split only at the segment's end (see :data:`CASCADE_SLOTS` for why S is at most 8).

    Timing: the operands are presented in cycle ``x``; ``x`` registers the M:1 mux outputs,
    slot ``j'`` registers its product at the end of ``x + j' + 1`` and its partial sum at the
    end of ``x + j' + 2``; the segment sums are split into lanes and added up at the end of
    ``x + S + 2``; in cycle ``x + LATENCY`` (``LATENCY = S + 3``) the accumulator adds them and,
    if the step was the last of its token group, ``result`` holds the group's sum with
    ``result_valid`` high. Steps may be presented back to back, one per cycle.

    Parameters (keyword-only)
    -------------------------
    chain_len : int
        Slots L, a power of two >= 2.
    mux_m : int
        Group size M = mux inputs per slot and lane, a power of two from 2 to 16.
    lanes : int
        Tokens sharing each weight, 1 or 2.
    acc_bits : int
        Accumulator width, 16 to 48.

    Members
    -------
    valid : In(1)
        A step's operands are presented this cycle.
    first : In(1)
        The step is the first of its token group (the accumulator restarts from zero).
    last : In(1)
        The step is the last of its token group (its sum appears on ``result``).
    dense : In(1)
        Use implicit indices ``(k_base + j) % M`` instead of ``indices``.
    k_base : In(log2 M)
        ``(s * L) % M`` of the step, for dense mode.
    weights : In(ArrayLayout(signed(8), L))
        Kept weight of each slot (INT4 weights sign-extended).
    indices : In(ArrayLayout(unsigned(log2 M), L))
        Position of each slot's weight inside its group (sparse mode).
    acts : In(ArrayLayout(ArrayLayout(ArrayLayout(signed(8), M), lanes), L))
        For each slot, the activation row of its group: M activations per lane.
    result : Out(ArrayLayout(signed(acc_bits), lanes))
        Accumulated sum per lane; meaningful when ``result_valid``.
    result_valid : Out(1)
        ``result`` is the final sum of a token group (combinational, cycle ``x + LATENCY``).
    """

    def __init__(self, *, chain_len: int, mux_m: int, lanes: int, acc_bits: int):
        with _rejected_is_not_unused(self):
            self._chain_len = _check_pow2("chain_len", chain_len, minimum=2)
            self._mux_m = _check_pow2("mux_m", mux_m, minimum=2)
            if self._mux_m > 16:
                raise ValueError(f"mux_m must be a power of two from 2 to 16, not {mux_m}")
            if lanes not in (1, 2) or isinstance(lanes, bool):
                raise ValueError(f"lanes must be 1 or 2, not {lanes!r}")
            self._lanes = lanes
            if isinstance(acc_bits, bool) or not isinstance(acc_bits, int) or not 16 <= acc_bits <= 48:
                raise ValueError(f"acc_bits must be an integer from 16 to 48, not {acc_bits!r}")
            self._acc_bits = acc_bits
        ibits = _log2(mux_m)
        act_row = data.ArrayLayout(data.ArrayLayout(signed(OPERAND_BITS), mux_m), lanes)
        super().__init__(
            {
                "valid": In(1),
                "first": In(1),
                "last": In(1),
                "dense": In(1),
                "k_base": In(ibits),
                "weights": In(data.ArrayLayout(signed(OPERAND_BITS), chain_len)),
                "indices": In(data.ArrayLayout(unsigned(ibits), chain_len)),
                "acts": In(data.ArrayLayout(act_row, chain_len)),
                "result": Out(data.ArrayLayout(signed(acc_bits), lanes)),
                "result_valid": Out(1),
            }
        )

    @property
    def segment_slots(self) -> int:
        """Slots S of one cascade segment: ``min(chain_len, CASCADE_SLOTS)``."""
        return min(self._chain_len, isa.CASCADE_SLOTS)

    @property
    def latency(self) -> int:
        """Cycles from presenting a step to its accumulated ``result``: ``S + 3``."""
        return self.segment_slots + 3

    def elaborate(self, platform):
        m = Module()
        L, M, lanes, acc_bits = self._chain_len, self._mux_m, self._lanes, self._acc_bits
        S = self.segment_slots
        ibits = _log2(M)
        # Exact bound of one segment's per-lane sum of S products of two signed bytes.
        sum_bits = 2 * OPERAND_BITS + _log2(S) + 1
        if lanes == 1:
            operand_shape = signed(OPERAND_BITS)
            cascade_shape = signed(sum_bits)
            bias = 0
        else:
            operand_shape = signed(PACK_SHIFT + OPERAND_BITS + 1)
            cascade_shape = signed(PACK_SHIFT + sum_bits + 1)
            bias = S * PACK_LOW_MIN

        # Cycle x: each slot's M:1 mux (and the lane packing), into the delay line's first
        # register. Datapath registers have no reset: it would block DSP and SRL packing.
        operands = []  # [j] (weight, activation operand), registered at the end of x
        for j in range(L):
            implicit = Signal(ibits, name=f"implicit_idx{j}")
            m.d.comb += implicit.eq(self.k_base + j)
            idx = Signal(ibits, name=f"idx{j}")
            m.d.comb += idx.eq(Mux(self.dense, implicit, self.indices[j]))
            acts = []
            for lane in range(lanes):
                act = Signal(signed(OPERAND_BITS), name=f"act{j}_{lane}")
                m.d.comb += act.eq(self.acts[j][lane][idx])
                acts.append(act)
            w_reg = Signal(signed(OPERAND_BITS), name=f"w{j}_d0", reset_less=True)
            a_reg = Signal(operand_shape, name=f"a{j}_d0", reset_less=True)
            m.d.sync += w_reg.eq(self.weights[j])
            if lanes == 1:
                m.d.sync += a_reg.eq(acts[0])
            else:
                # Both lanes share the weight, so one 8 × 27-bit multiply (the DSP48E2's A
                # port) gives both products: w * (a1 * 2^18 + a0) = (w*a1) * 2^18 + w*a0.
                m.d.sync += a_reg.eq((acts[1] << PACK_SHIFT) + acts[0])
            operands.append((w_reg, a_reg))

        # Cycles x+1 ..: slot j' of a segment waits j' more cycles, then multiplies (MREG) and
        # adds the previous slot's registered sum (PCIN -> PREG).
        seg_sums = []
        for g in range(L // S):
            partial = C(bias, cascade_shape)
            for jj in range(S):
                w, a = operands[g * S + jj]
                for d in range(jj):
                    w_next = Signal.like(w, name=f"w{g * S + jj}_d{d + 1}", reset_less=True)
                    a_next = Signal.like(a, name=f"a{g * S + jj}_d{d + 1}", reset_less=True)
                    m.d.sync += [w_next.eq(w), a_next.eq(a)]
                    w, a = w_next, a_next
                product = Signal(signed(len(w) + len(a)), name=f"m{g * S + jj}", reset_less=True)
                m.d.sync += product.eq(w * a)
                pc = Signal(cascade_shape, name=f"p{g * S + jj}", reset_less=True)
                m.d.sync += pc.eq(partial + product)
                partial = pc
            seg_sums.append(partial)

        # End of x+S+2: split the lanes of each segment and add the segments.
        lane_sums = []
        for lane in range(lanes):
            parts = []
            for g, p in enumerate(seg_sums):
                if lanes == 1:
                    parts.append(p)
                elif lane == 0:
                    # BIAS keeps the low field non-negative, so no borrow reaches the high one.
                    low = Signal(signed(sum_bits + 1), name=f"seg{g}_low")
                    m.d.comb += low.eq(p[:PACK_SHIFT] - bias)
                    parts.append(low)
                else:
                    parts.append(p[PACK_SHIFT:].as_signed())
            total = Signal(signed(sum_bits + _log2(L // S) + 1), name=f"lane{lane}_sum", reset_less=True)
            m.d.sync += total.eq(sum(parts[1:], parts[0]))
            lane_sums.append(total)

        # Control travels alongside the data to the accumulate cycle x + LATENCY; it keeps its
        # reset so that no phantom step survives a reset.
        ctrl = Cat(self.valid, self.first, self.last)
        for d in range(self.latency):
            reg = Signal(3, name=f"ctrl_d{d + 1}")
            m.d.sync += reg.eq(ctrl)
            ctrl = reg
        acc_valid, acc_first, acc_last = ctrl[0], ctrl[1], ctrl[2]

        for lane in range(lanes):
            acc = Signal(signed(acc_bits), name=f"acc{lane}", reset_less=True)
            total = Signal(signed(acc_bits), name=f"sum{lane}")
            m.d.comb += total.eq(Mux(acc_first, 0, acc) + lane_sums[lane])
            with m.If(acc_valid):
                m.d.sync += acc.eq(total)
            m.d.comb += self.result[lane].eq(total)
        m.d.comb += self.result_valid.eq(acc_valid & acc_last)
        return m


#: Instruction words as the RTL sees them: the ISA's field table as a struct.
INSTR_LAYOUT = shell.struct_from_fields(isa.FIELDS, isa.INSTR_BITS)

#: Receiver targets: weight bank 0 and 1 (an MM's bank is ``MM count % 2``), activation buffer.
_TARGET_ACT = 2
_TARGETS = 3


def read_data_bytes(hw: DspChainHardware) -> int:
    """Bytes of one read-data beat: the largest weight record or one activation row."""
    geo = hw.geometry
    return max(geo.max_weight_record_bytes, geo.act_row_bytes)


def read_request_layout(hw: DspChainHardware) -> data.StructLayout:
    """Payload of a memory read request: byte address, record count and bytes per record."""
    return shell.read_request_layout(
        addr_bits=isa.field_width("addr_a"),
        count_bits=isa.field_width("steps"),
        max_rec_bytes=read_data_bytes(hw),
    )


def write_layout(hw: DspChainHardware) -> data.StructLayout:
    """Payload of a memory write: byte address, one output row, last row of a store job."""
    return shell.write_layout(addr_bits=isa.field_width("addr_b"), data_bits=hw.geometry.out_row_bytes * 8)


def top_signature(hw: DspChainHardware) -> wiring.Signature:
    """Ports of :class:`DspChainAccelerator` for ``hw``: :func:`sparsim.rtl.shell.top_signature` with the
    ``dsp_chain`` payloads."""
    return shell.top_signature(
        instr_layout=INSTR_LAYOUT,
        request_layout=read_request_layout(hw),
        read_data_bits=read_data_bytes(hw) * 8,
        write_layout=write_layout(hw),
    )


class DspChainAccelerator(wiring.Component):
    """The ``dsp_chain`` engine of one hardware configuration, executing a Program.

    Behaviour and timing are those of docs/dsp_chain.md: cycle 0 is the first cycle after reset;
    with an always-valid instruction stream, an always-ready memory (the memory model of the
    docs) and no back-pressure, ``cycles`` ends equal to the simulator's cycle count.

    The loader, receiver and store are the shared :mod:`sparsim.rtl.shell` components; this class owns
    the buffers, the per-bank job state that says when a load may issue, and the compute path.
    All outputs are driven from registers (they never depend combinationally on an input in
    the same cycle), so a testbench may sample them and then drive the inputs of that cycle.

    Parameters
    ----------
    hw : DspChainHardware
        Chains P, chain length L, mux size M, ``min_n``, lanes, ``acc_bits`` and the buffer
        depths ``weight_bank_depth`` / ``act_depth`` / ``out_bank_depth``.

    Members
    -------
    :func:`top_signature`, the shell's top signature with these payloads:

    instr : In(stream.Signature(INSTR_LAYOUT))
        Instruction words (``sparsim.dataflow.dsp_chain_isa`` encoding); one is taken per handshake.
        Unknown opcodes behave as ``END``.
    rd_req : Out(stream.Signature(read_request_layout(hw)))
        Memory read requests: ``addr`` (byte address), ``count`` (records), ``rec_bytes``
        (bytes per record, consecutive in memory).
    rd_data : In(stream.Signature(read_data_bytes(hw) * 8, always_ready=True))
        Read records, in request order, one per beat, in the low ``rec_bytes * 8`` bits
        (little-endian). Never stalled: at most three requests are outstanding (two MM jobs,
        one per weight bank, and one LDA, which waits for its data) and every record is written
        to its buffer in its arrival cycle.
    wr : Out(stream.Signature(write_layout(hw)))
        Output rows to memory: ``addr`` (byte address), ``data`` (one output row,
        ``P * lanes * acc_bits`` bits) and ``last`` (last row of a store job).
    done : Out(1)
        High from the cycle after ``END`` completed.
    cycles : Out(32)
        Cycle number while running; once ``done``, the Program's cycle count ``d + 1``.
    """

    def __init__(self, hw: DspChainHardware):
        with _rejected_is_not_unused(self):
            if not isinstance(hw, DspChainHardware):
                raise TypeError(f"hw must be a DspChainHardware, not {type(hw).__name__}")
        self._hw = hw
        super().__init__(top_signature(hw))

    @property
    def hw(self) -> DspChainHardware:
        return self._hw

    def elaborate(self, platform):
        m = Module()
        hw = self._hw
        P, L, M, lanes, acc_bits = hw.chains, hw.chain_len, hw.mux_m, hw.lanes, hw.acc_bits
        ibits = _log2(M)
        ports = hw.act_ports
        pipe = isa.pipeline_cycles(L)
        geo = hw.geometry
        wbank_bits = geo.max_weight_record_bytes * 8
        act_bits = geo.act_row_bytes * 8
        out_bits = P * lanes * acc_bits

        # ---- storage --------------------------------------------------------------------
        # Weight banks and the activation buffer are never read where they are being written
        # for a step that uses the data: a bank is refilled only once no job reads it (see the
        # loader below). Yosys is told so (``no_rw_check``); otherwise it emulates the
        # read-old-data collision rule of a non-transparent port with a bypass mux behind the
        # block RAM, whose clock-to-out already fills most of a cycle on ECP5.
        no_collision = {"no_rw_check": 1}
        wbanks = []
        for b in range(2):
            mem = memory.Memory(shape=wbank_bits, depth=hw.weight_bank_depth, init=[], attrs=no_collision)
            m.submodules[f"weight_bank{b}"] = mem
            wbanks.append((mem.write_port(), mem.read_port()))
        # Two activation banks in one memory: bank b holds rows b*act_depth .. +act_depth-1.
        act_depth = hw.act_depth
        act_mem = memory.Memory(shape=act_bits, depth=2 * act_depth, init=[], attrs=no_collision)
        m.submodules.act_buffer = act_mem
        act_wp = act_mem.write_port()
        act_rps = [act_mem.read_port() for _ in range(ports)]
        obanks = []
        for b in range(2):
            mem = memory.Memory(shape=out_bits, depth=hw.out_bank_depth, init=[])
            m.submodules[f"out_bank{b}"] = mem
            wp = mem.write_port()
            # Transparent: the store may read a row in the very cycle compute writes it.
            obanks.append((wp, mem.read_port(transparent_for=(wp,))))

        # ---- shell: loader, receiver, store ---------------------------------------------------
        count_bits = isa.field_width("steps")
        loader = m.submodules.loader = shell.Loader(
            instr_layout=INSTR_LAYOUT,
            op_field="op",
            loads={isa.OP_MM: False, isa.OP_LDA: True},
            request_layout=read_request_layout(hw),
            targets=_TARGETS,
        )
        # At most three read requests are outstanding (see rd_data); one spare route entry.
        receiver = m.submodules.receiver = shell.Receiver(
            data_bits=read_data_bytes(hw) * 8, targets=_TARGETS, count_bits=count_bits, depth=4
        )
        store = m.submodules.store = shell.Store(
            banks=2,
            addr_bits=isa.field_width("addr_b"),
            count_bits=isa.field_width("tgroups"),
            data_bits=out_bits,
            row_bytes=geo.out_row_bytes,
        )
        wiring.connect(m, wiring.flipped(self.instr), loader.instr)
        wiring.connect(m, wiring.flipped(self.rd_req), loader.rd_req)
        wiring.connect(m, loader.route, receiver.route)
        wiring.connect(m, wiring.flipped(self.rd_data), receiver.rd_data)
        wiring.connect(m, wiring.flipped(self.wr), store.wr)
        m.d.comb += [self.done.eq(loader.done), self.cycles.eq(loader.cycles)]

        # ---- state shared between the engines ----------------------------------------------
        # Per weight bank b: the MM job dispatched to it (set by the loader at its read request,
        # cleared when compute finishes), and whether all its records arrived.
        job_pending = Signal(2)
        w_full = Signal(2)
        # The MM instruction of each weight bank's job: data, meaningful while pending.
        jobs = [Signal(INSTR_LAYOUT, name=f"job{b}", reset_less=True) for b in range(2)]
        job_abank = Signal(2)  # per weight bank: the activation bank its MM reads
        # Per weight bank: its job has token groups of one step, and one token group (known at the
        # read request, before the job can start: compute's last-step flags load them).
        single_step = Signal(2)
        single_tgroup = Signal(2)
        # Per output bank: owned by a compute job (from its start to the end of its store), and
        # holding finished rows waiting for the store; the store's job description (data,
        # meaningful while the bank is owned).
        out_busy = Signal(2)
        out_full = Signal(2)
        out_addr = Array(
            Signal(isa.field_width("addr_b"), name=f"out{b}_addr", reset_less=True) for b in range(2)
        )
        out_rows = Array(
            Signal(isa.field_width("tgroups"), name=f"out{b}_rows", reset_less=True) for b in range(2)
        )
        compute_done = Signal()  # compute finishes its job in this cycle (cycle e)
        compute_bank = Signal()  # weight and output bank of the job compute runs or waits for

        # ---- loader: which load may issue -----------------------------------------------------
        cur = loader.current
        l_bank = Signal()  # weight bank of the next MM (MM count % 2)
        a_next = Signal()  # activation bank of the next LDA (LDA count % 2)
        engines_idle = Signal()
        m.d.comb += [
            engines_idle.eq((job_pending == 0) & (out_busy == 0) & ~store.busy),
            loader.idle.eq(engines_idle),
            loader.load.payload.request.addr.eq(cur.addr_a),
            loader.load.payload.request.count.eq(cur.steps),
        ]
        # The class of the instruction the loader holds, decoded as it is taken (``current`` is
        # loaded in the same handshake), so no opcode compare sits in the load-issue path.
        is_mm = Signal()
        is_lda = Signal()
        with m.If(self.instr.valid & self.instr.ready):
            m.d.sync += [is_mm.eq(self.instr.payload.op == isa.OP_MM), is_lda.eq(self.instr.payload.op == isa.OP_LDA)]
        with m.If(is_mm):
            # Wait for the weight bank: MM i-2 must have finished computing.
            m.d.comb += [
                loader.load.valid.eq(~job_pending.bit_select(l_bank, 1)),
                loader.load.payload.target.eq(l_bank),
                loader.load.payload.request.rec_bytes.eq(
                    Mux(
                        cur.int4,
                        Mux(cur.dense, geo.weight_record_bytes(4, True), geo.weight_record_bytes(4, False)),
                        Mux(cur.dense, geo.weight_record_bytes(8, True), geo.weight_record_bytes(8, False)),
                    )
                ),
            ]
        with m.Elif(is_lda):
            # Bank a_next is rewritten: no pending MM may read it (those before the previous
            # LDA); with sync, every earlier MM must have computed and stored its results.
            bank_readers = job_pending & Mux(a_next, job_abank, ~job_abank)
            m.d.comb += [
                loader.load.valid.eq(Mux(cur.sync, engines_idle, bank_readers == 0)),
                loader.load.payload.target.eq(_TARGET_ACT),
                loader.load.payload.request.rec_bytes.eq(geo.act_row_bytes),
            ]
        with m.If(loader.load.valid & loader.load.ready & is_mm):
            m.d.sync += [
                jobs[0].eq(Mux(l_bank, jobs[0], cur)),
                jobs[1].eq(Mux(l_bank, cur, jobs[1])),
                # It reads the bank of the latest LDA.
                job_abank.bit_select(l_bank, 1).eq(~a_next),
                job_pending.bit_select(l_bank, 1).eq(1),
                single_step.bit_select(l_bank, 1).eq(cur.steps == 1),
                single_tgroup.bit_select(l_bank, 1).eq(cur.tgroups == 1),
                l_bank.eq(~l_bank),
            ]

        # ---- receiver: records into the weight banks and the activation buffer -----------------
        beat = receiver.beat
        for b, (wp, _) in enumerate(wbanks):
            m.d.comb += [
                wp.addr.eq(beat.payload.index),
                wp.data.eq(beat.payload.data[:wbank_bits]),
                wp.en.eq(beat.valid & (beat.payload.target == b)),
            ]
        lda_arrived = Signal()  # the last activation row of an LDA arrives in this cycle
        m.d.comb += [
            act_wp.addr.eq(beat.payload.index + Mux(a_next, act_depth, 0)),
            act_wp.data.eq(beat.payload.data[:act_bits]),
            act_wp.en.eq(beat.valid & (beat.payload.target == _TARGET_ACT)),
            lda_arrived.eq(beat.valid & beat.payload.last & (beat.payload.target == _TARGET_ACT)),
            loader.arrived.eq(lda_arrived),
        ]
        with m.If(lda_arrived):
            m.d.sync += a_next.eq(~a_next)
        with m.If(beat.valid & beat.payload.last & (beat.payload.target != _TARGET_ACT)):
            m.d.sync += w_full.bit_select(beat.payload.target[0], 1).eq(1)

        # ---- compute ------------------------------------------------------------------------
        # What compute needs of a job, derived from the loader's job registers one cycle after
        # they are written, so no subtractor sits in the issue path. A job starts at least two
        # cycles after its read request (its records arrive after the request is queued), so
        # these are ready when it does. ``steps - 2`` and ``tgroups - 2``: the step (token group)
        # after which the next one is the last.
        steps_m2 = Array(Signal(isa.field_width("steps"), name=f"job{b}_steps_m2") for b in range(2))
        tgroups_m2 = Array(Signal(isa.field_width("tgroups"), name=f"job{b}_tgroups_m2") for b in range(2))
        nlog2_eff = Array(Signal(isa.field_width("n_log2"), name=f"job{b}_nlog2_eff") for b in range(2))
        for b in range(2):
            m.d.sync += [
                steps_m2[b].eq(jobs[b].steps - 2),
                tgroups_m2[b].eq(jobs[b].tgroups - 2),
                # Dense layers have N = M whatever the instruction's n_log2 says.
                nlog2_eff[b].eq(Mux(jobs[b].dense, ibits, jobs[b].n_log2)),
            ]
        cb = compute_bank
        job = Signal(INSTR_LAYOUT)
        tgroups = Signal(isa.field_width("tgroups"))
        gpad = Signal(isa.field_width("gpad"))
        int4 = Signal()
        dense = Signal()
        n_log2 = Signal(isa.field_width("n_log2"))
        m.d.comb += [
            job.eq(Mux(cb, jobs[1], jobs[0])),
            tgroups.eq(job.tgroups),
            gpad.eq(job.gpad),
            int4.eq(job.int4),
            dense.eq(job.dense),
            n_log2.eq(nlog2_eff[cb]),
        ]
        running = Signal()
        draining = Signal()
        drain_left = Signal(range(pipe))
        step = Signal(isa.field_width("steps"))
        tgroup = Signal.like(tgroups)
        kpos = Signal(len(step) + _log2(L))  # s * L: first kept-weight position of the step
        start = Signal()
        issue = Signal()
        # The step issued in this cycle is the last of its token group, of the job's last token
        # group: registers, set one cycle ahead, so no counter compare sits in the issue path.
        # Outside a job they hold the values for the first step of the next job (bank cb, or
        # ~cb while the current job drains).
        last_step = Signal()
        last_tgroup = Signal()
        next_job = Signal()
        m.d.comb += next_job.eq(cb ^ draining)
        m.d.comb += [
            start.eq(
                ~running
                & ~draining
                & job_pending.bit_select(cb, 1)
                & w_full.bit_select(cb, 1)
                & ~out_busy.bit_select(cb, 1)
            ),
            issue.eq(start | running),
        ]
        with m.If(issue):
            with m.If(last_step):
                m.d.sync += last_step.eq(single_step.bit_select(cb, 1))
                # After the job's last step it drains, and the branch below loads the next job's.
                with m.If(~last_tgroup):
                    m.d.sync += last_tgroup.eq(tgroup == tgroups_m2[cb])
            with m.Else():
                m.d.sync += last_step.eq(step == steps_m2[cb])
        with m.Else():
            m.d.sync += [
                last_step.eq(single_step.bit_select(next_job, 1)),
                last_tgroup.eq(single_tgroup.bit_select(next_job, 1)),
            ]
        with m.If(start):
            m.d.sync += [
                running.eq(1),
                out_busy.bit_select(cb, 1).eq(1),
                out_addr[cb].eq(job.addr_b),
                out_rows[cb].eq(tgroups),
            ]
        with m.If(issue):
            with m.If(last_step):
                m.d.sync += [step.eq(0), kpos.eq(0), tgroup.eq(tgroup + 1)]
                with m.If(last_tgroup):
                    m.d.sync += [
                        running.eq(0),
                        draining.eq(1),
                        drain_left.eq(pipe - 1),
                        tgroup.eq(0),
                    ]
            with m.Else():
                m.d.sync += [step.eq(step + 1), kpos.eq(kpos + L)]
        with m.If(draining):
            m.d.sync += drain_left.eq(drain_left - 1)
            with m.If(drain_left == 0):
                m.d.comb += compute_done.eq(1)
                m.d.sync += [
                    draining.eq(0),
                    job_pending.bit_select(cb, 1).eq(0),
                    w_full.bit_select(cb, 1).eq(0),
                    out_full.bit_select(cb, 1).eq(1),
                    cb.eq(~cb),
                ]

        # Cycle c: read addresses. Port q reads activation row
        # act_base + tgroup*gpad + (s*L >> log2 N) + q. The rows are kept in registers and
        # advanced step by step (no shifter or three-input adder before the RAM address): the
        # first row of a step moves by ((s*L mod N) + L) >> log2 N, precomputed one step ahead.
        act_addr_shape = unsigned((2 * act_depth - 1).bit_length())
        # The first rows of the next job, act_base + q, wait in the port registers while compute
        # is idle or draining, so the RAM address never depends on ``start`` in its own cycle.
        # The next job is bank ``cb``, or ``~cb`` while the current one drains; its activation
        # bank is known from its read request, at least two cycles before it can start.
        next_base = Signal(act_addr_shape)
        m.d.comb += next_base.eq(Mux(job_abank.bit_select(cb ^ draining, 1), act_depth, 0))
        port_addr = [Signal(act_addr_shape, name=f"act_port{q}_addr") for q in range(ports)]
        # Per port, the row it reads first in the next token group: act_base + (tgroup+1)*gpad + q,
        # so a token group's first step loads a register instead of adding gpad and q.
        group_addr = [Signal(act_addr_shape, name=f"act_port{q}_next_group") for q in range(ports)]
        row_inc = Signal(range(L + 16))  # how far the next step's rows move
        first_inc = Signal.like(row_inc)
        m.d.comb += first_inc.eq(C(L, len(row_inc)) >> n_log2)
        # What a job's first step writes into the port registers, per weight bank, registered
        # from the loader's job registers (ready by the start, as above): the start select then
        # only picks a register instead of feeding adders. Per port q: the row of step 1 of token
        # group 0, and the first rows of token groups 1 and 2.
        def per_bank_port(what):
            return Array(
                Array(Signal(act_addr_shape, name=f"job{b}_{what}{q}") for q in range(ports)) for b in range(2)
            )

        start_port, group1_port, group2_port = (per_bank_port(w) for w in ("start_port", "group1_port", "group2_port"))
        for b in range(2):
            base_b = Mux(job_abank[b], act_depth, 0)
            inc_b = C(L, len(row_inc)) >> Mux(jobs[b].dense, ibits, jobs[b].n_log2)
            gpad_b = jobs[b].gpad
            for q in range(ports):
                m.d.sync += [
                    start_port[b][q].eq(base_b + q + inc_b),
                    group1_port[b][q].eq(base_b + gpad_b + q),
                    group2_port[b][q].eq(base_b + (gpad_b << 1) + q),
                ]
        next_kpos_low = Signal(4)
        m.d.comb += next_kpos_low.eq((kpos[:4] + L) & ((C(1, 5) << n_log2) - 1))
        for q, rp in enumerate(act_rps):
            m.d.comb += rp.addr.eq(port_addr[q])
            with m.If(start):
                m.d.sync += [
                    port_addr[q].eq(Mux(last_step, group1_port[cb][q], start_port[cb][q])),
                    group_addr[q].eq(Mux(last_step, group2_port[cb][q], group1_port[cb][q])),
                ]
            with m.Elif(running):
                with m.If(last_step):
                    m.d.sync += [port_addr[q].eq(group_addr[q]), group_addr[q].eq(group_addr[q] + gpad)]
                with m.Else():
                    m.d.sync += port_addr[q].eq(port_addr[q] + row_inc)
            with m.Else():
                m.d.sync += port_addr[q].eq(next_base + q)
        with m.If(issue):
            with m.If(last_step):
                m.d.sync += row_inc.eq(first_inc)
            with m.Else():
                m.d.sync += row_inc.eq((next_kpos_low + L) >> n_log2)
        for _, rp in wbanks:
            m.d.comb += rp.addr.eq(step)

        # Cycle c+1: the banks' read data only lands in registers. ECP5 block RAMs have no
        # output register that Yosys uses and a 5.8 ns clock-to-out, so any logic here would
        # set the clock; the bank select waits for the next stage for the same reason.
        s1_valid = Signal()
        s1_first = Signal()
        s1_last = Signal()
        s1_kbase = Signal(ibits)
        s1_dense = Signal()
        m.d.sync += [
            s1_valid.eq(issue),
            s1_first.eq(step == 0),
            s1_last.eq(last_step),
            s1_kbase.eq(kpos[:ibits]),
            s1_dense.eq(dense),
        ]
        bank_data = [Signal(wbank_bits, name=f"weight_bank{b}_q", reset_less=True) for b in range(2)]
        for q, (_, rp) in zip(bank_data, wbanks):
            m.d.sync += q.eq(rp.data)
        port_data = [Signal(act_bits, name=f"act_port{q}_q", reset_less=True) for q in range(ports)]
        for q, rp in zip(port_data, act_rps):
            m.d.sync += q.eq(rp.data)

        # Cycle c+2: decode the record (bank, INT4/INT8) and each slot's index (the implicit
        # ``k % M`` of a dense layer is resolved here, so the chains' M:1 mux selects come
        # straight from registers), pick each slot's activation row. The step's control
        # follows one register behind each data stage.
        s1_ctrl = Cat(s1_valid, s1_first, s1_last, s1_kbase, s1_dense)
        s2_ctrl = Signal(len(s1_ctrl))
        s3_ctrl = Signal(len(s1_ctrl))
        m.d.sync += [s2_ctrl.eq(s1_ctrl), s3_ctrl.eq(s2_ctrl)]
        s2_kbase, s2_dense = s2_ctrl[3 : 3 + ibits], s2_ctrl[3 + ibits]
        s3_valid, s3_first, s3_last = s3_ctrl[0], s3_ctrl[1], s3_ctrl[2]
        record = Signal(wbank_bits)
        m.d.comb += record.eq(Mux(cb, bank_data[1], bank_data[0]))
        port_rows = Array(port_data)
        slot_rows = []
        for j in range(L):
            row = Signal(act_bits, name=f"slot{j}_row", reset_less=True)
            if ports > 1:
                # The slot's port, j >> log2 N, registered from the current job's N: it holds
                # from the job's start (cb does not change while the job's steps are in flight),
                # so it is ready in the decode cycle of the job's first step, two cycles later.
                port_sel = Signal(range(ports), name=f"slot{j}_port")
                m.d.sync += [port_sel.eq(C(j, _log2(L) + 1) >> n_log2), row.eq(port_rows[port_sel])]
            else:
                m.d.sync += row.eq(port_data[0])
            slot_rows.append(row)

        # Cycle c+3 = the chains' cycle x (SparseDspChain's timing).
        results = []
        for p in range(P):
            chain = SparseDspChain(chain_len=L, mux_m=M, lanes=lanes, acc_bits=acc_bits)
            m.submodules[f"chain{p}"] = chain
            m.d.comb += [
                chain.valid.eq(s3_valid),
                chain.first.eq(s3_first),
                chain.last.eq(s3_last),
                chain.dense.eq(0),  # indices arrive resolved, dense ones too (cycle c+2)
            ]
            for j in range(L):
                e = p * L + j
                w8 = record[e * 8 : (e + 1) * 8]
                w4 = record[e * 4 : (e + 1) * 4].as_signed()
                i8 = record[P * L * 8 + e * ibits : P * L * 8 + (e + 1) * ibits]
                i4 = record[P * L * 4 + e * ibits : P * L * 4 + (e + 1) * ibits]
                weight = Signal(signed(OPERAND_BITS), name=f"chain{p}_w{j}", reset_less=True)
                index = Signal(ibits, name=f"chain{p}_idx{j}", reset_less=True)
                implicit = (s2_kbase + j)[:ibits]
                m.d.sync += [
                    weight.eq(Mux(int4, w4, w8.as_signed())),
                    index.eq(Mux(s2_dense, implicit, Mux(int4, i4, i8))),
                ]
                m.d.comb += [
                    chain.weights[j].eq(weight),
                    chain.indices[j].eq(index),
                    chain.acts[j].eq(slot_rows[j]),
                ]
            results.append(chain)
        # Tests measure the real latency between these two events (tests/test_rtl_latency.py).
        self._latency_probes = {"issue": issue, "row_write": results[0].result_valid}

        # Cycle c+PIPE: the chains' sums of a finished token group form one output row.
        out_row = Signal(out_bits)
        m.d.comb += out_row.eq(Cat(*(chain.result[lane] for chain in results for lane in range(lanes))))
        row_valid = results[0].result_valid
        out_index = Signal.like(tgroups)
        for b, (wp, _) in enumerate(obanks):
            m.d.comb += [
                wp.addr.eq(out_index),
                wp.data.eq(out_row),
                wp.en.eq(row_valid & (cb == b)),
            ]
        with m.If(row_valid):
            m.d.sync += out_index.eq(out_index + 1)
        with m.If(start):
            m.d.sync += out_index.eq(0)

        # ---- store: finished output banks in compute order -------------------------------------
        # The store takes bank st_next as soon as it is full, or in the cycle compute fills it.
        st_next = Signal()
        m.d.comb += [
            store.job.valid.eq(out_full.bit_select(st_next, 1) | (compute_done & (cb == st_next))),
            store.job.payload.bank.eq(st_next),
            store.job.payload.addr.eq(out_addr[st_next]),
            store.job.payload.rows.eq(out_rows[st_next]),
            store.read_data.eq(Mux(store.bank, obanks[1][1].data, obanks[0][1].data)),
        ]
        for _, rp in obanks:
            m.d.comb += rp.addr.eq(store.read_row)
        # After compute's update of out_full, so that a bank taken in the cycle it fills stays
        # empty.
        with m.If(store.job.valid & store.job.ready):
            m.d.sync += [out_full.bit_select(st_next, 1).eq(0), st_next.eq(~st_next)]
        with m.If(store.done):
            m.d.sync += out_busy.bit_select(store.bank, 1).eq(0)

        return m
