"""Generated hostile files: random cases of each class of failure the second hardening review found.

The review (issue 16) hand-made ~290 files; these generators draw fresh cases of the same classes
from a seed, so the tests cover the class rather than the examples:

1. face indices that name no vertex (-1, 2e9, beyond the count, index 0 in OBJ), of a non-integer
   type, or faces of fewer than three corners, in triangles and polygons of PLY, OFF and OBJ;
2. referenced files that are not regular files (a named pipe, a folder, a device) or are missing;
3. counts that would allocate far more than the file holds (glTF accessors, a one-line text table
   of thousands of columns, PCD fields of huge COUNT);
6. files a reader used to misread silently (ASCII PLY rows with extra values, ASCII STL cut short,
   LAS point counts that disagree with the records, transposed NPY, OBJ relative indices);
8. files that got a misleading message (PCD doubles and unknown types, invalid glTF JSON, PLY
   headers with thousands of comments, text tables whose bad value holds a ';').

``build(folder, seed)`` writes the files and returns a ``Case`` per file: the text its one-line
error must contain, or, for a file that must be read, the points (and triangles) it holds.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True, eq=False)
class Case:
    """What geocli must do with one generated file."""

    name: str
    error: str | None = None  # text the one-line error must contain; None: the file must be read
    points: np.ndarray | None = None  # what a correct read holds (valid files only)
    triangles: np.ndarray | None = None  # corner coordinates, (faces, 3, 3), for valid meshes


# --- random shapes and plain writers ------------------------------------------------------------


def random_polygons(rng: np.random.Generator, n_vertices: int, count: int) -> list[list[int]]:
    """Triangles and polygons of up to six distinct corners."""
    return [list(rng.choice(n_vertices, rng.choice([3, 3, 4, 5, 6]), replace=False)) for _ in range(count)]


def fan_indices(polygons: list[list[int]]) -> np.ndarray:
    """The polygons split into fans of triangles from their first corner, as a reader must."""
    return np.array([[p[0], p[i], p[i + 1]] for p in polygons for i in range(1, len(p) - 1)], dtype=np.int64)


def ply_bytes(
    points: np.ndarray, polygons: list[list[int]], encoding: str = "ascii", index_type: str = "int",
    comments: int = 0, rows: Callable[[list[str]], list[str]] = lambda rows: rows,
) -> bytes:  # fmt: skip
    """A PLY file; ``rows`` may edit the ASCII data rows before they are written."""
    header = ["ply", f"format {encoding} 1.0", *["comment generated for geocli's tests"] * comments,
              f"element vertex {len(points)}", "property float x", "property float y", "property float z"]  # fmt: skip
    if polygons:
        header += [f"element face {len(polygons)}", f"property list uchar {index_type} vertex_indices"]
    head = ("\n".join([*header, "end_header"]) + "\n").encode()
    if encoding == "ascii":
        lines = [" ".join(map(repr, p.tolist())) for p in points] + [" ".join(map(str, [len(f), *f])) for f in polygons]
        return head + ("\n".join(rows(lines)) + "\n").encode()
    order = "<" if encoding == "binary_little_endian" else ">"
    code = {"int": "i", "uint": "I", "float": "f", "short": "h"}[index_type]
    body = np.asarray(points, order + "f4").tobytes()
    body += b"".join(struct.pack(f"{order}B{len(f)}{code}", len(f), *f) for f in polygons)
    return head + body


def off_bytes(points: np.ndarray, polygons: list[list[int]]) -> bytes:
    lines = ["OFF", f"{len(points)} {len(polygons)} 0", *(" ".join(map(repr, p.tolist())) for p in points)]
    return ("\n".join([*lines, *(" ".join(map(str, [len(f), *f])) for f in polygons)]) + "\n").encode()


def obj_bytes(points: np.ndarray, polygons: list[list[int]], relative: bool = False, head: str = "") -> bytes:
    """An OBJ file; ``relative`` interleaves vertices and faces, the faces naming corners by negative indices."""
    if not relative:
        vertices = ["v {!r} {!r} {!r}".format(*p) for p in points.tolist()]
        return (
            head + "\n".join([*vertices, *("f " + " ".join(str(i + 1) for i in f) for f in polygons)]) + "\n"
        ).encode()
    lines, written = [], 0
    for face in polygons:  # write the vertices a face needs just before it, then name them from the end
        while written <= max(face):
            lines.append("v {!r} {!r} {!r}".format(*points[written].tolist()))
            written += 1
        lines.append("f " + " ".join(f"{i - written}/{1 + i % 3}" for i in face))  # i/t: texture indices ignored
    return (head + "\n".join(lines) + "\n").encode()


def gltf_document(points: np.ndarray, triangles: np.ndarray, uri: str | None) -> tuple[dict, bytes]:
    """A one-mesh glTF and its buffer; ``uri=None`` embeds the buffer as a base64 data URI."""
    blob = np.asarray(points, "<f4").tobytes() + np.asarray(triangles, "<u4").tobytes()
    uri = uri or "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    document = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": len(blob), "uri": uri}],
        "bufferViews": [{"buffer": 0, "byteLength": 12 * len(points)},
                        {"buffer": 0, "byteOffset": 12 * len(points), "byteLength": 4 * triangles.size}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": len(points), "type": "VEC3",
                       "min": np.min(points, 0).tolist(), "max": np.max(points, 0).tolist()},
                      {"bufferView": 1, "componentType": 5125, "count": triangles.size, "type": "SCALAR"}],
    }  # fmt: skip
    return document, blob


def pcd_bytes(points: np.ndarray, encoding: str, kind: str = "F", size: int = 4) -> bytes:
    """A PCD file of x, y, z fields of one TYPE and SIZE; binary_compressed uses literal-only LZF."""
    n = len(points)
    header = (
        f"VERSION 0.7\nFIELDS x y z\nSIZE {size} {size} {size}\nTYPE {kind} {kind} {kind}\nCOUNT 1 1 1\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {encoding}\n"
    ).encode()
    dtype = np.dtype(f"<{'f' if kind not in 'IU' else kind.lower()}{size}")
    values = np.asarray(points).astype(dtype)
    if encoding == "ascii":
        return header + "".join(" ".join(repr(v.item()) for v in row) + "\n" for row in values).encode()
    if encoding == "binary":
        return header + values.tobytes()
    columns = np.ascontiguousarray(values.T).tobytes()  # one field after another
    literal = b"".join(bytes([len(c) - 1]) + c for c in (columns[i : i + 32] for i in range(0, len(columns), 32)))
    return header + struct.pack("<II", len(literal), len(columns)) + literal


# --- the classes --------------------------------------------------------------------------------


def build(folder: str | os.PathLike, seed: int) -> list[Case]:
    """Write random cases of every class into ``folder`` (which must exist); return what each must give."""
    root, rng = Path(folder), np.random.default_rng(seed)
    cases: list[Case] = []

    def write(name: str, content: bytes, error: str | None = None, **expected: np.ndarray) -> None:
        (root / name).write_bytes(content)
        cases.append(Case(name, error, **expected))

    n = int(rng.integers(8, 40))
    points = rng.normal(size=(n, 3)).astype(np.float32).astype(np.float64)  # float32-exact: PLY stores float
    polygons = random_polygons(rng, n, int(rng.integers(4, 20)))
    triangles = fan_indices(polygons)
    mesh = {"points": points, "triangles": points[triangles]}

    # 1. Face indices that name no vertex, or are not integers, or faces of fewer than three corners.
    for target in ("triangle", "polygon"):
        face = next(i for i, p in enumerate(polygons) if (len(p) == 3) == (target == "triangle"))
        corner = int(rng.integers(len(polygons[face])))
        for fmt in ("ascii", "binary_little_endian", "binary_big_endian", "off", "obj"):
            bad = int(
                rng.choice(
                    [-1, -int(rng.integers(2, 2**31)), n + int(rng.integers(0, 1000)), int(rng.integers(2**30, 2**31))]
                )
            )
            broken = [list(p) for p in polygons]
            broken[face][corner] = bad
            name = f"index_{bad}_in_{target}"
            if fmt == "off":
                write(f"{name}.off", off_bytes(points, broken), "face indices out of range")
            elif fmt == "obj":  # 1-based, and a negative index counts back: reach past the first vertex
                broken[face][corner] = (
                    n + int(rng.integers(0, 1000)) if bad >= 0 else -(n + 2 + int(rng.integers(0, 1000)))
                )
                write(f"index_out_of_range_in_{target}.obj", obj_bytes(points, broken), "face indices out of range")
            else:
                write(f"{name}_{fmt}.ply", ply_bytes(points, broken, fmt), "face indices out of range")
    unsigned = [list(p) for p in polygons]
    unsigned[-1][0] = 2**32 - 1
    write(
        "index_uint_max.ply", ply_bytes(points, unsigned, "binary_little_endian", "uint"), "face indices out of range"
    )
    write("index_zero.obj", obj_bytes(points, polygons).replace(b"\nf ", b"\nf 0 ", 1), "vertex index 0")
    for fmt in ("ascii", "binary_big_endian"):
        write(f"float_indices_{fmt}.ply", ply_bytes(points, polygons, fmt, "float"), "face indices must be integers")
    short = [list(p) for p in polygons]
    short[int(rng.integers(len(short)))] = list(rng.choice(n, int(rng.integers(0, 3)), replace=False))
    write("short_face.ply", ply_bytes(points, short, "binary_little_endian"), "a face needs at least 3")
    write("short_face_ascii.ply", ply_bytes(points, short), "a face needs at least 3")
    write("short_face.off", off_bytes(points, short), "a face needs at least 3")
    write("short_face.obj", obj_bytes(points, short), "a face needs at least 3")

    # 2. Files a format references that are not regular files, or are missing: never opened.
    references: dict[str, Callable[[Path], None]] = {
        "named_pipe.bin": os.mkfifo, "folder.bin": os.mkdir, "device.bin": lambda p: os.symlink("/dev/zero", p),
        "missing.bin": lambda p: None,
    }  # fmt: skip
    # The link to a device leaves the file's folder: refused as such before its kind is even looked at.
    expected_problem = {"named_pipe.bin": ": not a regular file (a named pipe)", "folder.bin": ": is a directory",
                        "device.bin": "", "missing.bin": ": file not found"}  # fmt: skip
    for reference, make in references.items():
        make(root / reference)
        document, _ = gltf_document(points, triangles, reference)
        write(f"buffer_{reference.replace('.bin', '')}.gltf", json.dumps(document).encode(),
              f"referenced file '{reference}'{expected_problem[reference]}")  # fmt: skip
    write("mtllib_named_pipe.obj", obj_bytes(points, polygons, head="mtllib named_pipe.bin\nusemtl skin\n"), **mesh)

    # 3. Counts far beyond what the file holds: refused before anything is allocated.
    document, _ = gltf_document(points, triangles, None)
    document["accessors"][0]["count"] = int(rng.integers(10**7, 10**9))
    write("accessor_count_huge.gltf", json.dumps(document).encode(), "which need")
    document["accessors"][0].pop("bufferView")
    write("accessor_without_buffer.gltf", json.dumps(document).encode(), "has no bufferView")
    columns = int(rng.integers(1000, 5000))
    write("one_wide_line.xyz", (" ".join(["1.5"] * columns) + "\n").encode(), "only one point")
    wide = (
        "VERSION 0.7\nFIELDS x y z w\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 {}\nWIDTH 1000\nPOINTS 1000\nDATA ascii\n"
    )
    write(
        "pcd_count_huge.pcd",
        (wide.format(int(rng.integers(10**5, 10**7))) + "0 0 0 0\n1 1 1 1\n").encode(),
        "corrupt PCD data",
    )

    # 6. Files that were misread without a word: now refused, or read right.
    row = int(rng.integers(n))

    def extra(rows: list[str]) -> list[str]:
        return [r + " 0" * int(rng.integers(1, 4)) if i == row else r for i, r in enumerate(rows)]

    def missing(rows: list[str]) -> list[str]:
        return [" ".join(r.split()[:-1]) if i == row else r for i, r in enumerate(rows)]

    write("extra_values.ply", ply_bytes(points, polygons, rows=extra), "the header declares")
    write("missing_value.ply", ply_bytes(points, polygons, rows=missing), "the header declares")
    stl = "solid random\n" + "".join(
        "facet normal 0 0 1\n outer loop\n" + "".join("  vertex {!r} {!r} {!r}\n".format(*c) for c in corners.tolist())
        + " endloop\nendfacet\n" for corners in mesh["triangles"]
    ) + "endsolid random\n"  # fmt: skip
    write("whole.stl", stl.encode(), triangles=mesh["triangles"])  # STL merges repeated corners: compare triangles
    write("cut_short.stl", stl.encode()[: int(len(stl) * rng.uniform(0.1, 0.95))], "corrupt STL data")
    write("transposed.npy", _npy(points.T.copy()), "transposed")
    used = points[: triangles.max() + 1]  # the relative writer stops at the last vertex a face names
    write("relative_indices.obj", obj_bytes(points, polygons, relative=True), points=used, triangles=mesh["triangles"])
    write("las_count_wrong.las", _las_with_wrong_count(points, rng), "corrupt LAS data")

    # 8. Files that got a misleading message: now read, or refused with the real reason.
    for encoding in ("ascii", "binary", "binary_compressed"):
        write(f"doubles_{encoding}.pcd", pcd_bytes(points * 1e3, encoding, "F", 8), points=points * 1e3)
    integers = np.round(points * 1000)
    for kind, size in [("I", 8), ("U", 8), ("I", 2)]:
        shift = 0 if kind == "I" else 5000
        write(f"integers_{kind}{size}.pcd", pcd_bytes(integers + shift, "binary", kind, size), points=integers + shift)
    kind, size = [("X", 4), ("F", 2), ("F", 16), ("I", 3)][int(rng.integers(4))]
    unknown = pcd_bytes(points, "binary").replace(b"TYPE F F F", f"TYPE {kind} {kind} {kind}".encode())
    write(
        "unknown_type.pcd",
        unknown.replace(b"SIZE 4 4 4", f"SIZE {size} {size} {size}".encode()),
        "unsupported PCD data",
    )
    text = json.dumps(gltf_document(points, triangles, None)[0])
    write("invalid_json.gltf", text[: int(rng.integers(1, len(text) - 1))].encode(), "invalid glTF JSON")
    write("many_comments.ply", ply_bytes(points, polygons, comments=int(rng.integers(1001, 20000))), **mesh)
    token = f"{rng.integers(10)};{rng.integers(10)};{rng.integers(10)}"
    write("semicolon_in_value.xyz", f"0 0 0\n1 2 3\n{token} 4 5\n".encode(), f"could not convert string '{token}'")
    return cases


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _las_with_wrong_count(points: np.ndarray, rng: np.random.Generator) -> bytes:
    """A LAS file whose header's point count is off by a random amount, up or down."""
    import io

    import laspy

    las = laspy.LasData(laspy.LasHeader(point_format=3, version="1.2"))
    las.x, las.y, las.z = points.T
    buffer = io.BytesIO()
    las.write(buffer)
    data = bytearray(buffer.getvalue())
    delta = int(rng.integers(1, len(points))) * int(rng.choice([-1, 1]))
    data[107:111] = struct.pack("<I", len(points) + delta)  # the legacy point count of LAS 1.2
    return bytes(data)
