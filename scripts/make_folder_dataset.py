"""Write a classifier's folder data set from ModelNet40: a training folder and a held-out test folder.

Usage: python scripts/make_folder_dataset.py --out folder10 [--classes 10] [--train-per-class 80]
       [--test-per-class 40] [--seed 0] [--data ../shared/data/modelnet40]

The classes are the first ``--classes`` of ModelNet40's ``classes.txt`` (alphabetical) that
have at least ``--train-per-class`` training shapes, so nobody picks easy ones. ``train/<class>/``
gets that class's first ``--train-per-class`` shapes of the official training split,
``test/<class>/`` its first ``--test-per-class`` of the official test split, which no shipped
model was trained or selected on. Every shape is turned into its own seeded random SO(3) pose
and written in turn as PLY, XYZ and NPY, as a user's scans would come. ``geocli train --dataset
folder --data <out>/train`` trains on it and ``geocli eval MODEL --data <out>/test`` measures
any classifier whose classes include these on the held-out shapes (README, "Training on your own data").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from geocli.data.modelnet40 import class_names, default_root, load_split
from geocli.geometry.rotations import random_rotations
from geocli.io.atomic import atomic_write
from geocli.io.writers import write_ply

FORMATS = ("ply", "xyz", "npy")


def write_shape(path: Path, points: np.ndarray) -> None:
    """``points`` in the format of ``path``'s extension, atomically."""
    if path.suffix == ".ply":
        write_ply(path, points)
        return
    with atomic_write(path) as handle:
        if path.suffix == ".npy":
            np.save(handle, points.astype(np.float32))
        else:
            np.savetxt(handle, points, fmt="%.6f")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=None, help="ModelNet40 folder (default ../shared/data/modelnet40)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--train-per-class", type=int, default=80)
    parser.add_argument("--test-per-class", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = args.data or default_root()
    names = class_names(root)
    splits = {
        "train": (load_split("train", root), args.train_per_class),
        "test": (load_split("test", root), args.test_per_class),
    }
    train = splits["train"][0]
    chosen = [c for c in range(len(names)) if (train.labels == c).sum() >= args.train_per_class][: args.classes]
    for offset, (split, (shapes, per_class)) in enumerate(splits.items()):
        keep = np.concatenate([np.flatnonzero(shapes.labels == c)[:per_class] for c in chosen])
        rotations = random_rotations(len(keep), "so3", seed=args.seed * 2 + offset).numpy()
        for number, (index, rotation) in enumerate(zip(keep, rotations)):
            folder = args.out / split / names[shapes.labels[index]]
            folder.mkdir(parents=True, exist_ok=True)
            posed = shapes.points[index].astype(np.float64) @ rotation.T
            write_shape(folder / f"{shapes.names[index]}.{FORMATS[number % len(FORMATS)]}", posed)
        print(
            f"{args.out / split}: {len(keep)} shapes in {len(chosen)} classes ({', '.join(names[c] for c in chosen)})"
        )


if __name__ == "__main__":
    main()
