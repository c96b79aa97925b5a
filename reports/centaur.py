"""Centaur reproduction: the recsys engine on HARPv2 against the CPU-only baselines.

RM1-RM3 x batch {1, 16, 64, 256} x uniform and Zipf indices, each point simulated through the
public engine API (``sparsim.engine.get("recsys").evaluate``), beside

- the modelled HARPv2 Xeon (``sparsim.simulator.cpu_model``, full-size tables, docs/recsys_cpu.md),
- the CPU measured here (``benchmarks/cpu_dlrm.json`` from ``benchmarks/bench_cpu_dlrm.py``:
  FP32 NumPy on scaled tables, median per batch; "-" where that file has no such row),

with the speedups and the energy ratio over the modelled CPU next to Centaur's reported
1.7-17.2x speedup and 1.7-19.5x energy efficiency. Two FPGA times per point: one batch alone
(its Program loads the MLP weights first) and the steady state of batches back to back (the
weights stay on chip: ``(cycles of N batches - cycles of 1) / (N - 1)``, ``--steady N``). Writes ``reports/centaur/results.csv`` and
``reports/centaur/table.md`` (generated, not committed).
Run: .venv/bin/python reports/centaur.py [--preset harpv2] [--exponent 1.0]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from pathlib import Path

from sparsim import engine as engines
from sparsim.dataflow.config import design_point_from_dict
from sparsim.dataflow.dlrm import MODELS
from sparsim.simulator.cpu_model import HARPV2_XEON, dlrm_batch_time

REPO = Path(__file__).resolve().parent.parent
PAPER_SPEEDUP = (1.7, 17.2)
PAPER_ENERGY = (1.7, 19.5)


def _measured(path: Path) -> dict[tuple[str, int, str], float]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {(r["model"], r["batch"], r["distribution"]): r["fp32"]["median_ms"] * 1e-3 for r in data["results"]}


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="harpv2")
    parser.add_argument("--models", default="rm1,rm2,rm3")
    parser.add_argument("--batches", default="1,16,64,256")
    parser.add_argument("--exponent", type=float, default=1.0, help="Zipf exponent of the skewed rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-overhead-us", type=float, default=0.0,
                        help="software cost per CPU operator in the model (0: hardware limits only)")
    parser.add_argument("--measured", type=Path, default=REPO / "benchmarks" / "cpu_dlrm.json")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "centaur")
    parser.add_argument("--steady", type=int, default=4,
                        help="batches run back to back for the steady-state time per batch (at least 2)")
    args = parser.parse_args()
    if args.steady < 2:
        parser.error(f"--steady: at least 2 batches, not {args.steady}")

    engine = engines.get("recsys")
    cpu_params = dataclasses.replace(HARPV2_XEON, op_overhead_us=args.cpu_overhead_us)
    measured = _measured(args.measured)
    rows = []
    for name in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            for dist, s in (("uniform", 0.0), ("zipf", args.exponent)):
                def point(batches: int):
                    return design_point_from_dict({
                        "hardware": {"preset": args.preset, "engine": "recsys"},
                        "workload": {"kind": "dlrm", "model": name, "batch": batch, "batches": batches,
                                     "indices": {"distribution": dist, "exponent": s}},
                        "seed": args.seed,
                    })

                result = engine.evaluate(point(1))
                fpga_s = float(result["seconds"])
                many = engine.evaluate(point(args.steady))
                steady_cycles = (int(many["cycles"]) - int(result["cycles"])) / (args.steady - 1)
                steady_s = fpga_s * steady_cycles / int(result["cycles"])
                cpu = dlrm_batch_time(MODELS[name], batch, cpu_params, exponent=s)
                cpu_measured = measured.get((name, batch, dist))
                breakdown = {k: int(v) for k, v in result.breakdown.items()}
                cpu_stages = {"embedding": cpu.embedding_s, "bottom_mlp": cpu.bottom_mlp_s,
                              "interaction": cpu.interaction_s, "top_mlp": cpu.top_mlp_s}
                rows.append({
                    "model": name, "batch": batch, "indices": dist, "exponent": s,
                    "fpga_ms": fpga_s * 1e3, "cycles": int(result["cycles"]),
                    "cpu_model_ms": cpu.total_s * 1e3, "cpu_measured_ms": None if cpu_measured is None else cpu_measured * 1e3,
                    "speedup_vs_model": cpu.total_s / fpga_s,
                    "fpga_steady_ms": steady_s * 1e3, "steady_cycles": steady_cycles,
                    "speedup_steady_vs_model": cpu.total_s / steady_s,
                    "speedup_vs_measured": None if cpu_measured is None else cpu_measured / fpga_s,
                    "energy_ratio_vs_model": cpu.energy_j / float(result["energy_j"]),
                    "fpga_busiest": max(breakdown, key=breakdown.__getitem__),
                    "cpu_longest": max(cpu_stages, key=cpu_stages.__getitem__),
                    "cpu_llc_hit_rate": cpu.llc_hit_rate,
                    "breakdown_cycles": json.dumps(breakdown, sort_keys=True),
                })
                print(f"{name} b{batch:<4} {dist:7} FPGA {fpga_s * 1e3:9.4f} ms  CPU model {cpu.total_s * 1e3:9.4f} ms "
                      f"({rows[-1]['speedup_vs_model']:6.2f}x; steady {steady_s * 1e3:9.4f} ms, "
                      f"{rows[-1]['speedup_steady_vs_model']:6.2f}x)  measured {_fmt(rows[-1]['cpu_measured_ms'])} ms", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lo, hi = PAPER_SPEEDUP
    lines = [
        f"# Centaur reproduction ({args.preset}, Zipf exponent {args.exponent:g}, seed {args.seed}, "
        f"CPU overhead {args.cpu_overhead_us:g} us per operator)", "",
        f"Centaur reports {lo}-{hi}x speedup and {PAPER_ENERGY[0]}-{PAPER_ENERGY[1]}x energy efficiency over CPU-only "
        "inference. CPU model: HARPv2 Xeon, full-size tables, hardware limits plus the stated overhead per operator "
        "(with 0, a lower bound on CPU time); "
        "CPU measured: FP32 NumPy on this machine, scaled tables (benchmarks/README.md).", "",
        "FPGA busiest: the activity with the most cycles in the simulator's breakdown (activities overlap); "
        "CPU longest: the model's longest stage.", "",
        f"FPGA steady ms: time per batch with {args.steady} batches back to back (MLP weights loaded once, "
        "gathers of one batch overlapping the MLPs of the previous); the 'in' column judges that speedup.", "",
        "| model | batch | indices | FPGA ms (one batch) | FPGA steady ms | FPGA busiest | CPU model ms | CPU longest "
        "| speedup (model, one batch) | speedup (model, steady) | in 1.7-17.2x "
        "| CPU measured ms | speedup (measured, one batch) | energy ratio (model) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        steady = r["speedup_steady_vs_model"]
        inside = "yes" if lo <= steady <= hi else ("below" if steady < lo else "above")
        lines.append(
            f"| {r['model'].upper()} | {r['batch']} | {r['indices']} | {_fmt(r['fpga_ms'])} | {_fmt(r['fpga_steady_ms'])} | "
            f"{r['fpga_busiest']} | {_fmt(r['cpu_model_ms'])} | {r['cpu_longest']} | "
            f"{_fmt(r['speedup_vs_model'])} | {_fmt(steady)} | {inside} | {_fmt(r['cpu_measured_ms'])} | {_fmt(r['speedup_vs_measured'])} | "
            f"{_fmt(r['energy_ratio_vs_model'])} |")
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'results.csv'} and {args.out / 'table.md'}")


if __name__ == "__main__":
    main()
