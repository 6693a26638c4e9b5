"""PLY headers and triangle strips: what Open3D and trimesh do not read.

Open3D ignores ``tristrips`` elements (the Igea scan stores its faces that way) and
trimesh 5 loads such files as bare clouds, so the header is parsed here and strips
are decoded into triangles. The header also gives the vertex count cheaply, so huge
files are refused before their data are read, and the data size it implies, so truncated
files and headers that lie about their counts are caught before Open3D reads (and allocates)
anything: Open3D reads a short count silently and stops, ignoring the rest of the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Any

import numpy as np

from geocli.io.errors import GeometryError

MAX_HEADER_LINES = 1000
MAX_HEADER_LINE_BYTES = 65536  # bounds what a header read takes from a binary file without newlines


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
    name: str = ""


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


def header_lines(path: str, handle: IO[bytes], max_lines: int = MAX_HEADER_LINES) -> Iterator[bytes]:
    """The first ``max_lines`` lines of ``handle``, each at most ``MAX_HEADER_LINE_BYTES`` long.

    Plain ``readline`` on a binary file with no newline would read the whole file into memory.
    """
    for _ in range(max_lines):
        line = handle.readline(MAX_HEADER_LINE_BYTES)
        if not line:
            return
        if len(line) == MAX_HEADER_LINE_BYTES and not line.endswith(b"\n"):
            raise GeometryError(path, "invalid header: a line is longer than 64 KiB (binary data?)")
        yield line


def read_header(path: str) -> PlyHeader:
    """Parse the header ourselves: it gives the point count before any data is read."""
    with open(path, "rb") as handle:
        lines = header_lines(path, handle, MAX_HEADER_LINES + 1)
        if next(lines, b"").strip() != b"ply":
            raise GeometryError(path, "not a PLY file: first line is not 'ply'")
        encoding, elements = "", []
        for line in lines:
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
                    if elements[-1].count < 0:
                        raise ValueError("negative count")
                elif words[:1] == ["property"]:
                    elements[-1].properties.append(_ply_property(words))
            except (IndexError, KeyError, ValueError):
                raise GeometryError(path, f"invalid PLY header line: {' '.join(words)}") from None
    raise GeometryError(path, "invalid PLY header: no end_header line")


def _ply_property(words: list[str]) -> _PlyProperty:
    if words[1] == "list":
        return _PlyProperty(_PLY_TYPES[words[3]], _PLY_TYPES[words[2]], words[4])
    return _PlyProperty(_PLY_TYPES[words[1]], name=words[2])


def check_layout(path: str, header: PlyHeader) -> None:
    """Refuse, before any data are read, vertices without x/y/z and data that cannot match the header.

    Binary data have a known size (a lower bound when rows hold lists): a shorter file is
    truncated or its counts are too high; a whole row more than declared means a count is too
    low. ASCII data have one row per line, so the non-empty lines are counted instead.
    """
    vertices = [e for e in header.elements if e.name == "vertex"]
    if header.count("vertex") and not {"x", "y", "z"} <= {p.name for p in vertices[0].properties}:
        raise GeometryError(path, "invalid PLY header: the vertex element has no x, y, z properties")
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        available = handle.tell() - header.data_start
        if header.encoding == "ascii":
            handle.seek(header.data_start)
            rows = sum(1 for line in handle if line.strip())
            declared = sum(e.count for e in header.elements)
            if rows != declared:
                problem = f"the header declares {declared:,} rows, the file has {rows:,}"
                raise GeometryError(path, f"corrupt PLY data: {problem}")
            return
    sizes = [sum(np.dtype(p.count_dtype or p.dtype).itemsize for p in e.properties) for e in header.elements]
    needed = sum(e.count * size for e, size in zip(header.elements, sizes))
    if available < needed:
        raise GeometryError(
            path, f"corrupt PLY data: file ends early (the header's counts need {needed:,}+ bytes, {available:,} follow it)"
        )
    exact = not any(p.count_dtype for e in header.elements for p in e.properties)
    last_row = next((size for e, size in zip(reversed(header.elements), reversed(sizes)) if e.count), 0)
    if exact and last_row and available - needed >= last_row:
        raise GeometryError(
            path, f"corrupt PLY data: {available - needed:,} bytes follow the data the header declares (a count too low?)"
        )


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
