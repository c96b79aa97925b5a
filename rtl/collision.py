"""Memories whose read-during-write result the design never uses, shared by the engines' RTL.

Marking such a memory ``no_rw_check`` lets Yosys drop its collision logic and lets
:mod:`sparsim.rtl.ecp5_pack` move the read register into the block RAM. The claim is checked in
simulation: inside :func:`poison_collisions` every read of a marked memory goes through
:func:`seen`, which returns the word inverted in the cycle after a write to the same address,
so a design that used a colliding read fails the golden comparison.
"""

from __future__ import annotations

import contextlib

from amaranth.hdl import Module, Mux, Signal

__all__ = ["NO_COLLISION", "poison_collisions", "seen"]

#: Memory attribute for Yosys: a read in the cycle its word is written may return anything.
NO_COLLISION = {"no_rw_check": 1}

#: Set only through :func:`poison_collisions`.
_POISON = False


@contextlib.contextmanager
def poison_collisions():
    """Elaborate tops inside this block with the collision poison of the ``NO_COLLISION``
    memories of every engine (simulation only: the poison is logic, never part of ``sparsim
    rtl``'s Verilog)."""
    global _POISON
    before, _POISON = _POISON, True
    try:
        yield
    finally:
        _POISON = before


def seen(m: Module, wr, rd, name: str):
    """``rd``'s read data as the hardware may deliver it: with the poison on, inverted from the
    cycle after ``wr`` wrote (any byte of) the word ``rd`` read (Amaranth's read ports return the
    old word) for as long as the data hold (a port with a read enable holds them while it is low)."""
    if not _POISON:
        return rd.data
    hit = Signal(name=f"{name}_collision")
    with m.If(rd.en):
        m.d.sync += hit.eq(wr.en.any() & (wr.addr == rd.addr))
    return Mux(hit, ~rd.data, rd.data)
