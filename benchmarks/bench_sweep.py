"""Design points per minute of `sparsim sweep` on this machine.

Runs a sweep spec (default: the FlightLLM-style LLaMA2-7B decode sweep) into a fresh temporary
folder with all local cores and reports points per minute: simulated points, and all points
including those dropped by constraints before they run.
Run: .venv/bin/python benchmarks/bench_sweep.py [SPEC] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from sparsim.simulator.sweep import load_sweep, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="examples/flightllm_decode.yaml")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args()
    spec = load_sweep(args.spec)
    with tempfile.TemporaryDirectory() as tmp:
        run = run_sweep(spec, Path(tmp), jobs=args.jobs, progress=False)
    n = len(run.rows)
    print(f"{args.spec}: {n} points, {run.computed} simulated, {args.jobs} workers, "
          f"{run.seconds:.1f} s wall (planning included)")
    print(f"  simulated points per minute: {run.computed / run.seconds * 60:.0f}")
    print(f"  all points per minute:       {n / run.seconds * 60:.0f}")


if __name__ == "__main__":
    main()
