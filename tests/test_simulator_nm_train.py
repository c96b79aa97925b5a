"""The nm_train simulator: the timing contract (docs/nm_train.md) by hand on a small step, and
laws over many."""

from __future__ import annotations

import dataclasses

import pytest

from sparsim.dataflow import nm_train_isa as isa
from sparsim.dataflow import systolic
from sparsim.dataflow.config import design_point_from_dict
from sparsim.dataflow.nm_train import ENGINE, compile_design_point
from sparsim.simulator.nm_train import STALL_CAUSES, pgs_cycles, run
from cases import CASES_BY_ID
from test_nm_train_model import random_point

def test_hand_computed_step():
    """Case nm-hand-step of tests/cases.py (derivation there): 77 cycles, forward 28 and
    weight_grad 49; the array waits 12 + 17 cycles for A rows, spends 7 + 14 on fill/drain and
    streams 4 + 4; each MM job adds MM_PIPE_CYCLES = 5 (bank_pipe); 9 cycles of tail for the
    last store and END."""
    case = CASES_BY_ID["nm-hand-step"]
    program = compile_design_point(case.point)
    assert list(program.instrs["op"]) == [2, 1, 3, 2, 1, 3, 0]
    r = run(program)
    assert isa.MM_PIPE_CYCLES == 5, "re-derive the hand cases of tests/cases.py"
    assert isa.LOAD_READY_CYCLES == 2, "re-derive the hand cases of tests/cases.py"
    assert isa.LOAD_REQUEST_CYCLES == 1, "re-derive the hand cases of tests/cases.py"
    assert r.cycles == case.hand_cycles == 77
    assert r.pass_cycles == {"forward": 28, "act_grad": 0, "weight_grad": 49, "pregen": 0}
    assert r.stalls == {"dispatch": 0, "input_stream": 29, "weight_stream": 0, "out_bank": 0,
                        "fill_drain": 21, "bank_pipe": 10, "tail": 9}
    assert r.stream_cycles == 8 and r.folds == 3
    assert r.bytes_read == 8 + 8 + 8 + 4 and r.bytes_written == 16 + 32
    assert r.layer_cycles == {"l": {"forward": 28, "weight_grad": 49}}
    assert r.per_pass["forward"]["stalls"]["input_stream"] == 12
    assert r.per_pass["weight_grad"]["stalls"] == {"dispatch": 0, "input_stream": 17, "weight_stream": 0,
                                                   "out_bank": 0, "fill_drain": 14, "bank_pipe": 5,
                                                   "tail": 9}
    assert (r.per_pass["forward"]["bytes_read"], r.per_pass["forward"]["bytes_written"]) == (16, 16)


def test_hand_computed_double_buffering_and_chunks():
    """Case nm-hand-double-buffer of tests/cases.py (derivation there): 110 cycles. The third
    forward tile's load waits for the first tile's MM (its bank's reader), the weight
    gradient's first load for the last store (sync), and its three K chunks accumulate into one
    stored tile."""
    case = CASES_BY_ID["nm-hand-double-buffer"]
    program = compile_design_point(case.point)
    ins = program.instrs
    assert list(ins["op"]) == [2, 1, 3, 1, 3, 1, 3] + [1, 2, 3] * 3 + [0]
    mm = ins[ins["op"] == isa.OP_MM]
    assert list(mm["acc"]) == [0, 0, 0, 0, 1, 1] and list(mm["store"]) == [1, 1, 1, 0, 0, 1]
    r = run(program)
    assert r.cycles == case.hand_cycles == 110
    assert r.pass_cycles == {"forward": 51, "act_grad": 0, "weight_grad": 59, "pregen": 0}
    assert r.stalls == {"dispatch": 0, "input_stream": 9, "weight_stream": 12, "out_bank": 0,
                        "fill_drain": 42, "bank_pipe": 30, "tail": 5}
    assert r.stream_cycles == 12 and r.folds == 6


