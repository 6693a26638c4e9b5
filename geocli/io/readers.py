"""Read point clouds and meshes from common 3D formats into one ``Geometry`` type.

Backends, chosen per format after checking how each one fails:

* Open3D: PLY, PCD, STL, OFF. Its legacy readers never raise; they log a warning and return
  empty (or, for PLY, partially filled) geometry, so every result is validated here.
* trimesh: OBJ (Open3D's OBJ reader silently drops quads and other polygons), GLB/GLTF scenes,
  and OFF files whose first line Open3D rejects (ModelNet's ``OFF490 518 0``).
* laspy (+ lazrs for LAZ), numpy for NPY/NPZ and text tables.

Heavy libraries are imported inside the functions that need them, so the CLI starts fast.
Every failure surfaces as a one-line ``GeometryError`` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from geocli.io.errors import GeometryError, one_line
from geocli.io.ply import MAX_HEADER_LINES, read_header, strip_faces

__all__ = [
    "DEFAULT_MAX_POINTS",
    "SUPPORTED_EXTENSIONS",
    "Geometry",
    "GeometryError",
    "read_geometry",
]

DEFAULT_MAX_POINTS = 5_000_000
"""Files with more points (or mesh vertices) than this are refused unless ``max_points`` is raised.

A guard against reading a huge scan by mistake: five million float64 points are 120 MB before any
processing, and classification only needs a few thousand. Where a header states the count
(PLY, PCD, OFF, LAS/LAZ, NPY/NPZ) the file is refused before its data are read; text tables
stop reading after ``max_points + 1`` rows; OBJ, STL and GLB/GLTF are checked after reading.
"""

@dataclass(frozen=True, eq=False)
class Geometry:
    """A point cloud (``faces is None``) or a triangle mesh, in the file's raw units.

    ``eq=False``: comparing numpy arrays with ``==`` has no single truth value.
    """

    path: str
    points: np.ndarray
    faces: np.ndarray | None
    normals: np.ndarray | None
    colors: np.ndarray | None

    @property
    def is_mesh(self) -> bool:
        return self.faces is not None

    def info(self) -> dict[str, Any]:
        """A JSON-ready summary for ``geocli info`` and logs."""
        return {
            "path": self.path,
            "format": Path(self.path).suffix.lower().lstrip("."),
            "points": int(len(self.points)),
            "faces": 0 if self.faces is None else int(len(self.faces)),
            "bounds": {"min": self.points.min(axis=0).tolist(), "max": self.points.max(axis=0).tolist()},
            "has_normals": self.normals is not None,
            "has_colors": self.colors is not None,
        }


def read_geometry(path: str | os.PathLike, max_points: int = DEFAULT_MAX_POINTS) -> Geometry:
    """Read ``path`` by its extension; raise ``GeometryError`` for anything unusable.

    Mesh formats (OBJ, STL, OFF, GLB, GLTF) must contain faces; PLY is a mesh when it has faces
    (or triangle strips) and a point cloud otherwise; the other formats are point clouds.
    """
    name = os.fspath(path)
    extension = _check_file(name)
    reader = _READERS.get(extension)
    if reader is None:
        found = f"extension {extension!r}" if extension else "file without an extension"
        raise GeometryError(name, f"unsupported {found} (supported: {' '.join(SUPPORTED_EXTENSIONS)})")
    try:
        return reader(name, max_points)
    except GeometryError:
        raise
    except MemoryError:
        raise GeometryError(name, "not enough memory to read this file") from None
    except Exception as exc:  # backends raise anything from IndexError to RuntimeError
        raise GeometryError(name, f"cannot read {_format_name(name)} file: {one_line(exc)}") from exc


def _check_file(path: str) -> str:
    """Fail early with a precise reason; return the lower-case extension."""
    if not os.path.exists(path):
        raise GeometryError(path, "file not found")
    if os.path.isdir(path):
        raise GeometryError(path, "is a directory, not a file")
    try:
        with open(path, "rb") as handle:
            empty = not handle.read(1)
    except PermissionError:
        raise GeometryError(path, "permission denied") from None
    except OSError as exc:
        raise GeometryError(path, f"cannot open file: {exc.strerror or exc}") from None
    if empty:
        raise GeometryError(path, "file is empty")
    return Path(path).suffix.lower()


def _format_name(path: str) -> str:
    return Path(path).suffix.lstrip(".").upper()


def _unreadable(path: str) -> GeometryError:
    return GeometryError(path, f"no geometry could be read: corrupt or unsupported {_format_name(path)} data")


def _check_count(path: str, count: int, max_points: int) -> None:
    if count > max_points:
        raise GeometryError(
            path, f"has {count:,} points, more than the max_points limit of {max_points:,} (the limit can be raised)"
        )


def _build(
    path: str,
    points: Any,
    max_points: int,
    *,
    faces: Any = None,
    normals: Any = None,
    colors: Any = None,
    needs_faces: bool = False,
) -> Geometry:
    """Validate backend output and normalise dtypes, so every reader fails the same way."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0:
        raise GeometryError(path, "no points found")
    _check_count(path, len(points), max_points)
    bad = int((~np.isfinite(points).all(axis=1)).sum())
    if bad:
        raise GeometryError(path, f"{bad:,} of {len(points):,} points have NaN or infinite coordinates")
    colors = _attribute(colors)
    return Geometry(
        path=path,
        points=np.ascontiguousarray(points),
        faces=_checked_faces(path, faces, len(points), needs_faces),
        normals=_attribute(normals),
        colors=None if colors is None else np.clip(colors, 0.0, 1.0),
    )


