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
protocols' counting towards agreement only. Beside accuracy, each protocol reports the
expected calibration error and the NLL of the scores ``classify`` gives (calibrated at the
card's temperature, :mod:`geocli.calibration`); an ensemble (:mod:`geocli.ensemble`) is
evaluated as one model.

Segmenters are scored on the Labeled PSB test split through the same path as
``geocli segment`` (sample, predict, carry labels back to all 2,048 stored points), once
on the shapes as given and once under seeded SO(3) rotations.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geocli.api import model_input, predict_probabilities, segment_geometry
from geocli.calibration import ECE_BINS, calibration_figures, temperature_of
from geocli.data import psb
from geocli.data.folders import class_folders, is_class_folder, read_class_folder
from geocli.data.modelnet40 import class_names, default_root, load_split
from geocli.data.pointset import PointSet
from geocli.ensemble import Classifier, Ensemble, members_of
from geocli.geometry.partial import single_views
from geocli.geometry.rotations import random_rotations, rotate
from geocli.io import Geometry
from geocli.metrics import accuracy_report, segmentation_report
from geocli.nets.registry import INVARIANCE
from geocli.parts import part_categories
from geocli.zoo import LoadedModel, sha256_of

PROTOCOLS = {"z/z": "z", "z/SO3": "so3", "SO3/SO3": "so3"}
SEGMENTATION_PROTOCOLS = {"as given": "none", "SO3": "so3"}
# The protocols a classifier is evaluated under, by the rotations it was trained with (its card's train_rotation).
PROTOCOLS_BY_TRAIN_ROTATION = {"invariant": ("z/z", "z/SO3", "SO3/SO3"), "z": ("z/z", "z/SO3"), "so3": ("SO3/SO3",)}
LEARNED_AGREEMENT_POSES = 4
# Every test shape seen from one seeded viewpoint (hidden point removal), then posed at random.
SINGLE_VIEW_PROTOCOL = "single-view/SO3"


def protocols_for(model: Classifier) -> tuple[str, ...]:
    """The protocols the training of the model (of every member of an ensemble) allows, in :data:`PROTOCOLS`' order."""
    allowed = [
        PROTOCOLS_BY_TRAIN_ROTATION[m.card.get("training", {}).get("train_rotation", "invariant")]
        for m in members_of(model)
    ]
    shared = tuple(name for name in PROTOCOLS if all(name in each for each in allowed))
    if not shared:
        raise ValueError(f"the members of {model.name} were trained under rotations that share no protocol")
    return shared


def poses_for(model: Classifier, protocols: dict[str, str]) -> list[tuple[str | None, str]]:
    """(protocol or None, rotation kind) for every pose each test shape is evaluated in.

    Exactly invariant models get one pose per protocol; the others (learned invariance, or
    none: an ensemble with one among its members) get extra SO(3) poses (protocol None) up to
    ``LEARNED_AGREEMENT_POSES``, for the agreement over rotations.
    """
    poses: list[tuple[str | None, str]] = [(name, kind) for name, kind in protocols.items()]
    if any(INVARIANCE[member.card["family"]] != "exact" for member in members_of(model)):
        poses += [(None, "so3")] * (LEARNED_AGREEMENT_POSES - len(poses))
    return poses


def classifier_poses(model: Classifier) -> list[tuple[str | None, str]]:
    """:func:`poses_for` a classifier's protocols; pose ``i`` draws its rotations with ``seed + i``."""
    return poses_for(model, {name: PROTOCOLS[name] for name in protocols_for(model)})


def protocol_rotations(model: Classifier, protocol: str, count: int, seed: int) -> torch.Tensor:
    """The rotations :func:`evaluate_classifier` gives the test shapes under ``protocol`` (calibrate reuses them)."""
    offset = [name for name, _ in classifier_poses(model)].index(protocol)
    return random_rotations(count, PROTOCOLS[protocol], seed=seed + offset)


def rotated_outputs(
    predict: Callable[[torch.Tensor], torch.Tensor],
    clouds: torch.Tensor,
    rotations: torch.Tensor,
    batch_size: int,
    progress=None,
    label: str = "",
) -> torch.Tensor:
    """``predict`` (logits or probabilities) of every cloud in its rotation, batch by batch, concatenated."""
    outputs = []
    for start in range(0, len(clouds), batch_size):
        outputs.append(predict(rotate(clouds[start : start + batch_size], rotations[start : start + batch_size])))
        if progress:
            progress(label, min(start + batch_size, len(clouds)), len(clouds))
    return torch.cat(outputs)


def evaluate_classifier(
    model: Classifier,
    data_root: Path | None = None,
    *,
    seed: int = 0,
    batch_size: int = 32,
    limit: int | None = None,
    progress=None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate on the ModelNet40 test split under every protocol the model's training allows.

    Each protocol gets accuracy and, from the calibrated probabilities (the scores classify
    reports), the expected calibration error and the NLL. An ensemble is evaluated as one
    model, on the protocols all its members' training allows. ``limit`` evaluates the first
    shapes only (for smoke tests); reports made with it say so and are never copied onto cards.
    A ``data_root`` of class sub-folders is a held-out folder (:func:`_evaluate_class_folder`;
    ``log`` hears its reading).
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
    for offset, (name, kind) in enumerate(classifier_poses(model)):
        rotations = random_rotations(len(test), kind, seed=seed + offset)
        probabilities = rotated_outputs(
            partial(predict_probabilities, model), clouds, rotations, batch_size, progress, name or "agreement"
        )
        predictions = probabilities.argmax(1).numpy()
        all_predictions.append(predictions)
        if name:
            results[name] = _classifier_figures(test, probabilities, model.classes)
    results[SINGLE_VIEW_PROTOCOL] = _classifier_figures(
        test, _single_view_probabilities(model, test, seed, batch_size, progress), model.classes
    )
    report = _report(
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
    report["calibration"] = {
        "ece_bins": ECE_BINS,
        "temperatures": {member.name: temperature_of(member.card) for member in members_of(model)},
    }
    return report


def _classifier_figures(test: PointSet, probabilities: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Accuracy figures of the most probable classes, then ECE and NLL of the probabilities."""
    predictions = probabilities.argmax(1).numpy()
    figures = accuracy_report(test.labels, predictions, classes)
    return {**figures, **calibration_figures(probabilities, torch.from_numpy(test.labels))}


def _single_view_probabilities(
    model: Classifier, test: PointSet, seed: int, batch_size: int, progress=None
) -> torch.Tensor:
    """Calibrated probabilities of single-view scans of the test shapes, each in a seeded random pose.

    Views hold about 40 % of a shape's points; each goes through the same path as a file
    given to ``geocli classify`` (unit sphere, tiled up to the input size, FPS).
    """
    views = single_views(test.points, seed)
    rotations = random_rotations(len(views), "so3", seed=seed + len(PROTOCOLS) + LEARNED_AGREEMENT_POSES).numpy()
    probabilities = []
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
        probabilities.append(predict_probabilities(model, torch.from_numpy(np.stack(clouds))))
        if progress:
            progress(SINGLE_VIEW_PROTOCOL, min(start + batch_size, len(views)), len(views))
    return torch.cat(probabilities)


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
    for offset, (name, kind) in enumerate(poses_for(model, SEGMENTATION_PROTOCOLS)):
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
    model: Classifier,
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
    if isinstance(model, Ensemble):
        identity: dict[str, Any] = {
            "members": [{"model": m.name, "weights_sha256": m.card["weights"]["sha256"]} for m in model.members]
        }
    else:
        identity = {"weights_sha256": model.card["weights"]["sha256"]}
    return {
        "model": model.name,
        **identity,
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
        "device": str(next(members_of(model)[0].net.parameters()).device),
        "torch": torch.__version__,
    }


def _file_digest(path: Path) -> dict[str, str]:
    return {path.name: sha256_of(path)}


def _evaluate_class_folder(
    model: Classifier, root: Path, seed: int, batch_size: int, limit: int | None, progress, log: Callable[[str], None]
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
        probabilities = []
        for start in range(0, len(shapes), batch_size):
            probabilities.append(predict_probabilities(model, clouds[start : start + batch_size]))
            if progress:
                progress(name, min(start + batch_size, len(shapes)), len(shapes))
        scores = torch.cat(probabilities)
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
