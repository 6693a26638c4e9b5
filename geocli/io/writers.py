"""Write part-labelled clouds and meshes that CloudCompare, MeshLab, Open3D and LAS tools open directly.

Nothing the input holds is lost. Coordinates keep the input's precision: a PLY stores them as
``float`` where float32 gives back every coordinate exactly, else as ``double`` (a survey scan
at UTM 512345.678 needs doubles: float32 is 0.03 m coarse there); CSV writes each as the
shortest decimal that reads back as the same number; NPY is float64. The input's normals,
colours and other per-point values (:attr:`Geometry.extra`: LAS intensity, classification,
GPS time, ..., a PLY's own properties) go on as PLY properties in their own types, under
their own names, or under ``input_<name>`` where the output uses the name itself (``red``,
``green``, ``blue`` are the label's colour, so an input's colours are ``input_red``, ...).

PLY (binary little-endian) carries per-vertex ``label`` (int32), ``red/green/blue`` (uchar)
from :data:`PALETTE` and optionally ``score`` (float32); with faces, each face carries its own
``label`` and colour too; header comments name the model, its weights' sha256 and every
label's part. NPY holds an (N, 4 or 5) float64 table x, y, z, label[, score]; CSV the same
with a header and, given a :class:`Legend`, each label's ``part`` name after ``label``. LAS
and LAZ: :func:`geocli.io.las.write_las`. :func:`write_ply` writes geometry without labels
(``geocli align``). Every file is written through :func:`atomic_write`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geocli.io.atomic import atomic_write
from geocli.io.errors import printable_path
from geocli.io.las import free_name, write_las
from geocli.io.readers import Geometry

FORMATS = ("ply", "npy", "csv", "las", "laz")
LAS_EXTENSIONS = (".las", ".laz")

# matplotlib's tab20, in its own order. A category's parts have contiguous global labels
# and no category has more than 20 parts, so label % 20 never gives two parts of one shape
# the same colour.
PALETTE = np.array(
    [
        (31, 119, 180),
        (174, 199, 232),
        (255, 127, 14),
        (255, 187, 120),
        (44, 160, 44),
        (152, 223, 138),
        (214, 39, 40),
        (255, 152, 150),
        (148, 103, 189),
        (197, 176, 213),
        (140, 86, 75),
        (196, 156, 148),
        (227, 119, 194),
        (247, 182, 210),
        (127, 127, 127),
        (199, 199, 199),
        (188, 189, 34),
        (219, 219, 141),
        (23, 190, 207),
        (158, 218, 229),
    ],
    dtype=np.uint8,
)


UNLABELLED_COLOR = (80, 80, 80)  # a scene's points in no object (``--clusters``: label -1), dark grey


def label_colors(labels: np.ndarray) -> np.ndarray:
    """Each label's colour from :data:`PALETTE`; :data:`UNLABELLED_COLOR` for -1 (no label)."""
    labels = np.asarray(labels)
    return np.where((labels < 0)[..., None], np.array(UNLABELLED_COLOR, dtype=np.uint8), PALETTE[labels % len(PALETTE)])


@dataclass(frozen=True)
class Legend:
    """What a segmentation's labels mean: the model that gave them and each label's part name.

    Every output that can say so says it (PLY header comments, the CSV ``part`` column), and
    ``labels.json`` beside a batch's outputs (:func:`write_legend`), so a labelled file read
    months later still tells which model labelled it and what label 7 is.
    """

    model: str
    weights_sha256: str
    classes: tuple[str, ...]

    @classmethod
    def of(cls, card: Mapping[str, Any]) -> Legend:
        """The legend of a model card (:class:`geocli.zoo.ModelCard`)."""
        return cls(card["name"], str(card["weights"].get("sha256", "")), tuple(card["classes"]))

    def entries(self) -> list[dict[str, Any]]:
        """Each label's id, part name and the colour PLY outputs give it."""
        colors = label_colors(np.arange(len(self.classes))).tolist()
        return [{"id": i, "name": name, "color": color} for i, (name, color) in enumerate(zip(self.classes, colors))]

    def comments(self) -> list[str]:
        """PLY header comments: the model, its weights' hash, then one ``label <id> <part>`` line per label."""
        lines = [f"model {self.model}", f"weights sha256 {self.weights_sha256}"]
        lines += [f"label {i} {name}" for i, name in enumerate(self.classes)]
        return [printable_path(line).encode("ascii", "backslashreplace").decode("ascii") for line in lines]


def write_legend(path: str | os.PathLike, legend: Legend) -> None:
    """``labels.json``: the model, its weights' sha256 and every label's id, part name and colour, atomically.

    One label a line, so that the file reads as a table.
    """
    labels = ",\n".join(f"    {json.dumps(entry)}" for entry in legend.entries())
    head = f'  "model": {json.dumps(legend.model)},\n  "weights_sha256": {json.dumps(legend.weights_sha256)},\n'
    with atomic_write(path, "w") as handle:
        handle.write(f'{{\n{head}  "labels": [\n{labels}\n  ]\n}}\n')


