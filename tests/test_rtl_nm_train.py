"""RTL of the ``nm_train`` engine (rtl/nm_train.py) under Amaranth's simulator.

Whole Programs on the engine top: the hand-timed cases of the case table (values equal golden,
cycles equal the simulator's and the hand derivation), a point whose sparse layer is pruned by
the prune unit on every weight load (with |w| ties that the tie rule decides), the same point in
WS under random stalls on every stream (values exact), a hand-timed pre-generation Program and
the point with pre-generation (PGS along both axes), those Programs again with the collision
poison of the ``no_rw_check`` output banks, a hand Program whose compressed weight transfer's
first beat follows a dense one's last, and controls that must fail: a broken Program, a top
whose sequencer miscounts the PE pipeline, a read of a row being written under the poison and
held bytes that take the ending weight transfer's first row. The case table
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
from sparsim.dataflow.nm_train import weight_word_entries
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


def _pregen_point(dataflow: str, chunks: bool = False):
    """The pruned point's step with pre-generation (LDB of dense slabs, PGS along both axes, the
    sparse GEMMs loading the compressed copies) on a smaller weight bank. With ``chunks``, on a
    memory of 2 B a cycle (weight RAM words of 4 entries) and a 128 B weight buffer: slab rows of
    16 entries, read in 4 chunks (axis 0) and of 8 in 2 (axis 1)."""
    point = _pruned_point(dataflow)
    hw = {"cols": 2, "weight_buffer_kib": 64 / 1024}
    if chunks:
        hw = {"cols": 2, "weight_buffer_kib": 128 / 1024,
              "memory": point.hardware.memory.model_copy(update={"bytes_per_cycle": 2})}
    return point.model_copy(update={
        "hardware": point.hardware.model_copy(update=hw),
        "workload": point.workload.model_copy(update={"pregen": "pre"}),
    })


def test_pregen_hand_program():
    """tests/cases.py's hand-timed pre-generation Program: the copies the RTL writes along both
    axes equal the functional model's (which tests/test_nm_train_model.py checks against
    sparsity.bdwp_copies), in the hand-derived cycle count; the slab's |w| ties decide kept
    entries along both axes."""
    from cases import NM_HAND_PGS_CYCLES, nm_hand_pregen_program
    from sparsim.dataflow.nm_train_exec import execute
    from sparsim.rtl.harness import ProgramRun

    program = nm_hand_pregen_program()
    slab = program.memory[:32].view(np.int8).astype(np.int64).reshape(8, 4)
    for groups in (slab.reshape(8, 1, 4), slab.T.reshape(4, 2, 4)):  # along rows, down columns
        mag = -np.sort(-np.abs(groups), axis=-1)
        assert ((mag[..., 1] == mag[..., 2]) & (mag[..., 2] > 0)).any()
    (res,) = amaranth_sim.run_programs([ProgramRun(program)])
    assert res.done and not res.errors, res.errors
    assert res.cycles == NM_HAND_PGS_CYCLES == program_cycles(program)
    want = execute(program.hw, program.words(), program.memory)
    got = np.frombuffer(bytes(res.memory), dtype=np.uint8)
    assert (got[64:88] == want[64:88]).all() and (got[128:152] == want[128:152]).all()
    assert (got == want).all()



def _format_switch_run():
    from cases import nm_hand_format_switch_program
    from sparsim.dataflow.nm_train_exec import execute
    from sparsim.rtl.harness import ProgramRun

    program = nm_hand_format_switch_program()
    (res,) = amaranth_sim.run_programs([ProgramRun(program)])
    want = execute(program.hw, program.words(), program.memory)
    return program, res, want, np.frombuffer(bytes(res.memory), dtype=np.uint8)


def test_format_switch_between_back_to_back_transfers():
    """tests/cases.py's nm_hand_format_switch_program: a compressed 2:4 weight transfer whose
    first beat follows a dense one's last beat; both GEMMs' tiles equal the functional model's
    and the run takes the simulator's cycles."""
    program, res, want, got = _format_switch_run()
    assert res.done and not res.errors, res.errors
    assert res.cycles == program_cycles(program)
    assert want[96:152].any() and (got == want).all()


def test_format_switch_fails_with_the_ending_transfers_row(monkeypatch):
    """Negative control for the test above (and proof that its Program still brings the beats
    back to back): a weight beat path whose held bytes take the first row of the transfer
    ending (``w_cur_row0``), not of the one starting (``w_cur_row0_next``), misreads the second
    load's first group, so the second tile differs."""
    import sparsim.rtl.nm_train as rtl_nm

    orig = rtl_nm._weight_beat_groups

    def stale_first_row(m, geo, rx, last, data_, valid, ib, rows, fmt, first_next):
        return orig(m, geo, rx, last, data_, valid, ib, rows, fmt, rows[0])

    monkeypatch.setattr(rtl_nm, "_weight_beat_groups", stale_first_row)
    _, res, want, got = _format_switch_run()
    assert res.done and not res.errors, res.errors
    assert (got[:128] == want[:128]).all() and (got[128:152] != want[128:152]).any()


