"""Warnings for clouds too small or too degenerate for a label to mean much.

The network always sees its full input size: a cloud of 3 points is repeated up to 512, and
ten copies of one point plus an outlier become 512 points at two places. It still answers,
often with a high score, so the result says what it was given instead. Such clouds are
labelled, not refused: a caller may know that a line or a plane is what it has.
"""

from __future__ import annotations

import numpy as np

MIN_DISTINCT_POINTS = 32
"""Fewer distinct points than this and the kNN graph joins points across the whole shape."""

MAX_COINCIDENT_SHARE = 0.5
"""More than this share of the points at one spot and the rest is too sparse to describe a shape."""

FLATNESS = 1e-6
"""A spread across the line or plane below this share of the largest spread is rounding, not shape.

Float32 files store coordinates to about 6e-8 of their size, so a line or plane written by
any program stays below it, while the thinnest real scanned object (a sheet of paper in a
metre-wide scan, 1e-4) is far above it.
"""


def shape_warnings(points: np.ndarray) -> list[str]:
    """One message per problem of the (N, 3) cloud the network's input is drawn from.

    Messages name the problem only; the caller adds which input it is. ``points`` is the
    normalised cloud (a mesh's surface samples), so thresholds do not depend on units.
    """
    points = np.asarray(points, dtype=np.float64)
    distinct, counts = distinct_rows(points)
    if len(distinct) < MIN_DISTINCT_POINTS:
        return [f"only {len(distinct):,} distinct points (fewer than {MIN_DISTINCT_POINTS}); the label is unreliable"]
    warnings = []
    if counts.max() > MAX_COINCIDENT_SHARE * len(points):
        warnings.append(
            f"{counts.max():,} of {len(points):,} points are one and the same point; the label may be unreliable"
        )
    spread = np.linalg.svd(distinct - distinct.mean(axis=0), compute_uv=False)  # descending
    if spread[1] <= FLATNESS * spread[0]:
        warnings.append("all points lie on one straight line; the label may be unreliable")
    elif spread[2] <= FLATNESS * spread[0]:
        warnings.append("all points lie in one plane; the label may be unreliable")
    return warnings


def distinct_rows(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a float64 (N, 3) array and how often each occurs, in no particular order.

    Rows are compared as their 24 bytes, after adding 0.0 (which turns -0.0 into 0.0, the one
    pair of equal floats with different bytes): a 1-D sort of opaque items, three times
    faster than ``np.unique(axis=0)``'s lexicographic one on the clouds every input gets here.
    """
    rows = np.ascontiguousarray(points + 0.0)
    _, first, counts = np.unique(
        rows.view(np.dtype((np.void, rows.strides[0]))).ravel(), return_index=True, return_counts=True
    )
    return rows[first], counts
