"""Readers for every format, their one-line errors, surface sampling and unit-sphere normalisation."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geocli.geometry.sampling import normalize_unit_sphere, sample_surface
from geocli.io import (
    DEFAULT_MAX_POINTS,
    SUPPORTED_EXTENSIONS,
    Geometry,
    GeometryError,
    read_geometry,
    readers,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
SHARED = REPO.parent / "shared" / "samples"
needs_shared = pytest.mark.skipif(not (SHARED / "igea.ply").exists(), reason="shared/samples not present")


@pytest.fixture(scope="module")
def teapot() -> Geometry:
    return read_geometry(SAMPLE_DATA / "teapot.obj")


@pytest.fixture(scope="module")
def cow() -> Geometry:
    return read_geometry(SAMPLE_DATA / "cow.obj")


@pytest.fixture(scope="module")
def chair() -> np.ndarray:
    return read_geometry(SAMPLE_DATA / "chair_0001.pcd").points


def _area(points: np.ndarray, faces: np.ndarray) -> float:
    corners = points[faces]
    return 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()


def _raise_message(path: Path, **kwargs: int) -> str:
    with pytest.raises(GeometryError) as caught:
        read_geometry(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# --- every format reads ---------------------------------------------------------------------


def test_obj_keeps_every_vertex_and_face_of_the_file(teapot: Geometry) -> None:
    lines = (SAMPLE_DATA / "teapot.obj").read_text().splitlines()
    assert teapot.points.shape == (sum(line.startswith("v ") for line in lines), 3)
    assert teapot.faces.shape == (sum(line.startswith("f ") for line in lines), 3)
    first = next(line for line in lines if line.startswith("v ")).split()[1:]
    np.testing.assert_allclose(teapot.points[0], [float(v) for v in first])
    assert teapot.is_mesh and teapot.points.dtype == np.float64 and teapot.faces.dtype == np.int64


def test_obj_polygons_are_triangulated(tmp_path: Path) -> None:
    path = tmp_path / "square.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    square = read_geometry(path)
    assert len(square.faces) == 2 and _area(square.points, square.faces) == pytest.approx(1.0)


def test_off_matches_obj_and_accepts_modelnet_header(tmp_path: Path, teapot: Geometry) -> None:
    off = read_geometry(SAMPLE_DATA / "teapot.off")
    np.testing.assert_array_equal(off.faces, teapot.faces)
    np.testing.assert_allclose(off.points, teapot.points, atol=1e-6)
    glued = tmp_path / "modelnet.off"
    glued.write_text("OFF4 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n3 0 1 2\n3 0 2 3\n")
    assert read_geometry(glued).faces.tolist() == [[0, 1, 2], [0, 2, 3]]


@pytest.mark.parametrize("file_type", ["stl", "stl_ascii"])
def test_stl_merges_repeated_facet_vertices(tmp_path: Path, teapot: Geometry, file_type: str) -> None:
    import trimesh

    path = tmp_path / "teapot.stl"
    trimesh.Trimesh(teapot.points, teapot.faces, process=False).export(path, file_type=file_type)
    stl = read_geometry(path)
    assert len(stl.faces) == len(teapot.faces)
    assert len(stl.points) == len(np.unique(teapot.points.astype(np.float32), axis=0))
    assert _area(stl.points, stl.faces) == pytest.approx(_area(teapot.points, teapot.faces), rel=1e-5)


def test_ply_mesh_and_ply_cloud_with_attributes(tmp_path: Path, teapot: Geometry, chair: np.ndarray) -> None:
    import open3d as o3d

    vertices, triangles = o3d.utility.Vector3dVector(teapot.points), o3d.utility.Vector3iVector(teapot.faces)
    mesh = o3d.geometry.TriangleMesh(vertices, triangles)
    o3d.io.write_triangle_mesh(str(tmp_path / "teapot.ply"), mesh)
    ply = read_geometry(tmp_path / "teapot.ply")
    np.testing.assert_array_equal(ply.faces, teapot.faces)
    np.testing.assert_allclose(ply.points, teapot.points)

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(chair))
    normals = np.tile([0.0, 0.0, 1.0], (len(chair), 1))
    colors = np.linspace(0, 1, len(chair) * 3).reshape(-1, 3)
    cloud.normals, cloud.colors = o3d.utility.Vector3dVector(normals), o3d.utility.Vector3dVector(colors)
    o3d.io.write_point_cloud(str(tmp_path / "chair.ply"), cloud, write_ascii=True)
    read = read_geometry(tmp_path / "chair.ply")
    assert not read.is_mesh
    np.testing.assert_allclose(read.points, chair, atol=1e-4)  # ASCII PLY keeps 6 significant digits
    np.testing.assert_allclose(read.normals, normals)
    np.testing.assert_allclose(read.colors, colors, atol=1 / 255)


def test_pcd_matches_its_raw_binary_data(chair: np.ndarray) -> None:
    raw = (SAMPLE_DATA / "chair_0001.pcd").read_bytes()
    data = raw[raw.index(b"DATA binary\n") + len(b"DATA binary\n") :]
    np.testing.assert_array_equal(chair, np.frombuffer(data, "<f4").reshape(-1, 3))
    assert np.abs(chair).max() > 10  # raw ModelNet units, not normalised


@pytest.mark.parametrize(
    ("name", "template", "header"),
    [
        ("chair.xyz", "{} {} {}", ""),
        ("chair.txt", "{},{},{}", "# x,y,z\n"),
        ("chair.pts", "{} {} {} 17 255 0 0", "1024\n"),
    ],
)
def test_text_tables(tmp_path: Path, chair: np.ndarray, name: str, template: str, header: str) -> None:
    path = tmp_path / name
    path.write_text(header + "\n".join(template.format(*p) for p in chair.tolist()) + "\n")
    np.testing.assert_allclose(read_geometry(path).points, chair)


def test_xyzn_reads_normals(tmp_path: Path, chair: np.ndarray) -> None:
    normals = chair / np.linalg.norm(chair, axis=1, keepdims=True)
    path = tmp_path / "chair.xyzn"
    np.savetxt(path, np.hstack([chair, normals]))
    np.testing.assert_allclose(read_geometry(path).normals, normals)


def test_npy_and_npz(tmp_path: Path, chair: np.ndarray) -> None:
    np.save(tmp_path / "wide.npy", np.hstack([chair, np.ones((len(chair), 3))]).astype(np.float32))
    np.testing.assert_allclose(read_geometry(tmp_path / "wide.npy").points, chair)
    np.savez(tmp_path / "named.npz", labels=np.arange(3), points=chair)
    np.testing.assert_array_equal(read_geometry(tmp_path / "named.npz").points, chair)
    np.savez_compressed(tmp_path / "single.npz", cloud=chair)
    np.testing.assert_array_equal(read_geometry(tmp_path / "single.npz").points, chair)


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_and_laz_with_colours(tmp_path: Path, chair: np.ndarray, suffix: str) -> None:
    import laspy

    las = laspy.create(point_format=2, file_version="1.2")
    las.header.scales, las.header.offsets = [0.001] * 3, chair.min(axis=0)
    las.x, las.y, las.z = chair[:, 0], chair[:, 1], chair[:, 2]
    las.red = np.full(len(chair), 65535, np.uint16)
    las.green = np.zeros(len(chair), np.uint16)
    las.blue = np.full(len(chair), 32768, np.uint16)
    las.write(tmp_path / f"chair{suffix}")
    read = read_geometry(tmp_path / f"chair{suffix}")
    np.testing.assert_allclose(read.points, chair, atol=6e-4)
    np.testing.assert_allclose(read.colors[0], [1.0, 0.0, 32768 / 65535])


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_gltf_scenes_are_concatenated_with_transforms(
    tmp_path: Path, teapot: Geometry, cow: Geometry, suffix: str
) -> None:
    import trimesh

    scene = trimesh.Scene()
    scene.add_geometry(trimesh.Trimesh(teapot.points, teapot.faces, process=False))
    moved = trimesh.transformations.translation_matrix([100.0, 0.0, 0.0])
    scene.add_geometry(trimesh.Trimesh(cow.points, cow.faces, process=False), transform=moved)
    scene.export(tmp_path / f"scene{suffix}")
    read = read_geometry(tmp_path / f"scene{suffix}")
    assert len(read.points) == len(teapot.points) + len(cow.points)
    assert len(read.faces) == len(teapot.faces) + len(cow.faces)
    assert read.points[:, 0].max() == pytest.approx(cow.points[:, 0].max() + 100.0, rel=1e-6)
    for buffer in tmp_path.glob("*.bin"):  # a .gltf keeps its data in side files
        buffer.unlink()
        message = _raise_message(tmp_path / f"scene{suffix}")
        assert "referenced file 'gltf_buffer_" in message and message.endswith(".bin': file not found")


def test_importing_the_package_does_not_load_backends() -> None:
    code = "import sys, geocli.io; print(sorted({'open3d', 'trimesh', 'laspy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("path", sorted(p for p in SAMPLE_DATA.iterdir() if p.suffix in SUPPORTED_EXTENSIONS))
def test_every_sample_file_reads(path: Path) -> None:
    geometry = read_geometry(path)
    assert geometry.is_mesh == (
        path.suffix in {".obj", ".stl", ".off"} or path.name == "human_1.ply"
    )  # a part-labelled PLY mesh
    info = json.loads(json.dumps(geometry.info()))
    assert info["points"] == len(geometry.points) and info["format"] == path.suffix[1:]
    assert info["bounds"]["min"] == geometry.points.min(axis=0).tolist()


# --- PLY triangle strips ------------------------------------------------------------------------

GRID = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0], [1, 1, 0], [2, 1, 0]], dtype=np.float32)
STRIP = [0, 3, 1, 4, -1, 1, 4, 2, 5]  # two strips joined by a restart marker
STRIP_TRIANGLES = [[0, 3, 1], [1, 3, 4], [1, 4, 2], [2, 4, 5]]  # odd triangles swap to keep winding


def _strip_ply(path: Path, encoding: str) -> Path:
    header = (
        f"ply\nformat {encoding} 1.0\nelement vertex {len(GRID)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "element tristrips 1\nproperty list int int vertex_indices\nend_header\n"
    )
    if encoding == "ascii":
        body = "".join(f"{x} {y} {z}\n" for x, y, z in GRID) + " ".join(map(str, [len(STRIP), *STRIP])) + "\n"
        path.write_text(header + body)
    else:
        strip = struct.pack(f"<i{len(STRIP)}i", len(STRIP), *STRIP)
        path.write_bytes(header.encode() + GRID.astype("<f4").tobytes() + strip)
    return path


@pytest.mark.parametrize("encoding", ["ascii", "binary_little_endian"])
def test_ply_triangle_strips_are_decoded(tmp_path: Path, encoding: str) -> None:
    read = read_geometry(_strip_ply(tmp_path / "grid.ply", encoding))
    assert read.faces.tolist() == STRIP_TRIANGLES
    np.testing.assert_array_equal(read.points, GRID)


@needs_shared
def test_igea_strips_form_a_consistently_wound_mesh() -> None:
    igea = read_geometry(SHARED / "igea.ply")
    assert igea.is_mesh and len(igea.points) == 134345
    assert len(igea.faces) > 1.9 * len(igea.points)  # a closed-ish surface has about 2 triangles per vertex
    assert len(np.unique(igea.faces)) == len(igea.points)
    edges = np.concatenate([igea.faces[:, [0, 1]], igea.faces[:, [1, 2]], igea.faces[:, [2, 0]]])
    assert len(np.unique(edges, axis=0)) == len(edges)  # each directed edge once: winding is consistent


# --- errors -------------------------------------------------------------------------------------


def test_geometry_error_is_one_line_in_both_forms() -> None:
    error = GeometryError(Path("a b.ply"), "bad\n  data " + "x" * 500)
    assert error.path == "a b.ply" and str(error).startswith("a b.ply: bad data xxx")
    assert len(error.problem) == 200 and error.problem.endswith("x...")
    ready = GeometryError("<array 0>: no points: none at all")
    assert (ready.path, ready.problem, str(ready)) == ("<array 0>", "no points: none at all", str(ready))
    assert isinstance(ready, ValueError)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "file not found" in _raise_message(tmp_path / "nope.ply")
    folder = tmp_path / "folder.ply"
    folder.mkdir()
    assert "is a directory" in _raise_message(folder)


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.xyz"
    path.write_text("0 0 0\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(readers, "open", refuse, raising=False)  # root can read a chmod-000 file
    assert "permission denied" in _raise_message(path)


def test_unknown_extension_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "cloud.dat"
    path.write_text("0 0 0\n")
    message = _raise_message(path)
    assert "unsupported extension '.dat'" in message and ".ply" in message and ".laz" in message


@pytest.mark.parametrize("name", ["empty.ply", "empty.xyz", "empty.npy"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).touch()
    assert "file is empty" in _raise_message(tmp_path / name)


def test_zero_points(tmp_path: Path) -> None:
    ply = tmp_path / "none.ply"
    ply.write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nend_header\n")
    comments = tmp_path / "comments.xyz"
    comments.write_text("# nothing here\n\n")
    np.save(tmp_path / "none.npy", np.zeros((0, 3)))
    for path in (ply, comments, tmp_path / "none.npy"):
        assert "no points found" in _raise_message(path)


def test_nan_and_inf_coordinates(tmp_path: Path) -> None:
    xyz = tmp_path / "nan.xyz"
    xyz.write_text("0 0 0\nnan 1 1\n1 inf 1\n")
    assert "2 of 3 points have NaN or infinite coordinates" in _raise_message(xyz)
    pcd = tmp_path / "nan.pcd"
    header = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA ascii\n"
    pcd.write_text(header + "0 0 0\nnan 1 1\n")
    assert "NaN" in _raise_message(pcd)


def test_mesh_without_faces(tmp_path: Path) -> None:
    obj = tmp_path / "vertices.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    off = tmp_path / "vertices.off"
    off.write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    for path in (obj, off):
        assert "mesh has no faces" in _raise_message(path)


def test_face_indices_out_of_range(tmp_path: Path) -> None:
    ply = tmp_path / "bad.ply"
    ply.write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n"
    )
    off = tmp_path / "bad.off"
    off.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")
    obj = tmp_path / "bad.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    for path in (ply, off, obj):
        assert "face indices out of range" in _raise_message(path)


def test_corrupt_content_becomes_one_line_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    cow_ply = tmp_path / "cow.ply"
    read_geometry(SAMPLE_DATA / "cow_2048.ply")  # warm up imports so their output is not counted
    data = (SAMPLE_DATA / "cow_2048.ply").read_bytes()
    cow_ply.write_bytes(data[: len(data) // 2])
    capfd.readouterr()
    assert "corrupt PLY data" in _raise_message(cow_ply)
    assert capfd.readouterr() == ("", "")  # Open3D's own console messages are silenced

    cases = {
        "garbage.pcd": b"this is not a point cloud\n",
        "garbage.stl": b"\x00\x01garbage" * 10,
        "garbage.glb": b"glTF" + b"\x07" * 40,
        "letters.xyz": b"0 0 0\n1 two 3\n",
        "garbage.laz": b"LASF but not really",
        "pickle.npy": b"\x80\x04\x95not numpy",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        _raise_message(tmp_path / name)  # a GeometryError naming the file, not a traceback
    truncated = tmp_path / "truncated.pcd"
    truncated.write_bytes((SAMPLE_DATA / "chair_0001.pcd").read_bytes()[:2000])
    assert "corrupt" in _raise_message(truncated)


def test_pickled_arrays_are_never_loaded(tmp_path: Path) -> None:
    np.save(tmp_path / "objects.npy", np.array([[1, 2, 3], [4, 5, None]], dtype=object), allow_pickle=True)
    assert "pickled" in _raise_message(tmp_path / "objects.npy")


def test_max_points_is_checked_from_headers_before_reading(tmp_path: Path) -> None:
    ply = tmp_path / "huge.ply"  # header only: reading the data would fail as corrupt
    ply.write_text("ply\nformat binary_little_endian 1.0\nelement vertex 1000000000000\nproperty float x\nend_header\n")
    pcd = tmp_path / "huge.pcd"
    pcd.write_text("VERSION 0.7\nFIELDS x y z\nPOINTS 10000000000\nDATA binary\n")
    npy = tmp_path / "huge.npy"
    with npy.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": (10**10, 3)})
    for path in (ply, pcd, npy):
        message = _raise_message(path)
        assert f"max_points limit of {DEFAULT_MAX_POINTS:,}" in message and "can be raised" in message


def test_max_points_after_reading_and_raising_it(tmp_path: Path) -> None:
    xyz = tmp_path / "eleven.xyz"
    np.savetxt(xyz, np.arange(33.0).reshape(11, 3))
    assert "has 11 points, more than the max_points limit of 10" in _raise_message(xyz, max_points=10)
    assert len(read_geometry(xyz, max_points=11).points) == 11
    assert "max_points limit of 100" in _raise_message(SAMPLE_DATA / "teapot.obj", max_points=100)


# --- sampling and normalisation --------------------------------------------------------------


def test_surface_sampling_is_seeded(teapot: Geometry) -> None:
    first = sample_surface(teapot.points, teapot.faces, 500, seed=3)
    np.testing.assert_array_equal(first, sample_surface(teapot.points, teapot.faces, 500, seed=3))
    assert not np.allclose(first, sample_surface(teapot.points, teapot.faces, 500, seed=4))
    assert first.shape == (500, 3)


def test_surface_sampling_is_area_weighted_and_uniform_inside_triangles() -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 0, 0], [29, 0, 0], [10, 19, 0]], dtype=float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])  # areas 0.5 and 180.5
    points = sample_surface(vertices, faces, 40_000, seed=0)
    on_big = points[:, 0] >= 10
    assert on_big.mean() == pytest.approx(180.5 / 181.0, abs=0.002)
    assert np.all(points[:, 2] == 0) and np.all(points[:, :2] >= 0)
    assert np.all(points[~on_big, 0] + points[~on_big, 1] <= 1 + 1e-12)  # inside the small triangle
    np.testing.assert_allclose(points[on_big].mean(axis=0), vertices[3:].mean(axis=0), atol=0.1)  # centroid


def test_surface_sampling_rejects_zero_area() -> None:
    flat = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], dtype=float)
    with pytest.raises(ValueError, match="zero surface area"):
        sample_surface(flat, np.array([[0, 1, 2]]), 10)


def test_normalize_unit_sphere(chair: np.ndarray) -> None:
    normalised, centre, scale = normalize_unit_sphere(chair)
    np.testing.assert_allclose(normalised.mean(axis=0), 0, atol=1e-12)
    assert np.linalg.norm(normalised, axis=1).max() == pytest.approx(1.0)
    np.testing.assert_allclose(normalised * scale + centre, chair, atol=1e-9)
    np.testing.assert_allclose(centre, chair.mean(axis=0))


def test_normalize_identical_points_does_not_divide_by_zero() -> None:
    normalised, centre, scale = normalize_unit_sphere(np.tile([2.0, -1.0, 5.0], (4, 1)))
    assert scale == 1.0 and np.all(normalised == 0)
    np.testing.assert_array_equal(centre, [2.0, -1.0, 5.0])
