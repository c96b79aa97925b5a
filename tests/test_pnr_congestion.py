"""benchmarks/pnr_congestion.py on hand-made router2 heatmaps (no nextpnr run)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pnr_congestion.py"


@pytest.fixture(scope="module")
def congestion():
    spec = importlib.util.spec_from_file_location("pnr_congestion", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _folder(tmp_path):
    (tmp_path / "ecp5_packed.json").write_text("{}")
    out = tmp_path / "congestion" / "heap_s1_g6"
    out.mkdir(parents=True)
    # iteration 1: 10 overused; iteration 2: 6, all in the lower-right 2 x 2 corner of a 4 x 4 map
    (out / "hm_congestion_by_coordinate_1.csv").write_text("1,0,0,0,\n0,0,0,0,\n0,0,3,2,\n0,0,2,2,\n")
    (out / "hm_congestion_by_coordinate_2.csv").write_text("0,0,0,0,\n0,0,0,0,\n0,0,2,1,\n0,0,2,1,\n")
    net1 = "wp__data$2858[3],4\nweight0_1_even[2],3\n$PACKER_GND_NET,3\n"
    # two bits of one register, a LUT output named after a register, a store of another lane
    net2 = ("wp__data$2858[3],2\nwp__data$2858[4],1\nweight0_seg_count_TRELLIS_FF_Q_DI_LUT4_Z,1\n"
            "weight1_1_even[2],2\n")
    (out / "hm_congestion_by_net_1.csv").write_text(net1)
    (out / "hm_congestion_by_net_2.csv").write_text(net2)
    return tmp_path


def test_group_names_registers_as_routed_endpoints_does(congestion):
    assert congestion.group("wp__data$2858[3]") == "wp__data$#"
    assert congestion.group("weight0_seg_count_TRELLIS_FF_Q_DI_LUT4_Z") == "weight#_seg_count"
    assert congestion.group("pg_sub_LUT4_D_5_Z[1]") == "pg_sub"


def test_summarises_the_asked_iteration_without_running_nextpnr(congestion, tmp_path, capsys):
    folder = _folder(tmp_path)
    assert congestion.main([str(folder), "--iterations", "2", "--block", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  1: 10, 2: 6" in out
    # 2 x 2 regions: all six in the lower-right one
    assert out[out.index(next(l for l in out if l.startswith("iteration 2, by region"))) + 2].split() == ["0", "6"]
    rows = [l.split() for l in out if l.strip() and l.split()[0].isdigit() and "%" in l]
    assert rows[0] == ["3", "50.0%", "2", "wp__data$#"]
    assert ["2", "33.3%", "1", "weight#_#_even"] in rows
    assert ["1", "16.7%", "1", "weight#_seg_count"] in rows
    # iteration 1 asked: its own map and nets
    assert congestion.main([str(folder), "--iterations", "1", "--block", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(l.split() == ["4", "40.0%", "1", "wp__data$#"] for l in out)


def test_bad_input_is_one_line(congestion, tmp_path, capsys):
    assert congestion.main([str(tmp_path)]) == 2
    assert "holds no ecp5_packed.json" in capsys.readouterr().err
    folder = _folder(tmp_path)
    assert congestion.main([str(folder), "--iterations", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["--iterations: must be 1 or more, not 0"]
