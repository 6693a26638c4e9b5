"""Neighbourhood operators on batched point clouds (FPS, kNN) with a torch-cluster or pure-torch backend."""

from geocli.ops.neighbors import backend, farthest_point_sample, knn

__all__ = ["backend", "farthest_point_sample", "knn"]
