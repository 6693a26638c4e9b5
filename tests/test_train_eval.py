"""Training resumes exactly, exports a loadable model, and eval produces the card's figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import MODELNET40, cli_export_eval, cli_train
from geocli.cli import app
from geocli.evaluate import card_metrics
from geocli.model_tables import epochs
from geocli.train import recipe

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
    assert epochs(training) == str(training["epochs_in_total"])
    assert epochs({"epochs_trained": 3, "started_from": "models/x.safetensors", "epochs_in_total": None}) == "3+"


@pytest.mark.slow
def test_changed_configuration_is_refused(tiny_modelnet: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli_train(tiny_modelnet, run).exit_code == 0
    clash = cli_train(tiny_modelnet, run, "--points", "32")
    assert clash.exit_code == 2 and clash.stdout == "" and _one_line(clash.stderr)
    assert "different configuration (points 64 -> 32); use a new --out folder" in clash.stderr


def _one_line(stderr: str) -> bool:
    """A usage error: exactly one ``geocli: error:`` line, no traceback."""
    return stderr.startswith("geocli: error: ") and stderr.count("\n") == 1 and "Traceback" not in stderr


def _usage_error(*args: str) -> str:
    """Run geocli with ``args``; it must end with one error line and exit 2. Returns the line."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2 and _one_line(result.stderr), (result.exit_code, result.output, result.exception)
    return result.stderr


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (
            ["--family", "tinvnn", "--recipe", "published"],
            "family 'tinvnn' has no recipe 'published'; known: cpu, wide",
        ),
        (
            ["--family", "pointnet"],
            "unknown family 'pointnet'; known: apen, confident_up, frame_averaging, parot, tinvnn, upright",
        ),
        (["--hparams", "{k: 16}"], "--hparams is not JSON (Expecting property name"),
        (["--hparams", "[16]"], "--hparams must be a JSON object"),
        (["--hparams", '{"k": 4, "depth": 3}'], "build no frame_averaging network (FrameAveraging.__init__() got an "),
        (["--family", "parot", "--hparams", '{"patchez": 4}'], "build no parot network (PaRotConfig.__init__() got"),
        (["--init", "no-such.safetensors"], "no-such.safetensors: no such file to start from (--init)"),
        (["--data", "no-such-folder"], "no modelnet40 data in no-such-folder"),
    ],
)
def test_bad_train_options_are_one_line_and_exit_2(tmp_path: Path, options: list[str], problem: str) -> None:
    run = tmp_path / "run"
    assert problem in _usage_error("train", "--out", str(run), "--device", "cpu", *options)
    assert not run.exists()  # refused before anything was written


def test_a_run_folder_is_checked_before_any_data_is_read(tmp_path: Path) -> None:
    """Another configuration in the folder, or a file where the folder should be: refused at once."""
    run = tmp_path / "run"
    run.mkdir()
    config = {**recipe("modelnet40").to_json(), "points": 256}
    state = {"config": config, "classes": [], "epoch": 1, "best_val": 0.5, "best_epoch": 1, "history": []}
    (run / "state.json").write_text(json.dumps(state))
    line = _usage_error("train", "--out", str(run), "--data", "no-such-folder", "--device", "cpu")
    assert "different configuration (points 256 -> 512)" in line
    assert "state.json: is a file; --out names a run folder" in _usage_error("train", "--out", str(run / "state.json"))


def test_bad_export_arguments_are_one_line_and_exit_2(tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert "not a training run (no state.json" in _usage_error(
        "export", str(tmp_path), "--name", "x", "--out", str(models)
    )
    assert "not a training run (no such folder)" in _usage_error("export", str(tmp_path / "nothing"), "--name", "x")
    (tmp_path / "state.json").write_text("{not json")
    assert "state.json: unreadable" in _usage_error("export", str(tmp_path), "--name", "x", "--out", str(models))
    config = recipe("modelnet40").to_json()
    state = {"config": config, "classes": ["a", "b"], "epoch": 1, "best_val": -1.0, "best_epoch": 0, "history": []}
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert "a model name is a file name" in _usage_error("export", str(tmp_path), "--name", "a/b", "--out", str(models))
    assert "no validated weights yet" in _usage_error("export", str(tmp_path), "--name", "x", "--out", str(models))
    assert not models.exists()


def test_partial_report_never_goes_on_a_card() -> None:
    with pytest.raises(ValueError, match="partial"):
        card_metrics({"dataset": {"complete": False}})


def test_partial_views_and_frame_jitter_reach_the_run(tiny_modelnet: Path, tmp_path: Path) -> None:
    """--partial-views adds one simulated single-view scan per training shape; both options land in the config."""
    run = tmp_path / "run"
    tinvnn = '{"k": 4, "widths": [8, 8], "embedding": 16}'
    result = cli_train(
        tiny_modelnet, run, "--family", "tinvnn", "--partial-views", "1", "--frame-jitter", "5", hparams=tinvnn
    )
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["partial_views"] == 1 and config["frame_jitter"] == 5.0
    assert "preprocessed 240 " in result.stderr  # 120 training shapes (160 less one per class), one scan of each
