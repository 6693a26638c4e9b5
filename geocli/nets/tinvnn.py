"""TinvNN (Zhang et al., "Revisiting Transformation Invariant Geometric Deep Learning: Are
Initial Representations All You Need?"): invariant initial coordinates from modified MDS.

Classical multi-dimensional scaling of a cloud's pairwise distances recovers the cloud
up to an isometry: the top-3 eigenpairs of the double-centred Gram matrix, with
coordinates scaled by the square roots of the eigenvalues. Those are exactly the
centred points in their principal axes, so the same coordinates come in O(n) from the
3x3 covariance (:func:`geocli.geometry.frames.canonical_coordinates`); the n x n route
is kept only to show, in the tests, that both agree. MDS leaves each axis' sign free;
the modification that makes the representation unique fixes it with a rule on the
data (:func:`sign_rule`), normalises scale (furthest point at radius 1) and resolves
(near-)equal eigenvalues as Frame Averaging does. One canonical view, one backbone pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from geocli.geometry.frames import axis_signs, canonical_coordinates, centre_and_scale
from geocli.nets.invariant import Frontend, edge_network
from geocli.nets.registry import Network


def classical_mds(points: Tensor, dims: int = 3) -> Tensor:
    """Textbook MDS through the n x n double-centred Gram matrix (reference; O(n^2) memory)."""
    x = points.double()
    squared = torch.cdist(x, x).square()
    n = x.shape[-2]
    centring = torch.eye(n, dtype=x.dtype) - 1.0 / n
    gram = -0.5 * centring @ squared @ centring
    values, vectors = torch.linalg.eigh(gram)
    values, vectors = values.flip(-1)[..., :dims], vectors.flip(-1)[..., :dims]
    return (vectors * values.clamp_min(0).sqrt().unsqueeze(-2)).to(points.dtype)


def sign_rule(coordinates: Tensor) -> Tensor:
    """Coordinates with each axis flipped by :func:`axis_signs`: TinvNN's unique MDS solution."""
    return coordinates * axis_signs(coordinates).unsqueeze(-2)


class TinvNN(Frontend):
    """One canonical view: MDS coordinates (computed in O(n)) with the sign rule applied."""

    def canonical(self, points: Tensor) -> Tensor:
        return sign_rule(canonical_coordinates(points)[0])


def mds_coordinates(points: Tensor) -> Tensor:
    """Scale-normalised classical MDS with the sign rule: the n x n route to :meth:`TinvNN.canonical`."""
    return sign_rule(classical_mds(centre_and_scale(points)))


VIEWS = ("canonical", "pooled")  # the hparam "views": the one canonical view, or six pooled (PooledUp)


def build(hparams: dict[str, Any], num_classes: int, task: str) -> Network:
    """The registry's builder: the shared edge network behind this front-end, on its one canonical view
    or, with ``views="pooled"``, on six views whose trunk features are pooled
    (:class:`geocli.nets.pooled_up.PooledUp`)."""
    from geocli.nets.pooled_up import PooledUp  # it subclasses TinvNN: imported here, not at the top

    views = hparams.pop("views", "canonical")
    if views not in VIEWS:
        raise ValueError(f"views must be one of {', '.join(VIEWS)}, not {views!r}")
    return edge_network(PooledUp if views == "pooled" else TinvNN, hparams, num_classes, task)
