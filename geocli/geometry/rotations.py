"""Seeded random rotations for augmentation, evaluation protocols and invariance tests."""

from __future__ import annotations

import math

import torch
from torch import Tensor

PROTOCOL_ROTATIONS = ("none", "z", "so3")


def random_so3(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Uniform rotations (Haar measure) from normalised Gaussian quaternions (global RNG without a generator)."""
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - z * w),
            2 * (x * z + y * w),
            2 * (x * y + z * w),
            1 - 2 * (x * x + z * z),
            2 * (y * z - x * w),
            2 * (x * z - y * w),
            2 * (y * z + x * w),
            1 - 2 * (x * x + y * y),
        ],
        dim=1,
    ).reshape(n, 3, 3)


def random_z(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Rotations about the up (z) axis by uniform angles."""
    angle = torch.rand(n, generator=generator, dtype=torch.float64) * (2 * math.pi)
    c, s = angle.cos(), angle.sin()
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=1).reshape(n, 3, 3)


RANDOM_ROTATIONS = {"z": random_z, "so3": random_so3}
"""Random rotations by kind: about the z axis, or any; training's ``rotation`` and the protocols' draws."""


def random_rotations(n: int, kind: str, seed: int) -> Tensor:
    """(n, 3, 3) float64 rotations of one protocol kind: 'none', 'z' or 'so3'."""
    if kind == "none":
        return torch.eye(3, dtype=torch.float64).expand(n, 3, 3).clone()
    if kind in RANDOM_ROTATIONS:
        return RANDOM_ROTATIONS[kind](n, torch.Generator().manual_seed(seed))
    raise ValueError(f"unknown rotation kind {kind!r}; expected one of {PROTOCOL_ROTATIONS}")


def rotate(points: Tensor, rotations: Tensor) -> Tensor:
    """Apply one rotation per cloud: (B,N,3) x (B,3,3) -> (B,N,3), row-vector convention."""
    return points @ rotations.to(points.dtype).transpose(-1, -2)


def plane_rotations(angles: Tensor, i: int, j: int) -> Tensor:
    """(B,3,3) rotations by ``angles`` (B,) in the plane of axes i and j."""
    out = torch.eye(3, dtype=angles.dtype).repeat(len(angles), 1, 1)
    c, s = angles.cos(), angles.sin()
    out[:, i, i], out[:, i, j], out[:, j, i], out[:, j, j] = c, -s, s, c
    return out


def frame_jitter(canonical: Tensor, max_degrees: float, tie_ratio: float, generator: torch.Generator) -> Tensor:
    """(B,3,3) augmentation rotations for clouds in their canonical (principal-axis) frames.

    A canonical frame is only as stable as the gaps between its variances: where two
    nearly tie, noise decides which axis comes first, and a class is seen in frames
    that disagree by up to 90 degrees. Training therefore turns each canonical cloud
    (a) about a uniformly random axis by up to ``max_degrees``, the small wobble of any
    estimated frame, and (b) in the plane of every pair of consecutive axes whose
    variance ratio exceeds ``tie_ratio`` (1 disables it), by an angle drawn uniformly
    within +-180 degrees times how close the tie is (0 at ``tie_ratio``, 1 at equality),
    so that the network meets every frame its inputs may get. Row-vector convention
    (apply as ``x @ R.T``), float32.
    """
    b = canonical.shape[0]
    variances = canonical.float().square().mean(dim=1)  # (B,3): centred, so second moments per axis
    out = torch.eye(3).repeat(b, 1, 1)
    if tie_ratio < 1:
        for i in (0, 1):
            big, small = variances[:, i], variances[:, i + 1]
            ratio = torch.minimum(big, small) / torch.maximum(big, small).clamp_min(1e-12)
            closeness = ((ratio - tie_ratio) / (1 - tie_ratio)).clamp(0, 1)
            angles = (2 * torch.rand(b, generator=generator) - 1) * math.pi * closeness
            out = plane_rotations(angles, i, i + 1) @ out
    if max_degrees > 0:
        axis = torch.randn(b, 3, generator=generator)
        axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-12)
        angle = torch.rand(b, generator=generator) * math.radians(max_degrees)
        k = torch.zeros(b, 3, 3)
        k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
        k = k - k.transpose(1, 2)
        s, c = angle.sin()[:, None, None], angle.cos()[:, None, None]
        out = (torch.eye(3) + s * k + (1 - c) * (k @ k)) @ out  # Rodrigues
    return out