def _checked_faces(path: str, faces: Any, n_points: int, needs_faces: bool) -> np.ndarray | None:
    faces = None if faces is None else np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if faces is None or len(faces) == 0:
        if needs_faces:
            raise GeometryError(path, "mesh has no faces")
        return None
    low, high = int(faces.min()), int(faces.max())
    if low < 0 or high >= n_points:
        bad = low if low < 0 else high
        raise GeometryError(path, f"face indices out of range: index {bad} with {n_points:,} vertices")
    return np.ascontiguousarray(faces)


def _attribute(values: Any) -> np.ndarray | None:
    """Per-point normals or colours as float64, ``None`` when the file has none."""
    if values is None or len(values) == 0:
        return None
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64))


# --- Open3D -----------------------------------------------------------------------------------


def _open3d() -> Any:
    """Import Open3D and mute its console warnings: geocli reports problems itself."""
    import open3d as o3d

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    return o3d


@contextlib.contextmanager
def _native_stderr() -> Iterator[list[str]]:
    """Capture what C code writes to file descriptor 2 while the block runs.

    Open3D's PLY parser (RPly) reports corrupt data only there, whatever the verbosity level,
    and still returns partially filled geometry, so its messages are the only failure signal.
    Process-wide: output of other threads during the read is swallowed too.
    """
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                lines.extend(sink.read().decode(errors="replace").splitlines())
    finally:
        os.close(saved)


def _read_ply_with_open3d(path: str, read: Callable[[str], Any]) -> Any:
    with _native_stderr() as messages:
        geometry = read(path)
    problems = [line.removeprefix("RPly:").strip() for line in messages if line.startswith("RPly:")]
    if problems:
        raise GeometryError(path, f"corrupt PLY data ({problems[0]})")
    return geometry


def _read_ply(path: str, max_points: int) -> Geometry:
    header = read_header(path)
    _check_count(path, header.count("vertex"), max_points)
    o3d = _open3d()
    if header.count("face"):
        mesh = _read_ply_with_open3d(path, o3d.io.read_triangle_mesh)
        return _from_open3d_mesh(path, mesh, max_points)
    cloud = _read_ply_with_open3d(path, o3d.io.read_point_cloud)
    # Open3D ignores triangle strips (e.g. the Igea scan); decode them here.
    faces = strip_faces(path, header) if header.count("tristrips") else None
    return _build(
        path,
        cloud.points,
        max_points,
        faces=faces,
        normals=cloud.normals,
        colors=cloud.colors,
        needs_faces=faces is not None,
    )


def _from_open3d_mesh(path: str, mesh: Any, max_points: int) -> Geometry:
    return _build(
        path,
        mesh.vertices,
        max_points,
        faces=mesh.triangles,
        normals=mesh.vertex_normals,
        colors=mesh.vertex_colors,
        needs_faces=True,
    )


