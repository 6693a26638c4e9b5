"""PCD, read here in all three encodings: the header's FIELDS, SIZE, TYPE and COUNT give the layout.

Open3D read binary doubles (TYPE F SIZE 8), 64-bit integers and fields of an unknown TYPE as
zeros, which then looked like a cloud whose points are all identical; it also allocated what the
header declared and read ASCII words that are not numbers as 0. Here the header is checked
against the max_points limit and against the data before anything is read, every numeric type
of the format is read, and any other type is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import numpy as np

from geocli.io.checks import check_count, check_size, header_lines, integer, read_table
from geocli.io.errors import GeometryError

_TYPES = {("F", 4): "<f4", ("F", 8): "<f8"} | {
    (kind, size): f"<{kind.lower()}{size}" for kind in "IU" for size in (1, 2, 4, 8)
}


@dataclass
class _Field:
    name: str
    dtype: np.dtype
    count: int


@dataclass
class PcdHeader:
    fields: list[_Field]
    points: int
    encoding: str
    data_start: int
    available: int  # bytes after the header


def read_pcd(path: str, max_points: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Points, normals (``normal_x/y/z``) and colours in [0, 1] (packed ``rgb``/``rgba``), ``None`` when absent."""
    header = read_header(path, max_points)
    values: dict[str, np.ndarray] = {}
    for field, column in zip(header.fields, _read_columns(path, header)):
        values.setdefault(field.name, column)  # PCL repeats padding fields named "_"
    points = _stack(values, ("x", "y", "z"))
    assert points is not None  # read_header refuses a file without x, y, z
    normals = _stack(values, ("normal_x", "normal_y", "normal_z"))
    packed = values.get("rgb", values.get("rgba"))
    colors = None
    if packed is not None and packed.dtype.itemsize == 4:  # 0x00RRGGBB, stored as a float or an integer
        bits = np.ascontiguousarray(packed[:, 0]).view(np.uint32)
        colors = np.column_stack([(bits >> shift) & 255 for shift in (16, 8, 0)]) / 255.0
    return points, normals, colors


