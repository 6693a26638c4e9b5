"""Accuracy (classifiers) and part IoU (segmenters) under rotation protocols, as one JSON report.

A protocol ``train/test`` names the rotations seen in training and at test time. A
model's card says what it was trained under (``train_rotation``); exactly invariant
models are trained without rotations because they cannot tell poses apart, so all
three protocols apply to them and differ only in the test rotations drawn. Each
protocol draws its own seeded rotation per test shape, so the three figures are
independent measurements, and the *agreement* (the share of shapes whose prediction
is the same under every protocol's rotation) measures invariance directly. Models
whose invariance is learned (PaRot) are trained under rotations and evaluated under
the protocols their training allows; their agreement takes at least
``LEARNED_AGREEMENT_POSES`` seeded SO(3) poses per shape, extra poses beyond the
protocols' counting towards agreement only.

Segmenters are scored on the Labeled PSB test split through the same path as
``geocli segment`` (sample, predict, carry labels back to all 2,048 stored points), once
on the shapes as given and once under seeded SO(3) rotations.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geocli.api import model_input, predict_logits, segment_geometry
from geocli.data import psb
from geocli.data.folders import class_folders, is_class_folder, read_class_folder
from geocli.data.modelnet40 import class_names, default_root, load_split
from geocli.data.pointset import PointSet
from geocli.geometry.partial import single_views
from geocli.geometry.rotations import random_rotations, rotate
from geocli.io import Geometry
from geocli.metrics import accuracy_report, segmentation_report
from geocli.nets.registry import INVARIANCE
from geocli.parts import part_categories
from geocli.zoo import LoadedModel, ModelCard, read_card, resolve, sha256_of, write_card

PROTOCOLS = {"z/z": "z", "z/SO3": "so3", "SO3/SO3": "so3"}
SEGMENTATION_PROTOCOLS = {"as given": "none", "SO3": "so3"}
# The protocols a classifier is evaluated under, by the rotations it was trained with (its card's train_rotation).
PROTOCOLS_BY_TRAIN_ROTATION = {"invariant": ("z/z", "z/SO3", "SO3/SO3"), "z": ("z/z", "z/SO3"), "so3": ("SO3/SO3",)}
LEARNED_AGREEMENT_POSES = 4
# Every test shape seen from one seeded viewpoint (hidden point removal), then posed at random.
SINGLE_VIEW_PROTOCOL = "single-view/SO3"


def protocols_for(card: ModelCard) -> tuple[str, ...]:
    return PROTOCOLS_BY_TRAIN_ROTATION[card.get("training", {}).get("train_rotation", "invariant")]


def poses_for(card: ModelCard, protocols: dict[str, str]) -> list[tuple[str | None, str]]:
    """(protocol or None, rotation kind) for every pose each test shape is evaluated in.

    Exactly invariant models get one pose per protocol; learned-invariance models get
    extra SO(3) poses (protocol None) up to ``LEARNED_AGREEMENT_POSES``.
    """
    poses: list[tuple[str | None, str]] = [(name, kind) for name, kind in protocols.items()]
    if INVARIANCE[card["family"]] == "learned":
        poses += [(None, "so3")] * (LEARNED_AGREEMENT_POSES - len(poses))
    return poses


def evaluate_classifier(
    model: LoadedModel,
    data_root: Path | None = None,
    *,
    seed: int = 0,
    batch_size: int = 32,
    limit: int | None = None,
    progress=None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate on the ModelNet40 test split under every protocol the model's training allows.

    ``limit`` evaluates the first shapes only (for smoke tests); reports made with it
    say so and are never copied onto cards. A ``data_root`` of class sub-folders is a
    held-out folder (:func:`_evaluate_class_folder`; ``log`` hears its reading).
    """
    if data_root is not None and is_class_folder(data_root):
        return _evaluate_class_folder(model, data_root, seed, batch_size, limit, progress, log)
    data_root = data_root or default_root()
    if class_names(data_root) != model.classes:
        raise ValueError("the model's classes are not ModelNet40's: evaluate it on its own data")
    test = load_split("test", data_root)
    if limit is not None:
        test = test.subset(np.arange(min(limit, len(test))))
    clouds = torch.from_numpy(test.points)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    all_predictions = []
    for offset, (name, kind) in enumerate(poses_for(model.card, {p: PROTOCOLS[p] for p in protocols_for(model.card)})):
        rotations = random_rotations(len(test), kind, seed=seed + offset)
        logits = []
        for start in range(0, len(test), batch_size):
            batch = rotate(clouds[start : start + batch_size], rotations[start : start + batch_size])
            logits.append(predict_logits(model, batch))
            if progress:
                progress(name or "agreement", min(start + batch_size, len(test)), len(test))
        predictions = torch.cat(logits).argmax(1).numpy()
        all_predictions.append(predictions)
        if name:
            results[name] = accuracy_report(test.labels, predictions, model.classes)
    results[SINGLE_VIEW_PROTOCOL] = accuracy_report(
        test.labels, _single_view_predictions(model, test, seed, batch_size, progress), model.classes
    )
    return _report(
        model,
        "ModelNet40",
        test,
        _file_digest(data_root / "test.npz"),
        limit,
        seed,
        results,
        np.stack(all_predictions),
        started,
        "shapes",
    )


