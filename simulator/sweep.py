"""Design-space sweeps: a base design point, parameters varied over dotted key paths.

Spec (YAML)::

    name: quickstart
    base:                       # a design point (hardware preset + overrides, workload)
      hardware: {preset: u280}
      workload: {kind: llm, model: llama2-7b, phase: decode}
    sweep:
      grid:                     # Cartesian product; a value list or {range: [lo, hi, step]}
        hardware.chains: [96, 128, 160]
        workload.sparsity: ["4:16", "8:16", "16:16"]
      zip:                      # groups whose lists vary together
        - {hardware.chain_len: [8, 16], hardware.min_n: [2, 2]}
      sample: {n: 200, seed: 1} # optional: N distinct points drawn at random from the above
    constraints:                # drop points before they run
      within_device: true       # resource estimate within hardware.device (default true)
      max: {dsp: 4096}          # caps on estimated resources (dsp, lut, ff, bram36, uram)
    objectives: {dsp: min, tokens_per_s: max}   # metrics the points' engines declare; a list
                                                # of names takes each metric's direction

Points are evaluated on a local process pool (or a Dask cluster) and each finished point is
stored at once in ``points.jsonl`` under a hash of its resolved design point, so an interrupted
sweep resumes where it stopped. A point that the compiler cannot map (a layer that does not
fit the buffers) or that breaks a constraint is kept as infeasible, with the reason.
"""

from __future__ import annotations

import collections
import copy
import itertools
import json
import math
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from sparsim.dataflow import presets
from sparsim.dataflow.config import ConfigError, DesignPoint, describe, design_point_from_dict, load_yaml
from sparsim import engine as engines

from .store import ResultStore, exclusive, point_key

#: Design points a sweep runs unless the user raises the limit (``sparsim sweep --max-points``).
#: Sizes are counted from the spec before anything is expanded, so a mistyped range step or
#: a product of long lists is refused at once instead of filling memory.
MAX_POINTS = 100_000

_TOP_KEYS = {"name", "base", "sweep", "objectives", "constraints", "description"}
_SWEEP_KEYS = {"grid", "zip", "sample"}
_CONSTRAINT_KEYS = {"within_device", "max", "min"}


@dataclass
class SweepSpec:
    name: str
    base: dict
    grid: dict[str, list] = field(default_factory=dict)
    zips: list[dict[str, list]] = field(default_factory=list)
    sample: dict[str, int] | None = None
    within_device: bool = True
    limits_max: dict[str, float] = field(default_factory=dict)
    limits_min: dict[str, float] = field(default_factory=dict)
    objectives: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def parameters(self) -> list[str]:
        names = list(self.grid)
        for group in self.zips:
            names += list(group)
        return names

    @property
    def size(self) -> int:
        """Points in the full product (before sampling)."""
        n = 1
        for values in self.grid.values():
            n *= len(values)
        for group in self.zips:
            n *= len(next(iter(group.values())))
        return n

    def to_dict(self) -> dict:
        sweep: dict[str, Any] = {"grid": self.grid, "zip": self.zips}
        if self.sample:
            sweep["sample"] = self.sample
        return {
            "name": self.name,
            "description": self.description,
            "base": self.base,
            "sweep": sweep,
            "constraints": {"within_device": self.within_device, "max": self.limits_max,
                            "min": self.limits_min},
            "objectives": self.objectives,
        }


# ------------------------------------------------------------------------------------------
# Parsing


def _mapping(value: Any, path: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a mapping, not {describe(value)}")
    return value


def _unknown(keys: Iterable, allowed: set, prefix: str) -> None:
    extra = sorted(set(keys) - allowed, key=str)
    if extra:
        raise ConfigError(f"{prefix}{extra[0]}", "unknown key")


def _values(raw: Any, path: str, limit: int) -> list:
    if isinstance(raw, dict):
        _unknown(raw, {"range"}, f"{path}.")
        r = raw.get("range")
        if not (isinstance(r, list) and len(r) in (2, 3)
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in r)):
            raise ConfigError(f"{path}.range", "expected [low, high] or [low, high, step] numbers")
        text = f"[{', '.join(map(str, r))}]"
        if not all(math.isfinite(x) for x in r):
            raise ConfigError(f"{path}.range", f"bounds and step must be finite numbers, not {text}")
        lo, hi = r[0], r[1]
        step = r[2] if len(r) == 3 else 1
        if step <= 0 or hi < lo:
            raise ConfigError(f"{path}.range", f"needs low <= high and step > 0, not {text}")
        steps = (hi - lo) / step  # counted before any value is made
        if not steps < limit:
            count = "too many" if not math.isfinite(steps) else f"{math.floor(steps + 1e-9) + 1:,}"
            raise ConfigError(f"{path}.range", f"{text} gives {count} values, above the limit of "
                                               f"{limit:,} design points (raise it with --max-points)")
        count = int(math.floor(steps + 1e-9)) + 1
        vals = [lo + i * step for i in range(count)]
        return [int(v) if all(isinstance(x, int) for x in r) else float(v) for v in vals]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(path, "expected a non-empty list of values or {range: [low, high, step]}")
    return raw


