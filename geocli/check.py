"""Invariance, measured on your own data: the same input in many poses, the same answer?

The README's agreement figures are measured on benchmark test sets; a user's scans are
other shapes, sampled otherwise. :func:`check_invariance` gives each input to the model as
it is and in ``rotations`` random poses (a random rotation, a reflection every other time,
a scaling by 0.1 to 10, a shift of up to a few times the shape's size, and the points
shuffled), through the same input path as ``classify`` and ``segment``, and reports how
often the answer stays the same and how far the probabilities move. The exactly invariant
families (see :data:`geocli.nets.registry.INVARIANCE`) must agree 100 % of the time, with
probability changes at float rounding level; PaRot's invariance is learned, and this shows
how far training got on these inputs.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable
from contextlib import closing
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch

from geocli.api import (
    Input,
    NetworkInput,
    _named,
    _segment_prepared,
    as_geometry,
    load_models,
    predict_probabilities,
    prepare_input,
)
from geocli.defaults import DEFAULT_CLASSIFIER
from geocli.ensemble import Classifier
from geocli.geometry.rotations import random_rotations
from geocli.io import Geometry, GeometryError
from geocli.prefetch import prefetch
from geocli.zoo import LoadedModel

REFLECTION = np.diag([-1.0, 1.0, 1.0])


@dataclass
class InvarianceCheck:
    """One input's agreement across poses; ``error`` is set (and the rest empty) when it could not be used.

    ``label`` is the answer for the input as given: the class for a classifier, the shape's
    category for a segmenter. ``agreement`` is the share of the transformed copies given that
    class (classifier) or the share of points, over all copies, whose part label is unchanged
    (segmenter); ``category_agreement`` (segmenters only) the share of copies given the same
    category. ``max_score_change`` is the largest change, over the copies, of the input's
    class probability (classifier) or of a point's label probability, the ``score`` that
    ``segment --scores`` writes (segmenter).
    """

    path: str
    label: str | None = None
    rotations: int | None = None
    agreement: float | None = None
    category_agreement: float | None = None
    max_score_change: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Every field, ``None`` where it does not apply: failed and checked inputs share one schema."""
        return asdict(self)


def transformed_copies(geometry: Geometry, count: int, seed: int) -> list[tuple[Geometry, np.ndarray]]:
    """``count`` copies of ``geometry``, each in a random pose, with the order its points were shuffled into.

    Copy ``i`` holds ``geometry.points[order] @ (s R).T + t``: ``R`` a uniform random rotation
    (composed with a reflection for odd ``i``), ``s`` log-uniform in [0.1, 10], ``t`` a
    Gaussian shift of about five times the scaled shape's radius. A mesh's faces are
    renumbered to follow its shuffled vertices, so its surface is unchanged. Seeded: the
    same ``seed`` gives the same poses.
    """
    rotations = random_rotations(count, "so3", seed).numpy()
    rng = np.random.default_rng(seed)
    points = geometry.points
    radius = float(np.linalg.norm(points - points.mean(axis=0), axis=1).max())
    copies = []
    for i, rotation in enumerate(rotations):
        scale = 10 ** rng.uniform(-1.0, 1.0)
        matrix = scale * (rotation @ REFLECTION if i % 2 else rotation)
        shift = rng.normal(size=3) * 5 * radius * scale
        order = rng.permutation(len(points))
        faces = None if geometry.faces is None else np.argsort(order)[geometry.faces]
        moved = Geometry(
            path=geometry.path, points=points[order] @ matrix.T + shift, faces=faces, normals=None, colors=None
        )
        copies.append((moved, order))
    return copies


def check_geometry(
    model: Classifier, geometry: Geometry, rotations: int, seed: int = 0, batch_size: int = 16
) -> InvarianceCheck:
    """Compare the model's answer for ``geometry`` with its answers for ``rotations`` transformed copies.

    ``seed`` seeds both the poses and mesh surface sampling; the copies of a mesh are
    sampled with the same seed, so they get the same surface points, moved.
    """
    return _check_prepared(model, prepare_check(geometry, model.input_points, rotations, seed), batch_size)


@dataclass
class PreparedCheck:
    """One input, its transformed copies (each with its shuffled order), and the network input of each of them."""

    geometry: Geometry
    copies: list[tuple[Geometry, np.ndarray]]
    prepared: list[NetworkInput]  # the input's first, then each copy's


