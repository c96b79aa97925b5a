"""Calibrate simulator/resources.py against Yosys synth_xilinx (UltraScale+).

Synthesises the calibration design points (cached in build/synth/ by Verilog text), prints
synthesis against the model for every resource, and the least-squares fit of the LUT and FF
coefficients with its in-sample and leave-one-out errors, to paste into resources.py.
Run: .venv/bin/python benchmarks/calibrate_resources.py   (a few minutes the first time)
"""

from __future__ import annotations

import numpy as np

from dataflow.config import design_point_from_dict
from rtl.synth import synthesize
from simulator import resources

#: Hardware overrides on the tiny preset; tests/test_resources.py re-checks the first three.
POINTS = [
    dict(chains=1, chain_len=2, mux_m=4, lanes=1),
    dict(chains=2, chain_len=4, mux_m=8, lanes=1),
    dict(chains=2, chain_len=4, mux_m=8, lanes=2),
    dict(chains=4, chain_len=8, mux_m=16, lanes=1),
    dict(chains=2, chain_len=8, mux_m=16, lanes=2),
    dict(chains=4, chain_len=4, mux_m=8, lanes=2, weight_buffer_kib=8),
    dict(chains=8, chain_len=4, mux_m=4, lanes=1, act_buffer_kib=4, out_buffer_kib=2),
]


def hardware(overrides: dict):
    return design_point_from_dict({
        "hardware": {"preset": "tiny", **overrides},
        "workload": {"kind": "gemm", "layers": [{"rows": 4, "k": 32, "sparsity": "8:8"}]},
    }).hardware


def features(hw) -> dict[str, float]:
    slots = hw.chains * hw.chain_len
    return {
        "mux_bits": slots * hw.lanes * 8 * max(hw.mux_m / 4, 0.5),
        "cascade_bits": slots * hw.lanes * hw.acc_bits,
        "skew_bits": hw.chains * hw.lanes * 16 * hw.chain_len * (hw.chain_len - 1) // 2,
    }


def lutram(hw) -> int:
    return resources.estimate(hw).lut - round(
        resources.LUT_BASE + resources.LUT_PER_MUX_BIT * features(hw)["mux_bits"]
        + resources.LUT_PER_CASCADE_BIT * features(hw)["cascade_bits"])


def fit(rows: list[tuple[dict, float]], names: list[str]) -> tuple[np.ndarray, float, float]:
    a = np.array([[1.0] + [f[n] for n in names] for f, _ in rows])
    y = np.array([t for _, t in rows])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    in_sample = float(np.max(np.abs(a @ coef - y) / y))
    loo = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        c, *_ = np.linalg.lstsq(a[keep], y[keep], rcond=None)
        loo.append(abs(a[i] @ c - y[i]) / y[i])
    return coef, in_sample, float(max(loo))


def main() -> None:
    lut_rows, ff_rows = [], []
    for overrides in POINTS:
        hw = hardware(overrides)
        syn = synthesize(hw)
        est = resources.estimate(hw).to_dict()
        cells = ", ".join(f"{k} {syn.resources()[k]:g}/{est[k]:g}" for k in est)
        print(f"{overrides}: yosys/model {cells}  ({syn.seconds:.0f} s)")
        f = features(hw)
        lut_rows.append((f, syn.lut - lutram(hw)))
        ff_rows.append((f, syn.ff))
    for name, rows, terms in (("LUT (logic)", lut_rows, ["mux_bits", "cascade_bits"]),
                              ("FF", ff_rows, ["cascade_bits", "skew_bits"])):
        coef, ins, loo = fit(rows, terms)
        print(f"{name}: base {coef[0]:.1f}, " + ", ".join(f"{t} {c:.3f}" for t, c in zip(terms, coef[1:]))
              + f"; max error {ins:.1%} in sample, {loo:.1%} leave-one-out")


if __name__ == "__main__":
    main()
