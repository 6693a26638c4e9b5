"""PLY headers and triangle strips: what Open3D and trimesh do not read.

Open3D ignores ``tristrips`` elements (the Igea scan stores its faces that way) and
trimesh 5 loads such files as bare clouds, so the header is parsed here and strips
are decoded into triangles. The header also gives the vertex count cheaply, so huge
files are refused before their data are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from geocli.io.errors import GeometryError

MAX_HEADER_LINES = 1000


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


@dataclass
class _PlyProperty:
    dtype: str  # numpy type code of the value, or of each item of a list
    count_dtype: str | None = None  # numpy type code of a list's length; None for scalars


@dataclass
class _PlyElement:
    name: str
    count: int
    properties: list[_PlyProperty] = field(default_factory=list)


@dataclass
class PlyHeader:
    encoding: str
    elements: list[_PlyElement]
    data_start: int

    def count(self, name: str) -> int:
        return sum(e.count for e in self.elements if e.name == name)


def read_header(path: str) -> PlyHeader:
    """Parse the header ourselves: it gives the point count before any data is read."""
    with open(path, "rb") as handle:
        if handle.readline().strip() != b"ply":
            raise GeometryError(path, "not a PLY file: first line is not 'ply'")
        encoding, elements = "", []
        for line in islice(handle, MAX_HEADER_LINES):
            words = line.decode("ascii", errors="replace").split()
            if words[:1] == ["end_header"]:
                if encoding not in ("ascii", "binary_little_endian", "binary_big_endian"):
                    raise GeometryError(path, f"invalid PLY header: unknown format {encoding!r}")
                return PlyHeader(encoding, elements, handle.tell())
            try:
                if words[:1] == ["format"]:
                    encoding = words[1]
                elif words[:1] == ["element"]:
                    elements.append(_PlyElement(words[1], int(words[2])))
                elif words[:1] == ["property"]:
                    elements[-1].properties.append(_ply_property(words))
            except (IndexError, KeyError, ValueError):
                raise GeometryError(path, f"invalid PLY header line: {' '.join(words)}") from None
    raise GeometryError(path, "invalid PLY header: no end_header line")


def _ply_property(words: list[str]) -> _PlyProperty:
    if words[1] == "list":
        return _PlyProperty(_PLY_TYPES[words[3]], _PLY_TYPES[words[2]])
    return _PlyProperty(_PLY_TYPES[words[1]])


def strip_faces(path: str, header: PlyHeader) -> np.ndarray:
    position = next(i for i, e in enumerate(header.elements) if e.name == "tristrips")
    element = header.elements[position]
    if len(element.properties) != 1 or element.properties[0].count_dtype is None:
        raise GeometryError(path, "unsupported PLY tristrips element: expected one list of vertex indices")
    before = header.elements[:position]
    if header.encoding == "ascii":
        strips = _ascii_ply_lists(path, header.data_start, sum(e.count for e in before), element.count)
    else:
        strips = _binary_ply_lists(path, header, before, element)
    return np.concatenate([_strip_triangles(s) for s in strips] or [np.empty((0, 3), np.int64)])


def _ascii_ply_lists(path: str, data_start: int, skip_lines: int, rows: int) -> list[np.ndarray]:
    """Read ``rows`` lines of ``count i0 i1 ...`` after ``skip_lines`` lines of other elements."""
    lists = []
    with open(path, "rb") as handle:
        handle.seek(data_start)
        for line in islice(handle, skip_lines, skip_lines + rows):
            words = line.split()
            values = np.array(words[1:], dtype=np.int64)
            if not words or len(values) != int(words[0]):
                raise GeometryError(path, "corrupt PLY data: triangle strip length does not match its count")
            lists.append(values)
    if len(lists) != rows:
        raise GeometryError(path, "corrupt PLY data: file ends inside the triangle strips")
    return lists


def _binary_ply_lists(
    path: str, header: PlyHeader, before: list[_PlyElement], element: _PlyElement
) -> list[np.ndarray]:
    order = "<" if header.encoding == "binary_little_endian" else ">"
    if any(p.count_dtype for e in before for p in e.properties):
        raise GeometryError(path, "unsupported PLY layout: list properties before the triangle strips")
    skip = sum(e.count * sum(np.dtype(p.dtype).itemsize for p in e.properties) for e in before)
    count_type = np.dtype(order + str(element.properties[0].count_dtype))
    item_type = np.dtype(order + element.properties[0].dtype)
    lists = []
    with open(path, "rb") as handle:
        handle.seek(header.data_start + skip)
        for _ in range(element.count):
            length = int(_read_values(path, handle, count_type, 1)[0])
            lists.append(_read_values(path, handle, item_type, length).astype(np.int64))
    return lists


def _read_values(path: str, handle: Any, dtype: np.dtype, count: int) -> np.ndarray:
    data = handle.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise GeometryError(path, "corrupt PLY data: file ends inside the triangle strips")
    return np.frombuffer(data, dtype)


def _strip_triangles(strip: np.ndarray) -> np.ndarray:
    """Triangles of a strip of vertex indices where -1 restarts the strip.

    Every second triangle swaps its first two corners so all keep the strip's winding;
    degenerate triangles (repeated indices, used to join strips) are dropped.
    """
    strip = np.asarray(strip, dtype=np.int64)
    if len(strip) < 3:
        return np.empty((0, 3), np.int64)
    a, b, c = strip[:-2], strip[1:-1], strip[2:]
    restarts = np.where(strip < 0, np.arange(len(strip)), -1)
    run_start = np.maximum.accumulate(restarts)[:-2] + 1
    odd = (np.arange(len(a)) - run_start) % 2 == 1
    triangles = np.stack([np.where(odd, b, a), np.where(odd, a, b), c], axis=1)
    keep = (triangles >= 0).all(axis=1) & (a != b) & (b != c) & (a != c)
    return triangles[keep]