def prepare_check(geometry: Geometry, n: int, rotations: int, seed: int) -> PreparedCheck:
    """All of :func:`check_geometry`'s work before the network: the copies, and :func:`prepare_input` of each."""
    if rotations < 1:
        raise ValueError(f"rotations must be at least 1, got {rotations}")
    copies = transformed_copies(geometry, rotations, seed)
    prepared = [prepare_input(g, n, seed) for g in (geometry, *(copy for copy, _ in copies))]
    return PreparedCheck(geometry, copies, prepared)


def _check_prepared(model: Classifier, check: PreparedCheck, batch_size: int) -> InvarianceCheck:
    """:func:`check_geometry` from its prepared copies: the network's answers (calibrated scores), compared."""
    if isinstance(model, LoadedModel) and model.task == "segment":
        return _check_segmenter(model, check)
    clouds = np.stack([prepared.cloud for prepared in check.prepared])
    probs = torch.cat(
        [
            predict_probabilities(model, torch.from_numpy(clouds[i : i + batch_size]))
            for i in range(0, len(clouds), batch_size)
        ]
    )
    given = int(probs[0].argmax())
    return InvarianceCheck(
        path=check.geometry.path,
        label=model.classes[given],
        rotations=len(check.copies),
        agreement=float((probs[1:].argmax(dim=1) == given).double().mean()),
        max_score_change=float((probs[1:, given] - probs[0, given]).abs().max()),
    )


def _check_segmenter(model: LoadedModel, check: PreparedCheck) -> InvarianceCheck:
    """Point and category agreement of a segmenter; each copy's labels are compared point by point, order undone."""
    geometry, copies = check.geometry, check.copies
    given = _segment_prepared(model, geometry, check.prepared[0])
    assert given.labels is not None and given.scores is not None  # _segment_prepared sets both
    unchanged, same_category, change = 0, 0, 0.0
    for (copy, order), prepared in zip(copies, check.prepared[1:]):
        result = _segment_prepared(model, copy, prepared)
        unchanged += int((result.labels == given.labels[order]).sum())
        same_category += result.category == given.category
        change = max(change, float(np.abs(result.scores - given.scores[order]).max()))
    return InvarianceCheck(
        path=geometry.path,
        label=given.category,
        rotations=len(copies),
        agreement=unchanged / (len(copies) * len(given.labels)),
        category_agreement=same_category / len(copies),
        max_score_change=change,
    )


def check_invariance(
    inputs: Input | Iterable[Input],
    model: Classifier | str | os.PathLike = DEFAULT_CLASSIFIER,
    *,
    rotations: int = 8,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 16,
    max_points: int | None = None,
    workers: int = 0,
) -> Generator[InvarianceCheck, None, None]:
    """One :class:`InvarianceCheck` per file or (N,3) array, in order; a classifier, an ensemble or a segmenter.

    A generator: a segmenter's check holds a label per point for every copy, and a folder
    of large scans must not be held at once. A bad input yields a result with ``error`` set.
    ``workers`` threads read the next inputs and prepare their copies (:func:`prepare_check`,
    two inputs each at most ahead) while the network checks this one; 0 does it all here.
    """
    if isinstance(model, str | os.PathLike):
        model = load_models(model, device=device)
    prepare = partial(_prepare_named, n=model.input_points, rotations=rotations, seed=seed, max_points=max_points)
    prepared_checks = prefetch(prepare, _named(inputs), workers, 2 * workers)
    with closing(prepared_checks):
        for name, outcome in prepared_checks:
            if isinstance(outcome, GeometryError):
                yield InvarianceCheck(path=name, error=str(outcome))
            else:
                yield _check_prepared(model, outcome, batch_size)


def _prepare_named(
    named: tuple[str, Input], n: int, rotations: int, seed: int, max_points: int | None
) -> tuple[str, PreparedCheck | GeometryError]:
    """Read one input and :func:`prepare_check` it, for :func:`prefetch`; an unusable input is a value, not a raise."""
    name, item = named
    try:
        geometry = as_geometry(item, name, max_points)
    except GeometryError as error:
        return name, error
    return name, prepare_check(geometry, n, rotations, seed)
