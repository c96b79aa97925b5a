"""benchmarks/pnr_spread.py: bad input (one line naming the argument, exit 2, before any nextpnr
run) and a failed nextpnr run (one line, exit 1)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pnr_spread.py"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_folder_without_netlist(tmp_path):
    r = _run(tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"folder: {tmp_path} holds no ecp5_packed.json (run sparsim synth or a bench_*fmax.py first)"]


def test_unknown_placer_and_bad_seeds(tmp_path):
    (tmp_path / "ecp5_packed.json").write_text("{}")
    r = _run(tmp_path, "--placers", "heap,foo")
    assert r.returncode == 2 and r.stderr.strip() == "--placers: 'foo' is not one of heap, static, sa"
    r = _run(tmp_path, "--seeds", "1,x")
    assert r.returncode == 2 and r.stderr.strip().startswith("--seeds: '1,x'")
    assert not (tmp_path / "spread").exists()


def test_failed_nextpnr_run_is_one_line(tmp_path):
    """A netlist nextpnr refuses: one line naming the exit code and the log, exit 1. The log shows
    nextpnr read the file, though tmp_path is under /tmp, which YoWASP maps elsewhere (the
    script hands nextpnr paths relative to the run's folder)."""
    (tmp_path / "ecp5_packed.json").write_text("{}")
    r = _run(tmp_path, "--seeds", "1", "--placers", "heap")
    log = tmp_path / "spread" / "heap_s1_g6" / "nextpnr.log"
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: nextpnr exited 125 (heap, seed 1); see {log}"]
    assert "doesn't look like a netlist" in log.read_text()
