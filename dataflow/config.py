"""Typed, validated configuration: hardware, workload and design points, loaded from YAML.

Configs are built from YAML at the edge; everything inside sparsim receives these objects, never
raw dicts. Any bad value raises :class:`ConfigError`, whose message is one line naming the key
path and the reason, e.g. ``hardware.chain_len: must be a power of two, not 6``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import dsp_chain_isa as isa
from . import presets


class ConfigError(ValueError):
    """A configuration problem: ``path`` is the dotted key path, ``reason`` says what is wrong."""

    def __init__(self, path: str, reason: str, source: str | None = None):
        self.path = path
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{path}: {reason}" if path else f"{where}{reason}")

    def with_source(self, source: str) -> "ConfigError":
        return ConfigError(self.path, self.reason, source)

    def under(self, prefix: str) -> "ConfigError":
        path = f"{prefix}.{self.path}" if self.path else prefix
        return ConfigError(path, self.reason, self.source)


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# --------------------------------------------------------------------------------------------
# Hardware


class MemoryConfig(_Model):
    """Off-chip memory: ``channels`` × ``bytes_per_cycle`` per accelerator cycle, fixed latency."""

    channels: int = Field(gt=0, description="independent channels (striped)")
    bytes_per_cycle: int = Field(gt=0, description="bytes per channel per accelerator cycle")
    latency_cycles: int = Field(ge=1, description="request-to-first-data latency in cycles")

    @property
    def bandwidth_bytes_per_cycle(self) -> int:
        return self.channels * self.bytes_per_cycle


class DspChainHardware(_Model):
    """Hardware of the ``dsp_chain`` engine (see docs/dsp_chain.md for each parameter)."""

    engine: Literal["dsp_chain"] = "dsp_chain"
    device: str | None = Field(default=None, description="FPGA device preset for budgets")
    clock_mhz: float = Field(gt=0)
    chains: int = Field(gt=0, le=4096, description="parallel chains P")
    chain_len: int = Field(gt=0, description="DSP slots per chain L (power of two)")
    mux_m: int = Field(gt=0, description="group size M of N:M and mux inputs (power of two)")
    min_n: int = Field(default=2, gt=0, description="smallest supported N (power of two)")
    lanes: Literal[1, 2] = Field(default=1, description="tokens sharing one weight per DSP48")
    acc_bits: int = Field(default=32, description="accumulator width in bits")
    weight_buffer_kib: float = Field(gt=0, description="two weight banks together, KiB")
    act_buffer_kib: float = Field(gt=0, description="two activation banks together, KiB")
    out_buffer_kib: float = Field(gt=0, description="two output banks together, KiB")
    memory: MemoryConfig

    @field_validator("chain_len")
    @classmethod
    def _chain_len(cls, v: int) -> int:
        if not _is_pow2(v) or v < 2:
            raise ValueError(f"must be a power of two >= 2, not {v}")
        return v

    @field_validator("mux_m")
    @classmethod
    def _mux_m(cls, v: int) -> int:
        if not _is_pow2(v) or not 2 <= v <= 16:
            raise ValueError(f"must be a power of two from 2 to 16, not {v}")
        return v

    @field_validator("min_n")
    @classmethod
    def _min_n(cls, v: int) -> int:
        if not _is_pow2(v):
            raise ValueError(f"must be a power of two, not {v}")
        return v

    @field_validator("acc_bits")
    @classmethod
    def _acc_bits(cls, v: int) -> int:
        if v % 8 or not 16 <= v <= 48:
            raise ValueError(f"must be a multiple of 8 from 16 to 48, not {v}")
        return v

    @model_validator(mode="after")
    def _cross(self) -> "DspChainHardware":
        if self.min_n > self.mux_m:
            raise ValueError(f"min_n: min_n={self.min_n} must not exceed mux_m={self.mux_m}")
        if self.device is not None and self.device not in presets.DEVICES:
            raise ValueError(
                f"device: unknown device {self.device!r}; known: {', '.join(sorted(presets.DEVICES))}"
            )
        for name, depth in (
            ("weight_buffer_kib", self.weight_bank_depth),
            ("act_buffer_kib", self.act_depth),
            ("out_buffer_kib", self.out_bank_depth),
        ):
            if depth < 1:
                raise ValueError(f"{name}: too small to hold one row of its buffer")
        return self

    # Derived sizes -------------------------------------------------------------------------
    @property
    def dsps(self) -> int:
        return self.chains * self.chain_len

    @property
    def macs_per_cycle(self) -> int:
        return self.dsps * self.lanes

    @property
    def geometry(self) -> isa.Geometry:
        """Record and row sizes of the packed formats (defined in dataflow/dsp_chain_isa.py)."""
        return isa.Geometry(
            chains=self.chains,
            chain_len=self.chain_len,
            mux_m=self.mux_m,
            lanes=self.lanes,
            acc_bits=self.acc_bits,
        )

    @property
    def index_bits(self) -> int:
        return self.geometry.index_bits

    @property
    def act_ports(self) -> int:
        return max(1, self.chain_len // self.min_n)

    @property
    def max_weight_record_bytes(self) -> int:
        return self.geometry.max_weight_record_bytes

    @property
    def weight_bank_depth(self) -> int:
        """Weight records (steps) one bank holds."""
        return int(self.weight_buffer_kib * 1024) // 2 // self.max_weight_record_bytes

    @property
    def act_depth(self) -> int:
        """Activation rows (lanes × M bytes each) one activation bank holds."""
        return int(self.act_buffer_kib * 1024) // 2 // self.geometry.act_row_bytes

    @property
    def out_bank_depth(self) -> int:
        """Output rows (P × lanes accumulators each) one output bank holds."""
        return int(self.out_buffer_kib * 1024) // 2 // self.geometry.out_row_bytes


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
        if not _is_pow2(self.m):
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


class GemmLayer(_Model):
    """One linear layer Y[T, R] = X[T, K] · W[R, K]^T."""

    name: str = "layer"
    rows: int = Field(gt=0, description="output features R")
    k: int = Field(gt=0, description="reduction length K (input features)")
    tokens: int = Field(default=1, gt=0, description="tokens T (1 = GEMV)")
    sparsity: NM
    weight_bits: Literal[4, 8] = 8
    repeat: int = Field(default=1, gt=0, description="identical instances (for timing only)")


class GemmWorkload(_Model):
    kind: Literal["gemm"]
    layers: list[GemmLayer] = Field(min_length=1)


LLM_OPERATORS = ("q", "k", "v", "o", "gate", "up", "down", "fc1", "fc2", "lm_head")


class LlmWorkload(_Model):
    """A built-in LLM (see dataflow/workloads.py) in decode or prefill."""

    kind: Literal["llm"]
    model: Literal["llama2-7b", "opt-6.7b"]
    phase: Literal["decode", "prefill"] = "decode"
    context: int = Field(default=512, gt=0, description="context length L (tokens in KV cache)")
    tokens: int = Field(default=128, gt=0, description="prefill length T (prefill only)")
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


Workload = Union[GemmWorkload, LlmWorkload]


class EnergyTable(_Model):
    """Per-event energies (pJ) and static power (W); defaults and sources in simulator/energy.py."""

    mac_pj: float = Field(default=1.0, ge=0, description="one multiply-accumulate")
    onchip_byte_pj: float = Field(default=0.6, ge=0, description="one byte read or written in an on-chip buffer")
    offchip_byte_pj: float = Field(default=31.0, ge=0, description="one byte moved to or from off-chip memory")
    static_w: float = Field(default=20.0, ge=0, description="static power of the device, W")


class DesignPoint(_Model):
    """A hardware configuration, the workload to run on it, and the energy table to cost it."""

    hardware: DspChainHardware
    workload: GemmWorkload | LlmWorkload = Field(discriminator="kind")
    energy: EnergyTable = Field(default_factory=EnergyTable)
    seed: int = Field(default=0, ge=0)


# --------------------------------------------------------------------------------------------
# Loading


def _loc_to_path(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("gemm", "llm") and parts and parts[-1] == "workload":
            continue  # discriminator tag, not a key the user wrote
        elif isinstance(item, str) and item.startswith(("function-", "tagged-union")):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _reason(err: dict) -> str:
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "union_tag_invalid":
        return f"kind must be one of 'gemm', 'llm', not {err.get('input')!r}"
    if err["type"] in ("int_parsing", "int_type", "float_parsing", "float_type", "bool_type", "string_type"):
        return f"{msg.lower()}, not {err.get('input')!r}"
    return msg


def validation_to_config_error(exc: ValidationError, prefix: str = "") -> ConfigError:
    err = exc.errors()[0]
    path = _loc_to_path(err["loc"])
    # Cross-field validators name their own key ("min_n=..." or "device: ...").
    reason = _reason(err)
    m = re.match(r"^(\w+): (.*)$", reason)
    if m and m.group(1) in DspChainHardware.model_fields:
        path = f"{path}.{m.group(1)}" if path else m.group(1)
        reason = m.group(2)
    if prefix:
        path = f"{prefix}.{path}" if path else prefix
    return ConfigError(path, reason)


def resolve_hardware(raw: Any, path: str = "hardware") -> dict:
    """Expand ``preset:`` into the preset's values with the user's overrides on top."""
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a mapping, not {type(raw).__name__}")
    raw = dict(raw)
    name = raw.pop("preset", None)
    if name is None:
        return raw
    if name not in presets.HARDWARE:
        raise ConfigError(
            f"{path}.preset", f"unknown preset {name!r}; known: {', '.join(sorted(presets.HARDWARE))}"
        )
    merged = presets.hardware(name)
    for key, value in raw.items():
        if key == "memory" and isinstance(value, dict) and isinstance(merged.get("memory"), dict):
            merged["memory"] = {**merged["memory"], **value}
        else:
            merged[key] = value
    return merged


def design_point_from_dict(raw: Any) -> DesignPoint:
    if not isinstance(raw, dict):
        raise ConfigError("", f"a design point must be a mapping, not {type(raw).__name__}")
    raw = dict(raw)
    if "hardware" in raw:
        raw["hardware"] = resolve_hardware(raw["hardware"])
    try:
        return DesignPoint.model_validate(raw)
    except ValidationError as exc:
        raise validation_to_config_error(exc) from None


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that rejects duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; problems become a one-line :class:`ConfigError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError("", f"cannot read file: {exc.strerror}", str(path)) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError("", f"malformed YAML: {where}{problem}", str(path)) from None
    if data is None:
        raise ConfigError("", "file is empty", str(path))
    return data


def load_design_point(path: str | Path) -> DesignPoint:
    data = load_yaml(path)
    try:
        return design_point_from_dict(data)
    except ConfigError as exc:
        raise exc.with_source(str(path)) from None
