"""Training on the user's own folders through the command line: class sub-folders (a classifier) and
labelled PLY files (a segmenter); resume, export, classify with the exported card, eval on a held-out folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from conftest import MODELNET40, PSB, cli_export_eval, cli_train
from geocli.cli import app
from geocli.defaults import DEFAULT_CLASSIFIER
from geocli.evaluate import card_metrics
from geocli.io.writers import write_ply
from geocli.train import recipe
from geocli.zoo import models_dir, read_card

runner = CliRunner()
CLASSES = ("airplane", "bed", "chair")  # ModelNet40 classes 0, 2 and 8
FORMATS = ("ply", "xyz", "npy")


def write_class_folder(root: Path, split: str, per_class: int, points: int = 128) -> Path:
    """``per_class`` ModelNet40 shapes of each of :data:`CLASSES` in ``root/<class>/``, as PLY, XYZ, NPY in turn."""
    names = (MODELNET40 / "classes.txt").read_text().split()
    with np.load(MODELNET40 / f"{split}.npz", allow_pickle=False) as data:
        clouds, labels = data["points"][:, :points].astype(np.float64), data["labels"]
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for number, index in enumerate(np.flatnonzero(labels == names.index(name))[:per_class]):
            path = root / name / f"{name}_{number}.{FORMATS[number % 3]}"
            if path.suffix == ".ply":
                write_ply(path, clouds[index])
            elif path.suffix == ".npy":
                np.save(path, clouds[index])
            else:
                np.savetxt(path, clouds[index])
    return root


@pytest.fixture()
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(training folder, held-out folder): 4 and 2 shapes of three classes."""
    monkeypatch.setenv("GEOCLI_CACHE", str(tmp_path / "cache"))
    return write_class_folder(tmp_path / "train", "train", 4), write_class_folder(tmp_path / "test", "test", 2)


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("geocli: error: "), result.output
    return lines[0]


