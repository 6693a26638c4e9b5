"""Structure-aware fuzz cases: a valid file of each format, built from a seed, then one edit of its structure.

Byte flips (``mutate.py``) mostly break a file where every reader notices. These edits go where a
naive reader trusts the file: the counts a header declares (PLY elements, PCD ``POINTS``/``SIZE``/
``COUNT``, OFF counts, LAS point count and record length, glTF accessor counts, offsets and
strides, NPY shapes), the indices faces hold (negative, huge, 0 in OBJ, past the end, not
integers), the types a header names (PLY property and list types, PCD ``TYPE``, NPY ``descr``,
glTF ``componentType``), the values (NaN, infinities, exponents past float64), the files a
document references (glTF buffer URIs that are missing, absolute, outside the folder, named
pipes, folders, bad base64; OBJ ``mtllib``), and the text around them (truncation at section
boundaries, repeated or missing header lines, CRLF and CR line ends, byte-order marks).

``case(seed, index)`` is a pure function of its arguments: any case of a run can be rebuilt
alone. Each case knows what a correct reader must do where that is certain: refuse it
(``expect="refused"``: a count that disagrees with the data, an index naming no vertex, a NaN
coordinate) or read it, with how many points (``expect="read"``: the unedited file, and edits a
reader must take in its stride, such as CRLF line ends or an OBJ ``mtllib`` naming a pipe).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import struct
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMATS = ("ply", "pcd", "obj", "off", "stl", "gltf", "glb", "las", "laz", "npy", "npz", "xyz")
GENERIC = ("truncate_boundary", "truncate_anywhere", "crlf", "cr", "bom", "utf16", "repeat_line", "drop_line",
           "garbage_tail")  # fmt: skip
_TEXT = {"obj", "off", "xyz"}  # formats with no binary encoding at all


@dataclass(frozen=True)
class Case:
    """One generated file (``name``), the files it references (``extras``), and what a reader must do with it.

    ``extras`` maps a file name to its bytes, or to ``"fifo"`` or ``"dir"`` for a named pipe or a folder.
    """

    seed: int
    index: int
    format: str
    mutation: str
    detail: str
    data: bytes = field(repr=False)
    extras: dict[str, bytes | str] = field(default_factory=dict, repr=False)
    expect: str | None = None  # "refused", "read" or None (either, in one clean line)
    points: int | None = None  # the points a correct read finds, where expect == "read"
    extension: str = ""  # the file's, where it is not the format's name (a text table's .txt, say)

    @property
    def name(self) -> str:
        return f"s{self.seed}_{self.index:05d}_{self.mutation}.{self.extension or self.format}"

    def write(self, folder: Path) -> Path:
        """Write the file and its references into ``folder``; return the file's path."""
        for name, content in self.extras.items():
            target = folder / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            elif content == "fifo":
                os.mkfifo(target)
            else:
                target.mkdir()
        path = folder / self.name
        path.write_bytes(self.data)
        return path


@dataclass
class _Built:
    """A format builder's file: where its header ends and where its sections start, for the generic edits."""

    data: bytes
    header_end: int
    boundaries: list[int]
    binary: bool  # data after the header are binary (CRLF edits stay in the header)
    expect: str | None = "read"
    points: int | None = None
    detail: str = ""
    extras: dict[str, bytes | str] = field(default_factory=dict)
    extension: str = ""


