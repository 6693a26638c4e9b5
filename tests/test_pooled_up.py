"""PooledUp: the trunk's features max-pooled over six signed-axis-up views of the canonical cloud (docs/accuracy.md)."""

from __future__ import annotations

import pytest
import torch

from geocli.nets.pooled_up import PooledUp
from geocli.nets.registry import EDGE_TRUNK, create_model
from geocli.nets.up_views import up_views

POOLED = {**EDGE_TRUNK, "views": "pooled"}  # TinvNN's option


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_the_head_sees_the_largest_feature_over_the_six_views(task: str, modelnet_test) -> None:
    net = create_model("tinvnn", 40, POOLED, task=task).eval()
    points = torch.from_numpy(modelnet_test["points"][:3, :512])
    with torch.no_grad():
        canonical, neighbors = net.frontend.canonical(points), net.neighbors(points)
        per_view = [net.trunk(canonical @ matrix.T, neighbors) for matrix in up_views()]
        point = torch.stack([p for p, _ in per_view]).amax(dim=0)
        pooled = torch.stack([g for _, g in per_view]).amax(dim=0)
        expected = net.head(point, pooled)
        assert torch.allclose(net(points), expected, atol=1e-5)
        # not the mean of the views' outputs, which the other front-ends answer with
        averaged = torch.stack([net.head(*features) for features in per_view]).mean(dim=0)
        assert not torch.allclose(net(points), averaged, atol=1e-3)
    assert net.num_views == 6 and isinstance(net.frontend, PooledUp)


def test_training_runs_every_view_with_gradients_and_gives_one_output_per_cloud(modelnet_test) -> None:
    net = create_model("tinvnn", 40, POOLED).train()
    points = torch.from_numpy(modelnet_test["points"][:4, :512])
    batch = net.prepare(points)
    none = torch.zeros(4, 512, 3)
    scale = torch.tensor([1.2, 0.9, 1.0]).expand(4, 1, 3)
    out = net.augment(batch, scale, none, torch.eye(3).expand(4, 3, 3), torch.Generator())
    assert torch.equal(out["canonical"], batch["canonical"] * scale)  # augmented as one cloud, before the views
    views = []
    net.trunk.register_forward_hook(lambda module, args, output: views.append(args[0].shape))
    logits = net.forward_prepared(out)
    assert logits.shape == (4, 40) and views == [torch.Size([24, 512, 3])]  # 4 clouds x 6 views in one pass
    logits.sum().backward()
    assert all(p.grad is not None for p in net.trunk.parameters())


def test_an_unknown_views_option_is_refused() -> None:
    with pytest.raises(ValueError, match="views must be one of canonical, pooled"):
        create_model("tinvnn", 40, {**EDGE_TRUNK, "views": "all"})