def test_hand_computed_pregeneration():
    """nm_hand_pregen_program of tests/cases.py (derivation there): 64 cycles; its slab rows of
    4 entries are one weight RAM word read each (W = 8), so PGS axis 0 takes count +
    PREGEN_CYCLES = 16 cycles, PGS axis 1 G (M + TRANSPOSE_WRITE_CYCLES + count) +
    PREGEN_CYCLES = 28."""
    from cases import NM_HAND_PGS_CYCLES, nm_hand_pregen_program
    from sparsim.dataflow.nm_train import weight_word_entries

    assert isa.PREGEN_CYCLES == 8, "re-derive nm_hand_pregen_program in tests/cases.py"
    assert (isa.LOAD_READY_CYCLES, isa.TRANSPOSE_WRITE_CYCLES, isa.LOAD_REQUEST_CYCLES) == (2, 2, 1), \
        "re-derive nm_hand_pregen_program"
    program = nm_hand_pregen_program()
    assert weight_word_entries(program.hw) == 8, "re-derive nm_hand_pregen_program in tests/cases.py"
    r = run(program)
    assert r.cycles == NM_HAND_PGS_CYCLES == 64
    assert r.pregen_cycles == 16 + 28
    assert r.stalls == {"dispatch": 0, "input_stream": 0, "weight_stream": 13, "out_bank": 0,
                        "fill_drain": 0, "bank_pipe": 0, "tail": 7}
    assert r.pass_cycles["pregen"] == 64
    assert (r.bytes_read, r.bytes_written) == (32, 8 * 3 + 4 * 6)


def test_pgs_cycles_read_a_slab_row_in_chunks():
    """PGS's D when slab rows take several weight RAM reads (W = 4 entries a cycle): axis 0, 16
    rows of 16 entries (2:4 records of 4 groups of 3 B) read in 4 cycles each: 16 x 4 + 4 = 68;
    axis 1, 8 columns of 16 rows (k_steps 8: G = 4 groups of M = 4 rows), rows of 8 entries read
    in 2 cycles each, one of the buffer's write stage per group: 4 (4 x 2 + 1 + 8) + 4 = 72; a row
    of 17 entries takes 5 reads."""
    assert pgs_cycles(0, 16, 12, 8, 2, 2, 4, 4, 1) == 16 * 4 + 4
    assert pgs_cycles(1, 8, 8, 8, 2, 2, 4, 4, 1) == 4 * (4 * 2 + 1 + 8) + 4
    assert pgs_cycles(1, 17, 8, 8, 2, 2, 4, 4, 1) == 4 * (4 * 5 + 1 + 17) + 4


def _points(count: int = 24):
    return [design_point_from_dict(random_point(seed)) for seed in range(count)]


@pytest.mark.parametrize("point", _points(), ids=lambda p: f"seed{p.seed}")
def test_time_accounting_adds_up(point):
    """Streaming + pre-generation + every stall cause = cycles; passes and layers add up too;
    memory never beats its bandwidth."""
    program = compile_design_point(point)
    r = run(program)
    assert r.stream_cycles + r.pregen_cycles + sum(r.stalls[c] for c in STALL_CAUSES) == r.cycles
    assert sum(r.pass_cycles.values()) == r.cycles
    assert sum(sum(v.values()) for v in r.layer_cycles.values()) == r.cycles
    per = r.per_pass.values()
    assert sum(v["bytes_read"] for v in per) == r.bytes_read
    assert sum(v["bytes_written"] for v in per) == r.bytes_written
    assert sum(v["useful_macs"] for v in per) == r.useful_macs
    for cause in STALL_CAUSES:
        assert sum(v["stalls"][cause] for v in per) == r.stalls[cause]
    bw = point.hardware.memory.bandwidth_bytes_per_cycle
    assert r.cycles * bw >= r.bytes_read and r.cycles * bw >= r.bytes_written
    assert r.issued_macs >= r.useful_macs


@pytest.mark.parametrize("point", _points(12), ids=lambda p: f"seed{p.seed}")
def test_more_bandwidth_or_less_latency_never_slows(point):
    program = compile_design_point(point)
    base = run(program).cycles
    for change in ({"bytes_per_cycle": point.hardware.memory.bytes_per_cycle * 2},
                   {"latency_cycles": 1}):
        hw = point.hardware.model_copy(update={"memory": point.hardware.memory.model_copy(update=change)})
        faster = dataclasses.replace(program, hw=hw)
        assert run(faster).cycles <= base


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_one_tile_gemm_takes_the_array_equations(dataflow):
    """A GEMM held on chip at once runs as one MM of exactly systolic.gemm_cycles plus the
    bank pipeline (MM_PIPE_CYCLES).

    vcu1525 memory (384 B/cycle, latency 100) with an 8 x 4 array: forward P = 36, Q = 37,
    K = 150. LDB: issue 1, request taken 2 (LOAD_REQUEST_CYCLES 1), t0 = 102, 37 records of
    150 B one per cycle, 102..138, ready 140 (LOAD_READY_CYCLES 2). LDA: issue 3, t0 =
    max(104, 139) = 139, 36 records 139..174, ready 176. The MM starts at 176, so the forward
    pass takes 176 + gemm_cycles + MM_PIPE_CYCLES.
    """
    point = design_point_from_dict({
        "hardware": {"preset": "vcu1525", "rows": 8, "cols": 4, "dataflow": dataflow},
        "workload": {"kind": "train", "batch": 4, "mode": "dense",
                     "layers": [{"name": "a", "k": 150, "cout": 37, "positions": 9}]}})
    program = compile_design_point(point)
    mm = program.instrs[program.instrs["op"] == isa.OP_MM]
    assert list(program.instrs["op"][:3]) == [isa.OP_LDB, isa.OP_LDA, isa.OP_MM]
    assert (mm["pass_"] == isa.FORWARD).sum() == 1
    code = systolic.DATAFLOWS[dataflow]
    r = run(program)
    assert r.pass_cycles["forward"] == 174 + isa.LOAD_READY_CYCLES + systolic.gemm_cycles(code, 8, 4, 36, 37, 150) + isa.MM_PIPE_CYCLES
    assert r.folds == sum(systolic.fold_count(code, 8, 4, int(i["count"]), int(i["width"]), int(i["k_steps"]))
                          for i in mm)


