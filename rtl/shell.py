"""The RTL shell that every engine's top shares: its port signature and the components between
the ports and the engine's own datapath.

An engine top (``Engine.rtl_top``, signature ``Engine.rtl_signature``) has the ports of
:func:`top_signature` and is built from

- a :class:`Loader`: takes instruction words, issues the read request of each load instruction
  together with its *route* (which on-chip buffer the records go to), waits for a load's data
  when the engine asks for it, finishes the Program and counts its cycles;
- a :class:`Receiver`: writes read data, in request order, to the buffer named by each route;
- a :class:`Store`: drains finished output rows of one buffer bank after another to memory;

and the engine's compute datapath, which owns the buffers and decides when a load may issue and
when a bank may be stored. Links between these blocks are ``lib.stream`` interfaces; a stream
that is never stalled says so with ``always_ready=True`` in its signature.

All three components keep the cycle behaviour that the engine timing contracts
(docs/<engine>.md, "Engines and timing") assume: a load is requested in the cycle it is allowed, a
record is written in the cycle it arrives, a store job is offered on ``wr`` in the cycle after it
is taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import contextmanager

from amaranth.hdl import Array, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "CYCLE_BITS",
    "struct_from_fields",
    "read_request_layout",
    "write_layout",
    "route_layout",
    "load_layout",
    "beat_layout",
    "store_job_layout",
    "top_signature",
    "port_members",
    "top_ports",
    "rejected_is_not_unused",
    "Loader",
    "Receiver",
    "Store",
]

#: Width of the top's ``cycles`` counter.
CYCLE_BITS = 32


@contextmanager
def rejected_is_not_unused(component):
    """Silence Amaranth's "created but never used" warning for a component whose constructor
    rejected its parameters: it was never usable, so nothing was forgotten."""
    try:
        yield
    except (TypeError, ValueError):
        component._MustUse__silence = True
        raise


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value}")
    return value


def _check_layout(name: str, value: object) -> data.Layout:
    if not isinstance(value, data.Layout):
        raise TypeError(f"{name} must be a data.Layout, not {value!r}")
    return value


def _field_names(layout: data.Layout) -> set[str]:
    return {name for name, _ in layout}


def struct_from_fields(fields: Iterable[tuple[str, int, int]], total_bits: int) -> data.StructLayout:
    """A ``data.StructLayout`` of ``total_bits`` bits with each ``(name, low bit, width)`` of an
    ISA field table at its bit offset; gaps become members named ``reserved_<low bit>``."""
    members: dict[str, int] = {}
    cursor = 0
    for name, lo, width in sorted(fields, key=lambda f: f[1]):
        if lo < cursor:
            raise ValueError(f"field {name} at bit {lo} overlaps the previous field (ends at {cursor})")
        if lo > cursor:
            members[f"reserved_{cursor}"] = lo - cursor
        members[name] = width
        cursor = lo + width
    if cursor > total_bits:
        raise ValueError(f"fields end at bit {cursor}, beyond the {total_bits}-bit word")
    if cursor < total_bits:
        members[f"reserved_{cursor}"] = total_bits - cursor
    return data.StructLayout(members)


def read_request_layout(*, addr_bits: int, count_bits: int, max_rec_bytes: int) -> data.StructLayout:
    """Payload of a memory read request: byte ``addr``, ``count`` records of ``rec_bytes`` bytes
    each, consecutive in memory."""
    return data.StructLayout(
        {
            "addr": _check_positive("addr_bits", addr_bits),
            "count": _check_positive("count_bits", count_bits),
            "rec_bytes": range(_check_positive("max_rec_bytes", max_rec_bytes) + 1),
        }
    )


def write_layout(*, addr_bits: int, data_bits: int, max_row_bytes: int | None = None) -> data.StructLayout:
    """Payload of a memory write: byte ``addr``, one row of ``data``, ``last`` row of a job;
    with ``max_row_bytes``, also the row's size in ``bytes`` (its low bytes of ``data``), for
    engines whose store jobs differ in row size."""
    members = {
        "addr": _check_positive("addr_bits", addr_bits),
        "data": _check_positive("data_bits", data_bits),
        "last": 1,
    }
    if max_row_bytes is not None:
        members["bytes"] = range(_check_positive("max_row_bytes", max_row_bytes) + 1)
    return data.StructLayout(members)


def route_layout(*, targets: int, count_bits: int) -> data.StructLayout:
    """Where the records of one read request go: buffer ``target`` receives ``count`` records."""
    return data.StructLayout(
        {"target": range(_check_positive("targets", targets)), "count": _check_positive("count_bits", count_bits)}
    )


def ahead_layout(*, targets: int) -> data.StructLayout:
    """The :class:`Receiver`'s next beat as far as its registers tell: whether a route is
    ``held``, its ``target`` and whether its record is its ``last``."""
    return data.StructLayout({"held": 1, "target": range(_check_positive("targets", targets)), "last": 1})


def load_layout(request: data.Layout, *, targets: int) -> data.StructLayout:
    """A load the engine offers to the :class:`Loader`: its read ``request`` and ``target``."""
    return data.StructLayout({"request": request, "target": range(_check_positive("targets", targets))})


def beat_layout(*, targets: int, count_bits: int, data_bits: int) -> data.StructLayout:
    """One record delivered by the :class:`Receiver`: record ``index`` of a transfer to
    ``target``, the ``last`` one of it, and its ``data``."""
    return data.StructLayout(
        {
            "target": range(_check_positive("targets", targets)),
            "index": _check_positive("count_bits", count_bits),
            "last": 1,
            "data": _check_positive("data_bits", data_bits),
        }
    )


def store_job_layout(
    *, banks: int, addr_bits: int, count_bits: int, max_row_bytes: int | None = None
) -> data.StructLayout:
    """A finished output ``bank`` whose first ``rows`` rows go to consecutive rows from ``addr``;
    with ``max_row_bytes``, rows of ``row_bytes`` bytes each (else a fixed size)."""
    members = {
        "bank": range(_check_positive("banks", banks)),
        "addr": _check_positive("addr_bits", addr_bits),
        "rows": _check_positive("count_bits", count_bits),
    }
    if max_row_bytes is not None:
        members["row_bytes"] = range(_check_positive("max_row_bytes", max_row_bytes) + 1)
    return data.StructLayout(members)


def top_signature(
    *,
    instr_layout: data.Layout,
    request_layout: data.Layout,
    read_data_bits: int,
    write_layout: data.Layout,
) -> wiring.Signature:
    """The ports of an engine top, from the engine's payload layouts.

    ``instr``
        ``In(stream.Signature(instr_layout))``: instruction words, one per handshake.
    ``rd_req``
        ``Out(stream.Signature(request_layout))``: memory read requests.
    ``rd_data``
        ``In(stream.Signature(read_data_bits, always_ready=True))``: read records in request
        order, one per beat, in the low bits. Never stalled, so it has no ``ready`` port.
    ``wr``
        ``Out(stream.Signature(write_layout))``: memory writes.
    ``done``
        ``Out(1)``: high from the cycle after the Program finished.
    ``cycles``
        ``Out(CYCLE_BITS)``: cycle number while running; once ``done``, the cycle count.
    """
    return wiring.Signature(
        {
            "instr": In(stream.Signature(_check_layout("instr_layout", instr_layout))),
            "rd_req": Out(stream.Signature(_check_layout("request_layout", request_layout))),
            "rd_data": In(
                stream.Signature(_check_positive("read_data_bits", read_data_bits), always_ready=True)
            ),
            "wr": Out(stream.Signature(_check_layout("write_layout", write_layout))),
            "done": Out(1),
            "cycles": Out(CYCLE_BITS),
        }
    )


def port_members(signature: wiring.Signature) -> dict[tuple[str, ...], wiring.Member]:
    """The members of ``signature`` that become Verilog ports of a top level, by path: all but
    constants, such as the ``ready`` of an ``always_ready`` stream. The port of path ``p`` is
    named ``"__".join(p)``, as Amaranth names it."""
    interface = signature.create()
    return {
        path: member
        for path, member, value in signature.flatten(interface)
        if not isinstance(Value.cast(value), Const)
    }


def top_ports(component: wiring.Component) -> dict[str, tuple[Signal, None]]:
    """``ports=`` for ``verilog.convert`` of ``component`` as a top level: the members of
    :func:`port_members`, named as Amaranth names them (``rd_req__payload``)."""
    ports = {}
    for path, _member, value in component.signature.flatten(component):
        value = Value.cast(value)
        if not isinstance(value, Const):
            ports["__".join(map(str, path))] = (value, None)
    return ports


class Loader(wiring.Component):
    """Instruction front end of an engine: fetches instructions, issues loads, finishes.

    The instruction in flight is :attr:`current`. Its opcode (field ``op_field``) selects what
    the loader does with it:

    - an opcode in ``loads``: wait until the engine offers the instruction's load on ``load``,
      then issue the read request on ``rd_req`` and its route on ``route`` in the same handshake;
      if ``loads[op]`` is true, also wait for the last record (``arrived``) before going on;
    - an opcode in ``dispatches``: hand :attr:`current` to the engine's compute queue on
      ``dispatch`` (the engine takes it with ``dispatch.ready``);
    - any other opcode ends the Program: wait until ``idle``, then raise ``done``.

    Timing: an instruction valid in cycle ``f`` while the loader is free is taken in ``f``; its
    load can be issued (its job dispatched) from ``f + 1``; the next instruction is taken the
    cycle after the issue or dispatch (or after ``arrived``); ``done`` rises the cycle after
    ``idle`` was seen with an ending instruction in flight, and ``cycles`` stops there.

    With ``registered_request``, a load is issued (taken on ``load``) in cycle ``r`` without
    looking at ``rd_req.ready``: its read request and route are registered then and offered on
    ``rd_req`` and ``route`` from ``r + 1`` (``LOAD_REQUEST_CYCLES`` = 1 of the engine's
    contract), each held until taken; the next load issues once both are taken. No memory
    handshake then lies in the combinational cone of ``load.ready`` (the engine's issue).

    Parameters (keyword-only)
    -------------------------
    instr_layout : data.Layout
        Layout of an instruction word.
    op_field : str
        Name of the opcode field of ``instr_layout``.
    loads : Mapping[int, bool]
        Opcodes that load, each with whether the loader waits for its data.
    request_layout : data.Layout
        Read request payload (:func:`read_request_layout`); its ``count`` is the route's count.
    targets : int
        Number of buffers a route can name.
    dispatches : Iterable[int]
        Opcodes that are neither loads nor ends: compute jobs handed to the engine (default
        none, and then the loader has no ``dispatch`` member).
    registered_request : bool
        Offer each read request and its route from registers, a cycle after the issue (default
        false: in the cycle of the issue, which waits for ``rd_req.ready`` and ``route.ready``).

    Members
    -------
    instr : In(stream.Signature(instr_layout))
        Instructions; ``ready`` only while no instruction is in flight.
    current : Out(instr_layout)
        The instruction taken last (registered at its handshake).
    load : In(stream.Signature(load_layout(request_layout, targets=targets)))
        The engine's offer of :attr:`current`'s load: ``valid`` once the engine allows it;
        taken when the loader is issuing a load and both ``rd_req`` and ``route`` are ready
        (``registered_request``: when ``route`` is ready and no earlier request or route waits
        in the loader's registers).
    rd_req : Out(stream.Signature(request_layout))
        Read requests to memory.
    route : Out(stream.Signature(route_layout(...)))
        Target and record count of each read request, to the :class:`Receiver`.
    dispatch : Out(stream.Signature(0))
        Only with ``dispatches``: ``valid`` while :attr:`current` is a compute job being handed
        over; the engine takes it (from :attr:`current`) with ``ready``.
    arrived : In(1)
        The data of a waited-for load is complete this cycle.
    idle : In(1)
        Every engine is idle: an ending instruction may finish.
    done : Out(1)
        High from the cycle after the Program ended.
    cycles : Out(CYCLE_BITS)
        Cycles since reset; stops counting once ``done``.
    """

    def __init__(
        self,
        *,
        instr_layout: data.Layout,
        op_field: str,
        loads: Mapping[int, bool],
        request_layout: data.Layout,
        targets: int,
        dispatches: Iterable[int] = (),
        registered_request: bool = False,
    ):
        with rejected_is_not_unused(self):
            if not isinstance(registered_request, bool):
                raise TypeError(f"registered_request must be a bool, not {registered_request!r}")
            self._registered_request = registered_request
            self._instr_layout = _check_layout("instr_layout", instr_layout)
            if op_field not in _field_names(instr_layout):
                raise ValueError(f"op_field must name a field of instr_layout, not {op_field!r}")
            self._op_field = op_field
            op_max = (1 << Shape.cast(instr_layout[op_field].shape).width) - 1
            if not isinstance(loads, Mapping) or not loads:
                raise TypeError(f"loads must be a non-empty mapping of opcode to bool, not {loads!r}")
            for op in loads:
                if isinstance(op, bool) or not isinstance(op, int) or not 0 <= op <= op_max:
                    raise ValueError(f"load opcodes must be integers from 0 to {op_max}, not {op!r}")
            self._loads = {op: bool(wait) for op, wait in loads.items()}
            self._request_layout = _check_layout("request_layout", request_layout)
            if "count" not in _field_names(request_layout):
                raise ValueError("request_layout must have a count field")
            self._targets = _check_positive("targets", targets)
            self._dispatches = tuple(dispatches)
            for op in self._dispatches:
                if isinstance(op, bool) or not isinstance(op, int) or not 0 <= op <= op_max or op in loads:
                    raise ValueError(f"dispatch opcodes must be integers from 0 to {op_max} that do not load, "
                                     f"not {op!r}")
        count_bits = request_layout["count"].width
        members = {
            "instr": In(stream.Signature(instr_layout)),
            "current": Out(instr_layout),
            "load": In(stream.Signature(load_layout(request_layout, targets=targets))),
            "rd_req": Out(stream.Signature(request_layout)),
            "route": Out(stream.Signature(route_layout(targets=targets, count_bits=count_bits))),
            "arrived": In(1),
            "idle": In(1),
            "done": Out(1),
            "cycles": Out(CYCLE_BITS),
        }
        if self._dispatches:
            members["dispatch"] = Out(stream.Signature(0))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        # The instruction is data: it has no meaning until the handshake that loads it.
        current = Signal(self._instr_layout, reset_less=True)
        m.d.comb += self.current.eq(current)
        op = current[self._op_field]

        waits = Signal()
        with m.Switch(op):
            for code, wait in self._loads.items():
                with m.Case(code):
                    m.d.comb += waits.eq(wait)

        # The payloads follow the engine's offer in every state (they mean something only with
        # ``valid``), so the loader's state gates only the handshake, not the data path.
        request = self.load.payload.request
        registered = self._registered_request
        if registered:
            # The issued request and route wait in registers until memory and the receiver take
            # them (each its own ``held`` bit): the issue sees only registers and ``route.ready``.
            req_held = Signal(name="req_held")
            route_held = Signal(name="route_held")
            req_q = Signal.like(self.rd_req.payload, name="req_q", reset_less=True)
            target_q = Signal.like(self.route.payload.target, name="route_target_q", reset_less=True)
            m.d.comb += [
                self.rd_req.payload.eq(req_q),
                self.rd_req.valid.eq(req_held),
                self.route.payload.target.eq(target_q),
                self.route.payload.count.eq(req_q.count),
                self.route.valid.eq(route_held),
            ]
            with m.If(self.rd_req.ready):
                m.d.sync += req_held.eq(0)
            with m.If(self.route.ready):
                m.d.sync += route_held.eq(0)
            with m.If(self.load.valid & self.load.ready):
                m.d.sync += [req_q.eq(request), target_q.eq(self.load.payload.target),
                             req_held.eq(1), route_held.eq(1)]
            pending = req_held | route_held
            may_end = self.idle & ~pending
        else:
            m.d.comb += [
                self.rd_req.payload.eq(request),
                self.route.payload.target.eq(self.load.payload.target),
                self.route.payload.count.eq(request.count),
            ]
            may_end = self.idle

        done = Signal()
        with m.FSM(name="loader"):
            with m.State("FETCH"):
                m.d.comb += self.instr.ready.eq(1)
                with m.If(self.instr.valid):
                    m.d.sync += current.eq(self.instr.payload)
                    with m.Switch(self.instr.payload[self._op_field]):
                        with m.Case(*self._loads):
                            m.next = "LOAD"
                        if self._dispatches:
                            with m.Case(*self._dispatches):
                                m.next = "DISPATCH"
                        with m.Default():
                            m.next = "END"
            with m.State("LOAD"):
                if registered:
                    m.d.comb += self.load.ready.eq(~pending & self.route.ready)
                else:
                    m.d.comb += [
                        self.rd_req.valid.eq(self.load.valid & self.route.ready),
                        self.route.valid.eq(self.load.valid & self.rd_req.ready),
                        self.load.ready.eq(self.rd_req.ready & self.route.ready),
                    ]
                with m.If(self.load.valid & self.load.ready):
                    with m.If(waits):
                        m.next = "WAIT"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("WAIT"):
                with m.If(self.arrived):
                    m.next = "FETCH"
            if self._dispatches:
                with m.State("DISPATCH"):
                    m.d.comb += self.dispatch.valid.eq(1)
                    with m.If(self.dispatch.ready):
                        m.next = "FETCH"
            with m.State("END"):
                with m.If(may_end):
                    m.d.sync += done.eq(1)
                    m.next = "HALT"
            with m.State("HALT"):
                pass

        cycles = Signal(CYCLE_BITS)
        with m.If(~done):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += [self.done.eq(done), self.cycles.eq(cycles)]
        return m


class Receiver(wiring.Component):
    """Routes read data to on-chip buffers, in request order.

    Every read request comes with a route (target buffer, record count) pushed on ``route`` in
    the cycle of the request. The receiver keeps up to ``depth`` routes, oldest first; each
    record arriving on ``rd_data`` belongs to the oldest route and leaves on ``beat`` in the same
    cycle, numbered from 0 within its transfer. The route is retired with its last record.

    Parameters (keyword-only)
    -------------------------
    data_bits : int
        Width of a read-data beat.
    targets : int
        Number of buffers a route can name.
    count_bits : int
        Width of a route's record count.
    depth : int
        Routes held at once: at least the number of read requests the engine can have in flight.

    Members
    -------
    route : In(stream.Signature(route_layout(targets=targets, count_bits=count_bits)))
        Routes of new read requests; ``ready`` while fewer than ``depth`` are held. A route's
        ``count`` must be at least 1.
    rd_data : In(stream.Signature(data_bits, always_ready=True))
        Read records in request order. Never stalled; a record that arrives while no route is
        held belongs to no request and is dropped.
    beat : Out(stream.Signature(beat_layout(...), always_ready=True))
        Each routed record in its arrival cycle (combinational): ``target``, ``index`` within
        the transfer, ``last`` record of the transfer, ``data``. The consumer takes every beat.
    ahead : Out(ahead_layout(targets=targets))
        Only with ``ahead=True``: what the next cycle's beat will carry, ``held`` (a route is
        held), ``target`` and ``last``, the values its registers take (combinational), so that
        a consumer can register its own conditions on the next beat.
    """

    def __init__(self, *, data_bits: int, targets: int, count_bits: int, depth: int, ahead: bool = False):
        with rejected_is_not_unused(self):
            self._data_bits = _check_positive("data_bits", data_bits)
            self._targets = _check_positive("targets", targets)
            self._count_bits = _check_positive("count_bits", count_bits)
            self._depth = _check_positive("depth", depth)
        self._ahead = bool(ahead)
        members = {
            "route": In(stream.Signature(route_layout(targets=targets, count_bits=count_bits))),
            "rd_data": In(stream.Signature(data_bits, always_ready=True)),
            "beat": Out(
                stream.Signature(
                    beat_layout(targets=targets, count_bits=count_bits, data_bits=data_bits),
                    always_ready=True,
                )
            ),
        }
        if self._ahead:
            members["ahead"] = Out(ahead_layout(targets=targets))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        # What a beat needs of its route, prepared when the route is pushed so that ``last`` is
        # a register: no count decrement, compare or queue read sits between a beat's arrival
        # and the buffer state it updates. ``penult`` is ``count - 2``: the index after which
        # the next beat is the last (meaningless when ``single``, a route of one record).
        entry_layout = data.StructLayout(
            {"target": range(self._targets), "single": 1, "penult": self._count_bits}
        )
        # Queue entries are data: only the ``level`` entries from ``head`` are meaningful.
        entries = Array(Signal(entry_layout, name=f"route{i}", reset_less=True) for i in range(depth))
        head = Signal(range(depth))
        tail = Signal(range(depth))
        level = Signal(range(depth + 1))
        index = Signal(self._count_bits)
        # The next beat of the oldest route is its last, and that route's target (meaningful
        # while a route is held), and whether one is: registers, so that a beat's buffer write
        # enable is one gate from a register even when it fans out to many LUT-RAM cells.
        is_last = Signal()
        oldest_target = Signal(range(self._targets))
        held = Signal()
        room = Signal(init=1)  # fewer than ``depth`` routes are held (a register, as ``held``)

        def wrap_inc(ptr):
            return Mux(ptr == depth - 1, 0, ptr + 1)

        push = Signal()
        pop = Signal()
        oldest = entries[head]
        beat = self.beat
        route = self.route.payload
        route_single = Signal()
        m.d.comb += [
            self.route.ready.eq(room),
            push.eq(self.route.valid & self.route.ready),
            route_single.eq(route.count == 1),
            beat.valid.eq(self.rd_data.valid & held),
            beat.payload.target.eq(oldest_target),
            beat.payload.index.eq(index),
            beat.payload.last.eq(is_last),
            beat.payload.data.eq(self.rd_data.payload),
            pop.eq(beat.valid & is_last),
        ]
        with m.If(beat.valid):
            m.d.sync += index.eq(Mux(is_last, 0, index + 1))
        # The oldest route next cycle is: the one after head (after a pop), the route pushed
        # now (if the queue is or becomes empty), or still head.
        with m.If(pop):
            m.d.sync += [
                is_last.eq(Mux(level == 1, route_single, entries[wrap_inc(head)].single)),
                oldest_target.eq(Mux(level == 1, route.target, entries[wrap_inc(head)].target)),
            ]
        with m.Elif(beat.valid):
            m.d.sync += is_last.eq(index == oldest.penult)
        with m.Elif(level == 0):
            m.d.sync += [is_last.eq(route_single), oldest_target.eq(route.target)]
        with m.If(push):
            m.d.sync += [
                entries[tail].target.eq(route.target),
                entries[tail].single.eq(route_single),
                entries[tail].penult.eq(route.count - 2),
                tail.eq(wrap_inc(tail)),
            ]
        with m.If(pop):
            m.d.sync += head.eq(wrap_inc(head))
        next_level = Signal.like(level)
        m.d.comb += next_level.eq(level + push - pop)
        m.d.sync += [level.eq(next_level), held.eq(next_level != 0), room.eq(next_level != depth)]
        if self._ahead:  # (the same updates as the registers', as values)
            ahead = self.ahead
            m.d.comb += [ahead.held.eq(next_level != 0), ahead.target.eq(oldest_target), ahead.last.eq(is_last)]
            with m.If(pop):
                m.d.comb += [
                    ahead.last.eq(Mux(level == 1, route_single, entries[wrap_inc(head)].single)),
                    ahead.target.eq(Mux(level == 1, route.target, entries[wrap_inc(head)].target)),
                ]
            with m.Elif(beat.valid):
                m.d.comb += ahead.last.eq(index == oldest.penult)
            with m.Elif(level == 0):
                m.d.comb += [ahead.last.eq(route_single), ahead.target.eq(route.target)]
        return m


class Store(wiring.Component):
    """Writes the rows of finished output banks to memory, one job at a time.

    A job names a ``bank`` whose rows ``0 .. rows-1`` go to consecutive rows of memory from byte
    ``addr``, ``row_bytes`` apart. The store reads row ``read_row`` of bank :attr:`bank` from a
    synchronous read port (data on ``read_data`` the next cycle) and offers it on ``wr``.

    Timing (the "Store" engine of docs/<engine>.md): a job is taken in the cycle it is valid if the store is
    idle or its previous job's last row is accepted in that cycle; its first row is offered on
    ``wr`` from the next cycle, and each accepted row is followed by the next one in the next
    cycle. ``done`` marks the cycle in which a job's last row is accepted.

    Parameters (keyword-only)
    -------------------------
    banks : int
        Number of output banks a job can name.
    addr_bits, count_bits, data_bits : int
        Widths of a byte address, a row count and an output row.
    row_bytes : int
        Bytes between consecutive rows in memory.
    max_row_bytes : int or None
        Instead of ``row_bytes`` (pass 0 there): every job names its own ``row_bytes`` (up to
        this), and every write its ``bytes``.

    Members
    -------
    job : In(stream.Signature(store_job_layout(banks=banks, addr_bits=addr_bits, count_bits=count_bits)))
        Jobs; ``rows`` must be at least 1. ``ready`` while idle or finishing a job.
    bank : Out(range(banks))
        The bank of the job being stored (registered when a job is taken).
    read_row : Out(count_bits)
        Row of :attr:`bank` to read this cycle (for the row offered next cycle).
    read_data : In(data_bits)
        The row read in the previous cycle.
    wr : Out(stream.Signature(write_layout(addr_bits=addr_bits, data_bits=data_bits)))
        Rows to memory, ``last`` on a job's last row.
    busy : Out(1)
        A job is being stored (``wr.valid``).
    done : Out(1)
        A job's last row is accepted this cycle (its bank is free from the next cycle).
    """

    def __init__(
        self,
        *,
        banks: int,
        addr_bits: int,
        count_bits: int,
        data_bits: int,
        row_bytes: int,
        max_row_bytes: int | None = None,
    ):
        with rejected_is_not_unused(self):
            self._banks = _check_positive("banks", banks)
            self._addr_bits = _check_positive("addr_bits", addr_bits)
            self._count_bits = _check_positive("count_bits", count_bits)
            self._data_bits = _check_positive("data_bits", data_bits)
            if max_row_bytes is None:
                self._row_bytes = _check_positive("row_bytes", row_bytes)
            else:
                self._row_bytes = None
                _check_positive("max_row_bytes", max_row_bytes)
            self._max_row_bytes = max_row_bytes
        super().__init__(
            {
                "job": In(
                    stream.Signature(
                        store_job_layout(
                            banks=banks, addr_bits=addr_bits, count_bits=count_bits, max_row_bytes=max_row_bytes
                        )
                    )
                ),
                "bank": Out(range(banks)),
                "read_row": Out(count_bits),
                "read_data": In(data_bits),
                "wr": Out(
                    stream.Signature(
                        write_layout(addr_bits=addr_bits, data_bits=data_bits, max_row_bytes=max_row_bytes)
                    )
                ),
                "busy": Out(1),
                "done": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        bank = Signal(range(self._banks))
        row = Signal(self._count_bits)
        # Job data: meaningful only while busy. ``rows_m2`` is ``rows - 2``, the row after which
        # the next one is the last: with it ``last`` is a register, so no count decrement and
        # compare sit between ``wr.ready`` and the next job's start.
        addr = Signal(self._addr_bits, reset_less=True)
        rows_m2 = Signal(self._count_bits, reset_less=True)
        last = Signal()  # the row offered now is the job's last

        accepted = Signal()
        finishing = Signal()
        start = Signal()
        next_row = Signal(self._count_bits)
        m.d.comb += [
            accepted.eq(self.wr.valid & self.wr.ready),
            finishing.eq(accepted & last),
            self.job.ready.eq(~busy | finishing),
            start.eq(self.job.valid & self.job.ready),
            next_row.eq(Mux(start, 0, row + accepted)),
            # The row offered next cycle is read this cycle, so its data is there when offered.
            self.read_row.eq(next_row),
            self.bank.eq(bank),
            self.busy.eq(busy),
            self.done.eq(finishing),
            self.wr.valid.eq(busy),
            self.wr.payload.addr.eq(addr),
            self.wr.payload.data.eq(self.read_data),
            self.wr.payload.last.eq(last),
        ]
        m.d.sync += row.eq(next_row)
        if self._row_bytes is None:
            row_bytes = Signal(range(self._max_row_bytes + 1), reset_less=True)
            m.d.comb += self.wr.payload.bytes.eq(row_bytes)
            with m.If(start):
                m.d.sync += row_bytes.eq(self.job.payload.row_bytes)
        else:
            row_bytes = self._row_bytes
        with m.If(accepted):
            m.d.sync += [addr.eq(addr + row_bytes), last.eq(row == rows_m2)]
        with m.If(finishing):
            m.d.sync += busy.eq(0)
        with m.If(start):
            m.d.sync += [
                busy.eq(1),
                bank.eq(self.job.payload.bank),
                addr.eq(self.job.payload.addr),
                rows_m2.eq(self.job.payload.rows - 2),
                last.eq(self.job.payload.rows == 1),
            ]
        return m
