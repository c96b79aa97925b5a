"""The engine seam: one :class:`Engine` object per accelerator family, and the registry.

Everything outside an engine's own files (the CLI, configs, sweeps, the store, reports, Verilog
export, synthesis and the Verilator harness) reaches an engine only through its ``Engine``
object, found by name with :func:`get`. Built-in and third-party engines register through the
``sparsim.engines`` entry-point group (``name = "package.module:ENGINE"``, see
docs/engines.md); :func:`register` adds one at run time (tests, notebooks).

References to heavy code (the Numba simulator, Amaranth RTL) are :func:`lazy`, so loading a
config or running ``sparsim simulate`` never imports Amaranth.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Literal, Mapping

#: Entry-point group through which packages register engines.
ENTRY_POINT_GROUP = "sparsim.engines"


@dataclass(frozen=True)
class Metric:
    """One number a design point produces: a column of results.csv, an objective or a constraint.

    ``direction`` says which way is better (what ``min``/``max`` objectives usually pick);
    ``before_run`` marks estimates known before simulating (resources), the only metrics sweep
    constraints may cap, since constraints drop points before they run.
    """

    name: str
    unit: str
    direction: Literal["min", "max"]
    label: str
    before_run: bool = False

    @property
    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit not in ("", "count") else self.label

    def format(self, value: Any) -> str:
        """``value`` for a terminal table, in this metric's unit."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        if self.unit == "fraction":
            return f"{value:.1%}"
        text = f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"
        return f"{text} {self.unit}" if self.unit and self.unit != "count" else text


#: FPGA resources every engine estimates (UltraScale+ primitives); device budgets in
#: dataflow/presets.py use the same names.
RESOURCE_METRICS = (
    Metric("dsp", "count", "min", "DSP48E2 (estimated)", before_run=True),
    Metric("lut", "count", "min", "LUT (estimated)", before_run=True),
    Metric("ff", "count", "min", "FF (estimated)", before_run=True),
    Metric("bram36", "count", "min", "BRAM36 (estimated)", before_run=True),
    Metric("uram", "count", "min", "URAM (estimated)", before_run=True),
)


def lazy(target: str) -> Callable[..., Any]:
    """A callable standing for ``"module:attribute"``, imported on its first call."""
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ValueError(f"expected 'module:attribute', not {target!r}")
    resolved: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not resolved:
            resolved.append(getattr(importlib.import_module(module), attr))
        return resolved[0](*args, **kwargs)

    call.__name__ = attr
    call.__qualname__ = target
    return call


