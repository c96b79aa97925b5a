"""Cycle-level simulator of the ``dsp_chain`` engine.

Executes a Program's instructions against the shared memory model (:mod:`sparsim.simulator.memory`)
and the four concurrent engines of docs/dsp_chain.md (loader, receiver, compute, store), event by
event: every engine's start and finish cycle is computed exactly as the RTL's registers produce
them, so the cycle count equals the RTL's. The kernel is a Numba function over plain arrays
(structure of arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from sparsim.dataflow import dsp_chain_isa as isa
from sparsim.dataflow.dsp_chain import Program

from . import results
from .memory import read_start, transfer_end, write_start

#: Causes a compute engine can wait on, in the order of the ``stalls`` array.
STALL_CAUSES = ("weight_stream", "dispatch", "out_bank", "pipeline_drain", "tail")
_W_STREAM, _DISPATCH, _OUT_BANK, _DRAIN, _TAIL = range(5)


@njit(cache=True)
def _run_kernel(
    op: np.ndarray,
    steps: np.ndarray,
    tgroups: np.ndarray,
    int4: np.ndarray,
    dense: np.ndarray,
    operator: np.ndarray,
    sync: np.ndarray,
    rec_table: np.ndarray,
    act_row_bytes: np.int64,
    n_operators: np.int64,
    out_row_bytes: np.int64,
    pipe: np.int64,
    bw: np.int64,
    latency: np.int64,
    stalls: np.ndarray,
    op_cycles: np.ndarray,
    counters: np.ndarray,
) -> np.int64:
    """Returns the Program's cycle count; fills ``stalls`` [5], ``op_cycles`` [n_operators],
    ``counters`` [bytes_read, bytes_written, issue_cycles, mm_count].

    The instruction fields are the Program's own columns (strided views, no copies); an MM's
    weight-record bytes come from ``rec_table[int4 * 2 + dense]``, an LDA's row bytes are
    ``act_row_bytes``."""
    f = np.int64(0)  # cycle the loader takes the current instruction
    read_free = np.int64(0)
    write_free = np.int64(0)
    e_prev = np.int64(-1)  # compute done of the previous MM
    e_hist0 = np.int64(-1)  # compute done of MM i-2 (frees weight bank i % 2)
    e_hist1 = np.int64(-1)
    z_prev = np.int64(-1)  # store done of the previous MM
    z_hist0 = np.int64(-1)  # store done of MM i-2 (frees output bank i % 2)
    z_hist1 = np.int64(-1)
    e_guard = np.int64(-1)  # compute done of the last MM before the previous LDA
    last_op = np.int64(-1)
    mm = np.int64(0)
    bytes_read = np.int64(0)
    bytes_written = np.int64(0)
    issue_total = np.int64(0)
    for i in range(op.shape[0]):
        code = op[i]
        if code == 2:  # MM
            # Loader: wait for the weight bank (freed when MM i-2 finished computing).
            bank_free = (e_hist0 if mm % 2 == 0 else e_hist1) + 1
            r = f + 1 if f + 1 > bank_free else bank_free
            f = r + 1
            n = np.int64(steps[i])
            s_bytes = rec_table[np.int64(int4[i]) * 2 + np.int64(dense[i])]
            a = transfer_end(read_start(r, latency, read_free), n, s_bytes, bw)
            read_free = a + 1
            bytes_read += n * s_bytes
            # Compute: previous compute done, job dispatched, weights present, out bank drained.
            z_bank = (z_hist0 if mm % 2 == 0 else z_hist1) + 1
            start = e_prev + 1
            cause = -1
            if r + 1 > start:
                start = r + 1
                cause = _DISPATCH
            if a + 1 > start:
                start = a + 1
                cause = _W_STREAM
            if z_bank > start:
                start = z_bank
                cause = _OUT_BANK
            gap = start - (e_prev + 1)
            if cause >= 0:
                stalls[cause] += gap
            tg = np.int64(tgroups[i])
            issue = n * tg
            e = start + issue - 1 + pipe
            stalls[_DRAIN] += pipe
            issue_total += issue
            oi = operator[i]
            if oi >= 0 and oi < n_operators:
                op_cycles[oi] += gap + issue + pipe
            last_op = oi
            # Store: offer rows after compute, once the previous store is done.
            s = e + 1 if e + 1 > z_prev + 1 else z_prev + 1
            z = transfer_end(write_start(s, write_free), tg, out_row_bytes, bw)
            write_free = z + 1
            bytes_written += tg * out_row_bytes
            if mm % 2 == 0:
                e_hist0 = e
                z_hist0 = z
            else:
                e_hist1 = e
                z_hist1 = z
            e_prev = e
            z_prev = z
            mm += 1
        elif code == 1:  # LDA
            # Its bank (LDA count % 2) is free once the MMs that read it, those before the
            # previous LDA, have finished; with sync, every earlier result must be stored.
            r = f + 1 if f + 1 > e_guard + 1 else e_guard + 1
            if sync[i] != 0 and z_prev + 1 > r:
                r = z_prev + 1
            e_guard = e_prev
            n = np.int64(steps[i])
            s_bytes = act_row_bytes
            a = transfer_end(read_start(r, latency, read_free), n, s_bytes, bw)
            read_free = a + 1
            bytes_read += n * s_bytes
            f = a + 1
        else:  # END
            d = f + 1
            if e_prev + 1 > d:
                d = e_prev + 1
            if z_prev + 1 > d:
                d = z_prev + 1
            tail = d + 1 - (e_prev + 1)
            stalls[_TAIL] += tail
            if last_op >= 0 and last_op < n_operators:
                op_cycles[last_op] += tail
            counters[0] = bytes_read
            counters[1] = bytes_written
            counters[2] = issue_total
            counters[3] = mm
            return d + 1
    return np.int64(-1)


@dataclass
class Result:
    """What one simulation says; every field is a plain number so results serialise."""

    cycles: int
    seconds: float
    stalls: dict[str, int]
    operator_cycles: dict[str, int]
    bytes_read: int
    bytes_written: int
    issue_cycles: int
    mac_utilisation: float
    bandwidth_gbps: float
    useful_macs: int


def _record_table(program: Program) -> np.ndarray:
    """Weight-record bytes of each format, indexed by ``int4 * 2 + dense``."""
    geo = program.hw.geometry
    return np.array([geo.weight_record_bytes(8 - 4 * int4, bool(dense))
                     for int4 in (0, 1) for dense in (0, 1)], dtype=np.int64)


def record_bytes(program: Program) -> np.ndarray:
    """Bytes per memory record of each instruction (weight record, or activation row)."""
    ins = program.instrs
    out = _record_table(program)[ins["int4"].astype(np.int64) * 2 + ins["dense"]]
    out[ins["op"] == isa.OP_LDA] = program.hw.geometry.act_row_bytes
    out[ins["op"] == isa.OP_END] = 0
    return out


def _kernel_inputs(program: Program) -> tuple:
    """The kernel's view of the Program: its instruction columns as they are, read afresh on
    every run, so an edited Program is timed as edited. Nothing is copied or cached: deriving
    int64 copies cost as much as the kernel itself (~0.2 ms for a 16k-instruction LLM decode
    pass)."""
    ins = program.instrs
    return (
        ins["op"], ins["steps"], ins["tgroups"], ins["int4"], ins["dense"], ins["operator"], ins["sync"],
        _record_table(program), np.int64(program.hw.geometry.act_row_bytes),
    )


def run(program: Program) -> Result:
    """Time ``program`` on its hardware."""
    hw = program.hw
    geo = hw.geometry
    stalls = np.zeros(len(STALL_CAUSES), dtype=np.int64)
    op_cycles = np.zeros(max(1, len(program.operators)), dtype=np.int64)
    counters = np.zeros(4, dtype=np.int64)
    cycles = int(
        _run_kernel(
            *_kernel_inputs(program),
            np.int64(len(program.operators)),
            np.int64(geo.out_row_bytes),
            np.int64(isa.pipeline_cycles(hw.chain_len)),
            np.int64(hw.memory.bandwidth_bytes_per_cycle),
            np.int64(hw.memory.latency_cycles),
            stalls,
            op_cycles,
            counters,
        )
    )
    if cycles < 0:
        raise ValueError("program has no END instruction")
    seconds = cycles / (hw.clock_mhz * 1e6)
    useful = program.useful_macs
    return Result(
        cycles=cycles,
        seconds=seconds,
        stalls={name: int(v) for name, v in zip(STALL_CAUSES, stalls)},
        operator_cycles={name: int(v) for name, v in zip(program.operators, op_cycles)},
        bytes_read=int(counters[0]),
        bytes_written=int(counters[1]),
        issue_cycles=int(counters[2]),
        mac_utilisation=useful / (hw.macs_per_cycle * cycles),
        bandwidth_gbps=(counters[0] + counters[1]) / seconds / 1e9,
        useful_macs=useful,
    )


def onchip_bytes(program: Program) -> int:
    """Bytes written to and read from the on-chip buffers by the whole Program."""
    ins = program.instrs
    geo = program.hw.geometry
    rec = record_bytes(program)
    mm = ins["op"] == isa.OP_MM
    steps = ins["steps"].astype(np.int64)
    tg = ins["tgroups"].astype(np.int64)
    weights = (steps * rec * (1 + tg))[mm].sum()  # bank write once, read per token group
    act_reads = (steps * tg)[mm].sum() * program.hw.act_ports * geo.act_row_bytes
    outs = 2 * tg[mm].sum() * geo.out_row_bytes  # written by compute, read by store
    act_writes = (steps * rec)[ins["op"] == isa.OP_LDA].sum()
    return int(weights + act_reads + outs + act_writes)


def simulate(point) -> results.RawCounts:
    """Compile a :class:`~sparsim.dataflow.config.DesignPoint` (timing only), time it and count what
    the shared derivation needs (simulator/results.py: time, energy, roofline, tokens/s)."""
    from sparsim.dataflow.dsp_chain import compile_design_point
    from sparsim.dataflow.workloads import tokens_per_pass

    program = compile_design_point(point, with_data=False)
    timed = run(program)
    hw = point.hardware
    return results.RawCounts(
        cycles=timed.cycles,
        clock_mhz=hw.clock_mhz,
        useful_macs=timed.useful_macs,
        issued_macs=timed.issue_cycles * hw.macs_per_cycle,
        peak_macs_per_cycle=hw.macs_per_cycle,
        bytes_read=timed.bytes_read,
        bytes_written=timed.bytes_written,
        onchip_bytes=onchip_bytes(program),
        peak_bytes_per_cycle=hw.memory.bandwidth_bytes_per_cycle,
        breakdown=timed.operator_cycles,
        stalls=timed.stalls,
        counts={"issue_cycles": timed.issue_cycles},
        items=tokens_per_pass(point.workload),
        item="token",
    )
