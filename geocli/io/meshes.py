"""OFF, OBJ and STL, parsed here so that every face index is checked before anything uses it.

Open3D triangulated OFF polygons with unchecked indices (an index of -1 or 2e9 crashed the whole
process) and read an ASCII STL cut in half without a word; trimesh read OBJ's relative (negative)
indices against the end of the file instead of the vertices read so far, took index 0 as the last
vertex, and opened whatever ``mtllib`` named (a named pipe blocked it forever). These formats are
plain enough to read in a few lines: polygons go through ``checks.triangulate``, and no file but
the input is ever opened.

OFF and OBJ files (and ASCII STL's numbers) are read in one of two ways. Most files are plain
enough to be parsed as a few whole blocks by numpy (``blocks``; issue 19: reading word by word in
Python cost 15-20 ms a sample mesh, longer than the network's work on it). Every file the block
parser declines, for a comment, a character outside its small alphabet or anything wrong, is read
line by line (``_careful_off``, ``_careful_obj``), as before: so a file is parsed once, and every
error comes from the line-by-line code. STL's repeated corners are merged by two integer sorts
where ``np.unique`` on rows gives the same result by a slower sort (``_merge_corners``).
"""

from __future__ import annotations

import io
import os
import re
from array import array
from collections.abc import Iterator
from itertools import chain, islice
from typing import IO

import numpy as np

from geocli.io import blocks
from geocli.io.checks import check_count, check_size, decimal, integer, numpy_problem, triangulate
from geocli.io.errors import GeometryError

_STL_VERTICES = "vertices (3 per facet)"
_STL_FACET = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
_ASCII_FACET = re.compile(
    rb"facet\s+normal\s+\S+\s+\S+\s+\S+\s+outer\s+loop"
    + rb"\s+vertex\s+(\S+)\s+(\S+)\s+(\S+)" * 3
    + rb"\s+endloop\s+endfacet",
    re.IGNORECASE,
)
_OFF_COLOR_VALUES = 4  # a face line may end with an RGB or RGBA colour
_Polygons = tuple[np.ndarray, np.ndarray, np.ndarray]  # vertices (n, 3), corners per face, their indices
_SPACE = np.isin(np.arange(256), list(b" \t\r\x0b\x0c"))  # white space to bytes.split(), by byte value
_ODD_END = np.isin(np.arange(256), list(b"\r\x0b\x0c#\n"))  # ends a word too, but is not a space or tab


