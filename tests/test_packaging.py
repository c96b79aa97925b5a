"""The installed distribution puts everything under one import name, ``sparsim``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from conftest import REPO


def test_wheel_installs_only_the_sparsim_package(tmp_path):
    # Build from a copy: setuptools writes sparsim.egg-info next to the sources, and a stale one
    # in the checkout would shadow the installed entry points.
    src = tmp_path / "src"
    for folder in ("sparsim", "dataflow", "simulator", "rtl"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(src)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = (tmp_path / "dist").glob("sparsim-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    top = {name.split("/")[0] for name in names}
    code_dirs = {t for t in top if not t.endswith((".dist-info", ".data"))}
    assert code_dirs == {"sparsim"}, f"the wheel installs more than one package: {sorted(code_dirs)}"
    for module in ("sparsim/dataflow/config.py", "sparsim/simulator/sweep.py",
                   "sparsim/rtl/verilator.py", "sparsim/rtl/cocotb_bench/bench.py"):
        assert module in names, f"{module} is missing from the wheel"
    # Every engine registration must point inside the one package.
    section = entry_points.split("[sparsim.engines]", 1)[1].split("[", 1)[0]
    targets = [line.split("=", 1)[1].strip() for line in section.splitlines() if "=" in line]
    assert targets and all(t.startswith("sparsim.") for t in targets), targets
