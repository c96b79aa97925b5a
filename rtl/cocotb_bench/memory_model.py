"""Cycle-level memory model of docs/dsp_chain.md, driven once per clock cycle by the bench.

Plain Python, no cocotb: in cycle ``x`` the bench samples the engine's outputs, asks the model
for that cycle's inputs (:meth:`MemoryModel.read_request_ready`, :meth:`MemoryModel.read_data`,
:meth:`MemoryModel.write_ready`), drives them and reports the handshakes of the cycle
(:meth:`MemoryModel.read_request`, :meth:`MemoryModel.write`). A handshake happens in cycle ``x``
when the sampled ``valid`` and the driven ``ready`` are both high.

Contract (docs, "Memory model"): reads and writes each have their own port of
``BW = channels * bytes_per_cycle`` bytes per cycle, responses are in order, a port moves at
most one record per cycle, and record ``j`` of a transfer of ``S``-byte records moves at offset
``off(j) = max(j, ceil((j+1)*S/BW) - 1)`` from the transfer's start ``t0``:

- read request handshaken in cycle ``r``: ``t0 = max(r + latency, read_free)``; after the last
  record at ``t``, ``read_free = t + 1``;
- write burst whose first record is offered in cycle ``v``: ``t0 = max(v, write_free)``; after
  the last acceptance at ``t``, ``write_free = t + 1``.

With ``stalls`` (a seeded :class:`StallPolicy`) the model adds random gaps between read-data
records, random back-pressure on read requests and writes; the values stay exact, the timing
does not follow the contract any more.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field


def record_offset(j: int, rec_bytes: int, bandwidth: int) -> int:
    """``off(j) = max(j, ceil((j+1)*S/BW) - 1)``: cycle of record ``j`` after a transfer's start."""
    return max(j, -(-(j + 1) * rec_bytes // bandwidth) - 1)


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


@dataclass
class MemoryStats:
    read_requests: int = 0
    records_read: int = 0
    bytes_read: int = 0
    records_written: int = 0
    bursts_written: int = 0
    errors: list[str] = field(default_factory=list)


class MemoryModel:
    """Byte-addressed memory image with one read port and one write port.

    Parameters
    ----------
    image : bytearray
        Memory contents, updated in place by writes.
    bandwidth : int
        ``BW`` bytes per cycle of each port.
    latency : int
        Cycles from a read request to its first record (at the earliest).
    write_bytes : int
        Bytes of one written record (an output row).
    stalls : StallPolicy or None
        Random stalls; None follows the contract's timing exactly.
    """

    def __init__(
        self,
        image: bytearray,
        *,
        bandwidth: int,
        latency: int,
        write_bytes: int,
        stalls: StallPolicy | None = None,
    ):
        if bandwidth < 1:
            raise ValueError(f"bandwidth must be a positive integer, not {bandwidth}")
        if latency < 1:
            raise ValueError(f"latency must be at least 1 cycle, not {latency}")
        self.image = image
        self._bw = bandwidth
        self._latency = latency
        self._write_bytes = write_bytes
        self._stalls = stalls
        self._rng = random.Random(stalls.seed) if stalls is not None else None
        self._read_free = 0
        self._write_free = 0
        self._beats: deque[tuple[int, int, int]] = deque()  # (cycle, address, bytes), in order
        self._burst: _WriteBurst | None = None
        self.stats = MemoryStats()

    # -- random stalls --------------------------------------------------------------------
    def _chance(self, p: float) -> bool:
        return self._rng is not None and self._rng.random() < p

    def instr_valid(self) -> bool:
        """Whether the instruction source offers its next word this cycle."""
        return not (self._stalls and self._chance(self._stalls.instr_gap))

    # -- one cycle --------------------------------------------------------------------------
    def read_request_ready(self) -> bool:
        """``ready`` of the read-request port this cycle (drawn before seeing the request)."""
        return not (self._stalls and self._chance(self._stalls.request_busy))

    def read_request(self, cycle: int, addr: int, count: int, rec_bytes: int) -> None:
        """A read request was handshaken in ``cycle``: schedule its records."""
        self.stats.read_requests += 1
        if count < 1 or rec_bytes < 1:
            self.stats.errors.append(f"cycle {cycle}: read request count={count} rec_bytes={rec_bytes}")
            return
        t0 = max(cycle + self._latency, self._read_free)
        t = t0 - 1
        for j in range(count):
            t = max(t0 + record_offset(j, rec_bytes, self._bw), t + 1)
            if self._stalls:
                while self._chance(self._stalls.read_gap):
                    t += 1
            self._beats.append((t, addr + j * rec_bytes, rec_bytes))
        self._read_free = t + 1
        self.stats.bytes_read += count * rec_bytes

    def read_data(self, cycle: int) -> int | None:
        """The record delivered in ``cycle`` (little-endian integer), or None."""
        if not self._beats or self._beats[0][0] != cycle:
            return None
        _, addr, nbytes = self._beats.popleft()
        if addr + nbytes > len(self.image):
            self.stats.errors.append(f"cycle {cycle}: read of {nbytes} bytes at {addr} is out of range")
            return 0
        self.stats.records_read += 1
        return int.from_bytes(self.image[addr : addr + nbytes], "little")

    def write_ready(self, cycle: int, valid: bool) -> bool:
        """``ready`` of the write port in ``cycle``, given the engine's ``valid`` this cycle."""
        if not valid:
            return False
        if self._burst is None:
            t0 = max(cycle, self._write_free)
            self._burst = _WriteBurst(t0=t0, next_time=t0 + record_offset(0, self._write_bytes, self._bw))
        if cycle < self._burst.next_time:
            return False
        return not (self._stalls and self._chance(self._stalls.write_busy))

    def write(self, cycle: int, addr: int, value: int, last: bool) -> None:
        """A record was accepted in ``cycle`` (after :meth:`write_ready` said so)."""
        burst = self._burst
        assert burst is not None, "write accepted outside a burst"
        nbytes = self._write_bytes
        if addr + nbytes > len(self.image):
            self.stats.errors.append(f"cycle {cycle}: write of {nbytes} bytes at {addr} is out of range")
        else:
            self.image[addr : addr + nbytes] = value.to_bytes(nbytes, "little")
        self.stats.records_written += 1
        burst.accepted += 1
        burst.next_time = max(
            burst.t0 + record_offset(burst.accepted, self._write_bytes, self._bw), cycle + 1
        )
        if last:
            self._write_free = cycle + 1
            self._burst = None
            self.stats.bursts_written += 1

    @property
    def idle(self) -> bool:
        """No record scheduled and no write burst open."""
        return not self._beats and self._burst is None
