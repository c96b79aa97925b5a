"""Off-chip memory timing: the one definition shared by the Numba simulators and the RTL benches.

The memory is ``channels`` x ``bytes_per_cycle`` at the accelerator clock with a fixed
``latency`` in cycles and in-order responses per channel; each engine's contract in docs/ says
how it uses the memory. Engines see it in one of two ways:

**Striped streams** (engines that stream fixed-size records): a transfer of ``n`` records of
``S`` bytes is striped over all channels, so the channels act as one port of
``BW = channels * bytes_per_cycle`` bytes per cycle that moves at most one record per cycle.
Record ``j`` moves at ``t0 + off(j)`` with ``off(j) = max(j, ceil((j+1)*S/BW) - 1)``. Reads and
writes have a port each:

- read request handshaken in cycle ``r``: ``t0 = max(r + latency, read_free)``;
- write burst whose first record is offered in cycle ``v``: ``t0 = max(v, write_free)``
  (writes are posted: no latency);
- after a transfer's last record at ``t`` the port is free again: ``read_free = t + 1``
  (``write_free`` likewise).

**Line requests** (the interface ``recsys`` gathers build on): a request names one line of
``line_bytes`` (64 by default) at a line-aligned address. Lines interleave over the channels,
``channel(addr) = (addr // line_bytes) % channels``; each channel serves its requests in order,
taking ``beats = ceil(line_bytes / bytes_per_cycle)`` cycles per line. A request handshaken in
cycle ``r`` on channel ``c`` completes (its whole line is delivered) in cycle
``t = max(r + latency, free[c]) + beats - 1`` and then ``free[c] = t + 1``. Responses of
different channels may complete out of order; a requester matches them by tag. A requester
handshakes at most one request per cycle and keeps at most ``max_outstanding`` in flight: a
request occupies its slot from its handshake up to and including its completion cycle, so the
slot is usable again in the next cycle. A posted line write handshaken in ``x`` takes no slot
and no latency: it occupies its channel from ``max(x, free[c])`` for ``beats`` cycles
(:func:`line_serve` is the one queue rule of reads and writes). The striped stream is the special case of one request
whose records are spread over every channel; it keeps its own formula above because streamed
records are not line-sized.

Two implementations of each, kept in agreement by property tests:

- closed-form event functions (``@njit``, plain integers and arrays: callable from Numba
  kernels and from Python): :func:`record_offset`, :func:`transfer_end`, :func:`read_start`,
  :func:`write_start`, :func:`line_channel`, :func:`line_serve`, :func:`line_read_times`;
- cycle-driven models that the RTL benches step once per cycle, built on those functions: :class:`StripedMemory` and :class:`LineMemory`.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numba import njit

#: Default line size of line requests, in bytes (one DDR4/HBM burst of 64 B).
LINE_BYTES = 64


# ------------------------------------------------------------------------------------------
# Closed-form timing (Numba)


@njit(cache=True, inline="always")
def record_offset(j: int, rec_bytes: int, bandwidth: int) -> int:
    """``off(j) = max(j, ceil((j+1)*S/BW) - 1)``: cycle of record ``j`` after a transfer's
    start, for records of ``rec_bytes`` over a port of ``bandwidth`` bytes per cycle."""
    by_bandwidth = ((j + 1) * rec_bytes + bandwidth - 1) // bandwidth - 1
    return j if j > by_bandwidth else by_bandwidth


@njit(cache=True, inline="always")
def transfer_end(t0: int, n: int, rec_bytes: int, bandwidth: int) -> int:
    """Cycle of the last of ``n >= 1`` records of a transfer starting at ``t0``."""
    return t0 + record_offset(n - 1, rec_bytes, bandwidth)


@njit(cache=True, inline="always")
def read_start(request_cycle: int, latency: int, read_free: int) -> int:
    """``t0`` of a striped read handshaken in ``request_cycle``."""
    t0 = request_cycle + latency
    return t0 if t0 > read_free else read_free


@njit(cache=True, inline="always")
def write_start(valid_cycle: int, write_free: int) -> int:
    """``t0`` of a striped write burst whose first record is offered in ``valid_cycle``."""
    return valid_cycle if valid_cycle > write_free else write_free


@njit(cache=True)
def line_channel(addr: int, line_bytes: int, channels: int) -> int:
    """Channel that serves the line at byte address ``addr`` (line interleaving)."""
    return (addr // line_bytes) % channels


@njit(cache=True)
def line_serve(free: np.ndarray, channel: int, earliest: int, beats: int) -> int:
    """Queue one line on ``channel``, whose in-order queue is free from ``free[channel]``: it
    occupies the channel for ``beats`` cycles from ``max(earliest, free[channel])``. Returns the
    cycle of its last beat (a read's delivery, a write's completion) and advances ``free``.
    A read handshaken in ``x`` has ``earliest = x + latency``; a posted write ``earliest = x``."""
    t0 = earliest if earliest > free[channel] else free[channel]
    t = t0 + beats - 1
    free[channel] = t + 1
    return t


@njit(cache=True)
def line_read_times(
    ready: np.ndarray,
    addr: np.ndarray,
    line_bytes: int,
    channels: int,
    bytes_per_cycle: int,
    latency: int,
    max_outstanding: int,
    issue: np.ndarray,
    done: np.ndarray,
) -> None:
    """Time a requester's line reads, in program order.

    Request ``i`` may be handshaken from cycle ``ready[i]`` on, one per cycle, with at most
    ``max_outstanding`` in flight; fills ``issue[i]`` (handshake cycle) and ``done[i]`` (cycle
    its line is delivered). The requester holds ``max_outstanding`` slots; each request takes the
    slot that frees first, which is exact because a slot's earlier requests completed before its
    latest one was issued.
    """
    beats = (line_bytes + bytes_per_cycle - 1) // bytes_per_cycle
    free = np.zeros(channels, dtype=np.int64)
    slots = np.full(max_outstanding, -1, dtype=np.int64)  # completion cycle of each slot
    prev = np.int64(-1)
    for i in range(ready.shape[0]):
        s = 0
        for k in range(1, max_outstanding):
            if slots[k] < slots[s]:
                s = k
        r = np.int64(ready[i])
        if prev + 1 > r:
            r = prev + 1
        if slots[s] + 1 > r:
            r = slots[s] + 1
        t = line_serve(free, line_channel(addr[i], line_bytes, channels), r + latency, beats)
        slots[s] = t
        issue[i] = r
        done[i] = t
        prev = r


# ------------------------------------------------------------------------------------------
# Cycle-driven models for the RTL benches


def _python(fn):
    """The plain-Python body of a Numba function (itself under ``NUMBA_DISABLE_JIT``). The
    cycle-driven models call the same definitions this way: from Python, a Numba function costs
    a dispatch per call and, in a fresh process such as a cocotb run, about 2 s of compiling or
    cache loading on its first call."""
    return getattr(fn, "py_func", fn)


_record_offset = _python(record_offset)
_read_start = _python(read_start)
_write_start = _python(write_start)
_line_channel = _python(line_channel)
_line_serve = _python(line_serve)


@dataclass(frozen=True)
class StallPolicy:
    """Random stalls, reproducible from ``seed``; probabilities are per cycle."""

    seed: int
    read_gap: float = 0.3  # a read-data record is held back one more cycle
    instr_gap: float = 0.3  # the instruction stream is not valid this cycle
    request_busy: float = 0.3  # the read-request port is not ready this cycle
    write_busy: float = 0.3  # the write port is not ready this cycle


@dataclass
class _WriteBurst:
    t0: int
    accepted: int = 0
    next_time: int = 0
    nbytes: int = 0  # bytes of each record of the burst


@dataclass
class MemoryStats:
    read_requests: int = 0
    records_read: int = 0
    bytes_read: int = 0
    records_written: int = 0
    bursts_written: int = 0
    errors: list[str] = field(default_factory=list)


def _check_positive(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


class StripedMemory:
    """Byte-addressed memory image with one striped read port and one striped write port.

    In cycle ``x`` the bench samples the engine's outputs, asks the model for that cycle's inputs
    (:meth:`read_request_ready`, :meth:`read_data`, :meth:`write_ready`), drives them and reports
    the handshakes of the cycle (:meth:`read_request`, :meth:`write`); a handshake happens in
    cycle ``x`` when the sampled ``valid`` and the driven ``ready`` are both high. Without ``stalls`` every record
    moves exactly when :func:`read_start`/:func:`write_start` and :func:`record_offset` say.
    With ``stalls`` (a seeded :class:`StallPolicy`) read-data records get random gaps and read
    requests and writes random back-pressure: values stay exact, timing no longer follows
    the contract.

    Parameters
    ----------
    image : bytearray
        Memory contents, updated in place by writes.
    bandwidth : int
        ``BW`` bytes per cycle of each port (all channels together).
    latency : int
        Cycles from a read request to its first record (at the earliest).
    write_bytes : int
        Bytes of one written record (an output row).
    stalls : StallPolicy or None
        Random stalls; None follows the contract's timing exactly.
    beats : bool
        Read data as the port's beats instead of whole records: a transfer of records of
        ``S >= BW`` bytes moves as its byte stream, ``BW`` bytes a cycle (beat ``b`` holds the
        transfer's bytes ``b*BW .. (b+1)*BW - 1``, in the cycle record ``j`` would move when
        ``b = off(j)``, the beat holding its last byte); records shorter than ``BW`` still move
        one per beat, alone. Without stalls every record's last byte moves exactly when it
        would as a whole record.
    """

    def __init__(
        self,
        image: bytearray,
        *,
        bandwidth: int,
        latency: int,
        write_bytes: int,
        stalls: StallPolicy | None = None,
        beats: bool = False,
    ):
        self._bw = _check_positive("bandwidth", bandwidth)
        self._read_beats = bool(beats)
        self._latency = _check_positive("latency", latency)
        self._write_bytes = _check_positive("write_bytes", write_bytes)
        self.image = image
        self._stalls = stalls
        self._rng = random.Random(stalls.seed) if stalls is not None else None
        self._read_free = 0
        self._write_free = 0
        # (cycle, address, bytes, records whose last byte it holds), in order
        self._beats: deque[tuple[int, int, int, int]] = deque()
        self._burst: _WriteBurst | None = None
        self.stats = MemoryStats()

    def _chance(self, p: float) -> bool:
        return self._rng is not None and self._rng.random() < p

    def instr_valid(self) -> bool:
        """Whether the instruction source offers its next word this cycle."""
        return not (self._stalls and self._chance(self._stalls.instr_gap))

    def read_request_ready(self) -> bool:
        """``ready`` of the read-request port this cycle (drawn before seeing the request)."""
        return not (self._stalls and self._chance(self._stalls.request_busy))

    def read_request(self, cycle: int, addr: int, count: int, rec_bytes: int) -> None:
        """A read request was handshaken in ``cycle``: schedule its records."""
        self.stats.read_requests += 1
        if count < 1 or rec_bytes < 1:
            self.stats.errors.append(f"cycle {cycle}: read request count={count} rec_bytes={rec_bytes}")
            return
        t0 = _read_start(cycle, self._latency, self._read_free)
        t = t0 - 1
        if self._read_beats and rec_bytes > self._bw:
            total = count * rec_bytes
            # (records whose last byte lies in beat b: those j with off(j) == b)
            for b in range(-(-total // self._bw)):
                t = max(t0 + b, t + 1)
                if self._stalls:
                    while self._chance(self._stalls.read_gap):
                        t += 1
                lo, hi = b * self._bw, min((b + 1) * self._bw, total)
                self._beats.append((t, addr + lo, hi - lo, hi // rec_bytes - lo // rec_bytes))
        else:
            for j in range(count):
                t = max(t0 + _record_offset(j, rec_bytes, self._bw), t + 1)
                if self._stalls:
                    while self._chance(self._stalls.read_gap):
                        t += 1
                self._beats.append((t, addr + j * rec_bytes, rec_bytes, 1))
        self._read_free = t + 1
        self.stats.bytes_read += count * rec_bytes

    def read_data(self, cycle: int) -> int | None:
        """The record (or with ``beats`` the beat) delivered in ``cycle`` (little-endian
        integer), or None."""
        if not self._beats or self._beats[0][0] != cycle:
            return None
        _, addr, nbytes, records = self._beats.popleft()
        if addr + nbytes > len(self.image):
            self.stats.errors.append(f"cycle {cycle}: read of {nbytes} bytes at {addr} is out of range")
            return 0
        self.stats.records_read += records
        return int.from_bytes(self.image[addr : addr + nbytes], "little")

    def write_ready(self, cycle: int, valid: bool, nbytes: int | None = None) -> bool:
        """``ready`` of the write port in ``cycle``, given the engine's ``valid`` this cycle
        (and, for engines whose writes say their size, the offered record's ``nbytes``, which
        is that of the whole burst)."""
        if not valid:
            return False
        if self._burst is None:
            t0 = _write_start(cycle, self._write_free)
            size = self._write_bytes if nbytes is None else nbytes
            self._burst = _WriteBurst(t0=t0, next_time=t0 + _record_offset(0, size, self._bw), nbytes=size)
        if cycle < self._burst.next_time:
            return False
        return not (self._stalls and self._chance(self._stalls.write_busy))

    def write(self, cycle: int, addr: int, value: int, last: bool) -> None:
        """A record was accepted in ``cycle`` (after :meth:`write_ready` returned True)."""
        burst = self._burst
        if burst is None:
            self.stats.errors.append(f"cycle {cycle}: write accepted outside a burst")
            return
        nbytes = burst.nbytes
        if addr + nbytes > len(self.image):
            self.stats.errors.append(f"cycle {cycle}: write of {nbytes} bytes at {addr} is out of range")
        else:
            # Bits above the record's bytes are not part of it (rows narrower than the port).
            self.image[addr : addr + nbytes] = (value & ((1 << 8 * nbytes) - 1)).to_bytes(nbytes, "little")
        self.stats.records_written += 1
        burst.accepted += 1
        burst.next_time = max(
            burst.t0 + _record_offset(burst.accepted, nbytes, self._bw), cycle + 1
        )
        if last:
            self._write_free = cycle + 1
            self._burst = None
            self.stats.bursts_written += 1

    @property
    def idle(self) -> bool:
        """No record scheduled and no write burst open."""
        return not self._beats and self._burst is None


class LineMemory:
    """Line-interleaved memory serving tagged line reads, one in-order queue per channel.

    The cycle-driven counterpart of :func:`line_read_times` for gather engines: call
    :meth:`can_request` and :meth:`request` for the handshakes of cycle ``x``, then
    :meth:`responses` for the lines delivered in cycle ``x``. Every requester (an integer id)
    has its own ``max_outstanding`` limit and may handshake one request per cycle.

    Parameters
    ----------
    image : bytearray
        Memory contents (posted writes update it).
    channels, bytes_per_cycle, latency : int
        As in the memory configuration; ``bytes_per_cycle`` is per channel.
    line_bytes : int
        Bytes of one line, the unit of interleaving and of every request.
    max_outstanding : int
        Requests a requester may have in flight.
    """

    def __init__(
        self,
        image: bytes | bytearray,
        *,
        channels: int,
        bytes_per_cycle: int,
        latency: int,
        line_bytes: int = LINE_BYTES,
        max_outstanding: int,
    ):
        self._channels = _check_positive("channels", channels)
        self._bpc = _check_positive("bytes_per_cycle", bytes_per_cycle)
        self._latency = _check_positive("latency", latency)
        self._line = _check_positive("line_bytes", line_bytes)
        self._max_out = _check_positive("max_outstanding", max_outstanding)
        self.image = image
        self._beats = -(-self._line // self._bpc)
        self._free = np.zeros(self._channels, dtype=np.int64)
        self._queues: list[deque[tuple[int, int, int, int]]] = [deque() for _ in range(self._channels)]
        self._in_flight: dict[int, int] = {}
        self._last_request: dict[int, int] = {}

    def can_request(self, cycle: int, requester: int = 0) -> bool:
        """Whether ``requester`` may handshake a request in ``cycle``."""
        return (
            self._in_flight.get(requester, 0) < self._max_out
            and self._last_request.get(requester, -1) < cycle
        )

    def request(self, cycle: int, addr: int, tag: int, requester: int = 0) -> None:
        """Handshake a read of the line at ``addr`` (line-aligned) in ``cycle``."""
        if addr % self._line:
            raise ValueError(f"line request address must be a multiple of {self._line}, not {addr}")
        if not self.can_request(cycle, requester):
            raise ValueError(f"cycle {cycle}: requester {requester} may not issue a request")
        c = _line_channel(addr, self._line, self._channels)
        t = _line_serve(self._free, c, cycle + self._latency, self._beats)
        self._queues[c].append((t, addr, tag, requester))
        self._in_flight[requester] = self._in_flight.get(requester, 0) + 1
        self._last_request[requester] = cycle

    def write(self, cycle: int, addr: int, data: bytes) -> int:
        """A posted write of ``data`` (at most a line, not crossing one) handshaken in ``cycle``:
        it takes its channel's next ``beats`` cycles from ``cycle`` on and needs no tag. Returns
        its completion cycle; the image holds the data from then on for reads issued later."""
        if addr // self._line != (addr + max(len(data), 1) - 1) // self._line:
            raise ValueError(f"write of {len(data)} bytes at {addr} crosses a {self._line}-byte line")
        c = _line_channel(addr, self._line, self._channels)
        t = _line_serve(self._free, c, cycle, self._beats)
        self.image[addr: addr + len(data)] = data
        return t

    def responses(self, cycle: int) -> list[tuple[int, int, bytes]]:
        """Lines delivered in ``cycle`` as ``(requester, tag, data)``, by channel number."""
        out = []
        for queue in self._queues:
            if queue and queue[0][0] == cycle:
                _, addr, tag, requester = queue.popleft()
                out.append((requester, tag, bytes(self.image[addr : addr + self._line])))
                # The slot frees after this cycle: can_request() of cycle + 1 sees it.
                self._in_flight[requester] -= 1
        return out

    @property
    def idle(self) -> bool:
        return not any(self._queues)
