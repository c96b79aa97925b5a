"""Amaranth RTL of the R x C systolic PE array shared by the ``nm_train`` and ``recsys`` engines.

One component, :class:`SystolicArray`, computes one *fold* of the GEMM
``out[p, q] = sum_k A[p, k] * B[q, k]`` (signed INT8 operands, ``acc_bits`` accumulators with
two's-complement wrap) in either dataflow, with N:M-compressed B: each weight carries the
position of its activation inside a window of ``max_m`` activations, and every PE selects that
activation through an M:1 mux. Dense GEMMs are the case M = N = 1 (window lane 0, index 0).
The fold equations and the PE latency are those of :mod:`sparsim.dataflow.systolic`, which the
simulator reads too.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sparsim.dataflow.systolic import PE_PIPELINE_CYCLES

from .shell import rejected_is_not_unused as _rejected_is_not_unused

__all__ = ["OPERAND_BITS", "DATAFLOWS", "SystolicArray"]

#: Activations and weights enter the multipliers as signed 8-bit values.
OPERAND_BITS = 8
#: Operand registers between a PE's window register and its multiplier: every
#: PE_PIPELINE_CYCLES stage that is not the product or the accumulator register. One with L = 3
#: (the selected-lane register beside the window register adds no cycle, see elaborate). A
#: second one (L = 4) does not pay on ECP5: with the multiplier's registers in the fabric every
#: path is FF -> MULT18X18D -> FF (140 MHz at L = 3 and at L = 4), and with them inside the DSP
#: (rtl/ecp5_pack.py) the 4 x 4 and 8 x 8 arrays pass 150 MHz at L = 3 (benchmarks/README.md).
OPERAND_STAGES = PE_PIPELINE_CYCLES - 2
assert OPERAND_STAGES >= 1, "a PE needs operand, product and accumulator registers"
DATAFLOWS = ("os", "ws")


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer from {lo} to {hi}, not {value}")
    return value


class SystolicArray(wiring.Component):
    """``rows`` x ``cols`` processing elements computing one fold of ``A·Bᵀ`` with N:M weights.

    PE (r, c) receives an activation *window* (``max_m`` INT8 values) from its left neighbour
    and a weight (INT8 value, window index) from the neighbour above, and passes both on.
    Its pipeline, one register per stage: window register -> registered A operand (the weight
    value into the registered B operand) -> registered product -> accumulator. The A operand
    is the window's lane ``index``, selected by an M:1 mux from the window as it enters the
    window register (the left neighbour's window register) and held in a selected-lane
    register loaded in the same cycle as the window register: the mux ends in a fabric
    register and the A operand register can sit inside the multiplier.
    A step whose operands are in PE (r, c)'s window register in cycle t is in its accumulator
    (partial-sum register) from cycle t + ``PE_PIPELINE_CYCLES`` (L = 3). Datapath registers have
    no reset (it would keep DSP and SRL packing out); control flags keep theirs.

    The component skews its inputs itself (row r of ``a`` by r cycles, column c of ``b`` by c
    cycles in OS) and de-skews its outputs (column c by C-1-c cycles), so callers present a
    step's operands for all rows and columns in one cycle and receive one output row of C
    results per cycle. Counting from the fold's first handshake in cycle h, fold cycle f is
    cycle h + 1 + f (the first step is then in PE (0, 0)'s window register), so the fold's last
    result leaves in cycle h + ``fold_cycles`` (:func:`sparsim.dataflow.systolic.fold_cycles`),
    the cycle in which the next fold may make its first handshake: folds do not overlap.

    Output stationary (``dataflow="os"``): a fold is an R-row block of p by a C-column block of
    q. Step k' = 0 .. K'-1 is presented in cycle h + k' on ``a`` (row r: the window holding the
    activations of p0+r for the N:M group of k'; ``first`` on step 0, ``last`` on step K'-1)
    and on ``b`` (column c: value and index of the k'-th kept weight of q0+c), both valid in the
    same cycle; a cycle in which either is not valid contributes nothing. PE (r, c) accumulates
    in its own register, restarting on ``first``. When column c's last step has reached its
    bottom PE, the column's accumulators are copied into drain registers that shift down the
    column, one row per cycle. ``result`` then carries rows r = R-1, R-2, .., 0 (in that order)
    in fold cycles ``K' + R + C - 2 + L`` .. ``K' + 2R + C - 3 + L = fold_cycles_os - 1``.

    Weight stationary (``dataflow="ws"``): a fold is an R-block of compressed steps k' by a
    C-block of q. Preload: in cycles h .. h+R-1 ``b`` carries the weights of rows R-1, R-2, .., 0
    (in that order: they shift down the columns, one row per valid cycle). Then in cycle
    h + R + p, p = 0 .. P-1, ``a`` carries the windows of p (row r: the group of step k0+r).
    Partial sums flow down the columns; the row of p leaves ``result`` in fold cycle
    ``R + p + (R-1) + (C-1) + L``, ``fold_cycles_ws - 1`` for the last. Rows of successive k'-folds are summed by the caller.
    ``b`` must not be valid while windows of the fold are in flight.

    Unused rows and columns (edge folds) are fed zero windows or zero weights. A cycle without
    a handshake is a bubble that delays the rest of the fold by one cycle (OS: no step; WS: no
    shift, no window), so the array also runs from a source that stalls.

    Parameters (keyword-only)
    -------------------------
    rows, cols : int
        Array size R x C, each 1 to 64.
    dataflow : str
        ``"os"`` or ``"ws"``: which of the two uses of the one PE design is built.
    max_m : int
        Window lanes = largest N:M group size M the array runs, a power of two from 1 to 16.
    acc_bits : int
        Accumulator width, 16 to 48.

    Members
    -------
    The payloads are plain bit vectors laid out as the layout properties say (read and write
    them through ``data.View(array.a_layout, array.a.payload)``): Amaranth names the elements
    of an array-shaped port ``x[i]``, and Yosys's ABC9 pass and nextpnr confuse such a wire
    with bit i of ``x`` (YosysHQ/yosys#4349; ECP5 place and route of this array failed on it).

    a : In(stream.Signature(a_layout.size, always_ready=True))
        ``windows``: ``ArrayLayout(ArrayLayout(signed(8), max_m), rows)``, one window per row
        (lanes at and above the workload's M are zero); OS only: ``first`` and ``last`` (1 bit
        each), the step's position in the fold.
    b : In(stream.Signature(b_layout.size, always_ready=True))
        ``values``: ``ArrayLayout(signed(8), cols)``; ``indices`` (only when ``max_m`` > 1):
        ``ArrayLayout(unsigned(log2 max_m), cols)``, each weight's lane in its row's window.
    result : Out(stream.Signature(result_layout.size, always_ready=True))
        ``result_layout = ArrayLayout(signed(acc_bits), cols)``: one output row per valid cycle
        (order and cycles above). Driven from registers.
    """

    def __init__(self, *, rows: int, cols: int, dataflow: str, max_m: int, acc_bits: int):
        with _rejected_is_not_unused(self):
            self._rows = _check_int("rows", rows, 1, 64)
            self._cols = _check_int("cols", cols, 1, 64)
            if dataflow not in DATAFLOWS:
                raise ValueError(f"dataflow must be 'os' or 'ws', not {dataflow!r}")
            self._dataflow = dataflow
            self._max_m = _check_int("max_m", max_m, 1, 16)
            if max_m & (max_m - 1):
                raise ValueError(f"max_m must be a power of two from 1 to 16, not {max_m}")
            self._acc_bits = _check_int("acc_bits", acc_bits, 16, 48)
        super().__init__(
            {
                "a": In(stream.Signature(self.a_layout.size, always_ready=True)),
                "b": In(stream.Signature(self.b_layout.size, always_ready=True)),
                "result": Out(stream.Signature(self.result_layout.size, always_ready=True)),
            }
        )

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def cols(self) -> int:
        return self._cols

    @property
    def dataflow(self) -> str:
        return self._dataflow

    @property
    def max_m(self) -> int:
        return self._max_m

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def index_bits(self) -> int:
        """Bits of a weight's window index: log2 ``max_m`` (0 for a dense-only array)."""
        return self._max_m.bit_length() - 1

    @property
    def a_layout(self) -> data.StructLayout:
        fields = {"windows": data.ArrayLayout(data.ArrayLayout(signed(OPERAND_BITS), self._max_m), self._rows)}
        if self._dataflow == "os":
            fields.update(first=1, last=1)
        return data.StructLayout(fields)

    @property
    def b_layout(self) -> data.StructLayout:
        fields = {"values": data.ArrayLayout(signed(OPERAND_BITS), self._cols)}
        if self.index_bits:
            fields["indices"] = data.ArrayLayout(unsigned(self.index_bits), self._cols)
        return data.StructLayout(fields)

    @property
    def result_layout(self) -> data.ArrayLayout:
        return data.ArrayLayout(signed(self._acc_bits), self._cols)

    @property
    def output_delay(self) -> int:
        """Cycles from a step's handshake to its effect leaving ``result`` (WS), or to the OS
        drain registers' load of column C-1: ``1 + (R-1) + (C-1) + L``."""
        return self._rows + self._cols - 1 + PE_PIPELINE_CYCLES

    def elaborate(self, platform):
        m = Module()
        R, C, M, acc_bits = self._rows, self._cols, self._max_m, self._acc_bits
        os_flow = self._dataflow == "os"
        L = PE_PIPELINE_CYCLES
        window_layout = data.ArrayLayout(signed(OPERAND_BITS), M)
        a_in = data.View(self.a_layout, self.a.payload)
        b_in = data.View(self.b_layout, self.b.payload)
        result = data.View(self.result_layout, self.result.payload)

        def delayed(value, cycles, name, *, reset_less=True):
            """``value`` after ``cycles`` registers (a skew / de-skew line)."""
            for d in range(cycles):
                reg = Signal(Value.cast(value).shape(), name=f"{name}_d{d + 1}", reset_less=reset_less)
                m.d.sync += reg.eq(value)
                value = reg
            return value

        # ---- left edge: row r's windows (and OS first flag) wait r cycles ------------------
        step = Signal()  # OS: a step is presented this cycle
        m.d.comb += step.eq(self.a.valid & self.b.valid)
        left_window, left_first = [], []
        for r in range(R):
            left_window.append(delayed(a_in.windows[r], r, f"skew_a{r}"))
            if os_flow:
                first = Signal(name=f"first_edge{r}")
                m.d.comb += first.eq(step & a_in.first)
                left_first.append(delayed(first, r, f"skew_first{r}"))

        # ---- top edge: weights ------------------------------------------------------------
        ibits = self.index_bits
        top_value, top_index = [], []  # no index registers at all when max_m is 1
        held_index = []  # WS: per column, the index row 0 holds from the next cycle on
        shift = []  # WS: per column, the weight registers shift down this cycle
        for c in range(C):
            if os_flow:
                # A cycle without a step feeds zero weights, so the accumulators hold.
                value = Signal(signed(OPERAND_BITS), name=f"b_edge{c}")
                m.d.comb += value.eq(Mux(step, b_in.values[c], 0))
                top_value.append(delayed(value, c, f"skew_b{c}"))
                top_index.append(delayed(b_in.indices[c], c, f"skew_idx{c}") if ibits else None)
            else:
                # Registered at the edge so that each column's shift enable is its own register
                # (fanout R PEs, not R x C); the preload still ends before the first window
                # needs its index (cycle R + 1 in PE (0, 0)).
                value = Signal(signed(OPERAND_BITS), name=f"b_edge{c}", reset_less=True)
                en = Signal(name=f"shift_edge{c}")
                m.d.sync += [value.eq(b_in.values[c]), en.eq(self.b.valid)]
                top_value.append(value)
                if ibits:
                    index = Signal(unsigned(ibits), name=f"idx_edge{c}", reset_less=True)
                    m.d.sync += index.eq(b_in.indices[c])
                    top_index.append(index)
                    # Loaded with every valid weight, so from the next cycle it holds what
                    # row 0's index register holds one cycle later, without the shift enable
                    # (a register with fanout R) in front of row 0's window mux.
                    held = Signal(unsigned(ibits), name=f"idx_held{c}", reset_less=True)
                    with m.If(self.b.valid):
                        m.d.sync += held.eq(b_in.indices[c])
                    held_index.append(held)
                else:
                    top_index.append(None)
                shift.append(en)

        # ---- OS control: when each column's accumulators are final --------------------------
        load = []  # per column: copy the accumulators into the drain registers this cycle
        if os_flow:
            last = Signal()
            m.d.comb += last.eq(step & a_in.last)
            taps = [last]
            for d in range(self.output_delay):
                reg = Signal(name=f"last_d{d + 1}")
                m.d.sync += reg.eq(taps[-1])
                taps.append(reg)
            # Column c's last step is in its bottom PE's window register R+c cycles after its
            # handshake and in the accumulator L cycles later.
            load = [taps[R + c + L] for c in range(C)]

        # ---- the PEs ------------------------------------------------------------------------
        above_acc = [None] * C  # WS partial sums / OS drain registers of the row above
        for r in range(R):
            window_in, first_in = left_window[r], (left_first[r] if os_flow else None)
            for c in range(C):
                n = f"pe{r}_{c}"
                window_bits = Signal(M * OPERAND_BITS, name=f"{n}_window", reset_less=True)
                m.d.sync += window_bits.eq(window_in)
                window = data.View(window_layout, window_bits)
                w_value = Signal(signed(OPERAND_BITS), name=f"{n}_w", reset_less=True)
                weight = [w_value.eq(top_value[c])]
                w_index = None
                if ibits:
                    w_index = Signal(unsigned(ibits), name=f"{n}_idx", reset_less=True)
                    weight.append(w_index.eq(top_index[c]))
                    # The index this PE's register holds next cycle. OS: the one above, as
                    # the weights move every cycle. WS: the weights move only in the preload;
                    # the fold's first window may enter PE (0, 0) right after the last shift,
                    # so row 0 reads the edge's held index, and lower rows, whose first
                    # window comes at least one cycle later, their own register ("b must not
                    # be valid while windows of the fold are in flight").
                    if os_flow:
                        next_index = top_index[c]
                    else:
                        next_index = held_index[c] if r == 0 else w_index
                if os_flow:
                    m.d.sync += weight
                else:
                    with m.If(shift[c]):
                        m.d.sync += weight
                top_value[c], top_index[c] = w_value, w_index

                # The selected lane is registered beside the window register, from the same
                # inputs (the left neighbour's window, the weight's next index), and then held
                # in the A operand register: the M:1 mux gets a register of its own, which the
                # placer keeps next to it, and the A operand register goes into the multiplier
                # (rtl/ecp5_pack.py), without adding a cycle. With the mux between the window
                # and the A operand register, nextpnr spread the mux of the 8 x 8 array across
                # the chip between the two (113.6 MHz, benchmarks/README.md).
                selected = Signal(signed(OPERAND_BITS), name=f"{n}_sel", reset_less=True)
                in_window = data.View(window_layout, Value.cast(window_in))
                m.d.sync += selected.eq(in_window[next_index] if ibits else in_window[0])
                a_op = Signal(signed(OPERAND_BITS), name=f"{n}_a", reset_less=True)
                b_op = Signal(signed(OPERAND_BITS), name=f"{n}_b", reset_less=True)
                m.d.sync += [a_op.eq(selected), b_op.eq(w_value)]
                a_op = delayed(a_op, OPERAND_STAGES - 1, f"{n}_a")
                b_op = delayed(b_op, OPERAND_STAGES - 1, f"{n}_b")
                product = Signal(signed(2 * OPERAND_BITS), name=f"{n}_m", reset_less=True)
                m.d.sync += product.eq(a_op * b_op)
                acc = Signal(signed(acc_bits), name=f"{n}_acc", reset_less=True)
                if os_flow:
                    first = Signal(name=f"{n}_first")
                    m.d.sync += first.eq(first_in)
                    first_in = first
                    # The flag follows the step through the mux and product stages.
                    acc_first = delayed(first, L - 1, f"{n}_first", reset_less=False)
                    m.d.sync += acc.eq(Mux(acc_first, 0, acc) + product)
                    drain = Signal(signed(acc_bits), name=f"{n}_drain", reset_less=True)
                    from_above = above_acc[c] if r else 0
                    m.d.sync += drain.eq(Mux(load[c], acc, from_above))
                    above_acc[c] = drain
                else:
                    m.d.sync += acc.eq(product + above_acc[c] if r else product)
                    above_acc[c] = acc
                window_in = window

        # ---- bottom edge: de-skew the columns ---------------------------------------------
        for c in range(C):
            m.d.comb += result[c].eq(delayed(above_acc[c], C - 1 - c, f"deskew{c}"))
        if os_flow:
            # Drain rows leave column C-1 from the cycle after its load, one per cycle.
            pending = Signal(R, name="drain_pending")
            m.d.sync += pending.eq(Mux(load[C - 1], (1 << R) - 1, pending >> 1))
            m.d.comb += self.result.valid.eq(pending[0])
        else:
            m.d.comb += self.result.valid.eq(delayed(self.a.valid, self.output_delay, "valid", reset_less=False))
        return m