def _single_view_predictions(
    model: LoadedModel, test: PointSet, seed: int, batch_size: int, progress=None
) -> np.ndarray:
    """Predicted classes of single-view scans of the test shapes, each in a seeded random pose.

    Views hold about 40 % of a shape's points; each goes through the same path as a file
    given to ``geocli classify`` (unit sphere, tiled up to the input size, FPS).
    """
    views = single_views(test.points, seed)
    rotations = random_rotations(len(views), "so3", seed=seed + len(PROTOCOLS) + LEARNED_AGREEMENT_POSES).numpy()
    predictions = []
    for start in range(0, len(views), batch_size):
        clouds = [
            model_input(
                Geometry(path=str(name), points=view @ rotation.T, faces=None, normals=None, colors=None),
                model.input_points,
                seed,
            )
            for name, view, rotation in zip(
                test.names[start : start + batch_size],
                views[start : start + batch_size],
                rotations[start : start + batch_size],
            )
        ]
        predictions.append(predict_logits(model, torch.from_numpy(np.stack(clouds))).argmax(1).numpy())
        if progress:
            progress(SINGLE_VIEW_PROTOCOL, min(start + batch_size, len(views)), len(views))
    return np.concatenate(predictions)


def evaluate_segmenter(
    model: LoadedModel,
    data_root: Path | None = None,
    *,
    seed: int = 0,
    limit: int | None = None,
    progress=None,
) -> dict[str, Any]:
    """Per-point accuracy and mean IoUs on the Labeled PSB test split, as given and under SO(3)."""
    data_root = data_root or psb.default_root()
    if psb.class_names(data_root) != model.classes:
        raise ValueError("the model's classes are not Labeled PSB's parts: evaluate it on its own data")
    test = psb.load_split("test", data_root)
    if limit is not None:
        test = test.subset(np.arange(min(limit, len(test))))
    categories, category_of = part_categories(model.classes)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    all_labels = []
    for offset, (name, kind) in enumerate(poses_for(model.card, SEGMENTATION_PROTOCOLS)):
        rotations = random_rotations(len(test), kind, seed=seed + offset)
        clouds = rotate(torch.from_numpy(test.points).double(), rotations).numpy()
        predictions, predicted_categories = [], []
        for index, (cloud, shape) in enumerate(zip(clouds, test.names)):
            result = segment_geometry(
                model, Geometry(path=str(shape), points=cloud, faces=None, normals=None, colors=None), seed=seed
            )
            assert result.labels is not None and result.category is not None  # segment_geometry sets both
            predictions.append(result.labels)
            predicted_categories.append(categories.index(result.category))
            if progress:
                progress(name or "agreement", index + 1, len(test))
        all_labels.append(np.stack(predictions))
        if name:
            results[name] = segmentation_report(
                list(test.labels), predictions, categories, category_of.numpy(), np.array(predicted_categories)
            )
    return _report(
        model,
        "Labeled PSB",
        test,
        _file_digest(data_root / "points_2048.npz"),
        limit,
        seed,
        results,
        np.stack(all_labels),
        started,
        "points",
    )


