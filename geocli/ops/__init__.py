"""Neighbourhood operators on batched point clouds: FPS and kNN (torch-cluster or pure torch),
gathers, the fused neighbour max and the fused norm + activation."""

from geocli.ops.gather import gather, gather_max, gather_neighbors
from geocli.ops.kernels import kernels_available, use_kernels
from geocli.ops.neighbors import backend, farthest_point_sample, knn
from geocli.ops.normalization import norm_leaky_relu, norm_leaky_relu_max

__all__ = [
    "backend",
    "farthest_point_sample",
    "gather",
    "gather_max",
    "gather_neighbors",
    "kernels_available",
    "knn",
    "norm_leaky_relu",
    "norm_leaky_relu_max",
    "use_kernels",
]
