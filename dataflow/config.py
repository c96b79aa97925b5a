"""Typed, validated configuration: hardware, workload and design points, loaded from YAML.

Configs are built from YAML at the edge; everything inside sparsim receives these objects, never
raw dicts. Any bad value raises :class:`ConfigError`, whose message is one line naming the key
path and the reason, e.g. ``hardware.chain_len: must be a power of two, not 6``. Engines bring
their own hardware and workload models (subclasses of :class:`HardwareConfig` and
:class:`WorkloadConfig`, registered through :mod:`sparsim.engine`).
"""

from __future__ import annotations

import copy
import functools
import re
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, create_model,
                      field_validator, model_validator)

from sparsim import engine as engines

from . import presets

if TYPE_CHECKING:
    from sparsim.engine import Engine


class ConfigError(ValueError):
    """A configuration problem: ``path`` is the dotted key path, ``reason`` says what is wrong."""

    def __init__(self, path: str, reason: str, source: str | None = None):
        self.path = path
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        message = f"{where}{path}: {reason}" if path else f"{where}{reason}"
        # One line whatever the user's keys and values hold: escape line breaks and controls.
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in message))

    def with_source(self, source: str) -> "ConfigError":
        return ConfigError(self.path, self.reason, source)

    def under(self, prefix: str) -> "ConfigError":
        path = f"{prefix}.{self.path}" if self.path else prefix
        return ConfigError(path, self.reason, self.source)


def describe(value: Any) -> str:
    """A value as the user wrote it in YAML, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


def pow2_in(v: int, lo: int | None = None, hi: int | None = None) -> int:
    """``v`` if it is a power of two of at least ``lo`` and at most ``hi`` (``hi`` only with
    ``lo``); else the ``ValueError`` a field validator raises, which names the range."""
    if is_pow2(v) and (lo is None or v >= lo) and (hi is None or v <= hi):
        return v
    if lo is not None and hi is not None:
        raise ValueError(f"must be a power of two from {lo} to {hi}, not {v}")
    if lo is not None:
        raise ValueError(f"must be a power of two >= {lo}, not {v}")
    raise ValueError(f"must be a power of two, not {v}")


def _numeric(annotation: Any) -> bool:
    """Whether a field of this type takes numbers and not booleans."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(_numeric(a) for a in args) and bool not in args
    return False


class _Model(BaseModel):
    # Infinity and NaN are never a size, a clock or an energy: refuse them in every float field.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # Pydantic's lax mode reads true as 1, so `chains: true` would silently mean one chain.
        if isinstance(v, bool) and info.field_name and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number, not {describe(v)}")
        return v


# --------------------------------------------------------------------------------------------
# Hardware


class MemoryConfig(_Model):
    """Off-chip memory: ``channels`` × ``bytes_per_cycle`` per accelerator cycle, fixed latency."""

    # Upper bounds far above any real memory system (HBM2: 32 channels of 32 B), so that an
    # absurd value is refused instead of producing meaningless times.
    channels: int = Field(gt=0, le=1024, description="independent channels (striped)")
    bytes_per_cycle: int = Field(gt=0, le=1 << 16, description="bytes per channel per accelerator cycle")
    latency_cycles: int = Field(ge=1, le=1 << 20, description="request-to-first-data latency in cycles")

    @property
    def bandwidth_bytes_per_cycle(self) -> int:
        return self.channels * self.bytes_per_cycle


class HardwareConfig(_Model):
    """What every engine's hardware model has; each engine subclasses it with
    ``engine: Literal["<name>"] = "<name>"`` and its own parameters (see docs/engines.md)."""

    engine: str = Field(description="which engine (the discriminator of the hardware models)")
    device: str | None = Field(default=None, description="FPGA device preset for budgets")
    # No FPGA fabric clock reaches 1 GHz; a figure outside 1-1000 MHz is a unit slip (Hz, GHz)
    # that would make every time and throughput meaningless.
    clock_mhz: float = Field(ge=1, le=1000, description="accelerator clock, MHz (1 to 1000)")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str | None) -> str | None:
        if v is not None and v not in presets.DEVICES:
            raise ValueError(f"unknown device {v!r}; known: {', '.join(sorted(presets.DEVICES))}")
        return v

    # For the engines that have an ``acc_bits`` field (check_fields=False: the base has none):
    # whole bytes, in the widths the RTL's accumulators and output banks are built for.
    @field_validator("acc_bits", check_fields=False)
    @classmethod
    def _acc_bits(cls, v: int) -> int:
        if v % 8 or not 16 <= v <= 48:
            raise ValueError(f"must be a multiple of 8 from 16 to 48, not {v}")
        return v