@dataclass(frozen=True)
class Engine:
    """What sparsim needs from one accelerator family.

    - ``hardware``: its pydantic hardware model, a subclass of
      :class:`sparsim.dataflow.config.HardwareConfig` with ``engine: Literal[name]``.
    - ``workloads``: the workload models it accepts (subclasses of
      :class:`sparsim.dataflow.config.WorkloadConfig`, each with its own ``kind: Literal[...]``).
    - ``presets``: named hardware settings (``hardware: {preset: NAME}``).
    - ``metrics``: every metric its results carry, beyond :data:`RESOURCE_METRICS`;
      ``headline`` names the few that ``sparsim simulate`` prints and report tables show.
    - ``simulate(point) -> sparsim.simulator.results.RawCounts``: compile and time a design point
      (raise ``ConfigError`` when the workload cannot be mapped); :meth:`evaluate` derives the
      metrics from these counts, the same way for every engine.
    - ``resources(hardware) -> dict``: estimated counts named as :data:`RESOURCE_METRICS`.
    - ``describe(hardware) -> str``: one line naming the engine and its main parameters.
    - ``breakdown``: what the ``op_cycles_*`` columns break the time down by ("operator",
      "pass", ...).
    - RTL (optional for an engine that has none yet): ``rtl_top(hardware)`` the Amaranth top
      component; ``rtl_signature(hardware)`` its ``wiring.Signature`` (``sparsim.rtl.shell``'s top
      signature with the engine's payloads), from which the cocotb port map is derived;
      ``compile(point, with_data=True)`` a Program with its memory image for the bench;
      ``program_cycles(program)`` the simulator's cycle count of a compiled Program;
      ``bench_kinds`` the workload kinds small enough to run on the RTL (``sparsim verify``);
      ``rtl_resources(hardware)`` the counts of the RTL as built, where they differ from
      ``resources`` (which sweeps use), for ``sparsim synth`` to compare with synthesis;
      ``rtl_check(program)`` raises ``ConfigError`` when the RTL as built cannot run a compiled
      Program that the simulator can (a capacity of the hardware that is not a config key);
      ``read_beats`` whether its top's ``rd_data`` takes the memory's beats of ``BW`` bytes
      (``StripedMemory(beats=True)``) instead of whole records.
    """

    name: str
    hardware: type
    workloads: tuple[type, ...]
    presets: Mapping[str, Mapping[str, Any]]
    metrics: tuple[Metric, ...]
    simulate: Callable[[Any], Any]
    resources: Callable[[Any], dict[str, float]]
    describe: Callable[[Any], str]
    headline: tuple[str, ...] = ("cycles",)
    breakdown: str = "operator"
    rtl_top: Callable[[Any], Any] | None = None
    rtl_signature: Callable[[Any], Any] | None = None
    compile: Callable[..., Any] | None = None
    program_cycles: Callable[[Any], int] | None = None
    bench_kinds: tuple[str, ...] = ()
    rtl_resources: Callable[[Any], dict[str, float]] | None = None
    rtl_check: Callable[[Any], None] | None = None
    read_beats: bool = False
    _kinds: dict[str, type] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tag = self.hardware.model_fields.get("engine")
        if tag is None or tag.default != self.name:
            raise ValueError(f"engine {self.name!r}: its hardware model needs engine: Literal[{self.name!r}] "
                             f"= {self.name!r}")
        for model in self.workloads:
            kind = model.model_fields.get("kind")
            if kind is None or getattr(kind.annotation, "__args__", None) is None:
                raise ValueError(f"engine {self.name!r}: workload model {model.__name__} needs kind: Literal[...]")
            for value in kind.annotation.__args__:
                self._kinds[value] = model
        names = [m.name for m in self.all_metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"engine {self.name!r}: metric names repeat")
        unknown = [n for n in self.headline if n not in names]
        if unknown:
            raise ValueError(f"engine {self.name!r}: headline names undeclared metrics {unknown}")

    @property
    def kinds(self) -> dict[str, type]:
        """Workload kind -> workload model."""
        return dict(self._kinds)

    @property
    def all_metrics(self) -> tuple[Metric, ...]:
        return self.metrics + RESOURCE_METRICS

    def evaluate(self, point: Any) -> Any:
        """``sparsim.simulator.results.Result`` of a design point: its raw counts, derived."""
        from sparsim.simulator.results import derive

        return derive(self.simulate(point), point.energy)

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.all_metrics if m.name == name), None)

    @property
    def has_rtl(self) -> bool:
        return self.rtl_top is not None


_REGISTRY: dict[str, Engine] = {}
_DISCOVERED = False


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    found = entry_points(group=ENTRY_POINT_GROUP)
    if not found:
        # An install made before pyproject.toml declared the group: say how to fix it.
        raise RuntimeError(f"no {ENTRY_POINT_GROUP!r} entry points are installed; reinstall sparsim "
                           "(make .venv/.installed, or pip install --no-deps -e .)")
    for ep in found:
        eng = ep.load()
        if not isinstance(eng, Engine) or eng.name != ep.name:
            raise TypeError(f"entry point {ep.name} = {ep.value} is not the Engine named {ep.name!r}")
        _REGISTRY.setdefault(eng.name, eng)
    _DISCOVERED = True


def register(eng: Engine) -> Engine:
    """Add ``eng`` (replacing an engine of the same name); returns it."""
    _discover()
    _REGISTRY[eng.name] = eng
    return eng


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get(name: str) -> Engine:
    """The engine called ``name``; ``KeyError`` (with the known names) if there is none."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def of(hardware: Any) -> Engine:
    """The engine of a validated hardware model."""
    return get(hardware.engine)