def case(seed: int, index: int) -> Case:
    """The ``index``-th case of run ``seed``: formats in turn, an edit drawn at random (a tenth unedited)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN and overflow are what is asked for; zipfile's duplicate names too
        return _case(seed, index)


def _case(seed: int, index: int) -> Case:
    rng = np.random.default_rng([seed, index])
    fmt = FORMATS[index % len(FORMATS)]
    prefix = f"s{seed}_{index:05d}_"
    roll = rng.random()
    specific = _MUTATIONS[fmt]
    mutation = "none" if roll < 0.1 else str(rng.choice(GENERIC)) if roll < 0.35 else str(rng.choice(specific))
    built = _BUILDERS[fmt](rng, mutation if mutation in specific else "none", prefix)
    if mutation in GENERIC:
        built = _generic(rng, fmt, mutation, built)
    return Case(seed, index, fmt, mutation, built.detail or mutation, built.data, built.extras, built.expect,
                built.points, built.extension)  # fmt: skip


def cases(seed: int, count: int, start: int = 0) -> list[Case]:
    return [case(seed, index) for index in range(start, start + count)]


# --- shapes and values --------------------------------------------------------------------------


def _shape(rng: np.random.Generator, mesh: bool) -> tuple[np.ndarray, list[list[int]]]:
    """A few float32-exact points and, for a mesh, polygons of 3 to 5 distinct corners using every point."""
    n = int(rng.integers(5, 48))
    points = rng.normal(size=(n, 3)).astype(np.float32).astype(np.float64)
    if not mesh:
        return points, []
    order = rng.permutation(n).tolist()
    polygons = [order[i : i + 3] for i in range(0, n - 2, 3)]
    polygons += [list(rng.choice(n, int(rng.choice([3, 3, 4, 5])), replace=False)) for _ in range(rng.integers(1, 12))]
    return points, [[int(i) for i in p] for p in polygons]


def _fan(polygons: list[list[int]]) -> np.ndarray:
    return np.array([[p[0], p[i], p[i + 1]] for p in polygons for i in range(1, len(p) - 1)], dtype=np.int64)


def _bad_count(rng: np.random.Generator, n: int) -> int | str:
    """A declared count other than ``n``: off by one, zero, beyond every integer type, or not a number."""
    options: list[int | str] = [0, n - 1, n + 1, 2 * n, -1, 2**31 - 1, 2**32, 2**63 - 1, 10**20, "1.5", "1e3", "abc"]
    return options[int(rng.integers(len(options)))]


def _bad_index(rng: np.random.Generator, n: int) -> int | str:
    options: list[int | str] = [-1, -n - 1, n, n + 7, 2**31 - 1, 2**32 - 1, 2**32, 2**63, 10**20, "1.5", "abc", "1e2"]
    return options[int(rng.integers(len(options)))]


# A coordinate a reader must refuse (NaN, infinite, beyond float32), or must read (1e-400 is 0.0).
_SPECIAL_TEXT = {"nan": "refused", "inf": "refused", "-inf": "refused", "NaN": "refused", "1e400": "refused",
                 "-1e400": "refused", "1e39": "refused", "Infinity": "refused", "1e-400": "read", "0x1p3": "refused",
                 "1,5": "refused", "1.5.5": "refused", "--1": "refused", "1e": "refused"}  # fmt: skip
_SPECIAL_BINARY = {"nan": (float("nan"), "refused"), "inf": (float("inf"), "refused"),
                   "-inf": (float("-inf"), "refused"), "1e39": (1e39, "refused"), "5e-324": (5e-324, "read"),
                   "-0.0": (-0.0, "read")}  # fmt: skip


def _special_text(rng: np.random.Generator) -> tuple[str, str]:
    token = str(rng.choice(list(_SPECIAL_TEXT)))
    return token, _SPECIAL_TEXT[token]


def _special_binary(rng: np.random.Generator, dtype: str) -> tuple[float, str, str]:
    """A special value, and whether a reader must refuse it once stored in ``dtype`` (1e39 is inf as float32)."""
    name = str(rng.choice(list(_SPECIAL_BINARY)))
    value, expect = _SPECIAL_BINARY[name]
    if name == "5e-324" and np.dtype(dtype).itemsize == 4:
        expect = "read"  # 0.0 in float32
    return value, expect, name


def _special_vertex(rng: np.random.Generator, vertex_words: list[list[str]]) -> tuple[str | None, str]:
    """Write a special number into a random coordinate of an OBJ or OFF vertex; what a reader must do, and why."""
    row, axis = int(rng.integers(len(vertex_words))), int(rng.integers(3))
    token, expect = _special_text(rng)
    vertex_words[row][axis] = token
    return (expect if expect == "refused" else None), f"vertex {row} coordinate {token}"


def _wrap(value: int, dtype: np.dtype) -> int:
    """``value`` as an integer type stores it: modulo its range, signed types wrapping to negative."""
    bits = 8 * dtype.itemsize
    stored = value % 2**bits
    return stored - 2**bits if dtype.kind == "i" and stored >= 2 ** (bits - 1) else stored


def _pick(rng: np.random.Generator, options: list) -> object:  # type: ignore[type-arg]
    return options[int(rng.integers(len(options)))]


# --- PLY ----------------------------------------------------------------------------------------

_PLY_NUMPY = {"char": "i1", "uchar": "u1", "short": "i2", "ushort": "u2", "int": "i4", "uint": "u4", "float": "f4",
              "double": "f8", "int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4",
              "uint32": "u4", "float32": "f4", "float64": "f8"}  # fmt: skip


Overrides = dict[tuple[str, int, int], str]  # (element, row, position) -> the word written there in ASCII


def _ply(rng: np.random.Generator, mutation: str, prefix: str) -> _Built:
    mesh = mutation in ("face_count", "index", "list_length", "count_type", "element_order", "tristrips") or (
        rng.random() < 0.6
    )
    points, polygons = _shape(rng, mesh)
    n = len(points)
    encoding = str(rng.choice(["ascii", "binary_little_endian", "binary_big_endian"]))
    coord = str(rng.choice(["float", "float", "double", "float32"]))
    props = [("x", coord), ("y", coord), ("z", coord)]
    columns: list[list[object]] = [points[:, 0].tolist(), points[:, 1].tolist(), points[:, 2].tolist()]
    if rng.random() < 0.3:
        props += [("red", "uchar"), ("green", "uchar"), ("blue", "uchar")]
        columns += [rng.integers(0, 256, n).tolist() for _ in range(3)]
    if rng.random() < 0.2:
        props.append(("quality", "float"))
        columns.append(rng.random(n).astype(np.float32).tolist())
    count_type, index_type = (
        str(rng.choice(["uchar", "uchar", "ushort", "int", "uint"])),
        str(rng.choice(["int", "int", "uint", "short", "ushort", "int32"])),
    )
    element = "tristrips" if mutation == "tristrips" else "face"
    lists: list[list[object]] = [list(p) for p in polygons]
    if element == "tristrips":  # one strip per polygon's first triangle, restarts between them
        lists = [[i for p in polygons for i in (*p[:3], -1)][:-1]]
        index_type = "int"
    header = ["ply", f"format {encoding} 1.0", "comment structured fuzz case", f"element vertex {n}"]
    header += [f"property {t} {name}" for name, t in props]
    face_header = [f"element {element} {len(lists)}", f"property list {count_type} {index_type} vertex_indices"]
    if mesh:
        header += face_header
    expect, detail, declared = "read", "", {}
    ascii_override: Overrides = {}
    if mutation == "vertex_count":
        declared["vertex"] = _bad_count(rng, n)
        expect, detail = "refused", f"element vertex {declared['vertex']} for {n} rows"
    elif mutation == "face_count":
        declared[element] = _bad_count(rng, len(lists))
        expect, detail = "refused", f"element face {declared[element]} for {len(lists)} rows"
    elif mutation == "index":
        face, corner = int(rng.integers(len(lists))), int(rng.integers(3))
        bad = _bad_index(rng, n)
        detail = f"face {face} index {bad!r} ({index_type})"
        if encoding == "ascii" or isinstance(bad, str):
            ascii_override[("face", face, corner)] = str(bad)
            encoding = "ascii"
            header[1] = "format ascii 1.0"
        else:
            stored = _wrap(bad, np.dtype(_PLY_NUMPY[index_type]))
            lists[face][corner] = stored
            expect = "read" if 0 <= stored < n else "refused"
            detail += f" stored as {stored}"
        if encoding == "ascii":
            expect = "refused"
    elif mutation == "list_length":
        face = int(rng.integers(len(lists)))
        short = int(rng.integers(0, 3))
        lists[face] = lists[face][:short]
        expect, detail = "refused", f"face {face} of {short} corners"
    elif mutation == "count_type":
        count_type = str(rng.choice(["float", "double", "char"]))
        header[-1] = f"property list {count_type} {index_type} vertex_indices"
        expect = "refused" if count_type != "char" else "read"
        detail = f"list count type {count_type}"
    elif mutation == "type_lie":
        position = int(rng.integers(len(props)))
        new = str(rng.choice(["float128", "half", "int64", "string", "", *_PLY_NUMPY]))
        line = 4 + position
        header[line] = f"property {new} {props[position][0]}".replace("  ", " ")
        expect, detail = None, f"property {props[position][0]} declared {new!r}, stored as {props[position][1]}"
        if new not in _PLY_NUMPY:
            expect = "refused"
    elif mutation == "special":
        row, axis = int(rng.integers(n)), int(rng.integers(3))
        if encoding == "ascii":
            token, expect = _special_text(rng)
            ascii_override[("vertex", row, axis)] = token
            detail = f"vertex {row} coordinate {token}"
        else:
            value, expect, name = _special_binary(rng, _PLY_NUMPY[coord])
            columns[axis][row] = value
            detail = f"vertex {row} coordinate {name}"
        expect = expect if expect == "refused" else None
    elif mutation == "element_order" and mesh:
        vertex_lines = header[3 : 4 + len(props)]
        header = header[:3] + face_header + vertex_lines
        detail = "face element before vertex element"
    elif mutation == "unknown_element":
        header += ["element material 2", "property uchar ambient_red", "property float power"]
        detail = "an unknown element with data"
    elif mutation == "no_xyz":
        header[4] = f"property {coord} u"
        expect, detail = "refused", "no x property"
    elif mutation == "format_line":
        header[1] = str(rng.choice(["format binary_middle_endian 1.0", "format", "format ascii", "format ascii 2.0",
                                    "format BINARY_LITTLE_ENDIAN 1.0"]))  # fmt: skip
        expect, detail = None, header[1]
    elif mutation == "comments":
        header[2:3] = ["comment é ü ß \x01 latin1 \xff"] * int(rng.integers(1, 3000)) + ["obj_info made by fuzz"]
        detail = "many comments with odd characters"
    elif mutation == "no_end_header":
        encoding = "ascii"
        header[1] = "format ascii 1.0"
        expect, detail = "refused", "no end_header"
    text_header = "\n".join(header) + ("\n" if mutation == "no_end_header" else "\nend_header\n")
    for name, value in declared.items():
        text_header = text_header.replace(f"element {name} {n if name == 'vertex' else len(lists)}\n",
                                          f"element {name} {value}\n")  # fmt: skip
    head = text_header.encode("latin-1")
    elements = [("vertex", None)] + ([(element, None)] if mesh else [])
    if mutation == "element_order" and mesh:
        elements.reverse()
    if mutation == "unknown_element":
        elements.append(("material", None))
    body, boundaries = b"", [len(head)]
    for name, _ in elements:
        if name == "vertex":
            body += _ply_vertices(encoding, props, columns, ascii_override)
        elif name == "material":
            body += b"1 2.5\n3 0.5\n" if encoding == "ascii" else struct.pack(f"{_order(encoding)}BfBf", 1, 2.5, 3, 0.5)
        else:
            body += _ply_lists(encoding, count_type, index_type, lists, ascii_override)
        boundaries.append(len(head) + len(body))
    if mutation == "no_end_header":
        body = b""
    return _Built(head + body, len(head), boundaries, encoding != "ascii", expect, n, detail)


def _order(encoding: str) -> str:
    return ">" if encoding == "binary_big_endian" else "<"


def _ply_vertices(
    encoding: str, props: list[tuple[str, str]], columns: list[list[object]], override: Overrides
) -> bytes:
    rows = list(zip(*columns))
    if encoding == "ascii":
        lines = []
        for r, row in enumerate(rows):
            words = [override.get(("vertex", r, c), _word(v)) for c, v in enumerate(row)]
            lines.append(" ".join(words))
        return ("\n".join(lines) + "\n").encode()
    dtype = np.dtype([(name, _order(encoding) + _PLY_NUMPY[t]) for name, t in props])
    return np.array([tuple(row) for row in rows], dtype=dtype).tobytes()


def _word(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _ply_lists(
    encoding: str, count_type: str, index_type: str, lists: list[list[object]], override: Overrides
) -> bytes:
    if encoding == "ascii":
        lines = []
        for r, items in enumerate(lists):
            words = [override.get(("face", r, c), str(v)) for c, v in enumerate(items)]
            lines.append(" ".join([str(len(items)), *words]))
        return ("\n".join(lines) + "\n").encode()
    order = _order(encoding)
    count, index = np.dtype(_PLY_NUMPY[count_type]), np.dtype(_PLY_NUMPY[index_type])
    out = b""
    for items in lists:
        out += np.array([len(items)], order + count.str[1:]).tobytes()
        out += np.array([_wrap(int(v), index) for v in items], order + index.str[1:]).tobytes()  # type: ignore[call-overload]
    return out


# --- PCD ----------------------------------------------------------------------------------------


_PCD_READABLE = {("F", 4), ("F", 8)} | {(kind, size) for kind in "IU" for size in (1, 2, 4, 8)}


def _pcd(rng: np.random.Generator, mutation: str, prefix: str) -> _Built:
    points, _ = _shape(rng, False)
    n = len(points)
    encoding = str(rng.choice(["ascii", "binary", "binary_compressed"]))
    size = int(rng.choice([4, 4, 8]))
    fields = [("x", size, "F", 1), ("y", size, "F", 1), ("z", size, "F", 1)]
    values = [points[:, 0:1], points[:, 1:2], points[:, 2:3]]
    if rng.random() < 0.3:
        fields.append(("rgb", 4, "U", 1))
        values.append(rng.integers(0, 2**24, (n, 1)))
    if rng.random() < 0.2:
        fields.append(("_", 1, "U", 4))  # PCL's padding
        values.append(np.zeros((n, 4)))
    if rng.random() < 0.2:
        fields.append(("normal_x", 4, "F", 1))
        values.append(rng.normal(size=(n, 1)))
    lines = {"VERSION": "0.7", "FIELDS": " ".join(f[0] for f in fields), "SIZE": " ".join(str(f[1]) for f in fields),
             "TYPE": " ".join(f[2] for f in fields), "COUNT": " ".join(str(f[3]) for f in fields), "WIDTH": str(n),
             "HEIGHT": "1", "VIEWPOINT": "0 0 0 1 0 0 0", "POINTS": str(n), "DATA": encoding}  # fmt: skip
    expect, detail, override, compressed_lie = "read", "", None, None
    if mutation == "points":
        lines["POINTS"] = str(_bad_count(rng, n))
        expect, detail = "refused", f"POINTS {lines['POINTS']} for {n}"
    elif mutation == "width_height":
        lines["WIDTH"], lines["HEIGHT"] = str(_bad_count(rng, n)), str(_pick(rng, [0, 1, 2, 7, -1]))
        expect, detail = None, f"WIDTH {lines['WIDTH']} HEIGHT {lines['HEIGHT']}"
    elif mutation == "size_lie":
        column = int(rng.integers(len(fields)))
        sizes = lines["SIZE"].split()
        sizes[column] = str(_pick(rng, [0, 1, 2, 3, 4, 8, 16, 99999999999]))
        lines["SIZE"] = " ".join(sizes)
        expect, detail = None, f"SIZE {lines['SIZE']}"
    elif mutation == "type_lie":
        column = int(rng.integers(len(fields)))
        types = lines["TYPE"].split()
        types[column] = str(_pick(rng, ["I", "U", "X", "f", "FF", "0"]))
        lines["TYPE"] = " ".join(types)
        expect, detail = None, f"TYPE {lines['TYPE']}"
        if (types[column], fields[column][1]) not in _PCD_READABLE:
            expect = "refused"
    elif mutation == "count":
        column = int(rng.integers(len(fields)))
        counts = lines["COUNT"].split()
        counts[column] = str(_pick(rng, [0, 2, 3, 10**6, 2**31, 2**63, -1]))
        lines["COUNT"] = " ".join(counts)
        # A row a few bytes shorter or longer may pass for padding: sure to be refused are the big and the x, y, z.
        sure = column < 3 or int(counts[column]) not in (0, 2, 3) or encoding == "ascii"
        expect, detail = ("refused" if sure else None), f"COUNT {lines['COUNT']}"
    elif mutation == "arity":
        key = str(rng.choice(["FIELDS", "SIZE", "TYPE", "COUNT"]))
        words = lines[key].split()
        lines[key] = " ".join(words[:-1] if rng.random() < 0.5 else [*words, words[-1]])
        expect, detail = "refused", f"{key} {lines[key]}"
    elif mutation == "missing_line":
        key = str(rng.choice(list(lines)))
        del lines[key]
        expect = "refused" if key in ("FIELDS", "SIZE", "TYPE", "POINTS", "DATA") else "read"
        detail = f"no {key} line"
    elif mutation == "data_kind":
        lines["DATA"] = str(_pick(rng, ["binary_compressed_v2", "Binary", "", "ascii ascii", "lzf"]))
        expect, detail = None, f"DATA {lines['DATA']!r}"
        if lines["DATA"].split()[:1] not in (["ascii"], ["binary"], ["binary_compressed"]):
            expect = "refused"
    elif mutation == "compressed_sizes" and encoding == "binary_compressed":
        compressed_lie = (int(_pick(rng, [0, 1, 2**32 - 1, 12])), int(_pick(rng, [0, 1, 2**32 - 1, 7])))
        expect, detail = "refused", f"compressed sizes {compressed_lie}"
    elif mutation == "lzf_corrupt" and encoding == "binary_compressed":
        compressed_lie = (-1, -1)
        expect, detail = "refused", "a back reference before the start of the LZF stream"
    elif mutation == "special":
        row, axis = int(rng.integers(n)), int(rng.integers(3))
        if encoding == "ascii":
            override = (row, axis, *_special_text(rng))
            detail, expect = f"point {row} coordinate {override[2]}", override[3]
        else:
            value, expect, name = _special_binary(rng, f"f{size}")
            values[axis][row, 0] = value
            detail = f"point {row} coordinate {name}"
        expect = expect if expect == "refused" else None
    order = ["VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA"]
    head = ("# .PCD v0.7 - Point Cloud Data file format\n" + "".join(
        f"{key} {lines[key]}\n" for key in order if key in lines)).encode()  # fmt: skip
    dtypes = [np.dtype(f"<{'f' if kind == 'F' else 'u'}{width}") for _, width, kind, _ in fields]
    if encoding == "ascii":
        rows = []
        for r in range(n):
            words = []
            for column, dtype in zip(values, dtypes):
                for v in column[r]:
                    words.append(repr(float(dtype.type(v))) if dtype.kind == "f" else str(int(v)))
            if override and override[0] == r:
                words[override[1]] = override[2]
            rows.append(" ".join(words))
        body = ("\n".join(rows) + "\n").encode()
    else:
        typed = [np.asarray(column).astype(dtype) for column, dtype in zip(values, dtypes)]
        if encoding == "binary":
            row = np.dtype([(f"f{j}", t.dtype, (t.shape[1],)) for j, t in enumerate(typed)])
            table = np.zeros(n, row)
            for j, t in enumerate(typed):
                table[f"f{j}"] = t
            body = table.tobytes()
        else:
            raw = b"".join(np.ascontiguousarray(t.T).tobytes() for t in typed)
            literal = b"".join(bytes([len(c) - 1]) + c for c in (raw[i : i + 32] for i in range(0, len(raw), 32)))
            if compressed_lie == (-1, -1):
                literal = b"\x20\x05" + literal  # a back reference 6 bytes before the start
                compressed_lie = None
            sizes = compressed_lie or (len(literal), len(raw))
            body = struct.pack("<II", *sizes) + literal
    if encoding == "ascii":
        middle = len(("\n".join(rows[: n // 2]) + "\n").encode())
    else:
        middle = len(body) // n * (n // 2) if encoding == "binary" else 8
    return _Built(head + body, len(head), [len(head), len(head) + middle], encoding != "ascii", expect, n, detail)


# --- OBJ and OFF --------------------------------------------------------------------------------


def _obj(rng: np.random.Generator, mutation: str, prefix: str) -> _Built:
    points, polygons = _shape(rng, True)
    n = len(points)
    style = str(rng.choice(["i", "i/t", "i//n", "i/t/n"]))
    lines = ["# structured fuzz case", "o shape"]
    extras: dict[str, bytes | str] = {}
    expect, detail = "read", ""
    if mutation == "mtllib":
        kind = str(rng.choice(["fifo", "dir", "missing", "/dev/zero", "../../etc/passwd"]))
        reference = kind if kind.startswith(("/", "..")) else f"{prefix}material.mtl"
        if kind in ("fifo", "dir"):
            extras[reference] = kind
        lines += [f"mtllib {reference}", "usemtl skin"]
        detail = f"mtllib names {kind}"
    vertex_words = [[repr(v) for v in p] for p in points.tolist()]
    if rng.random() < 0.2:
        vertex_words = [[*w, *(repr(float(c)) for c in rng.random(3))] for w in vertex_words]  # v x y z r g b
    relative = mutation == "relative"
    faces = [[str(i + 1) for i in p] for p in polygons]
    if mutation == "index_zero":
        faces[int(rng.integers(len(faces)))][0] = "0"
        expect, detail = "refused", "index 0"
    elif mutation == "index_range":
        bad = int(_pick(rng, [n + 1, n + 1000, 2**31, 2**63, 10**30, -(n + 1), -(2**40)]))
        faces[int(rng.integers(len(faces)))][-1] = str(bad)
        expect, detail = "refused", f"index {bad} of {n} vertices"
    elif mutation == "index_text":
        token = str(_pick(rng, ["1.5", "abc", "1e2", "+", "-", "0x1", "1_0", "١"]))
        faces[int(rng.integers(len(faces)))][1] = token
        expect, detail = "refused", f"index {token!r}"
    elif mutation == "short_face":
        face = int(rng.integers(len(faces)))
        faces[face] = faces[face][: int(rng.integers(0, 3))]
        expect, detail = "refused", f"face {face} of {len(faces[face])} corners"
    elif mutation == "vertex_short":
        row = int(rng.integers(n))
        vertex_words[row] = vertex_words[row][: int(rng.integers(0, 3))]
        expect, detail = "refused", f"vertex {row} of {len(vertex_words[row])} values"
    elif mutation == "special":
        expect, detail = _special_vertex(rng, vertex_words)
    elif mutation == "no_faces":
        faces = []
        expect, detail = "refused", "no faces"
    elif mutation == "continuation":
        detail, expect = "a face continued on the next line with a backslash", None
    vertex_lines = ["v " + " ".join(w) for w in vertex_words]

    def corner(word: str, position: int) -> str:
        if relative and word.lstrip("-").isdigit() and int(word) > 0:
            word = str(int(word) - 1 - n)  # every vertex is written before the faces: -n is the first
        return {"i": word, "i/t": f"{word}/{position + 1}", "i//n": f"{word}//1", "i/t/n": f"{word}/1/1"}[style]

    face_lines = ["f " + " ".join(corner(w, k) for k, w in enumerate(f)) for f in faces]
    if mutation == "continuation" and face_lines:
        face_lines[0] = face_lines[0].replace(" ", " \\\n ", 1)
    body = lines + vertex_lines + ["vt 0 0", "vt 1 0", "vt 1 1", "vn 0 0 1", "s off"] + face_lines
    data = ("\n".join(body) + "\n").encode()
    header_end = len(("\n".join(lines) + "\n").encode())
    vertices_end = header_end + len(("\n".join(vertex_lines) + "\n").encode())
    return _Built(data, header_end, [header_end, vertices_end], False, expect, n, detail, extras)


def _off(rng: np.random.Generator, mutation: str, prefix: str) -> _Built:
    points, polygons = _shape(rng, True)
    n, f = len(points), len(polygons)
    layout = str(rng.choice(["OFF\n{} {} 0\n", "OFF {} {} 0\n", "OFF{} {} 0\n", "OFF\n# comment\n{} {} 0\n"]))
    counts: list[object] = [n, f]
    expect, detail = "read", ""
    vertex_words = [[repr(v) for v in p] for p in points.tolist()]
    faces = [[str(len(p)), *map(str, p)] for p in polygons]
    if mutation == "vertex_count":
        counts[0] = _bad_count(rng, n)
        expect, detail = "refused", f"{counts[0]} vertices declared for {n}"
    elif mutation == "face_count":
        counts[1] = _bad_count(rng, f)
        expect, detail = "refused", f"{counts[1]} faces declared for {f}"
    elif mutation == "index":
        bad = _bad_index(rng, n)
        face = int(rng.integers(f))
        faces[face][1] = str(bad)
        expect, detail = "refused", f"face {face} index {bad!r}"
    elif mutation == "arity":
        face = int(rng.integers(f))
        declared = int(_pick(rng, [0, 1, 2, len(polygons[face]) + 1, 255, -1]))
        faces[face][0] = str(declared)
        expect, detail = "refused", f"face {face} declares {declared} corners, has {len(polygons[face])}"
    elif mutation == "colors":
        faces = [[*face, "255", "0", "0"] for face in faces]
        detail = "faces with RGB colours"
    elif mutation == "special":
        expect, detail = _special_vertex(rng, vertex_words)
    elif mutation == "vertex_short":
        row = int(rng.integers(n))
        vertex_words[row] = vertex_words[row][:2]
        expect, detail = "refused", f"vertex {row} of 2 values"
    elif mutation == "magic":
        layout = str(rng.choice(["OFF BINARY\n{} {} 0\n", "4OFF\n{} {} 0\n", "COFF\n{} {} 0\n", "off\n{} {} 0\n",
                                 "OFF\n{} {}\n", "OFF\n{}\n{} 0\n"]))  # fmt: skip
        expect, detail = None, f"header {layout.splitlines()[0]!r}"
    head = layout.format(*counts).encode()
    vertices = ("\n".join(" ".join(w) for w in vertex_words) + "\n").encode()
    body = ("\n".join(" ".join(w) for w in faces) + "\n").encode()
    return _Built(head + vertices + body, len(head), [len(head), len(head) + len(vertices)], False, expect, n, detail)


# --- STL ----------------------------------------------------------------------------------------


def _stl(rng: np.random.Generator, mutation: str, prefix: str) -> _Built:
    points, polygons = _shape(rng, True)
    triangles = _fan(polygons)
    corners = points[triangles].astype(np.float32)
    used = len(np.unique(corners.reshape(-1, 3), axis=0))
    binary = mutation in ("solid_header", "facet_count") or (
        mutation not in ("ascii_shape", "ascii_keywords") and rng.random() < 0.6
    )
    expect, detail = "read", ""
    if mutation == "special":
        value, expect, name = _special_binary(rng, "f4")
        corners[int(rng.integers(len(corners))), int(rng.integers(3)), int(rng.integers(3))] = value
        expect, detail = (expect if expect == "refused" else None), f"a corner coordinate {name}"
    if binary:
        facets = len(corners)
        title = b"solid fuzz" if mutation == "solid_header" or rng.random() < 0.2 else b"binary STL from fuzz"
        if mutation == "facet_count":
            facets = int(_pick(rng, [0, facets - 1, facets + 1, 2**31, 2**32 - 1]))
            expect = "refused" if facets > len(corners) else None  # extra bytes are tolerated (padding)
            detail = f"{facets} facets declared for {len(corners)}"
        head = title.ljust(80, b" ") + struct.pack("<I", facets)
        table = np.zeros(len(corners), [("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
        table["corners"] = corners
        body = table.tobytes()
        return _Built(head + body, 84, [84, 84 + 50 * (len(corners) // 2)], True, expect, used, detail)
    keyword = (lambda word: word.upper()) if mutation == "ascii_keywords" else (lambda word: word)
    facets = []
    for k, triangle in enumerate(corners.tolist()):
        vertices = [f"      {keyword('vertex')} {x!r} {y!r} {z!r}\n" for x, y, z in triangle]
        if mutation == "ascii_shape" and k == 0:
            shape_edit = str(rng.choice(["four", "two", "no_endloop", "word"]))
            vertices = {"four": vertices + vertices[:1], "two": vertices[:2], "no_endloop": vertices,
                        "word": [vertices[0].replace(" vertex ", " vertex x ")] + vertices[1:]}[shape_edit]  # fmt: skip
            expect, detail = "refused", f"facet 0: {shape_edit}"
        cut_loop = mutation == "ascii_shape" and k == 0 and "no_endloop" in detail
        end_loop = "" if cut_loop else f"    {keyword('endloop')}\n"
        facets.append(f"  {keyword('facet normal')} 0 0 1\n    {keyword('outer loop')}\n" + "".join(vertices)
                      + end_loop + f"  {keyword('endfacet')}\n")  # fmt: skip
    head = b"solid fuzz\n"
    body = "".join(facets).encode()
    tail = b"endsolid fuzz\n"
    half = len(head) + len("".join(facets[: len(facets) // 2]).encode())
    return _Built(head + body + tail, len(head), [len(head), half, len(head) + len(body)], False, expect, used, detail)


# --- glTF and GLB -------------------------------------------------------------------------------


def _gltf(rng: np.random.Generator, mutation: str, prefix: str, glb: bool = False) -> _Built:
    points, polygons = _shape(rng, True)
    n = len(points)
    triangles = _fan(polygons)
    index_type = int(rng.choice([5121, 5123, 5125])) if n < 256 else int(rng.choice([5123, 5125]))
    index_bytes = np.asarray(triangles, {5121: "<u1", 5123: "<u2", 5125: "<u4"}[index_type]).tobytes()
    positions = np.asarray(points, "<f4").tobytes()
    position_bytes = positions + bytes(-len(positions) % 4)
    blob = position_bytes + index_bytes + bytes(-len(index_bytes) % 4)
    document: dict = {  # type: ignore[type-arg]
        "asset": {"version": "2.0", "generator": "geocli structured fuzz"}, "scene": 0,
        "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "shape"}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "mode": 4}]}],
        "buffers": [{"byteLength": len(blob)}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(positions), "target": 34962},
                        {"buffer": 0, "byteOffset": len(position_bytes), "byteLength": len(index_bytes),
                         "target": 34963}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": n, "type": "VEC3",
                       "min": points.min(0).tolist(), "max": points.max(0).tolist()},
                      {"bufferView": 1, "componentType": index_type, "count": int(triangles.size), "type": "SCALAR"}],
    }  # fmt: skip
    extras: dict[str, bytes | str] = {}
    storage = "glb" if glb else str(rng.choice(["data", "file"]))
    if storage == "data":
        document["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    elif storage == "file":
        document["buffers"][0]["uri"] = f"{prefix}buffer.bin"
        extras[f"{prefix}buffer.bin"] = blob
    expect, detail = "read", ""
    accessor = document["accessors"][0]
    view = document["bufferViews"][0]
    if mutation == "accessor_count":
        accessor["count"] = _pick(rng, [0, n - 1, n + 1, 2**31, 2**53, -1, 1.5, "3", True, None, 1e400])
        expect = "refused" if not (isinstance(accessor["count"], int) and 0 <= accessor["count"] < n) else None
        detail = f"POSITION count {accessor['count']!r} for {n}"
    elif mutation == "byte_offset":
        target = accessor if rng.random() < 0.5 else view
        target["byteOffset"] = _pick(rng, [1, 2, 4, 12, len(blob), 2**32, -4, "0", 0.5])
        owner = "accessor" if target is accessor else "bufferView"
        expect, detail = None, f"{owner} byteOffset {target['byteOffset']!r}"
    elif mutation == "byte_stride":
        view["byteStride"] = _pick(rng, [0, 1, 4, 11, 13, 16, 24, 252, 256, 2**31, -12])
        expect = None if view["byteStride"] == 12 else "refused"
        detail = f"byteStride {view['byteStride']}"
    elif mutation == "component_type":
        target = accessor if rng.random() < 0.5 else document["accessors"][1]
        target["componentType"] = _pick(rng, [5120, 5121, 5122, 5123, 5125, 5126, 5130, 0, -1, "FLOAT", None])
        expect, detail = None, f"componentType {target['componentType']!r}"
        if target["componentType"] not in (5120, 5121, 5122, 5123, 5125, 5126):
            expect = "refused"
    elif mutation == "accessor_type":
        accessor["type"] = _pick(rng, ["SCALAR", "VEC2", "VEC4", "MAT4", "VEC5", "", None, 3])
        expect, detail = None, f"POSITION type {accessor['type']!r}"
        if accessor["type"] not in ("SCALAR", "VEC2", "VEC3", "VEC4", "MAT2", "MAT3", "MAT4"):
            expect = "refused"
    elif mutation == "view_length":
        view["byteLength"] = _pick(rng, [0, len(positions) - 1, len(positions) + 4, len(blob) + 1, 2**40, -1])
        expect = "refused" if view["byteLength"] not in (len(positions) + 4,) else None
        detail = f"bufferView byteLength {view['byteLength']}"
    elif mutation == "buffer_length":
        document["buffers"][0]["byteLength"] = _pick(rng, [0, len(blob) - 4, len(blob) + 1, 2**40, -1, "12"])
        declared = document["buffers"][0]["byteLength"]
        expect = "refused" if not isinstance(declared, int) or declared < 0 or declared > len(blob) else None
        expect = "refused" if isinstance(declared, int) and 0 <= declared < len(positions) else expect
        detail = f"buffer byteLength {declared!r} for {len(blob)}"
    elif mutation == "uri" and not glb:
        kind = str(rng.choice(["missing", "fifo", "dir", "absolute", "dev", "parent", "bad_base64", "short_base64",
                               "number", "url", "empty"]))  # fmt: skip
        local = f"{prefix}buffer.bin"
        extras.pop(local, None)
        uri: object = {"missing": local, "fifo": local, "dir": local, "absolute": "/etc/passwd", "dev": "/dev/zero",
                       "parent": f"../{local}", "bad_base64": "data:application/octet-stream;base64,!!!@@@",
                       "short_base64": "data:application/octet-stream;base64,"
                       + base64.b64encode(blob[: len(blob) // 2]).decode(),
                       "number": 17, "url": "http://192.0.2.1/buffer.bin", "empty": ""}[kind]  # fmt: skip
        if kind in ("fifo", "dir"):
            extras[local] = kind
        document["buffers"][0]["uri"] = uri
        expect, detail = "refused", f"buffer uri: {kind}"
    elif mutation == "references":
        kind = str(rng.choice(["position", "indices", "node_mesh", "scene_nodes", "view_buffer", "child_cycle",
                               "child_missing", "scene"]))  # fmt: skip
        bad = int(_pick(rng, [-1, 2, 99, 2**31]))
        if kind == "position":
            document["meshes"][0]["primitives"][0]["attributes"]["POSITION"] = bad
        elif kind == "indices":
            document["meshes"][0]["primitives"][0]["indices"] = bad
        elif kind == "node_mesh":
            document["nodes"][0]["mesh"] = bad
        elif kind == "scene_nodes":
            document["scenes"][0]["nodes"] = [bad]
        elif kind == "view_buffer":
            view["buffer"] = bad
        elif kind == "child_cycle":
            document["nodes"] = [{"mesh": 0, "children": [1]}, {"children": [0]}]
        elif kind == "child_missing":
            document["nodes"][0]["children"] = [bad]
        else:
            document["scene"] = bad
        expect, detail = None, f"{kind} -> {bad}"
        if kind in ("position", "node_mesh", "view_buffer", "indices"):
            expect = "refused"
    elif mutation == "primitive_mode":
        document["meshes"][0]["primitives"][0]["mode"] = _pick(rng, [0, 1, 2, 3, 5, 6, 7, -1, "TRIANGLES"])
        expect, detail = None, f"mode {document['meshes'][0]['primitives'][0]['mode']!r}"
    elif mutation == "transform":
        node = document["nodes"][0]
        choice = str(rng.choice(["nan_matrix", "zero_scale", "huge_translation", "short_matrix", "inf_rotation"]))
        node.update({"nan_matrix": {"matrix": [float("nan")] * 16}, "zero_scale": {"scale": [0, 0, 0]},
                     "huge_translation": {"translation": [1e300, 0, 0]}, "short_matrix": {"matrix": [1, 0, 0]},
                     "inf_rotation": {"rotation": [float("inf"), 0, 0, 1]}}[choice])  # fmt: skip
        expect, detail = ("read" if choice == "short_matrix" else "refused"), f"node {choice}"
        expect = None if choice in ("short_matrix", "inf_rotation") else expect
    elif mutation == "json":
        kind = str(rng.choice(["deep", "duplicate_keys", "not_object", "bom", "latin1", "huge_number"]))
        expect, detail = None, f"JSON {kind}"
        text = json.dumps(document)
        if kind == "deep":
            document["extras"] = "@DEEP@"
            text = json.dumps(document).replace('"@DEEP@"', "[" * 100_000 + "]" * 100_000)
        elif kind == "duplicate_keys":
            text = text.replace('"scene": 0', '"scene": 0, "scene": 7')
        elif kind == "not_object":
            text, expect = json.dumps([document]), "refused"
        elif kind == "bom":
            text = "\ufeff" + text
        elif kind == "latin1":
            text = text.replace("geocli structured fuzz", "caf\xe9")
        else:
            text = text.replace(f'"count": {n}', '"count": 1e999')
            expect = "refused"
        return _gltf_file(text.encode("latin-1" if kind == "latin1" else "utf-8"), blob, glb, extras, expect, n, detail)
    elif mutation == "glb_header" and glb:
        return _glb_lie(rng, json.dumps(document).encode(), blob, n)
    return _gltf_file(json.dumps(document).encode(), blob, glb, extras, expect, n, detail)


def _gltf_file(text: bytes, blob: bytes, glb: bool, extras: dict, expect: str | None, n: int, detail: str) -> _Built:  # type: ignore[type-arg]
    if not glb:
        return _Built(text, 0, [len(text) // 2], False, expect, n, detail, extras)
    data, json_end = _glb(text, blob)
    return _Built(data, 20, [12, 20, json_end, json_end + 8], True, expect, n, detail, extras)


def _glb(text: bytes, blob: bytes, version: int = 2, json_type: int = 0x4E4F534A, bin_type: int = 0x004E4942,
         lengths: tuple[int | None, int | None, int | None] = (None, None, None)) -> tuple[bytes, int]:  # fmt: skip
    """A GLB container; ``lengths`` overrides the file, JSON chunk and BIN chunk lengths it declares."""
    text += b" " * (-len(text) % 4)
    json_chunk = struct.pack("<II", len(text) if lengths[1] is None else lengths[1], json_type) + text
    bin_chunk = struct.pack("<II", lengths[2] if lengths[2] is not None else len(blob), bin_type) + blob
    total = 12 + len(json_chunk) + len(bin_chunk)
    header = b"glTF" + struct.pack("<II", version, lengths[0] if lengths[0] is not None else total)
    return header + json_chunk + bin_chunk, 12 + len(json_chunk)


def _glb_lie(rng: np.random.Generator, text: bytes, blob: bytes, n: int) -> _Built:
    kind = str(rng.choice(["file_length", "json_length", "bin_length", "json_type", "bin_type", "version"]))
    value = int(_pick(rng, [0, 1, 7, 2**31, 2**32 - 1]))
    options = {"file_length": {"lengths": (value, None, None)}, "json_length": {"lengths": (None, value, None)},
               "bin_length": {"lengths": (None, None, value)}, "json_type": {"json_type": value},
               "bin_type": {"bin_type": value}, "version": {"version": value}}  # fmt: skip
    data, json_end = _glb(text, blob, **options[kind])  # type: ignore[arg-type]
    expect = None if kind in ("version", "bin_type", "bin_length") else "refused"
    return _Built(data, 20, [json_end], True, expect, n, f"GLB {kind} {value}")


# --- LAS and LAZ --------------------------------------------------------------------------------


def _las(rng: np.random.Generator, mutation: str, prefix: str, compress: bool = False) -> _Built:
    import laspy

    points, _ = _shape(rng, False)
    n = len(points)
    point_format, version = (int(rng.choice([0, 1, 2, 3])), "1.2") if rng.random() < 0.5 else (
        int(rng.choice([6, 7])), "1.4")  # fmt: skip
    header = laspy.LasHeader(point_format=point_format, version=version)
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.round(rng.normal(size=3) * 1000, 3)
    las = laspy.LasData(header)
    las.x, las.y, las.z = (points * 10 + header.offsets).T
    buffer = io.BytesIO()
    las.write(buffer, do_compress=compress)
    data = bytearray(buffer.getvalue())
    size, start = struct.unpack_from("<HI", data, 94)
    expect, detail = "read", ""

    def put(fmt: str, offset: int, value: object) -> None:
        struct.pack_into(fmt, data, offset, value)

    if mutation == "point_count":
        count = int(_pick(rng, [0, n - 1, n + 1, 2 * n, 2**32 - 1]))
        if version == "1.4":
            put("<Q", 247, count)
        if point_format < 6:
            put("<I", 107, count)
        expect, detail = ("refused" if not compress else None), f"point count {count} for {n}"
    elif mutation == "record_length":
        length = int(_pick(rng, [0, 1, 19, 21, 34, 36, 65535]))
        put("<H", 105, length)
        expect, detail = None, f"point record length {length}"
    elif mutation == "point_offset":
        offset = int(_pick(rng, [0, 100, size - 1, start + 1, start - 1, len(data), 2**32 - 1]))
        put("<I", 96, offset)
        expect, detail = None, f"offset to point data {offset}"
    elif mutation == "vlr_count":
        count = int(_pick(rng, [1, 2, 1000, 2**31, 2**32 - 1]))
        put("<I", 100, count)
        expect, detail = None, f"{count} VLRs declared"
    elif mutation == "point_format":
        value = int(_pick(rng, [4, 5, 9, 10, 11, 63, 127, 128 | point_format, 255]))
        put("<B", 104, value)
        expect, detail = None, f"point format id {value}"
    elif mutation == "scale":
        value = float(_pick(rng, [0.0, float("nan"), float("inf"), -0.001, 1e300, 5e-324]))
        put("<d", 131 + 8 * int(rng.integers(3)), value)
        expect = "refused" if value == 1e300 or not np.isfinite(value) else None
        detail = f"scale {value}"
    elif mutation == "offset":
        value = float(_pick(rng, [float("nan"), float("-inf"), 1e300, 1e39]))
        put("<d", 155 + 8 * int(rng.integers(3)), value)
        expect, detail = "refused", f"offset {value}"
    elif mutation == "version":
        data[24:26] = bytes(_pick(rng, [(1, 9), (0, 0), (2, 0), (1, 0)]))  # type: ignore[arg-type]
        expect, detail = None, f"version {data[24]}.{data[25]}"
    elif mutation == "header_size":
        put("<H", 94, int(_pick(rng, [0, 10, 226, 500, 65535])))
        expect, detail = None, f"header size {struct.unpack_from('<H', data, 94)[0]}"
    elif mutation == "laz_chunks" and compress and len(data) > start + 8:
        put("<q", start, int(_pick(rng, [0, -1, 2**62, start, len(data) + 100])))
        expect, detail = None, f"chunk table offset {struct.unpack_from('<q', data, start)[0]}"
    return _Built(bytes(data), size, [size, start, (start + len(data)) // 2], True, expect, n, detail)


# --- NPY and NPZ --------------------------------------------------------------------------------


def _npy_bytes(header: str, data: bytes, version: tuple[int, int] = (1, 0), length: int | None = None) -> bytes:
    text = header.encode("latin-1")
    width = 2 if version == (1, 0) else 4
    pad = -(6 + 2 + width + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    declared = len(text) if length is None else length
    return b"\x93NUMPY" + bytes(version) + declared.to_bytes(width, "little", signed=False) + text + data


def _npy_case(rng: np.random.Generator, mutation: str) -> tuple[bytes, str | None, int, str]:
    points, _ = _shape(rng, False)
    n = len(points)
    dtype = str(rng.choice(["<f4", "<f8", "<f8", ">f8", "<i4"]))
    columns = int(rng.choice([3, 3, 4, 6]))
    table = np.column_stack([points, rng.normal(size=(n, columns - 3))])
    if dtype == "<i4":
        table = np.round(table * 100)
    data = table.astype(dtype).tobytes()
    shape: object = (n, columns)
    descr, fortran, expect, detail, version, length = dtype, "False", "read", "", (1, 0), None
    literal = None
    if mutation == "shape":
        transposed = [(columns, n)] if columns == 3 else []  # a (4, N) array is 4 points of N values, as declared
        shape = _pick(rng, [(n + 1, columns), (2**40, columns), (n * columns,), (n, columns, 1), *transposed,
                            (n, 2), (-1, columns), (0, columns), (n, 100), (2**62, 3)])  # fmt: skip
        expect, detail = "refused", f"shape {shape} for {(n, columns)}"
    elif mutation == "dtype":
        descr = str(_pick(rng, ["<f8", ">f4", "<i4", "|O", "<U3", "<c8", "|b1", "<f2", "<M8[s]", "|V12", "zz",
                                "[('x', '<f4'), ('y', '<f4'), ('z', '<f4')]", "<f16"]))  # fmt: skip
        same = descr in ("<f8", ">f4", "<i4", "<f2") and np.dtype(descr).itemsize == np.dtype(dtype).itemsize
        expect = None if same else "refused"  # the same size: other numbers, as declared
        detail = f"descr {descr} for {dtype} data"
    elif mutation == "fortran":
        fortran, expect, detail = "True", None, "fortran_order True"
    elif mutation == "version":
        version = _pick(rng, [(2, 0), (3, 0), (9, 9), (0, 0), (1, 1)])  # type: ignore[assignment]
        expect, detail = (None if version in ((2, 0), (3, 0)) else "refused"), f"format version {version}"
    elif mutation == "header_length":
        length = int(_pick(rng, [0, 1, 63, 65, 1000, 65535]))
        expect, detail = "refused", f"header length {length}"
    elif mutation == "literal":
        literal = str(_pick(rng, ["{'descr': '<f8', 'fortran_order': False, 'shape': (3, 3), 'extra': 1}",
                                  "__import__('os').system('true')", "{", "(" * 5000 + ")" * 5000,
                                  "{'descr': '<f8', 'fortran_order': False, 'shape': (1e3, 3)}",
                                  "{'descr': '<f8', 'fortran_order': 'no', 'shape': (3, 3)}", ""]))  # fmt: skip
        expect, detail = "refused", f"header {literal[:40]!r}"
    elif mutation == "special" and "f" in dtype:
        value, expect, name = _special_binary(rng, dtype[1:])
        table[int(rng.integers(n)), int(rng.integers(3))] = value
        data = table.astype(dtype).tobytes()
        expect, detail = (expect if expect == "refused" else None), f"a coordinate {name}"
    elif mutation == "data_length":
        cut = int(_pick(rng, [-1, -8, 8, 1]))
        data = data[:cut] if cut < 0 else data + bytes(cut)
        expect, detail = ("refused" if cut < 0 else None), f"{cut:+} data bytes"  # numpy ignores bytes after
    written = descr if descr.startswith("[") else repr(descr)  # a structured dtype is a list, not a string
    header = (
        literal if literal is not None else f"{{'descr': {written}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    )
    return _npy_bytes(header, data, version, length), expect, n, detail


def _npy(rng: np.random.Generator, mutation: str, prefix: str) -> _Built:
    data, expect, n, detail = _npy_case(rng, mutation)
    start = 10 + int.from_bytes(data[8:10], "little")
    return _Built(data, min(start, len(data)), [8, 10, min(start, len(data))], True, expect, n, detail)


def _npz(rng: np.random.Generator, mutation: str, prefix: str) -> _Built:
    if mutation == "bomb":
        return _npz_bomb(rng)
    array, expect, n, detail = _npy_case(rng, mutation if mutation in _NPY_MUTATIONS else "none")
    compression = zipfile.ZIP_DEFLATED if rng.random() < 0.5 else zipfile.ZIP_STORED
    names = ["points.npy"]
    if mutation == "keys":
        names = list(_pick(rng, [["a.npy", "b.npy"], ["a.npy"], ["points.npy", "points.npy"], ["../points.npy"],
                                 ["points"], ["sub/points.npy"], []]))  # fmt: skip
        expect = "read" if names in (["a.npy"], ["points.npy", "points.npy"]) else None
        expect = "refused" if names in ([], ["a.npy", "b.npy"]) else expect
        detail = f"archive members {names}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name in names:
            archive.writestr(_member(name, compression), array)
    data = bytearray(buffer.getvalue())
    if mutation == "crc" and len(data) > 40:
        data[14] ^= 0xFF  # the local header's CRC-32
        expect, detail = None, "a wrong CRC-32"
    if mutation == "zip_sizes":
        offset = int(_pick(rng, [18, 22]))  # compressed or uncompressed size in the local header
        struct.pack_into("<I", data, offset, int(_pick(rng, [0, 1, 2**32 - 1])))
        expect, detail = None, f"zip local header size at {offset} changed"
    return _Built(bytes(data), 30, [30, len(data) // 2, len(data) - 22], True, expect, n, detail)


_BOMB_ROWS, _BOMB_COLUMNS = 500_000, 64


def _member(name: str, compression: int) -> zipfile.ZipInfo:
    """An archive member dated 1 January 2000, not now: the same case has the same bytes whenever it is built."""
    info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
    info.compress_type = compression
    return info


def _npz_bomb(rng: np.random.Generator) -> _Built:
    """An NPZ of 250 KB whose deflated array of zeros is 256 MB: a reader must not inflate it whole."""
    data = _bomb_bytes()
    detail = f"{_BOMB_ROWS:,} x {_BOMB_COLUMNS} zeros deflated to {len(data):,} bytes"
    return _Built(data, 30, [30], True, "refused", _BOMB_ROWS, detail)


@functools.lru_cache(maxsize=1)
def _bomb_bytes() -> bytes:
    """Built once a process: deflating 256 MB takes a while on a busy machine."""
    rows, columns = _BOMB_ROWS, _BOMB_COLUMNS
    header = _npy_bytes(f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {columns}), }}", b"")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open(_member("points.npy", zipfile.ZIP_DEFLATED), "w", force_zip64=True) as member:
            member.write(header)
            chunk = bytes(1 << 22)
            remaining = rows * columns * 8
            while remaining:
                member.write(chunk[: min(remaining, len(chunk))])
                remaining -= min(remaining, len(chunk))
    return buffer.getvalue()


# --- text tables --------------------------------------------------------------------------------


def _xyz(rng: np.random.Generator, mutation: str, prefix: str) -> _Built:
    points, _ = _shape(rng, False)
    n = len(points)
    extension = str(rng.choice(["xyz", "txt", "pts", "xyzn"]))
    delimiter = str(rng.choice([" ", " ", "\t", ",", ";", ", "]))
    columns = int(rng.choice([3, 3, 4, 6]))
    table = np.column_stack([points, rng.normal(size=(n, columns - 3))])
    rows = [[repr(float(v)) for v in row] for row in table]
    head: list[str] = []
    expect, detail = "read", ""
    if extension == "pts" or mutation == "count_line":
        declared = _bad_count(rng, n) if mutation == "count_line" else n
        head = [str(declared)]
        expect = "read" if str(declared).lstrip("-").isdigit() else None
        detail = f"count line {declared!r} for {n}" if mutation == "count_line" else ""
    if mutation == "special":
        row, axis = int(rng.integers(n)), int(rng.integers(3))
        token, expect = _special_text(rng)
        if token in ("1,5",) and delimiter.strip() == ",":
            expect = "refused"
        rows[row][axis] = token
        expect, detail = (expect if expect == "refused" else None), f"row {row} value {token}"
    elif mutation == "ragged":
        row = int(rng.integers(1, n))
        rows[row] = rows[row][:-1] if rng.random() < 0.5 else [*rows[row], "1.0"]
        expect, detail = "refused", f"row {row} of {len(rows[row])} values, {columns} before"
    elif mutation == "names":
        head = [delimiter.join(["x", "y", "z", *(f"c{i}" for i in range(3, columns))])]
        expect, detail = None, "a line of column names"
    elif mutation == "comments":
        rows.insert(int(rng.integers(n)), ["# a comment"])
        rows.insert(int(rng.integers(n)), [""])
        detail = "comments and blank lines among the rows"
    elif mutation == "wide":
        rows = [["1.5"] * int(rng.integers(1000, 20000))]
        expect, detail = "refused", f"one line of {len(rows[0])} values"
    elif mutation == "mixed_delimiters":
        rows[int(rng.integers(n))] = [",".join(rows[0][:2]), *rows[0][2:]]
        expect, detail = None, "a row with another delimiter"
    elif mutation == "single_column":
        rows = [[repr(float(v))] for v in points.ravel()]
        expect, detail = "refused", "one value a line"
    text = "\n".join([*head, *(delimiter.join(row) if row != [""] else "" for row in rows)]) + "\n"
    data = text.encode()
    header_end = len(("\n".join(head) + "\n").encode()) if head else 0
    half = len("\n".join(delimiter.join(r) for r in rows[: len(rows) // 2]).encode()) + header_end
    return _Built(data, header_end, [header_end, half], False, expect, n, detail, extension=extension)


# --- the edits every format gets ----------------------------------------------------------------

# Formats whose header or data state a size, so that a file cut at a section boundary must be refused.
_SIZED = {"ply", "pcd", "off", "stl", "gltf", "glb", "las", "laz", "npy", "npz"}


def _generic(rng: np.random.Generator, fmt: str, mutation: str, built: _Built) -> _Built:
    data, end = built.data, built.header_end
    text = fmt in _TEXT or not built.binary
    if mutation == "truncate_boundary":
        cut = int(rng.choice([b for b in built.boundaries if 0 < b < len(data)] or [len(data) // 2]))
        cut += int(rng.choice([0, 0, -1, 1]))
        built.data, built.detail = data[:cut], f"cut at byte {cut} of {len(data)}"
        built.expect = "refused" if fmt in _SIZED else None
    elif mutation == "truncate_anywhere":
        cut = int(rng.integers(1, len(data)))
        built.data, built.detail = data[:cut], f"cut at byte {cut} of {len(data)}"
        built.expect = "refused" if built.binary and fmt not in ("gltf",) else None
    elif mutation in ("crlf", "cr"):
        ending = b"\r\n" if mutation == "crlf" else b"\r"
        if text:
            built.data = data.replace(b"\n", ending)
        else:
            built.data = data[:end].replace(b"\n", ending) + data[end:]
        built.detail = f"{mutation.upper()} line ends" + ("" if text else " in the header")
        if mutation == "cr" or fmt in ("npy", "npz", "las", "laz", "glb") or (fmt == "stl" and built.binary):
            built.expect = None
    elif mutation == "bom":
        built.data, built.detail, built.expect = b"\xef\xbb\xbf" + data, "a UTF-8 byte-order mark", None
    elif mutation == "utf16":
        try:
            built.data = b"\xff\xfe" + data.decode("latin-1").encode("utf-16-le")
        except UnicodeError:  # pragma: no cover - latin-1 decodes any byte
            pass
        built.detail, built.expect = "UTF-16 text", None
    elif mutation in ("repeat_line", "drop_line"):
        lines = data[:end].split(b"\n")[:-1] if end else data.split(b"\n")[:3]
        if lines:
            k = int(rng.integers(len(lines)))
            chosen = lines[k] + b"\n"
            offset = sum(len(line) + 1 for line in lines[:k])
            replacement = chosen * 2 if mutation == "repeat_line" else b""
            built.data = data[:offset] + replacement + data[offset + len(chosen) :]
            built.detail = f"{mutation.replace('_', ' ')} {chosen.strip()[:40]!r}"
        built.expect = None
    elif mutation == "garbage_tail":
        tail = bytes(rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8)) if built.binary else (
            str(rng.choice(["1 2 3 4 5 6 7\n", "garbage\n", "\x00\x00\x00", "end\n"])).encode())  # fmt: skip
        built.data, built.detail, built.expect = data + tail, f"{len(tail)} bytes appended", None
    return built


_NPY_MUTATIONS = ("shape", "dtype", "fortran", "version", "header_length", "literal", "special", "data_length")
_MUTATIONS: dict[str, tuple[str, ...]] = {
    "ply": ("vertex_count", "face_count", "index", "list_length", "count_type", "type_lie", "special",
            "element_order", "unknown_element", "no_xyz", "format_line", "comments", "no_end_header", "tristrips"),
    "pcd": ("points", "width_height", "size_lie", "type_lie", "count", "arity", "missing_line", "data_kind",
            "compressed_sizes", "lzf_corrupt", "special"),
    "obj": ("mtllib", "relative", "index_zero", "index_range", "index_text", "short_face", "vertex_short", "special",
            "no_faces", "continuation"),
    "off": ("vertex_count", "face_count", "index", "arity", "colors", "special", "vertex_short", "magic"),
    "stl": ("special", "solid_header", "facet_count", "ascii_shape", "ascii_keywords"),
    "gltf": ("accessor_count", "byte_offset", "byte_stride", "component_type", "accessor_type", "view_length",
             "buffer_length", "uri", "references", "primitive_mode", "transform", "json"),
    "glb": ("accessor_count", "byte_offset", "byte_stride", "component_type", "view_length", "buffer_length",
            "references", "transform", "glb_header"),
    "las": ("point_count", "record_length", "point_offset", "vlr_count", "point_format", "scale", "offset", "version",
            "header_size"),
    "laz": ("point_count", "record_length", "point_offset", "vlr_count", "point_format", "scale", "laz_chunks"),
    "npy": _NPY_MUTATIONS,
    "npz": (*_NPY_MUTATIONS, "keys", "crc", "zip_sizes", "bomb"),
    "xyz": ("count_line", "special", "ragged", "names", "comments", "wide", "mixed_delimiters", "single_column"),
}  # fmt: skip

_BUILDERS: dict[str, Callable[[np.random.Generator, str, str], _Built]] = {
    "ply": _ply, "pcd": _pcd, "obj": _obj, "off": _off, "stl": _stl,
    "gltf": _gltf, "glb": lambda rng, m, p: _gltf(rng, m, p, glb=True),
    "las": _las, "laz": lambda rng, m, p: _las(rng, m, p, compress=True),
    "npy": _npy, "npz": _npz, "xyz": _xyz,
}  # fmt: skip