def _param_group(raw: Any, path: str, limit: int) -> dict[str, list]:
    group = _mapping(raw, path)
    out = {}
    for key, values in group.items():
        if not isinstance(key, str) or not key or key.startswith(".") or key.endswith("."):
            raise ConfigError(path, f"parameter names must be dotted key paths, not {key!r}")
        out[key] = _values(values, f"{path}.{key}", limit)
    return out


def _limits(raw: Any, path: str) -> dict[str, float]:
    limits = _mapping(raw, path)
    for key, value in limits.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
            raise ConfigError(f"{path}.{key}", f"expected a finite number >= 0, not {describe(value)}")
    return dict(limits)


def parse_sweep(raw: Any, max_points: int = MAX_POINTS) -> SweepSpec:
    """A validated sweep spec; refused if it would run more than ``max_points`` points."""
    raw = _mapping(raw, "")
    _unknown(raw, _TOP_KEYS, "")
    name = raw.get("name")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ConfigError("name", f"expected a plain name for the report folder, not {describe(name)}")
    if "base" not in raw:
        raise ConfigError("base", "required key is missing")
    base = _mapping(raw["base"], "base")
    sweep = _mapping(raw.get("sweep"), "sweep")
    _unknown(sweep, _SWEEP_KEYS, "sweep.")
    grid = _param_group(sweep.get("grid"), "sweep.grid", max_points)
    zips_raw = sweep.get("zip") or []
    if isinstance(zips_raw, dict):
        zips_raw = [zips_raw]
    if not isinstance(zips_raw, list):
        raise ConfigError("sweep.zip", "expected a list of parameter groups")
    zips = []
    for i, group in enumerate(zips_raw):
        group = _param_group(group, f"sweep.zip[{i}]", max_points)
        lengths = sorted({len(v) for v in group.values()})
        if len(lengths) > 1:
            raise ConfigError(f"sweep.zip[{i}]", f"lists must have equal lengths, not {lengths}")
        if group:
            zips.append(group)
    sample = None
    if sweep.get("sample") is not None:
        sample = _mapping(sweep["sample"], "sweep.sample")
        _unknown(sample, {"n", "seed"}, "sweep.sample.")
        for key in ("n", "seed"):
            v = sample.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if key == "n" else 0):
                raise ConfigError(f"sweep.sample.{key}", f"expected an integer >= {1 if key == 'n' else 0}, not {describe(v)}")
    constraints = _mapping(raw.get("constraints"), "constraints")
    _unknown(constraints, _CONSTRAINT_KEYS, "constraints.")
    within = constraints.get("within_device", True)
    if not isinstance(within, bool):
        raise ConfigError("constraints.within_device", f"expected true or false, not {describe(within)}")
    objectives = raw.get("objectives")
    if isinstance(objectives, list):  # names only: each metric's declared direction
        for i, key in enumerate(objectives):
            if not isinstance(key, str):
                raise ConfigError(f"objectives[{i}]", f"expected a metric name, not {describe(key)}")
        objectives = dict.fromkeys(objectives)
    objectives = _mapping(objectives, "objectives")
    for key, sense in objectives.items():
        if sense not in ("min", "max", None):
            raise ConfigError(f"objectives.{key}", f"expected 'min' or 'max', not {describe(sense)}")
    spec = SweepSpec(
        name=name, base=base, grid=grid, zips=zips, sample=sample, within_device=within,
        limits_max=_limits(constraints.get("max"), "constraints.max"),
        limits_min=_limits(constraints.get("min"), "constraints.min"),
        objectives=dict(objectives), description=str(raw.get("description") or ""),
    )
    runs = min(spec.size, sample["n"]) if sample else spec.size
    if runs > max_points:
        raise ConfigError("sweep", f"{runs:,} design points, above the limit of {max_points:,} "
                                   f"(draw some with sweep.sample, or raise the limit with --max-points)")
    if spec.size >= 1 << 62:
        raise ConfigError("sweep", f"{spec.size:.3g} combinations are too many to sample from")
    seen: set[str] = set()
    for param in spec.parameters:
        if param in seen:
            raise ConfigError(f"sweep.{param}", "parameter is swept twice")
        seen.add(param)
    # Validate the base and every single value, so a typo fails before any work is done.
    kinds = {point_from_overrides(spec.base, overrides).hardware.engine
             for overrides in _probe_points(spec)}
    for name in sorted(kinds):
        _check_metrics(spec, engines.get(name))
    return spec


