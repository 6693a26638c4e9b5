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
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=1,
    ).reshape(n, 3, 3)


def random_z(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Rotations about the up (z) axis by uniform angles."""
    angle = torch.rand(n, generator=generator, dtype=torch.float64) * (2 * math.pi)
    c, s = angle.cos(), angle.sin()
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=1).reshape(n, 3, 3)


def random_rotations(n: int, kind: str, seed: int) -> Tensor:
    """(n, 3, 3) float64 rotations of one protocol kind: 'none', 'z' or 'so3'."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "none":
        return torch.eye(3, dtype=torch.float64).expand(n, 3, 3).clone()
    if kind == "z":
        return random_z(n, generator)
    if kind == "so3":
        return random_so3(n, generator)
    raise ValueError(f"unknown rotation kind {kind!r}; expected one of {PROTOCOL_ROTATIONS}")


def rotate(points: Tensor, rotations: Tensor) -> Tensor:
    """Apply one rotation per cloud: (B,N,3) x (B,3,3) -> (B,N,3), row-vector convention."""
    return points @ rotations.to(points.dtype).transpose(-1, -2)
