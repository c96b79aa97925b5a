"""Instruction set and packed payload formats of the ``dsp_chain`` engine.

Instruction words, weight records, activation rows and output rows are encoded and decoded here,
for the compiler, the simulator and the cocotb benches. The RTL reads the same tables: its
instruction decoder is a ``data.StructLayout`` built from :data:`FIELDS` and its buffer widths
come from :class:`Geometry`. The formats are specified in ``docs/dsp_chain.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparsim.dataflow.isa import InstructionFormat

OP_END = 0
OP_LDA = 1
OP_MM = 2

INSTR_BITS = 128

#: A Program's instruction list: one row per instruction, fixed dtypes (structure of arrays).
INSTR_DTYPE = np.dtype(
    [
        ("op", np.uint8),
        ("int4", np.uint8),
        ("dense", np.uint8),
        ("n_log2", np.uint8),
        ("steps", np.uint32),
        ("tgroups", np.uint32),
        ("gpad", np.uint32),
        ("sync", np.uint8),
        ("addr_a", np.uint64),
        ("addr_b", np.uint64),
        # Not encoded into the word: which workload operator the instruction belongs to, so
        # the simulator can report a per-operator breakdown.
        ("operator", np.int32),
    ]
)

#: (name, low bit, width) of every encoded field, in bit order; bits 63:59 are reserved (zero).
#: Counter and address widths in the RTL and the compiler's limits are read from this table.
FIELDS = (
    ("op", 0, 4),
    ("int4", 4, 1),
    ("dense", 5, 1),
    ("n_log2", 6, 4),
    ("steps", 10, 16),
    ("tgroups", 26, 16),
    ("gpad", 42, 16),
    ("sync", 58, 1),
    ("addr_a", 64, 32),
    ("addr_b", 96, 32),
)
FORMAT = InstructionFormat(FIELDS, INSTR_BITS)
FIELD_LAYOUT = FORMAT.layout
field_width = FORMAT.width
field_max = FORMAT.max
encode_instruction = FORMAT.encode
decode_instruction = FORMAT.decode
encode_program = FORMAT.encode_program


#: Longest DSP cascade segment: two packed INT8 lanes stay exact through at most 8 slots
#: (rtl/dsp_chain.py, PACK_LOW_MIN); longer chains are split into segments of 8 whose sums are
#: added in fabric, which also bounds the skew delay lines and the pipeline depth.
CASCADE_SLOTS = 8


def pipeline_cycles(chain_len: int) -> int:
    """Cycles from a step's address cycle to its output-row write: PIPE = S + 6 with
    ``S = min(L, CASCADE_SLOTS)``: read, read register, decode, mux, S cascade stages
    (delay line, multiply, add), lane split, accumulate (docs/dsp_chain.md, "Pipeline")."""
    return min(chain_len, CASCADE_SLOTS) + 6


@dataclass(frozen=True)
class Geometry:
    """Sizes of the packed formats: the one definition, which the hardware config
    (``DspChainHardware.geometry``, its buffer depths), the compiler, the simulator and the RTL
    all read."""

    chains: int
    chain_len: int
    mux_m: int
    lanes: int
    acc_bits: int

    @property
    def index_bits(self) -> int:
        return self.mux_m.bit_length() - 1

    def weight_record_bytes(self, weight_bits: int, dense: bool) -> int:
        ibits = 0 if dense else self.index_bits
        return -(-self.chains * self.chain_len * (weight_bits + ibits) // 8)

    @property
    def max_weight_record_bytes(self) -> int:
        """The widest weight record (INT8 with indices): the width of a weight-bank row."""
        return self.weight_record_bytes(8, dense=False)

    @property
    def act_row_bytes(self) -> int:
        return self.lanes * self.mux_m

    @property
    def out_row_bytes(self) -> int:
        return self.chains * self.lanes * self.acc_bits // 8


def _pack_fields(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack ``values`` [n, e] (two's complement, ``bits`` wide) into bit arrays [n, e*bits]."""
    u = values.astype(np.int64) & ((1 << bits) - 1)
    shifts = np.arange(bits, dtype=np.int64)
    return ((u[..., None] >> shifts) & 1).astype(np.uint8).reshape(values.shape[0], -1)


def _bits_to_bytes(bitrows: np.ndarray, nbytes: int) -> np.ndarray:
    pad = nbytes * 8 - bitrows.shape[1]
    if pad:
        bitrows = np.concatenate([bitrows, np.zeros((bitrows.shape[0], pad), np.uint8)], axis=1)
    return np.packbits(bitrows, axis=1, bitorder="little")


def _bytes_to_bits(data: np.ndarray) -> np.ndarray:
    return np.unpackbits(data, axis=1, bitorder="little")


def _unpack_fields(bitrows: np.ndarray, start: int, count: int, bits: int, signed: bool) -> np.ndarray:
    chunk = bitrows[:, start : start + count * bits].reshape(bitrows.shape[0], count, bits)
    weights = np.int64(1) << np.arange(bits, dtype=np.int64)
    u = (chunk.astype(np.int64) * weights).sum(axis=2)
    if signed:
        u = np.where(u >= (1 << (bits - 1)), u - (1 << bits), u)
    return u


def pack_weight_records(
    geo: Geometry, weights: np.ndarray, indices: np.ndarray | None, weight_bits: int
) -> np.ndarray:
    """Pack per-step kept weights into records.

    ``weights`` and ``indices`` are [steps, P, L] (indices None for dense). Returns uint8
    [steps, rec_bytes].
    """
    steps = weights.shape[0]
    flat_w = weights.reshape(steps, -1)
    parts = [_pack_fields(flat_w, weight_bits)]
    if indices is not None:
        parts.append(_pack_fields(indices.reshape(steps, -1), geo.index_bits))
    bitrows = np.concatenate(parts, axis=1)
    return _bits_to_bytes(bitrows, geo.weight_record_bytes(weight_bits, indices is None))


def unpack_weight_records(
    geo: Geometry, records: np.ndarray, weight_bits: int, dense: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverse of :func:`pack_weight_records`: returns ([steps, P, L] weights, indices or None)."""
    steps = records.shape[0]
    e = geo.chains * geo.chain_len
    bitrows = _bytes_to_bits(records)
    w = _unpack_fields(bitrows, 0, e, weight_bits, signed=True)
    idx = None
    if not dense:
        idx = _unpack_fields(bitrows, e * weight_bits, e, geo.index_bits, signed=False)
        idx = idx.reshape(steps, geo.chains, geo.chain_len)
    return w.reshape(steps, geo.chains, geo.chain_len), idx


def pack_out_rows(geo: Geometry, values: np.ndarray) -> np.ndarray:
    """[rows, P, lanes] accumulator values -> uint8 [rows, out_row_bytes]."""
    bitrows = _pack_fields(values.reshape(values.shape[0], -1), geo.acc_bits)
    return _bits_to_bytes(bitrows, geo.out_row_bytes)


def unpack_out_rows(geo: Geometry, data: np.ndarray) -> np.ndarray:
    """uint8 [rows, out_row_bytes] -> signed [rows, P, lanes]."""
    bitrows = _bytes_to_bits(data)
    v = _unpack_fields(bitrows, 0, geo.chains * geo.lanes, geo.acc_bits, signed=True)
    return v.reshape(data.shape[0], geo.chains, geo.lanes)
