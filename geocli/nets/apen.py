"""APEN (Atzmon, Huang, Williams, Litany, ICLR 2024): approximately piecewise-E(3)
equivariant point networks, on the paper's simple partition.

Articulated shapes move piecewise: fingers, legs, a lid each move rigidly and on their
own. A network that is invariant to independent motions of the parts of a *finer*
partition is also invariant to those of the true one, so APEN starts from a fine
partition that is almost surely finer than any true part: farthest-point centres and
their Voronoi cells (the paper's Q_simple). Every part is seen in a frame of its own
(its PCA axes, about its centroid), so what the backbone computes inside a part does
not change when that part alone moves; nothing crosses a part boundary until the
part's descriptor is invariant. Part descriptors then meet at a second level, where
frame averaging over the whole cloud's PCA frame makes the output exactly invariant
to rotations, reflections, translation, scale and point order.

Departures from the paper, which ships code for DFaust segmentation only:

* The paper coarsens the partition layer by layer: every point votes for its part's
  centre (an equivariant vector trained against labelled part centres), the votes are
  clustered by EM with a variance that grows with depth, and gradients pass through
  EM by implicit differentiation. Here the partition stays at Q_simple and the
  second level is global frame averaging over part tokens, so all preprocessing
  depends only on the cloud and is cached like the other families' frames.
* Each part's axis signs are fixed by TinvNN's rule (:func:`geocli.geometry.frames.axis_signs`)
  instead of averaged over the 8 sign views. Averaging is exact but must be trained
  as it is used: 8 backbone passes per part in every training step. Trained on one
  random view per step and averaged only at inference, the network met at inference
  descriptors it had never been trained on, and validation accuracy fell far below
  that of the single view it was trained on. One canonical view per part is the same
  in training and inference and costs one pass.
* The per-part backbone is the shared edge-convolution trunk on the kNN graph cut at
  part boundaries (the paper: a PointNet on 10 in-part neighbours).
* The partition is deterministic (nearest centre, not a Gumbel sample), and parts too
  small for a frame take the cloud's: exact global invariance, and the paper's
  approximate piecewise invariance (a cell straddling a moving boundary breaks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from geocli.geometry.frames import O3_SIGNS, axis_signs, centre_and_scale, principal_axes, random_sign_views
from geocli.nets.backbone import (
    ClassifierHead,
    EdgeTrunk,
    NeighborMax,
    SegmentationHead,
    TrunkConfig,
    layers,
)
from geocli.nets.registry import Network
from geocli.ops import farthest_point_sample, gather, knn, max_mean_pool

MIN_PART_POINTS = 4  # fewer points give no stable frame; such parts use the cloud's
FAR = 1e3  # where padding points of a part's search lie: never nearer than a real point
PART_GEOMETRY = 13  # per part: |global axes . part axes| (9), variances (3), share of the points (1)


@dataclass(frozen=True)
class APENConfig:
    """Hyper-parameters; trunk keys as in the other exactly invariant families."""

    parts: int = 16  # Voronoi cells of the simple partition
    k: int = 16
    widths: tuple[int, ...] = (32, 48, 96, 192)
    embedding: int = 384
    local: str = "mlp"  # the trunk's first layer (TrunkConfig.local)
    token_neighbors: int = 8  # neighbouring parts each part token sees
    token_width: int = 256
    dropout: float = 0.5

    @property
    def trunk(self) -> TrunkConfig:
        return TrunkConfig(self.k, tuple(self.widths), self.embedding, self.local)


def partition(points: Tensor, parts: int) -> Tensor:
    """(B,N) part of every point: the Voronoi cells of ``parts`` farthest-point centres.

    FPS starts from the point farthest from the centroid and ties go by distance, so a
    moved or reordered cloud is cut into the same cells.
    """
    centres = gather(points, farthest_point_sample(points, min(parts, points.shape[1])))
    return knn(centres, 1, queries=points).squeeze(-1)


def signed_axes(centred: Tensor, weights: Tensor | None = None) -> Tensor:
    """Principal axes (B,3,3) of centred clouds (or of the weighted part of each), signs fixed by TinvNN's rule."""
    axes, _ = principal_axes(centred, weights=weights)
    return axes * axis_signs(centred @ axes, weights).unsqueeze(-2)


