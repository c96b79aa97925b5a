"""Record SCALE-Sim 3.0.0's per-layer cycles for GEMM shapes of the built-in networks.

Runs in a side environment that has ``scalesim`` (it needs ``numpy<2.4``), never in the project
venv and never from the test suite::

    python3 -m venv /work/scalesim-venv
    /work/scalesim-venv/bin/pip install scalesim==3.0.0 'numpy<2.4'
    /work/scalesim-venv/bin/python benchmarks/scalesim_peer.py            # the recorded table
    /work/scalesim-venv/bin/python benchmarks/scalesim_peer.py --resnet18-forward

The first form writes ``tests/data/scalesim_cycles.json``: for every shape, array size and
dataflow, SCALE-Sim's "Total Cycles" and "Stall Cycles" (its COMPUTE_REPORT columns) and the
row count of its demand matrices (one row per array cycle). Memory is SCALE-Sim's
estimate-bandwidth mode (``InterfaceBandwidth: CALC``), which sizes the DRAM interface so that
no demand waits; every recorded stall count is 0, so "Total Cycles" is the array's compute
time. Layers go in as SCALE-Sim GEMM topologies (``Layer,M,N,K``: M = P rows of A, N = Q
columns of the output, K the reduction), the shapes taken from ``dataflow/networks.py``.

``--resnet18-forward`` runs one dense ResNet-18 (ImageNet, batch 1) forward pass, every layer's
GEMM, on a 32 x 32 OS array and prints the wall time and total cycles.

tests/test_scalesim_agreement.py checks the recorded table against sparsim's timing;
docs/nm_train_scalesim.md derives the relation from SCALE-Sim's code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scalesim.scale_sim import scalesim as ScaleSim

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "data" / "scalesim_cycles.json"

# networks.py is plain dataclasses: load it by path so this script needs nothing of sparsim's
# dependencies in the side venv.
_spec = importlib.util.spec_from_file_location("sparsim_networks", REPO / "dataflow" / "networks.py")
networks = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = networks  # dataclasses resolves annotations through sys.modules
_spec.loader.exec_module(networks)

#: (network, layer, batch). Real layers at batch 1 (per sample and head for attention), small
#: enough for SCALE-Sim to finish them on an 8 x 8 array in minutes; P, Q and K include sizes
#: that are not multiples of 8 or 32 (1, 10, 27, 49, 197, 1000).
SHAPES = (
    ("resnet18-cifar", "conv1", 1),  # 1024 x 64 x 27
    ("resnet18-cifar", "layer2.0.downsample", 1),  # 256 x 128 x 64
    ("resnet18-cifar", "layer2.0.conv1", 1),  # 256 x 128 x 576
    ("resnet18-cifar", "layer3.0.conv1", 1),  # 64 x 256 x 1152
    ("resnet18-cifar", "fc", 1),  # 1 x 10 x 512
    ("resnet50-cifar", "layer1.0.conv1", 1),  # 1024 x 64 x 64
    ("resnet18", "fc", 1),  # 1 x 1000 x 512
    ("resnet50", "layer4.2.conv3", 1),  # 49 x 2048 x 512 (32 x 32 only, see ARRAYS)
    ("vit-b16", "blocks.0.attn.qk", 1),  # 197 x 197 x 64
    ("vit-b16", "blocks.0.attn.pv", 1),  # 197 x 64 x 197
    ("vit-b16", "head", 1),  # 1 x 1000 x 768
    ("deit-s", "blocks.0.attn.proj", 1),  # 197 x 384 x 384
    ("deit-s", "head", 1),  # 1 x 1000 x 384
)

#: (rows R, cols C, which shapes). 16 x 8 is not square, so R and C cannot be confused.
SMALL = {0, 1, 4, 5, 8, 9, 12}
ARRAYS = (
    (8, 8, set(range(len(SHAPES))) - {7}),
    (32, 32, set(range(len(SHAPES)))),
    (16, 8, SMALL),
)
DATAFLOWS = ("os", "ws")

_CONFIG = """\
[general]
run_name = peer

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 1024
FilterSramSzkB: 1024
OfmapSramSzkB: 1024
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10
Dataflow: {dataflow}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def run_scalesim(rows: int, cols: int, dataflow: str,
                 gemms: list[tuple[str, int, int, int]]) -> tuple[list[dict], float, float]:
    """Run SCALE-Sim on ``gemms`` (name, P, Q, K); per-layer results, wall and CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "peer.cfg").write_text(_CONFIG.format(rows=rows, cols=cols, dataflow=dataflow))
        (d / "topology.csv").write_text(
            "Layer,M,N,K,\n" + "".join(f"{name},{p},{q},{k},\n" for name, p, q, k in gemms)
        )
        (d / "layout.csv").write_text("Layer name,\n")  # custom layouts are off
        start, cpu_start = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            sim = ScaleSim(save_disk_space=True, verbose=False, config=str(d / "peer.cfg"),
                           topology=str(d / "topology.csv"), layout=str(d / "layout.csv"),
                           input_type_gemm=True)
            sim.run_scale(top_path=str(d / "out"))
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        results = []
        for layer in sim.runner.single_layer_sim_object_list:
            _, total, stalls, *_ = layer.get_compute_report_items()
            results.append({
                "total_cycles": int(total),
                "stall_cycles": int(stalls),
                "demand_rows": int(layer.compute_system.get_ofmap_demand_mat().shape[0]),
            })
        return results, wall, cpu


def record() -> None:
    gemms = []
    for net, layer, batch in SHAPES:
        g = networks.NETWORKS[net].gemm_of(layer, batch)
        gemms.append({"network": net, "layer": layer, "batch": batch, "p": g.m, "q": g.n, "k": g.k})
    records, timings = [], []
    for rows, cols, which in ARRAYS:
        chosen = sorted(which)
        for dataflow in DATAFLOWS:
            batch = [(f"L{i}", gemms[i]["p"], gemms[i]["q"], gemms[i]["k"]) for i in chosen]
            results, wall, _ = run_scalesim(rows, cols, dataflow, batch)
            timings.append({"rows": rows, "cols": cols, "dataflow": dataflow, "layers": len(chosen),
                            "wall_s": round(wall, 1)})
            print(f"{rows}x{cols} {dataflow}: {len(chosen)} layers in {wall:.1f} s", flush=True)
            for i, res in zip(chosen, results):
                records.append({**gemms[i], "rows": rows, "cols": cols, "dataflow": dataflow, **res})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "tool": f"scalesim {importlib.metadata.version('scalesim')}",
        "numpy": np.__version__,
        "python": platform.python_version(),
        "command": "/work/scalesim-venv/bin/python benchmarks/scalesim_peer.py",
        "memory": "InterfaceBandwidth CALC (bandwidth estimated from the demand), SRAM 1024 KiB each",
        "timings": timings,
        "records": records,
    }, indent=1) + "\n")
    print(f"wrote {len(records)} records to {OUT.relative_to(REPO)}")


def resnet18_forward() -> None:
    net = networks.NETWORKS["resnet18"]
    gemms = []
    for layer in net.layers:
        g = layer.gemm(1)
        gemms.append((layer.name.replace(".", "_"), g.m, g.n, g.k))
    results, wall, cpu = run_scalesim(32, 32, "os", gemms)
    total = sum(r["total_cycles"] for r in results)
    stalls = sum(r["stall_cycles"] for r in results)
    print(f"resnet18 forward, batch 1, 32x32 os: {len(gemms)} GEMMs, {total} cycles "
          f"({stalls} stall), SCALE-Sim wall time {wall:.1f} s, CPU time {cpu:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resnet18-forward", action="store_true",
                        help="time one dense ResNet-18 forward pass instead of recording the table")
    args = parser.parse_args()
    if args.resnet18_forward:
        resnet18_forward()
    else:
        record()


if __name__ == "__main__":
    main()
