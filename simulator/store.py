"""Crash-safe sweep results: an append-only JSON-lines file keyed by design-point hash.

Each finished point is one line ``{"key": ..., "row": {...}}`` written with a single ``write``
and flushed, so a crash or ``kill -9`` loses at most the line being written; a torn last line
is ignored on reading and that point is simply computed again. Keys are hashes of the resolved
design point, so a resumed sweep recomputes nothing that finished and never stores a point twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

#: Bump when the simulator's results change meaning, so stale stored rows are not reused
#: (2: rows name their engine).
RESULTS_VERSION = 2


class FolderBusy(Exception):
    """Another process holds the lock of a sweep folder."""


LOCK_FILE = ".lock"
_held: dict[Path, int] = {}  # folders this process has locked -> nesting depth


@contextlib.contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock (``flock`` on ``.lock``, created with the folder) while a sweep
    writes there, so two sweeps never append the same points to one store. Re-entrant within
    a process; the kernel drops the lock when the holder dies, even by SIGKILL."""
    key = Path(folder).resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    key.mkdir(parents=True, exist_ok=True)
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            raise FolderBusy(f"another sweep{f' (pid {holder})' if holder else ''} is writing to "
                             f"{folder}; wait for it to finish or choose another folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)


def point_key(resolved: dict[str, Any]) -> str:
    """Stable hash of a resolved design point (canonical JSON)."""
    text = json.dumps({"v": RESULTS_VERSION, "point": resolved}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class ResultStore:
    """Results of one sweep, in ``<folder>/points.jsonl``."""

    FILE = "points.jsonl"

    def __init__(self, folder: Path):
        self.path = Path(folder) / self.FILE
        self._rows: dict[str, dict] = {}
        self._fh = None
        if self.path.exists():
            for key, row in self._read():
                self._rows.setdefault(key, row)

    def _read(self) -> Iterator[tuple[str, dict]]:
        with self.path.open("rb") as fh:
            data = fh.read()
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                yield rec["key"], rec["row"]
            except (ValueError, KeyError, TypeError):
                if i == len(lines) - 1:
                    continue  # torn last line from an interrupted write: recompute that point
                raise ValueError(f"{self.path}: line {i + 1} is corrupt; delete the file to start over") from None

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> dict | None:
        return self._rows.get(key)

    def add(self, key: str, row: dict) -> bool:
        """Store ``row`` unless ``key`` is already stored; returns whether it was new."""
        if key in self._rows:
            return False
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._repair_tail()
            self._fh = self.path.open("ab")
        line = json.dumps(finite({"key": key, "row": row}), separators=(",", ":"), allow_nan=False) + "\n"
        self._fh.write(line.encode())
        self._fh.flush()
        self._rows[key] = row
        return True

    def _repair_tail(self) -> None:
        """Cut a torn last line so the next record starts on a line of its own."""
        if not self.path.exists():
            return
        with self.path.open("rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                fh.truncate(cut)

    def sync(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None


def finite(v: Any) -> Any:
    """``v`` with NumPy scalars as Python numbers and every infinite or NaN float as ``None``:
    JSON has no Infinity or NaN, and other readers choke on Python's spelling of them."""
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite(x) for x in v]
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, (str, int, float)):
        return v
    raise TypeError(f"cannot store {type(v).__name__}")
