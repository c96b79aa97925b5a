"""How much of an ECP5 Fmax figure is the placer's seed: nextpnr re-run on one packed netlist.

Every Fmax the docs quote is one nextpnr run (heap placer, seed 1; rtl/synth.py). This
benchmark takes a netlist that ``place_and_route_verilog`` already packed (its folder under
build/pnr holds ``ecp5_packed.json``; the folder's ``top.v`` says which design it is) and places
and routes it again for each placer and seed asked for, in sub-folders ``spread/<placer>_s<seed>``,
then prints each run's Fmax and, per placer, the lowest, median and highest. The netlist is the
same in every run, so the spread is the tools', not the design's.
``--router router2`` and ``--tmg-ripup`` route with nextpnr's other router or its timing-driven
rip-up (sub-folders ``..._router2``, ``..._tr``): with the same placer and seed the placement is
the same, so the difference is the router's.
Run: .venv/bin/python benchmarks/pnr_spread.py build/pnr/<folder> [--seeds 1,2,3]
     [--placers heap,static] [--speed 6] [--router router1] [--tmg-ripup] [--timeout 3600] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sparsim.rtl.synth import ECP5_PLACERS as PLACERS
from sparsim.rtl.synth import ECP5_ROUTER, ECP5_ROUTERS, ECP5_SPEED, ECP5_SPEED_GRADES, nextpnr_ecp5_command


class SpreadError(RuntimeError):
    """A nextpnr run that failed, timed out or reported no clock (printed as one line)."""


def run_one(folder: Path, placer: str, seed: int, speed: int, timeout_s: float,
            router: str = ECP5_ROUTER, tmg_ripup: bool = False) -> dict:
    folder = folder.resolve()
    tail = ("" if router == ECP5_ROUTER else f"_{router}") + ("_tr" if tmg_ripup else "")
    out = folder / "spread" / f"{placer}_s{seed}_g{speed}{tail}"
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.json"
    t0 = time.perf_counter()
    if not report.exists():
        # Paths relative to the run's folder: YoWASP's nextpnr sees the working directory and
        # its parents, but maps /tmp to a directory of its own, so an absolute path under /tmp
        # would not be found (nextpnr then exits 125 with no log).
        cmd = nextpnr_ecp5_command("../../ecp5_packed.json", "report.json", "nextpnr.log",
                                   speed=speed, seed=seed, placer=placer, router=router, tmg_ripup=tmg_ripup)
        try:
            subprocess.run(cmd, cwd=out, check=True, timeout=timeout_s,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except subprocess.CalledProcessError as e:
            raise SpreadError(f"nextpnr exited {e.returncode} ({placer}, seed {seed}); see "
                              f"{out / 'nextpnr.log'}") from None
        except subprocess.TimeoutExpired:
            raise SpreadError(f"nextpnr did not finish in {timeout_s:g} s ({placer}, seed {seed}); "
                              f"see {out / 'nextpnr.log'}") from None
    clocks = json.loads(report.read_text()).get("fmax", {})
    if not clocks:
        raise SpreadError(f"nextpnr reported no clock; see {out / 'nextpnr.log'}")
    return {"placer": placer, "seed": seed, "speed": speed, "router": router, "tmg_ripup": tmg_ripup,
            "fmax_mhz": round(min(c["achieved"] for c in clocks.values()), 2),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a build/pnr folder holding ecp5_packed.json")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--placers", default="heap,static")
    ap.add_argument("--speed", type=int, default=ECP5_SPEED, choices=ECP5_SPEED_GRADES)
    ap.add_argument("--router", default=ECP5_ROUTER, choices=ECP5_ROUTERS)
    ap.add_argument("--tmg-ripup", action="store_true", help="nextpnr's timing-driven rip-up in the router")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per nextpnr run")
    ap.add_argument("--json", type=Path, help="write the runs here")
    args = ap.parse_args(argv)
    if not (args.folder / "ecp5_packed.json").exists():
        print(f"folder: {args.folder} holds no ecp5_packed.json (run sparsim synth or a "
              "bench_*fmax.py first)", file=sys.stderr)
        return 2
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        print(f"--seeds: {args.seeds!r} is not a comma-separated list of integers", file=sys.stderr)
        return 2
    if any(s < 1 for s in seeds):
        print(f"--seeds: {args.seeds!r} holds a seed below 1", file=sys.stderr)
        return 2
    placers = args.placers.split(",")
    bad = [p for p in placers if p not in PLACERS]
    if bad:
        print(f"--placers: {bad[0]!r} is not one of {', '.join(PLACERS)}", file=sys.stderr)
        return 2
    runs = []
    for placer in placers:
        for seed in seeds:
            try:
                r = run_one(args.folder, placer, seed, args.speed, args.timeout, args.router,
                            args.tmg_ripup)
            except SpreadError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
            runs.append(r)
            print(f"{placer:7s} seed {seed:3d}  {r['fmax_mhz']:7.2f} MHz  ({r['seconds']:.0f} s)",
                  flush=True)
    print(f"{'placer':7s}  {'lowest':>7s}  {'median':>7s}  {'highest':>7s}  (MHz, speed grade {args.speed})")
    for placer in placers:
        f = [r["fmax_mhz"] for r in runs if r["placer"] == placer]
        print(f"{placer:7s}  {min(f):7.2f}  {statistics.median(f):7.2f}  {max(f):7.2f}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
