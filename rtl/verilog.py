"""Verilog of a design point's hardware, reproducible byte for byte from the hardware config."""

from __future__ import annotations

from pathlib import Path

from amaranth.back import verilog

from sparsim.dataflow.config import HardwareConfig
from sparsim import engine as engines

from .shell import top_ports

#: Name of the top-level Verilog module.
TOP_MODULE = "top"


def to_verilog(hw: HardwareConfig) -> str:
    """Verilog text of the top component of ``hw``'s engine (``Engine.rtl_top``).

    No source locations are emitted, so the same ``hw`` always gives identical text.
    """
    eng = engines.of(hw)
    if eng.rtl_top is None:
        raise ValueError(f"engine {eng.name} has no RTL")
    top = eng.rtl_top(hw)
    return verilog.convert(top, name=TOP_MODULE, ports=top_ports(top), emit_src=False)


def write_verilog(hw: HardwareConfig, path: str | Path) -> Path:
    """Write :func:`to_verilog` of ``hw`` to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_verilog(hw))
    return path


def component_verilog(component, name: str = TOP_MODULE) -> str:
    """Verilog text of one ``wiring.Component`` (its non-constant members are the ports),
    reproducible like :func:`to_verilog`: for synthesising or linting a building block alone."""
    return verilog.convert(component, name=name, ports=top_ports(component), emit_src=False)
