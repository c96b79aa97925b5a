"""Functional model of the ``nm_train`` ISA: executes encoded instruction words on a memory image
with the array's window/index semantics (docs/nm_train.md), without timing.

It reads exactly the bytes the RTL reads: LDA/LDB records consecutive from ``addr``, compressed
records decoded by ``nm_train_isa.unpack_groups``, each PE's window ``A[p, g*M : g*M + M]``
indexed by its weight's index, output tiles accumulated at ``acc_bits`` and stored as
accumulator rows; PGS and pruning loads prune with ``sparsity.prune_compress_nm``'s rule.
"""

from __future__ import annotations

import numpy as np

from . import nm_train_isa as isa
from .golden import wrap
from .nm_train import NmTrainHardware, bank_bytes
from .sparsity import prune_compress_nm


def _read(mem: np.ndarray, ins: dict, width: int) -> np.ndarray:
    count, addr = ins["count"], ins["addr"]
    return mem[addr : addr + count * width].reshape(count, width)


def _write(mem: np.ndarray, ins: dict, rows: np.ndarray) -> None:
    mem[ins["addr"] : ins["addr"] + rows.size] = rows.reshape(-1)


def _compress(dense: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    c = prune_compress_nm(dense.astype(np.int64), n, m)
    return c.values.astype(np.int64), c.indices.astype(np.int64)


def execute(hw: NmTrainHardware, words: list[int], memory: np.ndarray) -> np.ndarray:
    """Run ``words`` on a copy of ``memory``; returns the memory image afterwards."""
    mem = memory.copy()
    acc_bits = hw.acc_bits
    in_cap, w_cap = bank_bytes(hw.input_buffer_kib), bank_bytes(hw.weight_buffer_kib)
    a_bank: np.ndarray | None = None  # latest LDA: [rows, bytes] int64
    b_bank: tuple | None = None  # latest LDB: (values, indices [rows, G, n], dense bytes or None)
    tile: np.ndarray | None = None  # open output tile
    prunes = set()  # which of the two share the rank network: "LDB prune", "PGS"
    for word in words:
        ins = isa.decode_instruction(word)
        op = ins["op"]
        if op == isa.OP_END:
            break
        if (op == isa.OP_LDB and ins["prune"]) or op == isa.OP_PGS:
            prunes.add("PGS" if op == isa.OP_PGS else "LDB prune")
            if len(prunes) > 1:
                raise ValueError("a Program prunes either in its LDBs or by PGS, not both: "
                                 "the prune unit and the pre-generation unit share one rank network")
        n, m = ins["n"], 1 << ins["m_log2"]
        if op == isa.OP_LDA:
            if ins["count"] * ins["width"] > in_cap:
                raise ValueError(f"LDA of {ins['count']} x {ins['width']} B overflows an input bank ({in_cap} B)")
            a_bank = _read(mem, ins, ins["width"]).view(np.int8).astype(np.int64)
        elif op == isa.OP_LDB:
            raw = _read(mem, ins, ins["width"])
            if ins["prune"]:
                values, indices = _compress(raw.view(np.int8), n, m)
                slab = None
            else:
                values, indices = isa.unpack_groups(raw, n, m)
                slab = raw.view(np.int8).astype(np.int64) if (n, m) == (1, 1) else None
            if values.shape[1] * values.shape[2] != ins["k_steps"]:
                raise ValueError(f"LDB of {values.shape[1] * values.shape[2]} entries per record, "
                                 f"k_steps says {ins['k_steps']}")
            if ins["count"] * values.shape[1] * isa.group_bytes(n, m) > w_cap:
                raise ValueError(f"LDB of {ins['count']} records overflows a weight bank ({w_cap} B)")
            b_bank = (values, indices, slab)
        elif op == isa.OP_MM:
            pt, qt, ks = ins["count"], ins["width"], ins["k_steps"]
            values, indices, _ = b_bank
            groups = ks // n
            if a_bank.shape[0] < pt or a_bank.shape[1] != groups * m or values.shape[0] < qt:
                raise ValueError(f"MM {pt}x{qt}x{ks} does not match the loaded tiles "
                                 f"(A {a_bank.shape}, B {values.shape[:2]})")
            windows = a_bank[:pt].reshape(pt, groups, m)
            part = np.zeros((pt, qt), dtype=np.int64)
            for g in range(groups):
                for j in range(n):
                    part += windows[:, g, indices[:qt, g, j]] * values[None, :qt, g, j]
            tile = wrap(part if not ins["acc"] else tile + part, acc_bits)
            if ins["store"]:
                _write(mem, ins, isa.pack_acc_rows(tile, acc_bits))
        elif op == isa.OP_PGS:
            slab = b_bank[2]
            if slab is None:
                raise ValueError("PGS needs a dense slab (1:1 LDB) in the weight bank")
            source = slab if ins["axis"] == 0 else slab.T
            values, indices = _compress(source, n, m)
            records = isa.pack_groups(values, indices, m)
            if records.shape != (ins["count"], ins["width"]):
                raise ValueError(f"PGS makes {records.shape[0]} records of {records.shape[1]} B, "
                                 f"the instruction says {ins['count']} of {ins['width']}")
            _write(mem, ins, records)
        else:
            raise ValueError(f"unknown opcode {op}")
    return mem
