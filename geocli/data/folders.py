"""The user's own data as training and evaluation sets: a folder of class sub-folders, or of labelled PLY files.

``--dataset folder`` (a classifier), the way image tools take pictures::

    shapes/chair/a.ply  shapes/chair/b.obj  shapes/lamp/c.xyz  ...

one sub-folder per class, named for it, holding that class's clouds and meshes in any format
geocli reads, in sub-folders of its own too. ``--dataset parts-folder`` (a segmenter): a folder
of PLY files with a per-point integer ``label`` property, the files ``geocli segment`` writes,
with its ``labels.json`` naming the labels (without one, labels are named ``label 0``, ...).

Every file is read by the readers ``geocli classify`` uses and made into the cloud it makes
(:func:`geocli.api.model_input`: a mesh sampled on its surface, seeded, everything on the unit
sphere, FPS), so training sees what classification will see; the folder becomes a
:class:`~geocli.data.pointset.PointSet` like the built-in data sets, and one training loop
serves all. A file that cannot be used is one warning line and is left out; the rest go on.
A folder is one split: training carves its validation split from it, and a held-out folder
of the same layout is ``geocli eval``'s test set (:func:`read_class_folder`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from geocli.api import model_input
from geocli.data.pointset import DataError, PointSet
from geocli.discovery import BadInput, expand_inputs
from geocli.geometry.resample import radius_stratified_index
from geocli.geometry.sampling import normalize_unit_sphere
from geocli.io import SUPPORTED_EXTENSIONS, Geometry, GeometryError, read_geometry
from geocli.io.errors import printable_path
from geocli.ops import farthest_point_sample

Log = Callable[[str], None]
T = TypeVar("T")

CLASS_SHAPE_POINTS = 1024  # stored points a shape, as ModelNet40's; training takes its FPS subset
PART_SHAPE_POINTS = 2048  # as Labeled PSB's
MIN_SHAPES_PER_CLASS = 2  # one for training, one for validation
PROGRESS_EVERY = 200  # files between two progress lines
LEGEND_FILE = "labels.json"  # what `geocli segment` writes beside its outputs
SEED = 0  # mesh surface sampling, as `geocli classify`'s default --seed


def _no_default_root() -> Path:
    raise DataError("a folder data set has no default location: --data names the folder")


def _usable_files(folder: Path, extensions: tuple[str, ...], log: Log) -> list[str]:
    """The files under ``folder`` (and its sub-folders) that geocli reads; a folder that cannot be read is a warning."""
    files = []
    for item in expand_inputs([str(folder)], extensions, recursive=True):
        if isinstance(item, BadInput):
            log(f"warning: {item.error}; skipped")
        else:
            files.append(str(item))
    return files


def _read_all(files: list[str], root: Path, read: Callable[[Geometry], T], log: Log) -> list[T | None]:
    """``read`` of each file's geometry, None for a file that cannot be used (one warning line each), with progress."""
    out: list[T | None] = []
    for count, path in enumerate(files, start=1):
        try:
            out.append(read(read_geometry(path)))
        except GeometryError as error:
            log(f"warning: {error}; skipped")
            out.append(None)
        if count % PROGRESS_EVERY == 0 and count < len(files):
            log(f"read {count}/{len(files)} files in {printable_path(str(root))}")
    return out


def class_folders(root: Path) -> list[str]:
    """The class names of a folder data set: its sub-folders' names, sorted (hidden ones left out)."""
    if not root.is_dir():
        raise DataError(f"{printable_path(str(root))}: no such folder")
    names = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise DataError(
            f"{printable_path(str(root))}: no class sub-folders; a classifier's folder holds one sub-folder "
            "per class, named for it, with that class's files"
        )
    return names


def is_class_folder(root: Path) -> bool:
    """Whether ``root`` is laid out as a classifier's folder (class sub-folders) rather than a built-in data set."""
    return root.is_dir() and not (root / "classes.txt").exists() and any(p.is_dir() for p in root.iterdir())


def read_class_folder(root: Path, classes: list[str], points: int, log: Log, min_per_class: int = 0) -> PointSet:
    """Every usable file under ``root/<class>/`` for each of ``classes`` (label: its place in ``classes``).

    Clouds are ``points`` points each, made as ``geocli classify`` makes them for a model of
    that input size; names are paths relative to ``root``. A class with fewer than
    ``min_per_class`` usable files is a :class:`DataError`.
    """
    files, labels = [], []
    for label, name in enumerate(classes):
        found = _usable_files(root / name, SUPPORTED_EXTENSIONS, log)
        files += found
        labels += [label] * len(found)
    clouds = _read_all(files, root, lambda geometry: model_input(geometry, points, SEED), log)
    kept = [i for i, cloud in enumerate(clouds) if cloud is not None]
    chosen = [cloud for cloud in clouds if cloud is not None]
    counts = np.bincount(np.array(labels, dtype=np.int64)[kept], minlength=len(classes))
    for name, count in zip(classes, counts.tolist()):
        if count < min_per_class:
            raise DataError(
                f"{printable_path(str(root / name))}: {count} usable shape{'s' * (count != 1)}; "
                f"each class needs {min_per_class} or more (training and validation)"
            )
    log(f"{len(kept)} shapes in {len(classes)} classes from {printable_path(str(root))}")
    return PointSet(
        np.stack(chosen).astype(np.float32) if chosen else np.empty((0, points, 3), np.float32),
        np.array([labels[i] for i in kept], dtype=np.int64),
        np.array([str(Path(files[i]).relative_to(root)) for i in kept]),
    )


