"""Instruction set and packed payload formats of the ``nm_train`` engine (docs/nm_train.md).

Instruction words, compressed weight records, activation rows and accumulator rows are encoded
and decoded here, for the compiler, the functional model, the simulator and the cocotb benches;
the RTL builds its instruction decoder from :data:`FIELDS`.
"""

from __future__ import annotations

import numpy as np

from sparsim.dataflow.isa import InstructionFormat

OP_END = 0
OP_LDA = 1  # load activation (A) records into the next input bank
OP_LDB = 2  # load weight (B) records into the next weight bank (optionally pruning them)
OP_MM = 3  # run the array over the loaded tiles into the output bank
OP_PGS = 4  # pre-generation: prune the weight bank's dense slab N:M, store it compressed

OP_NAMES = {OP_END: "END", OP_LDA: "LDA", OP_LDB: "LDB", OP_MM: "MM", OP_PGS: "PGS"}

INSTR_BITS = 128

#: (name, low bit, width) of every encoded field; bits 65..95 are reserved (zero).
FIELDS = (
    ("op", 0, 4),
    ("sync", 4, 1),  # LDA/LDB: wait until every earlier store is done
    ("acc", 5, 1),  # MM: add into the open output tile (else open a new one)
    ("store", 6, 1),  # MM: store the output tile afterwards
    ("prune", 7, 1),  # LDB: records are dense; prune them N:M on their way into the bank
    ("axis", 8, 1),  # PGS: 0 groups along each bank row, 1 groups down each bank column
    ("n", 9, 5),  # N of the B operand's N:M (1..16; dense is 1:1)
    ("m_log2", 14, 3),  # log2 M (0..4)
    ("count", 17, 16),  # LDA/LDB: records; MM: tile rows P_t; PGS: records written
    ("width", 33, 16),  # LDA/LDB: bytes per record; MM: tile columns Q_t; PGS: bytes per record
    ("k_steps", 49, 16),  # MM: compressed reduction steps K'_t; LDB: kept entries per record
    ("addr", 96, 32),  # byte address of the first record (MM: of the output tile); records are consecutive
)
FORMAT = InstructionFormat(FIELDS, INSTR_BITS)
FIELD_LAYOUT = FORMAT.layout
field_width = FORMAT.width
field_max = FORMAT.max
encode_instruction = FORMAT.encode
decode_instruction = FORMAT.decode
encode_program = FORMAT.encode_program

#: A Program's instruction list (structure of arrays). ``pass_`` and ``layer`` are not encoded:
#: they tag each instruction for the simulator's per-pass and per-layer breakdown.
INSTR_DTYPE = np.dtype(
    [(name, np.uint32 if width > 8 else np.uint8) for name, _, width in FIELDS]
    + [("pass_", np.int8), ("layer", np.int32)]
)

#: Training passes, as the ``pass_`` tag numbers them.
PASSES = ("forward", "act_grad", "weight_grad", "pregen")
FORWARD, ACT_GRAD, WEIGHT_GRAD, PREGEN = range(4)