# --------------------------------------------------------------------------------------------
# Sparsity and workloads

_NM_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


class NM(_Model):
    """An N:M setting: at most ``n`` kept weights in every group of ``m`` along the reduction."""

    n: int
    m: int

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, v: Any) -> Any:
        if isinstance(v, str):
            match = _NM_RE.match(v)
            if not match:
                raise ValueError(f"expected 'N:M' such as '2:8', not {v!r}")
            return {"n": int(match.group(1)), "m": int(match.group(2))}
        if isinstance(v, int) and not isinstance(v, bool):
            raise ValueError(
                f"expected 'N:M' in quotes such as '8:16', not the number {v} "
                "(YAML reads an unquoted 8:16 as the base-60 number 496)"
            )
        return v

    @model_validator(mode="after")
    def _check(self) -> "NM":
        if not is_pow2(self.m):
            raise ValueError(f"M must be a power of two, not {self.m}")
        if self.n > self.m:
            raise ValueError(f"N must not exceed M, not {self.n}:{self.m}")
        if self.n < 1:
            raise ValueError(f"N must be at least 1, not {self.n}")
        return self

    @property
    def dense(self) -> bool:
        return self.n == self.m

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


#: Largest layer dimension, token count or repeat count: 16 Mi, far above any model (LLaMA2's
#: largest matrix dimension is 32,000). Compilers still estimate their memory before allocating.
MAX_DIM = 1 << 24


class GemmLayer(_Model):
    """One linear layer Y[T, R] = X[T, K] · W[R, K]^T."""

    name: str = "layer"
    rows: int = Field(gt=0, le=MAX_DIM, description="output features R")
    k: int = Field(gt=0, le=MAX_DIM, description="reduction length K (input features)")
    tokens: int = Field(default=1, gt=0, le=MAX_DIM, description="tokens T (1 = GEMV)")
    sparsity: NM
    weight_bits: Literal[4, 8] = 8
    repeat: int = Field(default=1, gt=0, le=MAX_DIM, description="identical instances (for timing only)")


class WorkloadConfig(_Model):
    """What every workload model has: its ``kind`` (a ``Literal``), which engines accept by
    listing the model in their ``Engine.workloads``."""

    kind: str


class GemmWorkload(WorkloadConfig):
    """Explicit linear layers."""

    kind: Literal["gemm"]
    layers: list[GemmLayer] = Field(min_length=1)


LLM_OPERATORS = ("q", "k", "v", "o", "gate", "up", "down", "fc1", "fc2", "lm_head")


class LlmWorkload(WorkloadConfig):
    """A built-in LLM (see dataflow/workloads.py) in decode or prefill."""

    kind: Literal["llm"]
    model: Literal["llama2-7b", "opt-6.7b"]
    phase: Literal["decode", "prefill"] = "decode"
    context: int = Field(default=512, gt=0, le=MAX_DIM, description="context length L (tokens in KV cache)")
    tokens: int = Field(default=128, gt=0, le=MAX_DIM, description="prefill length T (prefill only)")
    weight_bits: Literal[4, 8] = 4
    sparsity: NM = Field(default_factory=lambda: NM(n=16, m=16))
    per_operator: dict[str, NM] = Field(default_factory=dict, description="N:M per operator name")
    per_operator_bits: dict[str, Literal[4, 8]] = Field(default_factory=dict)
    layers: int | None = Field(default=None, gt=0, description="transformer layers (default all)")

    @field_validator("per_operator", "per_operator_bits")
    @classmethod
    def _ops(cls, v: dict) -> dict:
        for name in v:
            if name not in LLM_OPERATORS:
                raise ValueError(f"unknown operator {name!r}; known: {', '.join(LLM_OPERATORS)}")
        return v

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: int | None, info: ValidationInfo) -> int | None:
        from .workloads import MODELS

        model = MODELS.get(info.data.get("model"))  # type: ignore[arg-type]
        if v is not None and model is not None and v > model.layers:
            raise ValueError(f"{info.data['model']} has {model.layers} layers, not {v}")
        return v


class EnergyTable(_Model):
    """Per-event energies (pJ) and static power (W); defaults and sources in simulator/energy.py."""

    # Upper bounds a thousand times above any published figure: larger values are unit
    # slips, and near the float limit they would overflow the energy to infinity.
    mac_pj: float = Field(default=1.0, ge=0, le=1e4, description="one multiply-accumulate")
    onchip_byte_pj: float = Field(default=0.6, ge=0, le=1e4, description="one byte read or written in an on-chip buffer")
    offchip_byte_pj: float = Field(default=31.0, ge=0, le=1e5, description="one byte moved to or from off-chip memory")
    static_w: float = Field(default=20.0, ge=0, le=1e4, description="static power of the device, W")


