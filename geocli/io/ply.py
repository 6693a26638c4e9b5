"""PLY, read here in all three encodings: header, vertices, polygon faces and triangle strips.

Open3D's reader trusted the file: it triangulated polygons with unchecked vertex indices (an
index of -1 crashed the whole process), made triangles of faces with two indices, read an ASCII
row with an extra value into the next row, and ignored ``tristrips`` elements (the Igea scan;
trimesh 5 loads those files as bare clouds). Here the header's counts are checked against the
max_points limit and the file size before any data are read, every row must hold exactly the
values the header declares, and every face index is checked (``checks.triangulate``) before use.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from geocli.io.checks import check_indices, check_size, header_lines, triangulate
from geocli.io.errors import GeometryError

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_INDEX_LISTS = ("vertex_indices", "vertex_index")  # what writers call a face's (or strip's) list
ByteOrder = Literal["<", ">"]  # numpy's and struct's marks for little and big endian


@dataclass
class _PlyProperty:
    name: str
    dtype: np.dtype  # of the value, or of each item of a list
    count_dtype: np.dtype | None = None  # of a list's length; None for scalars


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
        return next((e.count for e in self.elements if e.name == name), 0)


@dataclass
class _PlyList:
    """A list property of every row: each row's length and all items, concatenated."""

    sizes: np.ndarray
    values: np.ndarray


def read_header(path: str) -> PlyHeader:
    """Parse the header ourselves: it gives the counts before any data is read."""
    with open(path, "rb") as handle:
        lines = header_lines(path, handle, "PLY")
        if next(lines, b"").strip() != b"ply":
            raise GeometryError(path, "not a PLY file: first line is not 'ply'")
        encoding, elements = "", list[_PlyElement]()
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
                    if elements[-1].count < 0 or [e.name for e in elements].count(words[1]) > 1:
                        raise ValueError("negative count or repeated element")
                elif words[:1] == ["property"]:
                    elements[-1].properties.append(_ply_property(words))
            except (IndexError, KeyError, ValueError):
                raise GeometryError(path, f"invalid PLY header line: {' '.join(words)}") from None
    raise GeometryError(path, "invalid PLY header: no end_header line")


def _ply_property(words: list[str]) -> _PlyProperty:
    if words[1] != "list":
        return _PlyProperty(words[2], np.dtype(_PLY_TYPES[words[1]]))
    count_dtype = np.dtype(_PLY_TYPES[words[2]])
    if count_dtype.kind not in "iu":
        raise ValueError("a list length must have an integer type")
    return _PlyProperty(words[4], np.dtype(_PLY_TYPES[words[3]]), count_dtype)


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
    sizes = [
        sum((p.dtype if p.count_dtype is None else p.count_dtype).itemsize for p in e.properties)
        for e in header.elements
    ]
    needed = sum(e.count * size for e, size in zip(header.elements, sizes))
    exact = not any(p.count_dtype for e in header.elements for p in e.properties)
    last_row = next((size for e, size in zip(reversed(header.elements), reversed(sizes)) if e.count), 0)
    check_size(path, "PLY", needed, available, last_row if exact else None, at_least=not exact)


def read_ply(
    path: str, header: PlyHeader
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, dict[str, np.ndarray]]:
    """Points, triangles (``None`` for a cloud), normals and colours in [0, 1] (``None`` when absent), and
    every other scalar vertex property by name, in its own type.

    Faces and triangle strips both become triangles, their indices checked against the vertices.
    Call after ``check_layout``, which guarantees the data can hold what the header declares.
    """
    elements = _read_elements(path, header)
    vertex: dict[str, Any] = elements.get("vertex", {})  # columns and lists; check_layout made sure of x, y, z
    points = np.column_stack([vertex[a] for a in "xyz"]) if header.count("vertex") else np.empty((0, 3))
    normals, colors = _columns(vertex, _NORMALS), _columns(vertex, _COLORS)
    if colors is not None and np.issubdtype(colors.dtype, np.integer):
        colors = colors / np.iinfo(colors.dtype).max
    triangles: list[np.ndarray] = []
    if header.count("face"):
        polygons = _index_list(path, elements["face"], "face")
        triangles.append(triangulate(path, polygons.sizes, polygons.values, len(points)))
    if header.count("tristrips"):
        strips = _index_list(path, elements["tristrips"], "tristrips")
        ends = np.cumsum(strips.sizes)[:-1]
        strip_triangles = [_strip_triangles(strip) for strip in np.split(strips.values, ends)]
        triangles.append(check_indices(path, np.concatenate(strip_triangles), len(points)))
    faces = np.concatenate(triangles) if triangles else None
    held = {"x", "y", "z", *(_NORMALS if normals is not None else ()), *(_COLORS if colors is not None else ())}
    extra = {name: values for name, values in vertex.items() if name not in held and isinstance(values, np.ndarray)}
    return points, faces, normals, colors, extra


