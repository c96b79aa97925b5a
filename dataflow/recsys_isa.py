"""Instruction set and packed payload formats of the ``recsys`` engine (docs/recsys.md, "ISA").

Instruction words are encoded and decoded here, for the compiler, the functional model, the
simulator and the cocotb benches; the RTL's decoder reads :data:`FIELDS`. Timing constants that
the simulator and the RTL share live here too.
"""

from __future__ import annotations

import numpy as np

from sparsim.dataflow.isa import InstructionFormat

OP_END = 0
OP_LOAD = 1
OP_GATHER = 2
OP_GEMM = 3
OP_INTER = 4
OP_STORE = 5

#: ``LOAD`` targets (field ``a``).
LOAD_WEIGHT = 0
LOAD_DENSE = 1
LOAD_INDEX = 2

#: ``INTER`` modes (field ``a``).
INTER_CONCAT = 0
INTER_DOT = 1

#: ``GEMM`` flags (field ``b``).
SRC_DENSE = 1 << 0
DST_OUT = 1 << 1
DST_Z = 1 << 2
SRC_Z = 1 << 3
SRC_REGION = 1 << 4
DST_REGION = 1 << 5
HAS_BIAS = 1 << 6

INSTR_BITS = 128

#: A Program's instruction list: one row per instruction, fixed dtypes (structure of arrays).
INSTR_DTYPE = np.dtype(
    [
        ("op", np.uint8),
        ("mb", np.uint32),
        ("a", np.uint32),
        ("b", np.uint32),
        ("p", np.uint32),
        ("k", np.uint32),
        ("q", np.uint32),
        ("shift", np.uint32),
        ("addr", np.uint64),
    ]
)

#: (name, low bit, width) of every encoded field, in bit order.
FIELDS = (
    ("op", 0, 4),
    ("mb", 4, 16),
    ("a", 20, 8),
    ("b", 28, 8),
    ("p", 36, 16),
    ("k", 52, 16),
    ("q", 68, 16),
    ("shift", 84, 12),
    ("addr", 96, 32),
)
FORMAT = InstructionFormat(FIELDS, INSTR_BITS)
FIELD_LAYOUT = FORMAT.layout
field_width = FORMAT.width
field_max = FORMAT.max
encode_instruction = FORMAT.encode
decode_instruction = FORMAT.decode
encode_program = FORMAT.encode_program

#: Cycles from a cache lookup (the request's handshake) to the hit's delivery.
CACHE_HIT_CYCLES = 2
#: Cycles from a LOAD's last line write to its done event: the write's "last line of its LOAD"
#: registered, so every issue condition that counts finished LOADs (the GATHERs' on the index
#: LOAD, the GEMMs' on the weight and dense LOADs) starts from a register (docs/recsys.md,
#: "Engines and timing" 1). (Picked from the written line's tag through the write queue, it put
#: the dense engine's and the gather units' issue conditions at 11.9-12.6 ns routed on ECP5.)
LOAD_DONE_CYCLES = 1
#: Cycles more before an index LOAD of mini-batch m sees every GATHER of m - 2 done: the loader's
#: "no gather lane busy with that parity" test is registered, so its first request waits for
#: ``done + LOAD_WAIT_CYCLES + 1`` (docs/recsys.md, "Engines and timing" 1). (Read in the request's
#: cycle, the lanes' busy flags ran through the test and the request's valid into the loader's
#: tag registers' enables: 11.3 ns routed on ECP5.)
LOAD_WAIT_CYCLES = 1
#: Cycles from a cache fill's delivery to the first request whose lookup sees it (a line delivered
#: in y is in its set for the requests of y + CACHE_FILL_CYCLES and later): the fill's set and
#: line are registered before they reach the cache and the lookups (docs/recsys.md, "Units",
#: line cache). (Applied in the delivery cycle, the delivered tag's line read and compare ran
#: through the lookups into ``hit`` and the sets' line registers' enables: 11.1-11.9 ns routed
#: on ECP5.)
CACHE_FILL_CYCLES = 2
#: Cycles from a GATHER's start to the first cycle its index walker may offer a row: the walker
#: reads the range's first two positions from the index bank (block RAM with its read line
#: registered again: two cycles), then the first index word (two more), fills its row-address
#: pipeline (the index registered, its two partial products with dim, their sum with the table
#: base: three cycles, which keep the multiply off the step) and registers the row
#: (docs/recsys.md, "Engines and timing" 2).
WALK_CYCLES = 8
#: Cycles of the post-processing stage from a GEMM's (or the dot Gram's) last array result to
#: its write: the result's cycle, in which the bias is added (registered), the cycle of the
#: requantisation's first half (the saturation tests and the shift, registered), the cycle
#: that saturates and rotates the row into the destination memories' write registers (ReLU: a
#: negative sum writes 0) and the write; for an INTER's requantisation phase, the cycle after
#: a chunk's read that registers its sums, then the same three. (Requantising and writing in
#: one cycle held the dense engine to 43 MHz on ECP5; rotating and writing in one, to 101 MHz.)
POST_CYCLES = 4
#: The cycle in which the dense engine takes a GEMM or INTER: its address and fold counters load.
DECODE_CYCLES = 1
#: Cycles from a fold sequence's first operand addresses to the array's first handshake: the
#: addresses computed into registers, the memories' read, a register on the read data (the
#: block RAM's output register), then each source's selected byte in a register, whose OR
#: enters the array. (Reading on computed addresses and selecting from a block RAM's
#: unregistered output held the dense engine to 59-85 MHz on ECP5; selecting a line's byte and
#: OR-ing the sources in the array's cycle, to 104 MHz.)
READ_CYCLES = 4
#: Bytes of one index-block word (positions and indices are int32).
INDEX_BYTES = 4


#: Largest mini-batch: ``GATHER`` carries the mini-batch size in its 12-bit ``shift`` field.
MAX_MINI_BATCH = field_max("shift")
#: Largest line count of one ``LOAD`` (``p`` holds its low 16 bits, ``k`` its high 16 bits).
MAX_LOAD_LINES = (1 << 32) - 1


def load_lines(row) -> int:
    """Lines of a ``LOAD`` instruction (row of :data:`INSTR_DTYPE` or decoded fields)."""
    return int(row["p"]) | (int(row["k"]) << 16)


def set_load_lines(row, lines: int) -> None:
    row["p"] = lines & 0xFFFF
    row["k"] = lines >> 16


def row_lines(addr: int, dim: int, line_bytes: int) -> tuple[int, int]:
    """First and last line number an embedding row of ``dim`` bytes at ``addr`` touches."""
    return addr // line_bytes, (addr + dim - 1) // line_bytes