def input_attributes(geometry: Geometry) -> dict[str, np.ndarray]:
    """Every per-point value of the input but its coordinates, by name, as an output carries it.

    Normals are ``nx, ny, nz``; colours ``red, green, blue``, as bytes where they are 8-bit
    values and as 16-bit integers otherwise (LAS colours), so that neither loses a level;
    then :attr:`Geometry.extra` as read.
    """
    found: dict[str, np.ndarray] = {}
    if geometry.normals is not None:
        found.update(zip(("nx", "ny", "nz"), geometry.normals.T))
    if geometry.colors is not None:
        eight = np.round(geometry.colors * 255)
        exact = np.array_equal(eight / 255, geometry.colors)
        levels = eight.astype(np.uint8) if exact else np.round(geometry.colors * 65535).astype(np.uint16)
        found.update(zip(("red", "green", "blue"), levels.T))
    return {**found, **geometry.extra}


def compact_floats(values: np.ndarray) -> np.ndarray:
    """Float64 values as float32 where that gives back every one of them exactly; anything else as it is."""
    if values.dtype == np.float64 and np.array_equal(values.astype(np.float32), values, equal_nan=True):
        return values.astype(np.float32)
    return values


def decimal_strings(values: np.ndarray) -> list[str]:
    """Each value as the shortest decimal that reads back as it, at its precision (float32 where that is exact).

    ``0.3`` stored as float32 writes ``0.3``, not ``0.30000001192092896``, and still reads back as
    that float32; a double such as ``512345.678`` writes as it reads.
    """
    compact = compact_floats(np.asarray(values, dtype=np.float64))
    if compact.dtype == np.float32:
        return [str(value) for value in compact]
    return [repr(value) for value in compact.tolist()]


_PLY_TYPES = {"u1": "uchar", "i1": "char", "u2": "ushort", "i2": "short", "u4": "uint", "i4": "int"}
_PLY_TYPES |= {"f4": "float", "f8": "double"}


def _ply_column(values: np.ndarray) -> np.ndarray:
    """Values in a type PLY has, little-endian: booleans as bytes, half floats as floats, 64-bit integers
    as doubles (exact below 2**53; PLY has no 64-bit integers)."""
    values = np.asarray(values)
    kind = values.dtype
    if kind == np.bool_:
        kind = np.dtype(np.uint8)
    elif kind.kind == "f" and kind.itemsize < 4:
        kind = np.dtype(np.float32)
    elif f"{kind.kind}{kind.itemsize}" not in _PLY_TYPES:
        kind = np.dtype(np.float64)
    return values.astype(kind.newbyteorder("<"), copy=False)


def _ply_bytes(
    vertex: Mapping[str, np.ndarray],
    faces: np.ndarray | None,
    face_values: Mapping[str, np.ndarray],
    comments: Sequence[str],
) -> bytes:
    """A binary PLY: a vertex property per column of ``vertex``, then triangles, each with ``face_values``."""
    lines = ["ply", "format binary_little_endian 1.0", *(f"comment {text}" for text in comments)]
    vertex_lines, data = _ply_element("vertex", vertex, None)
    lines += vertex_lines
    if faces is not None:
        face_lines, face_data = _ply_element("face", face_values, faces)
        lines += face_lines
        data += face_data
    return ("\n".join([*lines, "end_header"]) + "\n").encode("ascii") + data


def _ply_element(name: str, columns: Mapping[str, np.ndarray], faces: np.ndarray | None) -> tuple[list[str], bytes]:
    """An element's header lines and data: its triangles' corners first when ``faces`` are given."""
    converted = {key: _ply_column(values) for key, values in columns.items()}
    fields: list[tuple[Any, ...]] = [(key, values.dtype) for key, values in converted.items()]
    lines = [f"property {_PLY_TYPES[values.dtype.str[1:]]} {key}" for key, values in converted.items()]
    if faces is not None:
        fields = [("n", "u1"), ("v", "<i4", (3,)), *fields]
        lines.insert(0, "property list uchar int vertex_indices")
    count = len(faces) if faces is not None else len(next(iter(converted.values())))
    records = np.empty(count, dtype=fields)
    if faces is not None:
        records["n"], records["v"] = 3, faces
    for key, values in converted.items():
        records[key] = values
    return [f"element {name} {count}", *lines], records.tobytes()


