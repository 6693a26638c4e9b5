"""Read point clouds and meshes from common 3D formats into one ``Geometry`` type.

PLY, PCD, OFF, OBJ and STL are parsed by geocli itself (``ply``, ``pcd``, ``meshes``): the
backends used before trusted their files: they crashed the process on a face index of -1, hung
on a named pipe an OBJ's ``mtllib`` named, and read doubles, or rows with an extra value, as other
numbers without a word. GLB/GLTF scenes are checked (``gltf``) and then read by trimesh, LAS/LAZ by laspy (+ lazrs),
NPY/NPZ and text tables by numpy, each after the counts a header states are checked against the
max_points limit and against the file size (``checks``).

Heavy libraries are imported inside the functions that need them, so the CLI starts fast.
Every failure surfaces as a one-line ``GeometryError`` naming the file.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from geocli.io import gltf, las, meshes, pcd, ply
from geocli.io.checks import check_count, check_indices, check_size, read_table, regular_file_size
from geocli.io.errors import GeometryError, one_line

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
(PLY, PCD, OFF, LAS/LAZ, NPY/NPZ, GLB/GLTF accessors) the file is refused before its data are
read, and the header's counts are checked against the file size, so a lying header cannot cause
a large allocation; OBJ vertex lines are counted before parsing; STL counts its vertices as stored
(three per facet, before shared vertices are merged); text tables stop reading after
``max_points + 1`` rows.
"""

MAX_COORDINATE = float(np.finfo(np.float32).max)
"""Coordinates beyond float32's range (about 3.4e38) are refused: the networks compute in float32,
no float32 format can hold them, and squaring them for distances overflows even float64."""


