"""The point backbone shared by every invariant front-end: a static-graph edge network.

Every tensor is channels-last, (batch, points, channels), so each layer is a plain
``Linear`` (one GEMM) instead of a 1x1 convolution over channels-first tensors.

The neighbourhood graph is built once on the input coordinates. Distances do not
change under rotation, reflection or sign flips, so one kNN graph serves every frame
of a cloud and can be cached with the data; only DGCNN's *dynamic* graph, rebuilt in
feature space at every layer, is given up, which costs little accuracy and most of
the run time on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor, nn

from geocli.ops import gather_max, gather_neighbors, max_mean_pool, norm_leaky_relu, norm_leaky_relu_max


class ChannelNorm(nn.BatchNorm1d):
    """BatchNorm over the last axis of a channels-last tensor of any rank."""

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class Layers(nn.Sequential):
    """``nn.Sequential`` whose ChannelNorm + LeakyReLU pairs run as one fused op.

    The modules, and so the state-dict keys of every checkpoint, are those of a plain
    Sequential; only the forward differs, handing each pair to
    :func:`geocli.ops.norm_leaky_relu` (a compiled kernel on the CPU, the two modules
    elsewhere).
    """

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self._run(list(self), x)

    def max_over_neighbors(self, x: Tensor) -> Tensor:
        """``self(x).max(dim=-2).values`` for (..., k, C) inputs, with a final norm and
        activation applied after the max (:func:`geocli.ops.norm_leaky_relu_max`)."""
        *body, norm, activation = list(self)
        if not (isinstance(norm, ChannelNorm) and isinstance(activation, nn.LeakyReLU)):
            return self(x).max(dim=-2).values
        return norm_leaky_relu_max(self._run(body, x), norm, activation.negative_slope)

    @staticmethod
    def _run(modules: list[nn.Module], x: Tensor) -> Tensor:
        i = 0
        while i < len(modules):
            module, following = modules[i], modules[i + 1] if i + 1 < len(modules) else None
            if isinstance(module, ChannelNorm) and isinstance(following, nn.LeakyReLU):
                x = norm_leaky_relu(x, module, following.negative_slope)
                i += 2
            else:
                x = module(x)
                i += 1
        return x


def norm_act(channels: int) -> Layers:
    return Layers(ChannelNorm(channels), nn.LeakyReLU(0.2))


def layers(*widths: int) -> Layers:
    """Linear (no bias: a norm follows), norm and activation for each consecutive pair of widths."""
    return Layers(*(m for a, b in pairwise(widths) for m in (nn.Linear(a, b, bias=False), *norm_act(b))))


class LocalGeometry(nn.Module):
    """First layer of the checkpoints trained before the fused kernels (``local="mlp"``).

    A two-layer MLP on (x_i, x_j - x_i) edges, max-pooled over the neighbours. The first
    linear map splits into a per-point and a per-neighbour part computed on N points, but
    the second runs on all N*k edges, and that (B,N,k,C) tensor, its norms and its max
    were the largest cost of a CPU training step. ``local="max"`` replaces it by one
    :class:`NeighborMax` on the coordinates, DGCNN's own first layer.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.centre = nn.Linear(3, width)
        self.neighbor = nn.Linear(3, width, bias=False)
        self.edge = nn.Sequential(norm_act(width), nn.Linear(width, width, bias=False), norm_act(width))

    def forward(self, xyz: Tensor, neighbors: Tensor) -> Tensor:  # noqa: D102
        # W_c x_i + W_n (x_j - x_i) == (W_c - W_n) x_i + W_n x_j
        centre = self.centre(xyz) - self.neighbor(xyz)
        edges = centre.unsqueeze(2) + gather_neighbors(self.neighbor(xyz), neighbors)
        return self.edge(edges).max(dim=2).values


