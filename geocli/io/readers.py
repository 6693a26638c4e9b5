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
import errno
import os
import re
import stat
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geocli.io.errors import GeometryError, one_line
from geocli.io.ply import check_layout, header_lines, read_header, strip_faces

__all__ = [
    "DEFAULT_MAX_POINTS",
    "SUPPORTED_EXTENSIONS",
    "Geometry",
    "GeometryError",
    "read_geometry",
    "validate_points",
]

DEFAULT_MAX_POINTS = 5_000_000
"""Files with more points (or mesh vertices) than this are refused unless ``max_points`` is raised.

A guard against reading a huge scan by mistake: five million float64 points are 120 MB before any
processing, and classification only needs a few thousand. Where a header states the count
(PLY, PCD, OFF, LAS/LAZ, NPY/NPZ) the file is refused before its data are read, and the header's
counts are checked against the file size, so a lying header cannot cause a large allocation;
OBJ vertex lines are counted before parsing; STL counts its vertices as stored (three per facet,
before shared vertices are merged: that is what the backend allocates); text tables stop
reading after ``max_points + 1`` rows; GLB/GLTF are checked after reading.
"""

MAX_COORDINATE = float(np.finfo(np.float32).max)
"""Coordinates beyond float32's range (about 3.4e38) are refused: the networks compute in float32,
no float32 format can hold them, and squaring them for distances overflows even float64."""


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
    extension, head = _check_file(name)
    reader = _READERS.get(extension)
    if reader is None:
        found = f"extension {extension!r}" if extension else "file without an extension"
        raise GeometryError(name, f"unsupported {found} (supported: {' '.join(SUPPORTED_EXTENSIONS)})")
    content = _sniff(head)
    if content and extension not in _SNIFFED_EXTENSIONS[content]:
        raise GeometryError(name, f"the content is {content} data, not {_format_name(name)}: wrong file extension?")
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # backends' warnings would break one-line errors; results are checked here
            return reader(name, max_points)
    except GeometryError:
        raise
    except MemoryError:
        raise GeometryError(name, "not enough memory to read this file") from None
    except Exception as exc:  # backends raise anything from IndexError to RuntimeError
        raise GeometryError(name, f"cannot read {_format_name(name)} file: {one_line(exc)}") from exc


