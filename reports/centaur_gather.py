"""Gather throughput against outstanding requests and gather units: where the link saturates.

Simulates one DLRM batch on a recsys preset (default ``harpv2``, RM1, batch 64, uniform
indices) through the engine API for every (gather units, max_outstanding) pair and reports the
embedding-line throughput while gathers run: bytes of row lines fetched from memory (cache hits
excluded) over the cycles some ``GATHER`` is active, against the memory's peak. With few tags a
unit is latency bound (``tags x line / latency`` per unit, Little's law); the curves flatten
where the link (``channels x bytes_per_cycle``) is full. Writes
``reports/centaur/gather_throughput.csv`` and ``gather_throughput.png`` (generated, not
committed).
Run: .venv/bin/python reports/centaur_gather.py [--preset harpv2] [--model rm1] [--batch 64]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from sparsim import engine as engines
from sparsim.dataflow.config import design_point_from_dict

REPO = Path(__file__).resolve().parent.parent
UNITS = (1, 2, 4, 8, 16)
TAGS = (1, 2, 4, 8, 16, 32, 64, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="harpv2")
    parser.add_argument("--model", default="rm1")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--distribution", default="uniform", choices=("uniform", "zipf"))
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "centaur")
    args = parser.parse_args()

    engine = engines.get("recsys")
    rows = []
    for units in UNITS:
        for tags in TAGS:
            point = design_point_from_dict({
                "hardware": {"preset": args.preset, "engine": "recsys", "gather_units": units,
                             "max_outstanding": tags, "cache_kib": 0},
                "workload": {"kind": "dlrm", "model": args.model, "batch": args.batch,
                             "indices": {"distribution": args.distribution, "exponent": 1.05}},
            })
            hw = point.hardware
            r = engine.evaluate(point).to_dict()
            gather_s = r["op_cycles_gather"] / (hw.clock_mhz * 1e6)
            # The loader's lines are in "requests" too; count only the gather units' row lines.
            row_lines = r["requests"] - _loader_lines(point)
            rows.append({
                "gather_units": units, "max_outstanding": tags, "cycles": r["cycles"],
                "gather_cycles": r["op_cycles_gather"], "row_lines": row_lines,
                "gather_gbps": row_lines * hw.line_bytes / gather_s / 1e9 if gather_s else 0.0,
                "peak_gbps": r["peak_bandwidth_gbps"], "mean_in_flight": r["mean_in_flight"],
                "inferences_per_s": r["inferences_per_s"],
            })
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "gather_throughput.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    png = _plot(rows, args, args.out / "gather_throughput.png")
    peak = rows[0]["peak_gbps"]
    print(f"{args.model} batch {args.batch}, {args.preset}, {args.distribution} indices, no cache; "
          f"link peak {peak:.1f} GB/s")
    print("gather GB/s by units (rows) x outstanding per unit (columns):")
    print("units " + "".join(f"{t:>8}" for t in TAGS))
    for units in UNITS:
        line = [r["gather_gbps"] for r in rows if r["gather_units"] == units]
        print(f"{units:>5} " + "".join(f"{v:8.2f}" for v in line))
    print(f"wrote {csv_path} and {png}")


def _loader_lines(point) -> int:
    from sparsim.dataflow.recsys import compile_design_point
    from sparsim.dataflow import recsys_isa as isa

    ins = compile_design_point(point).instrs
    load = ins[ins["op"] == isa.OP_LOAD]
    return int((load["p"].astype(int) | (load["k"].astype(int) << 16)).sum())


def _plot(rows: list[dict], args, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for units in UNITS:
        sel = [r for r in rows if r["gather_units"] == units]
        ax.plot([r["max_outstanding"] * units for r in sel], [r["gather_gbps"] for r in sel], marker="o",
                label=f"{units} gather unit{'s' if units > 1 else ''}")
    ax.axhline(rows[0]["peak_gbps"], color="k", linestyle="--", label="link peak")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("requests in flight allowed (gather units x max_outstanding)")
    ax.set_ylabel("embedding-line throughput while gathering (GB/s)")
    ax.set_title(f"{args.model} batch {args.batch} on {args.preset}: where the link saturates")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
