"""Time `sparsim simulate` on one full LLaMA2-7B decode token on the u280 preset.

Prints cold (first call in this process: Numba loads its cache or compiles) and warm timings
of compile (Program construction) and simulate (Numba kernel), and the simulated result.
Run: .venv/bin/python benchmarks/bench_llama_decode.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sparsim.dataflow.config import design_point_from_dict
from sparsim.dataflow.dsp_chain import compile_design_point
from sparsim.simulator.dsp_chain import run

POINT = {
    "hardware": {"preset": "u280"},
    "workload": {"kind": "llm", "model": "llama2-7b", "phase": "decode", "context": 512,
                 "weight_bits": 4, "sparsity": "4:16"},
}


def once(point) -> tuple[float, float, object]:
    t0 = time.perf_counter()
    program = compile_design_point(point)
    t1 = time.perf_counter()
    result = run(program)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    point = design_point_from_dict(POINT)
    c0, s0, result = once(point)
    warm = [once(point) for _ in range(args.repeat)]
    comp = [w[0] for w in warm]
    sim = [w[1] for w in warm]
    total = [a + b for a, b, _ in warm]
    print(f"LLaMA2-7B decode token, u280 preset, INT4 weights 4:16, context 512")
    print(f"  simulated: {result.cycles:,} cycles = {result.seconds * 1e3:.3f} ms "
          f"-> {1 / result.seconds:.1f} tokens/s, {result.bandwidth_gbps:.0f} GB/s")
    print(f"  instructions: {len(compile_design_point(point).instrs):,}")
    print(f"  cold: compile {c0 * 1e3:.1f} ms + simulate {s0 * 1e3:.1f} ms")
    print(f"  warm (median of {args.repeat}): compile {statistics.median(comp) * 1e3:.1f} ms + "
          f"simulate {statistics.median(sim) * 1e3:.2f} ms = {statistics.median(total) * 1e3:.1f} ms")
    print(f"  simulated cycles per second (kernel only, warm): "
          f"{result.cycles / statistics.median(sim):.3g}")
    # The whole command as a user runs it (Python start-up and imports included).
    example = Path(__file__).resolve().parent.parent / "examples" / "llama2_decode_u280.yaml"
    cli = [sys.executable, "-m", "sparsim.cli", "simulate", str(example)]
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(cli, check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    print(f"  `sparsim simulate {example.name}` wall time: "
          f"{', '.join(f'{w:.2f}' for w in walls)} s (3 runs)")


if __name__ == "__main__":
    main()