class DesignPoint(_Model):
    """A hardware configuration, the workload to run on it, and the energy table to cost it.

    Build one with :func:`design_point_from_dict`: it picks the engine from ``hardware.engine``
    (or the preset) and validates against that engine's hardware model and the workload model
    of ``workload.kind`` (:func:`point_model`), so every instance is of such a subclass.
    """

    hardware: HardwareConfig
    workload: WorkloadConfig
    energy: EnergyTable = Field(default_factory=EnergyTable)
    seed: int = Field(default=0, ge=0)


@functools.cache
def point_model(hardware: type[HardwareConfig], workload: type[WorkloadConfig]) -> type[DesignPoint]:
    """The :class:`DesignPoint` model of one hardware model and one workload model."""
    return create_model(
        f"{hardware.__name__}{workload.__name__}Point",
        __base__=DesignPoint,
        hardware=(hardware, ...),
        workload=(workload, ...),
    )


# --------------------------------------------------------------------------------------------
# Loading


def _loc_to_path(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        parts.append(f"[{item}]" if isinstance(item, int) else ("." if parts else "") + str(item))
    return "".join(parts)


def _reason(err: dict) -> str:
    """One error in the user's terms: YAML words (mapping, list, null), never model names."""
    kind = err["type"]
    if kind in ("value_error", "assertion_error"):
        return str(err["ctx"]["error"])  # a validator's own message, as it raised it
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    given = describe(err.get("input"))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, not {given}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, not {given}"
    if kind == "literal_error":
        return f"expected {err['ctx']['expected']}, not {given}"
    msg = err["msg"]
    return f"{msg[:1].lower()}{msg[1:]}, not {given}"


def validation_to_config_error(exc: ValidationError, prefix: str = "") -> ConfigError:
    """The first error of ``exc`` as a :class:`ConfigError`; its path is the error's location
    in the model (validators put each error on the field it is about)."""
    err = exc.errors()[0]
    path = _loc_to_path(err["loc"])
    if prefix:
        path = f"{prefix}.{path}" if path else prefix
    return ConfigError(path, _reason(err))


def _known(names) -> str:
    return ", ".join(sorted(names)) or "none"


def resolve_hardware(raw: Any, path: str = "hardware", kind: str | None = None) -> tuple[Engine, dict]:
    """The engine of a raw hardware mapping, and the mapping with ``preset:`` expanded into
    the preset's values (the user's keys on top).

    Presets belong to engines. ``{preset: NAME}`` without ``engine`` picks the one engine that
    has a preset of that name; if several have, the one of them that runs workload ``kind``;
    otherwise ``engine`` must say which.
    """
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a mapping, not {describe(raw)}")
    raw = dict(raw)
    for key, what in (("preset", "a preset name"), ("engine", "an engine name")):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{path}.{key}", f"expected {what}, not {describe(raw[key])}")
    name = raw.pop("preset", None)
    engine_name = raw.get("engine")
    if engine_name is not None:
        try:
            candidates = [engines.get(engine_name)]
        except KeyError:
            raise ConfigError(f"{path}.engine",
                              f"unknown engine {engine_name!r}; known: {_known(engines.names())}") from None
    else:
        candidates = [engines.get(n) for n in engines.names()]
    if name is None:
        if engine_name is None:
            raise ConfigError(f"{path}.engine", f"required key is missing (or give a preset); "
                                                f"known engines: {_known(engines.names())}")
        return candidates[0], raw
    having = [e for e in candidates if name in e.presets]
    if not having:
        known = {p for e in candidates for p in e.presets}
        raise ConfigError(f"{path}.preset", f"unknown preset {name!r}; known: {_known(known)}")
    if len(having) > 1 and kind is not None:
        running = [e for e in having if kind in e.kinds]
        having = running if len(running) == 1 else having
    if len(having) > 1:
        raise ConfigError(f"{path}.engine", f"preset {name!r} exists for engines "
                                            f"{_known(e.name for e in having)}; say which")
    eng = having[0]
    merged = {"engine": eng.name, **copy.deepcopy(dict(eng.presets[name]))}
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return eng, merged


def design_point_from_dict(raw: Any) -> DesignPoint:
    """Validate a raw design point against its engine's models (one-line :class:`ConfigError`)."""
    if not isinstance(raw, dict):
        raise ConfigError("", f"a design point must be a mapping, not {describe(raw)}")
    raw = dict(raw)
    if "hardware" not in raw:
        raise ConfigError("hardware", "required key is missing")
    workload = raw.get("workload")
    kind = workload.get("kind") if isinstance(workload, dict) else None
    eng, raw["hardware"] = resolve_hardware(raw["hardware"], kind=kind if isinstance(kind, str) else None)
    model = eng.kinds.get(kind) if isinstance(kind, str) else None
    if model is None:
        # Hardware errors first, as they would be for a known kind.
        try:
            eng.hardware.model_validate(raw["hardware"])
        except ValidationError as exc:
            raise validation_to_config_error(exc, "hardware") from None
        kinds = ", ".join(repr(k) for k in eng.kinds)
        if workload is None:
            raise ConfigError("workload", "required key is missing")
        if not isinstance(workload, dict):
            raise ConfigError("workload", f"expected a mapping, not {describe(workload)}")
        if kind is None:
            raise ConfigError("workload.kind", f"required key is missing; engine {eng.name} runs {kinds}")
        raise ConfigError("workload.kind", f"engine {eng.name} runs {kinds}, not {describe(kind)}")
    try:
        return point_model(eng.hardware, model).model_validate(raw)
    except ValidationError as exc:
        raise validation_to_config_error(exc) from None


#: A config is a small text file; reading stops here, so ``/dev/zero`` or a stray binary file
#: is refused instead of filling memory.
MAX_FILE_BYTES = 4 << 20
#: Deeper nesting than this is no config; bounding it keeps every recursive step below
#: (composing, validating, copying) far from Python's recursion limit.
MAX_DEPTH = 64
#: Nodes after alias expansion: a few lines of anchors and aliases can stand for billions of
#: nodes, which later copying, validation or JSON output would expand for real.
MAX_NODES = 1_000_000


class _Refused(yaml.YAMLError):
    """Well-formed YAML that sparsim will not load (too deep, too large, non-text keys)."""

    def __init__(self, problem: str, mark: Any = None):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (instead of keeping the last one), keys that
    are not text, nesting deeper than :data:`MAX_DEPTH` and documents that expand to more than
    :data:`MAX_NODES` nodes through aliases."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose alias expansion is too deep, too large or cyclic."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height) once expanded
    open_: set[int] = set()

    def visit(node: yaml.Node, depth: int) -> tuple[int, int]:
        known = sizes.get(id(node))
        if known is None:
            if id(node) in open_:
                raise _Refused("an alias refers to a node that contains it", node.start_mark)
            if depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded",
                               node.start_mark)
            open_.add(id(node))
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = node.value
            else:
                children = []
            count, height = 1, 0
            for child in children:
                c, h = visit(child, depth + 1)
                count, height = count + c, max(height, h + 1)
                if count > MAX_NODES:
                    break
            open_.discard(id(node))
            known = sizes[id(node)] = (count, height)
        if depth + known[1] > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded",
                           node.start_mark)
        if known[0] > MAX_NODES:
            raise _Refused(f"aliases expand to more than {MAX_NODES:,} nodes", node.start_mark)
        return known

    visit(root, 0)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
            raise _Refused(f"a key must be text, not a {kind}", key_node.start_mark)
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str):
            raise _Refused(f"a key must be text, not {describe(key)} (quote it: YAML reads "
                           f"yes/no/on/off, numbers and ~ as values)", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str) -> Any:
    """Parse YAML text with the limits of :class:`_StrictLoader`; a problem raises a
    one-line :class:`ConfigError` without a source (the caller names it)."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "" if isinstance(exc, _Refused) else "malformed YAML: "
        raise ConfigError("", f"{kind}{where}{problem}") from None


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file (at most :data:`MAX_FILE_BYTES`, UTF-8); problems become a one-line
    :class:`ConfigError` naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError("", f"cannot read file: {exc.strerror or exc}", str(path)) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError("", f"larger than {MAX_FILE_BYTES >> 20} MiB, too large for a config file",
                          str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError("", f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} "
                              f"(save the file as UTF-8)", str(path)) from None
    try:
        data = parse_yaml(text)
    except ConfigError as exc:
        raise exc.with_source(str(path)) from None
    if data is None:
        raise ConfigError("", "file is empty", str(path))
    return data


def load_design_point(path: str | Path) -> DesignPoint:
    data = load_yaml(path)
    try:
        return design_point_from_dict(data)
    except ConfigError as exc:
        raise exc.with_source(str(path)) from None
