"""Neighbourhood operators on batched point clouds: FPS and kNN (torch-cluster or pure torch),
gathers and the fused neighbour max."""

from geocli.ops.gather import gather, gather_max, gather_neighbors
from geocli.ops.kernels import kernels_available, use_kernels
from geocli.ops.neighbors import backend, farthest_point_sample, knn

__all__ = [
    "backend",
    "farthest_point_sample",
    "gather",
    "gather_max",
    "gather_neighbors",
    "kernels_available",
    "knn",
    "use_kernels",
]
