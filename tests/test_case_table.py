"""Every case of the case table (tests/cases.py) at every level, and controls that must fail.

Levels, as in PyMTL3's FL -> CL -> RTL ladder, all on the same Program:

- ``functional``: dataflow/dsp_chain_exec.py executes the instruction words on the memory
  image; its outputs must equal the golden model's.
- ``simulator``: the Numba cycle simulator; its time accounting must add up, and hand-timed
  cases must take exactly their hand-derived cycle count.
- ``amaranth``: the RTL under Amaranth's simulator; values equal golden, cycles equal the
  simulator's.
- ``verilator``: the RTL's Verilog under Verilator and cocotb; values equal golden, cycles
  equal the simulator's. Each hardware configuration is built once and all its runs (cases,
  stalled runs, broken Programs) share one simulator process.

The negative controls break a Program (a weight byte, an instruction field) or the RTL (an
Amaranth constant, the Verilog text) and assert that the very checks used above, and
``sparsim verify``, report the failure.
"""

from __future__ import annotations

import copy
import os
import re

import numpy as np
import pytest

from cases import (CASES, CASES_BY_ID, DESIGN_SEEDS, NM_CASES, NM_DESIGN_SEEDS, RS_CASES, RS_DESIGN_SEEDS,
                   RS_GATHER_POINT, RS_LOAD_WAIT_POINT, RS_ROW_BUFFER_POINT, STALL_RUNS, Case, nm_random_design_point,
                   random_design_point, rs_random_design_point)
from sparsim.dataflow import dsp_chain_isa as isa
from sparsim.dataflow.dsp_chain import Program, compile_design_point
from sparsim.dataflow.dsp_chain_exec import execute
from sparsim.rtl import amaranth_sim
from sparsim.rtl.harness import VerifyResult
from sparsim.simulator.dsp_chain import STALL_CAUSES, run

LEVELS = ("functional", "simulator", "amaranth", pytest.param("verilator", marks=pytest.mark.verilator))


# ------------------------------------------------------------------------------------------
# The checks of each level (the negative controls reuse them)


def check_functional(program: Program) -> None:
    memory = execute(program.hw, program.words(), program.memory)
    for li, (got, want) in enumerate(zip(program.read_outputs(memory), program.expected_outputs())):
        assert (got == want).all(), f"layer {li}: functional model differs from golden"


def check_simulator(case: Case, program: Program) -> None:
    r = run(program)
    assert r.issue_cycles + sum(r.stalls[c] for c in STALL_CAUSES) == r.cycles
    assert sum(r.operator_cycles.values()) == r.cycles
    assert r.cycles * program.hw.memory.bandwidth_bytes_per_cycle >= r.bytes_read
    if case.hand_cycles is not None:
        assert r.cycles == case.hand_cycles, f"simulator {r.cycles} cycles, by hand {case.hand_cycles}"


def check_rtl(res: VerifyResult) -> None:
    assert not res.errors, res.summary()
    assert res.outputs_match, res.summary()
    assert res.cycles_rtl == res.cycles_sim, res.summary()


# ------------------------------------------------------------------------------------------
# Deliberately broken Programs


def _break_weight_byte(program: Program) -> Program:
    """Invert the first byte of the first MM's weight records (two INT4 or one INT8 weight)."""
    mm = next(i for i in program.instrs if i["op"] == isa.OP_MM)
    program.memory[int(mm["addr_a"])] ^= 0xFF
    return program


def _break_mm_steps(program: Program) -> Program:
    """Drop the last step of the first MM: its row tile loses L kept weights."""
    program.instrs[int((program.instrs["op"] == isa.OP_MM).argmax())]["steps"] -= 1
    return program


#: (case, how it is broken): each must fail at every level that can see the fault.
BROKEN_PROGRAMS = {
    "weight-byte": ("example-tiny-gemm", _break_weight_byte),
    "mm-steps": ("hand-gemv", _break_mm_steps),
}


