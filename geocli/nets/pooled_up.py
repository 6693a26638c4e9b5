"""PooledUp: the trunk's features on six views of TinvNN's canonical cloud, max-pooled over the views.

Why: the ceiling ablation (``docs/accuracy.md``) measured that the trunk given the pose learns
8.6 points more in five epochs than behind TinvNN's frame, because a class's shapes meet the
frame in several unrelated poses; and the view-choice runs showed that a network trained on the
view where it sees a shape's class best recognises 90 % of validation shapes in that view, yet
choosing the view at inference (by confidence or a learned scorer of class outputs) gets it right
for only three shapes in four. View pooling, as multi-view CNNs do for rendered views (Su et al.,
"Multi-view Convolutional Neural Networks for 3D Shape Recognition", ICCV 2015), leaves that
choice to the features: the trunk runs on each view and every feature keeps its largest value
over the views,

    g = max_v trunk(c P_v^T),    y = head(g),

so a feature that fires when a class is seen upright fires whichever of the six views shows it
upright, and training needs no choice, only gradients through the max. The views are those of
:func:`geocli.nets.up_views.up_views` (each signed canonical axis as up); each is a fixed
function of the invariant canonical cloud ``c`` (B,N,3) and the max is symmetric, so the model
stays exactly invariant. It costs six trunk passes a cloud, in training as at inference. A
segmenter pools its per-point features too (the views keep the points' order).

It is TinvNN's option ``views="pooled"`` (the family ``tinvnn``, recipe ``wide-pooled``): the
same parameters as the one-view network, so either's weights start the other.
"""

from __future__ import annotations

from torch import Tensor

from geocli.nets.up_views import UpViews


class PooledUp(UpViews):
    """Six views of TinvNN's canonical cloud, one per signed axis as up; the trunk's features max-pooled over them."""

    def training_views(self, view: Tensor) -> Tensor:
        return self.views(view)

    def pool(self, point_features: Tensor, global_features: Tensor) -> tuple[Tensor, Tensor]:
        return point_features.amax(dim=1, keepdim=True), global_features.amax(dim=1, keepdim=True)
