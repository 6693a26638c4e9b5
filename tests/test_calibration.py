"""Scores a user can trust: temperature scaling, ECE, --min-score, and ensembles, through the command line."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from geocli.api import as_geometry, load_model, predict_logits, prepare_input
from geocli.calibration import (
    calibrated_probabilities,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from geocli.cli import app
from geocli.defaults import DEFAULT_CLASSIFIER, DEFAULT_SEGMENTER
from geocli.zoo import models_dir
from test_train_eval import tiny_modelnet  # noqa: F401  (fixture)

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
CHAIR, TEAPOT = str(SAMPLES / "chair_0001.pcd"), str(SAMPLES / "teapot.obj")
SECOND = "apen-edge-modelnet40"  # another shipped classifier of ModelNet40's classes, fast on a CPU

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [*args, *([] if args[0] == "models" else ["--device", "cpu"])])


def own_copy(folder: Path, name: str = DEFAULT_CLASSIFIER, **changes) -> Path:
    """A shipped classifier's card and weights copied into ``folder`` (the card with ``changes``): its path."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(models_dir() / f"{name}.safetensors", folder / f"{name}.safetensors")
    card = json.loads((models_dir() / f"{name}.json").read_text())
    card.pop("calibration", None)  # uncalibrated, unless ``changes`` says otherwise
    card.update(changes)
    (folder / f"{name}.json").write_text(json.dumps(card))
    return folder / f"{name}.json"


# --- the figures, on cases worked by hand -------------------------------------------------------


def test_ece_of_hand_computed_cases() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    # all four at confidence 0.9 (one bin), three right: |0.75 - 0.9| = 0.15
    sure = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])
    assert expected_calibration_error(sure, labels) == pytest.approx(0.15)
    # two bins: 0.6 (both right: |1 - 0.6| = 0.4) and 0.95 (one of two right: |0.5 - 0.95| = 0.45), half each
    mixed = torch.tensor([[0.6, 0.4], [0.6, 0.4], [0.05, 0.95], [0.95, 0.05]])
    assert expected_calibration_error(mixed, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.45)
    # 15 equal-width bins: 0.6 and 0.65 share (0.6, 0.6667], 0.59 is in the bin below
    shared = torch.tensor([[0.6001, 0.3999], [0.35, 0.65]])
    assert expected_calibration_error(shared, torch.tensor([0, 0])) == pytest.approx(abs(0.5 - (0.6001 + 0.65) / 2))
    apart = torch.tensor([[0.59, 0.41], [0.35, 0.65]])
    assert expected_calibration_error(apart, torch.tensor([0, 0])) == pytest.approx(0.5 * 0.41 + 0.5 * 0.65)
    # a perfect, certain classifier
    assert expected_calibration_error(torch.eye(3), torch.arange(3)) == 0.0
    assert negative_log_likelihood(torch.tensor([[0.25, 0.75]]), torch.tensor([1])) == pytest.approx(-math.log(0.75))