def read_off(path: str, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of an OFF file; its header counts are checked before the data are read.

    Tolerates comments, COFF/NOFF-style extra vertex values (ignored) and ModelNet's
    ``OFF490 518 0`` first line. Rows must match the header: a vertex or face too few, or a
    line left over after the faces (a count too low), is refused.
    """
    with open(path, "rb") as handle:
        lines = _content_lines(handle)
        n_vertices, n_faces = _off_counts(path, lines)
        check_count(path, n_vertices, max_points)
        if n_vertices == 0:
            raise GeometryError(path, "no points found")
        if n_faces == 0:
            raise GeometryError(path, "mesh has no faces")
        size = os.path.getsize(path)
        if 6 * n_vertices + 8 * n_faces > size + 1:  # "0 0 0\n" and "3 0 1 2\n" are the shortest rows
            problem = f"{n_vertices:,} vertices and {n_faces:,} faces cannot fit in {size:,} bytes"
            raise GeometryError(path, f"corrupt OFF data: {problem}")
        body = handle.read()
    parsed = _plain_off(body, n_vertices, n_faces)
    points, sizes, indices = parsed if parsed is not None else _careful_off(path, body, n_vertices, n_faces)
    return points, triangulate(path, sizes, indices, n_vertices)


def _plain_off(body: bytes, n_vertices: int, n_faces: int) -> _Polygons | None:
    """The vertices and faces after an OFF header, parsed as whole blocks; ``None`` unless plain.

    Plain: no comment, blank line or other character outside ``blocks.DECIMAL_TEXT`` among the
    rows, every face row whole numbers with its count right and at most four colour values, and
    nothing but white space after the last face. ModelNet's files and those of most writers are.
    """
    vertices = blocks.decimal_rows(body, n_vertices, 3)
    if vertices is None:
        return None
    points, faces = vertices
    words = blocks.integer_words(faces)
    if words is None:
        return None
    values, per_line = words
    if len(per_line) < n_faces or not per_line[:n_faces].all() or per_line[n_faces:].any():
        return None  # a blank line among the faces, too few of them, or words after them
    per_line = per_line[:n_faces]
    firsts = np.cumsum(per_line) - per_line
    corners = values[firsts]
    if ((per_line < 1 + corners) | (per_line > 1 + corners + _OFF_COLOR_VALUES)).any():
        return None
    rank = np.arange(len(values)) - np.repeat(firsts, per_line)
    return points, corners, values[(rank >= 1) & (rank <= np.repeat(corners, per_line))]


def _careful_off(path: str, body: bytes, n_vertices: int, n_faces: int) -> _Polygons:
    """The vertices and faces after an OFF header, read line by line: every file ``_plain_off`` declines."""
    lines = _content_lines(io.BytesIO(body))
    vertex_lines = list(islice(lines, n_vertices))
    if len(vertex_lines) < n_vertices:
        raise GeometryError(path, f"corrupt OFF data: file ends after {len(vertex_lines):,} of {n_vertices:,} vertices")
    try:
        points = np.loadtxt(vertex_lines, usecols=(0, 1, 2), comments="#", ndmin=2)
    except ValueError as exc:
        raise GeometryError(path, f"corrupt OFF data: vertices: {numpy_problem(exc)}") from None
    sizes, indices = array("q"), array("q")
    for number, line in enumerate(islice(lines, n_faces)):
        words = line.split(b"#", 1)[0].split()
        try:
            corners = integer(words[0])
            if not 1 + corners <= len(words) <= 1 + corners + _OFF_COLOR_VALUES:
                raise ValueError(f"{len(words) - 1} values after a count of {corners}")
            indices.extend(map(integer, words[1 : 1 + corners]))
        except (ValueError, OverflowError) as exc:
            raise GeometryError(path, f"corrupt OFF data: face {number:,}: {exc}") from None
        sizes.append(corners)
    if len(sizes) < n_faces:
        raise GeometryError(path, f"corrupt OFF data: file ends after {len(sizes):,} of {n_faces:,} faces")
    if next(lines, None) is not None:
        raise GeometryError(path, "corrupt OFF data: lines follow the faces the header declares (a count too low?)")
    return points, np.asarray(sizes), np.asarray(indices)


def _content_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """The lines that hold something besides a ``#`` comment or white space."""
    return (line for line in handle if line.split(b"#", 1)[0].strip())


def _off_counts(path: str, lines: Iterator[bytes]) -> tuple[int, int]:
    """Vertex and face counts from an OFF header, on the first line or the next, or glued to ``OFF``."""
    first = next(lines, b"").split(b"#", 1)[0].split()
    magic = re.fullmatch(rb"([A-Z0-9]*OFF)(\d*)", first[0]) if first else None
    if magic is None:
        raise GeometryError(path, "not an OFF file: the first word must be OFF")
    counts = ([magic.group(2)] if magic.group(2) else []) + first[1:]
    if len(counts) < 2:
        counts += next(lines, b"").split(b"#", 1)[0].split()
    try:
        n_vertices, n_faces = integer(counts[0]), integer(counts[1])
    except (IndexError, ValueError):
        n_vertices = n_faces = -1
    if n_vertices < 0 or n_faces < 0:
        raise GeometryError(path, "invalid OFF header: expected vertex and face counts")
    return n_vertices, n_faces


def read_obj(path: str, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (``v``) and triangles (``f``) of an OBJ file; everything else is ignored.

    Face corners are ``i``, ``i/t``, ``i//n`` or ``i/t/n``; ``i`` counts from 1, and a negative
    ``i`` counts back from the last vertex read so far (-1 is the vertex just before the face).
    Index 0 names no vertex and is refused. Materials and textures are never opened.
    """
    _check_word_count(path, (b"\nv ", b"\nv\t"), max_points)
    with open(path, "rb") as handle:
        data = handle.read()
    parsed = _plain_obj(data)
    points, sizes, indices = parsed if parsed is not None else _careful_obj(path, data)
    return points, triangulate(path, sizes, indices, len(points))


def _plain_obj(data: bytes) -> _Polygons | None:
    """The vertices and faces of an OBJ file, parsed as two blocks; ``None`` unless plain.

    Lines are told apart by their first two bytes: ``v`` or ``f`` and a space or tab. Plain: the
    ``v`` lines are rows of plain decimals and the ``f`` lines of plain corners (see ``blocks``),
    without comments; no line that starts with white space is a vertex or a face, and no ``v``
    or ``f`` is followed by other white space or a comment; there is a vertex and a face, and no
    face names vertex 0. Relative (negative) indices count back from the ``v`` lines above their
    face, as in ``_careful_obj``.
    """
    if not data.endswith(b"\n"):
        data += b"\n"  # every line, the last one too, ends with a newline
    codes = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(codes == ord("\n"))
    starts = np.concatenate(([0], ends[:-1] + 1))
    first, second = codes[starts], codes[np.minimum(starts + 1, len(codes) - 1)]
    spaced = (second == ord(" ")) | (second == ord("\t"))
    vertex, face = (first == ord("v")) & spaced, (first == ord("f")) & spaced
    odd = ((first == ord("v")) | (first == ord("f"))) & _ODD_END[second]  # "v\r1 2 3" is a vertex, "f#" a face
    indented = np.flatnonzero(_SPACE[first])
    if odd.any() or any(_obj_keyword(data[starts[line] : ends[line]]) in (b"v", b"f") for line in indented):
        return None
    n_vertices = int(vertex.sum())
    vertices = blocks.decimal_rows(_lines_after_keyword(codes, starts, ends, vertex), n_vertices, 3)
    if vertices is None or not face.any():
        return None
    words = blocks.integer_words(_lines_after_keyword(codes, starts, ends, face), corners=True)
    if words is None:
        return None
    values, per_line = words
    per_line = per_line[:-1]  # the block ends with a newline: the last "line" after it is empty
    if not values.all():
        return None
    read = np.repeat(np.cumsum(vertex)[face], per_line)  # vertices read before each face
    return vertices[0], per_line, np.where(values > 0, values - 1, read + values)


def _obj_keyword(line: bytes) -> bytes:
    """The first word of an OBJ line, empty for a blank or comment line."""
    return (line.split(b"#", 1)[0].split() or [b""])[0]


def _lines_after_keyword(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray, chosen: np.ndarray) -> bytes:
    """The ``chosen`` lines without their first byte (their keyword), each with its newline."""
    keep = np.repeat(chosen, ends + 1 - starts)
    keep[starts[chosen]] = False
    return codes[keep].tobytes()


def _careful_obj(path: str, data: bytes) -> _Polygons:
    """The vertices and faces of an OBJ file, read line by line: every file ``_plain_obj`` declines."""
    coordinates, sizes, indices = array("d"), array("q"), array("q")
    for number, line in enumerate(io.BytesIO(data), 1):
        words = line.split(b"#", 1)[0].split()
        try:
            if words[:1] == [b"v"]:
                if len(words) < 4:
                    raise ValueError("a vertex needs x, y and z")
                coordinates.extend(map(decimal, words[1:4]))
            elif words[:1] == [b"f"]:
                read = len(coordinates) // 3
                corners = [integer(word.split(b"/", 1)[0]) for word in words[1:]]
                if 0 in corners:
                    raise ValueError("vertex index 0 (OBJ counts vertices from 1)")
                indices.extend(i - 1 if i > 0 else read + i for i in corners)
                sizes.append(len(corners))
        except (ValueError, OverflowError) as exc:
            raise GeometryError(path, f"corrupt OBJ data: line {number:,}: {exc}") from None
    points = np.frombuffer(coordinates, np.float64).reshape(-1, 3)
    return points, np.asarray(sizes), np.asarray(indices)


def read_stl(path: str, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of a binary or ASCII STL file, repeated facet vertices merged.

    A binary file is ``84 + 50 * facets`` bytes (extra bytes are tolerated); a file that is not
    and starts with ``solid`` is ASCII, which must be whole facets of three vertices ending with
    ``endsolid``: a file cut short is refused. The max_points limit counts vertices as stored,
    three per facet, since that is what is read before they are merged.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(84)
        facets = int.from_bytes(head[80:84], "little") if len(head) == 84 else None
        if not (facets is not None and size == 84 + 50 * facets) and head.lstrip().startswith(b"solid"):
            _check_word_count(path, (b"vertex",), max_points, _STL_VERTICES)
            corners = _ascii_stl_corners(path, head + handle.read())
        elif facets is None:
            raise GeometryError(path, "corrupt STL data: too short for binary STL, and not ASCII STL (no 'solid' line)")
        else:
            check_size(path, "STL", 50 * facets, size - 84, None)
            check_count(path, 3 * facets, max_points, _STL_VERTICES)
            corners = np.frombuffer(handle.read(50 * facets), _STL_FACET)["corners"].reshape(-1, 3)
    wide = corners.astype(np.float64)
    merged = _merge_corners(corners, wide)
    points, inverse = merged if merged is not None else np.unique(wide, axis=0, return_inverse=True)
    return points, inverse.reshape(-1, 3)


def _merge_corners(corners: np.ndarray, wide: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """What ``np.unique(wide, axis=0, return_inverse=True)`` gives for float32 ``corners`` and their
    float64 copy ``wide``: the distinct rows in lexicographic order, and each corner's row; or ``None``.

    ``np.unique`` sorts structured rows with a comparison function (about 5 ms for 12,000
    corners). Here each float32 is mapped to an unsigned integer of the same order, and two
    integer sorts order the rows, first by x and y, then by z within equal x and y. A row is one
    point where its bits are equal, which is where its values are equal unless a coordinate is NaN
    (never equal to itself) or -0.0 (equal to 0.0, and which of the two ``np.unique`` keeps
    depends on its unstable sort): ``None`` for those, and for no corners at all.
    """
    if not len(corners) or np.isnan(wide).any() or (np.signbit(wide) & (wide == 0)).any():
        return None
    bits = np.ascontiguousarray(corners, "<f4").view(np.uint32)
    keys = (bits ^ np.where(bits >> 31, np.uint32(0xFFFFFFFF), np.uint32(0x80000000))).astype(np.uint64)
    xy = keys[:, 0] << 32 | keys[:, 1]
    order = np.argsort(xy)
    distinct = np.empty(len(xy), bool)
    distinct[0] = True
    np.not_equal(xy[order[1:]], xy[order[:-1]], out=distinct[1:])
    xy_rank = np.empty(len(xy), np.uint64)
    xy_rank[order] = np.cumsum(distinct) - 1
    xyz = xy_rank << 32 | keys[:, 2]
    order = np.argsort(xyz)
    np.not_equal(xyz[order[1:]], xyz[order[:-1]], out=distinct[1:])
    inverse = np.empty(len(xyz), np.intp)
    inverse[order] = np.cumsum(distinct) - 1
    return wide[order[distinct]], inverse


def _ascii_stl_corners(path: str, data: bytes) -> np.ndarray:
    """The three corners of every facet, as float32 like binary STL; anything but whole facets is refused."""
    facets = _ASCII_FACET.findall(data)
    ended = data.lower().count(b"endfacet")  # the pattern's IGNORECASE is ASCII-only for bytes, as lower() is
    if len(facets) != ended:
        problem = f"{ended - len(facets):,} of {ended:,} facets are not 'facet normal', 3 vertices, 'endfacet'"
        raise GeometryError(path, f"corrupt STL data: {problem}")
    if not data.rstrip().rsplit(b"\n", 1)[-1].strip().lower().startswith(b"endsolid"):
        raise GeometryError(path, "corrupt STL data: no 'endsolid' at the end (the file is cut short?)")
    rows = blocks.decimal_rows(b"\n".join(map(b" ".join, facets)), len(facets), 9) if facets else None
    if rows is not None:  # the words hold no white space: joined by it, they are the same words
        values = rows[0].ravel()
    else:
        try:
            values = np.fromiter(map(decimal, chain.from_iterable(facets)), np.float64, 9 * len(facets))
        except ValueError as exc:
            raise GeometryError(path, f"corrupt STL data: {exc}") from None
    return values.astype(np.float32).reshape(-1, 3)


def _check_word_count(path: str, words: tuple[bytes, ...], max_points: int, what: str = "points") -> None:
    """``check_count`` for the occurrences of ``words`` in the file (see ``_count_in_file``).

    The file is scanned only where it is large enough to hold more than ``max_points`` of them:
    a scan is a pass over the whole file for each word, and most files are far too small.
    """
    if sum((os.path.getsize(path) + 1) // len(word) for word in words) > max_points:
        check_count(path, sum(_count_in_file(path, word) for word in words), max_points, what)


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
