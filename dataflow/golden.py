"""NumPy golden models: exact integer semantics, independent of the RTL and the simulator.

Arithmetic is done in int64 and the result wrapped to the accumulator width, which equals what
wrapping two's-complement hardware gives when every partial sum wraps (addition is a ring
homomorphism modulo 2**bits).
"""

from __future__ import annotations

import numpy as np


def wrap(values: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of int64 ``values`` to ``bits`` bits (result as int64)."""
    v = np.asarray(values, dtype=np.int64)
    if bits >= 64:
        return v
    mask = (1 << bits) - 1
    u = v & mask
    return np.where(u >= (1 << (bits - 1)), u - (1 << bits), u)


def int_range(bits: int) -> tuple[int, int]:
    """Inclusive range of a signed ``bits``-bit integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def linear(x: np.ndarray, w: np.ndarray, acc_bits: int) -> np.ndarray:
    """Y[T, R] = X[T, K] · W[R, K]^T with a wrapping ``acc_bits`` accumulator.

    ``x`` holds INT8 activations and ``w`` INT8/INT4 weights (any integer dtype, already pruned:
    pruned weights are zero). The product of int8 values over K <= 2**40 cannot overflow int64.
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"shapes do not chain: x {x.shape}, w {w.shape}")
    return wrap(x @ w.T, acc_bits)
