"""Exact invariance of every family's network: same cloud in any pose and order, same logits.

Run on randomly initialised networks of every exactly invariant family (so a new one
is covered the day it is registered) and, in test_shipped_models.py, on the trained
checkpoints. PaRot's rotation invariance is learned, not built in: test_parot.py checks
the exact parts of it, and its card carries the measured agreement.
"""

from __future__ import annotations

import pytest
import torch

from geocli.geometry import frames
from geocli.geometry.rotations import random_rotations, rotate
from geocli.nets import apen
from geocli.nets.registry import EDGE_TRUNK, TASKS, create_model, list_families
from geocli.zoo import LoadedModel

TOLERANCE = 1e-4


def transformed_copies(
    points: torch.Tensor, count: int, seed: int, pose: bool = True
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random rotations, a reflection every other time, uniform scaling, a translation and a point permutation.

    Each copy comes with its permutation, so per-point outputs can be compared point by point.
    ``pose=False`` leaves out rotations and reflections (for learned rotation invariance).
    """
    generator = torch.Generator().manual_seed(seed)
    rotations = random_rotations(count, "so3" if pose else "none", seed=seed)
    reflect = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    copies = []
    for i in range(count):
        matrix = rotations[i] @ reflect if i % 2 and pose else rotations[i]
        scale = 0.1 + 10 * torch.rand(1, generator=generator, dtype=torch.float64).item()
        shift = torch.randn(1, 1, 3, generator=generator, dtype=torch.float64)
        moved = (rotate(points.double(), matrix.expand(len(points), 3, 3)) * scale + shift).to(points.dtype)
        order = torch.randperm(points.shape[1], generator=generator)
        copies.append((moved[:, order], order))
    return copies


def output_change(output: torch.Tensor, reference: torch.Tensor, order: torch.Tensor) -> float:
    """Largest difference; per-point outputs (B,N,C) must follow the points' permutation."""
    expected = reference if output.ndim == 2 else reference[:, order]
    return float((output - expected).abs().max())


def max_logit_change(
    net: torch.nn.Module, points: torch.Tensor, count: int = 20, seed: int = 0, pose: bool = True
) -> float:
    with torch.no_grad():
        reference = net(points)
        return max(
            output_change(net(copy), reference, order) for copy, order in transformed_copies(points, count, seed, pose)
        )


def random_network(family: str, task: str = "classify", hparams: dict | None = None) -> torch.nn.Module:
    """A network with non-trivial BatchNorm statistics, as after training."""
    net = create_model(family, 40, hparams, task=task).eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.05, 0.5)
    return net


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", list_families("exact"))
def test_random_network_is_invariant(family: str, task: str, modelnet_test) -> None:
    points = torch.from_numpy(modelnet_test["points"][:2, :512])
    assert max_logit_change(random_network(family, task), points) < TOLERANCE


@pytest.mark.parametrize("task", TASKS)
def test_a_learned_view_choice_is_invariant(task: str, modelnet_test) -> None:
    """confident_up's selector (an option, so not covered by the default networks above) picks from views
    that are functions of the canonical cloud: the choice, and so the output, does not depend on the pose."""
    points = torch.from_numpy(modelnet_test["points"][:2, :512])
    net = random_network("confident_up", task, {**EDGE_TRUNK, "choose": "learned"})
    assert max_logit_change(net, points) < TOLERANCE


@pytest.mark.parametrize("task", TASKS)
def test_pooled_views_are_invariant(task: str, modelnet_test, monkeypatch) -> None:
    """TinvNN's pooled views (an option, so not covered by the default networks above): six fixed views of
    the canonical cloud and a max over them, so the output does not depend on the pose; with frames that
    do not turn with the cloud, it does."""
    points = torch.from_numpy(modelnet_test["points"][:2, :512])
    net = random_network("tinvnn", task, {**EDGE_TRUNK, "views": "pooled"})
    assert max_logit_change(net, points) < TOLERANCE
    monkeypatch.setattr(frames, "principal_axes", fixed_axes)
    assert max_logit_change(net, points, count=3, seed=1) > 10 * TOLERANCE


def fixed_axes(
    points: torch.Tensor, tie_tolerance: float = 0.0, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in for :func:`principal_axes` whose frame does not move with the cloud."""
    return torch.eye(3, dtype=points.dtype).expand(len(points), 3, 3), torch.ones(len(points), 3, dtype=points.dtype)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", list_families("exact"))
def test_invariance_check_detects_a_pose_dependent_network(family: str, task: str, modelnet_test, monkeypatch) -> None:
    """Guard against a vacuous test: with frames that do not rotate with the cloud,
    the same network is not invariant."""
    for module in (frames, apen):
        monkeypatch.setattr(module, "principal_axes", fixed_axes)
    points = torch.from_numpy(modelnet_test["points"][:2, :512])
    assert max_logit_change(random_network(family, task), points, count=3, seed=1) > 10 * TOLERANCE


@pytest.mark.parametrize("family", list_families("none"))
def test_the_upright_reference_has_only_similarity_and_order_invariance(family: str, modelnet_test) -> None:
    """The ceiling ablation's reference keeps translation, scale and point order out of its output but
    not the pose: what it measures is the trunk with the pose given, and it warns whoever loads it."""
    points = torch.from_numpy(modelnet_test["points"][:2, :512])
    net = random_network(family)
    assert max_logit_change(net, points, count=3, seed=1, pose=False) < TOLERANCE
    assert max_logit_change(net, points, count=3, seed=1) > 10 * TOLERANCE
    warning = LoadedModel(net, {"name": "upright-test", "invariance": "none"}).pose_warning  # type: ignore[arg-type]
    assert warning is not None and "not rotation invariant" in warning
