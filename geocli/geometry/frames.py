"""Principal-axis frames of point clouds, the basis of the exactly invariant front-ends.

A cloud's covariance rotates with the cloud, so its eigenvectors give a frame that
rotates with it: coordinates expressed in that frame do not change when the cloud
is rotated. Two ambiguities remain and are handled here deliberately:

* **Signs.** Each eigenvector is defined up to sign. Frame Averaging keeps all sign
  choices (8 for O(3), the 4 with determinant +1 for SO(3)) and averages over them;
  a single-frame canonicaliser instead fixes each sign with a rule on the data.
* **(Near-)equal eigenvalues.** Bottles, bowls, cups and vases have two equal
  principal variances, so the two axes spanning that plane are arbitrary and jump
  under tiny perturbations. Where two eigenvalues lie within ``tie_tolerance``
  (relative to the largest) we re-split that plane with a fourth-order moment,
  ``sum |x|^2 x x^T``, which still rotates with the cloud and usually separates
  shapes whose second moments coincide. If that tensor is degenerate there too,
  the shape is symmetric about the axis to fourth order and every choice of
  in-plane axes gives (up to sampling noise) the same canonical cloud, so the
  remaining arbitrariness does not change the canonical geometry the network sees.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

TIE_TOLERANCE = 0.05
SKEW_TOLERANCE = 1e-3  # a third moment below this (at unit scale) decides no axis' sign: see axis_signs


def _sign_table(proper_only: bool) -> Tensor:
    signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=3)))
    if proper_only:
        signs = signs[signs.prod(dim=1) > 0]
    return signs


O3_SIGNS = _sign_table(proper_only=False)  # (8, 3)
SO3_SIGNS = _sign_table(proper_only=True)  # (4, 3), flips an even number of axes


def centre_and_scale(points: Tensor) -> Tensor:
    """Centre (B,N,3) clouds on their centroids and scale each one's furthest point to radius 1 (invariant to
    similarity), in the network: :func:`geocli.geometry.sampling.normalize_unit_sphere` for torch batches.

    A degenerate cloud is handled as there: one whose points all coincide (radius 0) becomes all
    zeros, and any other, however small, gets radius 1. The network's inputs have been through
    ``normalize_unit_sphere`` (exact in float64) already, so this only undoes what augmentation did.
    """
    centred = points - points.mean(dim=-2, keepdim=True)
    radius = centred.norm(dim=-1).amax(dim=-1, keepdim=True)
    return centred / torch.where(radius > 0, radius, torch.ones_like(radius)).unsqueeze(-1)


def _descending_eigh(matrix: Tensor) -> tuple[Tensor, Tensor]:
    values, vectors = torch.linalg.eigh(matrix)
    return values.flip(-1), vectors.flip(-1)


def _resplit_plane(axes: Tensor, pair: tuple[int, int], moment: Tensor, mask: Tensor) -> Tensor:
    """Rotate the two axes in ``pair`` to the eigenvectors of ``moment`` restricted to their plane."""
    if not bool(mask.any()):
        return axes
    plane = axes[..., list(pair)]  # (B,3,2)
    restricted = plane.transpose(-1, -2) @ moment @ plane  # (B,2,2)
    _, rotation = _descending_eigh(restricted)
    resplit = axes.clone()
    resplit[..., list(pair)] = plane @ rotation
    return torch.where(mask[:, None, None], resplit, axes)


def principal_axes(
    points: Tensor, tie_tolerance: float = TIE_TOLERANCE, weights: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Principal axes of centred clouds, with ties broken by a fourth-order moment.

    ``points`` is (B, N, 3) and already centred. Returns the axes as columns of a
    (B, 3, 3) matrix ordered by decreasing variance, and the (B, 3) variances.
    Computed in float64: eigenvectors of nearly degenerate float32 covariances are
    noisy enough to break the invariance tests. ``weights`` (B, N), summing to 1 per
    cloud, confine the statistics to a part of each cloud (APEN's per-part frames);
    the points must then be centred on the weighted centroid.
    """
    x = points.double()
    w = torch.full_like(x[..., :1], 1.0 / x.shape[-2]) if weights is None else weights.double().unsqueeze(-1)
    covariance = (x * w).transpose(-1, -2) @ x
    values, axes = _descending_eigh(covariance)
    weighted = x * x.square().sum(-1, keepdim=True) * w
    moment = weighted.transpose(-1, -2) @ x
    largest = values[:, :1].clamp_min(1e-30)
    gaps = (values[:, :-1] - values[:, 1:]) / largest  # (B,2): gap 0-1 and gap 1-2
    all_tied = (gaps < tie_tolerance).all(dim=1)
    if bool(all_tied.any()):
        _, moment_axes = _descending_eigh(moment)
        axes = torch.where(all_tied[:, None, None], moment_axes, axes)
    axes = _resplit_plane(axes, (0, 1), moment, (gaps[:, 0] < tie_tolerance) & ~all_tied)
    axes = _resplit_plane(axes, (1, 2), moment, (gaps[:, 1] < tie_tolerance) & ~all_tied)
    return axes.to(points.dtype), values.to(points.dtype)


def axis_signs(coordinates: Tensor, weights: Tensor | None = None) -> Tensor:
    """(B,3) signs that skew each axis of centred (B,N,3) coordinates towards its positive side
    (TinvNN's sign rule, :func:`geocli.nets.tinvnn.sign_rule`; APEN's part frames and ``geocli align`` use it too).

    The third moment ``sum y^3`` changes sign with the axis, so requiring it positive
    fixes the sign for any shape that is not mirror-symmetric across that axis. For
    (nearly) mirror-symmetric axes, where noise would decide, the sign is taken from
    ``sum y * |x|^2`` (a different odd moment) and only then left as computed.
    ``weights`` (B,N), summing to 1 per cloud, confine the rule to a part of each
    cloud (APEN's per-part frames); the other points are ignored.
    """
    members = torch.ones_like(coordinates[..., 0]) if weights is None else (weights > 0).to(coordinates.dtype)
    weights = members / coordinates.shape[-2] if weights is None else weights.to(coordinates.dtype)
    scale = (coordinates.norm(dim=-1) * members).amax(dim=-1, keepdim=True).clamp_min(1e-12)  # (B,1)
    y = coordinates / scale.unsqueeze(-1)
    skew = (y.pow(3) * weights.unsqueeze(-1)).sum(-2)
    fallback = (y * y.square().sum(-1, keepdim=True) * weights.unsqueeze(-1)).sum(-2)
    key = torch.where(skew.abs() > SKEW_TOLERANCE, skew, fallback)
    return torch.where(key < 0, -1.0, 1.0).to(coordinates.dtype)


def random_sign_views(signs: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` rows of ``signs`` (sign views, e.g. :data:`O3_SIGNS`) drawn uniformly: training's random
    view of each canonical cloud, whose every view inference averages over."""
    return signs[torch.randint(len(signs), (count,), generator=generator)]


def canonical_coordinates(points: Tensor) -> tuple[Tensor, Tensor]:
    """Similarity-normalised cloud expressed in its principal axes, and the variances.

    The result is invariant to rotation, translation and scale up to the sign of each
    axis, which the caller resolves (by averaging over signs or by a sign rule).
    """
    normalised = centre_and_scale(points)
    axes, variances = principal_axes(normalised)
    return normalised @ axes, variances
