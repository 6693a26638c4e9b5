"""APEN: the simple partition, per-part frames and graphs, piecewise invariance given the partition, training.

Exact invariance to rotations, reflections, translation, scale and order is checked
with every exactly invariant family in test_invariance.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import cli_export_eval, cli_train, make_tiny_psb
from geocli.geometry.frames import centre_and_scale
from geocli.geometry.rotations import random_rotations
from geocli.nets.apen import APEN, PART_GEOMETRY, partition
from geocli.nets.registry import TASKS
from test_invariance import TOLERANCE, random_network
from test_train_eval import runner, tiny_modelnet  # noqa: F401  (fixture)

TINY = {"parts": 4, "k": 4, "widths": [8, 8], "embedding": 16, "token_neighbors": 2, "token_width": 16}


def distances(points: torch.Tensor) -> torch.Tensor:
    return (points.unsqueeze(0) - points.unsqueeze(1)).norm(dim=-1)


def test_parts_frames_and_graphs(modelnet_test) -> None:
    net = random_network("apen")
    assert isinstance(net, APEN)
    points = torch.from_numpy(modelnet_test["points"][:2, :512])
    batch = net.prepare(points)
    parts, part = net.config.parts, batch["part"]
    assert part.shape == (2, 512) and all(set(row.tolist()) == set(range(parts)) for row in part)
    neighbors = batch["neighbors"]
    assert neighbors.shape == (2, 512, net.config.k)
    assert bool((torch.gather(part, 1, neighbors.flatten(1)).view_as(neighbors) == part.unsqueeze(-1)).all()), (
        "graph crosses parts"
    )
    assert batch["tokens"].shape == (2, parts, 3) and batch["geometry"].shape == (2, parts, PART_GEOMETRY)
    assert batch["token_neighbors"].shape == (2, parts, net.config.token_neighbors)
    x = centre_and_scale(points)
    for b in range(2):  # each part's local coordinates are its points in an orthonormal frame
        for j in range(parts):
            inside = part[b] == j
            local, original = batch["local"][b, inside], x[b, inside]
            assert torch.allclose(distances(local), distances(original), atol=1e-5)


@pytest.mark.parametrize("task", TASKS)
def test_parts_moved_independently_keep_their_features(task: str, modelnet_test) -> None:
    """The paper's piecewise invariance, given the partition: every part moved by its own rigid motion."""
    net = random_network("apen", task)
    x = centre_and_scale(torch.from_numpy(modelnet_test["points"][:2, :512]).double())
    part = partition(x, net.config.parts)
    rotations = random_rotations(net.config.parts, "so3", seed=3)
    shifts = 0.5 * torch.randn(net.config.parts, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    moved = x.clone()
    for j in range(net.config.parts):
        inside = part == j
        moved[inside] = x[inside] @ rotations[j].T + shifts[j]
    with torch.no_grad():
        before = net.parts_forward(net.prepare_parts(x, part))
        after = net.parts_forward(net.prepare_parts(moved, part))
        logits_before = net.forward_prepared(net.prepare_parts(x, part))
        logits_after = net.forward_prepared(net.prepare_parts(moved, part))
    for a, b in zip(before, after, strict=True):
        assert float((a - b).abs().max()) < TOLERANCE
    assert float((logits_before - logits_after).abs().max()) > 10 * TOLERANCE  # the parts' arrangement still counts


@pytest.mark.slow
def test_train_export_eval(tiny_modelnet: Path, tmp_path: Path) -> None:  # noqa: F811
    """The same commands as every family; exact invariance means the three protocols agree."""
    run = tmp_path / "run"
    trained = cli_train(tiny_modelnet, run, "--family", "apen", "--hparams", json.dumps(TINY))
    assert trained.exit_code == 0, trained.output
    card, report = cli_export_eval(run, tiny_modelnet, "tiny-apen", "--update-card")
    accuracies = {p["overall_accuracy"] for p in report["protocols"].values()}
    assert set(report["protocols"]) == {"z/z", "z/SO3", "SO3/SO3", "single-view/SO3"} and len(accuracies) == 1
    assert json.loads(card.read_text())["invariance"] == "exact"


@pytest.mark.slow
def test_segmenter_trains_and_labels_alike_in_any_pose(tmp_path: Path, monkeypatch) -> None:
    """A part segmenter through the same commands; exactly invariant, so a rotation changes (almost) no label."""
    monkeypatch.setenv("GEOCLI_CACHE", str(tmp_path / "cache"))
    root, run = make_tiny_psb(tmp_path / "psb"), tmp_path / "run"
    options = ["--dataset", "psb", "--family", "apen", "--batch-size", "8", "--hparams", json.dumps(TINY)]
    trained = cli_train(root, run, *options)
    assert trained.exit_code == 0, trained.output
    _, report = cli_export_eval(run, root, "tiny-apen-seg")
    assert report["rotation_agreement"]["agreement"] > 0.99
