"""Compiled CPU kernels for geocli; used through :mod:`geocli.ops`, never directly."""

from geocli_kernels._C import (
    ABI,
    channel_moments,
    farthest_point_sample,
    gather_max_backward,
    gather_max_forward,
    max_mean_backward,
    max_mean_forward,
    norm_act_backward,
    norm_act_forward,
    signed_max_backward,
    signed_max_forward,
)

__all__ = [
    "ABI",
    "channel_moments",
    "farthest_point_sample",
    "gather_max_backward",
    "gather_max_forward",
    "max_mean_backward",
    "max_mean_forward",
    "norm_act_backward",
    "norm_act_forward",
    "signed_max_backward",
    "signed_max_forward",
]
