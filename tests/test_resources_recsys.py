"""The recsys RTL's resource model (simulator/recsys.py ``rtl_resources``) against Yosys
``synth_xilinx -family xcup`` of the engine top, recorded in
benchmarks/recsys_resource_calibration.json (``sparsim synth CONFIG --no-pnr --json``; not
re-synthesised here)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sparsim.dataflow.config import load_design_point
from sparsim.simulator import recsys

ROOT = Path(__file__).parents[1]
TABLE = json.loads((ROOT / "benchmarks" / "recsys_resource_calibration.json").read_text())
#: LUT and FF error allowed on the recorded points (the bases are fitted on the tiny one).
TOLERANCE = {"lut": 0.10, "ff": 0.10}


def _hw(row):
    return load_design_point(ROOT / row["config"]).hardware


def _skip_if_stale(row):
    if row.get("stale"):
        # Recorded on an earlier RTL (a row's "stale" says what changed since): a visible skip
        # until it is re-synthesised, not a silent pass.
        pytest.skip(f"{row['name']}: {row['stale']}")


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r["name"])
def test_rtl_model_agrees_with_recorded_synthesis(row):
    _skip_if_stale(row)
    est = recsys.rtl_resources(_hw(row))
    # Exact: the mid point's two more DSPs are its intake's entry-wide products (10 bits, 8 on tiny).
    assert est["dsp"] == row["dsp"]
    assert est["bram36"] == row["bram36"]
    assert est["uram"] == row["uram"]
    for name in ("lut", "ff"):
        assert abs(est[name] - row[name]) <= TOLERANCE[name] * row[name], f"{name}: model {est[name]}, yosys {row[name]}"


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r["name"])
def test_recorded_synthesis_is_of_the_current_rtl(row):
    from sparsim.rtl.verilog import to_verilog

    _skip_if_stale(row)
    assert hashlib.sha256(to_verilog(_hw(row)).encode()).hexdigest()[:16] == row["verilog_sha"], (
        "rtl/recsys.py changed since benchmarks/recsys_resource_calibration.json was measured: "
        "re-run sparsim synth on its points")


def test_the_rtl_as_built_is_counted_not_the_architecture():
    # The operand copies (C weight copies and a bias port, R copies of the dense banks) and the
    # per-unit pooled memories are what makes the RTL cost more than one copy of each buffer.
    hw = _hw(TABLE[0])
    more_cols = hw.model_copy(update={"cols": hw.cols * 2, "pool_lanes": hw.pool_lanes * 2})
    grow = recsys.rtl_resources(more_cols)["bram36"] - recsys.rtl_resources(hw)["bram36"]
    per_copy = recsys.rtl_resources(hw)["bram36"] - recsys.rtl_resources(hw.model_copy(update={"cols": 1}))["bram36"]
    assert grow > 0 and per_copy > 0
    assert recsys.rtl_resources(hw)["bram36"] > recsys.resources(hw)["bram36"]
