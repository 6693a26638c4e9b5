"""Bring clouds to a model's input size with farthest point sampling.

FPS (started at the point farthest from the centroid, see :mod:`geocli.ops`) depends
only on distances, so the chosen subset does not change when the cloud is rotated,
reflected or its points are permuted: resampling keeps the pipeline invariant.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from geocli.geometry.sampling import exact_mean
from geocli.ops import farthest_point_sample


def fps_resample(points: Tensor, n: int) -> Tensor:
    """(B,N,3) -> (B,min(n,N),3): the FPS subset, or the clouds unchanged when N <= n."""
    if points.shape[1] <= n:
        return points
    index = farthest_point_sample(points, n)
    return torch.gather(points, 1, index.unsqueeze(-1).expand(-1, -1, points.shape[-1]))


def radius_stratified(points: np.ndarray, m: int) -> np.ndarray:
    """An evenly spread ``m``-point subset of a huge cloud, chosen without regard to pose or order.

    Points are ranked by distance from the centroid and every (N/m)-th rank is kept: within
    each thin shell that is a scattered, density-preserving share of the points, and the
    ranking (unlike a voxel grid or a random draw) does not change when the cloud is
    rotated, reflected, scaled or its points permuted (the centroid is :func:`exact_mean`, which
    no point order changes). It cuts FPS on a million-point scan
    from a million distances per pick to ``m``.
    """
    return points[radius_stratified_index(points, m)] if len(points) > m else points


def radius_stratified_index(points: np.ndarray, m: int) -> np.ndarray:
    """The indices of :func:`radius_stratified`'s subset (every index, in order, when there are at most ``m``),
    for callers that carry per-point values along (labels of a training scan)."""
    if len(points) <= m:
        return np.arange(len(points))
    radius = np.square(points - exact_mean(points)).sum(axis=1)
    order = np.argsort(radius, kind="stable")
    return order[np.linspace(0, len(points) - 1, m).round().astype(np.int64)]