@pytest.mark.slow
def test_train_resume_export_classify_and_eval_a_class_folder(folders: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = folders
    run = tmp_path / "run"
    first = cli_train(train, run, "--dataset", "folder")
    assert first.exit_code == 0, first.output
    assert "12 shapes in 3 classes" in first.stderr
    state = json.loads((run / "state.json").read_text())
    assert state["classes"] == list(CLASSES) and state["data"] == {"root": str(train), "shapes": 12}
    assert state["history"][0]["val_acc"] is not None  # validated every epoch

    resumed = cli_train(train, run, "--dataset", "folder", epochs=2)
    assert resumed.exit_code == 0 and "resuming" in resumed.stderr, resumed.output
    assert json.loads((run / "state.json").read_text())["history"][0] == state["history"][0]

    card_path, report = cli_export_eval(run, test, "tiny-folder")
    card = read_card(card_path)
    assert card["classes"] == list(CLASSES) and "12 shapes in class sub-folders" in card["training"]["dataset"]
    assert report["dataset"]["shapes"] == 6 and report["classes"] == list(CLASSES)
    assert set(report["protocols"]) == {"as given", "SO3"}
    assert report["rotation_agreement"]["agreement"] == 1.0  # an exactly invariant family
    assert "within_folder_classes" not in report["protocols"]["as given"]  # the model has the folder's classes only

    classified = runner.invoke(app, ["classify", str(test / "bed"), "--model", str(card_path), "-f", "jsonl"])
    assert classified.exit_code == 0, classified.output
    records = [json.loads(line) for line in classified.stdout.splitlines()]
    assert len(records) == 2 and all(record["label"] in CLASSES for record in records)


@pytest.mark.slow
def test_a_folder_fine_tunes_the_default_classifier_and_its_card_says_so(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    train, _ = folders
    run = tmp_path / "run"
    command = ["train", "--dataset", "folder", "--data", str(train), "--out", str(run), "--epochs", "1"]
    trained = runner.invoke(app, [*command, "--points", "64", "--batch-size", "8", "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    shipped = read_card(models_dir() / f"{DEFAULT_CLASSIFIER}.json")
    with safe_open(str(models_dir() / shipped["weights"]["file"]), "pt") as weights:
        tensors = len(list(weights.keys()))
    assert f"initialised {tensors - 2} of {tensors} tensors" in trained.stderr  # all but the 40-class output layer
    exported = runner.invoke(app, ["export", str(run), "--name", "mine", "--out", str(tmp_path / "models")])
    assert exported.exit_code == 0, exported.output
    card = read_card(tmp_path / "models" / "mine.json")
    assert card["family"] == shipped["family"] and card["hparams"] == shipped["hparams"]
    assert card["training"]["started_from_sha256"] == shipped["weights"]["sha256"]
    assert card["training"]["ancestry"][-1]["model"] == DEFAULT_CLASSIFIER
    # where the shipped weights cannot fit, or are declined, the run starts from random weights
    assert recipe("folder", init="none").init is None and recipe("folder", family="parot").init is None
    assert recipe("folder", hparams={"k": 8}).init is None and recipe("modelnet40").init is None


def test_eval_of_the_shipped_classifier_on_a_folder_of_some_of_its_classes(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    _, test = folders
    (test / "chair" / "notes.ply").write_text("not a ply file")
    evaluated = runner.invoke(app, ["eval", DEFAULT_CLASSIFIER, "--data", str(test), "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "notes.ply" in evaluated.stderr and "skipped" in evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["dataset"]["shapes"] == 6
    within = report["protocols"]["as given"]["within_folder_classes"]
    assert within["overall_accuracy"] >= report["protocols"]["as given"]["overall_accuracy"]
    with pytest.raises(ValueError, match="held-out folder does not go on a card"):
        card_metrics(report)


def test_eval_refuses_a_folder_named_for_no_class_of_the_model(folders: tuple[Path, Path]) -> None:
    _, test = folders
    (test / "chair").rename(test / "armchair")
    evaluated = runner.invoke(app, ["eval", DEFAULT_CLASSIFIER, "--data", str(test), "--device", "cpu"])
    assert "armchair name no class of model" in one_error_line(evaluated)


def test_bad_class_folders_are_one_line_and_exit_2(folders: tuple[Path, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no class sub-folders" in one_error_line(cli_train(empty, tmp_path / "r1", "--dataset", "folder"))
    train, _ = folders
    single = tmp_path / "single"
    single.mkdir()
    (train / "bed").rename(single / "bed")
    assert "one class sub-folder (bed)" in one_error_line(cli_train(single, tmp_path / "r2", "--dataset", "folder"))
    for path in list((train / "chair").iterdir())[1:]:
        path.unlink()
    few = one_error_line(cli_train(train, tmp_path / "r3", "--dataset", "folder"))
    assert "chair: 1 usable shape; each class needs 2 or more" in few
    assert not (tmp_path / "r3").exists()  # refused before anything is written
    missing = cli_train(tmp_path / "nowhere", tmp_path / "r4", "--dataset", "folder")
    assert "nowhere: no such folder" in one_error_line(missing)


def test_an_unreadable_file_is_one_warning_and_skipped(folders: tuple[Path, Path], tmp_path: Path) -> None:
    train, _ = folders
    (train / "bed" / "broken.xyz").write_text("1 2\n")
    (train / "bed" / "README.md").write_text("not a shape, not read")
    trained = cli_train(train, tmp_path / "run", "--dataset", "folder")
    assert trained.exit_code == 0, trained.output
    warnings = [line for line in trained.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "broken.xyz" in warnings[0] and warnings[0].endswith("skipped"), trained.stderr
    assert "12 shapes in 3 classes" in trained.stderr


@pytest.mark.slow
def test_a_segmenter_trains_on_the_outputs_of_geocli_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real Labeled PSB clouds, labelled by `geocli segment` (the default segmenter), are a parts folder."""
    monkeypatch.setenv("GEOCLI_CACHE", str(tmp_path / "cache"))
    scans = tmp_path / "scans"
    scans.mkdir()
    with np.load(PSB / "points_2048.npz", allow_pickle=False) as data:
        for index in (0, 1, 40, 41):
            write_ply(scans / f"{data['shape_names'][index].replace('/', '_')}.ply", data["points"][index])
    (scans / "notes.ply").write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n")
    labelled = tmp_path / "labelled"
    segmented = runner.invoke(app, ["segment", str(scans), "--out", str(labelled), "--device", "cpu"])
    assert segmented.exit_code == 1 and len(list(labelled.glob("*.ply"))) == 4, segmented.output  # notes.ply fails
    write_ply(labelled / "unlabelled.ply", np.random.default_rng(0).normal(size=(64, 3)))
    trained = cli_train(labelled, tmp_path / "run", "--dataset", "parts-folder", "--batch-size", "2")
    assert trained.exit_code == 0, trained.output
    assert "unlabelled.ply: no per-point integer 'label' property" in trained.stderr
    assert "4 labelled shapes" in trained.stderr
    exported = runner.invoke(app, ["export", str(tmp_path / "run"), "--name", "seg", "--out", str(tmp_path / "m")])
    assert exported.exit_code == 0, exported.output
    card = read_card(tmp_path / "m" / "seg.json")
    legend = json.loads((labelled / "labels.json").read_text())["labels"]
    assert card["task"] == "segment" and card["classes"] == [entry["name"] for entry in legend]
    scan = min(path for path in scans.glob("*.ply") if path.name != "notes.ply")
    model = ["-m", str(tmp_path / "m" / "seg.json"), "--device", "cpu"]
    again = runner.invoke(app, ["segment", str(scan), "-o", str(tmp_path / "again"), *model])
    categories = {name.split("/")[0] for name in card["classes"]}
    assert again.exit_code == 0 and json.loads(again.stdout)["category"] in categories, again.output