@dataclass(frozen=True, eq=False)
class Geometry:
    """A point cloud (``faces is None``) or a triangle mesh, in the file's raw units.

    ``normals`` and ``colors`` (in [0, 1]) are what every format's normals and colours mean,
    whatever their names and types in the file. ``extra`` holds every other value a PLY or
    LAS/LAZ file stores per point, by the file's names and in the file's types (LAS
    ``intensity`` uint16, a PLY ``quality`` float32), so that an output can carry them on
    unchanged; it is empty for the other formats. ``eq=False``: comparing numpy arrays with
    ``==`` has no single truth value.
    """

    path: str
    points: np.ndarray
    faces: np.ndarray | None
    normals: np.ndarray | None
    colors: np.ndarray | None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

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
    """Fail early with a precise reason; return the lower-case extension and the first bytes."""
    regular_file_size(path)
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
    extra: dict[str, np.ndarray] | None = None,
    needs_faces: bool = False,
) -> Geometry:
    """Validate backend output and normalise dtypes, so every reader fails the same way."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    check_count(path, len(points), max_points)
    points = validate_points(path, points)
    extra = extra or {}
    if any(len(values) != len(points) for values in extra.values()):
        raise GeometryError(path, "a per-point value has fewer or more values than there are points")
    colors = _attribute(colors)
    faces = _checked_faces(path, faces, len(points), needs_faces)
    _check_area(path, points, faces)
    return Geometry(
        path=path,
        points=np.ascontiguousarray(points),
        faces=faces,
        normals=_attribute(normals),
        colors=None if colors is None else np.clip(colors, 0.0, 1.0),
        extra=extra,
    )


def _checked_faces(path: str, faces: Any, n_points: int, needs_faces: bool) -> np.ndarray | None:
    faces = None if faces is None else np.asarray(faces).reshape(-1, 3)
    if faces is None or len(faces) == 0:
        if needs_faces:
            raise GeometryError(path, "mesh has no faces")
        return None
    return np.ascontiguousarray(check_indices(path, faces, n_points))


def _check_area(path: str, points: np.ndarray, faces: np.ndarray | None) -> None:
    """A mesh whose faces are all degenerate has no surface to sample points from.

    The first faces almost always settle it, in a fraction of the time all of them take: the
    points are finite and within ``MAX_COORDINATE`` (``validate_points`` came first), so every
    doubled area is finite and the sum is positive exactly where one of them is.
    """
    if faces is None:
        return
    for some in (faces[:_FIRST_FACES], faces):
        corners = points[some]
        doubled = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
        if doubled > 0:
            return
    raise GeometryError(path, f"mesh has zero surface area: all {len(faces):,} faces are degenerate")


_FIRST_FACES = 64


def _attribute(values: Any) -> np.ndarray | None:
    """Per-point normals or colours as float64, ``None`` when the file has none."""
    if values is None or len(values) == 0:
        return None
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64))


# --- parsed by geocli, or checked and then read by trimesh -------------------------------------


def _read_ply(path: str, max_points: int) -> Geometry:
    """A mesh when the file has faces or triangle strips, a point cloud otherwise."""
    header = ply.read_header(path)
    check_count(path, header.count("vertex"), max_points)
    ply.check_layout(path, header)
    points, faces, normals, colors, extra = ply.read_ply(path, header)
    return _build(
        path,
        points,
        max_points,
        faces=faces,
        normals=normals,
        colors=colors,
        extra=extra,
        needs_faces=faces is not None,
    )


def _read_pcd(path: str, max_points: int) -> Geometry:
    points, normals, colors = pcd.read_pcd(path, max_points)
    return _build(path, points, max_points, normals=normals, colors=colors)


def _read_mesh(parse: Callable[[str, int], tuple[np.ndarray, np.ndarray]]) -> Callable[[str, int], Geometry]:
    """A reader for a format whose parser returns vertices and triangles."""

    def read(path: str, max_points: int) -> Geometry:
        points, faces = parse(path, max_points)
        return _build(path, points, max_points, faces=faces, needs_faces=True)

    return read


def _read_gltf(path: str, max_points: int) -> Geometry:
    points, faces, colors = gltf.read_gltf(path, max_points)
    if faces is None:
        raise GeometryError(path, "mesh has no faces")
    return _build(path, points, max_points, faces=faces, colors=colors, needs_faces=True)


# --- laspy, numpy -------------------------------------------------------------------------------


def _read_las(path: str, max_points: int) -> Geometry:
    points, colors, dimensions = las.read_las(path, max_points)
    return _build(path, points, max_points, colors=colors, extra=dimensions)


MAX_COLUMNS = 64
"""An NPY/NPZ point table has a few columns (an NPZ array is decompressed whole, so its width is
bounded); one of 3 rows and more columns is a transposed cloud."""


def _read_npy(path: str, max_points: int) -> Geometry:
    with open(path, "rb") as handle:
        shape, dtype, _ = _check_array_header(path, handle, max_points)
        data_start = handle.tell()
    row = shape[1] * dtype.itemsize  # a header length that lies leaves bytes over: refused, not read shifted
    check_size(path, "NPY", shape[0] * row, os.path.getsize(path) - data_start, row)
    array = np.load(path, mmap_mode="r", allow_pickle=False)  # mmap: copy only the xyz columns
    return _build(path, np.array(array[:, :3], dtype=np.float64), max_points)


def _read_npz(path: str, max_points: int) -> Geometry:
    """The array's x, y, z columns, inflated a block of rows at a time.

    ``np.load`` inflates a whole array, and deflate packs a gigabyte of zeros into a megabyte:
    here the array's size is first checked against the size the archive records for it, and
    only the first three columns are kept.
    """
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            raise GeometryError(path, "not an NPZ file: not a zip archive")
    with zipfile.ZipFile(path) as archive:
        member = npz_member(path, archive)
        with archive.open(member) as handle:
            shape, dtype, fortran = _check_array_header(path, handle, max_points)
            row = shape[1] * dtype.itemsize
            check_size(path, "NPZ", shape[0] * row, member.file_size - handle.tell(), row)
            points = _first_columns(handle, shape, dtype, fortran)
        return _build(path, points, max_points)


_BLOCK_ROWS = 1 << 16


def _first_columns(handle: Any, shape: tuple[int, int], dtype: np.dtype, fortran: bool) -> np.ndarray:
    """The first three columns of the array that follows the header, read ``_BLOCK_ROWS`` rows at a time."""
    rows, columns = shape
    if fortran:  # column after column: x, y and z come first
        return np.frombuffer(handle.read(3 * rows * dtype.itemsize), dtype).reshape(3, rows).T
    blocks = []
    for first in range(0, rows, _BLOCK_ROWS):
        count = min(_BLOCK_ROWS, rows - first)
        block = np.frombuffer(handle.read(count * columns * dtype.itemsize), dtype)
        blocks.append(block.reshape(count, columns)[:, :3].copy())  # a view would keep the whole block alive
    return np.concatenate(blocks) if blocks else np.empty((0, 3))


def npz_member(path: str, archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The archive member that holds the points: ``points.npy``, or the only member."""
    names = archive.namelist()
    keys = [name.removesuffix(".npy") for name in names]
    return archive.getinfo(names[keys.index(_npz_key(path, keys))])


