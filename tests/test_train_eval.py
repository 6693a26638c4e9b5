"""Training resumes exactly, exports a loadable model, and eval produces the card's figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELNET40
from typer.testing import CliRunner

from geocli.cli import _epochs, app
from geocli.evaluate import card_metrics

TINY = '{"group": "O3", "k": 4, "widths": [8, 8], "embedding": 16}'
runner = CliRunner()


@pytest.fixture()
def tiny_modelnet(tmp_path: Path, monkeypatch) -> Path:
    """Four shapes of each of the 40 classes, 128 points each: real data, small enough to train in seconds."""
    monkeypatch.setenv("GEOCLI_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "modelnet40"
    root.mkdir()
    shutil.copy(MODELNET40 / "classes.txt", root)
    for split in ("train", "test"):
        with np.load(MODELNET40 / f"{split}.npz", allow_pickle=False) as data:
            keep = np.concatenate([np.flatnonzero(data["labels"] == c)[:4] for c in range(40)])
            np.savez(root / f"{split}.npz", points=data["points"][keep, :128], labels=data["labels"][keep], names=data["names"][keep])
    return root


def _train(root: Path, run: Path, epochs: int, *extra: str):
    return runner.invoke(app, ["train", "--out", str(run), "--data", str(root), "--epochs", str(epochs), "--points", "64",
                               "--batch-size", "16", "--hparams", TINY, "--device", "cpu", *extra])


def test_train_resume_export_eval(tiny_modelnet: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = _train(tiny_modelnet, run, 1)
    assert first.exit_code == 0, first.output
    one = json.loads((run / "state.json").read_text())
    assert one["epoch"] == 1 and (run / "best.safetensors").is_file()

    resumed = _train(tiny_modelnet, run, 2)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.stderr
    two = json.loads((run / "state.json").read_text())
    assert two["epoch"] == 2 and two["history"][0] == one["history"][0]  # epoch 1 kept, not redone

    # a fresh run with the same seed reproduces the resumed one exactly
    again = tmp_path / "again"
    assert _train(tiny_modelnet, again, 2).exit_code == 0
    assert [h["loss"] for h in json.loads((again / "state.json").read_text())["history"]] == [h["loss"] for h in two["history"]]

    models = tmp_path / "models"
    exported = runner.invoke(app, ["export", str(run), "--name", "tiny-fa", "--out", str(models)])
    assert exported.exit_code == 0, exported.output
    card_path = models / "tiny-fa.json"
    evaluated = runner.invoke(app, ["eval", str(card_path), "--data", str(tiny_modelnet), "--out", str(tmp_path / "r.json"), "--update-card", "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["protocols"]) == {"z/z", "z/SO3", "SO3/SO3", "single-view/SO3"} and report["dataset"]["shapes"] == 160
    card = json.loads(card_path.read_text())
    assert card["metrics"] == json.loads(json.dumps(card_metrics(report)))
    assert card["training"]["epochs_trained"] == 2
    assert card["training"]["ancestry"] == [] and card["training"]["epochs_in_total"] == two["best_epoch"]


def test_continued_training_keeps_the_history(tiny_modelnet: Path, tmp_path: Path) -> None:
    """A run continued from a shipped model, exported under the same name, still counts the first run's epochs."""
    models, first, second = tmp_path / "models", tmp_path / "first", tmp_path / "second"
    assert _train(tiny_modelnet, first, 2).exit_code == 0
    assert runner.invoke(app, ["export", str(first), "--name", "tiny", "--out", str(models)]).exit_code == 0
    shipped = json.loads((models / "tiny.json").read_text())
    assert _train(tiny_modelnet, second, 1, "--init", str(models / "tiny.safetensors")).exit_code == 0
    for _ in range(2):  # exporting twice must not count the replaced card as an ancestor of itself
        assert runner.invoke(app, ["export", str(second), "--name", "tiny", "--out", str(models)]).exit_code == 0
        training = json.loads((models / "tiny.json").read_text())["training"]
        assert [a["weights_sha256"] for a in training["ancestry"]] == [shipped["weights"]["sha256"]]
        assert training["epochs_in_total"] == shipped["training"]["selected_epoch"] + 1
    assert _epochs(training) == str(training["epochs_in_total"])
    assert _epochs({"epochs_trained": 3, "started_from": "models/x.safetensors", "epochs_in_total": None}) == "3+"


def test_changed_configuration_is_refused(tiny_modelnet: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _train(tiny_modelnet, run, 1).exit_code == 0
    clash = runner.invoke(app, ["train", "--out", str(run), "--data", str(tiny_modelnet), "--epochs", "1", "--points", "32",
                                "--hparams", TINY, "--device", "cpu"])
    assert clash.exit_code != 0 and "different configuration" in str(clash.exception or clash.output)


def test_partial_report_never_goes_on_a_card() -> None:
    with pytest.raises(ValueError, match="partial"):
        card_metrics({"dataset": {"complete": False}})
