"""ModelNet40 as shipped in ``shared/data/modelnet40``: official split, 1,024 points a shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geocli.data.pointset import PointSet, shared_data_root

SPLITS = ("train", "test")


def default_root() -> Path:
    """``$GEOCLI_MODELNET40``, else ``../shared/data/modelnet40`` beside the repository."""
    return shared_data_root("modelnet40", "GEOCLI_MODELNET40")


def class_names(root: Path | None = None) -> list[str]:
    root = root or default_root()
    return (root / "classes.txt").read_text().split()


def load_split(split: str, root: Path | None = None) -> PointSet:
    """Load one official split; float16 storage is widened to float32 here."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    root = root or default_root()
    path = root / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ModelNet40 {split} split not found (set GEOCLI_MODELNET40 or pass --data)")
    with np.load(path, allow_pickle=False) as data:
        return PointSet(data["points"].astype(np.float32), data["labels"].astype(np.int64), data["names"].astype(str))
