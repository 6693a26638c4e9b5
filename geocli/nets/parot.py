"""PaRot (Zhang, Yu, Zhang, Cai, AAAI 2023): patch-wise rotation invariance by feature
disentanglement and pose restoration.

A cloud is cut into local patches (farthest-point centres, kNN neighbourhoods) and, for
every centre, a global patch (the cloud's first FPS points seen from that centre). A
small PointNet per patch *disentangles* two things: an invariant descriptor and two
equivariant direction vectors, the patch's pose. Neither is exact by construction; the
siamese procedure learns them: during training every patch is shown under two random
rotations, the descriptor that goes on is the one of a randomly rotated patch (so it
must not depend on pose), and the directions, rotated back, must agree (so they must
follow the pose). Poses then restore the geometry that patch-wise invariance throws
away, but only as *relative* quantities that no rotation of the input changes: the
rotation between neighbouring patches' frames, between a patch's local and global
frames, and the direction of a neighbour, of the origin or of a point, read in a frame.

Layout follows the authors' code (dingxin-zhang/PaRot): one scale of local patches
aggregated over neighbouring patches (intra-scale), fused with the global patches
through their relative pose (inter-scale); a max-pooled embedding for classification,
or pose-aware propagation from patch centres back to every point for segmentation.
Three departures: each frame is made orthonormal by Gram-Schmidt (the authors leave the
two directions merely encouraged to be orthogonal); the global patch is the first
``global_size`` of the same FPS centres (FPS is greedy, so that *is* the FPS subset of
that size) instead of a second random-start FPS; and inference, like training, shows
each patch to the disentangler under a rotation (fixed and seeded) and rotates its
directions back, instead of showing it as it lies: the two agree for a fully trained
network, and only the former matches what a partly trained one learned from. All
sampling is deterministic and depends only on distances, so a rotated cloud is cut
into the very same patches and any change in the output comes from the learned parts
alone.

Everything is channels-last ``Linear`` layers, and neighbourhoods go through
:mod:`geocli.ops` (torch-cluster or the pure-torch fallback), so the network runs on
CPU, on CUDA and without torch-cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geocli.geometry.frames import centre_and_scale
from geocli.geometry.rotations import random_so3
from geocli.nets.backbone import ClassifierHead, Layers, layers, norm_act
from geocli.nets.registry import Network
from geocli.ops import farthest_point_sample, gather, gather_neighbors, knn

# Weights of the siamese losses, from the authors' defaults (the descriptor loss is off there too).
DIRECTION_WEIGHT = {"local": 1.0, "global": 1.0}
ORTHOGONALITY_WEIGHT = {"local": 0.2, "global": 0.1}
EVALUATION_SEED = {"local": 0, "global": 1}  # fixed patch rotations at inference (see Disentangle.siamese)
POSE_CHANNELS = 16  # distance to the origin (1), local-to-global rotation (9), origin direction in both frames (3 + 3)


@dataclass(frozen=True)
class PaRotConfig:
    """Hyper-parameters; the defaults are the published ones (ModelNet40, 1,024 points)."""

    patches: int = 256  # local patch centres (FPS)
    patch_size: int = 64  # points of a local patch (kNN of its centre)
    global_size: int = 32  # points of every global patch
    patch_neighbors: int = 32  # neighbouring patches pooled by the intra-scale layer
    dim: int = 128  # width of a patch descriptor
    embedding: int = 1024  # width of the shape embedding
    propagate: int = 3  # patch centres each point draws from (segmenter)
    dropout: float = 0.5


def frame(directions: Tensor) -> Tensor:
    """(...,2,3) direction pairs -> (...,3,3) orthonormal frames, one axis per row.

    Gram-Schmidt commutes with rotations, so equivariant directions give frames F with
    F(R x) = F(x) R^T; every product below is built to cancel that R.
    """
    x = F.normalize(directions[..., 0, :], dim=-1)
    y = F.normalize(directions[..., 1, :] - (directions[..., 1, :] * x).sum(-1, keepdim=True) * x, dim=-1)
    return torch.stack([x, y, torch.linalg.cross(x, y)], dim=-2)


def in_frame(frames: Tensor, vectors: Tensor) -> Tensor:
    """Coordinates of (...,3) vectors in (...,3,3) frames: invariant when both rotate together."""
    return (frames @ vectors.unsqueeze(-1)).squeeze(-1)


class Disentangle(nn.Module):
    """PointNet over a patch -> an invariant descriptor and two equivariant unit directions."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.encoder = layers(3, 64, dim, dim)
        self.invariant = layers(dim, dim, dim)
        self.directions = nn.ModuleList(
            nn.Sequential(layers(dim, 64, 32), nn.Linear(32, 3, bias=False)) for _ in range(2)
        )

    def forward(self, patches: Tensor) -> tuple[Tensor, Tensor]:
        """(...,k,3) centred patches -> descriptors (...,dim) and directions (...,2,3)."""
        pooled = self.encoder.max_over_neighbors(patches)
        directions = torch.stack([F.normalize(head(pooled), dim=-1) for head in self.directions], dim=-2)
        return self.invariant(pooled), directions

    def siamese(self, patches: Tensor, scale: str) -> tuple[Tensor, Tensor, Tensor]:
        """Descriptors, directions in the input's pose, and the siamese loss (zero in evaluation).

        In training every patch is seen under two random rotations, through one batched
        call; the descriptor of the first copy is used downstream, its directions rotated
        back to the input. Evaluation sees every patch under one rotation too, fixed per
        patch slot (seeded), so that it meets the distribution training produced: until
        the directions are fully equivariant, unrotated patches give frames that training
        never showed (the shipped segmenter's eval figures were 69.1 % point accuracy and
        66.0 % agreement without this rotation, 73.0 % and 81.7 % with it).
        """
        if self.training:
            shape = patches.shape[:-2]
            rotations = random_so3(2 * shape.numel()).to(patches).view(2, *shape, 3, 3)
        else:
            slots = patches.shape[-3]  # patches (B,S,k,3): the same rotation for slot s of every cloud
            rotations = (
                random_so3(slots, torch.Generator().manual_seed(EVALUATION_SEED[scale]))
                .to(patches)
                .view(1, 1, slots, 3, 3)
            )
        rotated = patches.unsqueeze(0) @ rotations.transpose(-1, -2)  # row vectors: p R^T is R p
        descriptor, directions = self(rotated)
        restored = directions @ rotations  # R^T d, row-vector form
        if not self.training:
            return descriptor[0], restored[0], patches.new_zeros(())
        loss = DIRECTION_WEIGHT[scale] * F.mse_loss(restored[0], restored[1])
        loss = (
            loss
            + ORTHOGONALITY_WEIGHT[scale]
            * (directions[0, ..., 0, :] * directions[0, ..., 1, :]).sum(-1).square().mean()
        )
        return descriptor[0], restored[0], loss


