"""The global pooling of every classifier: max and mean over a cloud's points, fused on the CPU.

:func:`max_mean_pool` returns ``(x.amax(dim=1), x.mean(dim=1))`` for (B, N, C) features.
On the wide trunk (B 32, N 1,024, C 1,024 in bfloat16) the torch route was a third of a
training step: two reads of the tensor forwards, and backwards a tie mask the size of the
input, its sum, a division, a float32 copy and the sum of the two gradients. The compiled
kernel (:mod:`geocli.ops.kernels`) reads each element once forwards, keeping the arg-max
point per channel, and writes each element of the gradient once backwards (the mean's
share everywhere, the max's gradient at its point). Max values are the same as torch's;
the mean is summed over the points in order in float32, so it may differ from torch's in
its last bit. At a tie for the max the gradient goes to the first point, as ``torch.max``
routes it, where ``amax`` shares it out; both are gradients of the same function.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geocli.ops.kernels import compiled, kernels_enabled

__all__ = ["max_mean_pool"]


class _MaxMeanPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> tuple[Tensor, Tensor]:
        maxed, arg, mean = compiled().max_mean_forward(x)
        ctx.save_for_backward(arg)
        ctx.num_points, ctx.dtype = x.shape[1], x.dtype
        return maxed, mean

    @staticmethod
    def backward(ctx, max_grad: Tensor, mean_grad: Tensor) -> Tensor:
        (arg,) = ctx.saved_tensors
        like = max_grad.new_empty(0, dtype=ctx.dtype)  # the input's type, for the gradient
        return compiled().max_mean_backward(max_grad, mean_grad, arg, ctx.num_points, like)


def max_mean_pool(x: Tensor) -> tuple[Tensor, Tensor]:
    """(B,N,C) features -> their max (B,C) and mean (B,C) over the N points.

    Float32 or bfloat16 on the CPU with the kernels built and enabled go through the fused
    kernel; anything else (CUDA, float64, kernels off) through torch's ``amax`` and ``mean``.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16) and x.shape[1] > 0 and kernels_enabled():
        maxed, mean = _MaxMeanPool.apply(x)
        return maxed, mean
    return x.amax(dim=1), x.mean(dim=1)
