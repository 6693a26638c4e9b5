"""Issue 16, numerics: any scale gives the same network input, and tiny or degenerate clouds carry warnings.

Every case is generated from a seed: clouds scaled by 10**k over k in [-200, 200] and by
powers of two, clouds of 2 to 31 distinct points, clouds mostly at one spot, lines and
planes in random poses, and ordinary clouds that must stay silent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from geocli.api import classify, load_model, prepare_input, segment
from geocli.cli import app
from geocli.geometry.quality import MIN_DISTINCT_POINTS
from geocli.geometry.rotations import random_rotations
from geocli.geometry.sampling import normalize_unit_sphere
from geocli.io import Geometry, read_geometry
from geocli.io.readers import MAX_COORDINATE

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
EXPONENTS = range(-200, 201)


def cloud(points: np.ndarray) -> Geometry:
    return Geometry(path="<array>", points=points, faces=None, normals=None, colors=None)


@pytest.fixture(scope="module")
def classifier():
    return load_model(device="cpu")


@pytest.fixture(scope="module")
def shapes() -> dict[str, np.ndarray]:
    """A real scan in raw units, and a generated off-centre, anisotropic blob."""
    rng = np.random.default_rng(7)
    blob = rng.normal(size=(700, 3)) * [3.0, 1.0, 0.4] + rng.uniform(-5, 5, size=3)
    return {"chair": read_geometry(SAMPLES / "chair_0001.pcd").points, "blob": blob}


@pytest.mark.parametrize("name", ["chair", "blob"])
def test_network_input_is_the_same_at_every_scale(shapes: dict[str, np.ndarray], name: str) -> None:
    """10**-200 underflowed the squared radius to 0 (all-zero input); 10**200 overflowed it."""
    points = shapes[name]
    reference = prepare_input(cloud(points), 512, 0).cloud
    for k in EXPONENTS:
        np.testing.assert_array_equal(
            prepare_input(cloud(points * 10.0**k), 512, 0).cloud, reference, err_msg=f"scale 1e{k}"
        )


def test_normalisation_is_exact_for_powers_of_two_and_any_point_order(shapes: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(3)
    points = shapes["blob"]
    normalised, centre, scale = normalize_unit_sphere(points)
    for exponent in rng.integers(-900, 900, size=40):
        moved, moved_centre, moved_scale = normalize_unit_sphere(np.ldexp(points, exponent))
        np.testing.assert_array_equal(moved, normalised)
        np.testing.assert_array_equal(moved_centre, np.ldexp(centre, exponent))
        assert moved_scale == np.ldexp(scale, exponent)
    for _ in range(5):
        order = rng.permutation(len(points))
        np.testing.assert_array_equal(normalize_unit_sphere(points[order])[0], normalised[order])


def test_labels_do_not_depend_on_scale(shapes: dict[str, np.ndarray], classifier) -> None:
    """Through classify(): every generated scale the readers accept (up to float32's range) gets one answer."""
    rng = np.random.default_rng(16)
    points = shapes["chair"]
    accepted = [k for k in EXPONENTS if np.abs(points).max() * 10.0**k <= MAX_COORDINATE]
    chosen = sorted({accepted[0], accepted[-1], *rng.choice(accepted, size=30, replace=False).tolist()})
    results = classify([points * 10.0**k for k in chosen], classifier, top_k=3)
    reference = next(classify(points, classifier, top_k=3))
    for k, result in zip(chosen, results):
        assert (result.error, result.label, result.top_k) == (None, reference.label, reference.top_k), f"scale 1e{k}"


def _random_pose(rng: np.random.Generator, points: np.ndarray) -> np.ndarray:
    rotation = random_rotations(1, "so3", seed=int(rng.integers(1 << 30)))[0].numpy()
    return points @ rotation.T * 10.0 ** rng.uniform(-3, 3) + rng.normal(size=3) * 10


def degenerate_cases(seed: int) -> list[tuple[np.ndarray, str]]:
    """(cloud, words its one warning must hold), generated: few points, one crowded spot, lines, planes."""
    rng = np.random.default_rng(seed)
    cases = []
    for distinct in rng.choice(np.arange(2, MIN_DISTINCT_POINTS), size=6, replace=False):
        spots = rng.normal(size=(distinct, 3))
        copies = spots[rng.integers(0, distinct, size=int(rng.integers(0, 600)))]
        cases.append((_random_pose(rng, np.vstack([spots, copies])), f"only {distinct} distinct points"))
    for _ in range(3):
        outliers = int(rng.integers(MIN_DISTINCT_POINTS, 200))
        crowd = np.repeat(rng.normal(size=(1, 3)), outliers + int(rng.integers(1, 500)), axis=0)
        cases.append((np.vstack([crowd, rng.normal(size=(outliers, 3))]), "are one and the same point"))
    for _ in range(3):
        t = rng.uniform(-1, 1, size=(int(rng.integers(MIN_DISTINCT_POINTS, 400)), 1))
        cases.append((_random_pose(rng, t * [1.0, 0.0, 0.0]), "straight line"))
    for _ in range(3):
        flat = rng.uniform(-1, 1, size=(int(rng.integers(MIN_DISTINCT_POINTS, 400)), 3)) * [1.0, 1.0, 0.0]
        cases.append((_random_pose(rng, flat), "one plane"))
    return cases


def test_degenerate_clouds_carry_one_warning_each() -> None:
    for points, words in degenerate_cases(seed=20):
        warnings = prepare_input(cloud(points), 512, 0).warnings
        assert len(warnings) == 1 and words in warnings[0], (words, warnings)


def test_ordinary_clouds_and_meshes_carry_none(shapes: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(5)
    for _ in range(5):
        generated = _random_pose(
            rng, rng.normal(size=(int(rng.integers(MIN_DISTINCT_POINTS, 3000)), 3)) * rng.uniform(0.01, 1, 3)
        )
        assert prepare_input(cloud(generated), 512, 0).warnings == []
    for name in ("chair_0001.pcd", "teapot.obj", "cow_2048.ply", "bunny_4k.stl"):
        assert prepare_input(read_geometry(SAMPLES / name), 1024, 0).warnings == [], name


def test_results_and_their_dicts_carry_warnings(classifier) -> None:
    """classify's and segment's results: ``warnings`` always present, ``[]`` when none."""
    cases = degenerate_cases(seed=21)
    rng = np.random.default_rng(1)
    healthy = rng.normal(size=(400, 3)) * [1.0, 0.6, 0.3]
    predictions = list(classify([points for points, _ in cases] + [healthy, np.zeros((0, 3))], classifier))
    for prediction, (_, words) in zip(predictions, cases):
        assert prediction.label and words in prediction.to_dict()["warnings"][0]
    assert predictions[-2].to_dict()["warnings"] == [] and predictions[-1].error
    assert predictions[-1].to_dict()["warnings"] == []
    small, _ = cases[0]
    segmented = list(segment([small, healthy], model="tinvnn-edge-psb", device="cpu"))
    assert len(segmented[0].labels) == len(small) and "distinct points" in segmented[0].to_dict()["warnings"][0]
    assert segmented[1].to_dict()["warnings"] == []


def test_the_command_line_prints_each_warning_as_one_stderr_line(tmp_path: Path) -> None:
    """A three-point cloud is classified (exit 0) with a warning line; its record carries the warning too."""
    tiny = tmp_path / "tiny.xyz"
    tiny.write_text("0 0 0\n1 0 0\n0 1 0\n")
    result = CliRunner().invoke(app, ["classify", str(tiny), "-f", "jsonl", "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith(f"geocli: warning: {tiny}: ") for line in lines)
    assert json.loads(result.stdout)["warnings"] == [line.split(": ", 3)[3] for line in lines]
