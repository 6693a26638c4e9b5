"""Training resumes exactly, exports a loadable model, and eval produces the card's figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import MODELNET40, cli_export_eval, cli_train
from geocli.cli import _epochs, app
from geocli.evaluate import card_metrics

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
            np.savez(
                root / f"{split}.npz",
                points=data["points"][keep, :128],
                labels=data["labels"][keep],
                names=data["names"][keep],
            )
    return root


@pytest.mark.slow
def test_train_resume_export_eval(tiny_modelnet: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = cli_train(tiny_modelnet, run)
    assert first.exit_code == 0, first.output
    one = json.loads((run / "state.json").read_text())
    assert one["epoch"] == 1 and (run / "best.safetensors").is_file()

    resumed = cli_train(tiny_modelnet, run, epochs=2)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.stderr
    two = json.loads((run / "state.json").read_text())
    assert two["epoch"] == 2 and two["history"][0] == one["history"][0]  # epoch 1 kept, not redone

    # a fresh run with the same seed reproduces the resumed one exactly
    again = tmp_path / "again"
    assert cli_train(tiny_modelnet, again, epochs=2).exit_code == 0
    assert [h["loss"] for h in json.loads((again / "state.json").read_text())["history"]] == [
        h["loss"] for h in two["history"]
    ]

    card_path, report = cli_export_eval(run, tiny_modelnet, "tiny-fa", "--update-card")
    assert (
        set(report["protocols"]) == {"z/z", "z/SO3", "SO3/SO3", "single-view/SO3"}
        and report["dataset"]["shapes"] == 160
    )
    card = json.loads(card_path.read_text())
    assert card["metrics"] == json.loads(json.dumps(card_metrics(report)))
    assert card["training"]["epochs_trained"] == 2
    assert card["training"]["ancestry"] == [] and card["training"]["epochs_in_total"] == two["best_epoch"]


@pytest.mark.slow
def test_continued_training_keeps_the_history(tiny_modelnet: Path, tmp_path: Path) -> None:
    """A run continued from a shipped model, exported under the same name, still counts the first run's epochs."""
    models, first, second = tmp_path / "models", tmp_path / "first", tmp_path / "second"
    assert cli_train(tiny_modelnet, first, epochs=2).exit_code == 0
    assert runner.invoke(app, ["export", str(first), "--name", "tiny", "--out", str(models)]).exit_code == 0
    shipped = json.loads((models / "tiny.json").read_text())
    assert cli_train(tiny_modelnet, second, "--init", str(models / "tiny.safetensors")).exit_code == 0
    for _ in range(2):  # exporting twice must not count the replaced card as an ancestor of itself
        assert runner.invoke(app, ["export", str(second), "--name", "tiny", "--out", str(models)]).exit_code == 0
        training = json.loads((models / "tiny.json").read_text())["training"]
        assert [a["weights_sha256"] for a in training["ancestry"]] == [shipped["weights"]["sha256"]]
        assert training["epochs_in_total"] == shipped["training"]["selected_epoch"] + 1
    assert _epochs(training) == str(training["epochs_in_total"])
    assert _epochs({"epochs_trained": 3, "started_from": "models/x.safetensors", "epochs_in_total": None}) == "3+"


@pytest.mark.slow
def test_changed_configuration_is_refused(tiny_modelnet: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli_train(tiny_modelnet, run).exit_code == 0
    clash = cli_train(tiny_modelnet, run, "--points", "32")
    assert clash.exit_code != 0 and "different configuration" in str(clash.exception or clash.output)


def test_partial_report_never_goes_on_a_card() -> None:
    with pytest.raises(ValueError, match="partial"):
        card_metrics({"dataset": {"complete": False}})
