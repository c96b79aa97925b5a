"""Measured CPU baseline: DLRM inference per batch in NumPy on this machine, beside the modelled
HARPv2 Xeon (simulator/cpu_model.py).

For each model (RM1-RM3 by default), batch and index distribution, times the FP32 path
(``forward_float32``: BLAS GEMMs, fancy-index gathers) and, unless ``--no-int``, the exact
integer golden (``forward``: int64 NumPy, no BLAS). The FP32 path is the baseline compared with
the accelerator: it is what a CPU-only deployment runs (the Centaur paper's CPU baseline is
FP32 too), while int64 matrix products in NumPy run a generic loop and time NumPy rather than
the CPU. Each timed call gets a fresh batch of indices (another ``batch_index`` of the same
seeded stream), so repeated calls do not find the previous call's rows in the cache by accident.

Tables are scaled so that one model's FP32 tables take at most ``--table-mib`` MiB (default
512: 16x this machine's 32 MiB L3, so uniform gathers still miss the LLC as at full size);
docs/recsys_cpu.md says what the scaling changes (TLB reach, Zipf hit rates).
Run: .venv/bin/python benchmarks/bench_cpu_dlrm.py [--threads 1] [--out benchmarks/cpu_dlrm.json]
"""

from __future__ import annotations

import argparse
import os
import sys


def _set_threads(argv: list[str]) -> int:
    # BLAS reads its thread count when NumPy loads: set it before any import of NumPy.
    threads = 1
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
        elif a.startswith("--threads="):
            threads = int(a.split("=", 1)[1])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    return threads


_THREADS = _set_threads(sys.argv[1:])

import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from sparsim.dataflow.dlrm import (MODELS, forward, forward_float32, generate_bags, pool_float32,  # noqa: E402
                                   random_dense, random_params, to_float32)
from sparsim.simulator.cpu_model import HARPV2_XEON, dlrm_batch_time  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ACC_BITS = 32


def _machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    l3 = Path("/sys/devices/system/cpu/cpu0/cache/index3/size")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "l3": l3.read_text().strip() if l3.exists() else None,
            "numpy": np.__version__, "python": platform.python_version(), "threads": _THREADS,
            "load_avg_at_start": os.getloadavg(), "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _time_calls(fn, inputs: list, min_time: float, min_calls: int, max_calls: int) -> list[float]:
    fn(*inputs[0])  # warm-up: first-touch of the weights, BLAS thread start
    times: list[float] = []
    start = time.perf_counter()
    i = 1
    while len(times) < min_calls or (time.perf_counter() - start < min_time and len(times) < max_calls):
        args = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
        i += 1
    return times


def _stats(times: list[float]) -> dict:
    a = np.array(times) * 1e3
    return {"calls": len(times), "median_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)),
            "p90_ms": float(np.percentile(a, 90)), "min_ms": float(a.min())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (read before NumPy loads)")
    parser.add_argument("--models", default="rm1,rm2,rm3")
    parser.add_argument("--batches", default="1,16,64,256")
    parser.add_argument("--exponent", type=float, default=1.0, help="Zipf exponent of the skewed runs")
    parser.add_argument("--table-mib", type=float, default=512.0,
                        help="cap on one model's FP32 table bytes (rows scaled down to fit)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed calls per point")
    parser.add_argument("--batches-pool", type=int, default=8, help="distinct index batches cycled through")
    parser.add_argument("--no-int", action="store_true", help="skip the integer golden timings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "cpu_dlrm.json")
    args = parser.parse_args()

    machine = _machine()
    results = []
    scaling = {}
    for name in args.models.split(","):
        full = MODELS[name]
        max_rows = int(args.table_mib * (1 << 20) // (full.tables * full.dim * 4))
        model = full.scaled(min(max_rows, max(full.table_rows)))
        scaling[name] = {"rows_full": max(full.table_rows), "rows_used": max(model.table_rows),
                         "fp32_table_mib_full": full.table_bytes * 4 / (1 << 20),
                         "fp32_table_mib_used": model.table_bytes * 4 / (1 << 20)}
        params = random_params(model, seed=args.seed)
        fparams = to_float32(params)
        for batch in (int(b) for b in args.batches.split(",")):
            for dist, s in (("uniform", 0.0), ("zipf", args.exponent)):
                inputs = []
                for k in range(args.batches_pool):
                    bags = generate_bags(model, batch, distribution=dist, exponent=s, seed=args.seed, batch_index=k)
                    inputs.append((random_dense(model, batch, seed=args.seed, batch_index=k), bags))
                row = {"model": name, "batch": batch, "distribution": dist, "exponent": s,
                       "rows_per_table": max(model.table_rows)}
                row["fp32"] = _stats(_time_calls(lambda d, b: forward_float32(model, fparams, d, b),
                                                 inputs, args.min_time, 5, 10_000))
                row["fp32_embedding"] = _stats(_time_calls(lambda d, b: pool_float32(fparams, b),
                                                           inputs, args.min_time / 2, 5, 10_000))
                if not args.no_int:
                    row["int_golden"] = _stats(_time_calls(
                        lambda d, b: forward(model, params, d, b, ACC_BITS), inputs, args.min_time / 2, 2, 1000))
                m = dlrm_batch_time(full, batch, HARPV2_XEON, exponent=s)
                row["model_harpv2_full_tables"] = {
                    "total_ms": m.total_s * 1e3, "embedding_ms": m.embedding_s * 1e3,
                    "mlp_ms": (m.bottom_mlp_s + m.top_mlp_s) * 1e3, "llc_hit_rate": m.llc_hit_rate,
                    "embedding_bound": m.embedding_bound}
                results.append(row)
                ints = f"  int {row['int_golden']['median_ms']:9.3f} ms" if "int_golden" in row else ""
                print(f"{name:4} b{batch:<4} {dist:7}  fp32 {row['fp32']['median_ms']:8.3f} ms "
                      f"(emb {row['fp32_embedding']['median_ms']:8.3f}){ints}  "
                      f"model {m.total_s * 1e3:8.4f} ms", flush=True)
        del params, fparams

    out = {"machine": machine, "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "scaling": scaling, "cpu_model": HARPV2_XEON.name, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