def test_bdwp_beats_dense_and_pregen_costs_less_than_inline():
    """On the vcu1525 preset a sparse step is faster than dense, and pre-generating the copies
    once costs fewer off-chip bytes than pruning inside every weight load."""
    def point(**wl):
        return design_point_from_dict({"hardware": {"preset": "vcu1525"}, "workload": {
            "kind": "train", "batch": 8, "layers": [
                {"name": "c1", "k": 147, "cout": 64, "positions": 784},
                {"name": "c2", "k": 576, "cout": 128, "positions": 196},
                {"name": "c3", "k": 1152, "cout": 256, "positions": 49},
                {"name": "fc", "k": 256, "cout": 100}], **wl}})
    dense = ENGINE.evaluate(point(mode="dense"))
    bdwp = ENGINE.evaluate(point(mode="bdwp", sparsity="2:8"))
    inline = ENGINE.evaluate(point(mode="bdwp", sparsity="2:8", pregen="inline"))
    assert bdwp["cycles"] < dense["cycles"]
    assert bdwp.breakdown["pregen"] > 0 and inline.breakdown["pregen"] == 0
    assert bdwp["bytes_read"] < inline["bytes_read"]
    assert bdwp["samples_per_s"] == pytest.approx(8 / bdwp["seconds"])


def test_edited_program_is_timed_afresh():
    """The kernel reads the instruction columns on every run: one fold fewer in the weight
    gradient (width 4 -> 2 columns) saves its 9 cycles (the store of 2 x 8 B then ends at
    67 - 9 + 1 + 3 = 62, END at 63: 64 cycles)."""
    program = compile_design_point(CASES_BY_ID["nm-hand-step"].point)
    assert run(program).cycles == 77
    program.instrs[5]["width"] = 2
    assert run(program).cycles == 64


