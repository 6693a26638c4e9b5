"""The README's tables of model figures are the cards' (scripts/readme_tables.py generates them)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "readme_tables.py"


def test_the_readme_tables_match_the_cards() -> None:
    """The check as CI and a developer run it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    checked = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("readme_tables", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_changed_figure_is_found_and_rewritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    text = (REPO / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| tinvnn-edge-modelnet40 | tinvnn | 40 |"))
    symmetric = next(line for line in text.splitlines() if line.startswith("| symmetric classes"))
    changed = text.replace(row, row.replace(" | 40 | ", " | 99.9 | ", 1), 1).replace(symmetric, "| symmetric | 1 | 2 |")
    readme.write_text(changed)
    tables = script()
    assert tables.main(["--check", "--readme", str(readme)]) == 1
    assert "models-table, comparison-table" in capsys.readouterr().out
    assert "99.9" in readme.read_text()  # --check writes nothing
    assert tables.main(["--readme", str(readme)]) == 0
    assert readme.read_text() == text


def test_a_readme_without_the_markers_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text().replace("<!-- models-table:end -->", ""))
    assert script().main(["--check", "--readme", str(readme)]) == 2
    assert "models-table" in capsys.readouterr().err
