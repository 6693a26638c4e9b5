"""Architecture registry: build any family's network from its name and hyper-parameters.

Cards store ``family`` and ``hparams``; :func:`create_model` rebuilds the exact network
from them, so a checkpoint never carries code (and nothing is unpickled).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from geocli.nets.backbone import ClassifierHead, EdgeTrunk, SegmentationHead, TrunkConfig
from geocli.nets.frame_averaging import FrameAveraging
from geocli.nets.invariant import Frontend, InvariantNet
from geocli.nets.tinvnn import TinvNN

FRONTENDS: dict[str, Callable[..., Frontend]] = {
    "frame_averaging": FrameAveraging,
    "tinvnn": TinvNN,
}

TRUNK_KEYS = ("k", "widths", "embedding")
TASKS = ("classify", "segment")


def list_families() -> list[str]:
    return sorted(FRONTENDS)


def create_model(family: str, num_classes: int, hparams: dict[str, Any] | None = None, task: str = "classify") -> InvariantNet:
    """Build a classifier or per-point segmenter of ``family`` from ``hparams``.

    Both tasks share the front-end and trunk; only the head differs, so a segmenter can
    start from a classifier's trunk.
    """
    if family not in FRONTENDS:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(list_families())}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    hparams = dict(hparams or {})
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
