"""Calibrate simulator/resources.py against Yosys synth_xilinx (UltraScale+).

Synthesises the calibration design points (cached in build/synth/ by Verilog text), records
Yosys's counts with each point's time in benchmarks/resource_calibration.json (committed: the
fast test tests/test_resources.py holds the model to its stated error on these records without
re-running Yosys), and prints the fit of the model's LUT and FF constants with
its in-sample and leave-one-out errors, to paste into resources.py. Every term counts physical
primitives at a fixed coefficient (a LUT per mux LUT6 or adder bit, an FF per register bit);
only the constant for the control logic (loader, receiver, store, job registers) is fitted.
Run: .venv/bin/python benchmarks/calibrate_resources.py [--only NAME,... | --fit-only]
(slow: the 512-slot point alone takes tens of minutes on a 2-core machine)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from sparsim.dataflow.config import design_point_from_dict, load_yaml
from sparsim.rtl.synth import synthesize
from sparsim.rtl.verilog import to_verilog
from sparsim.simulator import resources

import bench_fmax

TABLE = Path(__file__).with_name("resource_calibration.json")
#: The repository root: bench_fmax's points name their YAML relative to it.
ROOT = Path(__file__).resolve().parent.parent
#: Weight-bank depth of the calibration points: block RAM (not LUTRAM), under URAM's threshold.
WEIGHT_DEPTH = 80

#: name -> hardware overrides on the tiny preset (buffers sized by hardware() below); the
#: tiny, small and mid points of bench_fmax.py (same syntheses) cover the low end.
POINTS = {
    "p32l4m8x1": dict(chains=32, chain_len=4, mux_m=8, lanes=1),
    "p16l8m16x2": dict(chains=16, chain_len=8, mux_m=16, lanes=2),
    "p64l4m4x1": dict(chains=64, chain_len=4, mux_m=4, lanes=1),
    "p32l8m8x2": dict(chains=32, chain_len=8, mux_m=8, lanes=2),
    "p16l16m8x2": dict(chains=16, chain_len=16, mux_m=8, lanes=2),
    "p32l16m4x1": dict(chains=32, chain_len=16, mux_m=4, lanes=1),
}


def hardware_spec(name: str) -> dict:
    """The ``hardware`` mapping of a calibration point, as a design point's YAML gives it."""
    if name in bench_fmax.POINTS:
        path, overrides = bench_fmax.POINTS[name]
        return {**load_yaml(ROOT / path)["hardware"], **overrides}
    o = POINTS[name]
    # Weight banks WEIGHT_DEPTH records deep and output banks 16 rows deep, so every point
    # maps its memories alike.
    rec_bytes = -(-o["chains"] * o["chain_len"] * (8 + o["mux_m"].bit_length() - 1) // 8)
    out_row = o["chains"] * o["lanes"] * 4
    return {"preset": "tiny", **o, "weight_buffer_kib": WEIGHT_DEPTH * 2 * rec_bytes / 1024,
            "out_buffer_kib": 16 * 2 * out_row / 1024}


def hardware(spec: dict):
    return design_point_from_dict({
        "hardware": spec,
        "workload": {"kind": "gemm", "layers": [{"rows": 4, "k": 32, "sparsity": "8:8"}]},
    }).hardware


def hardware_of(name: str):
    return hardware(hardware_spec(name))


def verilog_sha(hw) -> str:
    return hashlib.sha256(to_verilog(hw).encode()).hexdigest()[:16]


def fit_base(rows: list[tuple[dict, float]], terms: dict[str, float]) -> tuple[float, float, float]:
    """The constant (control logic) that, added to the physical terms at their coefficients,
    fits the counts best in relative terms; with its largest in-sample and leave-one-out error."""
    physical = np.array([sum(c * f[n] for n, c in terms.items()) for f, _ in rows])
    y = np.array([t for _, t in rows])

    def base_of(keep):
        # Weighted least squares on relative error: minimise sum(((b + x - y) / y)^2).
        w = 1 / y[keep] ** 2
        return float(np.sum(w * (y[keep] - physical[keep])) / np.sum(w))

    everything = np.ones(len(y), bool)
    base = base_of(everything)
    in_sample = float(np.max(np.abs(base + physical - y) / y))
    loo = []
    for i in range(len(y)):
        keep = everything.copy()
        keep[i] = False
        loo.append(abs(base_of(keep) + physical[i] - y[i]) / y[i])
    return base, in_sample, float(max(loo))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated names of POINTS to synthesise now")
    parser.add_argument("--fit-only", action="store_true",
                        help="synthesise nothing: fit and compare on the recorded counts")
    args = parser.parse_args(argv)
    def recorded() -> dict:
        return {row["name"]: row for row in json.loads(TABLE.read_text())} if TABLE.exists() else {}

    table = recorded()
    names = [*bench_fmax.POINTS, *POINTS]
    for name in [] if args.fit_only else args.only.split(",") if args.only else names:
        hw = hardware_of(name)
        t0 = time.perf_counter()
        syn = synthesize(hw)
        table = recorded()  # another run may have added points meanwhile
        table[name] = {"name": name, "hardware": hardware_spec(name), "verilog_sha": verilog_sha(hw),
                       **syn.resources(), "srl": sum(syn.cells.get(c, 0) for c in ("SRL16E", "SRLC32E")),
                       "yosys_seconds": round(syn.seconds, 1)}
        TABLE.write_text(json.dumps(sorted(table.values(), key=lambda r: r["dsp"]), indent=1) + "\n")
        print(f"{name}: {syn.resources()} ({syn.seconds:.0f} s synthesis, {time.perf_counter() - t0:.0f} s total)",
              flush=True)
    rows = [r for r in table.values() if r["name"] in names]
    lut_rows = [(resources.features(hardware_of(r["name"])), r["lut"]) for r in rows]
    ff_rows = [(resources.features(hardware_of(r["name"])), r["ff"]) for r in rows]
    for label, data, target, terms in (
        ("LUT", lut_rows, "lut", resources.LUT_TERMS),
        ("FF", ff_rows, "ff", resources.FF_TERMS),
    ):
        fixed = [(f, y - f["fixed_" + target]) for f, y in data]
        base, ins, loo = fit_base(fixed, terms)
        print(f"{label}: base {base:.0f} with " + ", ".join(f"{t} × {c:g}" for t, c in terms.items())
              + f"; max error {ins:.1%} in sample, {loo:.1%} leave-one-out")
    for r in rows:
        est = resources.estimate(hardware_of(r["name"]))
        print(f"  {r['name']:<12} dsp {r['dsp']:>4}  lut {r['lut']:>7}/{est.lut:<7} ({est.lut / r['lut'] - 1:+.1%})"
              f"  ff {r['ff']:>7}/{est.ff:<7} ({est.ff / r['ff'] - 1:+.1%})")


if __name__ == "__main__":
    main()
