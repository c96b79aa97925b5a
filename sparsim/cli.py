"""The ``sparsim`` command line: simulate, sweep, rtl, synth, verify, engines."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import statistics
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path

from sparsim.dataflow.config import ConfigError
from sparsim.simulator.sweep import MAX_POINTS
from sparsim import engine as engines
from sparsim.engine import Engine

_EPILOG = """\
examples:
  sparsim simulate examples/llama2_decode_u280.yaml
  sparsim simulate examples/llama2_decode_u280.yaml --set workload.sparsity=8:16
  sparsim sweep examples/quickstart.yaml
  sparsim rtl examples/tiny_gemm.yaml -o build/tiny.v
  sparsim verify examples/tiny_gemm.yaml --seeds 3
  sparsim synth examples/tiny_gemm.yaml
  sparsim engines
"""


def _load_point(args: argparse.Namespace):
    """The design point of ``args.config`` with every ``--set key.path=value`` applied."""
    from sparsim.dataflow.config import describe, design_point_from_dict, load_yaml, parse_yaml

    raw = load_yaml(args.config)
    where: dict[str, str] = {}  # key path as errors spell it -> the --set item that set it
    if args.set:
        from sparsim.simulator.sweep import set_path

        if not isinstance(raw, dict):
            raise ConfigError("", f"a design point must be a mapping, not {describe(raw)}", args.config)
        for item in args.set:
            key, sep, text = item.partition("=")
            if not sep or not key:
                raise ConfigError("--set", f"expected KEY.PATH=VALUE, not {item!r}")
            try:
                # "8:16" stays text: YAML 1.1 would read it as the base-60 number 496.
                value = text if re.fullmatch(r"\s*\d+\s*:\s*\d+\s*", text) else parse_yaml(text)
            except ConfigError as exc:
                raise ConfigError(f"--set {key}", f"value {text[:40]!r} is not valid YAML: {exc.reason}") from None
            try:
                set_path(raw, key, value)
            except ConfigError as exc:
                raise exc.with_source(f"--set {item}") from None
            where[re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", key)] = item
    args.set_paths = where
    try:
        return design_point_from_dict(raw)
    except ConfigError as exc:
        raise _blame(args, exc) from None


def _blame(args: argparse.Namespace, exc: ConfigError) -> ConfigError:
    """``exc`` naming the ``--set`` item that wrote its key (or a key above or below it), else
    the config file."""
    for key, item in getattr(args, "set_paths", {}).items():
        if exc.path == key or exc.path.startswith((key + ".", key + "[")) or key.startswith(exc.path + "."):
            return exc.with_source(f"--set {item}")
    return exc.with_source(args.config)


#: Above this many estimated LUTs `sparsim synth` asks for --force: Yosys time grows with the
#: design (the calibration points, 0.7–5.7 k LUTs, take 9–50 s each on a 2-core machine).
SYNTH_LUT_LIMIT = 50_000


class _Fail(Exception):
    """A user-facing failure that is not a config error (e.g. a disk is full)."""


def _write_error(option: str, path: Path, exc: OSError) -> Exception:
    """The one-line error for an output path that cannot be written: a bad path (its parent is
    a file, no permission) is bad input and blames ``option``; anything else is a failure."""
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        parent = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
        if parent is not None:
            return ConfigError(f"{option} {path}", f"{parent} is a file, not a folder")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS,
                     errno.EISDIR):
        return ConfigError(f"{option} {path}", f"cannot write there: {exc.strerror}")
    return _Fail(f"cannot write {path}: {exc.strerror or exc}")


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


def _engine(point, args: argparse.Namespace, *, rtl: bool = False) -> Engine:
    eng = engines.of(point.hardware)
    if rtl and not eng.has_rtl:
        raise ConfigError("hardware.engine", f"engine {eng.name} has no RTL yet", args.config)
    return eng


def cmd_simulate(args: argparse.Namespace) -> int:
    point = _load_point(args)
    eng = _engine(point, args)
    t0 = time.perf_counter()
    try:
        result = eng.evaluate(point)
    except ConfigError as exc:
        raise _blame(args, exc) from None
    wall = time.perf_counter() - t0
    # The same columns as a sweep's row of this point.
    row = {"engine": eng.name, **eng.resources(point.hardware), **result.to_dict()}
    if args.json:
        from sparsim.simulator.store import finite

        print(json.dumps(finite(row), indent=2, allow_nan=False))
        return 0
    print(f"{args.config}: {eng.describe(point.hardware)}")
    _print_table([(m.label, m.format(row[m.name])) for m in map(eng.metric, eng.headline) if m.name in row])
    cycles = result["cycles"]
    if result.stalls:
        print("stall cycles, by cause:")
        _print_table([(k, f"{v:,} ({v / cycles:.1%})") for k, v in result.stalls.items()])
    if result.breakdown:
        print(f"time by {eng.breakdown}:")
        _print_table([
            (k, f"{v / cycles * result['seconds'] * 1e3:.3f} ms ({v / cycles:.1%})")
            for k, v in result.breakdown.items()
        ])
    print(f"(simulated in {wall:.3f} s)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from sparsim.simulator.report import other_sweep, start_over, write_report, write_resolved_spec
    from sparsim.simulator.store import FolderBusy, ResultStore, exclusive
    from sparsim.simulator.sweep import connect, expand, load_sweep, run_sweep

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError("--jobs", f"must be at least 1, not {args.jobs}")
    if args.max_points < 1:
        raise ConfigError("--max-points", f"must be at least 1, not {args.max_points}")
    spec = load_sweep(args.spec, args.max_points)
    out_dir = Path(args.out) if args.out else Path("reports") / spec.name
    with contextlib.ExitStack() as stack:
        # Connect before anything is written, so a wrong --scheduler leaves no folder behind.
        client = stack.enter_context(connect(args.scheduler)) if args.scheduler else None
        try:
            stack.enter_context(exclusive(out_dir))
            if args.fresh:
                start_over(out_dir)
            elif (why := other_sweep(spec, out_dir, reuse=args.reuse)) is not None:
                raise ConfigError(f"--out {out_dir}", f"{why}; choose another --out, or add --fresh "
                                                      "to start over there (its stored results are deleted)")
            # Announced once every check has passed, so a refusal stays one line.
            where = f"Dask scheduler {args.scheduler}" if args.scheduler else f"{args.jobs or 'all'} local workers"
            print(f"sweep {spec.name}: {len(expand(spec))} design points on {where}", file=sys.stderr)
            write_resolved_spec(spec, out_dir)
            try:
                run = run_sweep(spec, out_dir, jobs=args.jobs, scheduler=client)
            except ConfigError:
                raise
            except ValueError as exc:  # a corrupt results store
                raise _Fail(str(exc)) from None
            except BrokenProcessPool:
                raise _Fail("a worker process died (killed, or out of memory); the points finished "
                            f"so far are stored in {out_dir}: rerun the same command to resume") from None
            files = write_report(spec, run.rows, out_dir)
        except FolderBusy as exc:
            raise ConfigError(f"--out {out_dir}", str(exc)) from None
        except OSError as exc:
            raise _write_error("--out", out_dir, exc) from None
    n = len(run.rows)
    feasible = sum(1 for r in run.rows if r.get("feasible"))
    rate = run.computed / run.seconds * 60 if run.seconds > 0 else 0.0
    print(f"{n} points ({feasible} feasible): {run.computed} simulated, {run.reused} reused from "
          f"an earlier run, {run.dropped} dropped by the device budget or constraints, "
          f"{run.failed} failed, in {run.seconds:.1f} s ({rate:.0f} points/min)")
    if run.failed:
        first = next(r for r in run.rows if r.get("failed"))
        print(f"  {run.failed} points failed (rerun to retry them); the first: {first['reason']}",
              file=sys.stderr)
    for f in [*files, out_dir / ResultStore.FILE]:
        print(f"  wrote {f}")
    return 0


def cmd_rtl(args: argparse.Namespace) -> int:
    from sparsim.rtl.verilog import to_verilog

    point = _load_point(args)
    _engine(point, args, rtl=True)
    text = to_verilog(point.hardware)
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text)
        tmp.replace(out)
    except OSError as exc:
        raise _write_error("--output", out, exc) from None
    print(f"wrote {out} ({len(text.splitlines())} lines)")
    return 0


def _pnr_seeds(text: str) -> list[int]:
    """``--pnr-seeds``: a comma-separated list of distinct placer seeds, each 1 or more."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError("--pnr-seeds", f"{text!r} is not a comma-separated list of integers") from None
    if any(not 1 <= seed <= 2**31 - 1 for seed in seeds):
        raise ConfigError("--pnr-seeds", f"seeds must be from 1 to {2**31 - 1}, not {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("--pnr-seeds", f"{text!r} names a seed twice")
    return seeds


def _timeout_minutes(text: str) -> float:
    """``--timeout``: minutes each Yosys or nextpnr run may take, a positive number."""
    try:
        minutes = float(text)
    except ValueError:
        raise ConfigError("--timeout", f"{text!r} is not a number of minutes") from None
    if not minutes > 0 or minutes == float("inf"):
        raise ConfigError("--timeout", f"must be a positive, finite number of minutes, not {text!r}")
    return minutes


def cmd_synth(args: argparse.Namespace) -> int:
    from sparsim.rtl.synth import PROXY_NOTE, place_and_route_ecp5, synthesize

    seeds = _pnr_seeds(args.pnr_seeds)
    timeout_s = 60 * _timeout_minutes(args.timeout)
    if args.no_pnr and (args.pnr_seeds != "1" or args.placer != "heap" or args.router != "router1"):
        raise ConfigError("--no-pnr", "skips the place and route that --pnr-seeds, --placer and --router "
                                      "choose for")
    point = _load_point(args)
    eng = _engine(point, args, rtl=True)
    hw = point.hardware
    model = (eng.rtl_resources or eng.resources)(hw)
    if model["lut"] > SYNTH_LUT_LIMIT and not args.force:
        raise ConfigError(
            "hardware",
            f"the resource model estimates {model['dsp']:,} DSPs and {model['lut']:,} LUTs, above the "
            f"{SYNTH_LUT_LIMIT:,}-LUT limit of sparsim synth (Yosys time grows with the design; "
            f"use --force to run anyway)",
            args.config,
        )
    print(f"synthesising {eng.describe(hw)} with Yosys synth_xilinx -family {args.family} "
          f"(the first run compiles Yosys, ~40 s)"
          f"{'' if args.no_pnr else f', then placing and routing it on ECP5 (speed grade {args.speed_grade}) with nextpnr'} ...",
          file=sys.stderr)
    runs = []
    try:
        res = synthesize(hw, family=args.family, use_cache=not args.fresh, timeout_s=timeout_s)
        for i, seed in enumerate([] if args.no_pnr else seeds):
            if len(seeds) > 1:
                print(f"  ECP5 place and route {i + 1} of {len(seeds)}: {args.placer} placer, seed {seed}, "
                      f"{args.router} ...", file=sys.stderr)
            runs.append(place_and_route_ecp5(hw, use_cache=not args.fresh, speed=args.speed_grade,
                                             seed=seed, placer=args.placer, router=args.router,
                                             timeout_s=timeout_s))
    except RuntimeError as exc:
        raise _Fail(str(exc)) from None
    pnr = runs[0] if runs else None
    spread = None
    if len(runs) > 1:
        fmax = [r.fmax_mhz for r in runs]
        spread = {"lowest": min(fmax), "median": statistics.median(fmax), "highest": max(fmax)}
    if args.json:
        from sparsim.simulator.store import finite

        out = {"family": res.family, "synthesis": res.resources(), "dsp_registers": res.dsp_regs,
               "model": model, "seconds": res.seconds}
        if pnr is not None:
            # "ecp5" is the first seed's run (seed 1 by default, the flow's recorded figure)
            out["ecp5"] = {**asdict(pnr), "note": PROXY_NOTE}
            out["ecp5_runs"] = [asdict(r) for r in runs]
        if spread is not None:
            out["ecp5_fmax_spread"] = spread
        print(json.dumps(finite(out), allow_nan=False))
        return 0
    print(f"  {'resource':<8} {'yosys':>10} {'model':>10}")
    for name, value in res.resources().items():
        print(f"  {name:<8} {value:>10g} {model[name]:>10g}")
    regs = res.dsp_regs
    cell = "DSP48E2" if res.family == "xcup" else "DSP48E1"
    print(f"  {cell} register use: {regs['a_or_b_reg']} of {regs['dsp']} with AREG/BREG, "
          f"{regs['mreg']} MREG, {regs['preg']} PREG, {regs['pcin_cascade']} fed on PCIN by another DSP")
    if res.family == "xcup":
        print("  (Yosys packs DSP registers and cascades only into DSP48E1; --family xc7 checks that "
              "the RTL has that structure)")
    if pnr is not None:
        print(f"  ECP5 Fmax: {pnr.fmax_mhz:.1f} MHz at speed grade {pnr.speed_grade}, {pnr.placer} placer, "
              f"seed {pnr.seed}, {pnr.router} (target {pnr.target_mhz:g}; {pnr.lut4} LUT4, {pnr.ff} FF, "
              f"{pnr.mult18} MULT18X18D) -- {PROXY_NOTE}")
        cp = pnr.critical_path
        if cp:
            print(f"  limited by {cp['from']} -> {cp['to']}: {cp['ns']:.2f} ns, {cp['routing_ns']:.2f} of it "
                  f"routing, {cp['levels']} logic levels")
        if pnr.synth_note:
            print(f"  note: {pnr.synth_note}")
    for r in runs[1:]:
        print(f"  ECP5 Fmax: {r.fmax_mhz:.1f} MHz at seed {r.seed}")
    if spread is not None:
        print(f"  ECP5 Fmax over {len(runs)} seeds: lowest {spread['lowest']:.1f}, median "
              f"{spread['median']:.1f}, highest {spread['highest']:.1f} MHz (the same netlist: "
              "the spread is the placer's, not the design's)")
    print(f"  (synthesis took {res.seconds:.1f} s"
          + ("" if not runs else f", ECP5 place and route {sum(r.seconds for r in runs):.1f} s")
          + "; cells by type in build/synth/, nextpnr log in build/pnr/)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from sparsim.rtl.verilator import verify_all

    point = _load_point(args)
    eng = _engine(point, args, rtl=True)
    if point.workload.kind not in eng.bench_kinds:
        kinds = ", ".join(repr(k) for k in eng.bench_kinds)
        raise ConfigError("workload.kind", f"verify runs {kinds} workloads (small enough for the RTL) "
                                           f"on engine {eng.name}, not {point.workload.kind!r}", args.config)
    if args.seeds < 1:
        raise ConfigError("--seeds", f"must be at least 1, not {args.seeds}")
    cases = []
    for i in range(args.seeds):
        seeded = point.model_copy(update={"seed": point.seed + i})
        try:
            program = eng.compile(seeded, with_data=True)
            if eng.rtl_check is not None:
                eng.rtl_check(program)
        except ConfigError as exc:
            raise _blame(args, exc) from None
        cases.append((program, 1000 + seeded.seed if args.stalls else None))
    print(f"building {eng.describe(point.hardware)} under Verilator "
          f"(a new design point takes ~20 s, a cached one none) ...", file=sys.stderr)
    results = verify_all(cases)
    failures = 0
    for i, res in enumerate(results):
        failures += not res.ok
        stall = f", stall seed {res.stall_seed}" if res.stalls else ""
        print(f"data seed {point.seed + i}{stall}: {'PASS' if res.ok else 'FAIL'}  {res.summary()}")
    print(f"{len(results) - failures} passed, {failures} failed")
    return 1 if failures else 0


def cmd_engines(args: argparse.Namespace) -> int:
    names = engines.names()
    if args.name is not None and args.name not in names:
        raise ConfigError("engines", f"unknown engine {args.name!r}; known: {', '.join(names)}")
    for name in [args.name] if args.name else names:
        eng = engines.get(name)
        print(f"{name}: workload kinds {', '.join(eng.kinds)}; presets {', '.join(eng.presets) or 'none'}; "
              f"RTL {'yes' if eng.has_rtl else 'no'}")
        rows = [(m.name, f"{m.direction:<3}  {m.axis_label}{'  (before run)' if m.before_run else ''}")
                for m in eng.all_metrics]
        print("  metrics (objectives may name any; constraints those known before run):")
        _print_table(rows)
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sparsim")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparsim",
        description="Co-design simulator for sparse FPGA accelerators: a Numba cycle-level "
                    "simulator, Amaranth RTL and a NumPy golden model that agree.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sparsim {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    overrides = argparse.ArgumentParser(add_help=False)
    overrides.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", default=[],
                           help="override a key of the design point (YAML value), "
                                "e.g. --set hardware.chains=96 --set workload.sparsity=8:16")

    p = sub.add_parser("simulate", parents=[overrides], help="time one design point (YAML) and show where the time goes")
    p.add_argument("config", help="design point YAML: hardware (preset + overrides) and workload")
    p.add_argument("--json", action="store_true", help="print all metrics as JSON")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("sweep", help="run a design-space sweep (YAML) and write a report")
    p.add_argument("spec", help="sweep YAML: base design point, swept parameters, objectives")
    p.add_argument("--out", help="report folder (default reports/<name>)")
    p.add_argument("--jobs", type=int, default=None, help="local worker processes (default: all cores)")
    p.add_argument("--max-points", type=int, default=MAX_POINTS, metavar="N",
                   help=f"refuse a sweep of more than N design points (default {MAX_POINTS:,})")
    p.add_argument("--fresh", action="store_true",
                   help="start over in --out: delete the results stored there (by this or another sweep)")
    p.add_argument("--reuse", action="store_true",
                   help="the spec of this sweep was edited: keep the points stored in --out that still belong to it")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster (e.g. tcp://10.0.0.5:8786) instead")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("rtl", parents=[overrides], help="write the Verilog of a design point's hardware")
    p.add_argument("config", help="design point YAML")
    p.add_argument("-o", "--output", help="Verilog file to write (default: stdout)")
    p.set_defaults(func=cmd_rtl)

    p = sub.add_parser("synth", parents=[overrides], help="synthesise a design point with Yosys (synth_xilinx), "
                                     "compare the counts with the resource model, and place and "
                                     "route it on ECP5 with nextpnr for an Fmax figure")
    p.add_argument("config", help="design point YAML (keep it small: synthesis is slow)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--fresh", action="store_true", help="ignore cached results in build/synth/ and build/pnr/")
    p.add_argument("--family", choices=("xcup", "xc7"), default="xcup",
                   help="synth_xilinx family: xcup (UltraScale+, default) or xc7 (7-series, whose "
                        "DSP48E1 mapping shows the DSP register and cascade use)")
    p.add_argument("--no-pnr", action="store_true",
                   help="skip the ECP5 place and route (and its Fmax figure)")
    p.add_argument("--force", action="store_true",
                   help=f"synthesise even above {SYNTH_LUT_LIMIT:,} estimated LUTs (slow)")
    p.add_argument("--speed-grade", type=int, choices=(6, 7, 8), default=6,
                   help="LFE5U-85F speed grade nextpnr times with: 6 (slowest, default), 7 or 8 "
                        "(fastest); reuses another grade's synth_ecp5 netlist of the same design")
    p.add_argument("--pnr-seeds", default="1", metavar="LIST",
                   help="nextpnr placer seeds, comma-separated (default 1, the seed of every recorded "
                        "figure); with more than one, prints each Fmax and the lowest, median and "
                        "highest: one seed's figure can be 5-11%% off the median")
    p.add_argument("--placer", choices=("heap", "static", "sa"), default="heap",
                   help="nextpnr placer: heap (default, every recorded figure), static (better on "
                        "large control-heavy netlists) or sa (slow)")
    p.add_argument("--router", choices=("router1", "router2"), default="router1",
                   help="nextpnr router: router1 (default, every recorded figure unless the docs say "
                        "otherwise) or router2 (nextpnr's newer congestion-driven router, for tops near "
                        "the device's size; it has timed worse where both finish); the same placement "
                        "and synth_ecp5 netlist")
    p.add_argument("--timeout", default="60", metavar="MINUTES",
                   help="minutes each Yosys or nextpnr run may take before it is stopped (default 60; "
                        "a whole top near an ECP5-85's size can take 2-3 hours to route)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("verify", parents=[overrides], help="run a design point's RTL under Verilator+cocotb and compare "
                                      "with the golden model and the simulator")
    p.add_argument("config", help="design point YAML with a small gemm workload")
    p.add_argument("--seeds", type=int, default=1, help="random data seeds to run (default 1)")
    p.add_argument("--stalls", action="store_true",
                   help="random valid/ready stalls on every stream (values must still match)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("engines", help="list the registered engines: workload kinds, presets and "
                                       "the metrics sweeps may use")
    p.add_argument("name", nargs="?", help="one engine (default: all)")
    p.set_defaults(func=cmd_engines)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"sparsim: error: {exc}", file=sys.stderr)
        return 2
    except _Fail as exc:
        print(f"sparsim: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sparsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped early (`sparsim ... | head`): not an error worth a traceback.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a tool killed by SIGPIPE reports


if __name__ == "__main__":
    sys.exit(main())
