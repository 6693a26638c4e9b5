"""PaRot: tensor shapes, pose restoration, back-end independence, checkpoint round trip, training.

PaRot's invariance to rotation is learned, so an untrained network is not invariant;
what *is* exact is the geometry around the learned parts. The pose-restoration test
swaps the learned disentangler for an exactly equivariant stand-in and requires the
whole network to become invariant: that fails for any slip in the frame algebra.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import MODELNET40, cli_export_eval, cli_train
from geocli.cli import app
from geocli.geometry.rotations import random_so3, rotate
from geocli.nets.parot import Disentangle, PaRot, PaRotConfig, frame
from geocli.nets.registry import create_model
from geocli.ops import backend
from geocli.train import recipe
from geocli.zoo import load_model, save_model
from test_train_eval import runner, tiny_modelnet  # noqa: F401  (fixture)

SMALL = {"patches": 32, "patch_size": 16, "global_size": 8, "patch_neighbors": 8, "dim": 16, "embedding": 32}


def clouds(n: int = 2, points: int = 256) -> torch.Tensor:
    with __import__("numpy").load(MODELNET40 / "test.npz", allow_pickle=False) as data:
        return torch.from_numpy(data["points"][:n, :points])


def small(task: str = "classify") -> PaRot:
    torch.manual_seed(0)
    net = create_model("parot", 40 if task == "classify" else 94, SMALL, task=task)
    assert isinstance(net, PaRot)
    return net.eval()


def test_published_configuration_has_the_papers_size() -> None:
    """About 1.6 M parameters, as the paper reports."""
    net = create_model("parot", 40)
    assert 1.5e6 < sum(p.numel() for p in net.parameters()) < 1.7e6


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_shapes_of_every_tensor(task: str) -> None:
    net, x = small(task), clouds()
    c = PaRotConfig(**SMALL)
    prepared = net.prepare(x)
    expected = {
        "points": (2, 256, 3),
        "centres": (2, c.patches),
        "patches": (2, c.patches, c.patch_size),
        "graph": (2, c.patches, c.patch_neighbors),
    }
    if task == "segment":
        expected["nearest"] = (2, 256, c.propagate)
    assert {k: tuple(v.shape) for k, v in prepared.items()} == expected
    encoded = net.encoder(prepared["points"], prepared["centres"], prepared["patches"], prepared["graph"])
    assert {k: tuple(v.shape) for k, v in encoded.items()} == {
        "features": (2, c.patches, 2 * c.dim),
        "pose": (2, c.patches, 16),
        "local_frames": (2, c.patches, 3, 3),
        "global_frames": (2, c.patches, 3, 3),
        "centres": (2, c.patches, 3),
        "loss": (),
    }
    with torch.no_grad():
        out = net(x)
    assert out.shape == ((2, 40) if task == "classify" else (2, 256, 94)) and torch.isfinite(out).all()


def test_frames_are_orthonormal_and_rotate_with_their_directions() -> None:
    directions = torch.randn(64, 2, 3, dtype=torch.float64)
    rotations = random_so3(64, torch.Generator().manual_seed(1))
    frames = frame(directions)
    assert torch.allclose(
        frames @ frames.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(64, 3, 3), atol=1e-12
    )
    assert torch.allclose(torch.linalg.det(frames), torch.ones(64, dtype=torch.float64))
    assert torch.allclose(
        frame(directions @ rotations.transpose(-1, -2)), frames @ rotations.transpose(-1, -2), atol=1e-12
    )


class EquivariantStandIn(torch.nn.Module):
    """An exactly invariant descriptor and exactly equivariant directions, in place of the learned ones."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        radii = patches.norm(dim=-1)
        descriptor = torch.stack([radii.pow(p).mean(-1) for p in range(1, self.dim + 1)], dim=-1)
        first = (patches * radii.square().unsqueeze(-1)).sum(-2)  # third moment: follows any rotation
        second = (patches * radii.pow(4).unsqueeze(-1)).sum(-2)
        return descriptor, F.normalize(torch.stack([first, second], dim=-2), dim=-1)


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_pose_restoration_is_exactly_invariant_given_equivariant_poses(task: str, monkeypatch) -> None:
    """With exactly equivariant poses the whole network ignores rotation, translation, scale and point order."""
    net = small(task).double()
    monkeypatch.setattr(Disentangle, "forward", lambda self, patches: EquivariantStandIn(SMALL["dim"])(patches))
    x = clouds().double()
    rotations = random_so3(2, torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference, rotated = (
            net(x),
            net(rotate(x, rotations) * 3.7 + torch.tensor([0.5, -2.0, 1.0], dtype=torch.float64)),
        )
        shuffled = net(x[:, torch.randperm(256)])  # point order: only the per-point order may change
    assert (reference - rotated).abs().max() < 1e-6
    if task == "classify":
        assert (reference - shuffled).abs().max() < 1e-6
    # the check can fail: the learned disentangler is not invariant before training
    monkeypatch.undo()
    with torch.no_grad():
        assert (net(x) - net(rotate(x, rotations))).abs().max() > 1e-3


def test_siamese_loss_is_zero_in_evaluation_and_trains_the_directions() -> None:
    net = small()
    x = clouds()
    with torch.no_grad():
        net(x)
    assert float(net.auxiliary_loss()) == 0.0
    net.train()
    net(x)
    loss = net.auxiliary_loss()
    assert float(loss.detach()) > 0
    loss.backward()
    assert net.encoder.local.directions[0][-1].weight.grad.abs().sum() > 0


@pytest.mark.skipif(backend() != "torch-cluster", reason="torch-cluster is not installed")
def test_both_neighbourhood_backends_give_the_same_logits(monkeypatch) -> None:
    net, x = small("segment"), clouds()
    outputs = {}
    for name in ("torch", "torch-cluster"):
        monkeypatch.setenv("GEOCLI_OPS_BACKEND", name)
        with torch.no_grad():
            outputs[name] = net(x)
    assert torch.equal(outputs["torch"], outputs["torch-cluster"])


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_checkpoint_round_trip_gives_the_same_logits(task: str, tmp_path: Path) -> None:
    net = small(task)
    with torch.no_grad():
        for p in net.state_dict().values():  # float16 storage: start from representable weights
            if p.is_floating_point():
                p.copy_(p.half().float())
    classes = [f"c{i}" for i in range(40)] if task == "classify" else [f"C{i // 5}/p{i}" for i in range(94)]
    card = {
        "name": "tiny-parot",
        "family": "parot",
        "task": task,
        "hparams": SMALL,
        "classes": classes,
        "input_points": 256,
    }
    save_model(net, card, tmp_path)
    loaded = load_model(tmp_path / "tiny-parot.json", device="cpu")
    x = clouds()
    with torch.no_grad():
        assert torch.equal(net(x), loaded.net(x))


@pytest.mark.slow
def test_train_export_eval_reports_agreement(tiny_modelnet: Path, tmp_path: Path) -> None:  # noqa: F811
    """The same train/export/eval commands as the other families; eval adds poses for agreement."""
    run = tmp_path / "run"
    trained = cli_train(tiny_modelnet, run, "--family", "parot", "--hparams", json.dumps(SMALL | {"patches": 16}))
    assert trained.exit_code == 0, trained.output
    card_path, report = cli_export_eval(run, tiny_modelnet, "tiny-parot", "--update-card")
    assert (
        set(report["protocols"]) == {"SO3/SO3", "single-view/SO3"}
        and report["rotation_agreement"]["rotations_per_shape"] == 4
    )
    card = json.loads(card_path.read_text())
    assert card["invariance"] == "learned" and card["training"]["train_rotation"] == "so3"


def test_unknown_recipe_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--family", "tinvnn", "--recipe", "published", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "no recipe 'published'" in result.output


def test_published_recipe_is_the_papers() -> None:
    """1,024 points, 250 epochs, batch 32, Adam at 1e-3 on a cosine schedule, label smoothing, full-size network."""
    config = recipe("modelnet40", "parot", "published")
    assert (config.points, config.epochs, config.batch_size, config.lr, config.label_smoothing) == (
        1024,
        250,
        32,
        1e-3,
        0.2,
    )
    assert config.hparams == {} and config.rotation == "so3"
    assert recipe("modelnet40", "parot").hparams["patches"] < PaRotConfig().patches  # the CPU recipe is smaller
