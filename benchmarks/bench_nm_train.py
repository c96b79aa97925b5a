"""Time one ResNet-18 ImageNet training step (batch 32) on the nm_train ``vcu1525`` preset.

Prints cold (first call in this process: Numba loads its cache or compiles) and warm timings of
compile (Program construction) and simulate (Numba kernel) for dense, sr_ste and bdwp at 2:8,
and the simulated step; warm times both on the wall clock and in this process's CPU time, which
the machine's other jobs do not inflate. Run: .venv/bin/python benchmarks/bench_nm_train.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

from sparsim.dataflow.config import design_point_from_dict
from sparsim.dataflow.nm_train import compile_design_point
from sparsim.simulator.nm_train import run


def point(mode: str):
    return design_point_from_dict({
        "hardware": {"preset": "vcu1525"},
        "workload": {"kind": "train", "network": "resnet18", "batch": 32, "mode": mode, "sparsity": "2:8"},
    })


def once(p, clock=time.perf_counter) -> tuple[float, float, object, int]:
    t0 = clock()
    program = compile_design_point(p)
    t1 = clock()
    result = run(program)
    t2 = clock()
    return t1 - t0, t2 - t1, result, len(program.instrs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    for mode in ("dense", "sr_ste", "bdwp"):
        p = point(mode)
        cold = once(p)
        warm = [once(p) for _ in range(args.repeat)]
        result, instrs = cold[2], cold[3]
        med_c = statistics.median(w[0] for w in warm)
        med_s = statistics.median(w[1] for w in warm)
        cpu = [once(p, time.process_time) for _ in range(args.repeat)]
        cpu_c = statistics.median(w[0] for w in cpu)
        cpu_s = statistics.median(w[1] for w in cpu)
        print(f"{mode:7s} {instrs:6,d} instructions, {result.cycles:,} cycles "
              f"({result.cycles / 200e6 * 1e3:.1f} ms at 200 MHz); cold compile {cold[0]:.3f} s + "
              f"simulate {cold[1]:.3f} s; warm median compile {med_c * 1e3:.1f} ms + simulate "
              f"{med_s * 1e3:.2f} ms = {(med_c + med_s) * 1e3:.1f} ms; warm CPU time {cpu_c * 1e3:.1f} + "
              f"{cpu_s * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
