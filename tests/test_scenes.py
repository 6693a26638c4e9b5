"""``--clusters``: scene scans split into objects (floor plane removed, DBSCAN), each object classified or
segmented as if it were its own file; on generated scenes of ModelNet40 test shapes on a noisy floor."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import MODELNET40
from geocli.cli import app
from geocli.clusters import ClusterOptions, median_spacing, split_scene
from geocli.data.modelnet40 import class_names, load_split
from geocli.data.scenes import SHADOW, Scene, make_scene, random_rotation
from geocli.io import read_geometry
from geocli.io.writers import write_ply
from geocli.metrics import instance_matches

runner = CliRunner()
SEED = 0  # a scene of a piano, a mantel and a table, each labelled right alone and in the scene


@pytest.fixture(scope="module")
def scene() -> Scene:
    return make_scene(load_split("test", MODELNET40), SEED, 3)


@pytest.fixture(scope="module")
def scene_file(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "room.ply"
    write_ply(path, scene.points)
    return path


def test_generated_scene_rests_apart_on_a_floor(scene: Scene) -> None:
    assert len(scene.shapes) == 3 and (scene.instances == -1).sum() > len(scene.points) / 2
    again = make_scene(load_split("test", MODELNET40), SEED, 3)
    assert np.array_equal(again.points, scene.points)  # seeded
    floor = scene.points[scene.instances == -1]
    centre = floor.mean(axis=0)
    normal = np.linalg.svd(floor - centre)[2][-1]
    heights = [(found - centre) @ normal for found in scene.objects]
    side = np.sign(np.median(heights[0]))
    for height in heights:  # every object on one side of the floor, its lowest point on it
        assert np.sign(np.median(height)) == side
        assert np.abs(height).min() < 0.01
    gaps = [
        np.linalg.norm(a[:, None] - b[None], axis=2).min()
        for i, a in enumerate(scene.objects)
        for b in scene.objects[i + 1 :]
    ]
    assert min(gaps) >= 0.25


def test_generated_scene_has_no_floor_under_an_object(scene: Scene) -> None:
    """A scanner does not see the floor under an object: no floor point within the object's shadow, its
    points seen from above widened by ``SHADOW`` of its spacings; the open floor comes up to that."""
    from scipy.spatial import cKDTree

    floor = scene.points[scene.instances == -1]
    centre = floor.mean(axis=0)
    in_plane = np.linalg.svd(floor - centre, full_matrices=False)[2][:2].T
    for found in scene.objects:
        reach = SHADOW * median_spacing(found)
        nearest = cKDTree((found - centre) @ in_plane).query((floor - centre) @ in_plane)[0]
        assert nearest.min() > reach and (nearest < 2 * reach).any()


def test_split_finds_every_object_and_removes_the_floor(scene: Scene) -> None:
    split = split_scene(scene.points)
    matches = instance_matches(scene.instances, split.instances)
    assert (matches >= 0).all() and len(split.objects) == 3
    assert (scene.instances[split.floor] == -1).mean() > 0.99
    assert split.plane is not None and np.isclose(np.linalg.norm(split.plane[:3]), 1)
    assert np.array_equal(split_scene(scene.points).instances, split.instances)  # seeded: the same every run
    for i, match in enumerate(matches):  # each object whole, its base given back, with next to no floor
        found = scene.instances[split.objects[match]]
        assert (found == i).sum() >= 0.99 * (scene.instances == i).sum() and (found == -1).mean() < 0.01


def test_split_is_the_same_in_any_units_and_pose(scene: Scene) -> None:
    """Every length is in point spacings: millimetres, a turn and a shift change nothing."""
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    moved = (scene.points @ q.T + [500, -20, 3]) * 1000
    assert np.array_equal(split_scene(moved).instances, split_scene(scene.points).instances)


def box_on_a_floor(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 1 m box's surface resting on a face, on a noisy 4 m floor that comes right up to its sides (none
    under it), each sampled as a scanner does, on a jittered grid 3 cm apart: the points in that frame,
    the same turned and moved at random, and which are the box's."""
    rng = np.random.default_rng(seed)
    cells = (np.stack(np.meshgrid(np.arange(32), np.arange(32)), axis=-1).reshape(-1, 2) + 0.5) / 32
    face = np.column_stack([cells + rng.uniform(-0.01, 0.01, cells.shape), np.zeros(len(cells))])
    box = np.concatenate([np.roll(face + [0, 0, side], axis, axis=1) for axis in range(3) for side in (0, 1)])
    grid = np.stack(np.meshgrid(np.arange(-1.5, 2.5, 1 / 32), np.arange(-1.5, 2.5, 1 / 32)), axis=-1).reshape(-1, 2)
    floor = np.column_stack([grid + rng.uniform(-0.01, 0.01, grid.shape), rng.normal(0, 0.004, len(grid))])
    floor = floor[~np.all((floor[:, :2] >= 0) & (floor[:, :2] <= 1), axis=1)]
    points = np.concatenate([box, floor])
    return points, points @ random_rotation(rng).T + [3, -2, 7], np.arange(len(points)) < len(box)


