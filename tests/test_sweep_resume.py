"""Crash safety: a sweep whose driver is killed with SIGKILL leaves no worker running and
resumes without redoing or losing points."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from sparsim.simulator.store import ResultStore

SPEC = """
name: resume
base:
  hardware: {preset: u280}
  workload: {kind: llm, model: llama2-7b, phase: decode, weight_bits: 4, layers: 8}
sweep:
  grid:
    hardware.chains: {range: [32, 184, 8]}
    hardware.chain_len: [4, 8, 16]
    workload.sparsity: ["4:16", "8:16", "16:16"]
    workload.context: [128, 512]
objectives: {dsp: min, tokens_per_s: max}
"""
TOTAL = 20 * 3 * 3 * 2


def sweep(spec: Path, out: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sparsim.cli", "sweep", str(spec), "--out", str(out), "--jobs", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw,
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_kill_9_then_resume_equals_uninterrupted(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    store = killed / "points.jsonl"

    proc = sweep(spec, killed)
    deadline = time.monotonic() + 120
    while len(lines(store)) < 60 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed; make it larger"
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers, "the sweep runs on a local pool"
    os.kill(proc.pid, signal.SIGKILL)  # the driver only, as an OOM killer would
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # leave nothing behind even if the check fails
    assert not alive, f"workers outlived their driver: {alive}"
    done_at_kill = len({json.loads(l)["key"] for l in lines(store) if l.endswith("}")})
    assert 0 < done_at_kill < TOTAL
    assert not (killed / "results.csv").exists()

    resumed = sweep(spec, killed)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    # Nothing finished is redone: the rerun simulates only what the store did not hold.
    simulated = int(out.split(" simulated")[0].rsplit(" ", 1)[-1])
    assert simulated <= TOTAL - done_at_kill + 1  # +1: a line torn by the kill is redone
    keys = [json.loads(l)["key"] for l in lines(store)]
    assert len(keys) == len(set(keys)) == TOTAL, "nothing lost, nothing duplicated"

    ref = sweep(spec, clean)
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    assert (killed / "results.csv").read_text() == (clean / "results.csv").read_text()


def test_torn_last_line_is_recomputed(tmp_path):
    store = ResultStore(tmp_path)
    store.add("a", {"x": 1})
    store.add("b", {"x": 2})
    store.close()
    path = tmp_path / "points.jsonl"
    path.write_bytes(path.read_bytes() + b'{"key": "c", "row": {"x"')  # killed mid-write
    again = ResultStore(tmp_path)
    assert "a" in again and "b" in again and "c" not in again
    assert again.add("c", {"x": 3})
    assert not again.add("a", {"x": 99}), "a stored key is never written twice"
    again.close()
    final = ResultStore(tmp_path)
    assert len(final) == 3 and final.get("c") == {"x": 3} and final.get("a") == {"x": 1}
    assert all(l.endswith("}") for l in lines(path))


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "points.jsonl"
    path.write_text('{"key": "a", "row": {}}\nnot json\n{"key": "b", "row": {}}\n')
    try:
        ResultStore(tmp_path)
    except ValueError as exc:
        assert "line 2 is corrupt" in str(exc)
    else:
        raise AssertionError("a corrupt line inside the store must not be skipped silently")
