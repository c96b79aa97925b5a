"""The resource model against real synthesis (Yosys synth_xilinx) of generated RTL."""

from __future__ import annotations

import pytest

from simulator import resources
from simulator.resources import memory_cost

CALIBRATION = [  # the three smallest calibration points of benchmarks/calibrate_resources.py
    dict(chains=1, chain_len=2, mux_m=4, lanes=1),
    dict(chains=2, chain_len=4, mux_m=8, lanes=1),
    dict(chains=2, chain_len=4, mux_m=8, lanes=2),
]


def _hw(overrides):
    from dataflow.config import design_point_from_dict

    return design_point_from_dict({
        "hardware": {"preset": "tiny", **overrides},
        "workload": {"kind": "gemm", "layers": [{"rows": 4, "k": 32, "sparsity": "8:8"}]},
    }).hardware


def test_memory_mapping_rules():
    assert memory_cost(88, 46, copies=2).lutram_luts == 2 * 8 * 13  # RAM64M8, 7 bits each
    assert memory_cost(64, 32, copies=2).lutram_luts == 2 * 8 * 5  # RAM32M16, 14 bits each
    assert memory_cost(20, 170).bram36 == 0.5  # one RAMB18 as 512 x 36
    assert memory_cost(176, 186, copies=2).bram36 == 5  # 5 RAMB18 per copy
    assert memory_cost(64, 128, copies=2).bram36 == 2  # one RAMB36 (512 x 72) per port
    assert memory_cost(30720, 1024).uram == 427


def test_two_lanes_share_one_dsp():
    one, two = _hw(dict(lanes=1)), _hw(dict(lanes=2))
    assert resources.estimate(one).dsp == resources.estimate(two).dsp == one.chains * one.chain_len


def test_u280_preset_fits_its_device():
    from dataflow.config import design_point_from_dict

    hw = design_point_from_dict({"hardware": {"preset": "u280"},
                                 "workload": {"kind": "llm", "model": "llama2-7b"}}).hardware
    assert resources.over_budget(resources.estimate(hw), "u280") == []
    bigger = hw.model_copy(update={"chains": 192})
    assert "uram" in resources.over_budget(resources.estimate(bigger), "u280")


@pytest.mark.synth
@pytest.mark.parametrize("overrides", CALIBRATION, ids=lambda o: "P{chains}L{chain_len}M{mux_m}x{lanes}".format(**o))
def test_model_agrees_with_yosys(overrides, tmp_path_factory):
    from rtl.synth import synthesize

    hw = _hw(overrides)
    syn = synthesize(hw)
    est = resources.estimate(hw)
    assert est.dsp == syn.dsp
    assert est.bram36 == syn.bram36
    assert est.uram == syn.uram
    for name in ("lut", "ff"):
        got, want = getattr(est, name), getattr(syn, name)
        assert abs(got - want) <= resources.TOLERANCE * want, f"{name}: model {got}, yosys {want}"


@pytest.mark.synth
def test_synth_cli(capsys):
    from sparsim.cli import main

    assert main(["synth", "examples/tiny_gemm.yaml", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["synthesis"]["dsp"] == data["model"]["dsp"] == 8
    assert data["synthesis"]["lut"] > 0 and data["synthesis"]["ff"] > 0
