"""Files and YAML that must be refused in one line before anything big is built: bytes that
are not UTF-8 text, special files (reading is bounded), deep nesting, alias expansion bombs and
keys that are not text. Each case runs the CLI in-process on a design point and on a sweep."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sparsim.dataflow.config import MAX_DEPTH, MAX_FILE_BYTES
from sparsim.cli import main

HW = "hardware: {preset: tiny}\n"
POINT = HW + "workload: {kind: gemm, layers: [{rows: 4, k: 32, sparsity: '2:8'}]}\n"


def _bomb(levels: int = 7, fan: int = 10) -> str:
    """A few lines whose aliases expand to fan**levels nodes."""
    lines = ["a0: &a0 [" + ", ".join(["x"] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


CASES = [
    ("latin-1", "hardware: {preset: tiny}\n# caf\xe9\n".encode("latin-1"), r"not UTF-8 text: byte 0xe9 on line 2"),
    ("utf-16", POINT.encode("utf-16"), r"not UTF-8 text: byte 0xff on line 1"),
    ("binary", bytes(range(256)) * 4, r"not UTF-8 text: byte 0x80"),
    ("NUL byte", b"hardware:\x00 {}\n", r"malformed YAML: unacceptable character #x0000"),
    ("too large", b"#" * (MAX_FILE_BYTES + 1), r"larger than 4 MiB, too large for a config file"),
    ("deep flow nesting", ("hardware: " + "[" * 5000 + "]" * 5000).encode(),
     rf"line 1, column \d+: nested deeper than {MAX_DEPTH} levels"),
    ("deep block nesting", "".join("  " * i + "a:\n" for i in range(200)).encode() + b"  " * 200 + b"b: 1\n",
     rf"line \d+, column \d+: nested deeper than {MAX_DEPTH} levels"),
    ("alias bomb", _bomb().encode(), r"aliases expand to more than 1,000,000 nodes"),
    ("alias bomb as layers", (_bomb() + HW + "workload: {kind: gemm, layers: *a6}\n").encode(),
     r"aliases expand to more than 1,000,000 nodes"),
    ("deep through aliases", ("".join(f"a{i}: &a{i} [{'*a%d' % (i - 1) if i else 'x'}]\n" for i in range(80))).encode(),
     rf"nested deeper than {MAX_DEPTH} levels once aliases are expanded"),
    ("recursive alias", b"hardware: &h {preset: tiny, x: *h}\n", r"an alias refers to a node that contains it"),
    ("list key", b"? [a, b]\n: 1\n", r"line 1, column 3: a key must be text, not a list"),
    ("mapping key", (HW + "workload: {? {a: 1} : x}\n").encode(), r"line 2, column 14: a key must be text, not a mapping"),
    ("boolean key", b"hardware: {preset: tiny, on: 3}\n", r"a key must be text, not true \(quote it"),
    ("number key", b"hardware: {preset: tiny, 4: 3}\n", r"a key must be text, not 4 "),
    ("null key", b"hardware: {preset: tiny, ~: 3}\n", r"a key must be text, not null "),
]


def _refused(capsys, argv: list[str], source: str, pattern: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"sparsim: error: {source}: "), err[0]
    assert re.search(pattern, err[0]), err[0]


@pytest.mark.parametrize("data, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["simulate", "sweep"])
def test_bad_file_is_refused_in_one_line(tmp_path, capsys, command, data, pattern):
    path = tmp_path / "in.yaml"
    path.write_bytes(data)
    out = tmp_path / "out"
    argv = [command, str(path)] + (["--out", str(out)] if command == "sweep" else [])
    _refused(capsys, argv, str(path), pattern)
    assert not out.exists()


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("command", ["simulate", "sweep"])
def test_endless_special_file_is_read_bounded(tmp_path, capsys, command):
    out = tmp_path / "out"
    argv = [command, "/dev/zero"] + (["--out", str(out)] if command == "sweep" else [])
    _refused(capsys, argv, "/dev/zero", r"larger than 4 MiB")


def test_directory_is_refused(tmp_path, capsys):
    _refused(capsys, ["simulate", str(tmp_path)], str(tmp_path), r"cannot read file: Is a directory")


@pytest.mark.parametrize("value, pattern", [
    ("[" * 500 + "]" * 500, rf"--set seed: value .* is not valid YAML: line 1, column \d+: nested deeper than {MAX_DEPTH}"),
    ("{a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], "
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c], "
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d], f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e], "
     "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]}", r"--set seed: value .* aliases expand to more than"),
    ("{[a]: 1}", r"--set seed: value .* a key must be text, not a list"),
])
def test_set_values_obey_the_same_limits(capsys, value, pattern):
    assert main(["simulate", "examples/tiny_gemm.yaml", "--set", f"seed={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(pattern, err[0]), err


def test_anchors_within_the_limits_still_load(tmp_path, capsys):
    """Aliases are a YAML feature users rely on: a modest expansion loads as before."""
    path = tmp_path / "point.yaml"
    path.write_text("hardware: {preset: tiny}\nworkload: {kind: gemm, layers: "
                    "[&l {rows: 4, k: 32, sparsity: '2:8'}, *l, *l]}\n")
    assert main(["simulate", str(path), "--json"]) == 0
    assert '"cycles"' in capsys.readouterr().out
