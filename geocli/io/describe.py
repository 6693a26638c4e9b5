"""``geocli info``: what a file holds, as the file holds it.

One JSON-ready record per file: :meth:`Geometry.info` (points, faces, bounds, normals and
colours), the file's own per-point *dimensions* and their types (PLY properties, PCD fields,
LAS point dimensions, an array's columns; ``text`` for values written as decimals), and for
LAS/LAZ the header's facts (:func:`geocli.io.las.header_facts`: version, point format,
scale, offset, CRS).

Bounds are given at the data's precision: a float32 coordinate is written as the shortest
decimal that is that float32 (``0.3``, not ``0.30000001192092896``), a double or a decimal
from a text file as the shortest that is that double, and a LAS coordinate as the decimal
its scale makes it (``512345.678``; :func:`geocli.io.las.coordinates`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from geocli.io import las, pcd, ply
from geocli.io.errors import GeometryError, one_line
from geocli.io.readers import DEFAULT_MAX_POINTS, _check_array_header, _text_layout, npz_member, read_geometry

Dimension = dict[str, Any]  # {"name": ..., "type": ...}, with "count" for several values a point, "bits" for bit fields
TEXT = "text"  # the type of values written as decimals


def describe(path: str, max_points: int = DEFAULT_MAX_POINTS) -> dict[str, Any]:
    """The ``geocli info`` record of one file; a ``GeometryError`` (one line) for a file geocli cannot read."""
    record = read_geometry(path, max_points).info()
    schema = _SCHEMAS.get(Path(path).suffix.lower(), _text_table)
    try:
        dimensions, facts = schema(path, max_points)
    except (OSError, ValueError) as error:  # the file changed since it was read, say
        raise GeometryError(path, f"cannot read its header again: {one_line(error)}") from None
    kind = next((d["type"] for d in dimensions if d["name"] == "x"), TEXT)
    record["bounds"] = {
        end: [at_precision(value, kind) for value in values] for end, values in record["bounds"].items()
    }
    return {**record, "dimensions": dimensions, **facts}


def at_precision(value: float, kind: str) -> float | int:
    """``value`` as the number that type ``kind`` holds, written shortest: a float32 as the shortest decimal that
    is that float32, an integer as an integer, a double (or a decimal from text) as it is."""
    if kind == TEXT or np.dtype(kind).kind not in "iuf":
        return value
    if np.dtype(kind).kind in "iu":
        return int(value)
    return float(str(np.dtype(kind).type(value)))


def _named(names: list[str], kind: str) -> list[Dimension]:
    return [{"name": name, "type": kind} for name in names]


def _ply(path: str, max_points: int) -> tuple[list[Dimension], dict[str, Any]]:
    """The vertex element's properties; a list property's type is ``list of <type>``."""
    vertex = next(e for e in ply.read_header(path).elements if e.name == "vertex")
    return [
        {"name": p.name, "type": str(p.dtype) if p.count_dtype is None else f"list of {p.dtype}"}
        for p in vertex.properties
    ], {}


def _pcd(path: str, max_points: int) -> tuple[list[Dimension], dict[str, Any]]:
    """The FIELDS, with COUNT where a field holds several values a point (a packed ``rgb`` is its float or integer)."""
    fields = pcd.read_header(path, max_points).fields
    return [{"name": f.name, "type": str(f.dtype), **({"count": f.count} if f.count != 1 else {})} for f in fields], {}


def _las(path: str, max_points: int) -> tuple[list[Dimension], dict[str, Any]]:
    return las.dimensions(path), {"las": las.header_facts(path)}


def _array(path: str, max_points: int) -> tuple[list[Dimension], dict[str, Any]]:
    """An NPY or NPZ array's columns: x, y, z, then ``column_3``, ... (the readers use the first three)."""
    with open(path, "rb") as handle:
        if path.lower().endswith(".npz"):  # the header only: the array may inflate to far more than the file
            with zipfile.ZipFile(handle) as archive, archive.open(npz_member(path, archive)) as member:
                shape, dtype, _ = _check_array_header(path, member, max_points)
        else:
            shape, dtype, _ = _check_array_header(path, handle, max_points)
    names = ["x", "y", "z", *(f"column_{i}" for i in range(3, shape[1]))]
    return _named(names, str(dtype)), {}


def _text_table(path: str, max_points: int) -> tuple[list[Dimension], dict[str, Any]]:
    """A text table's columns: x, y, z, then nx, ny, nz in an XYZN file, ``column_<i>`` otherwise."""
    columns = _text_layout(path)[2]
    extra = ["nx", "ny", "nz"] if path.lower().endswith(".xyzn") else []
    names = ["x", "y", "z", *extra, *(f"column_{i}" for i in range(3 + len(extra), columns))][:columns]
    return _named(names, TEXT), {}


def _mesh(kind: str) -> Callable[[str, int], tuple[list[Dimension], dict[str, Any]]]:
    """Mesh formats whose vertices are just x, y, z: decimals in OBJ and OFF, float32 in STL and glTF."""
    return lambda path, max_points: (_named(["x", "y", "z"], kind), {})


_SCHEMAS: dict[str, Callable[[str, int], tuple[list[Dimension], dict[str, Any]]]] = {
    ".ply": _ply,
    ".pcd": _pcd,
    ".las": _las,
    ".laz": _las,
    ".npy": _array,
    ".npz": _array,
    ".obj": _mesh(TEXT),
    ".off": _mesh(TEXT),
    ".stl": _mesh("float32"),
    ".glb": _mesh("float32"),
    ".gltf": _mesh("float32"),
}
