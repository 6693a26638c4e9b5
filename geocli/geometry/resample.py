"""Bring clouds to a model's input size with farthest point sampling.

FPS (started at the point farthest from the centroid, see :mod:`geocli.ops`) depends
only on distances, so the chosen subset does not change when the cloud is rotated,
reflected or its points are permuted: resampling keeps the pipeline invariant.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geocli.ops import farthest_point_sample


def fps_resample(points: Tensor, n: int) -> Tensor:
    """(B,N,3) -> (B,min(n,N),3): the FPS subset, or the clouds unchanged when N <= n."""
    if points.shape[1] <= n:
        return points
    index = farthest_point_sample(points, n)
    return torch.gather(points, 1, index.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