def test_an_object_on_a_flat_side_keeps_its_base_and_not_the_floor_beside_it() -> None:
    local, points, truth = box_on_a_floor()
    split = split_scene(points)
    (found,) = split.objects
    assert truth[found].sum() >= 0.995 * truth.sum()  # the bottom face and the sides' lowest points given back
    spacing = median_spacing(local[truth & (local[:, 2] > 0.1)])
    beyond = np.abs(np.clip(local[found, :2], 0, 1) - local[found, :2]).max(axis=1)  # outside the box's sides
    assert beyond.max() <= 0.5 * spacing  # the floor touching the box stays floor from half a spacing out
    assert (~truth[found]).sum() <= 0.01 * len(found)
    without = split_scene(points, ClusterOptions(base_reach=0))  # as floor removal alone leaves it
    assert truth[without.objects[0]].sum() < 0.9 * truth.sum() and truth[without.objects[0]].all()


def test_a_part_that_does_not_reach_the_floor_joins_the_object_below() -> None:
    """A lamp's shade whose stem was too thin to be scanned: a cluster that cannot stand on the floor alone."""
    local, _, truth = box_on_a_floor()
    shade = local[truth][::4] * 0.5 + [0.25, 0.25, 1.5]  # a half-size box hovering 0.5 m over the first
    points = np.concatenate([local, shade])
    (found,) = split_scene(points).objects
    assert np.isin(np.arange(len(local), len(points)), found).all() and truth[found[found < len(local)]].mean() > 0.99
    beside = shade + [1.5, 0, -1.5]  # on the floor beside the first: an object of its own
    assert len(split_scene(np.concatenate([local, beside])).objects) == 2


def test_a_plane_below_floor_share_is_left_alone(scene: Scene) -> None:
    """One object without a floor: a flat side under ``floor_share`` of its points is not a floor, the object
    stays whole; over it, it is taken for a floor, and given back as the base the object lies on."""
    alone = scene.objects[1]  # the mantel: its front holds 37 % of its points
    split = split_scene(alone, ClusterOptions(floor_share=0.5))
    assert split.plane is None and len(split.floor) == 0
    assert len(split.objects) == 1 and len(split.objects[0]) == len(alone)
    taken = split_scene(alone, ClusterOptions(base_reach=0))
    assert taken.plane is not None and len(taken.floor) >= 0.2 * len(alone)
    # lying on that side, which is its base: given back, the object all but whole
    assert len(split_scene(alone).objects[0]) >= 0.95 * len(alone)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="cluster_eps"):
        ClusterOptions(cluster_eps=0)
    with pytest.raises(ValueError, match="floor_share"):
        ClusterOptions(floor_share=1.5)
    with pytest.raises(ValueError, match="base_reach"):
        ClusterOptions(base_reach=-1)


def test_instance_matches() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1, -1, -1])
    found = np.array([3, 3, 3, -1, 0, 0, 1, 1, 2, 2])  # object 0 kept whole, object 1 cut in two halves
    assert instance_matches(truth, found).tolist() == [3, 0]  # 1: two halves of IoU 0.5 each, the first taken
    assert instance_matches(truth, found, threshold=0.6).tolist() == [3, -1]
    assert instance_matches(truth, np.full(10, -1)).tolist() == [-1, -1]


