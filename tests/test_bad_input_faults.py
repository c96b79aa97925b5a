"""Faults around a sweep's folder: a second sweep on a folder in use is refused in one line
(the store is locked), and --out pointing at another sweep's folder (another name) is refused
unless the user asks to start over (--fresh). Workers outliving a killed driver: tests/test_sweep_resume.py."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import toy_engine
from sparsim.simulator.store import ResultStore
from sparsim import engine as engines
from sparsim.cli import main

SPEC = ("name: {name}\nbase: {{hardware: {{preset: tiny}}, workload: {{kind: gemm, layers: "
        "[{{rows: 4, k: 32, sparsity: '2:8'}}]}}}}\nsweep: {{grid: {{hardware.chains: {chains}}}}}\n")


def test_second_sweep_on_a_locked_folder_says_so(tmp_path, capsys, write_yaml):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\nfrom sparsim.simulator.store import exclusive\n"
                               f"with exclusive(Path({str(out)!r})):\n    print('locked', flush=True)\n"
                               "    sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        spec = write_yaml(SPEC.format(name="a", chains="[1, 2]"), "a.yaml")
        assert main(["sweep", str(spec), "--out", str(out), "--jobs", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0] == (f"sparsim: error: --out {out}: another sweep (pid {holder.pid}) is writing to "
                           f"{out}; wait for it to finish or choose another folder")
        assert not (out / ResultStore.FILE).exists() and not (out / "spec.resolved.yaml").exists()
    finally:
        holder.communicate("", timeout=30)
    # The holder is gone, and with it the lock.
    assert main(["sweep", str(spec), "--out", str(out), "--jobs", "1"]) == 0
    capsys.readouterr()


def test_out_of_another_sweep_is_refused_unless_fresh(tmp_path, capsys, write_yaml):
    out = tmp_path / "out"
    a = write_yaml(SPEC.format(name="a", chains="[1, 2]"), "a.yaml")
    b = write_yaml(SPEC.format(name="b", chains="[4, 8, 16]"), "b.yaml")
    assert main(["sweep", str(a), "--out", str(out), "--jobs", "1"]) == 0
    assert main(["sweep", str(a), "--out", str(out), "--jobs", "1"]) == 0  # the same sweep resumes
    capsys.readouterr()
    before = (out / ResultStore.FILE).read_bytes()

    assert main(["sweep", str(b), "--out", str(out), "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0] == (f"sparsim: error: --out {out}: it holds the results of another sweep "
                       f"(named 'a', not 'b'); choose another --out, or add --fresh to start over "
                       f"there (its stored results are deleted)")
    assert (out / ResultStore.FILE).read_bytes() == before, "nothing written on refusal"

    assert main(["sweep", str(b), "--out", str(out), "--jobs", "1", "--fresh"]) == 0
    assert "3 simulated, 0 reused" in capsys.readouterr().out
    assert len(ResultStore(out)) == 3, "only the new sweep's points are stored"


def test_an_edited_spec_is_refused_unless_reuse_keeps_its_points(tmp_path, capsys, write_yaml):
    out = tmp_path / "out"
    assert main(["sweep", str(write_yaml(SPEC.format(name="a", chains="[1, 2]"), "a.yaml")),
                 "--out", str(out), "--jobs", "1"]) == 0
    capsys.readouterr()
    edited = write_yaml(SPEC.format(name="a", chains="[1, 2, 4]"), "a.yaml")
    before = (out / ResultStore.FILE).read_bytes()
    # Without --reuse a different spec is refused in one line, and nothing is written.
    assert main(["sweep", str(edited), "--out", str(out), "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a different spec of sweep 'a'" in err[0] and "--reuse" in err[0], err
    assert (out / ResultStore.FILE).read_bytes() == before
    assert main(["sweep", str(edited), "--out", str(out), "--jobs", "1", "--reuse"]) == 0
    assert "1 simulated, 2 reused from an earlier run" in capsys.readouterr().out


def test_store_without_a_spec_is_not_adopted(tmp_path, capsys, write_yaml):
    out = tmp_path / "out"
    out.mkdir()
    (out / ResultStore.FILE).write_text('{"key": "x", "row": {}}\n')
    a = write_yaml(SPEC.format(name="a", chains="[1]"), "a.yaml")
    assert main(["sweep", str(a), "--out", str(out), "--jobs", "1"]) == 2
    assert "it holds a points.jsonl but no spec.resolved.yaml" in capsys.readouterr().err


def test_a_worker_that_dies_is_one_line_and_the_rest_is_kept(tmp_path, capsys, write_yaml):
    """A worker process that vanishes (OOM killer, a crash in native code) ends the sweep with
    one line saying how to resume; the points that finished stay in the store."""
    def simulate(point):
        if point.hardware.lanes == 7:
            os._exit(9)
        return toy_engine.simulate(point)

    eng = engines.register(dataclasses.replace(toy_engine.ENGINE, simulate=simulate))
    try:
        spec = write_yaml("name: s\nbase: {hardware: {preset: toy_small}, workload: {kind: vecsum, length: 64}}\n"
                          "sweep: {grid: {hardware.lanes: [1, 2, 3, 4, 5, 6, 7]}}\n", "s.yaml")
        out = tmp_path / "out"
        assert main(["sweep", str(spec), "--out", str(out), "--jobs", "2"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == (f"sparsim: error: a worker process died (killed, or out of memory); the points "
                           f"finished so far are stored in {out}: rerun the same command to resume")
        assert not (out / "results.csv").exists()
    finally:
        engines.unregister(eng.name)


def test_counts_agree_between_progress_summary_and_report(tmp_path, capsys, write_yaml):
    """Every point is counted once everywhere, also when two points of the spec resolve to the
    same design point (chains 2 and 2.0) and some are dropped by a constraint."""
    spec = write_yaml(SPEC.format(name="c", chains="[1, 2, 2.0, 4]").replace(
        "sweep:", "constraints: {max: {dsp: 12}}\nsweep:"), "c.yaml")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--jobs", "1"]) == 0
    stdout, stderr = capsys.readouterr()
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith('{"event"')]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert events[-1]["done"] == events[-1]["total"] == 4
    assert "4 points (3 feasible): 3 simulated, 0 reused from an earlier run, 1 dropped by the device " \
           "budget or constraints, 0 failed" in stdout
    assert "4 design points, 3 feasible." in (out / "report.md").read_text()
    # A rerun reuses the simulated points and still counts the dropped one as dropped.
    assert main(["sweep", str(spec), "--out", str(out), "--jobs", "1"]) == 0
    assert "4 points (3 feasible): 0 simulated, 3 reused from an earlier run, 1 dropped by the " \
           "device budget or constraints, 0 failed" in capsys.readouterr().out