def _read_pcd(path: str, max_points: int) -> Geometry:
    declared = _pcd_point_count(path)
    _check_count(path, declared, max_points)
    cloud = _open3d().io.read_point_cloud(path)
    if len(cloud.points) != declared:
        if declared == 0:
            raise GeometryError(path, "no points found")
        raise _unreadable(path)
    return _build(path, cloud.points, max_points, normals=cloud.normals, colors=cloud.colors)


def _pcd_point_count(path: str) -> int:
    with open(path, "rb") as handle:
        for line in islice(handle, MAX_HEADER_LINES):
            words = line.split()
            if len(words) == 2 and words[0] == b"POINTS":
                return int(words[1])
            if words[:1] == [b"DATA"]:
                break
    raise GeometryError(path, "invalid PCD header: no POINTS line")


def _read_stl(path: str, max_points: int) -> Geometry:
    """STL repeats each vertex once per facet; merge exact duplicates into a shared-vertex mesh.

    STL normals are per facet, so no per-vertex normals are returned.
    """
    mesh = _open3d().io.read_triangle_mesh(path)
    if len(mesh.vertices) == 0:
        raise _unreadable(path)
    points, inverse = np.unique(np.asarray(mesh.vertices), axis=0, return_inverse=True)
    faces = inverse.reshape(-1)[np.asarray(mesh.triangles)]
    return _build(path, points, max_points, faces=faces, needs_faces=True)


def _read_off(path: str, max_points: int) -> Geometry:
    n_vertices, n_faces = _off_counts(path)
    _check_count(path, n_vertices, max_points)
    if n_vertices == 0:
        raise GeometryError(path, "no points found")
    if n_faces == 0:
        raise GeometryError(path, "mesh has no faces")
    mesh = _open3d().io.read_triangle_mesh(path)
    if len(mesh.vertices) == 0:  # e.g. ModelNet's "OFF490 518 0" first line, which trimesh accepts
        return _read_trimesh(path, max_points)
    return _from_open3d_mesh(path, mesh, max_points)


def _off_counts(path: str) -> tuple[int, int]:
    """Vertex and face counts from an OFF header, tolerating comments and ``OFF490 518 0``."""
    tokens: list[bytes] = []
    with open(path, "rb") as handle:
        for line in islice(handle, MAX_HEADER_LINES):
            tokens += line.split(b"#")[0].split()
            if len(tokens) >= 3:
                break
    magic = re.fullmatch(rb"([A-Z0-9]*OFF)(\d*)", tokens[0]) if tokens else None
    if magic is None:
        raise GeometryError(path, "not an OFF file: the first word must be OFF")
    counts = ([magic.group(2)] if magic.group(2) else []) + tokens[1:]
    try:
        return int(counts[0]), int(counts[1])
    except (IndexError, ValueError):
        raise GeometryError(path, "invalid OFF header: expected vertex and face counts") from None


# --- trimesh ----------------------------------------------------------------------------------


def _read_trimesh(path: str, max_points: int) -> Geometry:
    """Concatenate every triangle mesh of the file's scene, with node transforms applied."""
    import trimesh

    try:
        scene = trimesh.load_scene(path, process=False)
    except IndexError as exc:  # trimesh's OBJ parser indexes vertices with the face indices
        raise GeometryError(path, f"face indices out of range ({one_line(exc)})") from None
    except FileNotFoundError as exc:  # a .gltf's external buffer or texture
        raise GeometryError(path, f"referenced file not found: {one_line(exc)}") from None
    meshes = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not meshes:
        has_points = any(len(getattr(g, "vertices", ())) for g in scene.geometry.values())
        raise GeometryError(path, "mesh has no faces") if has_points else _unreadable(path)
    mesh = trimesh.util.concatenate(meshes)
    colors = mesh.visual.vertex_colors[:, :3] / 255.0 if mesh.visual.kind == "vertex" else None
    return _build(path, mesh.vertices, max_points, faces=mesh.faces, colors=colors, needs_faces=True)


# --- laspy, numpy -------------------------------------------------------------------------------


