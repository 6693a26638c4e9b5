"""Gathers of per-point rows by neighbour indices, and the fused neighbour max.

:func:`gather_max` computes ``out[b, i] = max_j features[b, neighbors[b, i, j]]``,
channel by channel.

This is the pooling of every edge convolution (DGCNN's EdgeConv after its linear map
has been split into a per-point and a per-neighbour part). The pure-torch route gathers
a (B, M, k, C) tensor only to reduce it over k, and its backward scatters through that
tensor again: on a CPU that memory traffic, not arithmetic, was most of a training step.
The compiled kernel (:mod:`geocli.ops.kernels`) never materialises it: the forward keeps the arg-max point index
per output channel, the backward adds each output gradient to that point.

Both routes give identical outputs (values are copied, not computed; the first maximum
in neighbour order wins ties, NaN propagates) and equal gradients. The torch route is
the reference and the fallback: on CUDA, and wherever the kernels are off.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geocli.ops.kernels import compiled, kernels_enabled

__all__ = ["gather", "gather_max", "gather_max_reference", "gather_neighbors"]


def gather_neighbors(features: Tensor, neighbors: Tensor) -> Tensor:
    """(B,N,C) features, (B,M,k) indices -> (B,M,k,C) neighbour features."""
    b, n, c = features.shape
    offset = torch.arange(b, device=features.device).view(b, 1, 1) * n
    # index_select's backward (index_add) is several times faster on CPU than advanced indexing's
    flat = features.reshape(b * n, c).index_select(0, (neighbors + offset).reshape(-1))
    return flat.view(*neighbors.shape, c)


def gather(values: Tensor, index: Tensor) -> Tensor:
    """(B,N,...) values at (B,M) or (B,M,k) indices."""
    flat = index.reshape(index.shape[0], -1)
    picked = gather_neighbors(values.reshape(*values.shape[:2], -1), flat.unsqueeze(1)).squeeze(1)
    return picked.reshape(*index.shape, *values.shape[2:])


def gather_max_reference(features: Tensor, neighbors: Tensor) -> Tensor:
    """The pure-torch route: gather (B,M,k,C), then ``max`` over k (which routes gradients by index)."""
    return gather_neighbors(features, neighbors).max(dim=2).values


class _GatherMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: Tensor, neighbors: Tensor) -> Tensor:
        out, arg = compiled().gather_max_forward(features, neighbors)
        ctx.save_for_backward(arg)
        ctx.num_points = features.shape[1]
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (arg,) = ctx.saved_tensors
        return compiled().gather_max_backward(grad, arg, ctx.num_points), None


def gather_max(features: Tensor, neighbors: Tensor) -> Tensor:
    """(B,N,C) features, (B,M,k) int64 indices into N -> (B,M,C) neighbour-wise maxima.

    Float32 or bfloat16; the compiled kernel on the CPU when it is available and enabled,
    the reference route otherwise. Indices must lie in [0, N); the kernel checks them.
    """
    if features.device.type == "cpu" and features.dtype in (torch.float32, torch.bfloat16) and kernels_enabled():
        return _GatherMax.apply(features, neighbors.long())
    return gather_max_reference(features, neighbors)
