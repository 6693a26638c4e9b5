"""Fitting a classifier's temperature on the validation split its training held out (``geocli calibrate``).

Training carved a stratified validation split from ModelNet40's training set
(:func:`geocli.data.pointset.validation_split`, with the ``val_fraction`` and ``seed`` its
card's recipe records) and used it only to pick the best epoch, so the split is held-out
data the test figures never see: :func:`calibrate_classifier` carves the same split again,
fits one temperature on the model's logits there (:func:`geocli.calibration.fit_temperature`),
and measures the expected calibration error and NLL before and after, on that split and on
the test split in the poses ``geocli eval`` gives it under its SO(3) protocol (so the test
ECE after scaling is the one ``geocli eval`` reports there once the card carries the
temperature). Every shape is given a seeded random rotation, the pose a user's scan comes
in; models whose invariance is learned are calibrated for the poses they will see.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from geocli.api import predict_logits
from geocli.calibration import ECE_BINS, calibrated_probabilities, calibration_figures, fit_temperature
from geocli.data.modelnet40 import class_names, default_root, load_split
from geocli.data.pointset import PointSet, validation_split
from geocli.ensemble import Classifier, Ensemble
from geocli.evaluate import protocol_rotations, protocols_for, rotated_outputs
from geocli.geometry.rotations import random_rotations
from geocli.zoo import CalibrationInfo, LoadedModel, sha256_of

TEMPERATURE_DECIMALS = 4  # the card keeps T to 4 decimals, and the figures "after" are those of that T


def validation_set(model: LoadedModel, data_root: Path) -> tuple[PointSet, str]:
    """The validation split the model's training carved, and a line that says which it is.

    A card without a recipe's ``val_fraction`` and ``seed`` (a model trained elsewhere) does not
    say which shapes training held out: a ``ValueError``, since fitting on shapes the network
    was trained on would make it look more certain than it should be.
    """
    recipe = model.card.get("training", {}).get("recipe", {})
    fraction, seed = recipe.get("val_fraction"), recipe.get("seed")
    if not isinstance(fraction, int | float) or not isinstance(seed, int) or not 0 < fraction < 1:
        raise ValueError(
            f"model {model.name!r}: its card's training recipe gives no val_fraction and seed, "
            "so the shapes its training held out are unknown"
        )
    train = load_split("train", data_root)
    _, held_out = validation_split(train.labels, fraction, seed)
    return train.subset(
        held_out
    ), f"ModelNet40 train, stratified validation split (val_fraction {fraction}, seed {seed})"


def calibrate_classifier(
    model: Classifier,
    data_root: Path | None = None,
    *,
    seed: int = 0,
    batch_size: int = 32,
    progress=None,
) -> CalibrationInfo:
    """Fit the model's temperature on its validation split; the card's ``calibration`` block (see the module)."""
    data_root = data_root or default_root()
    if isinstance(model, Ensemble):
        raise ValueError(f"{model.name} is an ensemble: calibrate each member, whose card keeps its temperature")
    if model.task != "classify":
        raise ValueError(f"model {model.name!r} is a {model.task} model; geocli calibrate fits classifiers")
    if class_names(data_root) != model.classes:
        raise ValueError("the model's classes are not ModelNet40's: calibrate it on its own data")
    validation, described = validation_set(model, data_root)
    test = load_split("test", data_root)
    protocol = protocols_for(model)[-1]  # SO3/SO3, or z/SO3 for a model trained upright
    logits = partial(predict_logits, model)
    val_logits = rotated_outputs(
        logits,
        torch.from_numpy(validation.points),
        random_rotations(len(validation), "so3", seed=seed),
        batch_size,
        progress,
        "validation",
    )
    test_logits = rotated_outputs(
        logits,
        torch.from_numpy(test.points),
        protocol_rotations(model, protocol, len(test), seed),
        batch_size,
        progress,
        protocol,
    )
    val_labels, test_labels = torch.from_numpy(validation.labels), torch.from_numpy(test.labels)
    temperature = round(fit_temperature(val_logits, val_labels), TEMPERATURE_DECIMALS)
    return {
        "temperature": temperature,
        "method": "temperature scaling: softmax(logits / temperature), temperature minimising the validation NLL",
        "ece_bins": ECE_BINS,
        "validation": {
            "split": described,
            "shapes": len(validation),
            "rotation": "SO3",
            **_before_after(val_logits, val_labels, temperature),
        },
        "test": {
            "split": "ModelNet40 test",
            "shapes": len(test),
            "protocol": protocol,
            **_before_after(test_logits, test_labels, temperature),
        },
        "seed": seed,
        "data_sha256": {name: sha256_of(data_root / name) for name in ("train.npz", "test.npz")},
        "weights_sha256": model.card["weights"]["sha256"],
        "produced_by": "geocli calibrate",
    }


def _before_after(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> dict[str, Any]:
    """Accuracy, then ECE and NLL at temperature 1 (``_before``) and at ``temperature`` (``_after``)."""
    before = calibration_figures(calibrated_probabilities(logits), labels)
    after = calibration_figures(calibrated_probabilities(logits, temperature), labels)
    return {
        "accuracy": round(float((logits.argmax(1) == labels).double().mean()), 4),
        **{f"{key}_before": round(value, 4) for key, value in before.items()},
        **{f"{key}_after": round(value, 4) for key, value in after.items()},
    }