class IntraScale(nn.Module):
    """Pools each patch's neighbouring patches with their restored relative pose.

    Edge input: the neighbour's descriptor, its difference to the centre's, and the
    relative pose (rotation between the two frames, the direction between the centres
    read in both frames, their distance). The first linear map of the two descriptor
    terms is split into a per-neighbour and a per-centre part computed on patches
    before the gather, as in the backbone's edge layers.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.pose = layers(POSE_CHANNELS, 32)
        self.descriptor = nn.Linear(dim, 2 * dim, bias=False)
        self.combine = nn.Linear(32, dim, bias=False)
        self.mlp = Layers(*norm_act(dim), *layers(dim, dim, dim))

    def forward(self, descriptors: Tensor, frames: Tensor, centres: Tensor, graph: Tensor) -> Tensor:
        """(B,S,dim) descriptors, (B,S,3,3) frames, (B,S,3) centres, (B,S,k) graph -> (B,S,dim)."""
        neighbour_frames = gather(frames, graph)  # (B,S,k,3,3)
        offset = gather(centres, graph) - centres.unsqueeze(2)
        direction = F.normalize(offset, dim=-1)
        pose = torch.cat(
            [
                (neighbour_frames @ frames.unsqueeze(2).transpose(-1, -2)).flatten(-2),
                in_frame(frames.unsqueeze(2), direction),
                in_frame(neighbour_frames, direction),
                offset.norm(dim=-1, keepdim=True),
            ],
            dim=-1,
        )
        # W [g_j, g_j - g_i] == (W1 + W2) g_j - W2 g_i: one GEMM on patches, a gather for edges
        neighbour_part, centre_part = self.descriptor(descriptors).split(self.dim, dim=-1)
        edges = gather_neighbors(neighbour_part, graph) - centre_part.unsqueeze(2) + self.combine(self.pose(pose))
        return self.mlp.max_over_neighbors(edges)


class PatchEncoder(nn.Module):
    """Local and global patch descriptors, intra-scale pooling, and each patch's invariant pose."""

    def __init__(self, config: PaRotConfig) -> None:
        super().__init__()
        self.config = config
        self.local = Disentangle(config.dim)
        self.global_ = Disentangle(config.dim)
        self.intra = IntraScale(config.dim)

    def forward(self, points: Tensor, centres: Tensor, patches: Tensor, graph: Tensor) -> dict[str, Tensor]:
        """Patch features (B,S,2*dim), poses (B,S,16), frames, centre coordinates and the siamese loss."""
        xyz = gather(points, centres)  # (B,S,3)
        local = gather(points, patches) - xyz.unsqueeze(2)
        global_points = xyz[:, : self.config.global_size]  # FPS is greedy: its prefix is the smaller FPS set
        wide = global_points.unsqueeze(1) - xyz.unsqueeze(2)  # (B,S,G,3)
        local_descriptor, local_directions, local_loss = self.local.siamese(local, "local")
        global_descriptor, global_directions, global_loss = self.global_.siamese(wide, "global")
        local_frames, global_frames = frame(local_directions), frame(global_directions)
        origin = F.normalize(xyz, dim=-1)
        pose = torch.cat(
            [
                xyz.norm(dim=-1, keepdim=True),
                (local_frames @ global_frames.transpose(-1, -2)).flatten(-2),
                in_frame(local_frames, origin),
                in_frame(global_frames, origin),
            ],
            dim=-1,
        )
        features = torch.cat([self.intra(local_descriptor, local_frames, xyz, graph), global_descriptor], dim=-1)
        return {
            "features": features,
            "pose": pose,
            "local_frames": local_frames,
            "global_frames": global_frames,
            "centres": xyz,
            "loss": local_loss + global_loss,
        }


