"""The checkpoints in models/: they load with every check, are invariant, and carry eval figures.

These tests fail (never skip) when no classifier is shipped: the product is the
trained models, and a suite that passes without loading one proves nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import geocli
from geocli.api import segment_geometry
from geocli.defaults import DEFAULT_CLASSIFIER
from geocli.io import Geometry
from geocli.nets.registry import INVARIANCE, list_families
from geocli.ops import kernels_available, use_kernels
from geocli.zoo import list_models, load_model
from test_invariance import TOLERANCE, max_logit_change, transformed_copies

CARDS = [card for card in list_models() if card["task"] == "classify"]
SEGMENTERS = [card for card in list_models() if card["task"] == "segment"]
CALIBRATED = [card for card in CARDS if "calibration" in card]
PSB = Path(__file__).resolve().parents[2] / "shared" / "data" / "psb"


def exact(card: dict) -> bool:
    return INVARIANCE[card["family"]] == "exact"


SHIPPED_FAMILIES = set(list_families(shipped=True))  # the ablations' families are not


def test_a_classifier_of_every_family_is_shipped() -> None:
    assert {card["family"] for card in CARDS} == SHIPPED_FAMILIES


def test_a_segmenter_of_every_family_is_shipped() -> None:
    assert {card["family"] for card in SEGMENTERS} == SHIPPED_FAMILIES


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c["name"])
def test_card_figures_come_from_a_complete_eval(card) -> None:
    metrics = card["metrics"]
    assert metrics["produced_by"] == "geocli eval" and metrics["dataset"]["complete"]
    assert metrics["weights_sha256"] == card["weights"]["sha256"]
    assert metrics["dataset"]["shapes"] == 2468
    protocols = metrics["protocols"]
    if exact(card):
        # independent rotation draws must agree within noise
        assert card["training"]["train_rotation"] == "invariant"
        assert abs(protocols["z/SO3"]["overall_accuracy"] - protocols["SO3/SO3"]["overall_accuracy"]) < 0.005
        assert metrics["rotation_agreement"]["agreement"] > 0.99
    else:  # learned invariance is measured over several poses per shape
        assert metrics["rotation_agreement"]["rotations_per_shape"] >= 4


def test_the_default_classifier_is_calibrated() -> None:
    assert DEFAULT_CLASSIFIER in {card["name"] for card in CALIBRATED}


@pytest.mark.parametrize("card", CALIBRATED, ids=lambda c: c["name"])
def test_calibration_was_fitted_on_the_validation_split(card) -> None:
    """Issue 18's target: an expected calibration error of at most 0.05 on the test split after scaling."""
    calibration = card["calibration"]
    assert calibration["produced_by"] == "geocli calibrate"
    assert calibration["weights_sha256"] == card["weights"]["sha256"]
    recipe = card["training"]["recipe"]
    assert calibration["validation"]["split"].endswith(
        f"(val_fraction {recipe['val_fraction']}, seed {recipe['seed']})"
    )
    assert calibration["test"]["shapes"] == 2468 and calibration["ece_bins"] == 15
    assert calibration["test"]["ece_after"] <= 0.05
    assert calibration["validation"]["nll_after"] <= calibration["validation"]["nll_before"]


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c["name"])
def test_shipped_checkpoint_is_invariant(card, modelnet_test) -> None:
    """Exact families to everything; PaRot (rotation invariance learned) to translation, scale and order."""
    model = load_model(card["name"], device="cpu")
    points = torch.from_numpy(modelnet_test["points"][:1, : model.input_points])
    assert max_logit_change(model.net, points, count=20, seed=5, pose=exact(card)) < TOLERANCE


def test_python_api_on_arrays_and_files(modelnet_test, tmp_path) -> None:
    model = geocli.load_model(device="cpu")
    cloud = modelnet_test["points"][0]
    path = tmp_path / "shape.npy"
    np.save(path, cloud)
    from_array, from_file = geocli.classify([cloud, path], model=model, top_k=3)
    assert from_array.label == from_file.label and abs(from_array.score - from_file.score) < 1e-6
    assert len(from_array.top_k) == 3 and from_array.points == model.input_points
    [bad] = geocli.classify(np.zeros((5, 2)), model=model)
    assert bad.error and bad.label is None


@pytest.mark.parametrize("card", SEGMENTERS, ids=lambda c: c["name"])
def test_segmenter_card_figures_come_from_a_complete_eval(card) -> None:
    metrics = card["metrics"]
    assert (
        metrics["produced_by"] == "geocli eval"
        and metrics["dataset"]["complete"]
        and metrics["dataset"]["shapes"] == 95
    )
    assert metrics["weights_sha256"] == card["weights"]["sha256"]
    given, so3 = metrics["protocols"]["as given"], metrics["protocols"]["SO3"]
    if exact(card):
        assert abs(given["point_accuracy"] - so3["point_accuracy"]) < 0.01  # equal within noise
        assert metrics["rotation_agreement"]["agreement"] > 0.99
    else:
        assert metrics["rotation_agreement"]["rotations_per_shape"] >= 4


@pytest.mark.parametrize("card", SEGMENTERS, ids=lambda c: c["name"])
def test_shipped_segmenter_labels_follow_the_points(card) -> None:
    """Per-point labels of a real test shape: unchanged by pose (exact families), scale and shift,
    permuted with the points."""
    model = load_model(card["name"], device="cpu")
    with np.load(PSB / "points_2048.npz", allow_pickle=False) as data:
        cloud = torch.from_numpy(data["points"][data["split"].astype(str) == "test"][:1])  # (1, 2048, 3)
    net_points = cloud[:, : model.input_points]
    assert max_logit_change(model.net, net_points, count=6, seed=2, pose=exact(card)) < TOLERANCE

    def labels(points: torch.Tensor) -> np.ndarray:
        geometry = Geometry(path="shape", points=points[0].double().numpy(), faces=None, normals=None, colors=None)
        return segment_geometry(model, geometry).labels

    reference = labels(cloud)
    for copy, order in transformed_copies(cloud, count=4, seed=7, pose=exact(card)):
        assert (labels(copy) == reference[order.numpy()]).mean() > 0.999


@pytest.mark.slow
@pytest.mark.skipif(not kernels_available(), reason="geocli_kernels is not built here")
@pytest.mark.parametrize("card", CARDS + SEGMENTERS, ids=lambda c: c["name"])
def test_shipped_model_gives_the_same_logits_with_and_without_kernels(card, modelnet_test) -> None:
    """The compiled kernels change speed only: logits within 1e-4 of the pure-torch route."""
    model = load_model(card["name"], device="cpu")
    points = torch.from_numpy(modelnet_test["points"][:16, : model.input_points])
    with torch.no_grad():
        with use_kernels(True):
            fast = model.net(points)
        with use_kernels(False):
            slow = model.net(points)
    assert float((fast - slow).abs().max()) <= 1e-4


def test_the_default_classifier_is_measured_on_single_view_scans() -> None:
    """Real scans see one side of an object: the default's card carries that figure from geocli eval."""
    from geocli.defaults import DEFAULT_CLASSIFIER

    card = next(c for c in CARDS if c["name"] == DEFAULT_CLASSIFIER)
    single_view = card["metrics"]["protocols"]["single-view/SO3"]
    assert 0 < single_view["overall_accuracy"] <= 1