def _report(
    model: LoadedModel,
    dataset: str,
    test: PointSet,
    data_sha256: dict[str, str],
    limit: int | None,
    seed: int,
    results: dict[str, Any],
    stacked: np.ndarray,
    started: float,
    unit: str,
) -> dict[str, Any]:
    """The report around one evaluation's figures: what was measured, on what, and how long it took.

    ``stacked`` holds the predictions under each protocol (protocol first); agreement is the
    share of ``unit`` (shapes or points) predicted alike under all of them.
    """
    return {
        "model": model.name,
        "weights_sha256": model.card["weights"]["sha256"],
        "task": model.task,
        "dataset": {
            "name": dataset,
            "split": "test",
            "shapes": len(test),
            "points_per_shape": int(test.points.shape[1]),
            "complete": limit is None,
        },
        "data_sha256": data_sha256,
        "seed": seed,
        "protocols": results,
        "rotation_agreement": {
            "rotations_per_shape": len(stacked),
            "agreement": float((stacked == stacked[0]).all(axis=0).mean()),
            "unit": unit,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "device": str(next(model.net.parameters()).device),
        "torch": torch.__version__,
    }


def _file_digest(path: Path) -> dict[str, str]:
    return {path.name: sha256_of(path)}


def _evaluate_class_folder(
    model: LoadedModel, root: Path, seed: int, batch_size: int, limit: int | None, progress, log: Callable[[str], None]
) -> dict[str, Any]:
    """Accuracy on a held-out folder of class sub-folders, each named for a class of the model (evaluate_classifier).

    Every file is read and prepared as ``geocli classify`` does, then classified as it is
    (``as given``: a folder's shapes are in the poses they were saved in) and in a seeded
    random rotation (``SO3``); agreement compares the two. Where the model knows classes the
    folder lacks (a shipped 40-class model on a 10-class folder), each protocol also reports
    ``within_folder_classes``: the arg-max taken over the folder's classes only, the choice a
    model trained on that folder has. Unreadable files are one ``log`` line each, left out.
    """
    folders = class_folders(root)
    unknown = [name for name in folders if name not in model.classes]
    if unknown:
        raise ValueError(
            f"{root}: sub-folder{'s' * (len(unknown) > 1)} {', '.join(unknown)} name no class of model "
            f"{model.name!r} (its classes: {', '.join(model.classes)})"
        )
    shapes = read_class_folder(root, folders, model.input_points, log)
    if limit is not None:
        shapes = shapes.subset(np.arange(min(limit, len(shapes))))
    if not len(shapes):
        raise ValueError(f"{root}: no usable shape in its class sub-folders")
    to_model = np.array([model.classes.index(name) for name in folders])
    labels, inside = to_model[shapes.labels], torch.from_numpy(to_model)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    all_predictions = []
    for offset, (name, kind) in enumerate(SEGMENTATION_PROTOCOLS.items()):
        rotations = random_rotations(len(shapes), kind, seed=seed + offset)
        clouds = rotate(torch.from_numpy(shapes.points).double(), rotations).float()
        logits = []
        for start in range(0, len(shapes), batch_size):
            logits.append(predict_logits(model, clouds[start : start + batch_size]))
            if progress:
                progress(name, min(start + batch_size, len(shapes)), len(shapes))
        scores = torch.cat(logits)
        predictions = scores.argmax(1).numpy()
        all_predictions.append(predictions)
        results[name] = accuracy_report(labels, predictions, model.classes)
        if len(folders) < len(model.classes):
            within = to_model[scores[:, inside].argmax(1).numpy()]
            report = accuracy_report(labels, within, model.classes)
            results[name]["within_folder_classes"] = {k: v for k, v in report.items() if not k.startswith("per_")}
    read = {"clouds as read": hashlib.sha256(shapes.points.tobytes() + "\n".join(shapes.names).encode()).hexdigest()}
    stacked = np.stack(all_predictions)
    report = _report(model, f"folder {root}", shapes, read, limit, seed, results, stacked, started, "shapes")
    report["dataset"]["folder"] = str(root)
    return report | {"classes": folders}


def card_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a report that goes on a model card (per-class figures stay in the report)."""
    if not report["dataset"]["complete"]:
        raise ValueError("a report made with --limit is partial and cannot go on a card")
    if "folder" in report["dataset"]:  # a shipped card's figures are its test split's, whatever folders it met
        raise ValueError("a report on a held-out folder does not go on a card; keep the report itself (--out)")
    return {
        "dataset": report["dataset"],
        "seed": report["seed"],
        "protocols": {
            name: {k: round(v, 4) for k, v in figures.items() if not k.startswith("per_")}
            for name, figures in report["protocols"].items()
        },
        "rotation_agreement": report["rotation_agreement"],
        "weights_sha256": report["weights_sha256"],
        "produced_by": "geocli eval",
    }


def update_card(model: str | os.PathLike, report: dict[str, Any]) -> Path:
    """Copy a report's figures (:func:`card_metrics`) onto the card of ``model`` (a name or a card's path),
    the rest of the card as it was; returns the card's path. A partial report is a ``ValueError``."""
    card_path = resolve(model)[0]
    write_card(card_path, {**read_card(card_path), "metrics": card_metrics(report)})
    return card_path