def part_frames(points: Tensor, part: Tensor, parts: int) -> dict[str, Tensor]:
    """Centroid (B,K,3), signed axes as columns (B,K,3,3), variances (B,K,3) and share (B,K) of every part,
    in float64."""
    b, n, _ = points.shape
    members = nn.functional.one_hot(part, parts).transpose(1, 2).double()  # (B,K,N)
    counts = members.sum(-1)
    weights = members / counts.clamp_min(1).unsqueeze(-1)
    x = points.double()
    centroids = weights @ x
    centred = (x.unsqueeze(1) - centroids.unsqueeze(2)).reshape(b * parts, n, 3)
    flat_weights = weights.reshape(b * parts, n)
    axes = signed_axes(centred, flat_weights)
    variances = ((centred @ axes).square() * flat_weights.unsqueeze(-1)).sum(-2)
    return {
        "centroids": centroids,
        "axes": axes.view(b, parts, 3, 3),
        "variances": variances.view(b, parts, 3),
        "share": counts / n,
    }


def part_graph(points: Tensor, part: Tensor, parts: int, k: int) -> Tensor:
    """(B,N,k) each point's k nearest neighbours within its own part (itself where the part has fewer).

    Every part is searched as a cloud of its own, padded with far points, so distances
    keep the precision of the unit-scale cloud and a part's graph depends on nothing
    but its own points, wherever the other parts lie.
    """
    b, n, _ = points.shape
    rows = torch.arange(b, device=part.device).unsqueeze(1)
    order = torch.argsort(part * n + torch.arange(n, device=part.device), dim=1)  # grouped by part, then by index
    grouped = torch.gather(part, 1, order)
    counts = nn.functional.one_hot(part, parts).sum(1)  # (B,K)
    slot = torch.arange(n, device=part.device) - torch.gather(counts.cumsum(1) - counts, 1, grouped)
    members = torch.full((b, parts, int(counts.max())), -1, dtype=torch.long, device=part.device)
    members[rows, grouped, slot] = order
    # padding points far away and at distinct distances: no ties among them for the search to resolve slowly
    spread = FAR * (1 + torch.arange(members.shape[-1], device=part.device, dtype=points.dtype)).view(1, 1, -1, 1)
    padded = torch.where(members.unsqueeze(-1) >= 0, gather(points, members.clamp_min(0)), spread)
    found = knn(padded.flatten(0, 1), min(k, members.shape[-1])).view(b, parts, members.shape[-1], -1)
    within = torch.gather(members.unsqueeze(-1).expand_as(found), 2, found)[
        rows, grouped, slot
    ]  # (B,N,k') in grouped order
    neighbors = torch.empty_like(within).scatter_(1, order.unsqueeze(-1).expand_as(within), within)
    itself = torch.arange(n, device=part.device).view(1, n, 1)
    neighbors = torch.where(neighbors >= 0, neighbors, itself)
    return torch.cat([neighbors, itself.expand(b, n, k - neighbors.shape[-1])], dim=-1)


def part_pool(features: Tensor, part: Tensor, parts: int) -> Tensor:
    """(B,N,E) point features -> (B,K,2E): max and mean over the points of each part."""
    b, _, e = features.shape
    index = part.unsqueeze(-1).expand_as(features)
    maxed = features.new_zeros(b, parts, e).scatter_reduce(1, index, features, "amax", include_self=False)
    summed = features.new_zeros(b, parts, e).scatter_add(1, index, features)
    counts = torch.zeros(b, parts, dtype=features.dtype, device=features.device).scatter_add(
        1, part, torch.ones_like(part, dtype=features.dtype)
    )
    return torch.cat([maxed, summed / counts.clamp_min(1).unsqueeze(-1)], dim=-1)


def repeat_views(tensor: Tensor, views: int) -> Tensor:
    """(B,...) -> (B*views,...), each row repeated for every view of its cloud."""
    return tensor.repeat_interleave(views, dim=0)


