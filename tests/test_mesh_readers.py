"""The whole-block OFF, OBJ and STL parsing (issue 19) against the line-by-line readers it stands in front of.

Each reader first tries to parse a file as a few blocks (``geocli.io.blocks``), and reads it
line by line, as every version before did, when the fast path declines. The reference here is
the same reader with its fast path switched off, so every generated file must give the same
outcome both ways: the same points and faces, bit for bit (a -0.0 is not a 0.0), or the same
one-line error. The files are generated from a seed: well-formed ones in the many shapes real
writers give (triangles, quads, mixed polygons, comments, colours, relative OBJ indices,
``i/t/n`` corners, CRLF, tabs, indentation, blank lines, -0.0, repeated vertices), and as many
again with one small edit (a character inserted or deleted, a line repeated or dropped), which
is where a fast path that trusted the text would part from the careful one.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from corpus.hostile import obj_bytes, off_bytes
from geocli.io import GeometryError, blocks, meshes, read_geometry

SEED = 19
CASES = 400  # per format, half of them edited

Outcome = tuple[str, ...]


def outcome(read: Callable[[str, int], tuple[np.ndarray, np.ndarray]], path: Path) -> Outcome:
    """What a reader makes of a file: its arrays' types, shapes and bytes, or its error message."""
    try:
        points, faces = read(str(path), 10**6)
    except GeometryError as exc:
        return ("refused", str(exc))
    return ("read", points.dtype.str, str(points.shape), points.tobytes().hex(), faces.dtype.str, str(faces.shape),
            faces.tobytes().hex())  # fmt: skip


def _number(rng: np.random.Generator, value: float) -> str:
    """A coordinate as writers write it: repr, fixed, %g, exponent, an integer, a leading plus sign."""
    value, style = float(value), rng.integers(7)
    if style == 0:
        return repr(value)
    if style == 1:
        return f"{value:.6f}"
    if style == 2:
        return f"{value:g}"
    if style == 3:
        return f"{value:.3e}"
    if style == 4:
        return str(int(value * 10))
    if style == 5:
        return f"+{abs(value):.4f}" if value >= 0 else f"{value:.4f}"
    return f"{value:.17g}"


def _points(rng: np.random.Generator) -> np.ndarray:
    points = rng.normal(size=(int(rng.integers(6, 30)), 3)).round(int(rng.integers(1, 8)))
    if rng.random() < 0.3:
        points[rng.integers(len(points), size=3)] = points[0]  # repeated vertices
    if rng.random() < 0.3:
        points[rng.random(points.shape) < 0.1] = -0.0
    return points


def _polygons(rng: np.random.Generator, n_points: int) -> list[list[int]]:
    most = [3, 3, 4, 6][rng.integers(4)]  # triangles, quads or mixed polygons
    sizes = rng.integers(3, most + 1, size=int(rng.integers(1, 25)))
    return [rng.choice(n_points, size=int(size), replace=False).tolist() for size in sizes]


def _join(rng: np.random.Generator, lines: list[str]) -> bytes:
    """Lines with the white space writers use: CRLF ends, tabs, indentation, blank lines, a final newline or none."""
    space = "\t" if rng.random() < 0.2 else " "
    lines = [line.replace(" ", space) for line in lines]
    if rng.random() < 0.1:
        lines = [("  " if rng.random() < 0.3 else "") + line for line in lines]
    if rng.random() < 0.2:
        lines.insert(int(rng.integers(len(lines) + 1)), " " if rng.random() < 0.5 else "")
    end = "\r\n" if rng.random() < 0.2 else "\n"
    return (end.join(lines) + (end if rng.random() < 0.8 else "")).encode()


def off_file(rng: np.random.Generator) -> bytes:
    points, colour = _points(rng), rng.random() < 0.2
    polygons = _polygons(rng, len(points))
    rows = [" ".join(_number(rng, v) for v in p) + (" 0.5 0.5 0.5 1" if colour else "") for p in points]
    face_colour = ["", " 255 0 0", " 0.2 0.4 0.6", " 1 2 3 4"][rng.integers(4)] if rng.random() < 0.2 else ""
    faces = [" ".join(map(str, [len(f), *f])) + face_colour for f in polygons]
    header = [f"{'COFF' if colour else 'OFF'}", f"{len(points)} {len(faces)} 0"]
    if rng.random() < 0.2:
        header = [f"OFF{len(points)} {len(faces)} 0"]  # ModelNet's glued first line
    if rng.random() < 0.2:
        header.insert(1, "# written by a test")
    if rng.random() < 0.1:
        rows[int(rng.integers(len(rows)))] += " # a comment"
    return _join(rng, [*header, *rows, *faces])