@pytest.mark.parametrize("chunks", [False, True], ids=["row-a-cycle", "row-in-chunks"])
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_pregen_point(dataflow, chunks):
    program = _compile(_pregen_point(dataflow, chunks))
    assert {int(a) for a in program.instrs["axis"][program.instrs["op"] == isa.OP_PGS]} == {0, 1}
    # (with chunks, every slab row takes several reads: docs/nm_train.md, PGS's D)
    slab_rows = program.instrs["width"][program.instrs["op"] == isa.OP_LDB]
    assert (slab_rows.max() > weight_word_entries(program.hw)) == chunks
    (res,) = amaranth_sim.verify_all([(program, None)])
    _check(res)


# ------------------------------------------------------------------------------------------
# Negative controls: the checks above must be able to fail


_POISON_RUNS = {
    "hand-step": lambda: CASES_BY_ID["nm-hand-step"].program(),
    "hand-double-buffer": lambda: CASES_BY_ID["nm-hand-double-buffer"].program(),
    "pruned-os": lambda: _compile(_pruned_point("os")),
    "pruned-ws": lambda: _compile(_pruned_point("ws")),
    "pregen-os": lambda: _compile(_pregen_point("os")),
    "pregen-ws": lambda: _compile(_pregen_point("ws")),
}


@pytest.mark.parametrize("name", list(_POISON_RUNS))
def test_no_rw_check_output_banks_never_serve_a_colliding_read(name):
    """The output banks' read-add copies tell Yosys that a read in the cycle its row is written
    may return anything (``no_rw_check``, so the block RAM keeps its output register). With the
    simulation poison a colliding read returns its row inverted: values still golden and cycles
    the simulator's (both dataflows, accumulating MMs, pruned loads, PGS writes along both axes)
    means no read whose data is used ever collides."""
    from sparsim.rtl import nm_train as nm_rtl

    with nm_rtl.poison_collisions():
        (res,) = amaranth_sim.verify_all([(_POISON_RUNS[name](), None)])
    _check(res)


@pytest.mark.parametrize("poison", (False, True))
def test_collision_poison_inverts_a_read_of_the_row_being_written(poison):
    """Negative control of the check above: with the poison on, a row read in the cycle it is
    written comes back inverted; without it, old (Amaranth's rule for these read ports)."""
    import contextlib

    from amaranth.hdl import Module, Signal
    from amaranth.lib import memory
    from amaranth.sim import Simulator

    from sparsim.rtl import nm_train as nm_rtl

    m = Module()
    with (nm_rtl.poison_collisions() if poison else contextlib.nullcontext()):
        mem = m.submodules.mem = memory.Memory(shape=16, depth=4, init=[], attrs=nm_rtl._NO_COLLISION)
        wp, rp = mem.write_port(granularity=8), mem.read_port()
        en, addr, wdata, raddr = Signal(2), Signal(2), Signal(16), Signal(2)
        m.d.comb += [wp.en.eq(en), wp.addr.eq(addr), wp.data.eq(wdata), rp.addr.eq(raddr)]
        out = Signal(16)
        m.d.comb += out.eq(nm_rtl._seen(m, wp, rp, "t"))
    seen = []

    async def bench(ctx):
        # Row 1 written (0x3412); in the next cycle it is read while its high byte is written.
        ctx.set(en, 0b11), ctx.set(addr, 1), ctx.set(wdata, 0x3412), ctx.set(raddr, 1)
        await ctx.tick()
        ctx.set(en, 0b10), ctx.set(wdata, 0x7800)
        await ctx.tick()
        ctx.set(en, 0)
        for _ in range(3):
            seen.append(ctx.get(out))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen[0] == (0x3412 ^ 0xFFFF if poison else 0x3412), [hex(v) for v in seen]
    assert seen[1] == 0x7812, [hex(v) for v in seen]


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


@pytest.mark.verilator
@pytest.mark.parametrize("dataflow,cols", [("os", 2), ("ws", 1)])
def test_lint(dataflow, cols):
    """The engine top (prune unit, pre-generation unit, both dataflows, a single column) is
    Verilator-lint clean apart from the shared waivers."""
    from cases import nm_hand_pregen_program
    from sparsim.rtl import verilator

    hw = nm_hand_pregen_program().hw.model_copy(update={"dataflow": dataflow, "cols": cols})
    assert verilator.lint(hw) == ""
