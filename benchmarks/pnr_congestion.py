"""Where an ECP5 netlist that does not route is congested, and which signals crowd it.

router1 only says how many arcs are left to route; nextpnr's router2 can write, per iteration, the
overused routing wires by device coordinate and by net (``--router2-heatmap``). This benchmark
takes a netlist that ``place_and_route_verilog`` already packed (its folder under build/pnr holds
``ecp5_packed.json``), places it as the flow does (placer and seed as asked) and routes it with
router2 for ``--iterations`` iterations, in ``congestion/<placer>_s<seed>_g<speed>``, then stops
nextpnr and prints: the overuse per iteration, the overuse by device region (blocks of
``--block`` tiles) and the signals that hold the most overused wires, grouped by the
register or LUT output a net is named after (digits as ``#``, bit indices dropped). ``--png`` draws
the chosen iteration's map. A folder whose heatmaps are already there is only summarised.
Run: .venv/bin/python benchmarks/pnr_congestion.py build/pnr/<folder> [--iterations 7]
     [--placer heap] [--seed 1] [--speed 6] [--block 8] [--top 30] [--png OUT.png] [--timeout 7200]
"""

from __future__ import annotations

import argparse
import collections
import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sparsim.rtl.synth import ECP5_PLACER, ECP5_PLACERS, ECP5_SEED, ECP5_SPEED, ECP5_SPEED_GRADES, nextpnr_ecp5_command

PREFIX = "hm"


class CongestionError(RuntimeError):
    """A nextpnr run that failed or wrote no heatmap (printed as one line)."""


def heatmap(folder: Path, kind: str, iteration: int) -> Path:
    return folder / f"{PREFIX}_congestion_by_{kind}_{iteration}.csv"


def iterations_written(folder: Path) -> list[int]:
    """The router2 iterations whose two heatmaps are both in ``folder``, in order."""
    its = [int(m.group(1)) for p in folder.glob(f"{PREFIX}_congestion_by_net_*.csv")
           if (m := re.fullmatch(rf"{PREFIX}_congestion_by_net_(\d+)\.csv", p.name))]
    return sorted(i for i in its if heatmap(folder, "coordinate", i).exists())


def run(folder: Path, out: Path, placer: str, seed: int, speed: int, iterations: int,
        timeout_s: float) -> None:
    """Place and route with router2 until iteration ``iterations + 1`` begins (so the heatmaps
    of ``iterations`` are whole) or nextpnr ends; then stop it."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = nextpnr_ecp5_command("../../ecp5_packed.json", "report.json", "nextpnr.log", speed=speed,
                               seed=seed, placer=placer, router="router2") + ["--router2-heatmap", PREFIX]
    # relative paths: YoWASP's nextpnr maps /tmp elsewhere (benchmarks/pnr_spread.py)
    proc = subprocess.Popen(cmd, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0, last = time.monotonic(), 0
    try:
        while proc.poll() is None:
            done = iterations_written(out)
            if done and done[-1] != last:
                last = done[-1]
                print(f"  router2 iteration {last} written ({time.monotonic() - t0:.0f} s)", file=sys.stderr,
                      flush=True)
            if done and done[-1] > iterations:
                break
            if time.monotonic() - t0 > timeout_s:
                raise CongestionError(f"no heatmap of iteration {iterations} after {timeout_s:g} s; "
                                      f"see {out / 'nextpnr.log'}")
            time.sleep(5)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
    if not iterations_written(out):
        raise CongestionError(f"nextpnr exited {proc.returncode} with no heatmap; see {out / 'nextpnr.log'}")


def read_grid(path: Path) -> np.ndarray:
    rows = [[int(v) for v in line.strip().rstrip(",").split(",")] for line in path.read_text().splitlines()
            if line.strip()]
    return np.array(rows, dtype=np.int64)


def group(net: str) -> str:
    """A net's signal group: the register or LUT output it is named after, digits as ``#``."""
    base = re.split(r"_TRELLIS_|_LUT4_|_CCU2C_", net, maxsplit=1)[0]
    return re.sub(r"\d+", "#", re.sub(r"(\[\d+\])+$", "", base))


