"""Functional model of the ``recsys`` ISA: executes encoded instruction words on a memory image
with the buffers and arithmetic of docs/recsys.md, without timing.

It reads exactly the bytes the RTL reads (index blocks, packed embedding rows, weight and bias
records) and keeps the pooled banks with their written flags, so a packing or addressing bug
shows up here in milliseconds; its outputs must equal the golden model's
(``sparsim.dataflow.dlrm.forward``), which shares none of this code.
"""

from __future__ import annotations

import numpy as np

from . import recsys_isa as isa
from .dlrm import interaction_pairs, requantize
from .golden import wrap
from .recsys import RecsysHardware


class _Buffers:
    """The on-chip buffers. Activation regions grow to the widths the instructions use."""

    def __init__(self, hw: RecsysHardware):
        self.weight = np.zeros(int(hw.weight_buffer_kib * 1024), dtype=np.uint8)
        self.dense = [np.zeros(0, np.uint8), np.zeros(0, np.uint8)]
        self.index = [np.zeros(0, np.uint8), np.zeros(0, np.uint8)]
        entries = int(hw.pooled_buffer_kib * 1024) // 2 // hw.acc_bytes
        self.pooled = [np.zeros(entries, np.int64), np.zeros(entries, np.int64)]
        self.written = [np.zeros(entries, bool), np.zeros(entries, bool)]
        self.region: list[np.ndarray] = [np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64)]
        self.z = np.zeros((0, 0), np.int64)
        self.out: list[np.ndarray] = [np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64)]


def _put(dst: np.ndarray, rows: int, col0: int, values: np.ndarray) -> np.ndarray:
    """``dst[:rows, col0:col0 + w] = values``, growing ``dst`` as needed; returns ``dst``."""
    need = (max(dst.shape[0], rows), max(dst.shape[1], col0 + values.shape[1]))
    if need != dst.shape:
        grown = np.zeros(need, np.int64)
        grown[: dst.shape[0], : dst.shape[1]] = dst
        dst = grown
    dst[:rows, col0: col0 + values.shape[1]] = values
    return dst


def execute(hw: RecsysHardware, words: list[int], memory: np.ndarray) -> np.ndarray:
    """Run ``words`` on a copy of ``memory``; returns the memory image afterwards."""
    mem = memory.copy()
    line, acc_bits, acc = hw.line_bytes, hw.acc_bits, hw.acc_bytes
    buf = _Buffers(hw)
    for word in words:
        ins = isa.decode_instruction(word)
        op, bank = ins["op"], ins["mb"] % 2
        if op == isa.OP_END:
            break
        if op == isa.OP_LOAD:
            lines = isa.load_lines(ins)
            data = mem[ins["addr"]: ins["addr"] + lines * line].copy()
            if ins["a"] == isa.LOAD_WEIGHT:
                buf.weight[: data.size] = data
            elif ins["a"] == isa.LOAD_DENSE:
                buf.dense[bank] = data
            else:
                buf.index[bank] = data
        elif op == isa.OP_GATHER:
            _gather(ins, mem, buf, bank, acc_bits)
        elif op == isa.OP_INTER:
            _interact(ins, buf, bank, acc_bits)
        elif op == isa.OP_GEMM:
            _gemm(ins, buf, bank, line, acc_bits, acc)
        elif op == isa.OP_STORE:
            p, width = ins["p"], ins["k"]
            values = buf.out[bank][:p, :width]
            raw = np.stack([(values >> (8 * i)) & 0xFF for i in range(acc)], axis=-1).astype(np.uint8)
            mem[ins["addr"]: ins["addr"] + raw.size] = raw.reshape(-1)
        else:
            raise ValueError(f"unknown opcode {op}")
    return mem


def _gather(ins: dict, mem: np.ndarray, buf: _Buffers, bank: int, acc_bits: int) -> None:
    t, first, n, dim, p = ins["b"], ins["k"], ins["p"], ins["q"], ins["shift"]
    words = buf.index[bank][: buf.index[bank].size // 4 * 4].view(np.int32).astype(np.int64)
    pos = words[t * (p + 1) + first: t * (p + 1) + first + n + 1]
    pooled, written = buf.pooled[bank], buf.written[bank]
    for j in range(n):
        entry = ((t * p) + first + j) * dim
        for index in words[pos[j]: pos[j + 1]]:
            addr = ins["addr"] + int(index) * dim
            row = mem[addr: addr + dim].view(np.int8).astype(np.int64)
            # The first slice into an entry loads, later ones add (the written flag).
            base = np.where(written[entry: entry + dim], pooled[entry: entry + dim], 0)
            pooled[entry: entry + dim] = wrap(base + row, acc_bits)
            written[entry: entry + dim] = True


def _interact(ins: dict, buf: _Buffers, bank: int, acc_bits: int) -> None:
    tables, p, dim, width = ins["b"], ins["p"], ins["k"], ins["q"]
    pool_shift, inter_shift = ins["shift"] & 0x3F, ins["shift"] >> 6
    entries = tables * p * dim
    sums = np.where(buf.written[bank][:entries], buf.pooled[bank][:entries], 0).reshape(tables, p, dim)
    pooled = requantize(sums, pool_shift)  # [tables, P, dim]
    if ins["a"] == isa.INTER_CONCAT:
        part = pooled.transpose(1, 0, 2).reshape(p, tables * dim)
    else:
        feats = np.concatenate([buf.z[:p, None, :width], pooled.transpose(1, 0, 2)], axis=1)
        gram = wrap(np.einsum("bfd,bgd->bfg", feats, feats), acc_bits)
        i, j = interaction_pairs(tables + 1)
        part = requantize(gram[:, i, j], inter_shift)
    buf.z = _put(buf.z, p, width, part)
    # Releasing the bank clears its written flags: the next mini-batch's empty bags read 0.
    buf.written[bank][:] = False


def _gemm(ins: dict, buf: _Buffers, bank: int, line: int, acc_bits: int, acc: int) -> None:
    flags, p, k, q = ins["b"], ins["p"], ins["k"], ins["q"]
    if flags & isa.SRC_DENSE:
        a = buf.dense[bank][: p * k].view(np.int8).astype(np.int64).reshape(p, k)
    elif flags & isa.SRC_Z:
        a = buf.z[:p, :k]
    else:
        a = buf.region[1 if flags & isa.SRC_REGION else 0][:p, :k]
    off = ins["addr"]
    w = buf.weight[off: off + q * k].view(np.int8).astype(np.int64).reshape(q, k)
    y = a @ w.T
    if flags & isa.HAS_BIAS:
        boff = -(-(off + q * k) // line) * line
        raw = buf.weight[boff: boff + q * acc].reshape(q, acc).astype(np.int64)
        bias = sum(raw[:, i] << (8 * i) for i in range(acc))
        y = y + wrap(bias, acc_bits)
    y = wrap(y, acc_bits)
    if flags & isa.DST_OUT:
        buf.out[bank] = _put(buf.out[bank], p, 0, y)
        return
    y = requantize(np.maximum(y, 0), ins["shift"])
    if flags & isa.DST_Z:
        buf.z = _put(buf.z, p, 0, y)
    else:
        r = 1 if flags & isa.DST_REGION else 0
        buf.region[r] = _put(buf.region[r], p, 0, y)
