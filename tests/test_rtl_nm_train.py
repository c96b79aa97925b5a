"""RTL of the ``nm_train`` engine (rtl/nm_train.py) under Amaranth's simulator.

Whole Programs on the engine top: the hand-timed cases of the case table (values equal golden,
cycles equal the simulator's and the hand derivation), a point whose sparse layer is pruned by
the prune unit on every weight load (with |w| ties that the tie rule decides), the same point in
WS under random stalls on every stream (values exact), and controls that must fail: a broken
Program and a top whose sequencer miscounts the PE pipeline. The case table
(tests/test_case_table.py) runs the random design points; Verilator benches are marked
``verilator``.
"""

from __future__ import annotations

import numpy as np
import pytest

from cases import CASES_BY_ID
from sparsim import engine as engines
from sparsim.dataflow import nm_train_isa as isa
from sparsim.dataflow.config import design_point_from_dict
from sparsim.rtl import amaranth_sim
from sparsim.rtl.harness import VerifyResult
from sparsim.rtl.nm_train import NmTrainAccelerator
from sparsim.simulator.nm_train import program_cycles


def _check(res: VerifyResult) -> None:
    assert not res.errors, res.summary()
    assert res.outputs_match, res.summary()
    assert res.cycles_rtl == res.cycles_sim, res.summary()


def _pruned_point(dataflow: str):
    """Three layers, the middle one BDWP 2:4 with inline pruning (both its forward and its
    act_grad weight loads go through the prune unit); K, Cout and P off the multiples of R, C
    and M. Data seed 5 puts two groups in the pruned loads whose N-th and (N+1)-th largest |w|
    are equal and non-zero, so the tie rule decides what is kept."""
    return design_point_from_dict({
        "hardware": {"preset": "tiny", "rows": 2, "cols": 3, "dataflow": dataflow, "max_m": 4, "acc_bits": 24,
                     "input_buffer_kib": 64 / 1024, "weight_buffer_kib": 256 / 1024,
                     "output_buffer_kib": 96 / 1024,
                     "memory": {"channels": 1, "bytes_per_cycle": 4, "latency_cycles": 3}},
        "workload": {"kind": "train", "batch": 1, "mode": "bdwp", "sparsity": "2:4", "pregen": "inline",
                     "layers": [{"name": "a", "k": 3, "cout": 2, "positions": 1},
                                {"name": "b", "k": 13, "cout": 5, "positions": 3},
                                {"name": "c", "k": 5, "cout": 2, "positions": 1}]},
        "seed": 5,
    })


def _compile(point):
    return engines.of(point.hardware).compile(point, with_data=True)


def _deciding_ties(program) -> int:
    """Groups of the pruning loads in which the tie rule decides a kept entry: the N-th and the
    (N+1)-th largest |w| are equal and non-zero."""
    ties = 0
    loads = program.instrs[(program.instrs["op"] == isa.OP_LDB) & (program.instrs["prune"] == 1)]
    for ld in loads:
        m, n, addr = 1 << int(ld["m_log2"]), int(ld["n"]), int(ld["addr"])
        raw = program.memory[addr : addr + int(ld["count"]) * int(ld["width"])].view(np.int8)
        mag = np.sort(np.abs(raw.astype(np.int64)).reshape(-1, m), axis=1)[:, ::-1]
        ties += int(((mag[:, n - 1] == mag[:, n]) & (mag[:, n] > 0)).sum())
    return ties


@pytest.mark.parametrize("case_id", ["nm-hand-step", "nm-hand-double-buffer"])
def test_hand_cases(case_id):
    case = CASES_BY_ID[case_id]
    program = case.program()
    (res,) = amaranth_sim.verify_all([(program, None)])
    _check(res)
    assert res.cycles_rtl == case.hand_cycles


def test_pruned_point():
    program = _compile(_pruned_point("os"))
    assert sum(g.prune for g in program.gemms) == 2 and not program.pregens
    assert _deciding_ties(program) >= 2
    (res,) = amaranth_sim.verify_all([(program, None)])
    _check(res)


def test_values_under_random_stalls():
    program = _compile(_pruned_point("ws"))
    (res,) = amaranth_sim.verify_all([(program, 7)])
    assert not res.errors, res.summary()
    assert res.outputs_match, res.summary()
    assert res.cycles_rtl > program_cycles(program)  # the stalls really slowed the run down


# ------------------------------------------------------------------------------------------
# Negative controls: the checks above must be able to fail


def test_broken_program_fails():
    """A flipped activation byte of the first load: the RTL's outputs differ from golden."""
    program = CASES_BY_ID["nm-hand-step"].program()
    lda = program.instrs[program.instrs["op"] == isa.OP_LDA][0]
    program.memory[int(lda["addr"])] ^= 0x7F
    (res,) = amaranth_sim.verify_all([(program, None)])
    assert not res.ok and not res.outputs_match, res.summary()
    with pytest.raises(AssertionError, match="outputs DIFFER"):
        _check(res)


def test_broken_rtl_fails(monkeypatch):
    """A sequencer that counts one PE pipeline stage too many: folds last a cycle longer."""
    import sparsim.rtl.nm_train

    program = CASES_BY_ID["nm-hand-step"].program()
    monkeypatch.setattr(sparsim.rtl.nm_train, "PE_PIPELINE_CYCLES", sparsim.rtl.nm_train.PE_PIPELINE_CYCLES + 1)
    (res,) = amaranth_sim.verify_all([(program, None)])
    assert not res.ok, res.summary()
    assert res.cycles_rtl != res.cycles_sim, res.summary()


def test_accelerator_rejects_a_dict():
    with pytest.raises(TypeError, match="^hw must be an NmTrainHardware, not dict$"):
        NmTrainAccelerator({"rows": 2})