def _labelled_columns(
    labels: np.ndarray, scores: np.ndarray | None, instances: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """A label, its colour from :data:`PALETTE` and, when given, its object's instance id and its score."""
    colors = label_colors(labels)
    columns = {"label": np.asarray(labels, dtype=np.int32), **dict(zip(("red", "green", "blue"), colors.T))}
    if instances is not None:
        columns["instance"] = np.asarray(instances, dtype=np.int32)
    return columns if scores is None else {**columns, "score": np.asarray(scores, dtype=np.float32)}


def write_labeled(
    path: str | os.PathLike,
    points: np.ndarray,
    labels: np.ndarray,
    *,
    scores: np.ndarray | None = None,
    faces: np.ndarray | None = None,
    face_labels: np.ndarray | None = None,
    fmt: str = "ply",
    attributes: Mapping[str, np.ndarray] | None = None,
    legend: Legend | None = None,
    las_source: str | None = None,
    instances: np.ndarray | None = None,
) -> None:
    """Write labelled points (and, for PLY, an optional labelled mesh) atomically to ``path``.

    ``instances``, each point's object in a scene (``--clusters``; -1, with label -1: in none), go
    on after the label (PLY property, CSV and NPY column, LAS extra dimension ``instance``).
    ``attributes`` (:func:`input_attributes`) go on as PLY properties and LAS extra dimensions;
    ``legend`` names the model and the labels' parts; ``las_source``, a LAS/LAZ input, is the
    file a LAS/LAZ output copies, with its header and every dimension (:func:`write_las`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    points, attributes = np.asarray(points, dtype=np.float64), attributes or {}
    if fmt in ("las", "laz"):
        classes = legend.classes if legend else None
        write_las(
            path,
            points,
            labels,
            scores=scores,
            attributes=attributes,
            classes=classes,
            source=las_source,
            compress=fmt == "laz",
            instances=instances,
        )
        return
    if fmt == "ply":
        vertex = {**dict(zip("xyz", compact_floats(points).T)), **_labelled_columns(labels, scores, instances)}
        for name, values in attributes.items():  # one by one: each name is free of those before it
            vertex[free_name(name, vertex)] = compact_floats(values)
        face_values = {} if face_labels is None else _labelled_columns(face_labels, None)
        comments = ["written by geocli segment", *(legend.comments() if legend else [])]
        data = _ply_bytes(vertex, faces, face_values, comments)
        with atomic_write(path) as handle:
            handle.write(data)
        return
    if fmt == "npy":
        columns = [points, np.asarray(labels, dtype=np.float64)[:, None]]
        if instances is not None:
            columns.append(np.asarray(instances, dtype=np.float64)[:, None])
        if scores is not None:
            columns.append(np.asarray(scores, dtype=np.float64)[:, None])
        with atomic_write(path) as handle:
            np.save(handle, np.hstack(columns), allow_pickle=False)
        return
    _write_csv(path, points, labels, scores, legend, instances)


def _write_csv(
    path: str | os.PathLike,
    points: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None,
    legend: Legend | None,
    instances: np.ndarray | None,
) -> None:
    """x, y, z (:func:`decimal_strings`), label, ``part`` (with a legend; empty for label -1), ``instance``
    (with instances) and ``score`` (with scores)."""
    labels = np.asarray(labels, dtype=np.int64)
    header, columns = ["x", "y", "z", "label"], [*map(decimal_strings, points.T), labels.tolist()]
    if legend is not None:
        header.append("part")
        columns.append([legend.classes[label] if label >= 0 else "" for label in labels.tolist()])
    if instances is not None:
        header.append("instance")
        columns.append(np.asarray(instances, dtype=np.int64).tolist())
    if scores is not None:
        header.append("score")
        columns.append(decimal_strings(np.asarray(scores, dtype=np.float32)))
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(zip(*columns))


def write_segmentation(
    path: str | os.PathLike,
    geometry: Geometry,
    labels: np.ndarray,
    *,
    fmt: str = "ply",
    scores: np.ndarray | None = None,
    face_labels: np.ndarray | None = None,
    legend: Legend | None = None,
    instances: np.ndarray | None = None,
) -> None:
    """Write one input's labels beside everything it holds: its points and attributes, its faces when
    ``face_labels`` are given, and, for a LAS/LAZ input written as LAS/LAZ, the input file itself;
    ``instances`` as in :func:`write_labeled`."""
    las_source = geometry.path if Path(geometry.path).suffix.lower() in LAS_EXTENSIONS else None
    write_labeled(
        path,
        geometry.points,
        labels,
        scores=scores,
        faces=None if face_labels is None else geometry.faces,
        face_labels=face_labels,
        fmt=fmt,
        attributes=input_attributes(geometry),
        legend=legend,
        las_source=las_source,
        instances=instances,
    )


def write_ply(
    path: str | os.PathLike,
    points: np.ndarray,
    *,
    faces: np.ndarray | None = None,
    normals: np.ndarray | None = None,
    colors: np.ndarray | None = None,
) -> None:
    """Write an unlabelled cloud or triangle mesh as binary PLY, atomically (``geocli align``).

    Coordinates are stored as doubles, so geometry moved in its own units (a survey scan
    in metres far from its origin) loses nothing; normals are floats and colours, given in
    [0, 1] as the readers return them, become ``red/green/blue`` bytes.
    """
    vertex = dict(zip("xyz", np.asarray(points, dtype=np.float64).T))
    if normals is not None:
        vertex |= dict(zip(("nx", "ny", "nz"), np.asarray(normals, dtype=np.float32).T))
    if colors is not None:
        vertex |= dict(zip(("red", "green", "blue"), np.round(np.clip(colors, 0.0, 1.0) * 255).astype(np.uint8).T))
    data = _ply_bytes(vertex, faces, {}, ["written by geocli"])
    with atomic_write(path) as handle:
        handle.write(data)