def _npz_key(path: str, keys: list[str]) -> str:
    if "points" in keys:
        return "points"
    if len(keys) == 1:
        return keys[0]
    raise GeometryError(path, f"expected an array named 'points', found: {', '.join(keys) or 'no arrays'}")


def _check_array_header(path: str, handle: Any, max_points: int) -> tuple[tuple[int, int], np.dtype, bool]:
    """Validate shape and dtype from the .npy header, before the data are read; return them.

    Points are rows of 3 or more values: a (3, N) array is a transposed cloud, not 3 points
    with N columns, and is refused rather than read as 3 wrong points.
    """
    version = np.lib.format.read_magic(handle)
    if version not in ((1, 0), (2, 0), (3, 0)):  # np.load's check, which an NPZ member read here skips
        raise GeometryError(path, f"unsupported NPY format version {version[0]}.{version[1]}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(handle)
    if dtype.hasobject:
        raise GeometryError(path, "array holds Python objects (pickled data), which geocli never loads")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise GeometryError(path, f"expected a numeric array, got dtype {dtype}")
    if len(shape) != 2 or not 3 <= shape[1] <= MAX_COLUMNS or shape[0] == 3 < shape[1]:
        problem = f"expected an array of shape (N, 3) or (N, up to {MAX_COLUMNS}), got {shape}"
        raise GeometryError(path, problem + (" (transposed?)" if len(shape) == 2 and shape[0] == 3 else ""))
    check_count(path, shape[0], max_points)
    return shape, dtype, fortran


def _read_text(path: str, max_points: int) -> Geometry:
    """Numbers separated by white space, commas or semicolons, x y z first; XYZN adds nx ny nz."""
    skip, delimiter, columns = _text_layout(path)
    with open(path, encoding="utf-8") as handle:
        table = read_table(
            path, islice(handle, skip, None), columns=columns, max_rows=max_points + 1, size=os.path.getsize(path),
            kind="cannot parse text table", delimiter=delimiter,
        )  # fmt: skip
    if table.shape[1] < 3:
        raise GeometryError(path, f"expected at least 3 numeric columns (x y z), found {table.shape[1]}")
    normals = table[:, 3:6] if path.lower().endswith(".xyzn") and table.shape[1] >= 6 else None
    return _build(path, table[:, :3], max_points, normals=normals)


def _text_layout(path: str) -> tuple[int, str | None, int]:
    """Lines to skip (up to a PTS-style point-count line), the delimiter and the column count of the first data row."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        rows = ((i, line) for i, line in enumerate(handle) if line.strip() and not line.lstrip().startswith("#"))
        number, line = next(rows, (0, ""))
        skip = 0
        if len(_TEXT_SEPARATORS.split(line.strip())) == 1:
            skip = number + 1
            number, line = next(rows, (0, ""))
    if not line:
        raise GeometryError(path, "no points found")
    delimiter = next((d for d in ";," if d in line), None)
    return skip, delimiter, len(line.split(delimiter))


_TEXT_SEPARATORS = re.compile(r"[\s,;]+")

_READERS: dict[str, Callable[[str, int], Geometry]] = {
    ".ply": _read_ply,
    ".pcd": _read_pcd,
    ".xyz": _read_text,
    ".xyzn": _read_text,
    ".pts": _read_text,
    ".txt": _read_text,
    ".obj": _read_mesh(meshes.read_obj),
    ".stl": _read_mesh(meshes.read_stl),
    ".off": _read_mesh(meshes.read_off),
    ".glb": _read_gltf,
    ".gltf": _read_gltf,
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".las": _read_las,
    ".laz": _read_las,
}

SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_READERS)