def _broken_program(name: str) -> Program:
    case_id, breaker = BROKEN_PROGRAMS[name]
    return breaker(CASES_BY_ID[case_id].program())


# ------------------------------------------------------------------------------------------
# Verilator: one build and one process per hardware configuration


class _VerilatorRuns:
    """Runs every case, stalled run and broken Program of a hardware configuration in one
    simulator process, the first time any of them is asked for."""

    def __init__(self):
        self._results: dict[tuple, VerifyResult] = {}

    def _runs_for(self, hw) -> list[tuple[tuple, Program, int | None]]:
        runs = [(("case", c.id), c.program(), None) for c in CASES if c.point.hardware == hw]
        for dp, data_seed, stall_seed in STALL_RUNS:
            point = random_design_point(dp, data_seed)
            if point.hardware == hw:
                runs.append((("stall", dp, data_seed), compile_design_point(point, with_data=True), stall_seed))
        for name, (case_id, _) in BROKEN_PROGRAMS.items():
            if CASES_BY_ID[case_id].point.hardware == hw:
                runs.append((("broken", name), _broken_program(name), None))
        return runs

    def result(self, hw, key: tuple) -> VerifyResult:
        if key not in self._results:
            from sparsim.rtl.verilator import verify_all

            runs = self._runs_for(hw)
            results = verify_all([(program, seed) for _, program, seed in runs])
            self._results.update({k: res for (k, _, _), res in zip(runs, results)})
        return self._results[key]


@pytest.fixture(scope="session")
def verilator_runs() -> _VerilatorRuns:
    return _VerilatorRuns()


# ------------------------------------------------------------------------------------------
# The table


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case: Case, level: str, verilator_runs):
    program = case.program()
    if level == "functional":
        check_functional(program)
    elif level == "simulator":
        check_simulator(case, program)
    elif level == "amaranth":
        (res,) = amaranth_sim.verify_all([(program, None)])
        check_rtl(res)
    else:
        check_rtl(verilator_runs.result(case.point.hardware, ("case", case.id)))


@pytest.mark.verilator
@pytest.mark.parametrize("dp,data_seed,stall_seed", STALL_RUNS,
                         ids=[f"dp{d}-data{s}-stall{t}" for d, s, t in STALL_RUNS])
def test_verilator_values_under_random_stalls(dp, data_seed, stall_seed, verilator_runs):
    res = verilator_runs.result(random_design_point(dp, data_seed).hardware, ("stall", dp, data_seed))
    assert res.stall_seed == stall_seed
    assert not res.errors, res.summary()
    assert res.outputs_match, res.summary()
    assert res.cycles_rtl > res.cycles_sim  # the stalls really slowed the run down


def test_case_table_covers_the_required_corners():
    points = [random_design_point(d, 1) for d in DESIGN_SEEDS]
    programs = [compile_design_point(p, with_data=True) for p in points]
    assert {p.hardware.lanes for p in points} == {1, 2}
    assert {p.hardware.chain_len for p in points} >= {2, 4, 8}
    assert len({p.hardware.chains for p in points}) > 1
    assert len({p.hardware.acc_bits for p in points}) > 1
    nms = {f"{pl.n}:{p.hw.mux_m}" for p in programs for pl in p.plans}
    assert nms >= {"2:4", "2:8", "4:16", "8:16", "16:16"}
    assert {pl.weight_bits for p in programs for pl in p.plans} == {4, 8}
    assert sum(c.hand_cycles is not None for c in CASES) >= 2
    for prog in programs:
        gemv, gemm, _ = prog.plans
        assert gemv.tokens == 1 and gemm.chunks > 1 and gemm.row_tiles > 1
        assert all(pl.k % prog.hw.mux_m for pl in prog.plans)
        hw = prog.hw
        assert max(hw.weight_bank_depth, hw.act_depth, hw.out_bank_depth) <= 64
        # The GEMM's later chunks prefetch into the second activation bank while the chains
        # work, so the RTL's cycle counts test double buffering: synced loads would be slower.
        lda = prog.instrs["op"] == isa.OP_LDA
        assert not prog.instrs["sync"][lda].all()
        synced = copy.copy(prog)
        synced.instrs = prog.instrs.copy()
        synced.instrs["sync"][lda] = 1
        assert run(synced).cycles > run(prog).cycles


