from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write a YAML text to a temporary file and return its path."""

    def _write(text: str, name: str = "point.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write