def obj_file(rng: np.random.Generator) -> bytes:
    points = _points(rng)
    polygons, relative = _polygons(rng, len(points)), rng.random() < 0.3
    corner = ["{}", "{}/{}", "{}//{}", "{}/{}/{}"][rng.integers(4)]
    vertex = [f"v {' '.join(_number(rng, v) for v in p)}" + (" 1.0" if rng.random() < 0.1 else "") for p in points]
    lines = ["# made by a test"] if rng.random() < 0.5 else []
    if relative:  # each face right after the vertices it needs, named from the end
        written = 0
        for face in polygons:
            while written <= max(face):
                lines.append(vertex[written])
                written += 1
            lines.append("f " + " ".join(corner.format(i - written, 1, 1) for i in face))
    else:
        lines += vertex + ["vn 0 0 1", "vt 0.5 0.5", "g part", "usemtl skin", "s 1"]
        lines += ["f " + " ".join(corner.format(i + 1, i % 3 + 1, 1) for i in face) for face in polygons]
    if rng.random() < 0.1:
        lines[-1] += " # the last face"
    return _join(rng, lines)


def stl_file(rng: np.random.Generator) -> bytes:
    points = _points(rng).astype(np.float32)
    triangles = np.array([f[:3] for f in _polygons(rng, len(points))])
    corners = points[triangles]
    if rng.random() < 0.1:
        corners[0, 0, 0] = [np.nan, np.inf, -np.inf][rng.integers(3)]
    if rng.random() < 0.5:
        facets = np.zeros(len(corners), meshes._STL_FACET)
        facets["corners"] = corners
        return b"\0" * 80 + struct.pack("<I", len(facets)) + facets.tobytes()
    rows = ["solid test"]
    for facet in corners:
        rows += ["facet normal 0 0 1", " outer loop", *(f"  vertex {' '.join(map(repr, c.tolist()))}" for c in facet)]
        rows += [" endloop", "endfacet"]
    return _join(rng, [*rows, "endsolid test"])


_EDITS = "# \r \t \n \x0c 0 - + / _ . e nan v f 1/ 99999999999999999999".split(" ") + [" "]


def edited(rng: np.random.Generator, data: bytes) -> bytes:
    """``data`` with one small edit: a character or word inserted, a byte deleted, a line repeated or dropped."""
    where = int(rng.integers(len(data) + 1))
    kind = rng.integers(4)
    if kind == 0:
        return data[:where] + _EDITS[rng.integers(len(_EDITS))].encode() + data[where:]
    if kind == 1:
        return data[:where] + data[where + 1 :]
    lines = data.split(b"\n")
    line = int(rng.integers(len(lines)))
    return b"\n".join(lines[: line + 1] + lines[line:] if kind == 2 else lines[:line] + lines[line + 1 :])


def generated(kind: str, make: Callable[[np.random.Generator], bytes]) -> Iterator[tuple[str, bytes]]:
    rng = np.random.default_rng([SEED, ord(kind[0])])
    for index in range(CASES):
        data = make(rng)
        yield f"{index:03d}.{kind}", edited(rng, data) if index % 2 else data