class PoseEmbedding(nn.Module):
    """Patch features joined with their embedded pose (and, optionally, the shape's embedding), then an MLP.

    This is the inter-scale step: local and global descriptors meet through the
    relative pose of their frames. The shape embedding, broadcast to every patch, is
    added by its own linear map instead of being concatenated N times.
    """

    def __init__(self, dim: int, widths: tuple[int, ...], shape_channels: int = 0) -> None:
        super().__init__()
        self.pose = layers(POSE_CHANNELS, 32)
        self.first = nn.Linear(2 * dim + 32, widths[0], bias=False)
        self.shape = nn.Linear(shape_channels, widths[0], bias=False) if shape_channels else None
        self.mlp = Layers(*norm_act(widths[0]), *layers(*widths))

    def forward(self, features: Tensor, pose: Tensor, shape: Tensor | None = None) -> Tensor:  # noqa: D102
        h = self.first(torch.cat([features, self.pose(pose)], dim=-1))
        if self.shape is not None:
            h = h + self.shape(shape).unsqueeze(1)
        return self.mlp(h)


class Propagation(nn.Module):
    """Pose-aware feature propagation: each point sums what its nearest patch centres send it.

    A centre's message depends on its features and on where the point lies in that
    patch's local and global frames (and how far), so the point's position is restored
    without ever using its raw coordinates.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.position = layers(7, 32)
        self.feature = nn.Linear(in_channels, widths[0], bias=False)
        self.combine = nn.Linear(32, widths[0], bias=False)
        self.mlp = Layers(*norm_act(widths[0]), *layers(*widths))

    def forward(self, points: Tensor, nearest: Tensor, encoded: dict[str, Tensor], features: Tensor) -> Tensor:
        """(B,N,3) points, (B,N,p) nearest centres, centre features (B,S,C) -> (B,N,widths[-1])."""
        offset = points.unsqueeze(2) - gather(encoded["centres"], nearest)
        direction = F.normalize(offset, dim=-1)
        position = torch.cat(
            [
                offset.norm(dim=-1, keepdim=True),
                in_frame(gather(encoded["local_frames"], nearest), direction),
                in_frame(gather(encoded["global_frames"], nearest), direction),
            ],
            dim=-1,
        )
        messages = gather_neighbors(self.feature(features), nearest) + self.combine(self.position(position))
        return self.mlp(messages).sum(dim=2)


class PaRot(nn.Module):
    """PaRot classifier or part segmenter on raw clouds; the training code feeds it :meth:`prepare`'s output."""

    num_views = 1  # network passes per cloud

    def __init__(self, config: PaRotConfig, num_classes: int, task: str = "classify") -> None:
        super().__init__()
        self.config = config
        self.task = task
        self.encoder = PatchEncoder(config)
        self.inter = PoseEmbedding(config.dim, (256, 512, config.embedding))
        if task == "classify":
            self.head: nn.Module = ClassifierHead(config.embedding, num_classes, dropout=config.dropout)
        else:
            self.root = PoseEmbedding(config.dim, (256, 256), shape_channels=config.embedding)
            self.propagation = Propagation(256, (256, 128, 128))
            self.head = Layers(
                *layers(128, 128), nn.Dropout(config.dropout), *layers(128, 128), nn.Linear(128, num_classes)
            )
        self._auxiliary = torch.zeros(())

    def prepare(self, points: Tensor) -> dict[str, Tensor]:
        """Everything about a cloud that does not depend on its pose: normalised points and patch indices.

        Computed once per shape and cached by the training code; rotating the returned
        points keeps the indices valid.
        """
        c = self.config
        points = centre_and_scale(points if points.dtype == torch.float64 else points.float())
        n = points.shape[1]
        centres = farthest_point_sample(points, min(c.patches, n))
        xyz = gather(points, centres)
        prepared = {
            "points": points,
            "centres": centres,
            "patches": knn(points, min(c.patch_size, n), queries=xyz),
            "graph": knn(xyz, min(c.patch_neighbors, xyz.shape[1])),
        }
        if self.task == "segment":
            prepared["nearest"] = knn(xyz, min(c.propagate, xyz.shape[1]), queries=points)
        return prepared

    def forward(self, points: Tensor) -> Tensor:
        """(B,N,3) raw clouds -> (B,C) logits or (B,N,C) per-point logits."""
        return self.forward_prepared(self.prepare(points))

    def forward_prepared(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits for a batch from :meth:`prepare` (indices in any integer type)."""
        points = batch["points"]
        encoded = self.encoder(points, batch["centres"].long(), batch["patches"].long(), batch["graph"].long())
        self._auxiliary = encoded["loss"]
        patch = self.inter(encoded["features"], encoded["pose"])
        shape = patch.max(dim=1).values
        if self.task == "classify":
            return self.head(patch, shape)
        root = self.root(encoded["features"], encoded["pose"], shape)
        return self.head(self.propagation(points, batch["nearest"].long(), encoded, root))

    def auxiliary_loss(self) -> Tensor:
        """The siamese (direction and orthogonality) loss of the last training forward."""
        return self._auxiliary

    def augment(
        self,
        batch: dict[str, Tensor],
        scale: Tensor,
        noise: Tensor,
        rotations: Tensor,
        generator: torch.Generator,
        labels: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Each cloud scaled, jittered and rotated; the cached indices stay valid."""
        return {**batch, "points": (batch["points"] * scale + noise) @ rotations.transpose(-1, -2)}

    def cache_key(self) -> list[Any]:
        return [
            "PaRot",
            self.task,
            self.config.patches,
            self.config.patch_size,
            self.config.patch_neighbors,
            self.config.propagate,
        ]


def build(hparams: dict[str, Any], num_classes: int, task: str) -> Network:
    """The registry's builder: every hyper-parameter is a :class:`PaRotConfig` field."""
    return PaRot(PaRotConfig(**hparams), num_classes, task)