_NORMALS, _COLORS = ("nx", "ny", "nz"), ("red", "green", "blue")


def _columns(values: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray | None:
    return np.column_stack([values[n] for n in names]) if set(names) <= set(values) else None


def _index_list(path: str, values: dict[str, np.ndarray | _PlyList], element: str) -> _PlyList:
    for name in _INDEX_LISTS:
        found = values.get(name)
        if isinstance(found, _PlyList):
            return found
    raise GeometryError(path, f"unsupported PLY {element} element: no vertex_indices list")


def _read_elements(path: str, header: PlyHeader) -> dict[str, dict[str, np.ndarray | _PlyList]]:
    """Every property of every element: a column per scalar, sizes and items per list."""
    with open(path, "rb") as handle:
        handle.seek(header.data_start)
        data = handle.read()
    if header.encoding == "ascii":
        rows = (words for line in data.splitlines() if (words := line.split()))
        return {e.name: _ascii_element(path, e, rows) for e in header.elements}
    order: ByteOrder = "<" if header.encoding == "binary_little_endian" else ">"
    elements, offset = {}, 0
    for element in header.elements:
        elements[element.name], offset = _binary_element(path, element, data, offset, order)
    return elements


def _ascii_element(path: str, element: _PlyElement, rows: Iterator[list[bytes]]) -> dict[str, np.ndarray | _PlyList]:
    """One row per line, holding exactly the values the header declares: an extra or missing value is refused.

    Open3D read values as one stream, so a row with an extra value shifted every later row.
    """
    words_of: list[list[bytes]] = [[] for _ in element.properties]
    sizes_of: list[list[int]] = [[] for _ in element.properties]
    for number in range(element.count):
        words = next(rows)  # check_layout counted the rows
        position = 0
        for prop, found, sizes in zip(element.properties, words_of, sizes_of):
            length = 1
            if prop.count_dtype is not None:
                length = _list_length(path, element, number, words[position : position + 1])
                position += 1
            found.extend(words[position : position + length])
            sizes.append(length)
            position += length
        if position != len(words):
            problem = f"{element.name} {number:,} has {len(words)} values, the header declares {position}"
            raise GeometryError(path, f"corrupt PLY data: {problem}")
    try:
        columns = [_numbers(words, p) for p, words in zip(element.properties, words_of)]
    except (ValueError, OverflowError) as exc:
        raise GeometryError(path, f"corrupt PLY data: {element.name}: {exc}") from None
    return _element_values(element.properties, columns, [np.array(s, np.int64) for s in sizes_of])


def _numbers(words: list[bytes], prop: _PlyProperty) -> np.ndarray:
    """ASCII values in the property's type; list items of an integer type stay int64, so that
    an index of 300 in a ``uchar`` list is refused rather than wrapped to 44, and "1.5" fails."""
    integer = prop.dtype.kind in "iu"
    values = np.fromiter(map(int if integer else float, words), np.int64 if integer else np.float64, len(words))
    return values if prop.count_dtype is not None and integer else values.astype(prop.dtype)


def _list_length(path: str, element: _PlyElement, number: int, word: list[bytes]) -> int:
    """The length that starts an ASCII list; a missing one reads as 0, and the row's length check reports it."""
    try:
        length = int(word[0]) if word else 0
    except ValueError:
        length = -1
    if length < 0:
        raise GeometryError(path, f"corrupt PLY data: {element.name} {number:,}: invalid list length {word[0]!r}")
    return length


def _binary_element(
    path: str, element: _PlyElement, data: bytes, offset: int, order: ByteOrder
) -> tuple[dict[str, np.ndarray | _PlyList], int]:
    """The element's values and where the next element starts.

    Rows whose lists all have the lengths of the first row's (triangles only, say) are read as
    one numpy array; rows of mixed polygons are walked one by one.
    """
    properties = element.properties
    lengths = _read_row(path, element, data, offset, order)[2] if element.count else [0] * len(properties)
    fields: list[tuple[Any, ...]] = []
    for j, (prop, length) in enumerate(zip(properties, lengths)):
        if prop.count_dtype is not None:
            fields.append((f"n{j}", prop.count_dtype.newbyteorder(order)))
        fields.append((f"v{j}", prop.dtype.newbyteorder(order), (length,)))
    row = np.dtype(fields)
    end = offset + element.count * row.itemsize
    if end <= len(data):
        rows = np.frombuffer(data, row, count=element.count, offset=offset) if element.count else np.zeros(0, row)
        uniform = all(
            (rows[f"n{j}"] == n).all() for j, (p, n) in enumerate(zip(properties, lengths)) if p.count_dtype is not None
        )
        if uniform:
            sizes = [np.broadcast_to(np.int64(n), element.count) for n in lengths]  # views: no memory per row
            return _element_values(properties, [rows[f"v{j}"].reshape(-1) for j in range(len(properties))], sizes), end
    values: list[list[int | float]] = [[] for _ in properties]
    sizes_of: list[list[int]] = [[] for _ in properties]
    for _ in range(element.count):
        offset, row_values, row_lengths = _read_row(path, element, data, offset, order)
        for found, row_sizes, items, length in zip(values, sizes_of, row_values, row_lengths):
            found.extend(items)
            row_sizes.append(length)
    columns = [np.array(found, dtype=p.dtype) for p, found in zip(properties, values)]
    return _element_values(properties, columns, [np.array(s, np.int64) for s in sizes_of]), offset


def _read_row(
    path: str, element: _PlyElement, data: bytes, offset: int, order: ByteOrder
) -> tuple[int, list[tuple[int | float, ...]], list[int]]:
    """Where the next row starts, and each property's items and list length (1 for a scalar)."""
    values, lengths = [], []
    try:
        for prop in element.properties:
            length = 1
            if prop.count_dtype is not None:
                (length,) = struct.unpack_from(order + prop.count_dtype.char, data, offset)
                offset += prop.count_dtype.itemsize
                if length < 0:
                    raise GeometryError(path, f"corrupt PLY data: a {element.name} list has length {length}")
            values.append(struct.unpack_from(f"{order}{length}{prop.dtype.char}", data, offset))
            lengths.append(length)
            offset += length * prop.dtype.itemsize
    except struct.error:
        raise GeometryError(path, f"corrupt PLY data: file ends inside the {element.name} element") from None
    return offset, values, lengths


def _element_values(
    properties: list[_PlyProperty], columns: list[np.ndarray], sizes: list[np.ndarray]
) -> dict[str, np.ndarray | _PlyList]:
    return {p.name: c if p.count_dtype is None else _PlyList(n, c) for p, c, n in zip(properties, columns, sizes)}


def _strip_triangles(strip: np.ndarray) -> np.ndarray:
    """Triangles of a strip of vertex indices where -1 restarts the strip.

    Every second triangle swaps its first two corners so all keep the strip's winding;
    degenerate triangles (repeated indices, used to join strips) are dropped. The strip's
    type is kept, so that ``check_indices`` refuses indices stored as floats.
    """
    if len(strip) < 3:
        return np.empty((0, 3), strip.dtype)
    a, b, c = strip[:-2], strip[1:-1], strip[2:]
    restarts = np.where(strip < 0, np.arange(len(strip)), -1)
    run_start = np.maximum.accumulate(restarts)[:-2] + 1
    odd = (np.arange(len(a)) - run_start) % 2 == 1
    triangles = np.stack([np.where(odd, b, a), np.where(odd, a, b), c], axis=1)
    keep = (triangles >= 0).all(axis=1) & (a != b) & (b != c) & (a != c)
    return triangles[keep]
