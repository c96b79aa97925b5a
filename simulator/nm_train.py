"""Cycle-level simulator of the ``nm_train`` engine.

Executes a Program's instructions against the shared memory model (:mod:`sparsim.simulator.memory`)
and the engines of docs/nm_train.md (loader, compute queue of array runs and pre-generation jobs,
store), event by event: every start and finish cycle follows the contract's equations, and the
array's fold times come from :mod:`sparsim.dataflow.systolic`. The kernel is a Numba function over
the Program's instruction columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from sparsim.dataflow import nm_train_isa as isa
from sparsim.dataflow.nm_train import Program, weight_group_units, weight_word_entries
from sparsim.dataflow.systolic import OS, fold_count, fold_cycles

from . import results
from .memory import read_start, transfer_end, write_start

#: Where the compute engine's time goes besides streaming and pre-generation, in the order of
#: the ``stalls`` array (docs/nm_train.md, "Where the time goes").
STALL_CAUSES = ("dispatch", "input_stream", "weight_stream", "out_bank", "fill_drain", "bank_pipe", "tail")
_DISPATCH, _INPUT, _WEIGHT, _OUT_BANK, _FILL, _PIPE, _TAIL = range(7)
#: counters: bytes read, bytes written, stream cycles, pregen cycles, folds, issued MACs, on-chip bytes
_N_COUNTERS = 7


@njit(cache=True)
def pgs_cycles(axis, count, width, k_steps, n, m_log2, pregen_cycles, word, buffer_cycles):
    """Duration D of a PGS job (docs/nm_train.md, event equation of compute): a slab row of
    ``cols`` entries is read ``word`` entries a cycle (``dataflow.nm_train.weight_word_entries``),
    ``ceil(cols / word)`` cycles a row. Axis 0 reads ``count`` rows of ``cols = width /
    group_bytes · M`` entries and emits one record per row; axis 1 (``cols = count``) spends, per
    group of M rows, their reads into the transposing buffer, ``buffer_cycles``
    (``TRANSPOSE_WRITE_CYCLES``: the buffer's write stage) and one cycle per column (``count``)
    emitting that column's group; then ``PREGEN_CYCLES`` of pipeline."""
    m = np.int64(1) << m_log2
    if axis == 0:
        gb = n + (n * m_log2 + 7) // 8
        cols = (width // gb) * m
        return count * ((cols + word - 1) // word) + pregen_cycles
    return (k_steps // n) * (m * ((count + word - 1) // word) + buffer_cycles + count) + pregen_cycles


@njit(cache=True)
def _run_kernel(op, sync, acc, store, prune, axis, n, m_log2, count, width, k_steps, pass_, layer,
                rows, cols, dataflow, bw, latency, acc_bytes, pregen_cycles, prune_cycles, mm_pipe, pgs_word,
                load_ready, buffer_cycles, load_request, stalls, pass_cycles, layer_cycles, counters, pass_stalls, pass_bytes):
    """Returns the Program's cycle count; fills ``stalls`` [7], ``pass_cycles`` [4],
    ``layer_cycles`` [layers, 4], ``counters`` [7] (see ``_N_COUNTERS``), ``pass_stalls``
    [4, 7] and ``pass_bytes`` [4, 2] (read, written)."""
    f = np.int64(0)  # cycle the loader takes the current instruction
    read_free = np.int64(0)
    write_free = np.int64(0)
    e_prev = np.int64(-1)  # done cycle of the previous compute job
    z_last = np.int64(-1)  # done cycle of the last store
    guard_a = np.int64(-1)  # done of the last job before the previous LDA
    guard_b = np.int64(-1)
    a_ready = np.int64(0)
    b_ready = np.int64(0)
    tiles = np.int64(0)
    z_tile0 = np.int64(-1)  # store done of the last tile in output bank 0
    z_tile1 = np.int64(-1)
    last_pass = np.int64(-1)
    last_layer = np.int64(-1)
    for i in range(op.shape[0]):
        code = op[i]
        if code == 1 or code == 2:  # LDA, LDB
            guard = guard_a if code == 1 else guard_b
            r = f + 1 if f + 1 > guard + 1 else guard + 1
            if sync[i] != 0 and z_last + 1 > r:
                r = z_last + 1
            cnt = np.int64(count[i])
            rec = np.int64(width[i])
            a = transfer_end(read_start(r + load_request, latency, read_free), cnt, rec, bw)
            read_free = a + 1
            counters[0] += cnt * rec
            pass_bytes[np.int64(pass_[i]), 0] += cnt * rec
            if code == 1:
                guard_a = e_prev
                a_ready = a + load_ready
                counters[6] += cnt * rec
            else:
                guard_b = e_prev
                b_ready = a + load_ready + (prune_cycles if prune[i] != 0 else 0)
                groups = np.int64(k_steps[i]) // np.int64(n[i])
                gb = np.int64(n[i]) + (np.int64(n[i]) * np.int64(m_log2[i]) + 7) // 8
                counters[6] += cnt * groups * gb
            f = r + 1
        elif code == 3 or code == 4:  # MM, PGS: a compute job
            r = f + 1
            f = r + 1
            opens = code == 4 or acc[i] == 0
            start = e_prev + 1
            cause = -1
            if r + 1 > start:
                start = r + 1
                cause = _DISPATCH
            if code == 3 and a_ready > start:
                start = a_ready
                cause = _INPUT
            if b_ready > start:
                start = b_ready
                cause = _WEIGHT
            if opens:
                z_bank = (z_tile0 if tiles % 2 == 0 else z_tile1) + 1
                if z_bank > start:
                    start = z_bank
                    cause = _OUT_BANK
            gap = start - (e_prev + 1)
            p = np.int64(pass_[i])
            if cause >= 0:
                stalls[cause] += gap
                pass_stalls[p, cause] += gap
            cnt = np.int64(count[i])
            wid = np.int64(width[i])
            if code == 3:
                ks = np.int64(k_steps[i])
                folds = fold_count(dataflow, rows, cols, cnt, wid, ks)
                per_fold = fold_cycles(dataflow, rows, cols, ks, cnt)
                dur = folds * per_fold
                stream = folds * (ks if dataflow == OS else cnt)
                stalls[_FILL] += dur - stream
                pass_stalls[p, _FILL] += dur - stream
                stalls[_PIPE] += mm_pipe
                pass_stalls[p, _PIPE] += mm_pipe
                counters[2] += stream
                counters[4] += folds
                counters[5] += stream * rows * cols
                # Bank reads: A once per column block of folds, B once per row block (OS) or
                # once (WS); the output tile written (and read back when accumulating; WS adds
                # every k'-fold's partial sums).
                col_blocks = (wid + cols - 1) // cols
                groups = ks // np.int64(n[i])
                gb = np.int64(n[i]) + (np.int64(n[i]) * np.int64(m_log2[i]) + 7) // 8
                a_bytes = cnt * groups * (np.int64(1) << np.int64(m_log2[i]))
                b_bytes = wid * groups * gb
                tile_bytes = cnt * wid * acc_bytes
                if dataflow == OS:
                    updates = np.int64(1)
                    b_reads = (cnt + rows - 1) // rows
                else:
                    updates = (ks + rows - 1) // rows
                    b_reads = np.int64(1)
                counters[6] += col_blocks * a_bytes + b_reads * b_bytes + tile_bytes * (2 * updates - (1 - acc[i]))
                dur += mm_pipe
            else:
                dur = pgs_cycles(axis[i], cnt, wid, np.int64(k_steps[i]), np.int64(n[i]), np.int64(m_log2[i]),
                                 pregen_cycles, pgs_word, buffer_cycles)
                counters[3] += dur
                counters[6] += cnt * wid
            e = start + dur - 1
            lay = np.int64(layer[i])
            pass_cycles[p] += gap + dur
            layer_cycles[lay, p] += gap + dur
            last_pass = p
            last_layer = lay
            e_prev = e
            if opens:
                tiles += 1
            if code == 4 or store[i] != 0:
                rec = wid * acc_bytes if code == 3 else wid
                s = e + 1 if e + 1 > z_last + 1 else z_last + 1
                z = transfer_end(write_start(s, write_free), cnt, rec, bw)
                write_free = z + 1
                z_last = z
                counters[1] += cnt * rec
                counters[6] += cnt * rec
                pass_bytes[p, 1] += cnt * rec
                if (tiles - 1) % 2 == 0:
                    z_tile0 = z
                else:
                    z_tile1 = z
        else:  # END
            d = f + 1
            if e_prev + 1 > d:
                d = e_prev + 1
            if z_last + 1 > d:
                d = z_last + 1
            tail = d + 1 - (e_prev + 1)
            stalls[_TAIL] += tail
            if last_pass >= 0:
                pass_cycles[last_pass] += tail
                pass_stalls[last_pass, _TAIL] += tail
                layer_cycles[last_layer, last_pass] += tail
            return d + 1
    return np.int64(-1)


@dataclass
class Result:
    """What one simulation says; plain numbers and dicts so results serialise."""

    cycles: int
    stalls: dict[str, int]
    pass_cycles: dict[str, int]
    layer_cycles: dict[str, dict[str, int]]  # layer -> pass -> cycles
    per_pass: dict[str, dict]  # pass -> cycles, bytes_read, bytes_written, useful_macs, stalls
    bytes_read: int
    bytes_written: int
    stream_cycles: int
    pregen_cycles: int
    folds: int
    issued_macs: int
    onchip_bytes: int
    useful_macs: int


def run(program: Program) -> Result:
    """Time ``program`` on its hardware."""
    hw = program.hw
    ins = program.instrs
    stalls = np.zeros(len(STALL_CAUSES), dtype=np.int64)
    pass_cycles = np.zeros(len(isa.PASSES), dtype=np.int64)
    layer_cycles = np.zeros((max(1, len(program.layers)), len(isa.PASSES)), dtype=np.int64)
    counters = np.zeros(_N_COUNTERS, dtype=np.int64)
    pass_stalls = np.zeros((len(isa.PASSES), len(STALL_CAUSES)), dtype=np.int64)
    pass_bytes = np.zeros((len(isa.PASSES), 2), dtype=np.int64)
    cycles = int(_run_kernel(
        ins["op"], ins["sync"], ins["acc"], ins["store"], ins["prune"], ins["axis"], ins["n"], ins["m_log2"],
        ins["count"], ins["width"], ins["k_steps"], ins["pass_"], ins["layer"],
        np.int64(hw.rows), np.int64(hw.cols), np.int64(hw.dataflow_code),
        np.int64(hw.memory.bandwidth_bytes_per_cycle), np.int64(hw.memory.latency_cycles),
        np.int64(hw.acc_bits // 8), np.int64(isa.PREGEN_CYCLES), np.int64(isa.PRUNE_CYCLES),
        np.int64(isa.MM_PIPE_CYCLES), np.int64(weight_word_entries(hw)),
        np.int64(isa.LOAD_READY_CYCLES), np.int64(isa.TRANSPOSE_WRITE_CYCLES),
        np.int64(isa.LOAD_REQUEST_CYCLES), stalls, pass_cycles, layer_cycles, counters, pass_stalls, pass_bytes,
    ))
    if cycles < 0:
        raise ValueError("program has no END instruction")
    return Result(
        cycles=cycles,
        stalls={name: int(v) for name, v in zip(STALL_CAUSES, stalls)},
        pass_cycles={name: int(v) for name, v in zip(isa.PASSES, pass_cycles)},
        per_pass={name: {"cycles": int(pass_cycles[k]), "bytes_read": int(pass_bytes[k, 0]),
                         "bytes_written": int(pass_bytes[k, 1]),
                         "useful_macs": sum(g.useful_macs for g in program.gemms if g.pass_ == k),
                         "stalls": {c: int(v) for c, v in zip(STALL_CAUSES, pass_stalls[k])}}
                  for k, name in enumerate(isa.PASSES)},
        layer_cycles={name: {p: int(v) for p, v in zip(isa.PASSES, row) if v}
                      for name, row in zip(program.layers, layer_cycles)},
        bytes_read=int(counters[0]),
        bytes_written=int(counters[1]),
        stream_cycles=int(counters[2]),
        pregen_cycles=int(counters[3]),
        folds=int(counters[4]),
        issued_macs=int(counters[5]),
        onchip_bytes=int(counters[6]),
        useful_macs=program.useful_macs,
    )


def program_cycles(program: Program) -> int:
    """The simulator's cycle count of a compiled Program (what an RTL bench compares with)."""
    return run(program).cycles


def simulate(point) -> results.RawCounts:
    """Compile a design point (timing only), time it and count what the shared derivation needs
    (simulator/results.py: time, energy, roofline, samples/s)."""
    from sparsim.dataflow.nm_train import compile_design_point

    program = compile_design_point(point, with_data=False)
    timed = run(program)
    hw = point.hardware
    return results.RawCounts(
        cycles=timed.cycles,
        clock_mhz=hw.clock_mhz,
        useful_macs=timed.useful_macs,
        issued_macs=timed.issued_macs,
        peak_macs_per_cycle=hw.pes,
        bytes_read=timed.bytes_read,
        bytes_written=timed.bytes_written,
        onchip_bytes=timed.onchip_bytes,
        peak_bytes_per_cycle=hw.memory.bandwidth_bytes_per_cycle,
        breakdown=timed.pass_cycles,
        stalls=timed.stalls,
        counts={"stream_cycles": timed.stream_cycles, "pregen_cycles": timed.pregen_cycles,
                "folds": timed.folds,
                **{f"offchip_bytes_{name}": v["bytes_read"] + v["bytes_written"]
                   for name, v in timed.per_pass.items()}},
        items=program.batch,
        item="sample",
    )


# --------------------------------------------------------------------------------------------
# Resources of the RTL as built

#: Yosys LUTs per LUT that rtl_features counts around the array: its per-block counts are a
#: first-order mux and shifter tally without the control (loader, receiver, store, job queue,
#: sequencers), and Yosys needs about a sixth more; the array's own count is not scaled (the
#: array alone synthesises to about its count: 5,961 xcup LUTs for 5,632 at 8 x 8 OS,
#: benchmarks/README.md). Fitted on the tiny point alone ((144,426 - 1,408) / (122,392 - 1,408), the RTL of 0ffdc01;
#: benchmarks/nm_resource_calibration.json, tests/test_resources_nm_train.py), the mid points
#: held out. FFs are counted from widths but for one measured constant, the control registers
#: (``CONTROL_FF``).
LUT_SCALE = 1.182
#: The engine top's control registers (:func:`rtl_features`' ``control``), measured.
CONTROL_FF = 1575


def sliced_shift_luts(src_bits, width, positions, unit, step, right=False) -> int:
    """LUT6 of ``(src << s * unit)[:width]`` (``s`` < ``positions``; ``right``: ``src >> s * unit``
    of a ``src`` of ``src_bits`` bits) built per slice of ``step`` output bits, each slice by a
    select of its own (rtl/nm_train.py's select copies, ``_SLICE_BITS`` and ``_shift_slices``):
    each slice a log shifter of 4:1 levels (two select bits a LUT6, the low bits first, as
    Yosys' shift mapping orders them), pruned to its own cone, so that a slice's first levels
    compute the bits the later levels reach for (``step`` >= ``width``: the one shared shifter).
    Counted where an output or level bit has any source, constants folded at the edges. On xcup
    (session 24; the weight segment rotation's value field, 120 bits into 256, 16 positions of 8
    bits, alone): 384 / 480 / 816 counted for one shifter / per 128 bits / per 32 bits, 504 / 608 /
    1,017 measured, the difference 432 x ``LUT_SCALE`` = 511 against 513."""
    L = max(1, (positions - 1).bit_length())
    levels = [(f, min(2, L - f)) for f in range(0, L, 2)]
    wins = [(lo, min(lo + step, width)) for lo in range(0, width, step)]
    if right:  # (the mirror image: a left shift into the top bits)
        wins = [(src_bits - hi, src_bits - lo) for lo, hi in wins]
    total = 0
    for lo, hi in wins:
        need = set(range(lo, hi))
        for first, nb in reversed(levels):
            reach = src_bits + unit * ((1 << (first + nb)) - 1)  # (where this level can be non-zero)
            below = set()
            for j in need:
                if j < reach:
                    total += 1
                    below.update(j - (k * unit << first) for k in range(1 << nb)
                                 if j - (k * unit << first) >= 0 and (k << first) < positions)
            need = below
    return total


def rtl_features(hw) -> dict[str, float]:
    """LUTs and FFs of rtl/nm_train.py's blocks counted from its widths (``rtl.nm_train.Geometry``;
    the blocks of docs/nm_train.md "RTL (measured)"), one LUT6 per 4:1 mux slice
    (``simulator.resources._mux_luts``), log-depth shifters as 4:1 stages:

    - input sub-banks: RAM words (even and odd words, both banks in each RAM, a LUT-RAM per
      byte column: byte enables), written from the beats' segments through two-word funnels, a
      window read from two words at a registered offset (WS: R of them, a read port each);
    - weight sub-banks: RAM words (even and odd words, a pair per sub-bank and bank, a LUT-RAM
      per entry column: entry enables) written from the beats: the beat placed after the held
      bytes, the unpack switch over every N:M format up to ``max_m`` on a beat's groups, per
      weight bank a segment register rotated into two words (values, indices, enables); the
      reads (an entry per column from its word, the PGS chunk of a word's entries from either
      weight bank's sub-banks, rotated);
    - the PGS pack switch over every N:M format up to ``max_m``;
    - the one rank and squeeze network (comparators, rank sums and shifts, the squeeze stages);
    - the transposing buffer (FFs) and its column read; the output banks
      (``simulator.resources.memory_cost``) and their read-add;
    - the array's PEs as ``dataflow.nm_train.resources`` counts them."""
    from sparsim.dataflow.nm_train import resources as array_resources
    from sparsim.rtl.nm_train import (_QUEUE_DEPTH, _SLICE_BITS, _TARGETS, Geometry, _job_layout,
                                      read_request_layout)

    from .resources import _mux_luts, memory_cost

    def clog2(x):
        return max(1, (x - 1).bit_length())

    geo = Geometry(hw)
    R, C, M, A = hw.rows, hw.cols, hw.max_m, hw.acc_bits
    ib = M.bit_length() - 1
    ibp = 1 << (ib - 1).bit_length() if ib else 0
    S, WE, Ew, P = geo.in_sub_bytes, geo.w_sub_entries, geo.w_entries, geo.out_row_bytes
    DB = geo.beat_bytes
    HB, SQ, EB, WW = geo.w_hold_bytes, geo.w_seq_bytes, geo.w_seg_entries, geo.w_word_entries
    plain_formats = sum((1 << ml) - 1 for ml in range(1, ib + 1)) + 1
    # weight RAMs: 2 banks x C sub-banks x even/odd, a LUT-RAM per entry column up to 64 words
    # (block RAM beyond: not calibrated); RAMs of two words too (registers before session 23)
    w_depth = 1 << geo.w_word_addr_bits
    w_small = w_depth <= 64
    w_ram = memory_cost(8 + ib, w_depth) if w_small else memory_cost((8 + ib) * WW, w_depth)
    w_units = 2 * C * 2 * (WW if w_small else 1)
    lut = {
        "weight_rams": w_units * w_ram.lutram_luts,
        # per sub-bank RAM its entry enables (the segment's, gated by the sub-bank)
        "store_writes": 2 * C * 2 * WW,
        # per column its word by bank and parity, then the entry in it
        "weight_reads": C * (8 + ib) * (_mux_luts(4) + _mux_luts(WW)),
        # the beat placed after the held bytes, a plain load's groups unpacked, and per weight
        # bank the segment rotated into two words and the words swapped by parity (bench_nm_blocks.py
        # --blocks w_beats --xcup, with the store enables: 5,068 LUT at tiny, 3,567 at mid_ecp5)
        "weight_beats": 8 * SQ * clog2(HB + 1) / 2 + 8 * HB + EB * (8 + ib) * _mux_luts(plain_formats)
        + 2 * (9 + ibp) * 2 * WW * (clog2(WW) / 2 + 1),
    }
    ff = {# per column the weight word its read offset lies in (the data stage's register)
          "read_regs": C * WW * (8 + ib),
          # the held bytes, and per weight bank its segment register (entries, their count, word,
          # rotation; the count, not the entry mask, since session 20)
          "weight_beats": 8 * HB + clog2(HB + 1) + 2 * ((8 + ibp) * EB + clog2(EB + 1) + 2 * clog2(WE + 1) + 2),
          # the compute jobs' queue (every field of a job, registered at dispatch)
          "job_queue": _QUEUE_DEPTH * _job_layout(geo).size}
    # Input sub-banks: OS a window from each sub-bank, WS R windows from the one sub-bank (a read
    # port, so a copy of its RAMs, per array row).
    W, ab = geo.in_word_bytes, geo.in_word_addr_bits
    reads = geo.in_subs if hw.dataflow == "os" else R
    copies = 1 if hw.dataflow == "os" else R
    # LUT-RAM: per byte column (byte enables split it, as xcup synthesis shows); block RAM
    # (not calibrated here): whole words, byte enables in the block
    small = (2 << ab) <= 64
    ram = memory_cost(8, 2 << ab, copies=copies) if small else memory_cost(8 * W, 2 << ab, copies=copies)
    ram_units = geo.in_subs * 2 * (W if small else 1)
    segments = 2 if geo.in_subs > 1 else 1
    lut.update({
        "input_rams": ram_units * ram.lutram_luts,
        # the segments rotated into two words (data and byte enables), the second one's bytes
        # shifted down by the first one's length
        "input_funnels": segments * (18 * W * clog2(W) / 2 + 8 * DB) + (segments - 1) * 8 * DB * clog2(DB) / 2,
        # per sub-bank its RAMs' write port fed by either segment; per window its two words
        # swapped by the word's parity and its bytes selected
        "input_words": geo.in_subs * 2 * (9 * W + ab + 1) * (segments - 1)
        + reads * (16 * W + 8 * M * _mux_luts(W)),
    })
    ff.update({"input_rams": ram_units * ram.read_ffs,
               "input_segments": segments * (9 * DB + clog2(S + 1) + 3) + reads * (clog2(S + 1) + 1),
               # the RAMs' write stage (LOAD_READY_CYCLES): per input sub-bank and half (even/odd)
               # its address (with the bank bit), data and byte enables (each sub-bank picks its
               # own segment); per weight bank and half one data register (every sub-bank of a
               # bank takes the same segment: Yosys merges their copies), per sub-bank its own
               # address register (kept apart since session 23) and its entry enables
               "write_stages": geo.in_subs * 2 * (ab + 1 + 9 * W)
               + 2 * 2 * (C * geo.w_word_addr_bits + WW * (8 + ib)) + 2 * C * 2 * WW})
    # LUT-RAMs are read combinationally into the per-column word register (``read_regs``).
    bram_inputs = ram_units * ram.bram36 + w_units * w_ram.bram36
    if M > 1:
        E = max(geo.prune_bytes, Ew)
        formats = sum((1 << ml) - 1 for ml in range(1, ib + 1)) + 1
        lut.update({
            # a word pair from either bank's sub-banks, rotated to the chunk's W entries, and
            # the rank stage's input register loaded chunk by chunk
            "pgs_read": 8 * 2 * WW * _mux_luts(2 * C) + 8 * WW * clog2(WW) / 2 + Ew,
            "pack": 8 * P * (_mux_luts(formats) + clog2(P) / 2),
            # |w|, one 8-bit compare per pair, rank sum and shift per byte, squeeze stages
            "rank": E * (4 + (M - 1) / 2 * 4 + 16) + E.bit_length() * E * (9 + ib + E.bit_length() / 2) / 2,
            "pgs_buffer": 8 * M * _mux_luts(Ew),
        })
        # the rank stage's input register (bytes, |w|, group terms) and its rank registers
        # (the transposing buffer, the packed row and its byte enables, the chunk's two words' values)
        # (and its write stage: the chunk, its slots' copies merged, and per slot one-hot chunk
        # enables; the column selected into a register in its emit cycle)
        ff.update({"pgs_buffer": 8 * M * Ew + 9 * P + 2 * WW * 8 + 8 * WW + M * -(-Ew // WW) + 8 * M,
                   "rank": E * (16 + E.bit_length()) + E * (1 + 8 + E.bit_length())})
    # The shifters built per slice, each slice by its own copy of the select (sessions 20-22,
    # ``_SLICE_BITS``): what they take beyond the one shifter the terms above count (a slice
    # shares no level with the others; session 22's per-32-bit slices added 1,712 xcup LUTs at
    # tiny that no term counted, -10.6 %): per weight bank the segment rotation's fields (values,
    # indices, entry mask), per input segment its rotation (``_shift_slices``), the beat placed
    # after the held bytes, and the PGS chunk's entry shift (``_shift_slices``).
    def slicing(src, width, positions, unit, step, right=False):
        return (sliced_shift_luts(src, width, positions, unit, step, right)
                - sliced_shift_luts(src, width, positions, unit, width, right))

    fields = [(8 * EB, 8), (EB, 1)] + ([(ibp * EB, ibp)] if ib else [])
    extra_luts = sum(2 * slicing(src, 2 * WW * u, WW, u, _SLICE_BITS) for src, u in fields)
    extra_luts += segments * slicing(8 * DB, 16 * W, W, 8, max(8, 4 * _SLICE_BITS // W))
    extra_luts += slicing(8 * DB, 8 * SQ, HB + 1, 8, _SLICE_BITS)
    if M > 1:
        extra_luts += slicing(16 * WW, 8 * WW, WW, 8, max(8, 4 * _SLICE_BITS // WW), right=True)
    lut["slice_shifts"] = extra_luts
    # Output banks: a read-add port and a store port each, a copy per read port.
    out_bits = geo.out_lanes * A
    cost = memory_cost(out_bits, geo.out_rows, copies=2)
    lut["output_banks"], ff["output_banks"], bram = 2 * cost.lutram_luts, 2 * cost.read_ffs, 2 * cost.bram36 + bram_inputs
    # (the read-add's read register: a fabric FF on xcup, the block RAM's output register on ECP5)
    # FFs: per bank the row read for the add, the sum and its write's lane enables, and the
    # block RAMs' write stage: per bank its row and byte enables, one data register for both
    # banks and copies (the same sum: Yosys merges them)
    lut["output_add"] = out_bits * 2
    ff["output_add"] = 3 * out_bits + 2 * P + out_bits + 2 * (clog2(geo.out_rows) + out_bits // 8)
    arr = array_resources(hw)
    # (the last column's PEs pass no window on: Yosys drops their window registers, which
    # nothing reads, as the selected lane is registered from the incoming window itself)
    lut["array"], ff["array"] = arr["lut"], arr["ff"] - R * 8 * M
    # The registers no term above names: the loader's instruction and guards, the receiver's
    # routes, the store's and the sequencers' counters, the weight transfer's row tables (Yosys
    # keeps 91 of each 490-bit table's bits) and the fan-out copies. A measured constant, not
    # counted from widths: 1,564 FFs in the tiny point's xcup netlist and 1,590 in mid_ecp5's
    # (the RTL of 8598c83, docs/nm_train.md "RTL (measured)", session 18); it does not grow with
    # R, C or the buffers.
    ff["control"] = CONTROL_FF
    # the loader's request register (LOAD_REQUEST_CYCLES): the request, its route's target and
    # the two held bits (session 19, after CONTROL_FF was measured)
    ff["load_request"] = read_request_layout(hw).size + clog2(_TARGETS) + 2
    # flags loaded a cycle ahead (session 19): engines_idle, the compute start and the PGS
    # sequencer's last-row and last-column flags
    ff["ahead_flags"] = 2 + (2 if M > 1 else 0)
    # the receiver's bytes-left register, a copy per group of consumers (session 20)
    ff["need_copies"] = 3 * geo.read_bytes.bit_length()
    # an LDB's fields registered for its banks' write a cycle after the issue, and the two
    # per-bank flags of that issue (session 20): group unit, format, prune, n, m_log2, k_steps, width
    ff["ldb_fields"] = 2 + len(weight_group_units(M)) + plain_formats + 1 + sum(
        isa.field_width(f) for f in ("n", "m_log2", "k_steps", "width"))
    if M > 1:  # the PGS column counter's select bits per buffer row, the head job's pgs per RAM pair
        ff["select_copies"] = M * clog2(Ew) + 2 * C + 1
    # select registers copied per slice of the selects they drive (session 21): each weight
    # bank's segment rotation (values, indices and entry mask; it had a copy per 128 bits), each input
    # segment's byte offset and word parity, and the PGS unit's word parity and entry (its
    # chunk), format (per 128 bits of its packed row), emit flag and rank load select (its rank
    # input bytes)
    # (a shift by one of k positions: a copy per max(unit, 128 / k) bits, rtl/nm_train.py
    # ``_shift_slices``)
    def per32(bits):
        return -(-bits // 32)

    def shift_copies(bits, positions, unit=8):
        return -(-bits // max(unit, 128 // max(1, positions)))

    lw_w, lw_in, lww = (WW - 1).bit_length(), (W - 1).bit_length(), (WW - 1).bit_length()
    # (the weight segment rotation per 32 bits: per 8 bits, session 21's first try, routed worse)
    extra = 2 * lw_w * (per32(2 * WW * 8) + per32(2 * WW) - -(-2 * WW * 8 // 128) - -(-2 * WW // 128))
    if ib:
        extra += 2 * lw_w * (per32(2 * WW * ibp) - -(-2 * WW * ibp // 128))
    extra += segments * (shift_copies(16 * W, W) * lw_in + per32(8 * W))
    if M > 1:
        extra += 2 * per32(8 * WW) - 1 + (shift_copies(8 * WW, WW) - 1) * lww
        extra += (-(-8 * P // 128) - 1) * 2 * (plain_formats - 1) + 2 * -(-Ew // 4)
    # and per 64 bits of a queued job a copy of the queue's one-hot level (its entries' enables)
    extra += -(-_job_layout(geo).size // 64) * (_QUEUE_DEPTH + 1)
    ff["slice_copies"] = extra
    if hw.dataflow == "os":  # the read-add's row one below the leaving one, and a fold's top rows
        ff["out_rows_ahead"] = 2 * isa.field_width("count")
    return {"lut": lut, "ff": ff, "bram36": bram}


def rtl_resources(hw) -> dict[str, float]:
    """The engine top as rtl/nm_train.py builds it: :func:`rtl_features`, its LUTs around the
    array times ``LUT_SCALE``; one DSP per PE; block RAM for the output banks."""
    feats = rtl_features(hw)
    around = sum(v for k, v in feats["lut"].items() if k != "array")
    return {
        "dsp": float(hw.pes),
        "lut": float(round(around * LUT_SCALE + feats["lut"]["array"])),
        "ff": float(sum(feats["ff"].values())),
        "bram36": float(feats["bram36"]),
        "uram": 0.0,
    }
