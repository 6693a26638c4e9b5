"""Shared fixtures: the shared data folder and real shapes from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import Result
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELNET40 = SHARED / "data" / "modelnet40"
PSB = SHARED / "data" / "psb"
# A Frame Averaging network small enough to train in seconds (classifier or segmenter).
TINY_EDGE = '{"group": "O3", "k": 4, "widths": [8, 8], "embedding": 16}'


@pytest.fixture(scope="session")
def modelnet_test() -> dict[str, np.ndarray]:
    with np.load(MODELNET40 / "test.npz", allow_pickle=False) as data:
        return {"points": data["points"][:64].astype(np.float32), "labels": data["labels"][:64].astype(np.int64)}


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _glibc_defaults_in_the_test_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run in-process (CliRunner) do not keep freed memory (geocli.allocator): the test process
    would hold its peak from then on, and the processes it starts later would count that peak as theirs
    (a child's peak resident memory includes what it shared with its parent before exec)."""
    import geocli.allocator

    monkeypatch.setattr(geocli.allocator, "keep_freed_memory", lambda: False)


def make_tiny_psb(
    root: Path,
    categories: tuple[str, ...] = ("Cup", "Glasses", "Plier", "Table"),
    per_split: int = 3,
    points: int = 256,
) -> Path:
    """A few real PSB shapes (all 94 part names kept, so label ids stay the real ones), meshes included."""
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    with np.load(PSB / "points_2048.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    category = arrays["category_names"][arrays["category"]].astype(str)
    keep = np.concatenate(
        [
            np.flatnonzero((category == name) & (arrays["split"].astype(str) == split))[:per_split]
            for name in categories
            for split in ("train", "test")
        ]
    )
    per_shape = {key: value[keep] for key, value in arrays.items() if len(value) == len(category)}
    per_shape["points"], per_shape["labels"], per_shape["global_labels"] = (
        per_shape["points"][:, :points],
        per_shape["labels"][:, :points],
        per_shape["global_labels"][:, :points],
    )
    np.savez(root / "points_2048.npz", **{**arrays, **per_shape})
    for name in per_shape["shape_names"].astype(str):
        (root / "meshes" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PSB / "meshes" / f"{name}.npz", root / "meshes" / f"{name}.npz")
    return root


def cli_train(data: Path, run: Path, *options: str, epochs: int = 1, hparams: str = TINY_EDGE) -> Result:
    """``geocli train`` on tiny data, in-process: 64 points a shape, batches of 16, on the CPU.

    ``options`` come last, so they add to these (``--family``) or replace them (``--batch-size 8``):
    every training test runs the same command, and says only how its run differs.
    """
    from geocli.cli import app

    fixed = ["train", "--out", str(run), "--data", str(data), "--epochs", str(epochs), "--hparams", hparams]
    return CliRunner().invoke(app, [*fixed, *"--points 64 --batch-size 16 --device cpu".split(), *options])


def cli_export_eval(run: Path, data: Path, name: str, *eval_options: str) -> tuple[Path, dict[str, Any]]:
    """``geocli export`` of ``run`` as ``name`` into ``models/`` beside it, then ``geocli eval`` of that card on
    ``data`` (on the CPU): (card path, report). Both must succeed."""
    from geocli.cli import app

    runner, models, report = CliRunner(), run.parent / "models", run.parent / f"{name}-eval.json"
    exported = runner.invoke(app, ["export", str(run), "--name", name, "--out", str(models)])
    assert exported.exit_code == 0, exported.output
    card = models / f"{name}.json"
    evaluate = ["eval", str(card), "--data", str(data), "--out", str(report), "--device", "cpu"]
    evaluated = runner.invoke(app, [*evaluate, *eval_options])
    assert evaluated.exit_code == 0, evaluated.output
    return card, json.loads(report.read_text())


@pytest.fixture(scope="session")
def tiny_segmenter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A segmenter trained for two epochs on twelve real PSB meshes: (card path, data root)."""
    from geocli.cli import app

    base = tmp_path_factory.mktemp("psb")
    root = make_tiny_psb(base / "psb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GEOCLI_CACHE", str(base / "cache"))
        trained = cli_train(root, base / "run", "--dataset", "psb", "--batch-size", "8", epochs=2)
        assert trained.exit_code == 0, trained.output
    export = ["export", str(base / "run"), "--name", "tiny-seg", "--out", str(base / "models")]
    exported = CliRunner().invoke(app, export)
    assert exported.exit_code == 0, exported.output
    return base / "models" / "tiny-seg.json", root
