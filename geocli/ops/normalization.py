"""Batch norm fused with the leaky ReLU after it (:func:`norm_leaky_relu`), and the max
over a neighbour axis of both (:func:`norm_leaky_relu_max`).

Every layer of geocli's networks is ``Linear -> ChannelNorm -> LeakyReLU`` on a
channels-last tensor. On a CPU the two elementwise modules cost more than the matrix
product before them (PaRot's training step: 28 % matrix products, 48 % norm and
activation, forward and backward): torch runs statistics, normalisation and activation
as separate passes over the (rows, C) tensor, each writing a tensor of that size, and as
many again backwards. The compiled kernel (:mod:`geocli.ops.kernels`) reads the input
twice and writes the output once each way, and keeps nothing but the input for the
backward; the activation's side is recomputed from it.

The math is batch norm's: with batch statistics (training) ``y = leaky(w (x - mu) / s +
b)``, ``s = sqrt(var + eps)`` over all rows, the running statistics updated as
:class:`torch.nn.BatchNorm1d` does; with running statistics (evaluation) the same with
them as constants. The pure-torch modules are the reference and the fallback (CUDA, no
kernels, a norm configured otherwise); both routes agree to float rounding (tested).

A max over neighbours that follows (PaRot's patch PointNets: ``max_k leaky(norm(z))``)
commutes with them: an affine map and a leaky ReLU are monotone in z, non-decreasing
for a channel whose scale ``w / s`` is >= 0 and non-increasing otherwise, so the max of
the activated values is the activated max (or min) of z. The fused route picks that
element per channel and runs the norm and activation on the pooled rows only; torch's
route builds the activated (..., k, C) tensor, reduces it, and scatters back through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geocli.ops.kernels import compiled, kernels_enabled

__all__ = ["norm_leaky_relu", "norm_leaky_relu_max"]


class _NormLeakyReLU(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, x: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, invstd: Tensor, slope: float, batch_stats: bool
    ) -> Tensor:
        scale = weight * invstd
        y = compiled().norm_act_forward(x, scale, bias - mean * scale, slope)
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.slope, ctx.batch_stats = slope, batch_stats
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, bias, mean, invstd = ctx.saved_tensors
        dx, dweight, dbias = compiled().norm_act_backward(
            grad, x, mean, invstd, weight, bias, ctx.slope, ctx.batch_stats
        )
        return dx, dweight, dbias, None, None, None, None


def _fusable(x: Tensor, norm: nn.BatchNorm1d) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and x.numel() > 0
        and norm.affine
        and norm.momentum is not None  # the cumulative average (momentum None) is left to torch
        and kernels_enabled()
    )


def _statistics(flat: Tensor, norm: nn.BatchNorm1d) -> tuple[Tensor, Tensor, bool]:
    """Mean, 1/sqrt(var + eps) and whether they are the batch's; updates running statistics in training."""
    batch_stats = norm.training or norm.running_mean is None
    if not batch_stats:
        assert norm.running_mean is not None and norm.running_var is not None
        return norm.running_mean, torch.rsqrt(norm.running_var + norm.eps), False
    rows = flat.shape[0]
    with torch.no_grad():
        mean, var = compiled().channel_moments(flat)
        if norm.training and norm.running_mean is not None and norm.running_var is not None:
            assert norm.num_batches_tracked is not None and norm.momentum is not None
            norm.num_batches_tracked.add_(1)
            norm.running_mean.lerp_(mean, norm.momentum)
            norm.running_var.lerp_(var * (rows / (rows - 1)), norm.momentum)  # unbiased, as torch keeps it
    return mean, torch.rsqrt(var + norm.eps), True


def _fused_rows(x: Tensor, norm: nn.BatchNorm1d) -> int | None:
    """The rows of (..., C) ``x`` when the kernels take this norm; ``None`` leaves it to torch (also for a
    single row with batch statistics, so that torch raises its own error)."""
    rows = x.numel() // max(x.shape[-1], 1)
    batch_stats = norm.training or norm.running_mean is None
    return None if not _fusable(x, norm) or (batch_stats and rows <= 1) else rows


def norm_leaky_relu(x: Tensor, norm: nn.BatchNorm1d, slope: float) -> Tensor:
    """``leaky_relu(norm(x), slope)`` for a (..., C) channels-last tensor, fused on the CPU.

    ``norm`` is a batch norm over the last axis (:class:`geocli.nets.backbone.ChannelNorm`);
    its running statistics are updated in training exactly as its own forward would.
    """
    rows = _fused_rows(x, norm)
    if rows is None:
        return F.leaky_relu(norm(x), slope)
    flat = x.reshape(rows, x.shape[-1])
    mean, invstd, batch_stats = _statistics(flat, norm)
    return _NormLeakyReLU.apply(flat, norm.weight, norm.bias, mean, invstd, slope, batch_stats).reshape(x.shape)


class _NormLeakyReLUMax(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, z: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, invstd: Tensor, slope: float, batch_stats: bool
    ) -> Tensor:
        scale = weight * invstd
        picked, arg = compiled().signed_max_forward(z, scale)
        pre = picked * scale + (bias - mean * scale)
        ctx.save_for_backward(z, arg, picked, pre, weight, mean, invstd)
        ctx.slope, ctx.batch_stats = slope, batch_stats
        return F.leaky_relu(pre, slope).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        z, arg, picked, pre, weight, mean, invstd = ctx.saved_tensors
        scale = weight * invstd
        g = grad.float() * torch.where(pre > 0, 1.0, ctx.slope)  # through the activation, on pooled rows
        g_sum, g_centred = g.sum(0), (g * (picked - mean)).sum(0)
        rows = z.shape[0] * z.shape[1]
        if ctx.batch_stats:  # every row of z moved the mean and variance the pooled rows were normalised with
            a, b = -scale * g_sum / rows, -scale * invstd.square() * g_centred / rows
        else:
            a = b = torch.zeros_like(mean)
        dz = compiled().signed_max_backward(z, arg, g * scale, mean, a, b)
        return dz, g_centred * invstd, g_sum, None, None, None, None


def norm_leaky_relu_max(z: Tensor, norm: nn.BatchNorm1d, slope: float) -> Tensor:
    """``leaky_relu(norm(z), slope).max(dim=-2).values`` for (..., k, C) z, fused on the CPU.

    The norm's statistics are those of all rows of z, as in the unfused order; only the
    pooled rows are normalised and activated.
    """
    rows = _fused_rows(z, norm) if z.dim() >= 2 else None
    if rows is None:
        return F.leaky_relu(norm(z), slope).max(dim=-2).values
    flat = z.reshape(rows, z.shape[-1])
    mean, invstd, batch_stats = _statistics(flat, norm)
    groups = z.reshape(-1, z.shape[-2], z.shape[-1])
    pooled = _NormLeakyReLUMax.apply(groups, norm.weight, norm.bias, mean, invstd, slope, batch_stats)
    return pooled.reshape(*z.shape[:-2], z.shape[-1])
