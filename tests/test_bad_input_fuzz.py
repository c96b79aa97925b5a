"""Property-based fuzzing of the CLI entry point, in-process: the example design points and a
sweep spec mutated in types, values, structure and encoding. Every case must exit 0 or 2 with
no traceback (a refusal is one line), and a refused sweep writes nothing. The examples are
derandomized so `make test` runs the same bounded set every time."""

from __future__ import annotations

import contextlib
import io
import resource
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsim.cli import main

REPO = Path(__file__).resolve().parent.parent
POINTS = ["examples/tiny_gemm.yaml", "examples/llama2_decode_u280.yaml"]
SWEEP = {
    "name": "fuzz",
    "base": yaml.safe_load((REPO / "examples/tiny_gemm.yaml").read_text()),
    "sweep": {"grid": {"hardware.chains": [1, 2], "workload.layers.0.rows": {"range": [4, 8, 4]}}},
    "objectives": {"cycles": "min", "dsp": "min"},
}

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "8:16", "2:8", "u280", "tiny", "dsp_chain", "gemm", "llm", "1e30", ".inf", "true",
                     "\x00", "é", "x" * 300]),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=8)


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw: st.DrawFn, tree: Any) -> Any:
    """``tree`` with a few random edits: a value replaced, a key dropped, a key added."""
    tree = yaml.safe_load(yaml.safe_dump(tree))  # a deep copy
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(tree)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "drop", "add"]))
        if not path:
            if op == "replace":
                tree = draw(values)
            continue
        parent = tree
        for k in path[:-1]:
            parent = parent[k]
        if op == "replace":
            parent[path[-1]] = draw(values)
        elif op == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        else:
            parent.append(draw(values))
    return tree


@st.composite
def encoded(draw: st.DrawFn, tree: Any) -> bytes:
    """YAML text of ``tree``, sometimes re-encoded or with raw bytes spliced in."""
    text = yaml.safe_dump(tree, allow_unicode=True, sort_keys=False)
    how = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "flow", "utf-16", "latin-1", "splice", "cut"]))
    if how == "flow":
        return yaml.safe_dump(tree, default_flow_style=True, allow_unicode=True).encode()
    if how in ("utf-16", "latin-1"):
        return text.encode(how, errors="replace")
    data = text.encode()
    at = draw(st.integers(0, len(data)))
    if how == "splice":
        return data[:at] + draw(st.binary(max_size=8)) + data[at:]
    if how == "cut":
        return data[:at]
    return data


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def _check(code: int, err: str) -> None:
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err, err
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("sparsim: error:")]
        assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err


FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data(), example=st.sampled_from(POINTS))
def test_fuzzed_design_points(tmp_path_factory, data, example):
    tree = yaml.safe_load((REPO / example).read_text())
    path = tmp_path_factory.mktemp("fuzz") / "point.yaml"
    path.write_bytes(data.draw(encoded(data.draw(mutated(tree)))))
    _check(*_run(["simulate", str(path), "--json"]))


@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_fuzzed_sweep_specs(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    path, out = folder / "sweep.yaml", folder / "out"
    path.write_bytes(data.draw(encoded(data.draw(mutated(SWEEP)))))
    code, err = _run(["sweep", str(path), "--out", str(out), "--jobs", "1", "--max-points", "16"])
    _check(code, err)
    if code == 2:
        assert not out.exists(), "a refused sweep writes nothing"
    else:
        assert (out / "results.csv").exists() and not list(out.glob(".*.tmp"))


def test_fuzzing_stayed_within_memory():
    """Runs after the fuzz tests in this module: the process never grew past 3 GiB (an alias
    bomb or an unbounded read would have pushed it far beyond)."""
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert peak_kib < 3 * 2**20, f"peak RSS {peak_kib / 2**20:.1f} GiB"
