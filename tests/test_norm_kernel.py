"""Batch norm fused with its leaky ReLU: the compiled route against torch's two modules.

The fused route must give the same outputs, input and parameter gradients and running
statistics as ``LeakyReLU(ChannelNorm(x))`` in training and evaluation, float32 and
bfloat16, and leave every checkpoint's state-dict keys as they were.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from geocli.nets.backbone import ChannelNorm, Layers, layers
from geocli.ops import kernels_available, norm_leaky_relu, norm_leaky_relu_max, use_kernels

needs_kernel = pytest.mark.skipif(not kernels_available(), reason="geocli_kernels is not built here")


def norm_with_state(channels: int, seed: int = 0) -> ChannelNorm:
    """A norm with non-trivial affine parameters and running statistics."""
    generator = torch.Generator().manual_seed(seed)
    norm = ChannelNorm(channels)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(channels, generator=generator))  # negative scales too
        norm.bias.copy_(torch.randn(channels, generator=generator))
        norm.running_mean.copy_(torch.randn(channels, generator=generator))
        norm.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
    return norm


def run(norm: ChannelNorm, x: torch.Tensor, upstream: torch.Tensor, fused: bool):
    """Output, input gradient, parameter gradients and running statistics of one route."""
    leaf = x.clone().requires_grad_(True)
    with use_kernels(fused):
        out = norm_leaky_relu(leaf, norm, 0.2) if fused else nn.functional.leaky_relu(norm(leaf), 0.2)
    (out.float() * upstream).sum().backward()
    return {
        "out": out.detach().float(),
        "dx": leaf.grad.float(),
        "dweight": norm.weight.grad.clone(),
        "dbias": norm.bias.grad.clone(),
        "running_mean": norm.running_mean.clone(),
        "running_var": norm.running_var.clone(),
        "batches": norm.num_batches_tracked.clone(),
    }


@needs_kernel
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 300, 64), (2, 3, 5, 7), (1000, 129), (2, 3)])
def test_fused_route_matches_torch(training, dtype, shape):
    generator = torch.Generator().manual_seed(1)
    x = (torch.randn(*shape, generator=generator) * 3 + 1).to(dtype)
    upstream = torch.randn(*shape, generator=generator)
    reference = norm_with_state(shape[-1]).train(training)
    fused = copy.deepcopy(reference)
    expected, got = run(reference, x, upstream, False), run(fused, x, upstream, True)
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    for key, value in expected.items():  # sums over all rows (parameter gradients): tolerance by their size
        scale = max(1.0, value.abs().max().item())
        torch.testing.assert_close(got[key], value, atol=tolerance * scale, rtol=tolerance, msg=key)


@needs_kernel
def test_one_row_in_training_is_refused_as_torch_does():
    with use_kernels(True), pytest.raises(ValueError, match="more than 1 value"):
        norm_leaky_relu(torch.randn(1, 8), ChannelNorm(8).train(), 0.2)


def test_layers_keep_sequential_state_dict_keys_and_outputs():
    torch.manual_seed(0)
    plain = nn.Sequential(*layers(3, 16, 8))
    fused = layers(3, 16, 8)
    fused.load_state_dict(plain.state_dict())
    assert isinstance(fused, Layers) and list(fused.state_dict()) == list(plain.state_dict())
    x = torch.randn(5, 7, 3)
    for training in (True, False):
        plain.train(training), fused.train(training)
        torch.testing.assert_close(fused(x), plain(x), atol=1e-5, rtol=1e-5)


def test_fallback_when_kernels_are_off():
    norm = norm_with_state(5).eval()
    x = torch.randn(10, 5)
    with use_kernels(False):
        torch.testing.assert_close(norm_leaky_relu(x, norm, 0.2), nn.functional.leaky_relu(norm(x), 0.2))


def run_max(norm: ChannelNorm, z: torch.Tensor, upstream: torch.Tensor, fused: bool):
    """Like :func:`run`, for the max over the neighbour axis of the norm and activation."""
    leaf = z.clone().requires_grad_(True)
    with use_kernels(fused):
        out = norm_leaky_relu_max(leaf, norm, 0.2)
    (out.float() * upstream).sum().backward()
    return {
        "out": out.detach().float(),
        "dz": leaf.grad.float(),
        "dweight": norm.weight.grad.clone(),
        "dbias": norm.bias.grad.clone(),
        "running_mean": norm.running_mean.clone(),
        "running_var": norm.running_var.clone(),
    }


@needs_kernel
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 9, 16, 64), (3, 1, 5), (4, 7, 33)])
def test_max_after_norm_matches_torch(training, dtype, shape):
    generator = torch.Generator().manual_seed(2)
    # few distinct values, so that many maxima tie; negative scales pick minima
    z = (torch.randint(-4, 5, shape, generator=generator) * 0.5 + torch.randn(shape[-1], generator=generator)).to(dtype)
    upstream = torch.randn(*shape[:-2], shape[-1], generator=generator)
    reference = norm_with_state(shape[-1], seed=3).train(training)
    fused = copy.deepcopy(reference)
    expected, got = run_max(reference, z, upstream, False), run_max(fused, z, upstream, True)
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    for key, value in expected.items():
        scale = max(1.0, value.abs().max().item())
        torch.testing.assert_close(got[key], value, atol=tolerance * scale, rtol=tolerance, msg=key)


def test_layers_max_over_neighbors_is_max_of_forward():
    torch.manual_seed(0)
    mlp = layers(3, 16, 8)
    x = torch.randn(2, 5, 11, 3)
    for training in (True, False):
        mlp.train(training)
        state = copy.deepcopy(mlp.state_dict())
        expected = mlp(x).max(dim=-2).values
        mlp.load_state_dict(state)  # the same running statistics for the second call
        torch.testing.assert_close(mlp.max_over_neighbors(x), expected, atol=1e-5, rtol=1e-5)