def _check_metrics(spec: SweepSpec, eng: engines.Engine) -> None:
    """Objectives must be metrics of ``eng``; constraints, metrics known before a point runs."""
    for key, sense in spec.objectives.items():
        metric = eng.metric(key)
        if metric is None:
            known = ", ".join(m.name for m in eng.all_metrics)
            raise ConfigError(f"objectives.{key}", f"unknown metric of engine {eng.name}; known: {known}")
        if sense is None:
            spec.objectives[key] = metric.direction
    estimates = [m.name for m in eng.all_metrics if m.before_run]
    for where, limits in (("max", spec.limits_max), ("min", spec.limits_min)):
        for key in limits:
            if key not in estimates:
                raise ConfigError(f"constraints.{where}.{key}", f"unknown resource of engine {eng.name}; "
                                                                f"known: {', '.join(estimates)}")


def load_sweep(path: str | Path, max_points: int = MAX_POINTS) -> SweepSpec:
    try:
        return parse_sweep(load_yaml(path), max_points)
    except ConfigError as exc:
        raise exc.with_source(str(path)) from None


# ------------------------------------------------------------------------------------------
# Points


def set_path(tree: dict, dotted: str, value: Any) -> None:
    """Set ``dotted`` (keys, and list indices as numbers: ``workload.layers.0.rows``) in
    ``tree``; missing mappings on the way are created, list items must exist."""
    keys = dotted.split(".")
    if not all(keys):
        raise ConfigError(dotted, "a key path has no empty parts")
    node: Any = tree
    for i, key in enumerate(keys):
        here = ".".join(keys[:i])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(here, f"is a list of {len(node)} item{'s' if len(node) != 1 else ''}: the next part must be an "
                                        f"index from 0 to {len(node) - 1}, not {key!r}")
            key = int(key)
        elif not isinstance(node, dict):
            raise ConfigError(here, "is not a mapping or a list, cannot set a key below it")
        if i == len(keys) - 1:
            node[key] = copy.deepcopy(value)
            return
        if isinstance(node, dict) and node.get(key) is None:
            node[key] = {}
        node = node[key]


def point_from_overrides(base: dict, overrides: dict[str, Any]) -> DesignPoint:
    tree = copy.deepcopy(base)
    for key, value in overrides.items():
        set_path(tree, key, value)
    try:
        return design_point_from_dict(tree)
    except ConfigError as exc:
        where = ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items())
        raise ConfigError(exc.path, f"{exc.reason} (at {where})" if where else exc.reason) from None


def _axes(spec: SweepSpec) -> list[list[dict[str, Any]]]:
    axes = [[{key: v} for v in values] for key, values in spec.grid.items()]
    for group in spec.zips:
        n = len(next(iter(group.values())))
        axes.append([{k: vs[i] for k, vs in group.items()} for i in range(n)])
    return axes


def _point_at(axes: list[list[dict]], index: int) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for axis in reversed(axes):
        index, i = divmod(index, len(axis))
        merged = {**axis[i], **merged}
    return {k: merged[k] for axis in axes for k in axis[0]}


