"""TinvNN's front-end: the O(n) route equals textbook MDS, and its sign rule is stable."""

from __future__ import annotations

import torch

from geocli.geometry.rotations import random_rotations, rotate
from geocli.nets.tinvnn import TinvNN, mds_coordinates


def test_linear_route_equals_classical_mds(modelnet_test) -> None:
    points = torch.from_numpy(modelnet_test["points"][:4, :200]).double()
    assert torch.allclose(TinvNN().canonical(points), mds_coordinates(points), atol=1e-8)


def test_canonical_view_is_invariant_to_similarities(modelnet_test) -> None:
    points = torch.from_numpy(modelnet_test["points"][:8]).double()
    reference = TinvNN().canonical(points)
    moved = rotate(points, random_rotations(8, "so3", seed=2)) * 3.7 - 1.5
    mirrored = moved * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    for clouds in (moved, mirrored):
        assert torch.allclose(TinvNN().canonical(clouds), reference, atol=1e-6)


def test_sign_rule_is_stable_under_small_noise(modelnet_test) -> None:
    """A shape with distinct eigenvalues keeps its signs (and so its canonical view) under noise."""
    points = torch.from_numpy(modelnet_test["points"][:1]).double()  # an airplane: distinct variances
    reference = TinvNN().canonical(points)
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        noisy = points + 1e-3 * torch.randn(points.shape, generator=generator, dtype=torch.float64)
        assert (TinvNN().canonical(noisy) - reference).abs().max() < 2e-2
