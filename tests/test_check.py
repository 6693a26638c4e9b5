"""`geocli check`: invariance measured on the user's files, through the command line and the library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from geocli.check import transformed_copies
from geocli.cli import app
from geocli.geometry import frames
from geocli.io import read_geometry

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
CHAIR = str(SAMPLES / "chair_0001.pcd")
FLOAT_NOISE = 1e-4  # the invariance tests' tolerance on outputs

runner = CliRunner()


def check(*args: str):
    return runner.invoke(app, ["check", *args])


@pytest.mark.slow
def test_default_classifier_agrees_fully_on_every_sample_file() -> None:
    """TinvNN is invariant by construction: every pose of every sample, cloud or mesh, gets the same class."""
    result = check(str(SAMPLES), "-n", "4", "-f", "json")
    assert result.exit_code == 0, result.stderr
    records = json.loads(result.stdout)
    assert {Path(r["path"]).name for r in records} >= {
        "chair_0001.pcd",
        "cow.obj",
        "human_1.ply",
        "bunny_4k.stl",
        "teapot.off",
    }
    for record in records:
        assert record["agreement"] == 1.0, record
        assert record["max_score_change"] < FLOAT_NOISE, record
        assert record["rotations"] == 4 and record["category_agreement"] is None and record["error"] is None


def test_segmenter_reports_point_and_category_agreement() -> None:
    result = check(CHAIR, "-m", "tinvnn-edge-psb", "-n", "2", "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["label"] == "Chair"  # the category, for a segmenter
    assert record["agreement"] == 1.0 and record["category_agreement"] == 1.0
    assert record["max_score_change"] < FLOAT_NOISE


def test_learned_invariance_is_measured_not_assumed() -> None:
    result = check(CHAIR, "-m", "parot-modelnet40", "-n", "3", "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert 0.0 <= record["agreement"] <= 1.0 and 0.0 <= record["max_score_change"] <= 1.0
    assert record["label"] and record["rotations"] == 3


def test_a_pose_dependent_network_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard against a vacuous check: with frames that do not turn with the cloud, the scores move."""
    monkeypatch.setattr(
        frames,
        "principal_axes",
        lambda points, *a, **k: (
            torch.eye(3, dtype=points.dtype).expand(len(points), 3, 3),
            torch.ones(len(points), 3, dtype=points.dtype),
        ),
    )
    result = check(CHAIR, "-n", "4", "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["max_score_change"] > 100 * FLOAT_NOISE


def test_bad_files_get_one_line_each_and_the_rest_are_checked(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.pcd"
    result = check(str(empty), CHAIR, str(missing), "-n", "2")
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in result.stderr
    for line, name in zip(errors, ("empty.ply", "missing.pcd")):
        assert line.startswith(f"geocli: error: {tmp_path / name}: ")
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "chair" in rows[CHAIR] and "100.0" in rows[CHAIR]


def test_copies_are_seeded_rotated_reflected_scaled_and_shuffled() -> None:
    geometry = read_geometry(SAMPLES / "human_1.ply")
    copies = transformed_copies(geometry, 4, seed=3)
    again = transformed_copies(geometry, 4, seed=3)
    centred = geometry.points - geometry.points.mean(axis=0)
    for i, ((copy, order), (twin, _)) in enumerate(zip(copies, again)):
        assert np.array_equal(copy.points, twin.points)
        assert not np.array_equal(order, np.arange(len(order)))
        moved = copy.points - copy.points.mean(axis=0)
        # A similarity: solve moved = centred[order] @ M.T and check M is s * (orthogonal), det sign alternating.
        matrix = np.linalg.lstsq(centred[order], moved, rcond=None)[0].T
        scale = np.cbrt(abs(np.linalg.det(matrix)))
        assert 0.1 <= scale <= 10
        assert np.allclose(matrix @ matrix.T, scale**2 * np.eye(3), atol=1e-9 * scale**2)
        assert np.sign(np.linalg.det(matrix)) == (-1 if i % 2 else 1)
        # The mesh's surface is the same surface: faces follow the shuffled vertices.
        assert np.allclose(copy.points[copy.faces] - copy.points.mean(axis=0), centred[geometry.faces] @ matrix.T)