_MAKERS = {"off": off_file, "obj": obj_file, "stl": stl_file}
_FAST_PATHS = {"off": "_plain_off", "obj": "_plain_obj", "stl": "_merge_corners"}


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # ASCII STL: 1e99 is inf as float32, both ways
@pytest.mark.parametrize("kind", sorted(_MAKERS))
def test_block_parsing_reads_and_refuses_what_line_parsing_does(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = []
    for name, data in generated(kind, _MAKERS[kind]):
        files.append(tmp_path / name)
        files[-1].write_bytes(data)
    read = getattr(meshes, f"read_{kind}")
    fast_path, taken = getattr(meshes, _FAST_PATHS[kind]), []

    def spy(*args: object) -> object:
        parsed = fast_path(*args)
        taken.append(parsed is not None)
        return parsed

    monkeypatch.setattr(meshes, _FAST_PATHS[kind], spy)
    fast = [outcome(read, path) for path in files]
    monkeypatch.setattr(meshes, _FAST_PATHS[kind], lambda *args: None)  # STL: np.unique merges the corners,
    monkeypatch.setattr(blocks, "decimal_rows", lambda *args: None)  # and decimal() reads ASCII STL's numbers
    careful = [outcome(read, path) for path in files]
    for path, mine, reference in zip(files, fast, careful, strict=True):
        assert mine == reference, path.name
    assert sum(taken) > CASES // 4  # most files are parsed as blocks: the comparison is not vacuous
    assert sum(result[0] == "read" for result in careful) > CASES // 3
    assert sum(result[0] == "refused" for result in careful) > CASES // 20


def test_a_surface_after_many_degenerate_faces_is_found(tmp_path: Path) -> None:
    """The area check looks at the first faces, then at all of them when those have no area."""
    vertices = "v 0 0 0\nv 1 1 1\nv 2 2 2\nv 0 1 0\n"
    flat = "f 1 2 3\n" * 100  # collinear corners: no area
    path = tmp_path / "late.obj"
    path.write_text(vertices + flat + "f 1 2 4\n")
    assert len(read_geometry(path).faces) == 101
    path.write_text(vertices + flat)
    with pytest.raises(GeometryError, match="zero surface area: all 100 faces are degenerate"):
        read_geometry(path)


@pytest.mark.parametrize("kind", ["off", "obj"])
def test_block_parsing_memory_stays_within_six_times_the_file(kind: str, tmp_path: Path) -> None:
    """The whole file is read at once, then cut into blocks: the peak, numpy's arrays included, is about 4.5 times
    the file (the line-by-line reading: 2.6 for OFF, 4.2 for OBJ at this size)."""
    rng = np.random.default_rng(0)
    points, faces = rng.normal(size=(20_000, 3)), rng.integers(0, 20_000, size=(40_000, 3)).tolist()
    path = tmp_path / f"big.{kind}"
    path.write_bytes(off_bytes(points, faces) if kind == "off" else obj_bytes(points, faces))
    tracemalloc.start()
    try:
        getattr(meshes, f"read_{kind}")(str(path), 10**6)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * path.stat().st_size, f"{peak / path.stat().st_size:.1f} times the file's size"


def test_merged_stl_corners_are_what_np_unique_gives() -> None:
    """Ties in x and y, infinities, subnormals and float32's extremes; NaN and -0.0 are left to np.unique."""
    rng = np.random.default_rng(SEED)
    values = [0.0, 1.0, -1.0, 0.5, -2.5, 1e-40, -1e-40, 3e38, -3e38, np.inf, -np.inf, 7.0]
    merged = 0
    for _ in range(500):
        pool = np.concatenate([rng.choice(values, size=int(rng.integers(1, 8))), rng.normal(size=int(rng.integers(3)))])
        corners = rng.choice(pool, size=(int(rng.integers(1, 200)), 3)).astype(np.float32)
        if rng.random() < 0.1:
            corners[rng.integers(len(corners)), rng.integers(3)] = [np.nan, -0.0][rng.integers(2)]
        wide = corners.astype(np.float64)
        points, inverse = np.unique(wide, axis=0, return_inverse=True)
        fast = meshes._merge_corners(corners, wide)
        if np.isnan(wide).any() or (np.signbit(wide) & (wide == 0)).any():
            assert fast is None
            continue
        assert fast is not None and fast[0].tobytes() == points.tobytes() and fast[0].shape == points.shape
        assert fast[1].dtype == inverse.dtype and np.array_equal(fast[1], inverse)
        merged += 1
    assert merged > 400


_TRIANGLE = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"
_OFF_TRIANGLE = "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n"
EDGE_CASES = {
    "cr.obj": "v\r1 2 3\n" + _TRIANGLE + "f 2 3 4\n",  # "v" then a carriage return: still a vertex
    "vt.obj": _TRIANGLE + "f\x0b1 2 3\n",
    "indented.obj": "  v 5 5 5\n" + _TRIANGLE + "f 2 3 4\n",
    "slash_sign.obj": _TRIANGLE + "f 1/-1 2 3\n",
    "relative.obj": _TRIANGLE + "f -3 -2 -1\nv 0 0 1\nf -4 -3 -1\n",
    "huge.obj": _TRIANGLE + "f 1 2 99999999999999999999\n",
    "plus.obj": _TRIANGLE + "f 1 2 +3\n",
    "underscore.obj": "v 1_0 0 0\n" + _TRIANGLE + "f 1 2 3\n",
    "zero.obj": _TRIANGLE + "f 1 2 0\n",
    "unended.obj": _TRIANGLE + "f 1 2 3",
    "comment.obj": _TRIANGLE.replace("\n", " # c\n", 1) + "f 1 2 3\n",
    "crlf.obj": (_TRIANGLE + "f 1 2 3\n").replace("\n", "\r\n"),
    "plain.off": _OFF_TRIANGLE + "3 0 1 2\n",
    "blank.off": _OFF_TRIANGLE.replace("0 0 0", "\n0 0 0") + "3 0 1 2\n",
    "extra_face.off": _OFF_TRIANGLE + "3 0 1 2\n3 0 1 2\n",
    "short_face.off": _OFF_TRIANGLE + "3 0 1\n",
    "five_colours.off": _OFF_TRIANGLE + "3 0 1 2 255 0 0 255 9\n",
    "huge.off": _OFF_TRIANGLE + "3 0 1 99999999999999999999\n",
    "lone_cr.off": _OFF_TRIANGLE.replace("0 1 0", "0\r1 0") + "3 0 1 2\n",
    "spaced.off": _OFF_TRIANGLE + " 3\t0 1 2 \n\n \n",
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_read_alike_both_ways(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / name
    path.write_bytes(EDGE_CASES[name].encode())
    kind = path.suffix[1:]
    read = getattr(meshes, f"read_{kind}")
    fast = outcome(read, path)
    monkeypatch.setattr(meshes, _FAST_PATHS[kind], lambda *args: None)
    assert fast == outcome(read, path)