@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_fitting_recovers_a_known_temperature(true_temperature: float) -> None:
    """Labels drawn from softmax(z / T): the NLL's minimum is at T, and fitting finds it."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(40_000, 10, generator=generator, dtype=torch.float64) * 4
    labels = torch.multinomial(calibrated_probabilities(logits, true_temperature), 1, generator=generator)[:, 0]
    fitted = fit_temperature(logits.float(), labels)
    assert fitted == pytest.approx(true_temperature, rel=0.03)
    before = expected_calibration_error(calibrated_probabilities(logits), labels)
    after = expected_calibration_error(calibrated_probabilities(logits, fitted), labels)
    assert after < 0.01 < before


def test_scaling_changes_no_label() -> None:
    """Logits a float32 rounding apart keep their order at any temperature (the label is the arg-max)."""
    top = torch.tensor(3.0)
    close = torch.nextafter(top, torch.tensor(0.0))
    logits = torch.stack([torch.stack([close, top, torch.tensor(-1.0)]), torch.stack([top, close, top - 5])])
    for temperature in (0.37, 1.0, 1.9, 7.3, 140.0):
        assert calibrated_probabilities(logits, temperature).argmax(1).tolist() == [1, 0]


# --- geocli calibrate -------------------------------------------------------------------------


def test_calibrate_writes_the_card_and_classify_uses_it(tiny_modelnet: Path, tmp_path: Path) -> None:  # noqa: F811
    card = own_copy(tmp_path / "models")
    before = json.loads(run("classify", CHAIR, TEAPOT, "-m", str(card), "-f", "json", "-k", "40").stdout)

    result = run("calibrate", str(card), "--data", str(tiny_modelnet), "--update-card")
    assert result.exit_code == 0, result.output
    calibration = json.loads(result.stdout)
    written = json.loads(card.read_text())
    assert written["calibration"] == calibration and result.stderr == f"updated {card}\n"
    assert calibration["weights_sha256"] == written["weights"]["sha256"]
    assert calibration["validation"]["shapes"] == 40  # 10 % of 4 training shapes a class: 1 a class
    assert calibration["test"] == {**calibration["test"], "shapes": 160, "protocol": "SO3/SO3"}
    temperature = calibration["temperature"]
    assert temperature > 0 and calibration["validation"]["nll_after"] <= calibration["validation"]["nll_before"]

    after = json.loads(run("classify", CHAIR, TEAPOT, "-m", str(card), "-f", "json", "-k", "40").stdout)
    model = load_model(card, device="cpu")
    for old, new in zip(before, after):
        assert new["label"] == old["label"] and new["score"] != old["score"]
        cloud = prepare_input(as_geometry(new["path"], new["path"]), model.input_points, 0).cloud
        expected = calibrated_probabilities(predict_logits(model, torch.from_numpy(cloud)[None]), temperature)[0]
        for top in new["top_k"]:
            assert top["score"] == pytest.approx(float(expected[model.classes.index(top["label"])]), abs=1e-6)

    assert f"temperature {temperature:.3f}, test ECE" in run("models", str(card)).stdout
    again = run("calibrate", str(card), "--data", str(tiny_modelnet))  # re-runnable: the same fit
    assert again.exit_code == 0 and json.loads(again.stdout) == calibration


def test_eval_reports_ece_at_the_cards_temperature(tiny_modelnet: Path, tmp_path: Path) -> None:  # noqa: F811
    card = own_copy(tmp_path / "models")
    calibrated = run("calibrate", str(card), "--data", str(tiny_modelnet), "--update-card")
    assert calibrated.exit_code == 0, calibrated.output
    calibration = json.loads(calibrated.stdout)
    result = run("eval", str(card), "--data", str(tiny_modelnet), "--out", str(tmp_path / "report.json"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["calibration"] == {"ece_bins": 15, "temperatures": {DEFAULT_CLASSIFIER: calibration["temperature"]}}
    for figures in report["protocols"].values():
        assert 0 <= figures["ece"] <= 1 and figures["nll"] > 0
    so3 = report["protocols"]["SO3/SO3"]  # calibrate measured the test split in eval's very poses
    assert round(so3["ece"], 4) == calibration["test"]["ece_after"]
    assert round(so3["nll"], 4) == calibration["test"]["nll_after"]
    assert round(so3["overall_accuracy"], 4) == calibration["test"]["accuracy"]


def test_calibrate_refuses_what_it_cannot_fit(tiny_modelnet: Path, tmp_path: Path) -> None:  # noqa: F811
    segmenter = run("calibrate", DEFAULT_SEGMENTER, "--data", str(tiny_modelnet))
    assert segmenter.exit_code == 2 and segmenter.stderr.count("\n") == 1 and "segment model" in segmenter.stderr
    ensemble = run("calibrate", f"{DEFAULT_CLASSIFIER},{SECOND}", "--data", str(tiny_modelnet))
    assert ensemble.exit_code == 2 and ensemble.stderr.count("\n") == 1 and "calibrate each member" in ensemble.stderr
    card = own_copy(tmp_path / "models", training={"dataset": "somewhere else"})
    no_recipe = run("calibrate", str(card), "--data", str(tiny_modelnet))
    assert no_recipe.exit_code == 2 and no_recipe.stderr.count("\n") == 1 and "val_fraction" in no_recipe.stderr


@pytest.mark.parametrize(
    "calibration, problem",
    [
        ({"temperature": 0}, "positive number"),
        ({"temperature": "1.5"}, "positive number"),
        ({"temperature": 1.5, "weights_sha256": "0" * 64}, "fitted for other weights"),
        ([1.5], "should be dict"),
    ],
)
def test_a_card_with_a_bad_calibration_is_refused_in_one_line(tmp_path: Path, calibration, problem: str) -> None:
    card = own_copy(tmp_path, calibration=calibration)
    result = run("classify", CHAIR, "-m", str(card))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and problem in result.stderr


# --- --min-score --------------------------------------------------------------------------------


def test_min_score_labels_unknown_and_keeps_the_candidates() -> None:
    plain = json.loads(run("classify", CHAIR, TEAPOT, "-f", "json", "-k", "3").stdout)
    threshold = (plain[0]["score"] + plain[1]["score"]) / 2  # between the two files' scores
    sure, unsure = sorted(plain, key=lambda record: -record["score"])
    result = run("classify", CHAIR, TEAPOT, "-f", "json", "-k", "3", "--min-score", str(threshold))
    assert result.exit_code == 0, result.output
    records = {record["path"]: record for record in json.loads(result.stdout)}
    assert records[sure["path"]] == sure
    assert records[unsure["path"]] == {**unsure, "label": "unknown"}  # score and top_k as they were

    rows = list(
        csv.DictReader(
            io.StringIO(run("classify", CHAIR, TEAPOT, "-f", "csv", "-k", "2", "--min-score", str(threshold)).stdout)
        )
    )
    row = next(row for row in rows if row["path"] == unsure["path"])
    assert (row["label"], row["label_1"], row["label_2"]) == (
        "unknown",
        unsure["top_k"][0]["label"],
        unsure["top_k"][1]["label"],
    )
    table = run("classify", CHAIR, TEAPOT, "-k", "2", "--min-score", str(threshold)).stdout
    line = next(line for line in table.splitlines() if unsure["path"] in line)
    assert "unknown" in line and f"{unsure['top_k'][0]['label']} ({unsure['score']:.3f})" in line


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_min_score_outside_0_to_1_is_one_usage_line(value: str) -> None:
    result = run("classify", CHAIR, "--min-score", value)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"geocli: error: --min-score must be a probability from 0 to 1, not {float(value)}\n"


# --- ensembles ----------------------------------------------------------------------------------


def test_ensemble_averages_its_members_and_names_itself() -> None:
    members = [
        json.loads(run("classify", CHAIR, "-m", name, "-f", "json", "-k", "40").stdout)[0]
        for name in (DEFAULT_CLASSIFIER, SECOND)
    ]
    result = run("classify", CHAIR, "-m", f"{DEFAULT_CLASSIFIER},{SECOND}", "-f", "json", "-k", "40")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert record["model"] == f"{DEFAULT_CLASSIFIER}+{SECOND}"
    scores = [{top["label"]: top["score"] for top in member["top_k"]} for member in members]
    for top in record["top_k"]:
        assert top["score"] == pytest.approx((scores[0][top["label"]] + scores[1][top["label"]]) / 2, abs=2e-6)


def test_check_takes_an_ensemble() -> None:
    result = run("check", CHAIR, "-m", f"{DEFAULT_CLASSIFIER},{SECOND}", "-n", "3", "-f", "json")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert record["label"] == "chair" and record["agreement"] == 1.0 and record["max_score_change"] < 1e-4


def test_ensemble_members_must_share_the_class_list(tmp_path: Path) -> None:
    classes = json.loads((models_dir() / f"{DEFAULT_CLASSIFIER}.json").read_text())["classes"]
    renamed = own_copy(tmp_path, classes=["aeroplane", *classes[1:]])
    result = run("classify", CHAIR, "-m", f"{SECOND},{renamed}")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1 and "different classes" in result.stderr
    assert "'airplane' in one, 'aeroplane' in the other" in result.stderr
    for listed, problem in [
        (f"{DEFAULT_CLASSIFIER},{DEFAULT_SEGMENTER}", "an ensemble averages classifiers"),
        (f"{DEFAULT_CLASSIFIER},{DEFAULT_CLASSIFIER}", "listed twice"),
        (f"{DEFAULT_CLASSIFIER},", "empty name"),
        (f"{DEFAULT_CLASSIFIER},no-such-model", "unknown model"),
    ]:
        refused = run("classify", CHAIR, "-m", listed)
        assert refused.exit_code == 2 and refused.stderr.count("\n") == 1 and problem in refused.stderr, listed


def test_eval_takes_a_list_and_reports_it_like_a_model(tiny_modelnet: Path, tmp_path: Path) -> None:  # noqa: F811
    listed = f"{DEFAULT_CLASSIFIER},{SECOND}"
    result = run("eval", listed, "--data", str(tiny_modelnet), "--limit", "12")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == f"{DEFAULT_CLASSIFIER}+{SECOND}"
    assert [member["model"] for member in report["members"]] == [DEFAULT_CLASSIFIER, SECOND]
    assert set(report["protocols"]) == {"z/z", "z/SO3", "SO3/SO3", "single-view/SO3"}
    assert all({"overall_accuracy", "ece", "nll"} <= figures.keys() for figures in report["protocols"].values())
    assert report["rotation_agreement"]["agreement"] == 1.0  # both members exactly invariant: so is their mean
    refused = run("eval", listed, "--data", str(tiny_modelnet), "--update-card")
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1 and "has no card" in refused.stderr
