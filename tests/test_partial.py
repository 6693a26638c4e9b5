"""Simulated single-view scans: hidden point removal, seeded views, the eval protocol and training copies."""

from __future__ import annotations

import numpy as np
import pytest

from geocli.data.pointset import PointSet
from geocli.geometry.partial import hidden_point_removal, single_view, single_views
from geocli.train import scanned


def sphere(n: int = 2000, seed: int = 0) -> np.ndarray:
    points = np.random.default_rng(seed).normal(size=(n, 3))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_hidden_point_removal_keeps_the_near_side_of_a_sphere() -> None:
    points = sphere()
    viewpoint = np.array([0.0, 0.0, 3.0])
    visible = hidden_point_removal(points, viewpoint)
    # from 3 radii away the visible cap is z > 1/3: a third of the sphere
    assert 0.25 < len(visible) / len(points) < 0.45
    assert (points[visible, 2] > 0).all()
    hidden = np.setdiff1d(np.arange(len(points)), visible)
    assert (points[hidden, 2] < 0.45).all()


def test_single_views_are_seeded_partial_and_noisy_only_when_asked() -> None:
    clouds = np.stack([sphere(1024, seed) for seed in range(3)]).astype(np.float32)
    first, again = single_views(clouds, seed=7), single_views(clouds, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(0.2 < len(view) / 1024 < 0.6 for view in first)
    clean = single_view(clouds[0], np.random.default_rng(1))
    assert np.isin(clean.view("V12"), clouds[0].view("V12")).all()  # a subset of the input points
    noisy = single_view(clouds[0], np.random.default_rng(1), depth_noise=0.01)
    assert noisy.shape == clean.shape and not np.array_equal(noisy, clean)


def test_scanned_copies_have_the_input_size_and_labels() -> None:
    clouds = np.stack([sphere(1024, seed) for seed in range(4)]).astype(np.float32)
    shapes = PointSet(clouds, np.array([0, 1, 2, 3]), np.array(["a", "b", "c", "d"]))
    views = scanned(shapes, 2)
    assert views.points.shape == (8, 1024, 3) and views.points.dtype == np.float32
    assert list(views.labels) == [0, 1, 2, 3, 0, 1, 2, 3]
    radii = np.linalg.norm(views.points, axis=2).max(axis=1)
    np.testing.assert_allclose(radii, 1.0, atol=1e-5)  # normalised to the unit sphere, as classify's inputs
    with pytest.raises(ValueError, match="one label per shape"):
        scanned(PointSet(clouds, np.zeros((4, 1024), dtype=np.int64), shapes.names), 1)