class APEN(nn.Module):
    """APEN classifier or part segmenter on raw clouds; training feeds it :meth:`prepare`'s output."""

    num_views = 1  # backbone passes per cloud: one canonical view of every part, all parts at once
    signs: Tensor  # (8, 3): the cloud frame's sign views (a buffer, so it moves with the module)

    def __init__(self, config: APENConfig, num_classes: int, task: str = "classify") -> None:
        super().__init__()
        self.config = config
        self.task = task
        self.register_buffer("signs", O3_SIGNS.clone(), persistent=False)
        self.trunk = EdgeTrunk(config.trunk)
        width = config.token_width
        self.tokens = layers(3 + 2 * config.embedding + PART_GEOMETRY, width)
        self.token_graph = NeighborMax(width, width)
        if task == "classify":
            self.head: nn.Module = ClassifierHead(2 * width, num_classes, dropout=config.dropout)
        else:
            self.head = SegmentationHead(
                config.trunk.point_channels + width + 3, 2 * width, num_classes, dropout=config.dropout
            )

    def prepare(self, points: Tensor) -> dict[str, Tensor]:
        """Everything that depends only on the cloud: the partition, part frames, graphs and tokens."""
        x = centre_and_scale(points if points.dtype == torch.float64 else points.float())
        return self.prepare_parts(x, partition(x, self.config.parts))

    def prepare_parts(self, points: Tensor, part: Tensor) -> dict[str, Tensor]:
        """:meth:`prepare` for a normalised cloud and a given partition (the tests move parts under it)."""
        c = self.config
        n = points.shape[1]
        parts = min(c.parts, n)
        frames = part_frames(points, part, parts)
        x = points.double()
        global_axes = signed_axes(x)
        small = frames["share"] * n < MIN_PART_POINTS
        axes = torch.where(small[..., None, None], global_axes.unsqueeze(1), frames["axes"])
        local = ((x - gather(frames["centroids"], part)).unsqueeze(-2) @ gather(axes, part)).squeeze(-2)
        neighbors = part_graph(points, part, parts, min(c.k, n))
        relative = (global_axes.transpose(-1, -2).unsqueeze(1) @ axes).abs().flatten(-2)
        prepared = {
            "local": local.float(),
            "neighbors": neighbors,
            "part": part,
            "tokens": (frames["centroids"] @ global_axes).float(),
            "geometry": torch.cat([relative, frames["variances"], frames["share"].unsqueeze(-1)], dim=-1).float(),
            "token_neighbors": knn(frames["centroids"].float(), min(c.token_neighbors, parts)),
        }
        if self.task == "segment":
            prepared["canonical"] = (x @ global_axes).float()
        return prepared

    def forward(self, points: Tensor) -> Tensor:
        """(B,N,3) raw clouds -> (B,C) logits or (B,N,C) per-point logits."""
        return self.forward_prepared(self.prepare(points))

    def parts_forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Per-point features (B,N,Cp) and part descriptors (B,K,2E); nothing crosses a part boundary."""
        point_features, embedded = self.trunk.features(batch["local"], batch["neighbors"].long())
        return point_features, part_pool(embedded, batch["part"].long(), batch["tokens"].shape[1])

    def forward_prepared(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits for a batch from :meth:`prepare`; the part tokens are frame-averaged over the cloud's frame."""
        point_features, descriptors = self.parts_forward(batch)
        tokens = batch["tokens"]
        signs = self.signs[:1] if self.training else self.signs  # training: augment drew the sign
        g, (b, parts, _) = len(signs), tokens.shape
        placed = tokens.unsqueeze(1) * signs[None, :, None, :].to(tokens.dtype)  # (B,G,K,3)
        context = torch.cat([descriptors, batch["geometry"]], dim=-1).unsqueeze(1).expand(b, g, parts, -1)
        h = self.tokens(torch.cat([placed, context], dim=-1).flatten(0, 1))
        h = self.token_graph(h, repeat_views(batch["token_neighbors"].long(), g))  # (B*G,K,C)
        shape = torch.cat(max_mean_pool(h), dim=-1)
        if self.task == "classify":
            return self.head(None, shape).view(b, g, -1).mean(1)
        part = repeat_views(batch["part"].long(), g)
        canonical = (batch["canonical"].unsqueeze(1) * signs[None, :, None, :].to(tokens.dtype)).flatten(0, 1)
        points = torch.cat([repeat_views(point_features, g), gather(h, part), canonical], dim=-1)
        logits = self.head(points, shape)
        return logits.view(b, g, *logits.shape[1:]).mean(1)

    def augment(
        self,
        batch: dict[str, Tensor],
        scale: Tensor,
        noise: Tensor,
        rotations: Tensor,
        generator: torch.Generator,
        labels: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Parts scaled along their axes and jittered; a random sign view of the cloud's frame for the tokens.

        The cloud's sign views are what inference averages over; ``rotations`` are
        ignored, since every frame would undo them.
        """
        signs = self.signs.cpu()
        cloud_signs = random_sign_views(signs, len(scale), generator).unsqueeze(1) * scale
        out = {**batch, "local": batch["local"] * scale + noise, "tokens": batch["tokens"] * cloud_signs}
        if "canonical" in batch:
            out["canonical"] = batch["canonical"] * cloud_signs + noise
        return out

    def auxiliary_loss(self) -> Tensor:
        """Invariant by construction: the task loss alone trains it."""
        return torch.zeros(())

    def cache_key(self) -> list[Any]:
        return ["APEN", "signed parts", self.task, self.config.parts, self.config.k, self.config.token_neighbors]


def build(hparams: dict[str, Any], num_classes: int, task: str) -> Network:
    """The registry's builder: every hyper-parameter is an :class:`APENConfig` field."""
    return APEN(APENConfig(**hparams), num_classes, task)
