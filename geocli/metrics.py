"""Figures that training, evaluation and cards share: accuracy for classifiers, IoU for segmenters."""

from __future__ import annotations

from typing import Any

import numpy as np


def accuracy_report(labels: np.ndarray, predictions: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Overall accuracy, mean per-class accuracy and each class's accuracy."""
    per_class = {
        name: float((predictions[labels == i] == i).mean()) for i, name in enumerate(classes) if (labels == i).any()
    }
    return {
        "overall_accuracy": float((predictions == labels).mean()),
        "mean_class_accuracy": float(np.mean(list(per_class.values()))),
        "per_class_accuracy": per_class,
    }


def shape_iou(labels: np.ndarray, predictions: np.ndarray, parts: np.ndarray) -> float:
    """Mean IoU over the parts of the shape's category; a part absent from both counts as 1.

    The convention of the ShapeNet-part and PSB literature: a shape is scored on its
    own category's parts, so a point given another category's part is simply wrong.
    """
    ious = []
    for part in parts:
        truth, guess = labels == part, predictions == part
        union = np.logical_or(truth, guess).sum()
        ious.append(1.0 if union == 0 else np.logical_and(truth, guess).sum() / union)
    return float(np.mean(ious))


def segmentation_report(
    labels: list[np.ndarray],
    predictions: list[np.ndarray],
    categories: list[str],
    category_of: np.ndarray,
    predicted_categories: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per-point accuracy, mean IoU per category, over categories and over shapes.

    ``labels`` and ``predictions`` hold one array of class indices per shape (shapes
    may differ in size); ``category_of`` maps a class to its category.
    """
    shape_category = np.array([category_of[label[0]] for label in labels])
    ious = np.array(
        [
            shape_iou(label, guess, np.flatnonzero(category_of == category))
            for label, guess, category in zip(labels, predictions, shape_category)
        ]
    )
    per_category = {categories[c]: float(ious[shape_category == c].mean()) for c in np.unique(shape_category)}
    correct = sum(int((label == guess).sum()) for label, guess in zip(labels, predictions))
    report: dict[str, Any] = {
        "point_accuracy": correct / sum(len(label) for label in labels),
        "category_miou": float(np.mean(list(per_category.values()))),
        "instance_miou": float(ious.mean()),
        "per_category_miou": per_category,
    }
    if predicted_categories is not None:
        report["category_accuracy"] = float((np.asarray(predicted_categories) == shape_category).mean())
    return report


def instance_matches(truth: np.ndarray, predicted: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """For each true instance 0..K-1 of ``truth`` (per point, -1: none), the predicted instance whose
    points overlap it with an IoU of ``threshold`` or more, or -1 where none does.

    With a threshold of 0.5 or more, no two predicted instances can both match one true instance,
    nor one predicted instance two true ones, so "matched" means matched to exactly one cluster.
    Where two tie at the threshold, the lower-numbered one is taken.
    """
    truth, predicted = np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    count, found = int(truth.max(initial=-1)) + 1, int(predicted.max(initial=-1)) + 1
    both = (truth >= 0) & (predicted >= 0)
    overlap = np.zeros((count, found), dtype=np.int64)
    np.add.at(overlap, (truth[both], predicted[both]), 1)
    sizes_true = np.bincount(truth[truth >= 0], minlength=count)[:, None]
    sizes_found = np.bincount(predicted[predicted >= 0], minlength=found)[None, :]
    iou = overlap / np.maximum(sizes_true + sizes_found - overlap, 1)
    if found == 0:
        return np.full(count, -1, dtype=np.int64)
    best = iou.argmax(axis=1)
    return np.where(iou[np.arange(count), best] >= threshold, best, -1)
