"""Compiled CPU kernels for geocli; used through :mod:`geocli.ops.gather_max`, never directly."""

from geocli_kernels._C import ABI, farthest_point_sample, gather_max_backward, gather_max_forward

__all__ = ["ABI", "farthest_point_sample", "gather_max_backward", "gather_max_forward"]
