"""The shared instruction-word format (dataflow/isa.py) that every engine's ISA builds on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparsim.dataflow import dsp_chain_isa, nm_train_isa, recsys_isa
from sparsim.dataflow.isa import InstructionFormat

FMT = InstructionFormat((("op", 0, 4), ("n", 4, 12), ("addr", 32, 32)), bits=64)


@given(op=st.integers(0, 15), n=st.integers(0, 4095), addr=st.integers(0, 2**32 - 1))
def test_round_trip_and_placement(op, n, addr):
    word = FMT.encode({"op": op, "n": n, "addr": addr})
    assert word == op | n << 4 | addr << 32  # bits 16..31 stay zero
    assert FMT.decode(word) == {"op": op, "n": n, "addr": addr}


def test_widths_and_limits():
    assert (FMT.width("n"), FMT.max("n"), FMT.layout["addr"]) == (12, 4095, (32, 32))
    with pytest.raises(ValueError, match="instruction field n=4096 does not fit in 12 bits"):
        FMT.encode({"op": 0, "n": 4096, "addr": 0})
    with pytest.raises(ValueError, match="instruction field op=-1 does not fit in 4 bits"):
        FMT.encode({"op": -1, "n": 0, "addr": 0})


@pytest.mark.parametrize(("fields", "message"), [
    ((("a", 0, 8), ("b", 4, 8)), "field b \\(bits 4..11\\) overlaps another field"),
    ((("a", 60, 8),), "field a \\(bits 60..67\\) does not fit a 64-bit word"),
    ((("a", 0, 0),), "does not fit"),
    ((("a", 0, 4), ("a", 8, 4)), "names must be unique"),
])
def test_bad_tables_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        InstructionFormat(fields, bits=64)


@pytest.mark.parametrize("isa", [dsp_chain_isa, nm_train_isa, recsys_isa], ids=lambda m: m.__name__.rsplit(".")[-1])
def test_every_engine_isa_is_one_valid_format(isa):
    """Each engine's field table is a valid, non-overlapping format of its word width, and the
    module's encoders are that format's."""
    assert isa.FORMAT.bits == isa.INSTR_BITS and isa.FORMAT.fields == tuple(isa.FIELDS)
    assert isa.encode_instruction == isa.FORMAT.encode and isa.decode_instruction == isa.FORMAT.decode
