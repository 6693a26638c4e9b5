"""Neighbourhood operators on batched point clouds: FPS and kNN (torch-cluster or pure torch),
gathers, the fused neighbour max, the fused norm + activation and the fused global pooling."""

from geocli.ops.gather import gather, gather_max, gather_neighbors
from geocli.ops.kernels import kernels_available, use_kernels
from geocli.ops.neighbors import backend, farthest_point_sample, knn
from geocli.ops.normalization import norm_leaky_relu, norm_leaky_relu_max
from geocli.ops.pooling import max_mean_pool

__all__ = [
    "backend",
    "farthest_point_sample",
    "gather",
    "gather_max",
    "gather_neighbors",
    "kernels_available",
    "knn",
    "max_mean_pool",
    "norm_leaky_relu",
    "norm_leaky_relu_max",
    "use_kernels",
]