def _check_file(path: str) -> tuple[str, bytes]:
    """Fail early with a precise reason; return the lower-case extension and the first bytes.

    Only regular files are opened: a named pipe would block the read forever, and a device
    such as ``/dev/zero`` behind a link would never end.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise GeometryError(path, "symbolic link loop") from None
        if exc.errno == errno.ENOENT:
            broken = os.path.islink(path)
            problem = "broken symbolic link: its target does not exist" if broken else "file not found"
            raise GeometryError(path, problem) from None
        raise GeometryError(path, f"cannot open file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise GeometryError(path, "is a directory, not a file")
    if not stat.S_ISREG(mode):
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise GeometryError(path, f"not a regular file ({kind})")
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except PermissionError:
        raise GeometryError(path, "permission denied") from None
    except OSError as exc:
        raise GeometryError(path, f"cannot open file: {exc.strerror or exc}") from None
    if not head:
        raise GeometryError(path, "file is empty")
    return Path(path).suffix.lower(), head


_SNIFF_BYTES = 512
_SNIFFED_EXTENSIONS = {
    "PLY": (".ply",),
    "PCD": (".pcd",),
    "NPY": (".npy",),
    "zip (NPZ)": (".npz",),
    "LAS": (".las", ".laz"),
    "GLB": (".glb",),
    "OFF": (".off",),
}


def _sniff(head: bytes) -> str | None:
    """The format that the first bytes of a file unmistakably announce, if any.

    Used to say "wrong extension" instead of a parser's confusing complaint. Only
    signatures that no other supported format can start with are recognised; binary STL
    (whose 80-byte header is free text) and text tables have none.
    """
    first = head.split(b"\n", 1)[0].strip()
    if first == b"ply":
        return "PLY"
    if head.startswith(b"\x93NUMPY"):
        return "NPY"
    if head.startswith(b"PK\x03\x04"):
        return "zip (NPZ)"
    if head.startswith(b"LASF"):
        return "LAS"
    if head.startswith(b"glTF"):
        return "GLB"
    if head.startswith(b"# .PCD") or re.match(rb"(#[^\n]*\n)*(VERSION|FIELDS) ", head):
        return "PCD"
    if re.match(rb"[A-Z]*OFF\d*\s", head):
        return "OFF"
    return None


def _format_name(path: str) -> str:
    return Path(path).suffix.lstrip(".").upper()


def _unreadable(path: str) -> GeometryError:
    return GeometryError(path, f"no geometry could be read: corrupt or unsupported {_format_name(path)} data")


def _check_count(path: str, count: int, max_points: int, what: str = "points") -> None:
    if count > max_points:
        raise GeometryError(
            path, f"has {count:,} {what}, more than the max_points limit of {max_points:,} (the limit can be raised)"
        )


def validate_points(path: str, points: Any) -> np.ndarray:
    """Return ``points`` as a float64 (N, 3) array, or raise ``GeometryError`` if they describe no shape.

    Every reader calls this, and so should code that accepts in-memory arrays, so that files
    and arrays fail alike: no points, NaN or infinite coordinates, coordinates beyond
    ``MAX_COORDINATE``, a single point, or all points identical (there is no shape to
    classify, and centring and scaling such a cloud would divide by zero). Collinear and
    planar clouds are valid.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    n = len(points)
    if n == 0:
        raise GeometryError(path, "no points found")
    bad = int((~np.isfinite(points).all(axis=1)).sum())
    if bad:
        raise GeometryError(path, f"{bad:,} of {n:,} points have NaN or infinite coordinates")
    largest = float(np.abs(points).max())
    if largest > MAX_COORDINATE:
        problem = f"coordinates up to {largest:.3g} are too large (beyond float32's range, {MAX_COORDINATE:.3g})"
        raise GeometryError(path, problem)
    if n == 1:
        raise GeometryError(path, "only one point: a shape needs at least two distinct points")
    if (points == points[0]).all():
        raise GeometryError(path, f"all {n:,} points are identical: a shape needs at least two distinct points")
    return points


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
    _check_count(path, len(points), max_points)
    points = validate_points(path, points)
    colors = _attribute(colors)
    faces = _checked_faces(path, faces, len(points), needs_faces)
    _check_area(path, points, faces)
    return Geometry(
        path=path,
        points=np.ascontiguousarray(points),
        faces=faces,
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


def _check_area(path: str, points: np.ndarray, faces: np.ndarray | None) -> None:
    """A mesh whose faces are all degenerate has no surface to sample points from."""
    if faces is None:
        return
    corners = points[faces]
    doubled = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
    if not doubled > 0:
        raise GeometryError(path, f"mesh has zero surface area: all {len(faces):,} faces are degenerate")


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
    check_layout(path, header)
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
    declared = _check_pcd(path, max_points)
    cloud = _open3d().io.read_point_cloud(path)
    if len(cloud.points) != declared:
        if declared == 0:
            raise GeometryError(path, "no points found")
        raise GeometryError(path, f"corrupt PCD data: {len(cloud.points):,} of the {declared:,} points could be read")
    return _build(path, cloud.points, max_points, normals=cloud.normals, colors=cloud.colors)


def _check_pcd(path: str, max_points: int) -> int:
    """Check a PCD header against the max_points limit and the data that follow; return the point count.

    Open3D allocates what the header declares, reads ASCII words that are not numbers as 0,
    and ignores data beyond the declared count, so those cases are caught here first.
    """
    lines: dict[str, list[bytes]] = {}
    with open(path, "rb") as handle:
        for line in header_lines(path, handle):
            words = line.split()
            if words and not words[0].startswith(b"#"):
                lines[words[0].decode("ascii", errors="replace").upper()] = words[1:]
            if "DATA" in lines:
                break
        data_start = handle.tell()
        available = handle.seek(0, 2) - data_start
    declared = _pcd_ints(path, lines, "POINTS")[0]
    _check_count(path, declared, max_points)
    if "DATA" not in lines:
        raise GeometryError(path, "invalid PCD header: no DATA line")
    fields = [f.decode("ascii", errors="replace") for f in lines.get("FIELDS", [])]
    if not {"x", "y", "z"} <= set(fields):
        raise GeometryError(path, "invalid PCD header: FIELDS must include x, y and z")
    sizes, counts = _pcd_ints(path, lines, "SIZE"), _pcd_ints(path, lines, "COUNT", [1] * len(fields))
    if not len(fields) == len(sizes) == len(counts):
        raise GeometryError(path, "invalid PCD header: FIELDS, SIZE and COUNT must have one entry per field")
    data = lines["DATA"][0].decode("ascii", errors="replace") if lines["DATA"] else ""
    columns, row = sum(counts), sum(s * c for s, c in zip(sizes, counts))
    if data == "ascii":
        _check_pcd_ascii(path, data_start, declared, columns)
    elif data == "binary":
        _check_size(path, "PCD", declared * row, available, row)
    elif data == "binary_compressed":
        with open(path, "rb") as handle:
            handle.seek(data_start)
            compressed, uncompressed = np.frombuffer(handle.read(8).ljust(8, b"\0"), "<u4").tolist()
        _check_size(path, "PCD", compressed + 8, available, None)
        if uncompressed != declared * row:
            problem = f"corrupt PCD data: {uncompressed:,} bytes compressed, the header's points need {declared * row:,}"
            raise GeometryError(path, problem)
    else:
        raise GeometryError(path, f"invalid PCD header: unknown DATA type {data!r}")
    return declared


def _pcd_ints(path: str, lines: dict[str, list[bytes]], key: str, default: list[int] | None = None) -> list[int]:
    """The non-negative integers of header line ``key``; ``default`` if the line is absent."""
    words = lines.get(key)
    if words is None:
        if default is None:
            raise GeometryError(path, f"invalid PCD header: no {key} line")
        return default
    try:
        values = [int(word) for word in words]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        line = b" ".join([key.encode(), *words]).decode("ascii", errors="replace")
        raise GeometryError(path, f"invalid PCD header line: {line}")
    return values


def _check_pcd_ascii(path: str, data_start: int, declared: int, columns: int) -> None:
    """Every ASCII value must be a number, and rows and columns must match the header."""
    with open(path, "rb") as handle:
        handle.seek(data_start)
        try:
            table = np.loadtxt(handle, comments="#", ndmin=2, max_rows=declared + 1)
        except ValueError as exc:
            raise GeometryError(path, f"corrupt PCD data: {str(exc).split(';')[0]}") from None
    if table.shape != (declared, columns) and table.size:
        found = f"{table.shape[0]:,} of {table.shape[1]}"
        raise GeometryError(path, f"corrupt PCD data: the header declares {declared:,} rows of {columns} values, found {found}")
    if not table.size and declared:
        raise GeometryError(path, f"corrupt PCD data: the header declares {declared:,} points, the file has none")


def _check_size(path: str, kind: str, needed: int, available: int, row: int | None) -> None:
    """Binary data must fill what the header declares; a whole ``row`` more means a count too low."""
    if available < needed:
        problem = f"file ends early (the header's counts need {needed:,} bytes, {available:,} follow it)"
        raise GeometryError(path, f"corrupt {kind} data: {problem}")
    if row and available - needed >= row:
        problem = f"{available - needed:,} bytes follow the data the header declares (a count too low?)"
        raise GeometryError(path, f"corrupt {kind} data: {problem}")


def _read_stl(path: str, max_points: int) -> Geometry:
    """STL repeats each vertex once per facet; merge exact duplicates into a shared-vertex mesh.

    STL normals are per facet, so no per-vertex normals are returned.
    """
    _check_stl(path, max_points)
    mesh = _open3d().io.read_triangle_mesh(path)
    if len(mesh.vertices) == 0:
        raise _unreadable(path)
    points, inverse = np.unique(np.asarray(mesh.vertices), axis=0, return_inverse=True)
    faces = inverse.reshape(-1)[np.asarray(mesh.triangles)]
    return _build(path, points, max_points, faces=faces, needs_faces=True)


def _check_stl(path: str, max_points: int) -> None:
    """Tell binary from ASCII STL and check the size a binary header implies, before reading.

    A binary file is ``84 + 50 * facets`` bytes (extra bytes are tolerated); a file that is not
    and starts with ``solid`` is ASCII. The max_points limit counts vertices as stored, three per
    facet, since that is what Open3D allocates before they are merged.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(84)
    facets = int.from_bytes(head[80:84], "little") if len(head) == 84 else None
    if not (facets is not None and size == 84 + 50 * facets) and head.lstrip().startswith(b"solid"):
        _check_count(path, _count_in_file(path, b"vertex"), max_points, _STL_VERTICES)
        return
    if facets is None:
        raise GeometryError(path, "corrupt STL data: too short for binary STL, and not ASCII STL (no 'solid' line)")
    _check_size(path, "STL", 50 * facets, size - 84, None)
    _check_count(path, 3 * facets, max_points, _STL_VERTICES)


_STL_VERTICES = "vertices (3 per facet)"


def _count_in_file(path: str, word: bytes) -> int:
    """Occurrences of ``word`` in the file, read in chunks: a fast scan in bounded memory.

    The file is scanned as if it began with a newline, so ``b"\\nv "`` counts every line
    that starts with ``v `` (an OBJ vertex), the first one included.
    """
    total, tail = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            window = tail + chunk
            total += window.count(word)
            tail = window[len(window) - len(word) + 1 :]  # too short to hold a whole match twice
    return total


def _read_off(path: str, max_points: int) -> Geometry:
    n_vertices, n_faces = _off_counts(path)
    _check_count(path, n_vertices, max_points)
    if n_vertices == 0:
        raise GeometryError(path, "no points found")
    if n_faces == 0:
        raise GeometryError(path, "mesh has no faces")
    size = os.path.getsize(path)
    if 6 * n_vertices + 8 * n_faces > size + 1:  # "0 0 0\n" and "3 0 1 2\n" are the shortest rows
        problem = f"{n_vertices:,} vertices and {n_faces:,} faces cannot fit in {size:,} bytes"
        raise GeometryError(path, f"corrupt OFF data: {problem}")
    mesh = _open3d().io.read_triangle_mesh(path)
    if len(mesh.vertices) == 0:  # e.g. ModelNet's "OFF490 518 0" first line, which trimesh accepts
        try:
            geometry = _read_trimesh(path, max_points)
        except GeometryError as exc:
            raise GeometryError(path, f"corrupt OFF data ({exc.problem})") from None
    elif len(mesh.triangles) < n_faces:  # Open3D splits polygons into triangles, so never has fewer
        raise GeometryError(path, f"corrupt OFF data: {len(mesh.triangles):,} of the {n_faces:,} faces could be read")
    else:
        geometry = _from_open3d_mesh(path, mesh, max_points)
    if len(geometry.points) != n_vertices:
        raise GeometryError(path, f"corrupt OFF data: {len(geometry.points):,} of the {n_vertices:,} vertices could be read")
    return geometry


def _off_counts(path: str) -> tuple[int, int]:
    """Vertex and face counts from an OFF header, tolerating comments and ``OFF490 518 0``."""
    tokens: list[bytes] = []
    with open(path, "rb") as handle:
        for line in header_lines(path, handle):
            tokens += line.split(b"#")[0].split()
            if len(tokens) >= 3:
                break
    magic = re.fullmatch(rb"([A-Z0-9]*OFF)(\d*)", tokens[0]) if tokens else None
    if magic is None:
        raise GeometryError(path, "not an OFF file: the first word must be OFF")
    counts = ([magic.group(2)] if magic.group(2) else []) + tokens[1:]
    try:
        n_vertices, n_faces = int(counts[0]), int(counts[1])
    except (IndexError, ValueError):
        n_vertices = n_faces = -1
    if n_vertices < 0 or n_faces < 0:
        raise GeometryError(path, "invalid OFF header: expected vertex and face counts")
    return n_vertices, n_faces


# --- trimesh ----------------------------------------------------------------------------------


def _read_trimesh(path: str, max_points: int) -> Geometry:
    """Concatenate every triangle mesh of the file's scene, with node transforms applied."""
    import trimesh

    if path.lower().endswith(".obj"):  # count vertex lines before trimesh parses (and allocates) them
        _check_count(path, _count_in_file(path, b"\nv ") + _count_in_file(path, b"\nv\t"), max_points)
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
        shape, dtype = _check_array_header(path, handle, max_points)
        data_start = handle.tell()
    _check_size(path, "NPY", shape[0] * shape[1] * dtype.itemsize, os.path.getsize(path) - data_start, None)
    array = np.load(path, mmap_mode="r", allow_pickle=False)  # mmap: copy only the xyz columns
    return _build(path, np.array(array[:, :3], dtype=np.float64), max_points)


MAX_NPZ_COLUMNS = 64
"""An NPZ array is decompressed whole, so its width is bounded too: a point table has a few columns."""


def _read_npz(path: str, max_points: int) -> Geometry:
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            raise GeometryError(path, "not an NPZ file: not a zip archive")
    with np.load(path, allow_pickle=False) as archive:
        key = _npz_key(path, archive.files)
        with archive.zip.open(f"{key}.npy") as handle:
            shape, _ = _check_array_header(path, handle, max_points)
        if shape[1] > MAX_NPZ_COLUMNS:
            problem = f"array has {shape[1]:,} columns; NPZ point tables may have at most {MAX_NPZ_COLUMNS}"
            raise GeometryError(path, problem)
        return _build(path, archive[key][:, :3], max_points)


def _npz_key(path: str, keys: list[str]) -> str:
    if "points" in keys:
        return "points"
    if len(keys) == 1:
        return keys[0]
    raise GeometryError(path, f"expected an array named 'points', found: {', '.join(keys) or 'no arrays'}")


def _check_array_header(path: str, handle: Any, max_points: int) -> tuple[tuple[int, int], np.dtype]:
    """Validate shape and dtype from the .npy header, before the data are read; return them."""
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
    return shape, dtype


def _read_text(path: str, max_points: int) -> Geometry:
    """Whitespace- or comma-separated numbers, x y z first; XYZN adds nx ny nz."""
    skip, delimiter = _text_layout(path)
    with warnings.catch_warnings():  # numpy notes that comment lines do not count towards max_rows
        warnings.filterwarnings("ignore", message="Input line", category=UserWarning)
        try:
            table = np.loadtxt(path, delimiter=delimiter, comments="#", skiprows=skip, ndmin=2, max_rows=max_points + 1)
        except UnicodeDecodeError:
            raise GeometryError(path, "not a text table: the file holds binary data") from None
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