# ------------------------------------------------------------------------------------------
# Negative controls: the checks above must be able to fail


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", BROKEN_PROGRAMS)
def test_broken_program_fails(name: str, level: str, verilator_runs):
    case = CASES_BY_ID[BROKEN_PROGRAMS[name][0]]
    broken = _broken_program(name)
    if level == "functional":
        with pytest.raises(AssertionError, match="differs from golden"):
            check_functional(broken)
    elif level == "simulator":
        if name == "weight-byte":
            check_simulator(case, broken)  # timing does not read data: this one passes
        else:
            with pytest.raises(AssertionError, match="by hand"):
                check_simulator(case, broken)
    else:
        if level == "amaranth":
            (res,) = amaranth_sim.verify_all([(broken, None)])
        else:
            res = verilator_runs.result(case.point.hardware, ("broken", name))
        assert not res.ok and not res.outputs_match, res.summary()
        with pytest.raises(AssertionError, match="outputs DIFFER"):
            check_rtl(res)


def test_broken_rtl_fails_under_amaranth(monkeypatch):
    """Multiplier operands one bit too narrow (INT8 truncated to 7 bits) break the values."""
    import sparsim.rtl.dsp_chain

    program = CASES_BY_ID["example-tiny-gemm"].program()
    monkeypatch.setattr(sparsim.rtl.dsp_chain, "OPERAND_BITS", 7)
    (res,) = amaranth_sim.verify_all([(program, None)])
    assert not res.ok, res.summary()
    with pytest.raises(AssertionError, match="outputs DIFFER"):
        check_rtl(res)


#: The accumulator of every chain restarts at zero on a token group's first step; the mutation
#: makes it keep the previous group's sum (Yosys prints the restart as ``first ? 0 : acc``).
_RESTART = re.compile(r"\? \d+'d0 : (acc\d+);")