def test_simulate_and_sweep_through_the_cli(tmp_path, capsys, write_yaml):
    """`sparsim simulate` and `sparsim sweep` run nm_train points: per-pass breakdown and
    stalls by cause reach the JSON output and the sweep's results.csv."""
    import csv
    import json

    from sparsim.cli import main

    assert main(["simulate", "examples/nm_train_tiny.yaml", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    text = json.dumps(out)
    for key in ("samples_per_s", "forward", "act_grad", "weight_grad", "pregen", "fill_drain"):
        assert key in text
    spec = write_yaml("""\
name: nm_small
base:
  hardware: {preset: tiny}
  workload: {kind: train, batch: 2, mode: bdwp, sparsity: "2:8",
             layers: [{name: a, k: 27, cout: 8, positions: 4}, {name: b, k: 72, cout: 16, positions: 2},
                      {name: c, k: 16, cout: 5}]}
sweep:
  grid:
    hardware.dataflow: [os, ws]
    workload.pregen: [pre, inline]
objectives: {dsp: min, samples_per_s: max}
""", "sweep.yaml")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert len(rows) == 4
    for row in rows:
        total = sum(int(row[f"op_cycles_{p}"]) for p in isa.PASSES)
        assert total == int(row["cycles"])
        assert (int(row["op_cycles_pregen"]) > 0) == (row["workload.pregen"] == "pre")


def _reference_cycles(program) -> tuple[int, dict]:
    """docs/nm_train.md's event equations written out a second way, in plain Python: each
    bank's readers are listed explicitly (a load waits for the readers of the load two before it
    into the same bank), tiles are a list (a tile waits for the store of the tile two before it).
    Returns the cycle count and the stalls by cause."""
    import math

    from sparsim.dataflow import nm_train_isa as isa_
    from sparsim.dataflow.nm_train import weight_word_entries
    from sparsim.simulator.memory import read_start, transfer_end, write_start

    hw = program.hw
    bw, lat, ab = hw.memory.bandwidth_bytes_per_cycle, hw.memory.latency_cycles, hw.acc_bits // 8
    ins = program.instrs
    readers = {isa_.OP_LDA: [], isa_.OP_LDB: []}  # per load: the jobs that read its bank
    ready = {isa_.OP_LDA: 0, isa_.OP_LDB: 0}
    done = {}  # job index -> done cycle
    tiles = []  # store-done cycle of each tile
    stalls = dict.fromkeys(STALL_CAUSES, 0)
    f, read_free, write_free, last_store, prev_done = 0, 0, 0, -1, -1
    slab_cols = 0
    for i, row in enumerate(ins):
        op = int(row["op"])
        if op in readers:
            loads = readers[op]
            guard = max((done[j] for j in loads[-2]), default=-1) if len(loads) >= 2 else -1
            r = max(f + 1, guard + 1, last_store + 1 if row["sync"] else 0)
            a = transfer_end(read_start(r + isa_.LOAD_REQUEST_CYCLES, lat, read_free), int(row["count"]),
                             int(row["width"]), bw)
            read_free = a + 1
            ready[op] = a + isa_.LOAD_READY_CYCLES + (isa_.PRUNE_CYCLES if row["prune"] else 0)
            if op == isa_.OP_LDB:
                slab_cols = int(row["width"])  # a PGS's slab: this load's records (1:1)
            loads.append([])
            f = r + 1
        elif op in (isa_.OP_MM, isa_.OP_PGS):
            r = f + 1
            f = r + 1
            conds = [("dispatch", r + 1)]
            if op == isa_.OP_MM:
                conds.append(("input_stream", ready[isa_.OP_LDA]))
            conds.append(("weight_stream", ready[isa_.OP_LDB]))
            opens = op == isa_.OP_PGS or not row["acc"]
            if opens:
                conds.append(("out_bank", tiles[-2] + 1 if len(tiles) >= 2 else 0))
            start, cause = prev_done + 1, None
            for name, t in conds:
                if t > start:
                    start, cause = t, name
            if cause:
                stalls[cause] += start - (prev_done + 1)
            cnt, wid = int(row["count"]), int(row["width"])
            if op == isa_.OP_MM:
                code, ks = hw.dataflow_code, int(row["k_steps"])
                folds = systolic.fold_count(code, hw.rows, hw.cols, cnt, wid, ks)
                dur = folds * systolic.fold_cycles(code, hw.rows, hw.cols, ks, cnt)
                stalls["fill_drain"] += dur - folds * (ks if code == systolic.OS else cnt)
                stalls["bank_pipe"] += isa_.MM_PIPE_CYCLES
                dur += isa_.MM_PIPE_CYCLES
                readers[isa_.OP_LDA][-1].append(i)
            else:
                # A slab row is read W entries a cycle; axis 1: per group of M rows, their reads
                # into the transposing buffer, its write stage and one cycle per column (cnt
                # columns).
                groups = int(row["k_steps"]) // int(row["n"])
                rows_read = cnt if row["axis"] == 0 else groups * (1 << int(row["m_log2"]))
                row_reads = math.ceil(slab_cols / weight_word_entries(hw))
                per_group = isa_.TRANSPOSE_WRITE_CYCLES + cnt
                dur = rows_read * row_reads + (0 if row["axis"] == 0 else groups * per_group) + isa_.PREGEN_CYCLES
            readers[isa_.OP_LDB][-1].append(i)
            done[i] = prev_done = start + dur - 1
            if opens:
                tiles.append(None)
            if op == isa_.OP_PGS or row["store"]:
                rec = wid * ab if op == isa_.OP_MM else wid
                s = max(prev_done + 1, last_store + 1)
                last_store = transfer_end(write_start(s, write_free), cnt, rec, bw)
                write_free = last_store + 1
                tiles[-1] = last_store
        else:
            d = max(f + 1, prev_done + 1, last_store + 1)
            stalls["tail"] += d + 1 - (prev_done + 1)
            return d + 1, stalls
    raise AssertionError("no END")


@pytest.mark.parametrize("point", _points(36), ids=lambda p: f"seed{p.seed}")
def test_kernel_equals_a_second_reading_of_the_contract(point):
    program = compile_design_point(point)
    cycles, stalls = _reference_cycles(program)
    r = run(program)
    assert (r.cycles, r.stalls) == (cycles, stalls)
