"""PCA frames: equivariance, sign sets, and the deliberate handling of equal eigenvalues."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocli.geometry.frames import (
    O3_SIGNS,
    SO3_SIGNS,
    canonical_coordinates,
    centre_and_scale,
    principal_axes,
)
from geocli.geometry.rotations import random_rotations, rotate
from geocli.geometry.sampling import normalize_unit_sphere


def test_sign_sets() -> None:
    assert O3_SIGNS.shape == (8, 3) and len({tuple(r) for r in O3_SIGNS.tolist()}) == 8
    assert SO3_SIGNS.shape == (4, 3) and (SO3_SIGNS.prod(1) == 1).all()


def test_axes_are_orthonormal_and_sorted(modelnet_test) -> None:
    points = centre_and_scale(torch.from_numpy(modelnet_test["points"][:8]))
    axes, variances = principal_axes(points)
    eye = torch.eye(3).expand(8, 3, 3)
    assert torch.allclose(axes.transpose(1, 2) @ axes, eye, atol=1e-5)
    assert (variances[:, :-1] >= variances[:, 1:]).all()


def test_canonical_coordinates_invariant_up_to_axis_signs(modelnet_test) -> None:
    points = torch.from_numpy(modelnet_test["points"][:16]).double()
    base, _ = canonical_coordinates(points)
    moved, _ = canonical_coordinates(rotate(points, random_rotations(16, "so3", seed=3)) * 7.5 + 2.0)
    # each canonical axis may flip sign, nothing else may change
    assert torch.allclose(base.abs(), moved.abs(), atol=1e-6)


def _cross_with_equal_variances() -> torch.Tensor:
    """A planar cross whose x and y variances are equal but whose fourth moments differ."""
    a, b, c = 1.0, 0.6, (2 - 0.36) ** 0.5  # b^2 + c^2 = 2 a^2
    xs = [[a, 0, 0], [-a, 0, 0]] * 2
    ys = [[0, b, 0], [0, -b, 0], [0, c, 0], [0, -c, 0]]
    z = [[0, 0, 0.2], [0, 0, -0.2]]
    return torch.tensor(xs + ys + z, dtype=torch.float64)


def test_equal_eigenvalues_resolved_by_fourth_moment() -> None:
    cross = _cross_with_equal_variances()[None]
    _, variances = principal_axes(cross - cross.mean(1, keepdim=True))
    assert abs(variances[0, 0] - variances[0, 1]) < 1e-9  # the tie is real
    base, _ = canonical_coordinates(cross)
    for seed in range(10):
        moved, _ = canonical_coordinates(rotate(cross, random_rotations(1, "so3", seed=seed)))
        assert torch.allclose(base.abs(), moved.abs(), atol=1e-6)


def test_tie_breaking_is_needed_for_that_shape() -> None:
    """Without the fourth moment the in-plane axes of the cross depend on its pose."""
    cross = _cross_with_equal_variances()[None]
    plain = [principal_axes(rotate(cross, random_rotations(1, "so3", seed=s)), tie_tolerance=0.0) for s in range(10)]
    canon = [(rotate(cross, random_rotations(1, "so3", seed=s)) @ axes).abs() for s, (axes, _) in enumerate(plain)]
    assert any(not torch.allclose(canon[0], c, atol=1e-3) for c in canon[1:])


@pytest.mark.parametrize("scale", [1.0, 1e-13, 3e5])
def test_centre_and_scale_normalises_as_normalize_unit_sphere_does(modelnet_test, scale: float) -> None:
    """One rule for both (the network's torch batches, the inputs' exact float64): any cloud that is not a
    single point gets radius 1, however small (a 1e-13 cloud kept its size under the old 1e-12 clamp)."""
    points = modelnet_test["points"][:2].astype(np.float64) * scale + [0.5 * scale, -2 * scale, scale]
    batch = centre_and_scale(torch.from_numpy(points)).numpy()
    for cloud, normalised in zip(points, batch):
        np.testing.assert_allclose(normalised, normalize_unit_sphere(cloud)[0], atol=1e-9)


def test_a_single_point_becomes_zeros_in_both() -> None:
    points = np.tile([2.0, -1.0, 5.0], (6, 1))
    assert not centre_and_scale(torch.from_numpy(points)[None]).any()
    assert not normalize_unit_sphere(points)[0].any()
