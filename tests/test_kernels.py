"""The compiled kernels (neighbour max, FPS, global pooling) against the pure-torch reference, and the fallback.

Tests that need the compiled kernel skip where it is not built; the fallback tests run
everywhere, so the suite passes on a machine without a compiler as well as with one.
"""

from __future__ import annotations

import pytest
import torch

from geocli.nets.backbone import EdgeTrunk, TrunkConfig
from geocli.ops import farthest_point_sample, gather_max, kernels_available, max_mean_pool, use_kernels
from geocli.ops.gather import gather_max_reference
from geocli.precision import autocast_dtype, native_bfloat16, precision_name

needs_kernel = pytest.mark.skipif(not kernels_available(), reason="geocli_kernels is not built here")


def tied_case(dtype: torch.dtype, b: int = 3, n: int = 50, k: int = 12, c: int = 70, seed: int = 0):
    """Random features quantised to a few levels, so that many neighbour maxima tie."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randint(-3, 4, (b, n, c), generator=generator).to(dtype) * 0.5
    neighbors = torch.randint(0, n, (b, n, k), generator=generator)
    return features, neighbors


def both_routes(features: torch.Tensor, neighbors: torch.Tensor, upstream: torch.Tensor):
    """Outputs and input gradients of the kernel route and of the reference route."""
    results = []
    for route in (gather_max, gather_max_reference):
        leaf = features.clone().requires_grad_(True)
        with use_kernels(True):
            out = route(leaf, neighbors)
        (out.float() * upstream).sum().backward()
        results.append((out.detach(), leaf.grad))
    return results


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 50, 12, 70), (1, 7, 1, 3), (2, 200, 20, 129)])
def test_kernel_matches_reference_with_ties(dtype, shape):
    b, n, k, c = shape
    features, neighbors = tied_case(dtype, b, n, k, c)
    upstream = torch.randn(b, n, c, generator=torch.Generator().manual_seed(1))
    (out, grad), (ref_out, ref_grad) = both_routes(features, neighbors, upstream)
    assert out.dtype == dtype and grad.dtype == dtype
    assert torch.equal(out, ref_out)  # values are copied: identical, ties included
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(grad.float(), ref_grad.float(), atol=tolerance, rtol=tolerance)


@needs_kernel
def test_kernel_queries_differ_from_points_and_nan_propagates():
    features = torch.randn(2, 30, 8)
    features[1, 4, 2] = float("nan")
    neighbors = torch.randint(0, 30, (2, 11, 5))
    neighbors[1, 3, 2] = 4  # one query sees the NaN
    with use_kernels(True):
        out = gather_max(features, neighbors)
    ref = gather_max_reference(features, neighbors)
    assert out.shape == (2, 11, 8)
    torch.testing.assert_close(out, ref, equal_nan=True, atol=0, rtol=0)
    assert torch.isnan(out[1, 3, 2])


@needs_kernel
@pytest.mark.parametrize("bad", [-1, 30, 2**40])
def test_kernel_refuses_out_of_range_indices(bad):
    neighbors = torch.zeros(1, 4, 3, dtype=torch.long)
    neighbors[0, 2, 1] = bad
    with use_kernels(True), pytest.raises(RuntimeError, match="out of range"):
        gather_max(torch.randn(1, 30, 5), neighbors)


@needs_kernel
def test_kernel_gradcheck_in_double_precision_route():
    """Gradients of the kernel, summed by hand, equal autograd's on the reference (no ties)."""
    features = torch.randn(2, 40, 16)
    neighbors = torch.randint(0, 40, (2, 40, 9))
    upstream = torch.randn(2, 40, 16)
    (out, grad), (ref_out, ref_grad) = both_routes(features, neighbors, upstream)
    assert torch.equal(out, ref_out)
    torch.testing.assert_close(grad, ref_grad)


def test_fallback_when_kernels_are_off():
    features, neighbors = tied_case(torch.float32)
    with use_kernels(False):
        out = gather_max(features, neighbors)
    assert torch.equal(out, gather_max_reference(features, neighbors))


