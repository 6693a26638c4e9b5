"""ModelNet40 as shipped in ``shared/data/modelnet40``: official split, 1,024 points a shape."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")


def default_root() -> Path:
    """``$GEOCLI_MODELNET40``, else ``../shared/data/modelnet40`` beside the repository."""
    env = os.environ.get("GEOCLI_MODELNET40")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "modelnet40"


@dataclass(frozen=True)
class PointSet:
    """Clouds, integer labels and shape names of one split (or a subset of it)."""

    points: np.ndarray  # (S, N, 3) float32
    labels: np.ndarray  # (S,) int64
    names: np.ndarray  # (S,) str

    def subset(self, index: np.ndarray) -> "PointSet":
        return PointSet(self.points[index], self.labels[index], self.names[index])

    def __len__(self) -> int:
        return len(self.labels)


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


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/validation indices carved from the training split.

    Model selection needs data the final test figure never saw; stratifying keeps the
    small classes (some have under 100 training shapes) represented in both parts.
    """
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = max(1, round(len(members) * fraction)) if fraction > 0 else 0
        val.append(members[:cut])
        train.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