class ClassFolder:
    """``--dataset folder``: one sub-folder per class; the folder is the training set (validation carved from it)."""

    def __init__(self, log: Log) -> None:
        self.log = log

    default_root = staticmethod(_no_default_root)

    @staticmethod
    def class_names(root: Path) -> list[str]:
        names = class_folders(root)
        if len(names) < 2:
            raise DataError(f"{printable_path(str(root))}: one class sub-folder ({names[0]}); a classifier needs two")
        return names

    def load_split(self, split: str, root: Path) -> PointSet:
        """The whole folder, whatever ``split``: a folder holds one split."""
        return read_class_folder(root, self.class_names(root), CLASS_SHAPE_POINTS, self.log, MIN_SHAPES_PER_CLASS)


def _labelled_cloud(geometry: Geometry, classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``PART_SHAPE_POINTS`` farthest points of a labelled PLY on the unit sphere, and their labels.

    Huge scans are thinned first as ``geocli segment`` thins them (:func:`radius_stratified_index`).
    """
    labels = geometry.extra.get("label")
    if labels is None or not np.issubdtype(labels.dtype, np.integer):
        raise GeometryError(
            geometry.path, "no per-point integer 'label' property (the PLY files `geocli segment` writes)"
        )
    if labels.min() < 0 or (classes is not None and labels.max() >= classes):
        raise GeometryError(
            geometry.path,
            f"labels {labels.min()} to {labels.max()} are not all among the {classes} named in labels.json",
        )
    normalised = normalize_unit_sphere(geometry.points)[0]
    index = radius_stratified_index(normalised, 32 * PART_SHAPE_POINTS)
    if len(index) < PART_SHAPE_POINTS:  # repeated up to size, as a small cloud is for the network
        index = np.resize(index, PART_SHAPE_POINTS)
    chosen = farthest_point_sample(torch.from_numpy(normalised[index].astype(np.float32))[None], PART_SHAPE_POINTS)
    index = index[chosen[0].numpy()]
    return normalised[index].astype(np.float32), labels[index].astype(np.int64)


class PartFolder:
    """``--dataset parts-folder``: labelled PLY files (``geocli segment``'s outputs, with its ``labels.json``)."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self._read: dict[Path, PointSet] = {}

    default_root = staticmethod(_no_default_root)

    def class_names(self, root: Path) -> list[str]:
        """The part names of ``labels.json`` in label order, or ``label 0`` ... up to the largest label found."""
        if not root.is_dir():
            raise DataError(f"{printable_path(str(root))}: no such folder")
        legend = root / LEGEND_FILE
        if not legend.is_file():
            return [f"label {i}" for i in range(int(self.load_split("train", root).labels.max()) + 1)]
        try:
            entries = json.loads(legend.read_text())["labels"]
            names = {int(entry["id"]): str(entry["name"]) for entry in entries}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"{printable_path(str(legend))}: not a labels.json of `geocli segment` ({error})") from None
        if sorted(names) != list(range(len(names))) or not names:
            raise DataError(f"{printable_path(str(legend))}: label ids should be 0, 1, 2, ... without gaps")
        return [names[i] for i in range(len(names))]

    def load_split(self, split: str, root: Path) -> PointSet:
        """The whole folder's labelled PLY files, whatever ``split`` (read once per instance)."""
        if root in self._read:
            return self._read[root]
        count = len(self.class_names(root)) if (root / LEGEND_FILE).is_file() else None
        files = _usable_files(root, (".ply",), self.log)
        read = _read_all(files, root, lambda geometry: _labelled_cloud(geometry, count), self.log)
        kept = [(path, shape) for path, shape in zip(files, read) if shape is not None]
        if len(kept) < MIN_SHAPES_PER_CLASS:
            raise DataError(
                f"{printable_path(str(root))}: {len(kept)} usable labelled PLY file{'s' * (len(kept) != 1)}; "
                f"training needs {MIN_SHAPES_PER_CLASS} or more (training and validation)"
            )
        self.log(f"{len(kept)} labelled shapes from {printable_path(str(root))}")
        clouds, labels = zip(*(shape for _, shape in kept))
        names = np.array([str(Path(path).relative_to(root)) for path, _ in kept])
        self._read[root] = PointSet(np.stack(clouds), np.stack(labels), names)
        return self._read[root]
