"""ConfidentUp: six signed axes as up, the output of the view the network is surest of (docs/accuracy.md)."""

from __future__ import annotations

import torch

from geocli.nets.confident_up import ConfidentUp, up_views
from geocli.nets.registry import EDGE_TRUNK, create_model


def test_the_views_are_the_six_proper_frames_with_each_signed_axis_up() -> None:
    matrices = up_views()
    assert torch.allclose(torch.linalg.det(matrices), torch.ones(6))
    assert torch.equal(matrices @ matrices.transpose(1, 2), torch.eye(3).expand(6, 3, 3))
    ups = {tuple(row.tolist()) for row in matrices[:, 2, :]}
    assert len(ups) == 6 and all(sorted(map(abs, up)) == [0, 0, 1] for up in ups)


def test_the_output_is_that_of_the_most_confident_view(modelnet_test) -> None:
    net = create_model("confident_up", 40, dict(EDGE_TRUNK)).eval()
    points = torch.from_numpy(modelnet_test["points"][:3, :512])
    with torch.no_grad():
        canonical = net.frontend.canonical(points)
        per_view = net.view_outputs(net.frontend.views(canonical), net.neighbors(points))  # (3,6,40)
        chosen = per_view.softmax(-1).amax(-1).argmax(1)
        assert torch.equal(net(points), per_view[torch.arange(3), chosen])
        sure = net.confidence(net.neighbors(points), net.frontend.views(canonical))  # training's choice (autocast)
        assert sure.shape == (3, 6) and bool(((sure > 0) & (sure <= 1)).all()) and not net.training


def test_training_takes_the_view_the_score_prefers() -> None:
    frontend, canonical = ConfidentUp(), torch.randn(2, 16, 3)
    prefer = torch.tensor([[0.1, 0.2, 0.9, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.5]])
    view = frontend.training_view(canonical, lambda views: prefer, torch.Generator())
    assert torch.equal(view[0], canonical[0] @ up_views()[2].T) and torch.equal(view[1], canonical[1] @ up_views()[5].T)
