"""Frame Averaging (Puny et al., ICLR 2022) over PCA frames.

The frame of a centred cloud is its principal axes; the frame *set* is every sign
choice of those axes (8 for O(3), the 4 proper ones for SO(3)). Averaging the
backbone over the set makes the output exactly invariant: a rotation or reflection
of the input permutes the set of canonical views and leaves their average unchanged.
Ties between eigenvalues are resolved in :mod:`geocli.geometry.frames`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from geocli.geometry.frames import O3_SIGNS, SO3_SIGNS, canonical_coordinates
from geocli.nets.invariant import Frontend, edge_network
from geocli.nets.registry import Network

GROUPS = {"O3": O3_SIGNS, "SO3": SO3_SIGNS}


class FrameAveraging(Frontend):
    """Views of a cloud in every PCA frame of the chosen group."""

    def __init__(self, group: str = "O3") -> None:
        super().__init__()
        if group not in GROUPS:
            raise ValueError(f"unknown group {group!r}; expected one of {sorted(GROUPS)}")
        self.group = group
        self.register_buffer("signs", GROUPS[group].clone(), persistent=False)

    def canonical(self, points: Tensor) -> Tensor:  # noqa: D102
        return canonical_coordinates(points)[0]


def build(hparams: dict[str, Any], num_classes: int, task: str) -> Network:
    """The registry's builder: the shared edge network behind this front-end (``group`` is its one option)."""
    return edge_network(FrameAveraging, hparams, num_classes, task)
