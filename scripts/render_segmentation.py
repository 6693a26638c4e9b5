"""Render the README's segmentation picture: the sample mesh's human labels beside geocli's.

Usage: python scripts/render_segmentation.py [--out docs/segment_human.png]
       [--model NAME (default: the default segmenter)]
Uses matplotlib, which geocli depends on (for `segment --preview`). The scan is given to `geocli segment` in a
random orientation (seed 0) and drawn back in the original pose, so the picture also shows
that the labels do not depend on the pose.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from geocli.defaults import DEFAULT_SEGMENTER  # noqa: E402
from geocli.geometry.rotations import random_rotations  # noqa: E402
from geocli.io import read_geometry  # noqa: E402
from geocli.io.writers import write_labeled  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "human_1.ply"


def panel(axis, points: np.ndarray, colors: np.ndarray, title: str) -> None:
    axis.scatter(points[:, 0], points[:, 1], points[:, 2], c=colors, s=1.5, linewidths=0)
    axis.set_title(title, fontsize=9)
    axis.set_box_aspect(np.ptp(points, axis=0))
    axis.view_init(elev=10, azim=-80)
    axis.set_axis_off()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_SEGMENTER)
    parser.add_argument("--out", type=Path, default=Path("docs/segment_human.png"))
    args = parser.parse_args()
    truth = read_geometry(SAMPLE)
    rotation = random_rotations(1, "so3", seed=0)[0].numpy()
    with tempfile.TemporaryDirectory() as tmp:
        rotated = Path(tmp) / "human_rotated.ply"
        write_labeled(
            rotated, truth.points @ rotation.T, np.zeros(len(truth.points), dtype=np.int64), faces=truth.faces
        )
        segment = [sys.executable, "-m", "geocli.cli", "segment", str(rotated), "--out", str(Path(tmp) / "out")]
        segment += ["-m", args.model, "--device", "cpu"]
        done = subprocess.run(segment, capture_output=True, text=True, check=True)
        record = json.loads(done.stdout)
        labelled = read_geometry(record["output"])
    figure = plt.figure(figsize=(6, 4.5), dpi=100)
    panel(figure.add_subplot(1, 2, 1, projection="3d"), truth.points, truth.colors, "human labels (Labeled PSB)")
    panel(
        figure.add_subplot(1, 2, 2, projection="3d"),
        labelled.points @ rotation,
        labelled.colors,
        f"geocli segment, input rotated\n{args.model}: {record['category']}",
    )
    figure.subplots_adjust(left=0, right=1, bottom=0, top=0.9, wspace=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
