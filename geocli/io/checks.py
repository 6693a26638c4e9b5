"""The checks every reader shares, each in one place.

Files are checked before they are opened (a named pipe would block forever), counts before
anything is allocated (a 300-byte header can declare billions of points), and face indices
before anything indexes vertices with them (Open3D's polygon triangulation crashed the whole
process on an index of -1). Each check raises a one-line ``GeometryError`` naming the file.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from typing import IO

import numpy as np

from geocli.io.errors import GeometryError, one_line


def regular_file_size(path: str) -> int:
    """The size of ``path``, refusing anything but an existing regular file with a precise reason.

    Used for inputs and for every file an input references (a glTF buffer): a named pipe would
    block the read forever, and a device such as ``/dev/zero`` behind a link would never end.
    """
    try:
        status = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise GeometryError(path, "symbolic link loop") from None
        if exc.errno == errno.ENOENT:
            broken = os.path.islink(path)
            problem = "broken symbolic link: its target does not exist" if broken else "file not found"
            raise GeometryError(path, problem) from None
        raise GeometryError(path, f"cannot open file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(status.st_mode):
        raise GeometryError(path, "is a directory, not a file")
    if not stat.S_ISREG(status.st_mode):
        mode = status.st_mode
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise GeometryError(path, f"not a regular file ({kind})")
    return status.st_size


MAX_HEADER_BYTES = 1 << 20
"""Headers are read line by line up to this many bytes: enough for thousands of comment lines,
and a bound on what a binary file without newlines can make a header read take."""


def header_lines(path: str, handle: IO[bytes], kind: str) -> Iterator[bytes]:
    """The lines of ``handle`` up to its end or ``MAX_HEADER_BYTES``; past that, a clear refusal."""
    budget = MAX_HEADER_BYTES
    while line := handle.readline(budget):
        budget -= len(line)
        if not budget:
            raise GeometryError(
                path, f"invalid {kind} header: it does not end within the first {MAX_HEADER_BYTES >> 20} MiB"
            )
        yield line


def check_count(path: str, count: int, max_points: int, what: str = "points") -> None:
    """Refuse more than ``max_points``, before the data are read."""
    if count > max_points:
        raise GeometryError(
            path, f"has {count:,} {what}, more than the max_points limit of {max_points:,} (the limit can be raised)"
        )


def check_size(path: str, kind: str, needed: int, available: int, row: int | None, at_least: bool = False) -> None:
    """Binary data must fill what the header declares; a whole ``row`` more means a count too low.

    ``at_least``: ``needed`` is a lower bound (rows that hold lists), said so in the message as ``N+ bytes``.
    """
    if available < needed:
        bound = f"{needed:,}{'+' if at_least else ''}"
        problem = f"file ends early (the header's counts need {bound} bytes, {available:,} follow it)"
        raise GeometryError(path, f"corrupt {kind} data: {problem}")
    if row and available - needed >= row:
        problem = f"{available - needed:,} bytes follow the data the header declares (a count too low?)"
        raise GeometryError(path, f"corrupt {kind} data: {problem}")


def check_indices(path: str, indices: np.ndarray, n_vertices: int) -> np.ndarray:
    """``indices`` as int64 if every one is an integer naming a vertex; the first bad one is reported.

    Compared in their own type, so a uint64 index beyond int64 is not wrapped into a valid one.
    """
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise GeometryError(path, f"face indices must be integers, the file stores {indices.dtype} values")
    bad = (indices < 0) | (indices >= n_vertices)
    if bad.any():
        index = indices[bad].flat[0]
        raise GeometryError(path, f"face indices out of range: index {index} with {n_vertices:,} vertices")
    return indices.astype(np.int64)


def triangulate(path: str, sizes: np.ndarray, indices: np.ndarray, n_vertices: int) -> np.ndarray:
    """Triangles of polygons given as corner counts and their concatenated vertex indices.

    Every mesh reader that parses polygons (PLY, OFF, OBJ) comes through here, so indices are
    checked before any use. A polygon is split into a fan from its first corner (exact for the
    convex polygons files hold). A face of fewer than three corners has no surface: it is refused
    rather than turned into a triangle the file does not contain.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    short = sizes < 3
    if short.any():
        face = int(np.argmax(short))
        raise GeometryError(
            path, f"corrupt mesh: face {face:,} has {sizes[face]} vertex indices; a face needs at least 3"
        )
    indices = check_indices(path, indices, n_vertices)
    if (sizes == 3).all():
        return indices.reshape(-1, 3)
    starts = np.cumsum(sizes) - sizes
    fans = sizes - 2
    fan_face = np.repeat(np.arange(len(sizes)), fans)
    corner = starts[fan_face] + 1 + np.arange(int(fans.sum())) - np.repeat(np.cumsum(fans) - fans, fans)
    return np.column_stack([indices[starts[fan_face]], indices[corner], indices[corner + 1]])


def read_table(
    path: str,
    source: IO[bytes] | Iterable[str],
    *,
    columns: int,
    max_rows: int,
    size: int,
    kind: str,
    delimiter: str | None = None,
) -> np.ndarray:
    """Parse up to ``max_rows`` rows of ``columns`` numbers from ``source`` (``size`` bytes at most).

    numpy reserves ``max_rows`` times the first row's width before parsing (a 7 KB line of 1,800
    numbers made it reserve 74 GiB), so ``max_rows`` is first bounded by what ``size`` bytes can
    hold: a row of ``columns`` numbers takes at least ``2 * columns`` bytes. The reservation is
    then at most four times the file size.
    """
    rows = min(max_rows, size // (2 * columns) + 1)
    try:
        return np.loadtxt(source, delimiter=delimiter, comments="#", ndmin=2, max_rows=rows)
    except UnicodeDecodeError:
        raise GeometryError(path, "not a text table: the file holds binary data") from None
    except ValueError as exc:
        raise GeometryError(path, f"{kind}: {numpy_problem(exc)}") from None


def numpy_problem(exc: Exception) -> str:
    """numpy's parse error without its advice to programmers ("; use `usecols` ..."), the quoted data kept whole."""
    return one_line(exc).split("; use ")[0]
