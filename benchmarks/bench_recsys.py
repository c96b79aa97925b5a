"""Time `sparsim simulate` on DLRM RM1 at batch 256 on the harpv2 recsys preset.

Prints, for uniform and Zipf (s = 1.05) indices, the simulated result and the cold and warm
wall times (and warm CPU times of this process) of compile (index generation, mini-batch plan, gather request lists) and simulate (the
Numba kernel). The target is under 50 ms warm for the whole simulate call.
Run: .venv/bin/python benchmarks/bench_recsys.py [--repeat 10] [--batch 256] [--model rm1]
"""

from __future__ import annotations

import argparse
import statistics
import time

from sparsim.dataflow.config import design_point_from_dict
from sparsim.dataflow.recsys import compile_design_point
from sparsim.simulator.recsys import run


def once(point, clock=time.perf_counter) -> tuple[float, float, object]:
    t0 = clock()
    program = compile_design_point(point)
    t1 = clock()
    timed = run(program)
    t2 = clock()
    return t1 - t0, t2 - t1, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--model", default="rm1")
    parser.add_argument("--preset", default="harpv2")
    args = parser.parse_args()
    for dist in ("uniform", "zipf"):
        point = design_point_from_dict({
            "hardware": {"preset": args.preset, "engine": "recsys"},
            "workload": {"kind": "dlrm", "model": args.model, "batch": args.batch,
                         "indices": {"distribution": dist, "exponent": 1.05}}})
        c0, s0, timed = once(point)
        warm = [once(point) for _ in range(args.repeat)]
        comp = statistics.median(w[0] for w in warm)
        sim = statistics.median(w[1] for w in warm)
        total = statistics.median(w[0] + w[1] for w in warm)
        # CPU time of this process: what the machine's other jobs do not inflate.
        cpu = [once(point, time.process_time) for _ in range(args.repeat)]
        seconds = timed.cycles / (point.hardware.clock_mhz * 1e6)
        c = timed.counters
        print(f"{args.model} batch {args.batch}, {args.preset}, {dist} indices")
        print(f"  simulated: {timed.cycles:,} cycles = {seconds * 1e3:.3f} ms per batch, "
              f"{args.batch / seconds:,.0f} inferences/s; {c['requests']:,} row-line requests, "
              f"{c['cache_hits']:,} cache hits")
        print(f"  cold: compile {c0 * 1e3:.1f} ms + simulate {s0 * 1e3:.1f} ms")
        print(f"  warm (median of {args.repeat}): compile {comp * 1e3:.1f} ms + simulate {sim * 1e3:.1f} ms"
              f" = {total * 1e3:.1f} ms; kernel {timed.cycles / sim:.3g} simulated cycles/s")
        print(f"  warm CPU time (median of {args.repeat}): compile "
              f"{statistics.median(w[0] for w in cpu) * 1e3:.1f} ms + simulate "
              f"{statistics.median(w[1] for w in cpu) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
