"""Labeled PSB (``shared/data/psb``): 380 part-labelled meshes in 19 categories, 94 parts.

Segmenters label points over all 94 parts at once (names ``Category/part``), so no
category has to be given at inference (see :mod:`geocli.parts`). The stored split is
15 training and 5 test meshes per category; with so few shapes, training adds fresh
surface samplings of the training meshes (:func:`resampled`), each a new cloud of the
same labelled surface.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from geocli.data.pointset import PointSet, shared_data_root
from geocli.geometry.sampling import sample_surface_faces

SPLITS = ("train", "test")


def default_root() -> Path:
    """``$GEOCLI_PSB``, else ``../shared/data/psb`` beside the repository."""
    return shared_data_root("psb", "GEOCLI_PSB")


def _archive(root: Path) -> Path:
    path = root / "points_2048.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Labeled PSB not found (set GEOCLI_PSB or pass --data)")
    return path


def class_names(root: Path | None = None) -> list[str]:
    """The 94 global part names, ``Category/part``, in label order."""
    with np.load(_archive(root or default_root()), allow_pickle=False) as data:
        return [str(name) for name in data["global_part_names"]]


def load_split(split: str, root: Path | None = None) -> PointSet:
    """The stored 2,048-point clouds of one split with global part labels per point."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    with np.load(_archive(root or default_root()), allow_pickle=False) as data:
        chosen = data["split"].astype(str) == split
        return PointSet(
            data["points"][chosen].astype(np.float32),
            data["global_labels"][chosen].astype(np.int64),
            data["shape_names"][chosen].astype(str),
        )


def resampled(shapes: PointSet, copies: int, root: Path | None = None) -> PointSet:
    """``copies`` new area-weighted samplings of each shape's mesh, labelled from its faces.

    Seeds come from the shape name and copy index, so the extra clouds (and the cache of
    their preprocessing) are the same on every run.
    """
    root = root or default_root()
    offsets = category_offsets(class_names(root))
    points, labels, out_names = [], [], []
    for name in shapes.names:
        with np.load(root / "meshes" / f"{name}.npz", allow_pickle=False) as mesh:
            vertices, faces, face_labels = mesh["vertices"], mesh["faces"], mesh["face_labels"].astype(np.int64)
        for copy in range(copies):
            sampled, face = sample_surface_faces(
                vertices, faces, shapes.points.shape[1], seed=zlib.crc32(f"{name}#{copy}".encode())
            )
            points.append(sampled.astype(np.float32))
            labels.append(face_labels[face] + offsets[name.split("/")[0]])
            out_names.append(name)
    return PointSet(np.stack(points), np.stack(labels), np.array(out_names))


def category_offsets(part_names: list[str]) -> dict[str, int]:
    """Global label of each category's first part (a category's parts are contiguous)."""
    offsets: dict[str, int] = {}
    for index, name in enumerate(part_names):
        offsets.setdefault(name.split("/")[0], index)
    return offsets
