"""Write part-labelled clouds and meshes that CloudCompare, MeshLab and Open3D open directly.

PLY (binary little-endian) carries per-vertex ``label`` (int32), ``red/green/blue``
(uchar) and optionally ``score`` (float32); with faces, each face carries its own
``label`` and colour too. NPY holds an (N, 4 or 5) float64 table x, y, z, label[, score];
CSV the same with a header. :func:`write_ply` writes geometry without labels (``geocli
align``). Every file is written through :func:`atomic_write`.
"""

from __future__ import annotations

import io
import os

import numpy as np

from geocli.io.atomic import atomic_write

FORMATS = ("ply", "npy", "csv")

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


def label_colors(labels: np.ndarray) -> np.ndarray:
    return PALETTE[np.asarray(labels) % len(PALETTE)]


def _ply_bytes(
    points: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None,
    faces: np.ndarray | None,
    face_labels: np.ndarray | None,
) -> bytes:
    vertex_fields = [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("label", "<i4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
    ]
    if scores is not None:
        vertex_fields.append(("score", "<f4"))
    vertices = np.empty(len(points), dtype=vertex_fields)
    vertices["x"], vertices["y"], vertices["z"] = points.T
    vertices["label"] = labels
    colors = label_colors(labels)
    vertices["red"], vertices["green"], vertices["blue"] = colors.T
    if scores is not None:
        vertices["score"] = scores
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment written by geocli segment",
        f"element vertex {len(points)}",
    ]
    names = {"<f4": "float", "<i4": "int", "u1": "uchar"}
    header += [f"property {names[kind]} {name}" for name, kind in vertex_fields]
    body = io.BytesIO()
    body.write(vertices.tobytes())
    if faces is not None:
        header += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
        face_fields = [("n", "u1"), ("v", "<i4", (3,))]
        if face_labels is not None:
            header += ["property int label", "property uchar red", "property uchar green", "property uchar blue"]
            face_fields += [("label", "<i4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
        records = np.empty(len(faces), dtype=face_fields)
        records["n"], records["v"] = 3, faces
        if face_labels is not None:
            records["label"] = face_labels
            records["red"], records["green"], records["blue"] = label_colors(face_labels).T
        body.write(records.tobytes())
    return ("\n".join([*header, "end_header"]) + "\n").encode("ascii") + body.getvalue()


def write_labeled(
    path: str | os.PathLike,
    points: np.ndarray,
    labels: np.ndarray,
    *,
    scores: np.ndarray | None = None,
    faces: np.ndarray | None = None,
    face_labels: np.ndarray | None = None,
    fmt: str = "ply",
) -> None:
    """Write labelled points (and, for PLY, an optional labelled mesh) atomically to ``path``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "ply":
        data = _ply_bytes(points, labels, scores, faces, face_labels)
        with atomic_write(path) as handle:
            handle.write(data)
        return
    columns = [np.asarray(points, dtype=np.float64), np.asarray(labels, dtype=np.float64)[:, None]]
    if scores is not None:
        columns.append(np.asarray(scores, dtype=np.float64)[:, None])
    table = np.hstack(columns)
    if fmt == "npy":
        with atomic_write(path) as handle:
            np.save(handle, table, allow_pickle=False)
        return
    header = "x,y,z,label" + (",score" if scores is not None else "")
    with atomic_write(path, "w") as handle:
        handle.write(header + "\n")
        np.savetxt(handle, table, delimiter=",", fmt=["%.7g"] * 3 + ["%d"] + (["%.5f"] if scores is not None else []))


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
    fields = [("x", "<f8"), ("y", "<f8"), ("z", "<f8")]
    fields += [(name, "<f4") for name in ("nx", "ny", "nz")] if normals is not None else []
    fields += [(name, "u1") for name in ("red", "green", "blue")] if colors is not None else []
    vertices = np.empty(len(points), dtype=fields)
    vertices["x"], vertices["y"], vertices["z"] = np.asarray(points, dtype=np.float64).T
    if normals is not None:
        vertices["nx"], vertices["ny"], vertices["nz"] = np.asarray(normals).T
    if colors is not None:
        vertices["red"], vertices["green"], vertices["blue"] = np.round(np.clip(colors, 0.0, 1.0) * 255).T
    names = {"<f8": "double", "<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment written by geocli", f"element vertex {len(points)}"]
    header += [f"property {names[kind]} {name}" for name, kind in fields]
    body = vertices.tobytes()
    if faces is not None:
        header += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
        records = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
        records["n"], records["v"] = 3, faces
        body += records.tobytes()
    with atomic_write(path) as handle:
        handle.write(("\n".join([*header, "end_header"]) + "\n").encode("ascii") + body)
