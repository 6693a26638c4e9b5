"""The checkpoints in models/: they load with every check, are invariant, and carry eval figures.

These tests fail (never skip) when no classifier is shipped: the product is the
trained models, and a suite that passes without loading one proves nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_invariance import TOLERANCE, max_logit_change

import geocli
from geocli.zoo import list_models, load_model

CARDS = [card for card in list_models() if card["task"] == "classify"]


def test_a_classifier_is_shipped() -> None:
    assert {card["family"] for card in CARDS} >= {"frame_averaging"}


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c["name"])
def test_card_figures_come_from_a_complete_eval(card) -> None:
    metrics = card["metrics"]
    assert metrics["produced_by"] == "geocli eval" and metrics["dataset"]["complete"]
    assert metrics["weights_sha256"] == card["weights"]["sha256"]
    assert metrics["dataset"]["shapes"] == 2468
    protocols = metrics["protocols"]
    if card["training"]["train_rotation"] == "invariant":
        # exactly invariant: independent rotation draws must agree within noise
        assert abs(protocols["z/SO3"]["overall_accuracy"] - protocols["SO3/SO3"]["overall_accuracy"]) < 0.005
        assert metrics["rotation_agreement"]["agreement"] > 0.99


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c["name"])
def test_shipped_checkpoint_is_invariant(card, modelnet_test) -> None:
    model = load_model(card["name"])
    points = torch.from_numpy(modelnet_test["points"][:1, : model.input_points])
    assert max_logit_change(model.net, points, count=20, seed=5) < TOLERANCE


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
