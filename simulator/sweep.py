"""Design-space sweeps: a base design point, parameters varied over dotted key paths.

Spec (YAML)::

    name: quickstart
    base:                       # a design point (hardware preset + overrides, workload)
      hardware: {preset: u280}
      workload: {kind: llm, model: llama2-7b, phase: decode}
    sweep:
      grid:                     # Cartesian product
        hardware.chains: [96, 192, 384]
        workload.sparsity: ["4:16", "8:16", "16:16"]
      zip:                      # optional: groups whose lists vary together
        - {hardware.chain_len: [8, 16], hardware.min_n: [2, 4]}
    objectives: {tokens_per_s: max, dsps: min}

Each point is validated as a whole design point; a point that the compiler cannot map (for
example a layer that does not fit the buffers) is kept in the results as infeasible, with the
reason, instead of stopping the sweep.
"""

from __future__ import annotations

import copy
import itertools
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataflow.config import ConfigError, design_point_from_dict, load_yaml

_TOP_KEYS = {"name", "base", "sweep", "objectives", "description"}
_SWEEP_KEYS = {"grid", "zip"}


@dataclass
class SweepSpec:
    name: str
    base: dict
    grid: dict[str, list] = field(default_factory=dict)
    zips: list[dict[str, list]] = field(default_factory=list)
    objectives: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def parameters(self) -> list[str]:
        names = list(self.grid)
        for group in self.zips:
            names += list(group)
        return names


def _require_mapping(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a mapping, not {type(value).__name__}")
    return value


def _check_param_lists(group: dict, path: str) -> None:
    for key, values in group.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(path, f"parameter names must be dotted key paths, not {key!r}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}.{key}", "expected a non-empty list of values")


def parse_sweep(raw: Any) -> SweepSpec:
    raw = _require_mapping(raw, "")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown key")
    name = raw.get("name")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ConfigError("name", f"expected a plain name for the report folder, not {name!r}")
    if "base" not in raw:
        raise ConfigError("base", "required key is missing")
    base = _require_mapping(raw["base"], "base")
    sweep = _require_mapping(raw.get("sweep", {}) or {}, "sweep")
    unknown = set(sweep) - _SWEEP_KEYS
    if unknown:
        raise ConfigError(f"sweep.{sorted(unknown)[0]}", "unknown key")
    grid = _require_mapping(sweep.get("grid", {}) or {}, "sweep.grid")
    _check_param_lists(grid, "sweep.grid")
    zips_raw = sweep.get("zip", []) or []
    if isinstance(zips_raw, dict):
        zips_raw = [zips_raw]
    if not isinstance(zips_raw, list):
        raise ConfigError("sweep.zip", "expected a list of parameter groups")
    zips = []
    for i, group in enumerate(zips_raw):
        group = _require_mapping(group, f"sweep.zip[{i}]")
        _check_param_lists(group, f"sweep.zip[{i}]")
        lengths = {len(v) for v in group.values()}
        if len(lengths) > 1:
            raise ConfigError(f"sweep.zip[{i}]", f"lists must have equal lengths, not {sorted(lengths)}")
        zips.append(group)
    objectives = _require_mapping(raw.get("objectives", {}) or {}, "objectives")
    for key, sense in objectives.items():
        if sense not in ("min", "max"):
            raise ConfigError(f"objectives.{key}", f"expected 'min' or 'max', not {sense!r}")
    spec = SweepSpec(
        name=name, base=base, grid=grid, zips=zips, objectives=dict(objectives),
        description=str(raw.get("description", "")),
    )
    seen: set[str] = set()
    for param in spec.parameters:
        if param in seen:
            raise ConfigError(f"sweep.{param}", "parameter is swept twice")
        seen.add(param)
    # Validate the base and one point per value, so a typo fails before any work is done.
    for overrides in _probe_points(spec):
        point_from_overrides(spec.base, overrides)
    return spec


def load_sweep(path: str | Path) -> SweepSpec:
    try:
        return parse_sweep(load_yaml(path))
    except ConfigError as exc:
        raise exc.with_source(str(path)) from None


def set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for i, key in enumerate(keys[:-1]):
        nxt = node.get(key)
        if nxt is None:
            nxt = node[key] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(".".join(keys[: i + 1]), "is not a mapping, cannot set a key below it")
        node = nxt
    node[keys[-1]] = value


def point_from_overrides(base: dict, overrides: dict[str, Any]):
    tree = copy.deepcopy(base)
    for key, value in overrides.items():
        set_path(tree, key, value)
    try:
        return design_point_from_dict(tree)
    except ConfigError as exc:
        where = ", ".join(f"{k}={v}" for k, v in overrides.items())
        reason = f"{exc.reason} (at {where})" if where else exc.reason
        raise ConfigError(exc.path, reason) from None


def expand(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every point of the sweep as its overrides, in a stable order."""
    axes: list[list[dict[str, Any]]] = []
    for key, values in spec.grid.items():
        axes.append([{key: v} for v in values])
    for group in spec.zips:
        n = len(next(iter(group.values())))
        axes.append([{k: vs[i] for k, vs in group.items()} for i in range(n)])
    points = []
    for combo in itertools.product(*axes):
        merged: dict[str, Any] = {}
        for part in combo:
            merged.update(part)
        points.append(merged)
    return points


def _probe_points(spec: SweepSpec) -> list[dict[str, Any]]:
    probes: list[dict[str, Any]] = [{}]
    for key, values in spec.grid.items():
        probes += [{key: v} for v in values]
    for group in spec.zips:
        n = len(next(iter(group.values())))
        probes += [{k: vs[i] for k, vs in group.items()} for i in range(n)]
    return probes


def evaluate(base: dict, overrides: dict[str, Any]) -> dict[str, Any]:
    """Simulate one point; returns its row (parameters, then metrics)."""
    from simulator.dsp_chain import simulate

    point = point_from_overrides(base, overrides)
    row: dict[str, Any] = {k: _plain(v) for k, v in overrides.items()}
    hw = point.hardware
    row["dsps"] = hw.dsps
    try:
        result = simulate(point)
    except ConfigError as exc:
        row["feasible"] = False
        row["reason"] = str(exc)
        return row
    row["feasible"] = True
    row["reason"] = ""
    row.update({k: _plain(v) for k, v in result.to_dict().items()})
    return row


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    return v


def _evaluate_star(args: tuple[dict, dict]) -> dict[str, Any]:
    return evaluate(*args)


def run_sweep(spec: SweepSpec, *, jobs: int | None = None, progress: bool | None = None) -> list[dict]:
    """Evaluate every point on a local process pool; rows come back in spec order."""
    points = expand(spec)
    jobs = jobs or min(len(points), os.cpu_count() or 1)
    if progress is None:
        progress = sys.stderr.isatty()
    tasks = [(spec.base, overrides) for overrides in points]
    if jobs <= 1:
        iterator = map(_evaluate_star, tasks)
        return list(_with_progress(iterator, len(tasks), progress))
    chunk = max(1, len(tasks) // (jobs * 8))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        iterator = pool.map(_evaluate_star, tasks, chunksize=chunk)
        return list(_with_progress(iterator, len(tasks), progress))


def _with_progress(iterator, total: int, enabled: bool):
    if not enabled:
        return iterator
    from tqdm import tqdm

    return tqdm(iterator, total=total, unit="pt", desc="sweep", dynamic_ncols=True)
