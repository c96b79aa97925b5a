"""benchmarks/pnr_spread.py's bad input: one line naming the argument, exit 2, before any nextpnr run."""

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
