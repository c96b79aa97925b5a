"""SAT/BDWP reproduction on the nm_train engine: writes reports/sat_bdwp/.

Training-step time of dense, sr_ste and bdwp on the ``vcu1525`` preset for ResNet-18,
ResNet-50, ViT-B/16 and DeiT-S (ImageNet, batch 32) at 2:8, plus 2:4, 4:8 and 1:8; the speedup
of bdwp over dense per network and on average beside SAT's reported 1.75x at 2:8 and the ideal
3 / (N/M + N/M + 1); the time per pass (stacked plot); what pre-generation costs and saves
against pruning inside every weight load; and the causes of the gap to the ideal, from the
simulator's own breakdown. Nothing is tuned to the paper's figure.

Run: .venv/bin/python reports/sat_bdwp.py [--out reports/sat_bdwp] [--batch 32] [--networks resnet18,...]
(or `make reproduce`, which also makes reports/centaur/).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from sparsim.dataflow.config import design_point_from_dict
from sparsim.dataflow.nm_train import ENGINE, compile_design_point
from sparsim.simulator.nm_train import run

NETWORKS = ("resnet18", "resnet50", "vit-b16", "deit-s")
NMS = ("2:8", "2:4", "4:8", "1:8")
PASSES = ("forward", "act_grad", "weight_grad", "pregen")
SAT_SPEEDUP_2_8 = 1.75


def point(network: str, mode: str, nm: str, batch: int, pregen: str = "pre", dataflow: str = "os"):
    return design_point_from_dict({
        "hardware": {"preset": "vcu1525", "dataflow": dataflow},
        "workload": {"kind": "train", "network": network, "batch": batch, "mode": mode, "sparsity": nm,
                     "pregen": pregen},
    })


def ideal(nm: str) -> float:
    n, m = (int(v) for v in nm.split(":"))
    return 3 / (2 * n / m + 1)


def _dense_share(net: str, result, batch: int) -> float:
    """Share of a step's forward and act_grad time spent in layers that run dense."""
    from sparsim.dataflow.networks import NETWORKS

    network = NETWORKS[net]
    dense = {network.first_conv, network.classifier} | {l.name for l in network.layers if not l.has_weights}
    total = sum(result.pass_cycles[p] for p in ("forward", "act_grad"))
    kept = sum(c.get(p, 0) for name, c in result.layer_cycles.items() if name in dense for p in ("forward", "act_grad"))
    return kept / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "sat_bdwp")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help="comma-separated built-in networks (default: the four SAT trains)")
    args = parser.parse_args()
    networks = tuple(args.networks.split(","))
    from sparsim.dataflow.networks import NETWORKS as BUILT_IN

    if unknown := [n for n in networks if n not in BUILT_IN]:
        parser.error(f"--networks: {', '.join(unknown)} not among {', '.join(BUILT_IN)}")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    timed = {}
    for net in networks:
        for mode, nms in (("dense", ("2:8",)), ("sr_ste", NMS), ("bdwp", NMS)):
            for nm in nms:
                for pregen in (("pre", "inline") if mode == "bdwp" and nm == "2:8" else ("pre",)):
                    p = point(net, mode, nm, args.batch, pregen)
                    res = ENGINE.evaluate(p)
                    r = run(compile_design_point(p))
                    timed[(net, mode, nm, pregen)] = (res, r)
                    rows.append({
                        "network": net, "mode": mode, "sparsity": "-" if mode == "dense" else nm, "pregen": pregen,
                        "step_ms": res["latency_ms"], "samples_per_s": res["samples_per_s"],
                        "mac_utilisation": res["mac_utilisation"],
                        "offchip_bytes": res["bytes_read"] + res["bytes_written"], "energy_j": res["energy_j"],
                        **{f"{ps}_ms": r.pass_cycles[ps] / (p.hardware.clock_mhz * 1e3) for ps in PASSES},
                        **{f"stall_{c}_ms": v / (p.hardware.clock_mhz * 1e3) for c, v in r.stalls.items()},
                    })
    with (out / "steps.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    lines = ["# SAT / BDWP on the nm_train engine (`vcu1525` preset, batch %d)" % args.batch, "",
             "Made by `.venv/bin/python reports/sat_bdwp.py`; every number is the simulator's "
             "(steps.csv). Time per training step in ms at 200 MHz.", ""]
    head = "| network | dense | sr_ste 2:8 | bdwp 2:8 | bdwp 2:8 / dense | ideal 2:8 | " + \
           " | ".join(f"bdwp {nm} speedup (ideal)" for nm in NMS[1:]) + " |"
    lines += [head, "|" + "---|" * (6 + len(NMS) - 1)]
    speedups = []
    for net in networks:
        d = timed[(net, "dense", "2:8", "pre")][0]
        s = timed[(net, "sr_ste", "2:8", "pre")][0]
        b = timed[(net, "bdwp", "2:8", "pre")][0]
        speedups.append(d["cycles"] / b["cycles"])
        others = " | ".join(
            f"{d['cycles'] / timed[(net, 'bdwp', nm, 'pre')][0]['cycles']:.2f}x ({ideal(nm):.2f}x)" for nm in NMS[1:])
        lines.append(f"| {net} | {d['latency_ms']:,.1f} | {s['latency_ms']:,.1f} | {b['latency_ms']:,.1f} | "
                     f"{speedups[-1]:.2f}x | {ideal('2:8'):.2f}x | {others} |")
    mean = sum(speedups) / len(speedups)
    lines += ["", f"Average bdwp 2:8 speedup over dense: **{mean:.2f}x** (SAT reports {SAT_SPEEDUP_2_8}x; "
                  f"ideal {ideal('2:8'):.2f}x).", ""]

    lines += ["## Where the gap to the ideal comes from", "",
              "Per network at 2:8: the dense step's time per pass, the ideal if the forward and "
              "act_grad passes shrank by N/M exactly and nothing else changed, what bdwp gets, and the "
              "share of the dense step spent in fold fill/drain (array cycles that stream no "
              "reduction step: `2R + C - 2 + L` per fold, which sparsity does not shrink).", "",
              "| network | dense fwd / act / wgrad (ms) | pass-weighted ideal | bdwp | bdwp fwd / act / wgrad / pregen (ms) | fill/drain share dense -> bdwp | forward + act_grad time in layers that stay dense (bdwp) |",
              "|---|---|---|---|---|---|---|"]
    for net in networks:
        d, dr = timed[(net, "dense", "2:8", "pre")]
        b, br = timed[(net, "bdwp", "2:8", "pre")]
        ms = 1 / (d["cycles"] / d["latency_ms"])  # ms per cycle at the preset's clock
        f, a, w = (dr.pass_cycles[p] for p in ("forward", "act_grad", "weight_grad"))
        weighted = (f + a + w) / (f / 4 + a / 4 + w)
        lines.append(
            f"| {net} | {f * ms:,.0f} / {a * ms:,.0f} / {w * ms:,.0f} | {weighted:.2f}x | "
            f"{d['cycles'] / b['cycles']:.2f}x | "
            + " / ".join(f"{br.pass_cycles[p] * ms:,.0f}" for p in PASSES)
            + f" | {dr.stalls['fill_drain'] / dr.cycles:.0%} -> {br.stalls['fill_drain'] / br.cycles:.0%} | "
            + f"{_dense_share(net, br, args.batch):.0%} |")
    lines += ["", "Reading the table: (1) the weight gradient stays dense in every mode; the pass-weighted "
              "ideal is what is left once its actual share is counted (above 2x where it is less than a "
              "third of the dense step); (2) fold fill and drain do not shrink with K', so short sparse "
              "reductions (the act_grad's Cout', the forward's Cin*kh*kw') stream a smaller fraction of "
              "their folds: the fill/drain share grows from dense to bdwp; (3) layers that stay dense "
              "(first convolution, classifier, attention products) do not speed up at all; (4) "
              "pre-generation, memory and dispatch stalls are small at this bandwidth (the step is "
              "compute-bound; stall columns in steps.csv).", "",
              "## Pre-generation against pruning inside every weight load (bdwp 2:8)", "",
              "| network | pre: step ms / pregen ms / off-chip GB | inline: step ms / off-chip GB |", "|---|---|---|"]
    for net in networks:
        pre, pre_r = timed[(net, "bdwp", "2:8", "pre")]
        inl = timed[(net, "bdwp", "2:8", "inline")][0]
        pregen_ms = pre_r.pass_cycles["pregen"] * pre["latency_ms"] / pre["cycles"]
        lines.append(f"| {net} | {pre['latency_ms']:,.1f} / {pregen_ms:.2f} / "
                     f"{(pre['bytes_read'] + pre['bytes_written']) / 1e9:.2f} | {inl['latency_ms']:,.1f} / "
                     f"{(inl['bytes_read'] + inl['bytes_written']) / 1e9:.2f} |")
    lines += ["", "![time per pass](time_per_pass.png)", ""]
    (out / "report.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    bars = [(net, mode) for net in networks for mode in ("dense", "sr_ste", "bdwp")]
    x = range(len(bars))
    bottom = [0.0] * len(bars)
    for ps in PASSES:
        heights = [timed[(net, mode, "2:8", "pre")][1].pass_cycles[ps] * timed[(net, mode, "2:8", "pre")][0]["latency_ms"]
                   / timed[(net, mode, "2:8", "pre")][1].cycles for net, mode in bars]
        ax.bar(x, heights, bottom=bottom, label=ps)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_xticks(list(x), [f"{net}\n{mode}" for net, mode in bars], fontsize=7)
    ax.set_ylabel("time per training step (ms)")
    ax.set_title(f"nm_train on vcu1525, batch {args.batch}, 2:8: time per pass")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "time_per_pass.png", dpi=120)
    print(f"wrote {out / 'steps.csv'}, {out / 'report.md'}, {out / 'time_per_pass.png'}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