def by_group(path: Path) -> list[tuple[str, int, int]]:
    """(group, overused wires, nets) from a congestion-by-net heatmap, most first."""
    wires, nets = collections.Counter(), collections.Counter()
    with path.open(newline="") as f:
        for row in csv.reader(f):
            if len(row) == 2 and row[1].strip().isdigit():
                g = group(row[0])
                wires[g] += int(row[1])
                nets[g] += 1
    return [(g, w, nets[g]) for g, w in wires.most_common()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a build/pnr folder holding ecp5_packed.json")
    ap.add_argument("--iterations", type=int, default=7, help="router2 iterations to run and summarise")
    ap.add_argument("--placer", default=ECP5_PLACER, choices=ECP5_PLACERS)
    ap.add_argument("--seed", type=int, default=ECP5_SEED)
    ap.add_argument("--speed", type=int, default=ECP5_SPEED, choices=ECP5_SPEED_GRADES)
    ap.add_argument("--block", type=int, default=8, help="tiles per side of a region in the map")
    ap.add_argument("--top", type=int, default=30, help="signal groups to list")
    ap.add_argument("--png", type=Path, help="draw the iteration's map here")
    ap.add_argument("--timeout", type=float, default=7200.0, help="seconds for the nextpnr run")
    args = ap.parse_args(argv)
    if not (args.folder / "ecp5_packed.json").exists():
        print(f"folder: {args.folder} holds no ecp5_packed.json (run sparsim synth or a "
              "bench_*fmax.py first)", file=sys.stderr)
        return 2
    for name in ("iterations", "seed", "block", "top"):
        if getattr(args, name) < 1:
            print(f"--{name}: must be 1 or more, not {getattr(args, name)}", file=sys.stderr)
            return 2
    out = args.folder.resolve() / "congestion" / f"{args.placer}_s{args.seed}_g{args.speed}"
    done = iterations_written(out) if out.exists() else []
    if not done or (done[-1] < args.iterations and not (out / "report.json").exists()):
        try:
            run(args.folder, out, args.placer, args.seed, args.speed, args.iterations, args.timeout)
        except CongestionError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        done = iterations_written(out)
    it = max(i for i in done if i <= args.iterations) if min(done) <= args.iterations else done[0]
    print(f"{out}: router2 overuse by iteration (overused wire-uses, summed over the map)")
    print("  " + ", ".join(f"{i}: {int(read_grid(heatmap(out, 'coordinate', i)).sum()):,}" for i in done))
    grid = read_grid(heatmap(out, "coordinate", it))
    b = args.block
    print(f"iteration {it}, by region of {b} x {b} tiles (file rows down, columns across; "
          f"{grid.shape[0]} x {grid.shape[1]}):")
    for y in range(0, grid.shape[0], b):
        print(" ".join(f"{grid[y:y + b, x:x + b].sum():6d}" for x in range(0, grid.shape[1], b)))
    rows = by_group(heatmap(out, "net", it))
    total = sum(w for _, w, _ in rows) or 1
    print(f"iteration {it}, signal groups holding overused wires ({total:,} in all):")
    print(f"{'wires':>8s} {'share':>6s} {'nets':>6s}  group")
    for g, w, n in rows[:args.top]:
        print(f"{w:8d} {100 * w / total:5.1f}% {n:6d}  {g}")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 7))
        im = ax.imshow(grid, cmap="inferno", interpolation="nearest")
        fig.colorbar(im, ax=ax, label="overused wires")
        ax.set_title(f"router2 congestion, iteration {it}\n{args.folder.name} ({args.placer}, seed {args.seed})")
        fig.savefig(args.png, dpi=120, bbox_inches="tight")
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
