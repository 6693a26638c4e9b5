"""What every data set hands to training and evaluation: clouds with labels, and a validation carve-out."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def shared_data_root(name: str, variable: str) -> Path:
    """``$variable`` if set, else ``../shared/data/<name>`` beside the repository (where CI has it)."""
    env = os.environ.get(variable)
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data" / name


class DataError(ValueError):
    """A data folder that cannot be trained or evaluated on as it is (no classes, too few shapes); one line."""


@dataclass(frozen=True)
class PointSet:
    """Clouds with either one label per shape (S,) or one per point (S, N), and shape names."""

    points: np.ndarray  # (S, N, 3) float32
    labels: np.ndarray  # (S,) or (S, N) int64
    names: np.ndarray  # (S,) str

    def subset(self, index: np.ndarray) -> PointSet:
        return PointSet(self.points[index], self.labels[index], self.names[index])

    def __len__(self) -> int:
        return len(self.names)

    def __add__(self, other: PointSet) -> PointSet:
        return PointSet(
            *(
                np.concatenate([a, b])
                for a, b in ((self.points, other.points), (self.labels, other.labels), (self.names, other.names))
            )
        )


def validation_split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/validation indices carved from a training split.

    Model selection needs data the final test figure never saw; stratifying by class
    (or category) keeps the small groups represented in both parts.
    """
    rng = np.random.default_rng(seed)
    train, val = [], []
    for group in np.unique(groups):
        members = rng.permutation(np.flatnonzero(groups == group))
        cut = max(1, round(len(members) * fraction)) if fraction > 0 else 0
        val.append(members[:cut])
        train.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
