"""Functional model of the ``dsp_chain`` ISA: executes encoded instruction words on a memory
image with the datapath's slot/mux semantics (docs/dsp_chain.md), without timing.

It sits between the golden model (plain matrix product) and the RTL: it reads exactly the bytes
the RTL reads and selects activations exactly as each slot's M:1 mux does, so a packing or
addressing bug shows up here in milliseconds instead of under Verilator.
"""

from __future__ import annotations

import numpy as np

from . import dsp_chain_isa as isa
from .dsp_chain import DspChainHardware
from .golden import wrap


def execute(hw: DspChainHardware, words: list[int], memory: np.ndarray) -> np.ndarray:
    """Run ``words`` on a copy of ``memory``; returns the memory image afterwards."""
    mem = memory.copy()
    geo = hw.geometry
    P, L, M, lanes = hw.chains, hw.chain_len, hw.mux_m, hw.lanes
    act_banks = np.zeros((2, hw.act_depth, lanes, M), dtype=np.int64)
    lda_count = 0  # LDA i loads bank i % 2; an MM reads the bank of the latest LDA
    act = act_banks[1]
    for word in words:
        ins = isa.decode_instruction(word)
        if ins["op"] == isa.OP_END:
            break
        if ins["op"] == isa.OP_LDA:
            n, nbytes = ins["steps"], geo.act_row_bytes
            if n > hw.act_depth:
                raise ValueError(f"LDA of {n} rows overflows the activation buffer ({hw.act_depth})")
            raw = mem[ins["addr_a"] : ins["addr_a"] + n * nbytes].view(np.int8)
            act = act_banks[lda_count % 2]
            act[:n] = raw.reshape(n, lanes, M)
            lda_count += 1
            continue
        if ins["op"] != isa.OP_MM:
            raise ValueError(f"unknown opcode {ins['op']}")
        wbits = 4 if ins["int4"] else 8
        dense = bool(ins["dense"])
        n_keep = 1 << ins["n_log2"]
        steps, tgroups, gpad = ins["steps"], ins["tgroups"], ins["gpad"]
        rb = geo.weight_record_bytes(wbits, dense)
        recs = mem[ins["addr_a"] : ins["addr_a"] + steps * rb].reshape(steps, rb)
        w, idx = isa.unpack_weight_records(geo, recs, wbits, dense)  # [steps, P, L]
        s = np.arange(steps)[:, None]
        j = np.arange(L)[None, :]
        k = s * L + j  # kept-weight number of each (step, slot)
        group = k // n_keep  # [steps, L]
        if dense:
            idx = np.broadcast_to((k % M)[:, None, :], (steps, P, L))
        out = np.zeros((tgroups, P, lanes), dtype=np.int64)
        for tg in range(tgroups):
            rows = act[tg * gpad + group]  # [steps, L, lanes, M]
            # Slot (s, p, j) lane l takes rows[s, j, l, idx[s, p, j]].
            sel = np.take_along_axis(
                rows[:, None, :, :, :],  # [steps, 1, L, lanes, M]
                idx[:, :, :, None, None].astype(np.int64),  # [steps, P, L, 1, 1]
                axis=4,
            )[..., 0]  # [steps, P, L, lanes]
            out[tg] = (sel * w[..., None]).sum(axis=(0, 2))
        packed = isa.pack_out_rows(geo, wrap(out, hw.acc_bits))
        base = ins["addr_b"]
        mem[base : base + packed.size] = packed.reshape(-1)
    return mem
