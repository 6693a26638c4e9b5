"""Every network family, one entry each: how to build it, how it is invariant, what its cards say, how to train it.

A family is one module under ``geocli/nets/`` whose ``build(hparams, num_classes, task)``
returns its network, plus one :class:`Family` entry in :data:`FAMILIES` (docs/adding-a-family.md
walks through it). Everything else that depends on the family reads that entry: ``geocli train``'s
``--family`` and ``--recipe`` (their choices and help), ``geocli models``, the description and
invariance that export writes on a card, the protocols evaluation runs and how training augments,
and the training recipes (:func:`geocli.train.recipe`). Nothing else lists families.

This module imports no torch, so that ``geocli --help`` can show the choices without paying for
it; :func:`create_model` imports a family's module when it builds a network. Cards store
``family`` and ``hparams``, from which :func:`create_model` rebuilds the exact network: a
checkpoint never carries code (and nothing is unpickled).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

TASKS = ("classify", "segment")
# How a family is invariant: "exact" by construction, "learned" from rotated training data, or
# "none": a reference that is not rotation invariant, for ablations only (never shipped).
Invariance = Literal["exact", "learned", "none"]

# The edge trunk of the cpu recipes; "max": the first layer runs on the fused gather-max.
EDGE_TRUNK: dict[str, Any] = {"k": 16, "widths": [32, 48, 96, 192], "embedding": 384, "local": "max"}
# DGCNN's widths, for TinvNN's long CPU run.
WIDE_TRUNK: dict[str, Any] = {"k": 20, "widths": [64, 64, 128, 256], "embedding": 1024, "local": "max"}
# The default classifier's long CPU run: DGCNN widths, 1,024 points, validated every epoch, frames
# jittered as inference meets them. One cosine cycle per session of 30 epochs; the next cycle
# continues from the shipped weights (--init).
WIDE_RECIPE: dict[str, Any] = {
    "hparams": WIDE_TRUNK,
    "points": 1024,
    "epochs": 30,
    "lr": 1e-3,
    "warmup_epochs": 2.0,
    "validate_after": 0.0,
    "frame_jitter": 10.0,
    "tie_ratio": 0.85,
}


@runtime_checkable
class Trainable(Protocol):
    """What :mod:`geocli.train` asks of a family's network besides being a torch module.

    Training caches what :meth:`prepare` computes per shape (it depends on the cloud only,
    never on its pose), so an epoch is only forward and backward passes; each family then
    decides what augmentation means for what it prepared, and may add a loss of its own.
    """

    def prepare(self, points: Tensor) -> dict[str, Tensor]:
        """What training caches for (B,N,3) raw clouds: floats and indices, per shape."""
        ...

    def forward_prepared(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits for a batch of :meth:`prepare`'s output (augmented in training)."""
        ...

    def augment(
        self,
        batch: dict[str, Tensor],
        scale: Tensor,
        noise: Tensor,
        rotations: Tensor,
        generator: torch.Generator,
        labels: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The batch with the shared random draws applied as this family sees fit; ``labels`` (the batch's
        targets) for a family whose training view depends on them."""
        ...

    def auxiliary_loss(self) -> Tensor:
        """A loss added to the task's after each training forward pass (zero when the family has none)."""
        ...

    def cache_key(self) -> list[Any]:
        """JSON values that change whenever :meth:`prepare`'s output would: part of the cache file's name."""
        ...


class Network(Trainable, Protocol):
    """A family's network as the rest of geocli uses it: the training interface and the torch
    module calls made on it (inference, checkpoints, devices). Any ``nn.Module`` subclass that
    implements :class:`Trainable` and ``num_views`` is one; mypy checks each family's ``build``."""

    training: bool

    @property
    def num_views(self) -> int:
        """Backbone passes per cloud at inference (speed reports)."""
        ...

    def __call__(self, points: Tensor) -> Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any: ...

    def train(self, mode: bool = True) -> Network: ...

    def eval(self) -> Network: ...

    def to(self, device: str | torch.device | None = None) -> Network: ...


@dataclass(frozen=True)
class Family:
    """One network family: the one place that says what it is and how to make and train it."""

    name: str
    module: str  # defines build(hparams: dict, num_classes: int, task: str) -> Network
    invariance: Invariance
    description: str  # written on every card exported from a run of this family
    # Named changes to geocli.train.TrainConfig, on top of the data set's; "cpu" is the default,
    # sized for a two-core machine, and every family has one.
    recipes: Mapping[str, Mapping[str, Any]]
    # Whether models/ must hold a classifier and a segmenter of it; ablations' families are not shipped.
    shipped: bool = True

    def build(self, hparams: Mapping[str, Any], num_classes: int, task: str) -> Network:
        """An untrained network (a copy of ``hparams`` is handed on: builders may consume it)."""
        return importlib.import_module(self.module).build(dict(hparams), num_classes, task)


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            name="frame_averaging",
            module="geocli.nets.frame_averaging",
            invariance="exact",
            description="Frame Averaging (Puny et al. 2022) over the PCA frames of the cloud "
            "(sign ambiguities averaged) around a static-graph edge-convolution backbone; exactly invariant to "
            "rotations, reflections, translation, scale and point order.",
            recipes={"cpu": {}},  # geocli.train.TrainConfig's defaults are this recipe
        ),
        Family(
            name="tinvnn",
            module="geocli.nets.tinvnn",
            invariance="exact",
            description="TinvNN (Zhang et al.): the cloud replaced by its modified-MDS coordinates "
            "(principal axes, signs fixed by odd moments, unit scale), one pass of the shared static-graph "
            "edge-convolution backbone; exactly invariant to rotations, reflections, translation, scale and "
            "point order. With hparams views='pooled' the backbone's trunk runs on six views of the MDS "
            "coordinates (each signed axis as up) and its features are max-pooled over them before the head.",
            recipes={
                "cpu": {"hparams": EDGE_TRUNK},
                "wide": WIDE_RECIPE,
                # The wide run behind view pooling (geocli.nets.pooled_up): six trunk passes a shape.
                "wide-pooled": {**WIDE_RECIPE, "hparams": {**WIDE_TRUNK, "views": "pooled"}},
            },
        ),
        Family(
            name="apen",
            module="geocli.nets.apen",
            invariance="exact",
            description="APEN (Atzmon et al., ICLR 2024) on its simple partition: the cloud cut into the "
            "Voronoi cells of farthest-point centres, every cell seen in its own PCA frame (signs fixed by TinvNN's "
            "rule) by the shared edge-convolution trunk on an in-cell kNN graph, then frame averaging over the "
            "cloud's frame on the cells' descriptors; exactly invariant to rotations, reflections, translation, "
            "scale and point order, approximately to independent motions of the parts.",
            recipes={"cpu": {"hparams": {"parts": 16, **EDGE_TRUNK}}},
        ),
        Family(
            name="parot",
            module="geocli.nets.parot",
            invariance="learned",
            description="PaRot (Zhang et al., AAAI 2023): multi-scale patches whose invariant descriptors and "
            "equivariant poses are disentangled by a siamese PointNet, with relative poses restoring the geometry "
            "between patches; invariant to translation, scale and point order exactly, to rotation as learned "
            "(see rotation_agreement).",
            recipes={
                "cpu": {
                    "hparams": {
                        "patches": 128,
                        "patch_size": 32,
                        "global_size": 32,
                        "patch_neighbors": 16,
                        "dim": 64,
                        "embedding": 512,
                    },
                    "points": 1024,
                    "lr": 1e-3,
                    "weight_decay": 1e-6,
                    "warmup_epochs": 0.5,
                },
                # The paper's own set-up, for a GPU.
                "published": {
                    "hparams": {},
                    "points": 1024,
                    "epochs": 250,
                    "batch_size": 32,
                    "lr": 1e-3,
                    "weight_decay": 1e-6,
                    "warmup_epochs": 0.0,
                    "label_smoothing": 0.2,
                },
            },
        ),
        Family(
            name="upright",
            module="geocli.nets.upright",
            invariance="none",
            description="Upright reference (not rotation invariant): the shared static-graph edge-convolution "
            "backbone on the centred, unit-scaled cloud in its own pose, trained with rotations about z; what the "
            "ceiling ablation measures the invariant front-ends' frames against. Never shipped.",
            recipes={"cpu": {"hparams": EDGE_TRUNK, "rotation": "z"}},
            shipped=False,
        ),
        Family(
            name="confident_up",
            module="geocli.nets.confident_up",
            invariance="exact",
            description="ConfidentUp: TinvNN's canonical frame seen with each of its six signed axes as up, the "
            "shared static-graph edge-convolution backbone on each, and the output of the view it is most "
            "confident on (adaptive canonicalisation, Lin and Levie 2025); training takes that view too, or with "
            "hparams choose='label' the view its true class is likeliest in, or with choose='learned' that view "
            "and a selector, trained to pick it, that picks at inference. Exactly invariant to rotations, "
            "reflections, translation, scale and point order. An ablation, not shipped.",
            recipes={"cpu": {"hparams": EDGE_TRUNK}},
            shipped=False,
        ),
    )
}
DEFAULT_FAMILY = "frame_averaging"  # what `geocli train` trains when no --family is given
INVARIANCE: dict[str, Invariance] = {name: family.invariance for name, family in FAMILIES.items()}


def list_families(invariance: Invariance | None = None, shipped: bool | None = None) -> list[str]:
    """Every family, or those whose invariance is ``invariance`` ("exact", "learned" or "none"), or those
    ``models/`` ships (``shipped=True``) or does not."""
    return sorted(
        name
        for name, family in FAMILIES.items()
        if invariance in (None, family.invariance) and shipped in (None, family.shipped)
    )


def get_family(name: str) -> Family:
    """The entry of ``name``; an unknown name is a ValueError that lists the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(list_families())}") from None


def create_model(
    family: str, num_classes: int, hparams: Mapping[str, Any] | None = None, task: str = "classify"
) -> Network:
    """Build a classifier or per-point segmenter of ``family`` from ``hparams``.

    Both tasks share the front-end and trunk (or PaRot's patch encoder); only the head
    differs, so a segmenter can start from a classifier's trunk.
    """
    spec = get_family(family)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return spec.build(hparams or {}, num_classes, task)
