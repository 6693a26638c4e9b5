"""`geocli align`: every pose of a shape comes out in one canonical pose, in the shape's own units."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from geocli.align import canonical_pose
from geocli.api import model_input, network_points
from geocli.cli import app
from geocli.geometry.rotations import random_rotations
from geocli.geometry.sampling import normalize_unit_sphere
from geocli.io import read_geometry
from geocli.io.writers import write_ply
from geocli.nets.tinvnn import TinvNN
from geocli.zoo import load_model

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"

runner = CliRunner()


def align(*args: str):
    return runner.invoke(app, ["align", *args])


def outputs(result) -> dict[str, dict]:
    """The stdout records, by input file name (the output names follow `segment`'s rule, whatever it is)."""
    return {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}


@pytest.mark.parametrize(
    "name", ["chair_0001.pcd", "cow_2048.ply", "human_1.ply"]
)  # a cloud, one with normals, a coloured mesh
def test_any_pose_aligns_to_the_same_output(name: str, tmp_path: Path) -> None:
    source = read_geometry(SAMPLES / name)
    rotation = random_rotations(1, "so3", seed=7)[0].numpy()
    shift = np.array([40.0, -25.0, 70.0])
    posed = tmp_path / f"posed_{Path(name).stem}.ply"
    write_ply(
        posed,
        source.points @ rotation.T + shift,
        faces=source.faces,
        normals=None if source.normals is None else source.normals @ rotation.T,
        colors=source.colors,
    )
    result = align(str(SAMPLES / name), str(posed), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    first, second = (read_geometry(json.loads(line)["output"]) for line in result.stdout.splitlines())
    assert np.abs(first.points - second.points).max() < 1e-4
    if source.normals is not None:
        assert np.abs(first.normals - second.normals).max() < 1e-4
    if source.faces is not None:
        assert np.array_equal(first.faces, source.faces) and np.array_equal(second.faces, source.faces)
    if source.colors is not None:
        assert np.abs(first.colors - source.colors).max() <= 0.5 / 255 + 1e-9


def test_units_are_kept_and_the_json_holds_the_transform(tmp_path: Path) -> None:
    name = "chair_0001.pcd"  # raw ModelNet units, up to ~25 from the centre
    result = align(str(SAMPLES / name), "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    record = outputs(result)[name]
    assert json.loads(Path(record["output"]).with_suffix(".json").read_text()) == record
    points = read_geometry(SAMPLES / name).points
    aligned = read_geometry(record["output"]).points
    rotation, translation = np.array(record["rotation"]), np.array(record["translation"])
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(rotation), 1.0)
    assert np.abs(points @ rotation.T + translation - aligned).max() < 1e-9
    assert np.abs((points - np.array(record["centre"])) @ rotation.T - aligned).max() < 1e-9
    # A rigid motion: the extent about the centroid, and every distance, are the input's.
    extent = lambda p: np.linalg.norm(p - p.mean(axis=0), axis=1).max()  # noqa: E731
    assert extent(points) > 10 and abs(extent(aligned) - extent(points)) < 1e-9
    assert np.allclose(np.linalg.norm(aligned[1:] - aligned[0], axis=1), np.linalg.norm(points[1:] - points[0], axis=1))
    variances = np.array(record["variances"])
    assert np.all(variances[:-1] >= variances[1:]) and variances[0] > 1  # largest first, input units squared


def test_the_pose_is_the_networks_canonical_view_in_input_units() -> None:
    """The frame is TinvNN.canonical's, applied to the model's own cloud; only units (and, when
    the sign rule makes a left-handed frame, the third axis) differ, as ``model_view`` records."""
    model = load_model("tinvnn-edge-modelnet40", device="cpu")
    for name in ("chair_0001.pcd", "cow_2048.ply"):  # right- and left-handed sign-rule frames
        geometry = read_geometry(SAMPLES / name)
        normalised, centre, scale = normalize_unit_sphere(geometry.points)
        cloud = network_points(normalised, None, model.input_points, 0) * scale + centre
        pose = canonical_pose(cloud)
        view = (
            TinvNN().canonical(torch.from_numpy(model_input(geometry, model.input_points, 0))[None])[0].double().numpy()
        )
        assert np.abs(pose.apply(cloud) * pose.view_signs / pose.radius - view).max() < 1e-5


def test_a_bad_file_gets_one_line_and_the_others_are_aligned(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    good = tmp_path / "chair.pcd"
    good.write_bytes((SAMPLES / "chair_0001.pcd").read_bytes())
    result = align(str(empty), str(good), str(SAMPLES / "teapot.off"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"geocli: error: {empty}: ") and "Traceback" not in result.stderr
    done = outputs(result)
    assert set(done) == {"chair.pcd", "teapot.off"}
    assert all(Path(r["output"]).is_file() and Path(r["output"]).with_suffix(".json").is_file() for r in done.values())


def test_an_output_onto_an_input_is_refused(tmp_path: Path) -> None:
    """Inputs ``a.ply`` and ``a.ply.ply`` aligned into their own folder: under `segment`'s naming
    rule at least one output lands on an input; each such input gets one line and stays as it was."""
    from geocli.outputs import output_paths

    inputs = [tmp_path / "a.ply", tmp_path / "a.ply.ply"]
    chair = read_geometry(SAMPLES / "chair_0001.pcd").points
    for path in inputs:
        write_ply(path, chair)
    before = {path: path.read_bytes() for path in inputs}
    refused = [t for t in output_paths([str(p) for p in inputs], tmp_path, "ply").values() if isinstance(t, str)]
    assert refused, "the naming rule changed: find inputs whose output is one of them"
    result = align(*map(str, inputs), "--out", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"geocli: error: {message}" for message in refused]
    assert len(result.stdout.splitlines()) == len(inputs) - len(refused)
    for path in inputs:
        if any(message.startswith(f"{path}: ") for message in refused):
            assert path.read_bytes() == before[path]
