"""The same sweep on a real Dask LocalCluster (loopback) gives the local run's results, also
when a worker is killed mid-sweep."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import yaml

from sparsim.simulator.sweep import parse_sweep, run_sweep

distributed = pytest.importorskip("distributed")

SPEC = """
name: dask
base:
  hardware: {preset: u280}
  workload: {kind: llm, model: opt-6.7b, phase: decode, weight_bits: 4, layers: 4}
sweep:
  grid:
    hardware.chains: {range: [32, 208, 16]}
    hardware.chain_len: [8, 16]
    workload.sparsity: ["4:16", "8:16"]
  zip:
    - {workload.weight_bits: [4, 8], hardware.lanes: [2, 1]}
objectives: {dsp: min, tokens_per_s: max}
"""


@pytest.fixture(scope="module")
def spec():
    return parse_sweep(yaml.safe_load(SPEC))


@pytest.fixture(scope="module")
def local_rows(spec, tmp_path_factory):
    return run_sweep(spec, tmp_path_factory.mktemp("local"), jobs=1, progress=False).rows


@pytest.fixture
def cluster():
    cl = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None)
    yield cl
    cl.close()


def test_dask_equals_local(spec, local_rows, cluster, tmp_path):
    run = run_sweep(spec, tmp_path, scheduler=cluster.scheduler_address, progress=False)
    over = [r for r in local_rows if r["reason"].startswith("over the device budget")]
    assert over, "the spec should exercise the pre-run budget constraint"
    assert run.computed == len(local_rows) - len(over)
    assert run.rows == local_rows


def test_lost_worker_loses_and_duplicates_nothing(spec, local_rows, cluster, tmp_path):
    with distributed.Client(cluster.scheduler_address) as client:
        pids = list(client.run(os.getpid).values())
    store = tmp_path / "points.jsonl"
    box = {}

    def go():
        box["run"] = run_sweep(spec, tmp_path, scheduler=cluster.scheduler_address,
                               progress=False, batch_size=1)

    t = threading.Thread(target=go)
    t.start()
    deadline = time.monotonic() + 60
    while (not store.exists() or len(store.read_text().splitlines()) < 4) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(pids[0], signal.SIGKILL)  # the nanny restarts it; its tasks are rescheduled
    at_kill = len(store.read_text().splitlines())
    assert at_kill < len(local_rows), "the worker must die mid-sweep"
    t.join(timeout=300)
    assert not t.is_alive()
    keys = [json.loads(l)["key"] for l in store.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == len(local_rows)
    assert box["run"].rows == local_rows
