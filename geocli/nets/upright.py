"""Upright: the shared edge network on the cloud as it is posed, centred and scaled, with no frame.

Not rotation invariant, and never shipped: it is the reference of the ceiling ablation
(``docs/accuracy.md``, ``python scripts/ablation.py small-upright``). ModelNet40's shapes come
upright (z is gravity), so a network trained with rotations about z only
(``rotation="z"``) and validated upright is told most of the pose; the same trunk, schedule
and epochs behind TinvNN's canonical frame must find the pose from the shape itself. The
gap between the two is what the frames cost, and the upright figure what the trunk and the
budget reach when pose is free.

Input (B, N, 3) raw points; the one view is ``centre_and_scale(points)`` (B, N, 3), the same
similarity normalisation the invariant front-ends apply before their frames.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from geocli.geometry.frames import centre_and_scale
from geocli.nets.invariant import Frontend, edge_network
from geocli.nets.registry import Network


class Upright(Frontend):
    """One view: the centred, unit-scaled cloud in the pose it came in."""

    def canonical(self, points: Tensor) -> Tensor:
        return centre_and_scale(points)


def build(hparams: dict[str, Any], num_classes: int, task: str) -> Network:
    """The registry's builder: the shared edge network behind the identity front-end (which takes no options)."""
    return edge_network(Upright, hparams, num_classes, task)
