"""The shared systolic-array timing (dataflow/systolic.py), by hand from its equations."""

from __future__ import annotations

import pytest

from sparsim.dataflow import systolic as sa


def test_compressed_reduction_length():
    """K' = ceil(K/M)*N: K = 10 at 2:4 pads to 12, 3 groups of 2 kept -> 6; dense (1:1) -> K."""
    assert sa.compressed_k(10, 2, 4) == 6
    assert sa.compressed_k(16, 2, 8) == 4
    assert sa.compressed_k(17, 2, 8) == 6
    assert sa.compressed_k(147, 1, 1) == 147


def test_hand_derived_folds():
    """R = 2, C = 3, L = 3 (PE_PIPELINE_CYCLES).

    OS, K' = 4: PE (1, 2) takes its last step in fold cycle 3 + 1 + 2 = 6 (7 cycles 0..6), its
    accumulator holds it 3 cycles later (cycle 9), then 2 drain cycles: 12 = 2R + C + K' - 2 + L.
    WS, P = 5: preload 2, the last row (p = 4) enters row 0 at 2 + 4 = 6, leaves the bottom of
    column 2 at 6 + 1 + 2 + 3 = 12, so 13 cycles = 2R + C + P - 2 + L.
    GEMM P = 5, Q = 4, K = 10 at 2:4 (K' = 6): OS 3 x 2 folds of 2*2 + 3 + 6 - 2 + 3 = 14 -> 84;
    WS ceil(6/2) x 2 = 6 folds of 2*2 + 3 + 5 - 2 + 3 = 13 -> 78.
    """
    assert sa.PE_PIPELINE_CYCLES == 3
    assert sa.fold_cycles(sa.OS, 2, 3, 4, 999) == 12
    assert sa.fold_cycles(sa.WS, 2, 3, 999, 5) == 13
    k = sa.compressed_k(10, 2, 4)
    assert sa.fold_count(sa.OS, 2, 3, 5, 4, k) == 6
    assert sa.fold_count(sa.WS, 2, 3, 5, 4, k) == 6
    assert sa.gemm_cycles(sa.OS, 2, 3, 5, 4, k) == 84
    assert sa.gemm_cycles(sa.WS, 2, 3, 5, 4, k) == 78
    assert sa.issued_macs(sa.OS, 2, 3, 5, 4, k) == 6 * 6 * 6
    assert sa.issued_macs(sa.WS, 2, 3, 5, 4, k) == 6 * 6 * 5


@pytest.mark.parametrize("dataflow", [sa.OS, sa.WS])
def test_fold_cycles_closed_form(dataflow):
    """Per fold 2R + C + T - 2 + L, T the streamed length (K' for OS, P for WS), whatever the
    other length is."""
    for rows, cols, t in [(1, 1, 1), (4, 8, 37), (32, 32, 4608), (8, 16, 3)]:
        got = sa.fold_cycles(dataflow, rows, cols, t, t)
        assert got == 2 * rows + cols + t - 2 + sa.PE_PIPELINE_CYCLES
        other = sa.fold_cycles(dataflow, rows, cols, 7 if dataflow == sa.WS else t, t if dataflow == sa.WS else 7)
        assert other == got


def test_python_bodies_agree_with_compiled():
    """The njit functions stay plain Python too (NUMBA_DISABLE_JIT debugging, the RTL bench)."""
    for args in [(sa.OS, 3, 5, 7, 11, 13), (sa.WS, 4, 2, 9, 3, 30)]:
        assert sa.gemm_cycles.py_func(*args) == sa.gemm_cycles(*args)
