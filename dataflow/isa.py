"""Instruction words shared by every engine's ISA: a table of fields packed into one word.

Each engine's ``<engine>_isa.py`` lists its fields once as ``(name, low bit, width)`` and builds
an :class:`InstructionFormat` from them; the compiler encodes with it, the functional models,
simulators and benches decode with it, and the RTL builds its instruction layout from the same
table (``rtl/shell.py``'s ``struct_from_fields``). So an engine never writes its own bit packing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class InstructionFormat:
    """Fields ``(name, low bit, width)`` of a ``bits``-wide instruction word.

    Checked on construction: every field has a positive width, lies inside the word and overlaps
    no other field; names are unique. Bits no field covers are zero in every encoded word.
    """

    def __init__(self, fields: Iterable[tuple[str, int, int]], bits: int = 128) -> None:
        self.fields = tuple((str(n), int(lo), int(w)) for n, lo, w in fields)
        self.bits = int(bits)
        used = 0
        for name, lo, width in self.fields:
            if width < 1 or lo < 0 or lo + width > self.bits:
                raise ValueError(f"field {name} (bits {lo}..{lo + width - 1}) does not fit a {self.bits}-bit word")
            mask = ((1 << width) - 1) << lo
            if used & mask:
                raise ValueError(f"field {name} (bits {lo}..{lo + width - 1}) overlaps another field")
            used |= mask
        self.layout = {name: (lo, width) for name, lo, width in self.fields}
        if len(self.layout) != len(self.fields):
            raise ValueError("instruction field names must be unique")

    def width(self, name: str) -> int:
        """Bits of field ``name``."""
        return self.layout[name][1]

    def max(self, name: str) -> int:
        """Largest value field ``name`` encodes."""
        return (1 << self.width(name)) - 1

    def encode(self, row: Mapping[str, Any] | Any) -> int:
        """Pack one instruction (a structured-array row or a mapping of field values) into a word;
        a value that does not fit its field is a ValueError naming it."""
        word = 0
        for name, lo, width in self.fields:
            value = int(row[name])
            if value < 0 or value >= (1 << width):
                raise ValueError(f"instruction field {name}={value} does not fit in {width} bits")
            word |= value << lo
        return word

    def decode(self, word: int) -> dict[str, int]:
        """Unpack a word into its fields."""
        return {name: (word >> lo) & ((1 << width) - 1) for name, lo, width in self.fields}

    def encode_program(self, rows: Iterable[Any]) -> list[int]:
        return [self.encode(row) for row in rows]
