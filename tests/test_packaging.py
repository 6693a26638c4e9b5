"""Packaging checks: what a user gets from `pip install`, and a light `geocli --help`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"

# Not needed to build the package; skipped when copying the repo (speed, and no stale build/).
_NOT_COPIED = {".venv", ".git", "runs", "sample_data", "tests", "benchmarks", "build", "dist", ".cache"}


def _run_python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _shipped(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in {".json", ".safetensors"})


def test_pyproject_lists_every_subpackage():
    """pyproject.toml lists packages explicitly (see the comment there): none may be missing,
    or a regular install would silently lack it."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(d.relative_to(REPO).parts)
        for d in [REPO / "geocli", *(REPO / "geocli").rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
    }
    missing = sorted(found - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"


@pytest.mark.slow
def test_regular_install_ships_models(tmp_path):
    """A non-editable install finds the checkpoints through importlib.resources."""
    src, target = tmp_path / "src", tmp_path / "site"
    shutil.copytree(
        REPO,
        src,
        ignore=lambda d, names: [
            n for n in names if (Path(d) == REPO and n in _NOT_COPIED) or n == "__pycache__" or n.endswith(".egg-info")
        ],
    )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-input",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr

    # cwd=tmp_path so that the repo itself is not on sys.path; PYTHONPATH puts the install first.
    probe = _run_python(
        "import importlib.resources as r, json\n"
        "d = r.files('geocli._models')\n"
        "print(json.dumps({'dir': str(d), 'files': sorted(p.name for p in d.iterdir())}))",
        cwd=tmp_path,
        PYTHONPATH=str(target),
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    where = Path(found["dir"]).resolve()
    assert where.is_relative_to(target.resolve()), f"geocli._models resolved outside the install: {where}"
    shipped = [n for n in found["files"] if n.endswith((".json", ".safetensors"))]
    assert shipped == _shipped(MODELS)
    if not any(n.endswith(".json") for n in shipped):
        pytest.skip("models/ has no checkpoint card (*.json) yet: resolution checked, nothing to compare")


def test_help_does_not_import_torch():
    """`geocli --help` must stay fast: torch (about a second to import) only loads for real work."""
    if not (REPO / "geocli" / "cli.py").exists():
        pytest.skip("geocli/cli.py is not written yet")
    probe = _run_python(
        "import sys\n"
        "sys.argv = ['geocli', '--help']\n"
        "from geocli.cli import main\n"
        "code = 0\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    code = e.code or 0\n"
        "print('TORCH_IMPORTED', 'torch' in sys.modules, code)",
        cwd=REPO,
    )
    assert probe.returncode == 0, probe.stderr
    last = probe.stdout.strip().splitlines()[-1].split()
    assert last[0] == "TORCH_IMPORTED", probe.stdout
    assert last[2] == "0", f"--help exited with {last[2]}:\n{probe.stdout}{probe.stderr}"
    assert last[1] == "False", "geocli --help imported torch; import it lazily inside the commands"
