"""Segmentation end to end on real PSB shapes: train, export, eval, `geocli segment` and its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import REPO
from geocli.api import nearest
from geocli.cli import app
from geocli.discovery import FoundFile
from geocli.evaluate import card_metrics
from geocli.geometry.resample import radius_stratified
from geocli.geometry.rotations import random_rotations
from geocli.io import read_geometry
from geocli.io.writers import label_colors, write_labeled
from geocli.metrics import segmentation_report, shape_iou
from geocli.outputs import output_paths
from geocli.parts import decode, part_categories

SAMPLES = REPO / "sample_data"
runner = CliRunner()


@pytest.mark.slow
def test_train_export_eval(tiny_segmenter: tuple[Path, Path], tmp_path: Path) -> None:
    card_path, root = tiny_segmenter
    card = json.loads(card_path.read_text())
    assert card["task"] == "segment" and len(card["classes"]) == 94 and card["training"]["recipe"]["resamples"] == 7
    report_path = tmp_path / "report.json"
    evaluate = ["eval", str(card_path), "--data", str(root), "--out", str(report_path), "--device", "cpu"]
    evaluated = runner.invoke(app, evaluate)
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(report_path.read_text())
    assert set(report["protocols"]) == {"as given", "SO3"} and report["dataset"]["shapes"] == 12
    for figures in report["protocols"].values():
        assert {"point_accuracy", "category_miou", "instance_miou", "category_accuracy"} <= figures.keys()
        assert set(figures["per_category_miou"]) == {"Cup", "Glasses", "Plier", "Table"}
    # the network is exactly invariant, so rotating the test shapes changes (almost) no label
    assert report["rotation_agreement"]["agreement"] > 0.99
    assert "per_category_miou" not in card_metrics(report)["protocols"]["SO3"]


def test_iou_conventions() -> None:
    truth = np.array([0, 0, 1, 1])
    assert shape_iou(truth, np.array([0, 0, 1, 1]), np.array([0, 1, 2])) == 1.0  # absent part 2 counts as 1
    assert shape_iou(truth, np.array([0, 1, 1, 1]), np.array([0, 1])) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert shape_iou(truth, np.array([5, 5, 5, 5]), np.array([0, 1])) == 0.0  # another category's part is wrong
    report = segmentation_report([truth, np.array([2, 2])], [truth, np.array([2, 1])], ["A", "B"], np.array([0, 0, 1]))
    assert report["point_accuracy"] == 5 / 6 and report["per_category_miou"] == {"A": 1.0, "B": 0.5}
    assert report["category_miou"] == report["instance_miou"] == 0.75


def test_decode_keeps_one_category_per_shape() -> None:
    categories, category_of = part_categories(["A/x", "A/y", "B/x", "B/y", "B/z"])
    assert categories == ["A", "B"] and category_of.tolist() == [0, 0, 1, 1, 1]
    # most points favour B's parts; the one point whose best part is A's gets B's best part instead
    logits = torch.tensor([[[0, 0, 5, 0, 0], [0, 0, 0, 5, 0], [4, 0, 0, 0, 3]]], dtype=torch.float32)
    decoded = decode(logits, category_of)
    assert decoded.category.tolist() == [1] and decoded.labels.tolist() == [[2, 3, 4]]
    assert torch.all((decoded.scores > 0) & (decoded.scores <= 1))


def test_output_paths_mirror_inputs_and_never_replace_one(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    inputs = [
        FoundFile(str(scans / name), str(scans)) for name in ("a.ply", "a.pcd", "b.xyz", "sub/c.obj", "b.xyz.ply")
    ]
    targets = output_paths(inputs, tmp_path / "out", "ply")
    assert [targets[p] for p in inputs] == [
        tmp_path / "out" / n for n in ("a.ply.ply", "a.pcd.ply", "b.xyz.ply", "sub/c.obj.ply", "b.xyz.ply.ply")
    ]
    refused = output_paths(inputs, scans, "ply")
    assert "would overwrite this input" in refused[inputs[2]] and refused[inputs[0]] == scans / "a.ply.ply"


def test_nearest_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    queries, refs = rng.normal(size=(1000, 3)), rng.normal(size=(50, 3))
    expected = np.linalg.norm(queries[:, None] - refs[None], axis=2).argmin(axis=1)
    np.testing.assert_array_equal(nearest(queries, refs), expected)


def test_huge_clouds_are_thinned_without_regard_to_pose_or_order() -> None:
    rng = np.random.default_rng(2)
    cloud = rng.normal(size=(50_000, 3))
    rotation = random_rotations(1, "so3", seed=4)[0].numpy()
    order = rng.permutation(len(cloud))
    kept = radius_stratified(cloud, 1000)
    moved = radius_stratified((cloud @ rotation.T * 3.0 + 1.0)[order], 1000)
    assert len(kept) == 1000
    np.testing.assert_allclose((kept @ rotation.T) * 3.0 + 1.0, moved, atol=1e-9)


@pytest.mark.parametrize("fmt", ["ply", "npy", "csv"])
def test_writers_round_trip(tmp_path: Path, fmt: str) -> None:
    points = np.random.default_rng(1).normal(size=(100, 3)).astype(np.float32)
    labels, scores = np.arange(100) % 7, np.linspace(0, 1, 100)
    path = tmp_path / f"out.{fmt}"
    write_labeled(path, points, labels, scores=scores, fmt=fmt)
    if fmt == "ply":
        geometry = read_geometry(path)
        np.testing.assert_allclose(geometry.points, points, atol=1e-6)
        np.testing.assert_allclose(geometry.colors, label_colors(labels) / 255.0, atol=1e-6)
    else:
        table = np.load(path) if fmt == "npy" else np.loadtxt(path, delimiter=",", skiprows=1)
        np.testing.assert_allclose(table[:, :3], points, atol=1e-5)
        np.testing.assert_array_equal(table[:, 3], labels)
        np.testing.assert_allclose(table[:, 4], scores, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def segment(*args: str):
    return runner.invoke(app, ["segment", *args])


@pytest.mark.slow
def test_segment_cli_batch(tiny_segmenter: tuple[Path, Path], tmp_path: Path) -> None:
    card_path, _ = tiny_segmenter
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("cow_2048.ply", "igea_2048.xyz", "teapot.obj"):
        (scans / name).write_bytes((SAMPLES / name).read_bytes())
    (scans / "broken.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 5\n")
    out = tmp_path / "labeled"
    result = segment(str(scans), "--out", str(out), "-m", str(card_path), "--device", "cpu")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "broken.ply" in result.stderr and "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["input"]).name for r in records] == ["cow_2048.ply", "igea_2048.xyz", "teapot.obj"]
    for record in records:
        written = read_geometry(record["output"])
        source = read_geometry(record["input"])
        assert len(written.points) == len(source.points) == record["points"] == sum(record["parts"].values())
        assert record["category"] in {"Cup", "Glasses", "Plier", "Table"}
    assert sorted(p.name for p in out.iterdir()) == [
        "cow_2048.ply.ply",
        "igea_2048.xyz.ply",
        "labels.json",
        "teapot.obj.ply",
    ]

    again = segment(str(scans), "--out", str(out), "-m", str(card_path), "--resume", "--device", "cpu")
    skipped = [json.loads(line) for line in again.stdout.splitlines()]
    assert again.exit_code == 1 and all("skipped" in r for r in skipped) and len(skipped) == 3


@pytest.mark.slow
def test_segment_formats_and_faces(tiny_segmenter: tuple[Path, Path], tmp_path: Path) -> None:
    card_path, _ = tiny_segmenter
    teapot = read_geometry(SAMPLES / "teapot.obj")
    mesh = segment(str(SAMPLES / "teapot.obj"), "--out", str(tmp_path), "-m", str(card_path), "--per-face", "--scores")
    assert mesh.exit_code == 0, mesh.stderr
    written = read_geometry(tmp_path / "teapot.obj.ply")
    assert len(written.faces) == len(teapot.faces) and len(written.points) == len(teapot.points)
    for fmt in ("npy", "csv"):
        result = segment(str(SAMPLES / "cow_2048.ply"), "--out", str(tmp_path), "-m", str(card_path), "-f", fmt)
        assert result.exit_code == 0, result.stderr
        assert (tmp_path / f"cow_2048.ply.{fmt}").is_file()
    refused = segment(
        str(SAMPLES / "cow_2048.ply"), "--out", str(tmp_path), "-m", str(card_path), "-f", "npy", "--per-face"
    )
    assert refused.exit_code == 2 and "--per-face" in refused.stderr


@pytest.mark.slow
def test_segment_refuses_an_output_onto_its_input(tiny_segmenter: tuple[Path, Path], tmp_path: Path) -> None:
    card_path, _ = tiny_segmenter
    scan, shadow = tmp_path / "cow.ply", tmp_path / "cow.ply.ply"  # cow.ply's output would be the second input
    original = (SAMPLES / "cow_2048.ply").read_bytes()
    for path in (scan, shadow):
        path.write_bytes(original)
    result = segment(str(scan), str(shadow), "--out", str(tmp_path), "-m", str(card_path))
    assert result.exit_code == 1 and "would overwrite this input" in result.stderr
    assert shadow.read_bytes() == original and (tmp_path / "cow.ply.ply.ply").is_file()


@pytest.mark.slow
def test_models_are_used_for_their_own_task(tiny_segmenter: tuple[Path, Path], tmp_path: Path) -> None:
    card_path, _ = tiny_segmenter
    wrong = runner.invoke(app, ["classify", str(SAMPLES / "cow_2048.ply"), "-m", str(card_path)])
    assert wrong.exit_code == 2 and "is a segment model" in wrong.stderr
    wrong = segment(str(SAMPLES / "cow_2048.ply"), "--out", str(tmp_path), "-m", "fa-edge-modelnet40")
    assert wrong.exit_code == 2 and "is a classify model" in wrong.stderr
