"""NumPy golden models: exact integer semantics, independent of the RTL and the simulator.

Arithmetic is done in int64 and the result wrapped to the accumulator width, which equals what
wrapping two's-complement hardware gives when every partial sum wraps (addition is a ring
homomorphism modulo 2**bits).
"""

from __future__ import annotations

import numpy as np

from .sparsity import NMWeights, pad_to_multiple, prune_compress_nm


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


# --------------------------------------------------------------------------------------------
# Training GEMMs on a systolic array with N:M weights (SAT / BDWP)
#
# Every GEMM is out[p, q] = sum_k A[p, k] * B[q, k] with INT8 operands; B may be N:M compressed
# (``NMWeights``), in which case the array selects A[p, g*m + index] for each kept value, exactly
# as ``nm_gemm`` does. Per layer with weights W[Cout, K] (K = Cin*kh*kw, im2col order below):
#   forward              Y  = X . W^T   A = X  [P, K],     B = W   [Cout, K]  (reduction K)
#   activation gradient  dX = dY . W    A = dY [P, Cout],  B = W^T [K, Cout]  (reduction Cout)
#   weight gradient      dW = dY^T . X  A = dY^T [Cout, P], B = X^T [K, P]    (reduction P)
# Modes, with Wf = W pruned N:M along K and Wb = W pruned N:M along Cout:
#   dense   Y = X.W^T,  dX = dY.W,   dW dense
#   sr_ste  Y = X.Wf^T, dX = dY.Wf   (the chain rule of the sparse forward; Wf is not N:M along
#                                     Cout, so this GEMM runs dense), dW dense
#   bdwp    Y = X.Wf^T, dX = dY.Wb   (N:M along its reduction, so it runs sparse), dW dense
# The weight gradient is the same in every mode (SR-STE's straight-through estimator updates the
# dense W; the optimiser step itself is not a GEMM).

MODES = ("dense", "sr_ste", "bdwp")


def _as_int_matrix(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iu" or a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D integer array, not {a.ndim}-D {a.dtype}")
    return a.astype(np.int64)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


def nm_gemm(a: np.ndarray, b: NMWeights, acc_bits: int) -> np.ndarray:
    """``out[P, Q]``: ``A[P, K]`` times the compressed ``B[Q, K]`` as the array computes it.

    ``A`` is zero-padded to ``ceil(K/m)*m`` columns and cut into windows of ``m``; for group g
    and slot j, column q multiplies ``window[g][b.indices[q, g, j]]`` by ``b.values[q, g, j]``.
    """
    a = _as_int_matrix("a", a)
    if a.shape[1] != b.k:
        raise ValueError(f"shapes do not chain: a {a.shape}, b has k={b.k}")
    windows = pad_to_multiple(a, b.m, axis=1).reshape(a.shape[0], -1, b.m)
    values = b.values.astype(np.int64)
    out = np.zeros((a.shape[0], b.rows), dtype=np.int64)
    for g in range(values.shape[1]):
        for j in range(b.n):
            out += windows[:, g, b.indices[:, g, j]] * values[None, :, g, j]
    return wrap(out, acc_bits)


def weight_operands(w: np.ndarray, mode: str, n: int, m: int) -> tuple[NMWeights, NMWeights]:
    """The B operands ``(forward, activation gradient)`` of ``W[Cout, K]`` in ``mode``.

    dense: W and W^T, 1:1. sr_ste: Wf (n:m along K) and Wf^T as a dense 1:1 operand. bdwp:
    Wf and Wb^T (n:m along Cout) -- the pair BDWP pre-generates (``sparsity.bdwp_copies``).
    """
    _check_mode(mode)
    w = _as_int_matrix("w", w)
    if mode == "dense":
        return prune_compress_nm(w, 1, 1), prune_compress_nm(w.T, 1, 1)
    forward = prune_compress_nm(w, n, m)
    if mode == "sr_ste":
        return forward, prune_compress_nm(forward.dense().T, 1, 1)
    return forward, prune_compress_nm(w.T, n, m)


def forward(x: np.ndarray, w: np.ndarray, mode: str, n: int, m: int, acc_bits: int) -> np.ndarray:
    """``Y[P, Cout] = X[P, K] . W^T`` in ``mode`` (W pruned n:m along K unless dense)."""
    return nm_gemm(x, weight_operands(w, mode, n, m)[0], acc_bits)


def activation_gradient(
    dy: np.ndarray, w: np.ndarray, mode: str, n: int, m: int, acc_bits: int
) -> np.ndarray:
    """``dX[P, K] = dY[P, Cout] . W`` in ``mode`` (see the table above)."""
    return nm_gemm(dy, weight_operands(w, mode, n, m)[1], acc_bits)


def weight_gradient(dy: np.ndarray, x: np.ndarray, acc_bits: int) -> np.ndarray:
    """``dW[Cout, K] = dY[P, Cout]^T . X[P, K]``, dense in every mode."""
    dy = _as_int_matrix("dy", dy)
    x = _as_int_matrix("x", x)
    return linear(dy.T, x.T, acc_bits)


# --------------------------------------------------------------------------------------------
# Convolution lowering


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, padding: int) -> np.ndarray:
    """``X[B, Cin, H, W]`` (NCHW) -> ``A[B*Ho*Wo, kh*kw*Cin]``, rows in (b, ho, wo) order and
    columns in (i, j, c) order: Cin varies fastest, so N:M groups along K are M consecutive
    input channels of one kernel tap (when Cin is a multiple of M), as SAT prunes along Cin."""
    x = np.asarray(x)
    b, cin, h, w = x.shape
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    taps = [
        xp[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
        for i in range(kh)
        for j in range(kw)
    ]  # each [B, Cin, Ho, Wo]
    cols = np.stack(taps, axis=1)  # [B, kh*kw, Cin, Ho, Wo]
    return cols.transpose(0, 3, 4, 1, 2).reshape(b * ho * wo, kh * kw * cin)


def conv_weight_matrix(w: np.ndarray) -> np.ndarray:
    """``W[Cout, Cin, kh, kw]`` -> ``[Cout, kh*kw*Cin]`` in ``im2col``'s column order."""
    w = np.asarray(w)
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
