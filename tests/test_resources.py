"""The resource model against real synthesis (Yosys synth_xilinx) of generated RTL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sparsim.simulator import resources
from sparsim.simulator.resources import memory_cost

#: Yosys synth_xilinx counts of the calibration points (benchmarks/calibrate_resources.py).
TABLE = json.loads((Path(__file__).parents[1] / "benchmarks" / "resource_calibration.json").read_text())


def _hw(spec: dict):
    from sparsim.dataflow.config import design_point_from_dict

    return design_point_from_dict({
        "hardware": spec,
        "workload": {"kind": "gemm", "layers": [{"rows": 4, "k": 32, "sparsity": "8:8"}]},
    }).hardware


def test_memory_mapping_rules():
    assert memory_cost(88, 46, copies=2).lutram_luts == 2 * 8 * 13  # RAM64M8, 7 bits each
    assert memory_cost(64, 32, copies=2).lutram_luts == 2 * 8 * 5  # RAM32M16, 14 bits each
    assert memory_cost(20, 170).bram36 == 0.5  # one RAMB18 as 512 x 36
    assert memory_cost(176, 186, copies=2).bram36 == 5  # 5 RAMB18 per copy
    assert memory_cost(64, 128, copies=2).bram36 == 2  # one RAMB36 (512 x 72) per port
    assert memory_cost(30720, 1024).uram == 427


def test_read_registers_left_in_the_fabric():
    # As the calibration netlists show: distributed RAM's read register is fabric FFs (only the
    # address when the port is transparent to the write port); a block RAM keeps its read
    # register but not the output register behind it, except on one of several read ports.
    assert memory_cost(64, 32, copies=2).read_ffs == 2 * 64
    assert memory_cost(64, 32, copies=2, output_register=True).read_ffs == 2 * 2 * 64
    assert memory_cost(128, 16, copies=2, transparent=True).read_ffs == 2 * 4
    assert memory_cost(176, 186, copies=2).read_ffs == 0
    assert memory_cost(176, 186, copies=2, output_register=True).read_ffs == 2 * 176
    assert memory_cost(32, 256, copies=8, output_register=True, shared_ports=True).read_ffs == 7 * 32


def test_mux_luts_are_a_tree_of_4_to_1_luts():
    assert [resources._mux_luts(k) for k in (1, 2, 3, 4, 5, 8, 16)] == [0, 1, 1, 1, 3, 3, 5]


def test_two_lanes_share_one_dsp():
    one, two = _hw(dict(preset="tiny", lanes=1)), _hw(dict(preset="tiny", lanes=2))
    assert resources.estimate(one).dsp == resources.estimate(two).dsp == one.chains * one.chain_len


def test_u280_preset_fits_its_device():
    from sparsim.dataflow.config import design_point_from_dict

    hw = design_point_from_dict({"hardware": {"preset": "u280"},
                                 "workload": {"kind": "llm", "model": "llama2-7b"}}).hardware
    assert resources.over_budget(resources.estimate(hw), "u280") == []
    bigger = hw.model_copy(update={"chains": 192})
    assert "uram" in resources.over_budget(resources.estimate(bigger), "u280")


def _check(est, counts: dict) -> None:
    assert est.dsp == counts["dsp"]
    assert est.bram36 == counts["bram36"]
    assert est.uram == counts["uram"]
    for name in ("lut", "ff"):
        got, want = getattr(est, name), counts[name]
        assert abs(got - want) <= resources.TOLERANCE[name] * want, f"{name}: model {got}, yosys {want}"


def test_calibration_spans_a_few_hundred_dsps():
    dsps = sorted(row["dsp"] for row in TABLE)
    assert dsps[0] <= 8 and dsps[-1] >= 512 and sum(d >= 128 for d in dsps) >= 6
    assert (min(dsps), max(dsps)) == resources.CALIBRATED_DSPS


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r["name"])
def test_model_within_tolerance_on_recorded_synthesis(row):
    _check(resources.estimate(_hw(row["hardware"])), row)


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r["name"])
def test_recorded_synthesis_is_of_the_current_rtl(row):
    # The table must be re-measured when the RTL changes. Every row: a change can reach only
    # the larger points (cascades, more lanes per DSP); all nine take about 45 s to elaborate.
    from sparsim.rtl.verilog import to_verilog

    assert hashlib.sha256(to_verilog(_hw(row["hardware"])).encode()).hexdigest()[:16] == row["verilog_sha"], (
        "rtl changed since benchmarks/resource_calibration.json was measured: rerun "
        "benchmarks/calibrate_resources.py")


@pytest.mark.synth
def test_model_agrees_with_live_yosys():
    from sparsim.rtl.synth import synthesize

    row = min(TABLE, key=lambda r: r["dsp"])
    syn = synthesize(_hw(row["hardware"]))
    _check(resources.estimate(_hw(row["hardware"])), syn.resources())