class NeighborMax(nn.Module):
    """Edge convolution with one linear map: max_j(A h_j) + B h_i, then norm and activation.

    ``max_j (A h_j + B h_i) == max_j (A h_j) + B h_i``, so the layer costs one GEMM on
    N points and a fused gather-max (:func:`geocli.ops.gather_max`), not a GEMM on N*k
    edges. On coordinates (``in_channels=3``) it is DGCNN's first EdgeConv, with the norm
    after the max rather than on every edge.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.linear = nn.Linear(in_channels, 2 * out_channels)
        self.post = norm_act(out_channels)

    def forward(self, h: Tensor, neighbors: Tensor) -> Tensor:  # noqa: D102
        neighbor_part, self_part = self.linear(h).split(self.out_channels, dim=-1)
        return self.post(gather_max(neighbor_part, neighbors) + self_part)


LOCAL_LAYERS = ("mlp", "max")


@dataclass(frozen=True)
class TrunkConfig:
    """Hyper-parameters of :class:`EdgeTrunk`; stored on model cards."""

    k: int = 20
    widths: tuple[int, ...] = (64, 64, 128, 256)
    embedding: int = 512
    local: str = "mlp"  # first layer: "mlp" (LocalGeometry, cards written before it existed) or "max"

    def __post_init__(self) -> None:
        if self.local not in LOCAL_LAYERS:
            raise ValueError(f"unknown first layer {self.local!r}; expected one of {LOCAL_LAYERS}")

    @property
    def point_channels(self) -> int:
        return sum(self.widths)

    @property
    def global_channels(self) -> int:
        return 2 * self.embedding


class EdgeTrunk(nn.Module):
    """Per-point features (concatenated across layers) and a max+mean pooled global feature."""

    def __init__(self, config: TrunkConfig) -> None:
        super().__init__()
        self.config = config
        first, *rest = config.widths
        self.local = LocalGeometry(first) if config.local == "mlp" else NeighborMax(3, first)
        self.layers = nn.ModuleList(NeighborMax(a, b) for a, b in zip(config.widths, rest))
        self.embed = nn.Sequential(
            nn.Linear(config.point_channels, config.embedding, bias=False), norm_act(config.embedding)
        )

    def features(self, xyz: Tensor, neighbors: Tensor) -> tuple[Tensor, Tensor]:
        """Point features (B,N,Cp) and their embedding (B,N,E), before any pooling.

        In evaluation nothing here mixes points that are not linked in ``neighbors``, so
        on a graph cut into parts every part is processed on its own (APEN pools them
        itself); training's batch statistics are the only exception.
        """
        h = self.local(xyz, neighbors)
        features = [h]
        for layer in self.layers:
            h = layer(h, neighbors)
            features.append(h)
        point_features = torch.cat(features, dim=-1)
        return point_features, self.embed(point_features)

    def forward(self, xyz: Tensor, neighbors: Tensor) -> tuple[Tensor, Tensor]:
        """Return point features (B,N,Cp) and global features (B,Cg)."""
        point_features, embedded = self.features(xyz, neighbors)
        return point_features, torch.cat(max_mean_pool(embedded), dim=-1)


class ClassifierHead(nn.Module):
    """MLP from the global feature to class logits."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.mlp = Layers(
            nn.Linear(in_channels, 512, bias=False),
            norm_act(512),
            nn.Dropout(dropout),
            nn.Linear(512, 256, bias=False),
            norm_act(256),
            nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )

    def forward(self, point_features: Tensor, global_features: Tensor) -> Tensor:  # noqa: D102
        return self.mlp(global_features)


class SegmentationHead(nn.Module):
    """Per-point MLP on each point's features joined with the shape's global feature.

    The global part tells a point what shape it belongs to (a leg of a chair, not of a
    table); it is broadcast, not recomputed, so the head costs two GEMMs per point.
    """

    def __init__(self, point_channels: int, global_channels: int, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.point = nn.Linear(point_channels, 256, bias=False)
        self.shape = nn.Linear(global_channels, 256, bias=False)
        self.mlp = Layers(
            norm_act(256),
            nn.Dropout(dropout),
            nn.Linear(256, 128, bias=False),
            norm_act(128),
            nn.Linear(128, num_classes),
        )

    def forward(self, point_features: Tensor, global_features: Tensor) -> Tensor:  # noqa: D102
        return self.mlp(self.point(point_features) + self.shape(global_features).unsqueeze(1))