def expand(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every point of the sweep as its overrides, in a stable order (sampled if asked)."""
    axes = _axes(spec)
    total = spec.size
    if spec.sample and spec.sample["n"] < total:
        rng = np.random.default_rng(spec.sample.get("seed", 0))
        picks = np.sort(rng.choice(total, size=spec.sample["n"], replace=False))
        return [_point_at(axes, int(i)) for i in picks]
    points = []
    for combo in itertools.product(*axes):
        merged: dict[str, Any] = {}
        for part in combo:
            merged.update(part)
        points.append(merged)
    return points


def _probe_points(spec: SweepSpec) -> list[dict[str, Any]]:
    probes: list[dict[str, Any]] = [{}]
    for axis in _axes(spec):
        probes += axis
    return probes


@dataclass
class Task:
    index: int
    key: str
    params: dict[str, Any]
    resolved: dict  # DesignPoint.model_dump(mode="json")


def plan_points(spec: SweepSpec) -> tuple[list[Task], dict[str, dict]]:
    """Resolve every point; returns the tasks to simulate and the rows already decided by
    constraints (keyed like the store)."""
    tasks, decided = [], {}
    for i, overrides in enumerate(expand(spec)):
        point = point_from_overrides(spec.base, overrides)
        resolved = point.model_dump(mode="json")
        key = point_key(resolved)
        params = {k: _plain(v) for k, v in overrides.items()}
        res, reason = pre_check(point)
        if not spec.within_device:
            reason = ""
        for name, cap in spec.limits_max.items():
            if not reason and res[name] > cap:
                reason = f"{name} {res[name]:,} is over the limit {cap:,}"
        for name, floor in spec.limits_min.items():
            if not reason and res[name] < floor:
                reason = f"{name} {res[name]:,} is under the limit {floor:,}"
        tasks.append(Task(i, key, params, resolved))
        if reason:
            decided[key] = {"engine": point.hardware.engine, "feasible": False, "reason": reason, **res}
    return tasks, decided


def _plain(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return v.item() if hasattr(v, "item") else v


# ------------------------------------------------------------------------------------------
# Evaluation (runs in workers)


def pre_check(point: DesignPoint) -> tuple[dict[str, Any], str]:
    """Resource estimate and, if the point exceeds its device, the reason (else '')."""
    row = engines.of(point.hardware).resources(point.hardware)
    over = presets.over_budget(row, point.hardware.device)
    reason = ""
    if over:
        reason = "over the device budget: " + ", ".join(
            f"{name} {row[name]:,}" for name in over
        ) + f" on {point.hardware.device}"
    return row, reason


def evaluate_resolved(resolved: dict) -> dict[str, Any]:
    """Metrics of one resolved design point (a plain dict, so it crosses process boundaries).

    A point the compiler cannot map is infeasible, with the reason; any other exception is a
    bug in an engine, and becomes a row with ``failed: true`` and the error instead of ending
    the whole sweep. Failed rows are not stored, so a rerun tries those points again.
    """
    row: dict[str, Any] = {"engine": resolved.get("hardware", {}).get("engine")}
    try:
        point = design_point_from_dict(resolved)
        res, _ = pre_check(point)
        row.update(res)
        metrics = engines.of(point.hardware).evaluate(point).to_dict()
    except ConfigError as exc:
        row.update(feasible=False, reason=str(exc))
        return row
    except Exception as exc:  # noqa: BLE001 -- one point's bug must not abort the sweep
        first = str(exc).strip().splitlines()
        row.update(feasible=False, failed=True,
                   reason=f"failed: {type(exc).__name__}" + (f": {first[0]}" if first else ""))
        return row
    row.update(feasible=True, reason="")
    row.update({k: _plain(v) for k, v in metrics.items()})
    return row


def evaluate_batch(batch: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    return [(key, evaluate_resolved(resolved)) for key, resolved in batch]


# ------------------------------------------------------------------------------------------
# Running


class Progress:
    """A progress bar on a terminal, otherwise a JSON line on stderr every few seconds."""

    def __init__(self, total: int, done: int, enabled: bool | None = None, every_s: float = 5.0):
        self.total, self.done, self.start_done = total, done, done
        self.t0 = time.monotonic()
        self.last = self.t0
        self.every_s = every_s
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="pt", desc="sweep", dynamic_ncols=True)
        else:
            self._log("start")

    def _log(self, event: str) -> None:
        elapsed = time.monotonic() - self.t0
        rate = (self.done - self.start_done) / elapsed * 60 if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = left / (rate / 60) if rate > 0 else None
        rec = {"event": event, "done": self.done, "total": self.total,
               "points_per_min": round(rate, 1), "eta_s": None if eta is None else round(eta, 1)}
        print(json.dumps(rec), file=sys.stderr, flush=True)

    def advance(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            self._log("progress")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            self._log("done")


def _batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


#: How often a local worker checks that the driver still lives, seconds.
PARENT_CHECK_S = 0.5


def _exit_with_parent(parent: int) -> None:
    """Worker initialiser: end this worker once the driver is gone. A driver killed with
    SIGKILL cannot shut its pool down, and its workers would otherwise keep running
    (holding the store's folder) until their queue ran dry."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _run_local(batches: list, jobs: int, sink: Callable[[list], None]) -> None:
    if jobs <= 1:
        for batch in batches:
            sink(evaluate_batch(batch))
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_exit_with_parent,
                             initargs=(os.getpid(),)) as pool:
        pending = set()
        queue = iter(batches)
        for batch in itertools.islice(queue, jobs * 4):
            pending.add(pool.submit(evaluate_batch, batch))
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                sink(fut.result())
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(evaluate_batch, nxt))


#: Seconds to wait for a Dask scheduler to answer before giving up.
CONNECT_TIMEOUT_S = 10


