"""Architecture registry: build any family's network from its name and hyper-parameters.

Cards store ``family`` and ``hparams``; :func:`create_model` rebuilds the exact network
from them, so a checkpoint never carries code (and nothing is unpickled).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from geocli.nets.apen import APEN, APENConfig
from geocli.nets.backbone import (
    ClassifierHead,
    EdgeTrunk,
    SegmentationHead,
    TrunkConfig,
)
from geocli.nets.frame_averaging import FrameAveraging
from geocli.nets.invariant import Frontend, InvariantNet
from geocli.nets.parot import PaRot, PaRotConfig
from geocli.nets.tinvnn import TinvNN

FRONTENDS: dict[str, Callable[..., Frontend]] = {
    "frame_averaging": FrameAveraging,
    "tinvnn": TinvNN,
}

Network = InvariantNet | PaRot | APEN
TRUNK_KEYS = ("k", "widths", "embedding", "local")
TASKS = ("classify", "segment")
# How each family is invariant: "exact" by construction, "learned" from rotated training data.
INVARIANCE = {"frame_averaging": "exact", "tinvnn": "exact", "parot": "learned", "apen": "exact"}


def list_families(invariance: str | None = None) -> list[str]:
    """Every family, or those whose invariance is ``invariance`` ("exact" or "learned")."""
    return sorted(f for f, kind in INVARIANCE.items() if invariance in (None, kind))


def create_model(
    family: str, num_classes: int, hparams: dict[str, Any] | None = None, task: str = "classify"
) -> Network:
    """Build a classifier or per-point segmenter of ``family`` from ``hparams``.

    Both tasks share the front-end and trunk (or PaRot's patch encoder); only the head
    differs, so a segmenter can start from a classifier's trunk.
    """
    if family not in INVARIANCE:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(list_families())}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    hparams = dict(hparams or {})
    if family == "parot":
        return PaRot(PaRotConfig(**hparams), num_classes, task)
    if family == "apen":
        return APEN(APENConfig(**hparams), num_classes, task)
    trunk_args = {key: hparams.pop(key) for key in TRUNK_KEYS if key in hparams}
    if "widths" in trunk_args:
        trunk_args["widths"] = tuple(trunk_args["widths"])
    dropout = hparams.pop("dropout", 0.5)
    trunk = EdgeTrunk(TrunkConfig(**trunk_args))
    if task == "classify":
        head: nn.Module = ClassifierHead(trunk.config.global_channels, num_classes, dropout=dropout)
    else:
        head = SegmentationHead(trunk.config.point_channels, trunk.config.global_channels, num_classes, dropout=dropout)
    return InvariantNet(FRONTENDS[family](**hparams), trunk, head)
