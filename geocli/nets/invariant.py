"""An invariant front-end in front of the shared backbone: the one network class every family uses.

A front-end turns a raw cloud into one or more canonical *views* (the same points in
frames that move with the cloud). The backbone runs on every view and the outputs are
averaged. Frame Averaging yields several views per cloud, single-frame
canonicalisers (TinvNN) yield one; both share this class, so no family copies
the network code.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from geocli.geometry.frames import random_sign_views
from geocli.nets.backbone import ClassifierHead, EdgeTrunk, SegmentationHead, TrunkConfig
from geocli.ops import knn
from geocli.precision import autocast

TRUNK_KEYS = ("k", "widths", "embedding", "local")  # the shared trunk's hyper-parameters
ViewOutputs = Callable[[Tensor], Tensor]  # views (B,V,N,3) -> the network's evaluation-mode outputs (B,V,...) on each


def view_confidence(outputs: Tensor, labels: Tensor | None = None) -> Tensor:
    """(B,V) confidence of the network's outputs (B,V,C) or (B,V,N,C) on each view: its largest class
    probability, or with ``labels`` ((B,) or (B,N)) the true class's, averaged over the points for a
    segmenter."""
    probabilities = outputs.float().softmax(dim=-1)
    if labels is None:
        sure = probabilities.amax(dim=-1)
    else:
        index = labels.to(outputs.device).long().unsqueeze(1).expand(probabilities.shape[:-1])  # (B,V) or (B,V,N)
        sure = probabilities.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    return sure if sure.ndim == 2 else sure.mean(dim=-1)


class Frontend(nn.Module):
    """Maps raw clouds to canonical views; subclasses define :meth:`canonical`, and ``signs`` when they
    have more than the one view each cloud gets by default.

    The views of a canonical cloud are its sign views (one row of ``signs`` each) and the network's
    output is their average; a front-end that chooses among its views instead overrides
    :meth:`views`, :meth:`reduce` and :meth:`training_view` (:class:`geocli.nets.confident_up.ConfidentUp`),
    one that pools the trunk's features over its views before the head overrides :meth:`pool` and
    :meth:`training_views` (:class:`geocli.nets.pooled_up.PooledUp`).
    """

    signs: Tensor  # (F, 3): one row of axis signs per view

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("signs", torch.ones(1, 3), persistent=False)

    def canonical(self, points: Tensor) -> Tensor:
        """(B,N,3) raw points -> (B,N,3) canonical coordinates of the first view."""
        raise NotImplementedError

    @property
    def num_views(self) -> int:
        return self.signs.shape[0]

    def views(self, canonical: Tensor) -> Tensor:
        """(B,V,N,3): every view of (B,N,3) canonical clouds."""
        return canonical.unsqueeze(1) * self.signs.to(canonical.dtype)[None, :, None, :]

    def reduce(self, outputs: Tensor) -> Tensor:
        """The network's output from its outputs (B,V,...) on every view: their average."""
        return outputs.mean(dim=1)

    def pool(self, point_features: Tensor, global_features: Tensor) -> tuple[Tensor, Tensor]:
        """The trunk's features on every view, (B,V,N,P) per point and (B,V,G) per cloud, as the head sees
        them: here unchanged, one head output per view; a pooling front-end merges the views."""
        return point_features, global_features

    def training_views(self, view: Tensor) -> Tensor:
        """(B,V,N,3): what training runs the network on, from the (augmented) training view (B,N,3): that
        view alone, unless the front-end pools over views."""
        return view.unsqueeze(1)

    def bind(self, num_classes: int) -> None:
        """Size what the front-end learns for a network of ``num_classes`` outputs (a choosing front-end's
        selector); this one learns nothing."""

    def training_view(
        self, canonical: Tensor, outputs: ViewOutputs, generator: torch.Generator, labels: Tensor | None = None
    ) -> Tensor:
        """(B,N,3): the view each (B,N,3) canonical cloud is trained on: one drawn at random.

        ``outputs`` maps views (B,V,N,3) to the network's outputs on each, and ``labels`` are the
        batch's targets, for front-ends that choose; this one needs neither.
        """
        view = random_sign_views(self.signs.cpu(), len(canonical), generator)
        return canonical * view[:, None, :]

    def auxiliary_loss(self) -> Tensor:
        """The loss of what the front-end learns beside the network, since its last training view (none here)."""
        return torch.zeros(())