#: Cycles of a PGS job's pipeline after its last slab read (axis 0) or column (axis 1): the bank
#: read, the read-data register, the rank network's four register stages (the pairwise |w|
#: compares, the ranks and kept bytes, the shifts, the squeeze's low shift bits), the squeezed
#: entries' register, then the pack into the record's register and, a cycle later, the output RAMs'
#: write stage (the row, data and byte enables registered before the block RAM takes them). A slab row is read ``k = ceil(cols / W)``
#: cycles (W entries of a weight RAM word a cycle, dataflow.nm_train.weight_word_entries); axis 0
#: emits one record per slab row; axis 1 spends M k + TRANSPOSE_WRITE_CYCLES + columns cycles per
#: group of M rows (simulator.nm_train.pgs_cycles). rtl/nm_train.py owns this number.
PREGEN_CYCLES = 8
#: Cycles an MM job adds to its array time D (docs/nm_train.md, event equation of compute): two
#: before the first fold's handshake (the banks' synchronous read, then the read-data register
#: from which the windows and weight entries are selected) and three after the last fold's last
#: result leaves the array (the output bank's read of the row the result adds into, the
#: registered add, then the output RAMs' write stage: the row, data and byte enables registered
#: before the block RAM takes them). rtl/nm_train.py owns this number; the simulator reads it here.
MM_PIPE_CYCLES = 5
#: Extra cycles an LDB with ``prune`` adds after its last record before the weight bank is ready:
#: the rank network's input register and its four register stages on the receive path (the
#: squeezed entries then go to the segment register as a plain beat's do).
PRUNE_CYCLES = 5
#: Cycles from an LDA's or LDB's last record (its last byte's beat, cycle ``a``) to its bank being
#: ready (``a + LOAD_READY_CYCLES``; a pruning LDB's ``PRUNE_CYCLES`` later): the beat's segment
#: register, then the sub-banks' write stage (each RAM's address, data and enables registered
#: before it takes them), so the bank holds the record at the end of ``a + 2``, and a job
#: starting in ``a + 2`` reads it from ``a + 3`` on. rtl/nm_train.py owns this number.
LOAD_READY_CYCLES = 2
#: Cycles from an LDA's or LDB's issue (cycle ``r``) to its read request's handshake with memory
#: (``t0 = max(r + LOAD_REQUEST_CYCLES + latency, read_free)``): the shell's loader registers the
#: request and its route at the issue and offers them a cycle later (``Loader(registered_request=
#: True)``), so that no memory handshake lies in the cone of the issue and of the receiver's
#: lookahead. rtl/nm_train.py owns this number.
LOAD_REQUEST_CYCLES = 1
#: Cycles a PGS job along axis 1 adds per group of M slab rows between the group's last row read
#: and its first column's emit: the transposing buffer's write stage (each chunk and its slot's
#: enables registered before the buffer takes them), then a cycle for the buffer to be whole when
#: a column is selected from it into its register in the column's emit cycle.
TRANSPOSE_WRITE_CYCLES = 2


# --------------------------------------------------------------------------------------------
# Payloads


def index_bits(m: int) -> int:
    """Bits of one kept weight's index in a group of ``m`` (0 for dense, m = 1)."""
    return m.bit_length() - 1


def group_bytes(n: int, m: int) -> int:
    """Bytes of one compressed group: N value bytes, then the N indices packed."""
    return n + -(-n * index_bits(m) // 8)


def pack_groups(values: np.ndarray, indices: np.ndarray, m: int) -> np.ndarray:
    """Compressed records from ``values`` and ``indices`` [rows, G, N] -> uint8 [rows, G*gb].

    Per group: the N values (two's complement bytes), then index j at bits ``j*ibits`` of the
    little-endian index bytes."""
    rows, groups, n = values.shape
    ib = index_bits(m)
    out = np.zeros((rows, groups, group_bytes(n, m)), dtype=np.uint8)
    out[:, :, :n] = values.astype(np.int8).view(np.uint8)
    if ib:
        packed = np.zeros((rows, groups), dtype=np.int64)
        for j in range(n):
            packed |= indices[:, :, j].astype(np.int64) << (j * ib)
        for b in range(group_bytes(n, m) - n):
            out[:, :, n + b] = (packed >> (8 * b)) & 0xFF
    return out.reshape(rows, -1)


def unpack_groups(records: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_groups`: uint8 [rows, G*gb] -> (values int64, indices int64)
    [rows, G, N] (indices all zero for dense)."""
    gb = group_bytes(n, m)
    rows = records.shape[0]
    g = records.reshape(rows, -1, gb)
    values = g[:, :, :n].view(np.int8).astype(np.int64)
    ib = index_bits(m)
    indices = np.zeros_like(values)
    if ib:
        packed = np.zeros(g.shape[:2], dtype=np.int64)
        for b in range(gb - n):
            packed |= g[:, :, n + b].astype(np.int64) << (8 * b)
        for j in range(n):
            indices[:, :, j] = (packed >> (j * ib)) & (m - 1)
    return values, indices


def pack_acc_rows(values: np.ndarray, acc_bits: int) -> np.ndarray:
    """[rows, Q] accumulators -> uint8 [rows, Q*acc_bits/8], little-endian two's complement."""
    nb = acc_bits // 8
    u = values.astype(np.int64) & ((1 << acc_bits) - 1)
    out = np.zeros(values.shape + (nb,), dtype=np.uint8)
    for b in range(nb):
        out[..., b] = (u >> (8 * b)) & 0xFF
    return out.reshape(values.shape[0], -1)


def unpack_acc_rows(data: np.ndarray, acc_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_acc_rows` (signed int64)."""
    nb = acc_bits // 8
    b = data.reshape(data.shape[0], -1, nb).astype(np.int64)
    u = np.zeros(b.shape[:2], dtype=np.int64)
    for i in range(nb):
        u |= b[:, :, i] << (8 * i)
    return np.where(u >= (1 << (acc_bits - 1)), u - (1 << acc_bits), u)