def _read_las(path: str, max_points: int) -> Geometry:
    import laspy

    with laspy.open(path) as reader:
        _check_count(path, reader.header.point_count, max_points)
        las = reader.read()
    points = np.column_stack([las.x, las.y, las.z])
    return _build(path, points, max_points, colors=_las_colors(las))


def _las_colors(las: Any) -> np.ndarray | None:
    """LAS colours are 16-bit by the spec, but many writers store 8-bit values in them."""
    if not {"red", "green", "blue"} <= set(las.point_format.dimension_names):
        return None
    rgb = np.column_stack([las.red, las.green, las.blue]).astype(np.float64)
    return rgb / (65535.0 if rgb.max() > 255 else 255.0)


def _read_npy(path: str, max_points: int) -> Geometry:
    with open(path, "rb") as handle:
        _check_array_header(path, handle, max_points)
    array = np.load(path, mmap_mode="r", allow_pickle=False)  # mmap: copy only the xyz columns
    return _build(path, np.array(array[:, :3], dtype=np.float64), max_points)


def _read_npz(path: str, max_points: int) -> Geometry:
    with np.load(path, allow_pickle=False) as archive:
        key = _npz_key(path, archive.files)
        with archive.zip.open(f"{key}.npy") as handle:
            _check_array_header(path, handle, max_points)
        return _build(path, archive[key][:, :3], max_points)


def _npz_key(path: str, keys: list[str]) -> str:
    if "points" in keys:
        return "points"
    if len(keys) == 1:
        return keys[0]
    raise GeometryError(path, f"expected an array named 'points', found: {', '.join(keys) or 'no arrays'}")


def _check_array_header(path: str, handle: Any, max_points: int) -> None:
    """Validate shape and dtype from the .npy header, before the data are read."""
    version = np.lib.format.read_magic(handle)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(handle)
    if dtype.hasobject:
        raise GeometryError(path, "array holds Python objects (pickled data), which geocli never loads")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise GeometryError(path, f"expected a numeric array, got dtype {dtype}")
    if len(shape) != 2 or shape[1] < 3:
        raise GeometryError(path, f"expected an array of shape (N, 3) or (N, >3), got {shape}")
    _check_count(path, shape[0], max_points)


def _read_text(path: str, max_points: int) -> Geometry:
    """Whitespace- or comma-separated numbers, x y z first; XYZN adds nx ny nz."""
    skip, delimiter = _text_layout(path)
    with warnings.catch_warnings():  # numpy notes that comment lines do not count towards max_rows
        warnings.filterwarnings("ignore", message="Input line", category=UserWarning)
        try:
            table = np.loadtxt(path, delimiter=delimiter, comments="#", skiprows=skip, ndmin=2, max_rows=max_points + 1)
        except ValueError as exc:  # drop numpy's "; use `usecols` ..." advice, meant for programmers
            raise GeometryError(path, f"cannot parse text table: {str(exc).split(';')[0]}") from None
    if table.shape[1] < 3:
        raise GeometryError(path, f"expected at least 3 numeric columns (x y z), found {table.shape[1]}")
    normals = table[:, 3:6] if path.lower().endswith(".xyzn") and table.shape[1] >= 6 else None
    return _build(path, table[:, :3], max_points, normals=normals)


def _text_layout(path: str) -> tuple[int, str | None]:
    """Lines to skip (up to a PTS-style point-count line) and the delimiter of the first data row."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        rows = ((i, line) for i, line in enumerate(handle) if line.strip() and not line.lstrip().startswith("#"))
        number, line = next(rows, (0, ""))
        skip = 0
        if len(line.replace(",", " ").split()) == 1:
            skip = number + 1
            number, line = next(rows, (0, ""))
    if not line:
        raise GeometryError(path, "no points found")
    return skip, ("," if "," in line else None)


_READERS: dict[str, Callable[[str, int], Geometry]] = {
    ".ply": _read_ply,
    ".pcd": _read_pcd,
    ".xyz": _read_text,
    ".xyzn": _read_text,
    ".pts": _read_text,
    ".txt": _read_text,
    ".obj": _read_trimesh,
    ".stl": _read_stl,
    ".off": _read_off,
    ".glb": _read_trimesh,
    ".gltf": _read_trimesh,
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".las": _read_las,
    ".laz": _read_las,
}

SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_READERS)