class InvariantNet(nn.Module):
    """Front-end, backbone trunk and head; outputs averaged over the front-end's views."""

    def __init__(self, frontend: Frontend, trunk: EdgeTrunk, head: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.trunk = trunk
        self.head = head

    @property
    def num_views(self) -> int:
        """Network passes per cloud."""
        return self.frontend.num_views

    def neighbors(self, points: Tensor) -> Tensor:
        """kNN graph of the cloud; rotation-invariant, so one graph serves all views."""
        return knn(points, self.trunk.config.k)

    def forward(self, points: Tensor, neighbors: Tensor | None = None) -> Tensor:
        """Invariant output for raw clouds (B,N,3): (B,C) logits or (B,N,C) per-point logits."""
        if neighbors is None:
            neighbors = self.neighbors(points)
        return self.average_views(self.frontend.canonical(points), neighbors)

    def average_views(self, canonical: Tensor, neighbors: Tensor) -> Tensor:
        """Backbone output over every view of precomputed canonical clouds, reduced by the front-end
        (averaged, for every front-end but one that chooses).

        Split from :meth:`forward` so that training and validation can cache the
        canonical coordinates and graphs, which never change for a given cloud.
        """
        return self.frontend.reduce(self.view_outputs(self.frontend.views(canonical), neighbors))

    def view_outputs(self, views: Tensor, neighbors: Tensor) -> Tensor:
        """Head output (B,V',...) on views (B,V,N,3) of clouds whose graphs are (B,N,k): one per view
        (V' = V), or one for all when the front-end pools the trunk's features over views (V' = 1)."""
        b, f, n, _ = views.shape
        repeated = neighbors.unsqueeze(1).expand(b, f, *neighbors.shape[1:]).reshape(b * f, *neighbors.shape[1:])
        point, pooled = self.trunk(views.reshape(b * f, n, 3), repeated)
        point, pooled = self.frontend.pool(point.reshape(b, f, *point.shape[1:]), pooled.reshape(b, f, -1))
        out = self.head(point.flatten(0, 1), pooled.flatten(0, 1))
        return out.reshape(b, -1, *out.shape[1:])

    # The training interface every family implements (see geocli.train).

    def prepare(self, points: Tensor) -> dict[str, Tensor]:
        """What training caches per shape: the canonical cloud and its kNN graph."""
        return {"canonical": self.frontend.canonical(points).float(), "neighbors": self.neighbors(points)}

    def forward_prepared(self, batch: dict[str, Tensor]) -> Tensor:
        """Training: the (augmented) view given (or its views, for a pooling front-end); evaluation: the
        front-end's reduction over every view."""
        neighbors = batch["neighbors"].long()
        if self.training:  # one output per cloud: its one training view, or its views pooled
            return self.view_outputs(self.frontend.training_views(batch["canonical"]), neighbors)[:, 0]
        return self.average_views(batch["canonical"], neighbors)

    def augment(
        self,
        batch: dict[str, Tensor],
        scale: Tensor,
        noise: Tensor,
        rotations: Tensor,
        generator: torch.Generator,
        labels: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The training view of each canonical cloud (:meth:`Frontend.training_view`), scaled along its
        axes, turned by ``rotations``, jittered. A front-end that chooses its view gets the network's
        outputs on its views, and ``labels``.

        Scaling along the canonical axes keeps them the principal axes, so the result is
        still a valid canonical view of a plausible shape. ``rotations`` act in the
        canonical frame (:func:`geocli.geometry.rotations.frame_jitter`): they show the
        network the frames that noise and near-equal variances give at inference.
        """
        outputs = partial(self.evaluation_outputs, batch["neighbors"])
        view = self.frontend.training_view(batch["canonical"], outputs, generator, labels)
        turned = (view * scale) @ rotations.transpose(-1, -2)
        return {**batch, "canonical": turned + noise}

    @torch.no_grad()
    def evaluation_outputs(self, neighbors: Tensor, views: Tensor) -> Tensor:
        """(B,V,...) float32 outputs of the network in evaluation mode on views (B,V,N,3), on the CPU:
        what a choosing front-end chooses its training view by."""
        device, was_training = next(self.parameters()).device, self.training
        self.eval()
        try:
            with autocast(device):
                outputs = self.view_outputs(views.to(device), neighbors.long().to(device)).float()
        finally:
            self.train(was_training)
        return outputs.cpu()

    def auxiliary_loss(self) -> Tensor:
        """Exactly invariant families train on the task loss alone, and a front-end's own loss if it learns."""
        return self.frontend.auxiliary_loss()

    def cache_key(self) -> list[Any]:
        # The class whose canonical() computes the cached clouds: front-ends that only change the views
        # made of them (ConfidentUp, PooledUp) share their parent's cache.
        computes = type(self.frontend).canonical.__qualname__.split(".")[0]
        return [computes, vars(self.frontend).get("group"), self.trunk.config.k]


def edge_network(
    frontend: Callable[..., Frontend], hparams: dict[str, Any], num_classes: int, task: str
) -> InvariantNet:
    """A front-end family's network: ``hparams`` split between the trunk (:data:`TRUNK_KEYS`), the
    head (``dropout``) and the front-end (the rest, e.g. Frame Averaging's ``group``).

    The families that differ only in their front-end build through here, so a card's ``hparams``
    mean the same trunk in all of them. ``hparams`` is consumed. Trunk and head are made first,
    as they always were: the random initial weights of a seeded run depend on that order.
    """
    trunk_args = {key: hparams.pop(key) for key in TRUNK_KEYS if key in hparams}
    if "widths" in trunk_args:
        trunk_args["widths"] = tuple(trunk_args["widths"])
    dropout = hparams.pop("dropout", 0.5)
    trunk = EdgeTrunk(TrunkConfig(**trunk_args))
    if task == "classify":
        head: nn.Module = ClassifierHead(trunk.config.global_channels, num_classes, dropout=dropout)
    else:
        head = SegmentationHead(trunk.config.point_channels, trunk.config.global_channels, num_classes, dropout=dropout)
    front = frontend(**hparams)
    front.bind(num_classes)
    return InvariantNet(front, trunk, head)