def test_classify_clusters_one_record_per_object_labelled_as_alone(
    scene: Scene, scene_file: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["classify", str(scene_file), "--clusters", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["instance"] for r in records] == [0, 1, 2]
    assert {r["path"] for r in records} == {str(scene_file)}
    assert sum(r["instance_points"] for r in records) < len(scene.points)
    # each object alone, as a file of its own, in its pose in the scene
    singles = []
    for i, found in enumerate(scene.objects):
        write_ply(tmp_path / f"object{i}.ply", found)
        singles.append(tmp_path / f"object{i}.ply")
    alone = runner.invoke(app, ["classify", *map(str, singles), "-f", "json"])
    assert alone.exit_code == 0, alone.stderr
    names = class_names(MODELNET40)
    by_centroid = {}
    for found, single, label in zip(scene.objects, json.loads(alone.stdout), scene.labels):
        nearest = min(records, key=lambda r: np.linalg.norm(np.array(r["centroid"]) - found.mean(axis=0)))
        by_centroid[nearest["instance"]] = nearest
        assert nearest["label"] == single["label"] == names[label]
        low, high = np.array(nearest["bounds"]["min"]), np.array(nearest["bounds"]["max"])
        assert (found.min(axis=0) <= low + 1e-9).all() and (high <= found.max(axis=0) + 1e-9).all()
    assert len(by_centroid) == 3  # one cluster per object


@pytest.mark.slow
def test_classify_clusters_csv_and_table(scene_file: Path) -> None:
    result = runner.invoke(app, ["classify", str(scene_file), "--clusters", "-f", "csv", "-k", "2"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["instance"] for row in rows] == ["0", "1", "2"]
    assert {"label_2", "instance_points", "centroid_x", "min_z", "max_y"} <= rows[0].keys()
    table = runner.invoke(app, ["classify", str(scene_file), "--clusters"])
    assert table.exit_code == 0 and "object points" in table.stdout and "centroid" in table.stdout


def test_segment_clusters_writes_an_instance_per_point(scene: Scene, scene_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["segment", str(scene_file), "--clusters", "--out", str(out), "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [found["instance"] for found in summary["objects"]] == [0, 1, 2]
    assert summary["background_points"] + sum(found["points"] for found in summary["objects"]) == len(scene.points)
    rows = list(csv.DictReader(open(out / "room.ply.csv")))
    instances = np.array([int(row["instance"]) for row in rows])
    assert sorted(set(instances.tolist())) == [-1, 0, 1, 2]
    assert all((row["part"] == "") == (row["label"] == "-1") == (row["instance"] == "-1") for row in rows)
    # the output's instances are the split's: each object's points where the scene has them
    assert (instance_matches(scene.instances, instances) >= 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["ply", "las", "npy"])
def test_segment_clusters_instance_in_every_format(scene_file: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["segment", str(scene_file), "--clusters", "--out", str(out), "-f", fmt, "--scores"])
    assert result.exit_code == 0, result.stderr
    if fmt == "npy":
        table = np.load(out / "room.ply.npy")
        labels, instances = table[:, 3], table[:, 4]
    else:
        written = read_geometry(out / f"room.ply.{fmt}")
        labels, instances = written.extra["label"], written.extra["instance"]
        if fmt == "las":  # a point in no object gets the class no part takes
            assert set(written.extra["classification"][instances == -1].tolist()) == {255}
    assert sorted(set(instances.tolist())) == [-1, 0, 1, 2]
    assert ((labels == -1) == (instances == -1)).all()


def test_scene_with_nothing_but_a_floor_gets_one_record_and_a_warning(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    floor = tmp_path / "floor.xyz"
    np.savetxt(floor, np.column_stack([rng.uniform(0, 4, (3000, 2)), rng.normal(0, 0.002, 3000)]))
    result = runner.invoke(app, ["classify", str(floor), "--clusters", "-f", "jsonl"])
    assert result.exit_code == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["instance"] is None and record["label"] is None and record["error"] is None
    assert "no object found" in record["warnings"][0]
    assert result.stderr.count("\n") == 1 and "geocli: warning:" in result.stderr
    segmented = runner.invoke(app, ["segment", str(floor), "--clusters", "--out", str(tmp_path / "out")])
    assert segmented.exit_code == 0 and json.loads(segmented.stdout)["objects"] == []


def test_bad_scene_inputs_and_options_are_one_line(tmp_path: Path, scene_file: Path) -> None:
    broken = tmp_path / "broken.ply"
    broken.write_text("ply\nformat ascii 1.0\nelement vertex 5\nend_header\n1 2\n")
    result = runner.invoke(app, ["classify", str(broken), "--clusters", "-f", "jsonl"])
    assert result.exit_code == 1 and result.stderr.startswith("geocli: error: ") and result.stderr.count("\n") == 1
    assert json.loads(result.stdout)["instance"] is None
    for args, message in [
        (["classify", str(scene_file), "--cluster-eps", "3"], "--cluster-eps needs --clusters"),
        (["classify", str(scene_file), "--clusters", "--floor-share", "0"], "--floor-share must be"),
        (["segment", str(scene_file), "--clusters", "--per-face", "--out", str(tmp_path)], "--per-face cannot"),
    ]:
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2 and message in refused.stderr and refused.stderr.count("\n") == 1
