"""benchmarks/bench_nm_blocks.py rebuilds the nm_train top's blocks from rtl/nm_train.py's helpers:
each block must still elaborate to Verilog at the tiny point whenever those helpers change
(it had fallen behind them: the receiver's per-consumer copies and the segment's entry count)."""

import importlib.util
import sys
from pathlib import Path

import pytest
from amaranth.back import verilog

from sparsim.dataflow.config import load_design_point

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_nm_blocks.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPT.parent))  # it imports its neighbours, as when run from there
    try:
        spec = importlib.util.spec_from_file_location("bench_nm_blocks", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


@pytest.fixture(scope="module")
def blocks(bench):
    return bench._blocks(load_design_point(ROOT / "examples" / "nm_train_tiny.yaml").hardware)


def test_the_bench_names_the_blocks_the_docs_name(bench, blocks):
    assert {"in_words", "w_beats", "w_read", "prune", "rank", "pack", "pgs_read", "pgs_buffer",
            "out_banks", "out_add"} <= set(blocks)
    # the blocks of an earlier structure, marked in its output, are blocks it builds, and none
    # of the current ones above
    assert bench.EARLIER <= set(blocks)
    assert not bench.EARLIER & {"in_words", "w_beats", "prune", "rank", "pack", "out_banks", "out_add"}


@pytest.mark.parametrize("name", ["in_words", "w_beats", "w_read", "unpack", "prune", "pack", "pgs_read",
                                  "pgs_buffer", "out_banks", "out_add"])
def test_each_block_elaborates_registered(bench, blocks, name):
    block = bench._Block(blocks[name], registered=True)
    text = verilog.convert(block, name="top", ports=block.ports, emit_src=False)
    assert "module top" in text
    # registered: every port passes a register, so the block's text has flip-flops on both sides
    assert text.count("always @(posedge clk)") >= 1
    assert len(block.ports) >= 2
