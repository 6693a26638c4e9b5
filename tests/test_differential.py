"""geocli's readers against independent readers of the same files: counts and coordinates agree.

geocli parses PLY, PCD, OFF, OBJ and STL itself. A small random corpus (clouds with normals and
colours, triangle meshes, meshes of quads and triangles) is written by other libraries (Open3D,
trimesh, laspy, numpy) or by the plain writers of tests/corpus/hostile.py, then read by geocli
and by a reader geocli does not use for that format: Open3D for PLY and PCD clouds, trimesh for
meshes (Open3D for PLY polygons, which trimesh reads only when all have one length), laspy for
LAS, numpy for text and NPY.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from corpus.hostile import obj_bytes, off_bytes, ply_bytes
from geocli.io import Geometry, read_geometry

Reference = Callable[[Path], "Shape"]


class Shape:
    """What an independent reader found: points (or mesh vertices), triangles, normals, colours."""

    def __init__(self, points: object, faces: object = None, normals: object = None, colors: object = None) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.faces = None if faces is None else np.asarray(faces, dtype=np.int64)
        self.normals = None if normals is None or not len(normals) else np.asarray(normals, dtype=np.float64)
        self.colors = None if colors is None or not len(colors) else np.asarray(colors, dtype=np.float64)


def _open3d_cloud(path: Path) -> Shape:
    import open3d as o3d

    cloud = o3d.io.read_point_cloud(str(path))
    return Shape(cloud.points, normals=cloud.normals, colors=cloud.colors)


def _open3d_mesh(path: Path) -> Shape:
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(path))
    return Shape(mesh.vertices, mesh.triangles)


def _trimesh_mesh(path: Path) -> Shape:
    import trimesh

    mesh = trimesh.load(path, process=False, force="mesh")
    return Shape(mesh.vertices, mesh.faces)


def _laspy_cloud(path: Path) -> Shape:
    import laspy

    las = laspy.read(path)
    return Shape(np.column_stack([las.x, las.y, las.z]))


def _random_shapes(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[list[int]]]:
    """A cloud, its normals and 8-bit colours; a jittered icosphere; a tilted grid of quads and triangles."""
    import trimesh

    rng = np.random.default_rng(seed)
    cloud = (
        (rng.normal(size=(int(rng.integers(50, 300)), 3)) * rng.uniform(0.1, 100)).astype(np.float32).astype(np.float64)
    )
    normals = rng.normal(size=cloud.shape)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    colors = rng.integers(0, 256, size=cloud.shape) / 255.0
    sphere = trimesh.creation.icosphere(subdivisions=int(rng.integers(1, 3)))
    sphere.vertices = sphere.vertices * rng.uniform(0.5, 2.0, size=3) + rng.normal(
        scale=0.01, size=sphere.vertices.shape
    )
    k = int(rng.integers(3, 7))
    grid = np.stack(np.meshgrid(np.arange(k + 1.0), np.arange(k + 1.0), indexing="ij"), -1).reshape(-1, 2)
    grid += rng.uniform(-0.2, 0.2, size=grid.shape)  # jittered, still convex quads
    tilt = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    flat = (np.column_stack([grid, np.zeros(len(grid))]) @ tilt.T).astype(np.float32).astype(np.float64)
    polygons = []
    for i in range(k):
        for j in range(k):
            a, b, c, d = i * (k + 1) + j, (i + 1) * (k + 1) + j, (i + 1) * (k + 1) + j + 1, i * (k + 1) + j + 1
            polygons += [[a, b, c, d]] if rng.random() < 0.6 else [[a, b, c], [a, c, d]]
    return cloud, normals, colors, sphere, (flat, polygons)


def _write_corpus(folder: Path, seed: int) -> dict[str, Reference]:
    """Write every file; return, per file name, the independent reader to compare with."""
    import laspy
    import open3d as o3d

    cloud, normals, colors, sphere, (flat, polygons) = _random_shapes(seed)
    o3d_cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud))
    o3d_cloud.normals, o3d_cloud.colors = o3d.utility.Vector3dVector(normals), o3d.utility.Vector3dVector(colors)
    clouds = {
        "cloud_binary.ply": {},
        "cloud_ascii.ply": {"write_ascii": True},
        "cloud_binary.pcd": {},
        "cloud_ascii.pcd": {"write_ascii": True},
        "cloud_compressed.pcd": {"compressed": True},
    }
    for name, options in clouds.items():
        o3d.io.write_point_cloud(str(folder / name), o3d_cloud, **options)
    readers: dict[str, Reference] = dict.fromkeys(clouds, _open3d_cloud)
    meshes = {
        "sphere_binary.ply": {"encoding": "binary"},
        "sphere_ascii.ply": {"encoding": "ascii"},
        "sphere.off": {},
        "sphere.obj": {},
        "sphere_binary.stl": {},
        "sphere_ascii.stl": {"file_type": "stl_ascii"},
    }
    for name, options in meshes.items():
        sphere.export(folder / name, **options)
        readers[name] = _trimesh_mesh
    for name, content, reference in [
        ("grid_ascii.ply", ply_bytes(flat, polygons), _open3d_mesh),  # trimesh reads binary lists of one length only
        ("grid_big_endian.ply", ply_bytes(flat, polygons, "binary_big_endian"), _open3d_mesh),
        ("grid.off", off_bytes(flat, polygons), _trimesh_mesh),
        ("grid.obj", obj_bytes(flat, polygons), _trimesh_mesh),
    ]:
        (folder / name).write_bytes(content)
        readers[name] = reference
    np.savetxt(folder / "cloud.xyz", cloud)
    readers["cloud.xyz"] = lambda path: Shape(np.loadtxt(path))
    np.save(folder / "cloud.npy", cloud.astype(np.float32))
    readers["cloud.npy"] = lambda path: Shape(np.load(path))
    las = laspy.LasData(laspy.LasHeader(point_format=3, version="1.2"))
    las.header.scales, las.header.offsets = [0.001] * 3, cloud.min(axis=0)
    las.x, las.y, las.z = cloud.T
    las.write(folder / "cloud.las")
    readers["cloud.las"] = _laspy_cloud
    return readers


def _area(points: np.ndarray, faces: np.ndarray) -> float:
    corners = points[faces]
    return 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()


def _sorted_rows(values: np.ndarray) -> np.ndarray:
    return values[np.lexsort(values.T[::-1])]


def _assert_agree(name: str, ours: Geometry, theirs: Shape) -> None:
    """Same points (as a set of rows: STL merges repeated corners, OBJ readers may reorder), same surface."""
    close = {"rtol": 1e-6, "atol": 1e-6 * float(np.abs(theirs.points).max()), "err_msg": name}
    np.testing.assert_allclose(
        _sorted_rows(np.unique(ours.points, axis=0)), _sorted_rows(np.unique(theirs.points, axis=0)), **close
    )
    assert ours.is_mesh == (theirs.faces is not None), name
    if theirs.faces is None:
        np.testing.assert_allclose(ours.points, theirs.points, **close)  # a cloud keeps the file's order
        for mine, other in [(ours.normals, theirs.normals), (ours.colors, theirs.colors)]:
            if other is not None:  # what the reference reads (Open3D: normals and colours of PLY and PCD)
                assert mine is not None, name
                np.testing.assert_allclose(mine, other, rtol=1e-6, atol=1e-6, err_msg=name)
        return
    assert len(ours.faces) == len(theirs.faces), name
    assert _area(ours.points, ours.faces) == pytest.approx(_area(theirs.points, theirs.faces), rel=1e-6), name
    mine = _sorted_rows(np.sort(ours.points[ours.faces].reshape(-1, 9), axis=1))  # each triangle's corners, any order
    other = _sorted_rows(np.sort(theirs.points[theirs.faces].reshape(-1, 9), axis=1))
    if not name.startswith("grid"):  # polygons may be split along another diagonal: same area, other triangles
        np.testing.assert_allclose(mine, other, **close)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_geocli_reads_what_independent_readers_read(tmp_path: Path, seed: int) -> None:
    readers = _write_corpus(tmp_path, seed)
    assert {Path(n).suffix for n in readers} >= {".ply", ".pcd", ".off", ".obj", ".stl", ".xyz", ".npy", ".las"}
    for name, reference in readers.items():
        _assert_agree(name, read_geometry(tmp_path / name), reference(tmp_path / name))