@pytest.mark.parametrize("local", ["mlp", "max"])
def test_trunk_is_the_same_on_both_routes(local):
    """A whole trunk (train mode, both first layers) gives equal outputs and gradients either way."""
    torch.manual_seed(0)
    trunk = EdgeTrunk(TrunkConfig(k=8, widths=(16, 24, 32), embedding=48, local=local))
    xyz = torch.randn(4, 64, 3)
    neighbors = torch.randint(0, 64, (4, 64, 8))
    grads = []
    for enabled in (True, False):
        trunk.zero_grad()
        with use_kernels(enabled):
            points, pooled = trunk(xyz, neighbors)
        (points.square().mean() + pooled.sum()).backward()
        grads.append((points.detach(), pooled.detach(), [p.grad.clone() for p in trunk.parameters()]))
    (p1, g1, w1), (p2, g2, w2) = grads
    torch.testing.assert_close(p1, p2)
    torch.testing.assert_close(g1, g2)
    # gradients reach 40 here; a linear bias before a norm has a true gradient of 0 and a
    # rounding one of 1e-5 in both routes, summed in another order by the fused norm
    for a, b in zip(w1, w2):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_unknown_first_layer_is_refused():
    with pytest.raises(ValueError, match="first layer"):
        TrunkConfig(local="conv")


def test_precision_follows_the_cpu_and_the_override(monkeypatch):
    monkeypatch.setenv("GEOCLI_BF16", "0")
    assert autocast_dtype("cpu") is None and precision_name("cpu") == "float32"
    monkeypatch.setenv("GEOCLI_BF16", "1")
    assert autocast_dtype("cpu") == torch.bfloat16 and precision_name("cpu") == "bfloat16"
    monkeypatch.delenv("GEOCLI_BF16")
    assert native_bfloat16() in (True, False)
    assert autocast_dtype("cuda") == torch.bfloat16  # a GPU always has it


@needs_kernel
@pytest.mark.parametrize("quantised", [False, True])
@pytest.mark.parametrize("size", [13, 512, 600])  # the kernel's 16 lanes: a remainder only, none, and both
def test_fps_kernel_picks_the_torch_routes_points(quantised, size):
    """Same indices in the same order, on smooth clouds and on a grid full of distance ties."""
    generator = torch.Generator().manual_seed(3)
    points = torch.randn(4, size, 3, generator=generator)
    if quantised:
        points = (points * 2).round() / 2
    picks = min(100, size - 1)
    with use_kernels(True):
        fast = farthest_point_sample(points, picks)
    with use_kernels(False):
        slow = farthest_point_sample(points, picks)
    assert torch.equal(fast, slow)
    if not quantised:  # distinct points: FPS never picks one twice
        assert all(len(set(row.tolist())) == picks for row in fast)


@needs_kernel
def test_kernel_takes_broadcast_neighbour_views():
    """Frame Averaging repeats one graph over its views as a stride-0 view: the kernel must read it as such."""
    features = torch.randn(8, 40, 6)
    neighbors = torch.randint(0, 40, (1, 1, 40, 5)).expand(1, 8, 40, 5).reshape(8, 40, 5)
    assert not neighbors.is_contiguous()
    with use_kernels(True):
        out = gather_max(features, neighbors)
    assert torch.equal(out, gather_max_reference(features, neighbors))


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 37, 70), (2, 1, 5), (4, 100, 64)])  # channel blocks of 64: a remainder, and not
def test_max_mean_pool_kernel_matches_torch(dtype, shape):
    """The same maxima, the mean to rounding, and the gradients of ``torch.max`` and ``mean`` (the first of tied
    maxima takes the max's gradient, as torch.max routes it), in both types."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=generator).to(dtype)
    if shape[1] > 9:
        x[1, 5, 2] = x[1, 9, 2] = x[1, :, 2].max() + 1  # a tie for the max
    upstream = torch.randn(2, shape[0], shape[2], generator=generator)
    results = []
    for fused in (True, False):
        leaf = x.clone().requires_grad_(True)
        with use_kernels(fused):
            maxed, mean = max_mean_pool(leaf) if fused else (leaf.max(dim=1).values, leaf.mean(dim=1))
        (maxed.float() * upstream[0] + mean.float() * upstream[1]).sum().backward()
        results.append((maxed.detach(), mean.detach(), leaf.grad))
    (m1, a1, g1), (m2, a2, g2) = results
    assert m1.dtype == a1.dtype == g1.dtype == dtype
    assert torch.equal(m1, m2)
    tolerance = {"atol": 1e-6, "rtol": 1e-6} if dtype == torch.float32 else {"atol": 1e-2, "rtol": 1e-2}
    torch.testing.assert_close(a1, a2, **tolerance)
    torch.testing.assert_close(g1, g2, **tolerance)
    if shape[1] > 9:
        assert g1[1, 5, 2] != g1[1, 9, 2]  # the whole max gradient at the first of the tied points


def test_max_mean_pool_without_kernels_is_torchs():
    x = torch.randn(2, 30, 7)
    with use_kernels(False):
        maxed, mean = max_mean_pool(x)
    assert torch.equal(maxed, x.amax(dim=1)) and torch.equal(mean, x.mean(dim=1))
