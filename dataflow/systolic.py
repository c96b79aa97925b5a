"""Timing of the R x C systolic PE array, shared by every engine built on it (``nm_train``, and
``recsys``'s dense MLP engine).

The array computes ``out[p, q] = sum_k A[p, k] * B[q, k]`` with A's rows entering the array
rows and B's rows the array columns. B may be N:M compressed along k: ``K' = ceil(K/M) * N``
reduction steps (dense is M = N = 1, so ``K' = K``); each PE picks its activation from an
M-wide window by the weight's index, so a sparse GEMM takes the time of a dense one of
reduction length ``K'``. Folds never overlap inside the array; edge folds (P, Q or K' not
multiples of R, C) take as long as full ones, because the skew spans the whole array.

With ``L = PE_PIPELINE_CYCLES`` (a step's operands entering a PE's window register to its
effect in the accumulator / partial-sum output register):

- **OS** (output stationary, ``dataflow = OS``): a fold is an R-block of p times a C-block of q;
  PE (r, c) consumes reduction step k' in fold cycle ``k' + r + c``; after the last step the
  accumulators drain down the columns, R cycles::

      fold_cycles = K' + (R - 1) + (C - 1) + L + R = 2R + C + K' - 2 + L
      folds       = ceil(P / R) * ceil(Q / C)

- **WS** (weight stationary, ``dataflow = WS``): a fold is an R-block of k' times a C-block of
  q; its R x C weights shift down the columns (R cycles), then A's P rows stream through (row r
  at p + r), the result for (p, column c) leaving the bottom at ``R + p + (R - 1) + c + L``::

      fold_cycles = R + P + (R - 1) + (C - 1) + L = 2R + C + P - 2 + L
      folds       = ceil(K' / R) * ceil(Q / C)

  partial sums of successive k'-folds add up in the output buffer.

SCALE-Sim 3.0.0 charges an OS fold ``K + R + C - 2`` (no drain) and a WS fold ``2R + C + P - 2``,
and reports the last cycle's index, so on the dense path sparsim's GEMM cycles are SCALE-Sim's
plus 1 plus ``folds * (R + L)`` (OS) or ``folds * L`` (WS), as measured and derived in
docs/nm_train_scalesim.md. Everything here is plain integer arithmetic, ``@njit``-compiled,
callable from Numba kernels and from Python alike.
"""

from __future__ import annotations

from numba import njit

#: Dataflow codes, as the instruction stream and the Numba kernels carry them.
OS = 0
WS = 1
DATAFLOWS = {"os": OS, "ws": WS}

#: Cycles from a reduction step's operands entering a PE (its window register) to the step's
#: effect in the accumulator (OS) or partial-sum output register (WS): the registered A and B
#: operands (1; A is the window lane the M:1 mux selected into a register beside the window
#: register, in the same cycle), the registered product (2), the accumulator register (3).
#: The RTL (rtl/systolic.py) owns this number; the simulator and the docs read it from here.
PE_PIPELINE_CYCLES = 3


@njit(cache=True)
def ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


@njit(cache=True)
def compressed_k(k: int, n: int, m: int) -> int:
    """Reduction steps K' of a length-``k`` reduction compressed N:M: ``ceil(k/m) * n``
    (k is padded with zeros to a multiple of m; dense is n = m = 1)."""
    return (k + m - 1) // m * n


@njit(cache=True)
def fold_cycles(dataflow: int, rows: int, cols: int, k_steps: int, p_rows: int) -> int:
    """Cycles of one fold on an ``rows`` x ``cols`` array: OS ``2R + C + K' - 2 + L``,
    WS ``2R + C + P - 2 + L`` (``k_steps`` = K', ``p_rows`` = P)."""
    stream = k_steps if dataflow == OS else p_rows
    return 2 * rows + cols + stream - 2 + PE_PIPELINE_CYCLES


@njit(cache=True)
def fold_count(dataflow: int, rows: int, cols: int, p_rows: int, q_cols: int, k_steps: int) -> int:
    """Folds of a P x Q x K' GEMM: OS ``ceil(P/R) * ceil(Q/C)``, WS ``ceil(K'/R) * ceil(Q/C)``."""
    blocks = p_rows if dataflow == OS else k_steps
    return ceil_div(blocks, rows) * ceil_div(q_cols, cols)


@njit(cache=True)
def gemm_cycles(dataflow: int, rows: int, cols: int, p_rows: int, q_cols: int, k_steps: int) -> int:
    """Array cycles of a whole P x Q x K' GEMM held on chip at once: folds x fold cycles."""
    return (fold_count(dataflow, rows, cols, p_rows, q_cols, k_steps)
            * fold_cycles(dataflow, rows, cols, k_steps, p_rows))


@njit(cache=True)
def issued_macs(dataflow: int, rows: int, cols: int, p_rows: int, q_cols: int, k_steps: int) -> int:
    """PE multiply slots the array spends on a GEMM (useful or padding): every PE of every fold
    for every streamed step (K' for OS, P for WS)."""
    stream = k_steps if dataflow == OS else p_rows
    return fold_count(dataflow, rows, cols, p_rows, q_cols, k_steps) * rows * cols * stream
