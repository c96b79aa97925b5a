"""Simulated cycles per second: the Numba simulator against the RTL under cocotb + Verilator
and under Amaranth's simulator, same Program.

Compiles one design point through its engine's hooks (``Engine.compile`` with data,
``Engine.program_cycles``; sparsim/engine.py), so any engine with RTL works: by default a
two-layer dsp_chain GEMM, or the point of ``--config`` (e.g. examples/nm_train_tiny.yaml,
examples/recsys_tiny.yaml). Builds (or reuses) the point's RTL, runs the Program on it under
Verilator and, unless ``--no-amaranth``, under Amaranth's simulator with the same driver and
memory model, and times the warm simulator on the same Program. The RTL rates count the driven
run itself (from the first instruction to done), not the Verilator build, the process start-up
or Amaranth's elaboration, so they flatter the RTL side. The Verilated C++ is built at
--cxx-opt (default -Os, Verilator's own default; the test suite builds at -O0, whose driven run
is about 5x slower).
Run: .venv/bin/python benchmarks/bench_sim_vs_rtl.py [--config examples/nm_train_tiny.yaml] [--no-amaranth]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from sparsim import engine as engines
from sparsim.dataflow.config import ConfigError, design_point_from_dict, load_design_point
from sparsim.rtl import amaranth_sim
from sparsim.rtl.verilator import CXX_OPT_ENV, verify_all

#: The default point: a dsp_chain GEMM of two layers (one 2:8 INT4, one dense INT8).
POINT = {
    "hardware": {"preset": "tiny", "chains": 4, "chain_len": 8, "mux_m": 8,
                 "weight_buffer_kib": 4, "act_buffer_kib": 2, "out_buffer_kib": 1},
    "workload": {"kind": "gemm", "layers": [
        {"name": "fc1", "rows": 32, "k": 256, "tokens": 8, "sparsity": "2:8", "weight_bits": 4},
        {"name": "fc2", "rows": 24, "k": 128, "tokens": 8, "sparsity": "8:8", "weight_bits": 8},
    ]},
    "seed": 7,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="design point YAML (default: the two-layer dsp_chain GEMM above)")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--cxx-opt", default="-Os", help="C++ optimisation of the Verilated model")
    parser.add_argument("--amaranth", action=argparse.BooleanOptionalAction, default=True,
                        help="also run Amaranth's simulator (--no-amaranth for large tops, where it "
                             "takes minutes)")
    args = parser.parse_args()
    os.environ[CXX_OPT_ENV] = args.cxx_opt
    try:
        point = load_design_point(args.config) if args.config else design_point_from_dict(POINT)
        eng = engines.of(point.hardware)
        if not eng.has_rtl or point.workload.kind not in eng.bench_kinds:
            raise ConfigError("workload.kind", f"engine {eng.name} has no RTL bench for "
                                               f"{point.workload.kind!r} workloads", args.config)
    except ConfigError as exc:
        print(f"bench_sim_vs_rtl: error: {exc}", file=sys.stderr)
        sys.exit(2)
    program = eng.compile(point, with_data=True)
    cycles = eng.program_cycles(program)  # also loads the Numba kernel
    t0 = time.perf_counter()
    (res,) = verify_all([(program, None)])
    rtl_total = time.perf_counter() - t0
    assert res.ok, res.summary()
    am = None
    if args.amaranth:
        t0 = time.perf_counter()
        (am,) = amaranth_sim.verify_all([(program, None)])
        am_total = time.perf_counter() - t0
        assert am.ok, am.summary()
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        eng.program_cycles(program)
        times.append(time.perf_counter() - t)
    sim_s = statistics.median(times)
    rtl_rate = res.cycles_per_second
    sim_rate = cycles / sim_s
    print(f"{eng.describe(point.hardware)}")
    print(f"Program: {len(program.instrs)} instructions, {cycles:,} cycles "
          f"(RTL {res.cycles_rtl:,}: {'match' if res.cycles_match else 'DIFFER'}; values "
          f"{'match' if res.outputs_match else 'DIFFER'})")
    print(f"  cocotb+Verilator ({args.cxx_opt}): {res.wall_seconds:.3f} s run -> {rtl_rate:,.0f} cycles/s "
          f"({rtl_total:.1f} s including build check and process start)")
    if am is not None:
        print(f"  Amaranth sim:     {am.wall_seconds:.3f} s run -> {am.cycles_per_second:,.0f} cycles/s "
              f"({am_total:.1f} s including elaboration)")
    print(f"  simulator:        {sim_s * 1e6:.1f} us (median of {args.repeat}) -> {sim_rate:,.0f} cycles/s")
    print(f"  ratio simulator / Verilator: {sim_rate / rtl_rate:,.0f}x"
          + (f"; Verilator / Amaranth sim: {rtl_rate / am.cycles_per_second:,.0f}x" if am is not None else ""))


if __name__ == "__main__":
    main()
