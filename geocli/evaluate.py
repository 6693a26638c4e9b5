"""Accuracy under the standard rotation protocols, as one JSON report.

A protocol ``train/test`` names the rotations seen in training and at test time. A
model's card says what it was trained under (``train_rotation``); exactly invariant
models are trained without rotations because they cannot tell poses apart, so all
three protocols apply to them and differ only in the test rotations drawn. Each
protocol draws its own seeded rotation per test shape, so the three figures are
independent measurements, and the *agreement* (the share of shapes whose prediction
is the same under every protocol's rotation) measures invariance directly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geocli.api import predict_logits
from geocli.data.modelnet40 import class_names, default_root, load_split
from geocli.geometry.rotations import random_rotations, rotate
from geocli.zoo import LoadedModel, sha256_of

PROTOCOLS = {"z/z": "z", "z/SO3": "so3", "SO3/SO3": "so3"}
TRAIN_ROTATIONS = {"invariant": ("z/z", "z/SO3", "SO3/SO3"), "z": ("z/z", "z/SO3"), "so3": ("SO3/SO3",)}


def protocols_for(card: dict[str, Any]) -> tuple[str, ...]:
    return TRAIN_ROTATIONS[card.get("training", {}).get("train_rotation", "invariant")]


def accuracy_report(labels: np.ndarray, predictions: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Overall accuracy, mean per-class accuracy and each class's accuracy."""
    per_class = {name: float((predictions[labels == i] == i).mean()) for i, name in enumerate(classes) if (labels == i).any()}
    return {
        "overall_accuracy": float((predictions == labels).mean()),
        "mean_class_accuracy": float(np.mean(list(per_class.values()))),
        "per_class_accuracy": per_class,
    }


def evaluate_classifier(
    model: LoadedModel,
    data_root: Path | None = None,
    *,
    seed: int = 0,
    batch_size: int = 32,
    limit: int | None = None,
    progress=None,
) -> dict[str, Any]:
    """Evaluate on the ModelNet40 test split under every protocol the model's training allows.

    ``limit`` evaluates the first shapes only (for smoke tests); reports made with it
    say so and are never copied onto cards.
    """
    data_root = data_root or default_root()
    if class_names(data_root) != model.classes:
        raise ValueError("the model's classes are not ModelNet40's: evaluate it on its own data")
    test = load_split("test", data_root)
    if limit is not None:
        test = test.subset(np.arange(min(limit, len(test))))
    clouds = torch.from_numpy(test.points)
    protocols = protocols_for(model.card)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    all_predictions = []
    for offset, name in enumerate(protocols):
        rotations = random_rotations(len(test), PROTOCOLS[name], seed=seed + offset)
        logits = []
        for start in range(0, len(test), batch_size):
            batch = rotate(clouds[start : start + batch_size], rotations[start : start + batch_size])
            logits.append(predict_logits(model, batch))
            if progress:
                progress(name, min(start + batch_size, len(test)), len(test))
        predictions = torch.cat(logits).argmax(1).numpy()
        all_predictions.append(predictions)
        results[name] = accuracy_report(test.labels, predictions, model.classes)
    stacked = np.stack(all_predictions)
    return {
        "model": model.name,
        "weights_sha256": model.card["weights"]["sha256"],
        "task": "classify",
        "dataset": {"name": "ModelNet40", "split": "test", "shapes": len(test), "points_per_shape": int(test.points.shape[1]), "complete": limit is None},
        "data_sha256": {"test.npz": sha256_of(data_root / "test.npz")},
        "seed": seed,
        "protocols": results,
        "rotation_agreement": {
            "rotations_per_shape": len(protocols),
            "agreement": float((stacked == stacked[0]).all(axis=0).mean()),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "device": str(next(model.net.parameters()).device),
        "torch": torch.__version__,
    }


def card_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a report that goes on a model card (per-class figures stay in the report)."""
    if not report["dataset"]["complete"]:
        raise ValueError("a report made with --limit is partial and cannot go on a card")
    return {
        "dataset": report["dataset"],
        "seed": report["seed"],
        "protocols": {
            name: {k: round(v, 4) for k, v in figures.items() if k != "per_class_accuracy"}
            for name, figures in report["protocols"].items()
        },
        "rotation_agreement": report["rotation_agreement"],
        "weights_sha256": report["weights_sha256"],
        "produced_by": "geocli eval",
    }
