"""ConfidentUp: TinvNN's canonical frame turned so that the signed axis the network is surest of points up.

Why: the ceiling ablation (``docs/accuracy.md``) measured that the same trunk given the pose
(the upright reference) learns 8.6 points more in five epochs than behind TinvNN's frame,
and that the frame's fault is inconsistency within a class: the signed canonical axis that
points up is the same for only 57 % of a class's training shapes, as proportions decide the
axis order. A single rule on the data cannot make that consistent; the network can choose.
Adaptive canonicalisation (Lin and Levie, "Adaptive Canonicalization with Application to
Invariant Anisotropic Geometric Networks", 2025) picks, among an input's candidate standard
forms, the one the network is most confident on, in training as at inference.

Here the candidates are the six views of the canonical cloud ``c`` (B,N,3) in which one signed
canonical axis ``s e_k`` is the third coordinate (up) and the other two, in their order,
complete a proper frame: ``c @ P_v^T`` for six signed permutation matrices ``P_v`` of
determinant +1. Each view is a fixed function of ``c``, which is invariant, and the chosen
one depends only on the network's outputs on the six, so the model stays exactly invariant
(ties between two views' confidences go to the first). Inference costs six backbone passes a
cloud; training one more pass on the chosen view after six without gradients to choose it.

From random weights the confidence says nothing about pose, and the 5-epoch ablation trailed
the plain frame (``docs/accuracy.md``). With ``choose="label"`` training picks the view by the
true class's probability instead (the hindsight choice of multiple-choice learning: each
shape is trained in the pose where the network already recognises its class best), while
inference still takes the most confident view, as it has no label.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geocli.nets.invariant import ViewOutputs, edge_network, view_confidence
from geocli.nets.registry import Network
from geocli.nets.up_views import UpViews

CHOICES = ("confidence", "label", "learned")
SELECTOR_WIDTH = 64  # hidden units of the learned choice's scorer


class ConfidentUp(UpViews):
    """Six views of TinvNN's canonical cloud, one per signed axis as up; the output is the one of the view
    the network is most confident on (largest class probability, averaged over points for a segmenter),
    or, with ``choose="learned"``, the one its selector picks."""

    selector: nn.Module | None

    def __init__(self, choose: str = "confidence") -> None:
        """``choose``: how a cloud's view is picked. "confidence": the largest class probability, in
        training as at inference. "label": in training the true class's probability (the view in
        which the network already sees that class best, so that each class settles into one pose of
        its own), at inference the confidence. "learned": in training as "label", and a selector
        learns to pick that view from the six views' outputs, which it does at inference."""
        super().__init__()
        if choose not in CHOICES:
            raise ValueError(f"choose must be one of {', '.join(CHOICES)}, not {choose!r}")
        self.choose = choose
        self.selector = None
        self._selector_loss = torch.zeros(())

    def bind(self, num_classes: int) -> None:
        if self.choose == "learned":  # a view's score from its class log-probabilities
            hidden = SELECTOR_WIDTH
            self.selector = nn.Sequential(nn.Linear(num_classes, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def selector_scores(self, outputs: Tensor) -> Tensor:
        """(B,V) the selector's score for each view, from the network's outputs (B,V,C) or (B,V,N,C) on them."""
        assert self.selector is not None
        device = next(self.selector.parameters()).device  # training's per-view outputs come on the CPU
        features = outputs.to(device).float().log_softmax(dim=-1)
        features = features if features.ndim == 3 else features.mean(dim=2)  # a segmenter's: over the points
        return self.selector(features).squeeze(-1)

    def reduce(self, outputs: Tensor) -> Tensor:
        scores = self.selector_scores(outputs) if self.selector is not None else view_confidence(outputs)
        chosen = scores.argmax(dim=1)
        return outputs[torch.arange(len(outputs), device=outputs.device), chosen]

    def training_view(
        self, canonical: Tensor, outputs: ViewOutputs, generator: torch.Generator, labels: Tensor | None = None
    ) -> Tensor:
        views = self.views(canonical)
        per_view = outputs(views)
        by_label = self.choose != "confidence" and labels is not None
        chosen = view_confidence(per_view, labels if by_label else None).argmax(dim=1)
        if self.selector is not None:  # learns to pick what the label picked; the network's outputs stay detached
            self._selector_loss = F.cross_entropy(self.selector_scores(per_view), chosen)
        return views[torch.arange(len(views)), chosen]

    def auxiliary_loss(self) -> Tensor:
        loss, self._selector_loss = self._selector_loss, torch.zeros(())
        return loss


def build(hparams: dict[str, Any], num_classes: int, task: str) -> Network:
    """The registry's builder: the shared edge network behind this front-end (its one option: ``choose``)."""
    return edge_network(ConfidentUp, hparams, num_classes, task)
