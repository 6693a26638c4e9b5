"""OFF, OBJ and STL, parsed here so that every face index is checked before anything uses it.

Open3D triangulated OFF polygons with unchecked indices (an index of -1 or 2e9 crashed the whole
process) and read an ASCII STL cut in half without a word; trimesh read OBJ's relative (negative)
indices against the end of the file instead of the vertices read so far, took index 0 as the last
vertex, and opened whatever ``mtllib`` named (a named pipe blocked it forever). These formats are
plain enough to read in a few lines: polygons go through ``checks.triangulate``, and no file but
the input is ever opened.
"""

from __future__ import annotations

import os
import re
from array import array
from collections.abc import Iterator
from itertools import chain, islice
from typing import IO

import numpy as np

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
        vertex_lines = list(islice(lines, n_vertices))
        if len(vertex_lines) < n_vertices:
            raise GeometryError(
                path, f"corrupt OFF data: file ends after {len(vertex_lines):,} of {n_vertices:,} vertices"
            )
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
    return points, triangulate(path, np.asarray(sizes), np.asarray(indices), n_vertices)


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
    check_count(path, _count_in_file(path, b"\nv ") + _count_in_file(path, b"\nv\t"), max_points)
    coordinates, sizes, indices = array("d"), array("q"), array("q")
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
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
    return points, triangulate(path, np.asarray(sizes), np.asarray(indices), len(points))


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
            check_count(path, _count_in_file(path, b"vertex"), max_points, _STL_VERTICES)
            corners = _ascii_stl_corners(path, head + handle.read())
        elif facets is None:
            raise GeometryError(path, "corrupt STL data: too short for binary STL, and not ASCII STL (no 'solid' line)")
        else:
            check_size(path, "STL", 50 * facets, size - 84, None)
            check_count(path, 3 * facets, max_points, _STL_VERTICES)
            corners = np.frombuffer(handle.read(50 * facets), _STL_FACET)["corners"].reshape(-1, 3)
    points, inverse = np.unique(corners.astype(np.float64), axis=0, return_inverse=True)
    return points, inverse.reshape(-1, 3)


def _ascii_stl_corners(path: str, data: bytes) -> np.ndarray:
    """The three corners of every facet, as float32 like binary STL; anything but whole facets is refused."""
    facets = _ASCII_FACET.findall(data)
    ended = sum(1 for _ in re.finditer(rb"endfacet", data, re.IGNORECASE))
    if len(facets) != ended:
        problem = f"{ended - len(facets):,} of {ended:,} facets are not 'facet normal', 3 vertices, 'endfacet'"
        raise GeometryError(path, f"corrupt STL data: {problem}")
    if not data.rstrip().rsplit(b"\n", 1)[-1].strip().lower().startswith(b"endsolid"):
        raise GeometryError(path, "corrupt STL data: no 'endsolid' at the end (the file is cut short?)")
    try:
        values = np.fromiter(map(decimal, chain.from_iterable(facets)), np.float64, 9 * len(facets))
    except ValueError as exc:
        raise GeometryError(path, f"corrupt STL data: {exc}") from None
    return values.astype(np.float32).reshape(-1, 3)


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