@pytest.mark.verilator
def test_broken_rtl_fails_under_verilator_and_sparsim_verify(monkeypatch, tmp_path, capsys):
    import sparsim.rtl.verilator
    from sparsim.rtl.verilog import to_verilog
    from sparsim.cli import main

    def mutated(hw):
        text, count = _RESTART.subn(r"? \1 : \1;", to_verilog(hw))
        assert count == hw.chains * hw.lanes, "the mutation no longer matches the Verilog"
        return text

    monkeypatch.setattr(sparsim.rtl.verilator, "to_verilog", mutated)
    monkeypatch.setenv("SPARSIM_BUILD_DIR", str(tmp_path))
    assert main(["verify", "examples/tiny_gemm.yaml", "--seeds", "2"]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == 2 and "0 passed, 2 failed" in out
    # Same build (reused): the case-table check fails too.
    (res,) = sparsim.rtl.verilator.verify_all([(CASES_BY_ID["example-tiny-gemm"].program(), None)])
    with pytest.raises(AssertionError, match="outputs DIFFER"):
        check_rtl(res)


# ------------------------------------------------------------------------------------------
# nm_train rows: functional model, cycle simulator, Amaranth's simulator (the hand cases: the
# others take minutes there) and Verilator (one build per design point; `make test` builds the
# points of NM_VERILATOR_POINTS, SPARSIM_NM_RTL_ALL=1 every point, the example and the hand cases)


def check_nm_functional(program) -> None:
    from sparsim.dataflow import nm_train_isa
    from sparsim.dataflow.nm_train_exec import execute as nm_execute

    memory = nm_execute(program.hw, program.words(), program.memory)
    for g, got, want in zip(program.gemms, program.read_outputs(memory), program.expected_outputs()):
        assert (got == want).all(), f"{g.name} {nm_train_isa.PASSES[g.pass_]}: functional model differs from golden"


def check_nm_simulator(case: Case, program) -> None:
    from sparsim.simulator import nm_train as nm_sim

    r = nm_sim.run(program)
    assert r.stream_cycles + r.pregen_cycles + sum(r.stalls.values()) == r.cycles
    assert sum(r.pass_cycles.values()) == r.cycles
    assert r.cycles * program.hw.memory.bandwidth_bytes_per_cycle >= r.bytes_read
    if case.hand_cycles is not None:
        assert r.cycles == case.hand_cycles, f"simulator {r.cycles} cycles, by hand {case.hand_cycles}"


#: nm cases run under Amaranth's simulator (hundreds of cycles on arrays without N:M units).
NM_AMARANTH_IDS = ("nm-hand-step", "nm-hand-double-buffer")
#: nm design points built under Verilator by default: each runs its three data seeds, two runs
#: with random stalls and (the first) a broken Program on one build.
NM_VERILATOR_POINTS = (0,)
#: Set to 1 to build and run every nm design point, the example and the hand cases as well.
NM_ALL_ENV = "SPARSIM_NM_RTL_ALL"
#: (design point, data seed, stall seed) of the nm runs with random stalls on every stream.
NM_STALL_RUNS = tuple((dp, data, stall) for dp in NM_DESIGN_SEEDS for data, stall in ((4, 201), (5, 202)))


def _nm_built(case_id: str) -> bool:
    """Whether ``make test`` runs this nm case under Verilator (else only with NM_ALL_ENV)."""
    import os

    return os.environ.get(NM_ALL_ENV) == "1" or any(case_id.startswith(f"nm-dp{dp}-") for dp in NM_VERILATOR_POINTS)


_NM_SKIP = f"set {NM_ALL_ENV}=1 to build this nm_train design point under Verilator"


def _break_nm_activation(program):
    """Flip the low seven bits of the first activation byte the first LDA reads."""
    from sparsim.dataflow import nm_train_isa

    lda = program.instrs[program.instrs["op"] == nm_train_isa.OP_LDA][0]
    program.memory[int(lda["addr"])] ^= 0x7F
    return program


NM_BROKEN_CASE = f"nm-dp{NM_VERILATOR_POINTS[0]}-data1"


class _NmVerilatorRuns:
    """Every nm case, stalled run and the broken Program of a hardware configuration in one
    Verilator process, the first time any of them is asked for."""

    def __init__(self):
        self._results: dict[tuple, VerifyResult] = {}

    def result(self, hw, key: tuple) -> VerifyResult:
        if key not in self._results:
            from sparsim.rtl.verilator import verify_all

            runs = [(("case", c.id), c.program(), None) for c in NM_CASES if c.point.hardware == hw]
            for dp, data_seed, stall_seed in NM_STALL_RUNS:
                point = nm_random_design_point(dp, data_seed)
                if point.hardware == hw:
                    runs.append((("stall", dp, data_seed), engines_compile(point), stall_seed))
            if CASES_BY_ID[NM_BROKEN_CASE].point.hardware == hw:
                runs.append((("broken",), _break_nm_activation(CASES_BY_ID[NM_BROKEN_CASE].program()), None))
            results = verify_all([(program, seed) for _, program, seed in runs])
            self._results.update({k: res for (k, _, _), res in zip(runs, results)})
        return self._results[key]


@pytest.fixture(scope="session")
def nm_verilator_runs() -> _NmVerilatorRuns:
    return _NmVerilatorRuns()


def _nm_levels():
    for case in NM_CASES:
        for level in ("functional", "simulator"):
            yield pytest.param(case, level, id=f"{case.id}-{level}")
        if case.id in NM_AMARANTH_IDS:
            yield pytest.param(case, "amaranth", id=f"{case.id}-amaranth")
        yield pytest.param(case, "verilator", id=f"{case.id}-verilator", marks=[
            pytest.mark.verilator, pytest.mark.skipif(not _nm_built(case.id), reason=_NM_SKIP)])


@pytest.mark.parametrize("case,level", list(_nm_levels()))
def test_nm_case(case: Case, level: str, nm_verilator_runs):
    if level == "verilator":
        check_rtl(nm_verilator_runs.result(case.point.hardware, ("case", case.id)))
        return
    program = case.program()
    if level == "functional":
        check_nm_functional(program)
    elif level == "simulator":
        check_nm_simulator(case, program)
    else:
        (res,) = amaranth_sim.verify_all([(program, None)])
        check_rtl(res)


@pytest.mark.verilator
@pytest.mark.parametrize("dp,data_seed,stall_seed", [
    pytest.param(d, s, t, id=f"nm-dp{d}-data{s}-stall{t}",
                 marks=pytest.mark.skipif(not _nm_built(f"nm-dp{d}-"), reason=_NM_SKIP))
    for d, s, t in NM_STALL_RUNS])
def test_nm_verilator_values_under_random_stalls(dp, data_seed, stall_seed, nm_verilator_runs):
    res = nm_verilator_runs.result(nm_random_design_point(dp, data_seed).hardware, ("stall", dp, data_seed))
    assert res.stall_seed == stall_seed
    assert not res.errors, res.summary()
    assert res.outputs_match, res.summary()
    assert res.cycles_rtl > res.cycles_sim  # the stalls really slowed the run down


@pytest.mark.verilator
def test_nm_broken_program_fails_under_verilator(nm_verilator_runs):
    """The same build's check fails on a Program whose first activation byte is flipped."""
    res = nm_verilator_runs.result(CASES_BY_ID[NM_BROKEN_CASE].point.hardware, ("broken",))
    assert not res.ok and not res.outputs_match, res.summary()
    with pytest.raises(AssertionError, match="outputs DIFFER"):
        check_rtl(res)


def test_nm_case_table_covers_the_required_corners():
    """Issue 9's verification points: R, C, both dataflows, N:M in {2:4, 1:4, 2:8, 4:8, 4:16,
    dense}, each of the three passes, shapes off the multiples of R, C and M, chunked
    reductions, pre-generated and inline-pruned weights."""
    from sparsim.dataflow import nm_train_isa

    points = [nm_random_design_point(d, 1) for d in NM_DESIGN_SEEDS]
    programs = [engines_compile(p) for p in points]
    assert len(points) >= 8
    assert {p.hardware.dataflow for p in points} == {"os", "ws"}
    assert len({(p.hardware.rows, p.hardware.cols) for p in points}) > 3
    nms = {f"{g.n}:{g.m}" for prog in programs for g in prog.gemms}
    assert nms >= {"2:4", "1:4", "2:8", "4:8", "4:16", "1:1"}
    for prog in programs:
        assert {g.pass_ for g in prog.gemms} == {nm_train_isa.FORWARD, nm_train_isa.ACT_GRAD,
                                                  nm_train_isa.WEIGHT_GRAD}
        assert any(g.k % g.m or g.p % prog.hw.rows or g.q % prog.hw.cols for g in prog.gemms)
    assert any(g.chunks > 1 for prog in programs for g in prog.gemms)
    assert any(prog.pregens for prog in programs)
    assert any(g.prune for prog in programs for g in prog.gemms)
    assert sum(c.hand_cycles is not None for c in NM_CASES) >= 2


def engines_compile(point):
    from sparsim import engine as engines

    return engines.of(point.hardware).compile(point, with_data=True)


def test_nm_broken_program_fails():
    """The nm checks can fail: a flipped A byte breaks the functional level, a dropped fold
    column the hand-timed simulator level."""
    from sparsim.dataflow import nm_train_isa

    program = CASES_BY_ID["nm-example-tiny"].program()
    lda = program.instrs[program.instrs["op"] == nm_train_isa.OP_LDA][0]
    program.memory[int(lda["addr"])] ^= 0x7F
    with pytest.raises(AssertionError, match="differs from golden"):
        check_nm_functional(program)
    case = CASES_BY_ID["nm-hand-step"]
    program = case.program()
    program.instrs[5]["width"] = 2
    with pytest.raises(AssertionError, match="by hand"):
        check_nm_simulator(case, program)


# ------------------------------------------------------------------------------------------
# recsys rows: functional model and cycle simulator (the RTL levels join with rtl/recsys.py)


def check_rs_functional(program) -> None:
    from sparsim.dataflow.recsys_exec import execute as rs_execute

    (got,) = program.read_outputs(rs_execute(program.hw, program.words(), program.memory))
    assert (got == program.expected).all(), "functional model differs from golden"


def check_rs_simulator(case: Case, program) -> None:
    from sparsim.simulator import recsys as rs_sim

    r = rs_sim.run(program)
    dense = r.activity["bottom_mlp"] + r.activity["interaction"] + r.activity["top_mlp"]
    assert dense + sum(v for k, v in r.stalls.items() if k.startswith("dense_")) == r.cycles
    c = r.counters
    beats = -(-program.hw.line_bytes // program.hw.memory.bytes_per_cycle)
    lines = c["loader_lines"] + c["cache_misses"] + c["store_lines"]
    assert r.cycles * program.hw.memory.channels >= lines * beats
    if case.hand_cycles is not None:
        assert r.cycles == case.hand_cycles, f"simulator {r.cycles} cycles, by hand {case.hand_cycles}"


@pytest.mark.parametrize("level", ("functional", "simulator"))
@pytest.mark.parametrize("case", RS_CASES, ids=lambda c: c.id)
def test_rs_case(case: Case, level: str):
    program = case.program()
    if level == "functional":
        check_rs_functional(program)
    else:
        check_rs_simulator(case, program)


def _rs_rtl_runs(case: Case) -> bool:
    """Whether rtl/recsys.py's top runs the case's hardware (arrays of at most ``pool_lanes``
    columns so far: every case of the table)."""
    hw = case.point.hardware
    return hw.cols <= hw.pool_lanes


#: recsys cases at the RTL levels in ``make test``: the hand-timed one and the three data seeds
#: of design points 6 (OS, 2 x 2, concat) and 1 (WS, 4 x 3, concat, 4 gather units), each point
#: one Verilator build, and the gather-bound point (the only one whose dense engine waits for its
#: gathers, so its cycles differ between data seeds), and the first data seed of the point whose
#: cycles the walker's row buffer of two sets, and that of the point whose index LOADs wait on the gathers. ``SPARSIM_RECSYS_RTL=all`` runs every case of the table (the tiny
#: example and all 8 design points x 3 seeds: both dataflows, concat and dot, 1 to 4 gather
#: units, 1 to 3 channels, tag pools of 1 to 8, latencies 1 to 9), with a stalled run of each.
RS_RTL_CASES = tuple(c for c in RS_CASES if _rs_rtl_runs(c) and (
    os.environ.get("SPARSIM_RECSYS_RTL") == "all" or c.id == "rs-hand-one-sample"
    or c.id.startswith(("rs-dp6-", "rs-dp1-", f"rs-gather{RS_GATHER_POINT}-"))
    or c.id == f"rs-gather{RS_ROW_BUFFER_POINT}-data1" or c.id == f"rs-gather{RS_LOAD_WAIT_POINT}-data1"))
#: Stalled runs (random instruction gaps, request and write back-pressure): (case, stall seed).
RS_STALL_RUNS = tuple((c, 200 + i) for i, c in enumerate(RS_RTL_CASES) if c.hand_cycles is None)


class _RsVerilatorRuns:
    """Every recsys case and stalled run of one hardware configuration in one Verilator build
    and one simulator process, the first time any of them is asked for."""

    def __init__(self):
        self._results: dict[tuple, VerifyResult] = {}

    def result(self, hw, key: tuple) -> VerifyResult:
        if key not in self._results:
            from sparsim.rtl.verilator import verify_all

            runs = [(("case", c.id), c.program(), None) for c in RS_RTL_CASES if c.point.hardware == hw]
            runs += [(("stall", c.id), c.program(), seed) for c, seed in RS_STALL_RUNS if c.point.hardware == hw]
            results = verify_all([(program, seed) for _, program, seed in runs])
            self._results.update({k: res for (k, _, _), res in zip(runs, results)})
        return self._results[key]


@pytest.fixture(scope="session")
def rs_verilator_runs() -> _RsVerilatorRuns:
    return _RsVerilatorRuns()


@pytest.mark.parametrize("level", ("amaranth", pytest.param("verilator", marks=pytest.mark.verilator)))
@pytest.mark.parametrize("case", RS_RTL_CASES, ids=lambda c: c.id)
def test_rs_rtl_case(case: Case, level: str, rs_verilator_runs):
    if level == "amaranth":
        (res,) = amaranth_sim.verify_all([(case.program(), None)])
    else:
        res = rs_verilator_runs.result(case.point.hardware, ("case", case.id))
    check_rtl(res)


_RS_AMARANTH_STALLED: dict[str, VerifyResult] = {}


def _rs_stalled(case: Case, stall_seed: int, level: str, rs_verilator_runs) -> VerifyResult:
    if level == "verilator":
        return rs_verilator_runs.result(case.point.hardware, ("stall", case.id))
    if case.id not in _RS_AMARANTH_STALLED:
        (_RS_AMARANTH_STALLED[case.id],) = amaranth_sim.verify_all([(case.program(), stall_seed)])
    return _RS_AMARANTH_STALLED[case.id]


@pytest.mark.parametrize("level", ("amaranth", pytest.param("verilator", marks=pytest.mark.verilator)))
@pytest.mark.parametrize("case,stall_seed", RS_STALL_RUNS, ids=[f"{c.id}-stall{s}" for c, s in RS_STALL_RUNS])
def test_rs_rtl_values_under_random_stalls(case: Case, stall_seed: int, level: str, rs_verilator_runs):
    res = _rs_stalled(case, stall_seed, level, rs_verilator_runs)
    assert res.stall_seed == stall_seed
    assert not res.errors, res.summary()
    assert res.outputs_match, res.summary()
    # Stalls only delay; a short Program may dodge them all (they fall where nothing waits). Where
    # an index LOAD waits on the gathers (``RS_LOAD_WAIT_POINT``) a delay can reorder the loader's
    # and the units' requests on a channel and end sooner (``LOAD_WAIT_CYCLES``, a delay, took
    # gather-bound points 2 and 37 from 4,940 to 4,932 and from 6,087 to 6,078 cycles), so there
    # only the values are checked.
    if not case.id.startswith(f"rs-gather{RS_LOAD_WAIT_POINT}-"):
        assert res.cycles_rtl >= res.cycles_sim, res.summary()


@pytest.mark.parametrize("level", ("amaranth", pytest.param("verilator", marks=pytest.mark.verilator)))
def test_rs_rtl_stalls_slow_runs_down(level: str, rs_verilator_runs):
    """The stalls really act: most stalled runs take longer than the contract's cycles."""
    results = [_rs_stalled(c, s, level, rs_verilator_runs) for c, s in RS_STALL_RUNS]
    slower = [res.cycles_rtl > res.cycles_sim for res in results]
    assert sum(slower) * 2 > len(slower), [(res.cycles_rtl, res.cycles_sim) for res in results]


#: One case per design point of ``RS_RTL_CASES`` (every case under ``SPARSIM_RECSYS_RTL=all``).
RS_POISON_CASES = tuple(c for c in RS_RTL_CASES if os.environ.get("SPARSIM_RECSYS_RTL") == "all"
                        or not c.id.endswith(("-data2", "-data3")))


@pytest.mark.parametrize("case", RS_POISON_CASES, ids=lambda c: c.id)
def test_rs_no_rw_check_memories_never_serve_a_colliding_read(case: Case):
    """The dense engine's memories and the index banks tell Yosys that a read in the cycle its
    word is written may return anything (``no_rw_check``, so the block RAMs keep their output
    registers; negative controls in tests/test_rtl_recsys.py). With the
    simulation poison a colliding read returns its word inverted: values still golden and
    cycles the simulator's means no read whose data is used ever collides."""
    from sparsim.rtl import recsys as rs_rtl

    with rs_rtl.poison_collisions():
        (res,) = amaranth_sim.verify_all([(case.program(), None)])
    check_rtl(res)


def test_rs_rtl_cases_time_the_gathers():
    """The RTL-level cases in ``make test`` check the gather side's timing, not only the dense
    engine's: one of their points has its dense engine wait for gathers, and its cycles change
    with the indices (the data seed)."""
    from sparsim.simulator.recsys import run

    by_point: dict = {}
    for case in RS_RTL_CASES:
        if "-data" in case.id:
            timed = run(case.program())
            by_point.setdefault(case.id.rsplit("-data", 1)[0], []).append(
                (timed.cycles, timed.stalls["dense_gather"]))
    assert any(len({c for c, _ in runs}) > 1 and all(g > 0 for _, g in runs) for runs in by_point.values()), by_point


def test_rs_broken_rtl_program_fails_under_amaranth():
    """A flipped weight byte (the first bottom layer's first weight) breaks the RTL's values."""
    program = CASES_BY_ID["rs-dp6-data1"].program()
    program.memory[0] ^= 0x5A
    (res,) = amaranth_sim.verify_all([(program, None)])
    assert not res.ok, res.summary()
    with pytest.raises(AssertionError, match="outputs DIFFER"):
        check_rtl(res)


def test_rs_case_table_covers_the_required_corners():
    """Issue 10's verification points: at least 8 design points varying G, max_outstanding,
    line size, latency and channels; embedding dims not a multiple of the line; bags of 0 and
    1; several mini-batches; concat and dot; three data seeds each."""
    points = [rs_random_design_point(d, 1) for d in RS_DESIGN_SEEDS]
    programs = [engines_compile(p) for p in points]
    hws = [p.hardware for p in points]
    assert len(points) >= 8
    for name in ("gather_units", "max_outstanding", "line_bytes"):
        assert len({getattr(h, name) for h in hws}) > 1, name
    assert len({h.memory.latency_cycles for h in hws}) > 2 and len({h.memory.channels for h in hws}) > 1
    assert any(h.cache_lines for h in hws) and any(not h.cache_lines for h in hws)
    assert any(p.workload.dim % p.hardware.line_bytes for p in points)
    sizes = np.concatenate([b.sizes for prog in programs for b in prog.bags])
    assert (sizes == 0).any() and (sizes == 1).any()
    assert {p.workload.interaction for p in points} == {"concat", "dot"}
    assert any(prog.plan.mini_batches > 2 for prog in programs)
    assert sum(c.hand_cycles is not None for c in RS_CASES) >= 1
    assert all(_rs_rtl_runs(c) for c in RS_CASES)


def test_rs_broken_program_fails():
    """The recsys checks can fail: a flipped embedding byte breaks the functional level, a
    longer row dim the hand-timed simulator level."""
    from sparsim.dataflow import recsys_isa

    program = CASES_BY_ID["rs-example-tiny"].program()
    bag = program.bags[0]
    program.memory[program.table_base[0] + int(bag.indices[0]) * program.plan.model.dim] ^= 0x55
    with pytest.raises(AssertionError, match="differs from golden"):
        check_rs_functional(program)
    case = CASES_BY_ID["rs-hand-one-sample"]
    program = case.program()
    gather = int(np.flatnonzero(program.instrs["op"] == recsys_isa.OP_GATHER)[0])
    program.instrs[gather]["q"] = 17  # the row now touches two lines
    with pytest.raises(AssertionError, match="by hand"):
        check_rs_simulator(case, program)