def _stack(values: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray | None:
    return np.column_stack([values[n][:, 0] for n in names]) if set(names) <= set(values) else None


def read_header(path: str, max_points: int) -> PcdHeader:
    """Check the header against the max_points limit and the data that follow it."""
    lines: dict[str, list[bytes]] = {}
    with open(path, "rb") as handle:
        for line in header_lines(path, handle, "PCD"):
            words = line.split()
            if words and not words[0].startswith(b"#"):
                lines[words[0].decode("ascii", errors="replace").upper()] = words[1:]
            if "DATA" in lines:
                break
        data_start = handle.tell()
        available = handle.seek(0, 2) - data_start
    points = _ints(path, lines, "POINTS")[0]
    check_count(path, points, max_points)
    if "DATA" not in lines:
        raise GeometryError(path, "invalid PCD header: no DATA line")
    names = [f.decode("ascii", errors="replace") for f in lines.get("FIELDS", [])]
    if not {"x", "y", "z"} <= set(names):
        raise GeometryError(path, "invalid PCD header: FIELDS must include x, y and z")
    sizes, counts = _ints(path, lines, "SIZE"), _ints(path, lines, "COUNT", [1] * len(names))
    types = [t.decode("ascii", errors="replace") for t in lines.get("TYPE", [])]
    if not len(names) == len(sizes) == len(types) == len(counts):
        raise GeometryError(path, "invalid PCD header: FIELDS, SIZE, TYPE and COUNT must have one entry per field")
    fields = []
    for name, size, kind, count in zip(names, sizes, types, counts):
        if (kind, size) not in _TYPES:
            problem = f"field {name!r} has TYPE {kind} SIZE {size} (readable: F 4 or 8, I or U 1, 2, 4 or 8)"
            raise GeometryError(path, f"unsupported PCD data: {problem}")
        fields.append(_Field(name, np.dtype(_TYPES[kind, size]), count))
    if any(f.count != 1 for f in fields if f.name in ("x", "y", "z")):
        raise GeometryError(path, "invalid PCD header: x, y and z must have COUNT 1")
    encoding = lines["DATA"][0].decode("ascii", errors="replace") if lines["DATA"] else ""
    if encoding not in ("ascii", "binary", "binary_compressed"):
        raise GeometryError(path, f"invalid PCD header: unknown DATA type {encoding!r}")
    return PcdHeader(fields, points, encoding, data_start, available)


def _ints(path: str, lines: dict[str, list[bytes]], key: str, default: list[int] | None = None) -> list[int]:
    """The non-negative integers of header line ``key``; ``default`` if the line is absent."""
    words = lines.get(key)
    if words is None:
        if default is None:
            raise GeometryError(path, f"invalid PCD header: no {key} line")
        return default
    try:
        values = [integer(word) for word in words]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        line = b" ".join([key.encode(), *words]).decode("ascii", errors="replace")
        raise GeometryError(path, f"invalid PCD header line: {line}")
    return values


def _read_columns(path: str, header: PcdHeader) -> list[np.ndarray]:
    """Each field's values, shaped (points, COUNT), in the field's type."""
    n, fields = header.points, header.fields
    row = np.dtype([(f"f{j}", f.dtype, (f.count,)) for j, f in enumerate(fields)])
    with open(path, "rb") as handle:
        handle.seek(header.data_start)
        if header.encoding == "ascii":
            return _ascii_columns(path, header, handle)
        if header.encoding == "binary":
            check_size(path, "PCD", n * row.itemsize, header.available, row.itemsize)
            rows = np.frombuffer(handle.read(n * row.itemsize), row)
            return [rows[f"f{j}"] for j in range(len(fields))]
        compressed, uncompressed = np.frombuffer(handle.read(8).ljust(8, b"\0"), "<u4").tolist()
        check_size(path, "PCD", compressed + 8, header.available, None)
        if uncompressed != n * row.itemsize:
            problem = (
                f"corrupt PCD data: {uncompressed:,} bytes compressed, the header's points need {n * row.itemsize:,}"
            )
            raise GeometryError(path, problem)
        data = _lzf_decompress(path, handle.read(compressed), uncompressed)
    starts = np.cumsum([0] + [n * f.count * f.dtype.itemsize for f in fields])  # one field after another
    return [
        np.frombuffer(data, f.dtype, n * f.count, int(start)).reshape(n, f.count) for f, start in zip(fields, starts)
    ]


def _ascii_columns(path: str, header: PcdHeader, handle: IO[bytes]) -> list[np.ndarray]:
    """Every value must be a number, and rows and columns must match the header."""
    declared, counts = header.points, [f.count for f in header.fields]
    columns = sum(counts)
    table = read_table(
        path, handle, columns=columns, max_rows=declared + 1, size=header.available, kind="corrupt PCD data"
    )
    if table.shape != (declared, columns) and table.size:
        found = f"{table.shape[0]:,} of {table.shape[1]}"
        problem = f"the header declares {declared:,} rows of {columns} values, found {found}"
        raise GeometryError(path, f"corrupt PCD data: {problem}")
    if not table.size and declared:
        raise GeometryError(path, f"corrupt PCD data: the header declares {declared:,} points, the file has none")
    starts = np.cumsum([0, *counts])
    return [table[:, a:b].astype(f.dtype) for f, a, b in zip(header.fields, starts, starts[1:])]


def _lzf_decompress(path: str, data: bytes, size: int) -> bytes:
    """LZF, as PCL compresses ``binary_compressed`` data: literal runs and back references.

    Stops as soon as the output would exceed ``size`` (the header's count times the row size,
    already checked), so a corrupt stream cannot grow memory beyond what the header declared.
    """
    out, position = bytearray(), 0
    try:
        while position < len(data) and len(out) <= size:
            control = data[position]
            position += 1
            if control < 32:  # a literal run of control + 1 bytes
                out += data[position : position + control + 1]
                position += control + 1
                continue
            length = control >> 5
            if length == 7:
                length += data[position]
                position += 1
            start = len(out) - ((control & 31) << 8) - data[position] - 1
            position += 1
            if start < 0:
                raise IndexError("a back reference before the start")
            for k in range(start, start + length + 2):  # byte by byte: a reference may overlap what it writes
                out.append(out[k])
    except IndexError:
        raise GeometryError(path, "corrupt PCD data: the compressed data are invalid") from None
    if len(out) != size:
        raise GeometryError(
            path, f"corrupt PCD data: the compressed data hold {len(out):,} bytes, the header's points need {size:,}"
        )
    return bytes(out)