def connect(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``; a malformed or unreachable
    address is a one-line :class:`ConfigError` naming ``--scheduler`` (after at most
    :data:`CONNECT_TIMEOUT_S` seconds)."""
    import socket

    from distributed import Client
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, location = parse_address(address, strict=True)
        if scheme not in backends:
            raise ValueError(scheme)
        host, port = parse_host_port(location) if scheme in ("tcp", "tls") else (None, None)
    except ValueError:
        raise ConfigError("--scheduler", f"expected an address such as tcp://10.0.0.5:8786, "
                                         f"not {address!r}") from None

    def unreachable(reason: str) -> ConfigError:
        return ConfigError("--scheduler", f"cannot reach a Dask scheduler at {address}: {reason}")

    if host is not None:
        # A plain TCP connect first: it fails fast and cleanly, where a failed Client leaves
        # an object whose finaliser waits for a loop and prints its own error.
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except (OSError, OverflowError) as exc:
            raise unreachable(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__) from None
    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except Exception as exc:  # noqa: BLE001 -- whatever a peer that is no scheduler makes it raise
        raise unreachable(str(exc).strip().splitlines()[0][:120] if str(exc).strip()
                          else type(exc).__name__) from None


def _run_dask(batches: list, scheduler: Any, sink: Callable[[list], None]) -> None:
    """Run on ``scheduler``: an address (connected and closed here) or a connected Client."""
    import contextlib

    from distributed import as_completed

    owned = isinstance(scheduler, str)
    with connect(scheduler) if owned else contextlib.nullcontext(scheduler) as client:
        futures = client.map(evaluate_batch, batches, pure=False)
        for fut in as_completed(futures):
            sink(fut.result())


@dataclass
class SweepRun:
    """A finished sweep. Every point of the spec is counted once: ``reused`` (stored by an
    earlier run), ``dropped`` (over the device budget or a constraint, not simulated),
    ``computed`` (simulated now) or ``failed`` (an exception; not stored, retried next run)."""

    rows: list[dict]
    computed: int
    reused: int
    seconds: float
    dropped: int = 0
    failed: int = 0


def run_sweep(
    spec: SweepSpec,
    out_dir: Path,
    *,
    jobs: int | None = None,
    scheduler: Any = None,
    progress: bool | None = None,
    batch_size: int | None = None,
) -> SweepRun:
    """Evaluate every point not already in ``out_dir``'s store; rows come back in spec order."""
    t0 = time.perf_counter()
    tasks, decided = plan_points(spec)
    with exclusive(out_dir):  # held until the rows are read back from the store
        return _run(spec, out_dir, tasks, decided, t0, jobs=jobs, scheduler=scheduler,
                    progress=progress, batch_size=batch_size)


def _run(spec: SweepSpec, out_dir: Path, tasks: list[Task], decided: dict[str, dict], t0: float, *,
         jobs: int | None, scheduler: Any, progress: bool | None, batch_size: int | None) -> SweepRun:
    store = ResultStore(out_dir)
    # A dropped point is decided by the plan on every run, stored or not: it is never "reused".
    dropped = sum(1 for t in tasks if t.key in decided)
    reused = sum(1 for t in tasks if t.key in store and t.key not in decided)
    for key, row in decided.items():
        store.add(key, row)
    # Two points of a spec may resolve to the same design point: simulate it once, count both.
    uses = collections.Counter(t.key for t in tasks if t.key not in store)
    todo = list({t.key: (t.key, t.resolved) for t in tasks if t.key in uses}.values())
    jobs = jobs or os.cpu_count() or 1
    size = batch_size or max(1, min(16, len(todo) // (jobs * 4) or 1))
    bar = Progress(total=len(tasks), done=reused + dropped, enabled=progress)
    computed = failed = 0
    failures: dict[str, dict] = {}

    def sink(results: list[tuple[str, dict]]) -> None:
        nonlocal computed, failed
        for key, row in results:
            if row.get("failed"):
                failures[key] = row
                failed += uses[key]
            else:
                store.add(key, row)
                computed += uses[key]
            bar.advance(uses[key])

    try:
        if scheduler:
            _run_dask(_batches(todo, size), scheduler, sink)
        else:
            _run_local(_batches(todo, size), jobs, sink)
    finally:
        bar.close()
        store.close()
    rows = []
    for t in tasks:
        rows.append({**t.params, **(store.get(t.key) or failures[t.key])})
    return SweepRun(rows=rows, computed=computed, reused=reused, dropped=dropped, failed=failed,
                    seconds=time.perf_counter() - t0)
