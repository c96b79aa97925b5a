"""Verilog of the ``dsp_chain`` engine, reproducible byte for byte from the hardware config."""

from __future__ import annotations

from pathlib import Path

from amaranth.back import verilog

from dataflow.config import DspChainHardware

from .dsp_chain import DspChainAccelerator

#: Name of the top-level Verilog module.
TOP_MODULE = "top"


def to_verilog(hw: DspChainHardware) -> str:
    """Verilog text of :class:`~rtl.dsp_chain.DspChainAccelerator` for ``hw``.

    No source locations are emitted, so the same ``hw`` always gives identical text.
    """
    return verilog.convert(DspChainAccelerator(hw), name=TOP_MODULE, emit_src=False)


def write_verilog(hw: DspChainHardware, path: str | Path) -> Path:
    """Write :func:`to_verilog` of ``hw`` to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_verilog(hw))
    return path
