"""Issue 16, mesh sampling: how a file numbers its vertices and orders its faces changes nothing.

Each mesh (generated bumpy hulls, and sample meshes) is written again with its vertices
renumbered, its faces shuffled and each face's corners turned, as another program might
save it; both files must give the same surface samples in the same order, the same network
input, the same class and scores, and the same part label on every vertex. And the pose
still changes nothing: sampling that ignores the file's order must not depend on coordinates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import ConvexHull, cKDTree

from geocli.api import classify, load_model, prepare_input, segment
from geocli.geometry.rotations import random_rotations
from geocli.geometry.sampling import sample_surface, sample_surface_faces
from geocli.io import Geometry, read_geometry

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"


def bumpy_hull(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A closed, star-shaped, lumpy triangle mesh: the hull of points on a sphere, pushed in and out."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(int(rng.integers(150, 600)), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    lobes = rng.normal(size=(3, 3))
    radius = 1.0 + 0.4 * np.tanh(directions @ lobes).sum(axis=1) / 3
    return directions * radius[:, None] * rng.uniform(0.3, 2.0, size=3), ConvexHull(directions).simplices


def renumbered(vertices: np.ndarray, faces: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same surface listed another way; returns (vertices, faces, new index of each old vertex)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(vertices))
    new_index = np.argsort(order)
    turned = np.array([np.roll(face, shift) for face, shift in zip(new_index[faces], rng.integers(0, 3, len(faces)))])
    return vertices[order], turned[rng.permutation(len(faces))], new_index


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> str:
    """An OBJ whose coordinates read back bit for bit (17 significant digits)."""
    lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in vertices.tolist()] + [
        f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces.tolist()
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


MESHES = [f"generated-{seed}" for seed in (1, 2, 3)] + ["teapot.obj", "human_1.ply"]


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name.startswith("generated-"):
        return bumpy_hull(int(name.split("-")[1]))
    mesh = read_geometry(SAMPLES / name)
    return mesh.points, mesh.faces


def corner_sets(vertices: np.ndarray, faces: np.ndarray) -> list[list[tuple[float, ...]]]:
    """Each face's corners as a sorted list of coordinate triples: the triangle, however it is listed."""
    return [sorted(map(tuple, corners)) for corners in vertices[faces].tolist()]


@pytest.mark.parametrize("name", MESHES)
def test_surface_samples_and_network_input_do_not_depend_on_numbering(name: str) -> None:
    vertices, faces = load(name)
    for seed in range(3):
        other_vertices, other_faces, _ = renumbered(vertices, faces, seed)
        points, face = sample_surface_faces(vertices, faces, 2048, seed=seed)
        other_points, other_face = sample_surface_faces(other_vertices, other_faces, 2048, seed=seed)
        np.testing.assert_array_equal(other_points, points)  # the same set, and in the same order
        assert corner_sets(other_vertices, other_faces[other_face]) == corner_sets(vertices, faces[face])
        mesh = Geometry(path=name, points=vertices, faces=faces, normals=None, colors=None)
        other = Geometry(path=name, points=other_vertices, faces=other_faces, normals=None, colors=None)
        np.testing.assert_array_equal(prepare_input(other, 1024, seed).cloud, prepare_input(mesh, 1024, seed).cloud)


@pytest.mark.parametrize("name", MESHES)
def test_surface_samples_move_with_the_mesh(name: str) -> None:
    """Order-free must not cost pose-free: a moved, mirrored, scaled and renumbered copy gets the moved samples.

    A face's shape key is rounded, so float rounding may, about once in a million keys,
    move one to the next step and give that face other points; nothing more may change.
    """
    vertices, faces = load(name)
    rng = np.random.default_rng(len(name))
    for seed, rotation in enumerate(random_rotations(3, "so3", seed=len(name)).numpy()):
        rotation[:, 0] *= (-1) ** seed  # every other one a mirror image
        scale = 10.0 ** rng.uniform(-3, 3)
        shift = rng.normal(size=3) * 3 * scale  # a few sizes away, as geocli check moves shapes
        other_vertices, other_faces, _ = renumbered(vertices @ rotation.T * scale + shift, faces, seed)
        moved = sample_surface(vertices, faces, 2048, seed=seed) @ rotation.T * scale + shift
        distance, _ = cKDTree(sample_surface(other_vertices, other_faces, 2048, seed=seed)).query(moved)
        assert np.mean(distance < 1e-9 * scale) >= 0.998, (name, seed)


def test_each_face_gets_its_area_share_on_average() -> None:
    """Pareto sampling keeps the expected number of points of every face at n * area / total area."""
    vertices, faces = bumpy_hull(5)
    corners = vertices[faces]
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    n, seeds = 300, 200  # fewer points than faces: most faces get 0 or 1, by their own draw
    counts = sum(
        np.bincount(sample_surface_faces(vertices, faces, n, seed=seed)[1], minlength=len(faces))
        for seed in range(seeds)
    )
    expected = n * areas / areas.sum() * seeds
    for part in np.array_split(np.argsort(areas), 4):  # small to large faces
        assert counts[part].sum() == pytest.approx(expected[part].sum(), rel=0.03)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, np.ndarray]]:
    """(original, renumbered copy, new index of each original vertex) per mesh, as OBJ files."""
    folder = tmp_path_factory.mktemp("meshes")
    pairs = []
    for position, name in enumerate(MESHES):
        vertices, faces = load(name)
        other_vertices, other_faces, new_index = renumbered(vertices, faces, seed=100 + position)
        pairs.append(
            (
                write_obj(folder / f"{position}-a.obj", vertices, faces),
                write_obj(folder / f"{position}-b.obj", other_vertices, other_faces),
                new_index,
            )
        )
    return pairs


def test_classify_gives_one_answer_for_both_numberings(files: list[tuple[str, str, np.ndarray]]) -> None:
    model = load_model(device="cpu")
    for seed in (0, 1):
        results = list(
            classify([path for first, second, _ in files for path in (first, second)], model, top_k=5, seed=seed)
        )
        for first, second in zip(results[::2], results[1::2]):
            assert first.error is None and (second.label, second.top_k) == (first.label, first.top_k), first.path


def test_segment_labels_every_vertex_alike_for_both_numberings(files: list[tuple[str, str, np.ndarray]]) -> None:
    results = list(
        segment([path for first, second, _ in files for path in (first, second)], model="tinvnn-edge-psb", device="cpu")
    )
    for (first, second), (_, _, new_index) in zip(zip(results[::2], results[1::2]), files):
        assert first.category == second.category, first.path
        np.testing.assert_array_equal(second.labels[new_index], first.labels, err_msg=first.path)
        np.testing.assert_array_equal(second.scores[new_index], first.scores, err_msg=first.path)
