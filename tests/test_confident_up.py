"""ConfidentUp: six signed axes as up, the output of the view the network is surest of (docs/accuracy.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from geocli.nets.confident_up import ConfidentUp
from geocli.nets.invariant import view_confidence
from geocli.nets.registry import EDGE_TRUNK, create_model
from geocli.nets.up_views import up_views


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
        outputs = net.evaluation_outputs(net.neighbors(points), net.frontend.views(canonical))  # training's (autocast)
        sure = view_confidence(outputs)
        assert sure.shape == (3, 6) and bool(((sure > 0) & (sure <= 1)).all()) and not net.training


def test_training_takes_the_view_the_network_is_surest_of() -> None:
    frontend, canonical = ConfidentUp(), torch.randn(2, 16, 3)
    outputs = torch.zeros(2, 6, 4)
    outputs[0, 2, 0], outputs[1, 5, 3] = 5.0, 2.0  # view 2 of the first cloud, view 5 of the second
    view = frontend.training_view(canonical, lambda views: outputs, torch.Generator())
    assert torch.equal(view[0], canonical[0] @ up_views()[2].T) and torch.equal(view[1], canonical[1] @ up_views()[5].T)


def test_view_confidence_with_labels_is_the_true_class_probability() -> None:
    logits = torch.randn(2, 6, 5)
    labels = torch.tensor([3, 1])
    expected = logits.softmax(-1)[torch.arange(2), :, labels]  # (2, 6)
    assert torch.allclose(view_confidence(logits, labels), expected)
    assert torch.allclose(view_confidence(logits), logits.softmax(-1).amax(-1))
    points = torch.randn(2, 6, 4, 5)  # a segmenter's: the true parts' probabilities, averaged over the points
    parts = torch.randint(0, 5, (2, 4))
    per_point = points.softmax(-1).gather(-1, parts[:, None, :, None].expand(2, 6, 4, 1)).squeeze(-1)
    assert torch.allclose(view_confidence(points, parts), per_point.mean(-1))


def test_choosing_by_label_trains_on_the_view_the_true_class_is_likeliest_in(modelnet_test) -> None:
    net = create_model("confident_up", 40, {**EDGE_TRUNK, "choose": "label"}).train()
    assert net.frontend.choose == "label"
    points = torch.from_numpy(modelnet_test["points"][:4, :512])
    batch = net.prepare(points)
    labels = torch.tensor([0, 7, 21, 39])
    views = net.frontend.views(batch["canonical"])
    chosen = view_confidence(net.evaluation_outputs(batch["neighbors"], views), labels).argmax(1)
    by_confidence = view_confidence(net.evaluation_outputs(batch["neighbors"], views)).argmax(1)
    assert not torch.equal(chosen, by_confidence)  # the case tells them apart
    none = torch.zeros(4, 512, 3)
    out = net.augment(batch, torch.ones(4, 1, 3), none, torch.eye(3).expand(4, 3, 3), torch.Generator(), labels)
    assert torch.equal(out["canonical"], views[torch.arange(4), chosen])
    assert net.training  # scoring the views left the mode as it was


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="choose must be one of"):
        ConfidentUp(choose="random")


def test_the_view_choice_report_separates_the_choice_from_the_oracle() -> None:
    """scripts/view_choice.py: what the most confident view answers against the view the true class is likeliest in."""
    script = Path(__file__).parents[1] / "scripts" / "view_choice.py"
    spec = importlib.util.spec_from_file_location("view_choice", script)
    assert spec and spec.loader
    view_choice = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(view_choice)
    probabilities = torch.tensor(
        [
            [[0.9, 0.1], [0.4, 0.6]],  # class 1: sure of the wrong class in view 0, right in view 1
            [[0.2, 0.8], [0.5, 0.5]],  # class 1: right and sure in view 0
            [[0.7, 0.3], [0.6, 0.4]],  # class 0: right in both, surer in view 0
        ]
    )
    report = view_choice.choice_report(probabilities, torch.tensor([1, 1, 0]))
    assert report["most_confident"] == report["answered"] == round(100 * 2 / 3, 2) and report["oracle"] == 100.0
    oracle = view_choice.choice_report(probabilities, torch.tensor([1, 1, 0]), chosen=torch.tensor([1, 0, 0]))
    assert oracle["answered"] == oracle["choice_is_oracle"] == 100.0
    assert oracle["most_confident"] == report["most_confident"]
    assert report["mean_of_views"] == round(100 * 2 / 3, 2)  # shape 0 averages to (0.65, 0.35)
    assert report["choice_is_oracle"] == round(100 * 2 / 3, 2)
    assert report["oracle_view_class_share"] == 75.0  # class 1: views 1 and 0 (1/2); class 0: view 0 (1/1)


def test_the_learned_choice_trains_a_selector_on_the_labels_choice_and_answers_with_it(modelnet_test) -> None:
    net = create_model("confident_up", 40, {**EDGE_TRUNK, "choose": "learned"}).train()
    points = torch.from_numpy(modelnet_test["points"][:4, :512])
    batch, labels = net.prepare(points), torch.tensor([0, 7, 21, 39])
    views = net.frontend.views(batch["canonical"])
    by_label = view_confidence(net.evaluation_outputs(batch["neighbors"], views), labels).argmax(1)
    none = torch.zeros(4, 512, 3)
    out = net.augment(batch, torch.ones(4, 1, 3), none, torch.eye(3).expand(4, 3, 3), torch.Generator(), labels)
    assert torch.equal(out["canonical"], views[torch.arange(4), by_label])  # trained on the label's view
    loss = net.auxiliary_loss()
    assert loss > 0 and float(net.auxiliary_loss()) == 0.0  # handed over once
    loss.backward()
    assert all(p.grad is not None for p in net.frontend.parameters())
    assert all(p.grad is None for p in net.trunk.parameters())  # the network's outputs were only read
    net.eval()
    with torch.no_grad():
        per_view = net.view_outputs(views, batch["neighbors"].long())
        picked = net.frontend.selector_scores(per_view).argmax(1)
        assert torch.equal(net(points), per_view[torch.arange(4), picked])
