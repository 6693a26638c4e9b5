"""A PNG picture of one segmentation (``geocli segment --preview``), so a folder of results can be browsed as images.

Three orthographic views of the labelled points in the input's own coordinates (top: x-y
seen from +z, front: x-z from -y, side: y-z from +x), each point drawn in its label's colour,
the colour the PLY output and ``labels.json`` give it (:func:`geocli.io.writers.label_colors`),
nearer points over farther ones; and a legend of the parts present, with their names, colours
and point counts. Rendered headless with matplotlib's Agg canvas on a figure of its own (no
pyplot, no display, no global state, so worker threads could draw side by side), and written
atomically beside the output as ``<output>.png``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from geocli.io.atomic import atomic_write
from geocli.io.writers import Legend, label_colors

MAX_DRAWN = 30_000  # points drawn per view; a million-point scan is drawn from an even subset of its points
# (title, horizontal axis, vertical axis, depth axis, +1 where larger depth values are nearer the viewer)
VIEWS = (("top (x, y)", 0, 1, 2, 1), ("front (x, z)", 0, 2, 1, -1), ("side (y, z)", 1, 2, 0, 1))


def preview_path(output: str | os.PathLike) -> Path:
    """Where an output's picture goes: beside it, its whole name with ``.png`` added."""
    output = Path(output)
    return output.with_name(f"{output.name}.png")


def _plain(text: str) -> str:
    """Text as matplotlib should print it: a ``$`` in a file or part name would start mathematics."""
    return text.replace("$", r"\$")


def preview_figure(points: np.ndarray, labels: np.ndarray, legend: Legend, title: str) -> Figure:
    """``points`` (N, 3) coloured by ``labels`` (N,) in three views, with ``legend``'s names of the labels present."""
    points, labels = np.asarray(points, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if len(points) > MAX_DRAWN:
        keep = np.linspace(0, len(points) - 1, MAX_DRAWN).round().astype(np.int64)
        points, labels = points[keep], labels[keep]
    colors = label_colors(labels) / 255.0
    size = float(np.clip(15000 / max(len(points), 1), 0.5, 8.0))
    figure = Figure(figsize=(12, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    for place, (name, across, up, depth, nearer) in enumerate(VIEWS):
        axis = figure.add_axes((0.01 + place * 0.25, 0.04, 0.24, 0.82))
        order = np.argsort(nearer * points[:, depth], kind="stable")  # farthest first, nearest drawn last
        axis.scatter(points[order, across], points[order, up], c=colors[order], s=size, linewidths=0)
        axis.set_aspect("equal", adjustable="datalim")
        axis.set_title(name, fontsize=9)
        axis.set_axis_off()
    present, counts = np.unique(labels, return_counts=True)
    handles = [
        Patch(
            color="#{:02x}{:02x}{:02x}".format(*label_colors(label)),
            label=_plain(f"{label} {legend.classes[label] if label >= 0 else 'no object'} ({count:,} points)"),
        )
        for label, count in zip(present.tolist(), counts.tolist())
    ]
    figure.legend(handles=handles, loc="center left", bbox_to_anchor=(0.76, 0.45), fontsize=8, frameon=False)
    figure.suptitle(_plain(title), fontsize=10)
    return figure


def write_preview(path: str | os.PathLike, points: np.ndarray, labels: np.ndarray, legend: Legend, title: str) -> None:
    """:func:`preview_figure` as a PNG, written atomically to ``path`` (a reader never sees half a picture)."""
    buffer = io.BytesIO()
    preview_figure(points, labels, legend, title).savefig(buffer, format="png")
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
