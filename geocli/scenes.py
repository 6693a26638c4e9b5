"""Classify and segment the objects of scene scans (``--clusters``): each object as if it were its own input.

A scan of a room holds several objects on a floor; the networks were trained on one object
at a time. :func:`classify_scenes` and :func:`segment_scenes` split each scene
(:func:`geocli.clusters.split_scene`: the floor plane removed, the rest clustered) and give
each object exactly what a file holding only that object would get: the same preparation
(:func:`geocli.api.prepare_input`), the same network and decoding. Reading and splitting the
next scenes runs in ``workers`` threads, as :func:`geocli.api.classify_iter` reads files.

>>> for scene in classify_scenes(["room.ply"]):
...     for found in scene.objects:
...         print(found.instance, found.label, found.instance_points, found.centroid)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np
import torch

from geocli.api import (
    Input,
    NetworkInput,
    Prediction,
    Segmentation,
    _model_for,
    _named,
    _predictions,
    _segment_prepared,
    as_geometry,
    load_models,
    network_batch,
    predict_probabilities,
    prepare_input,
    require_task,
)
from geocli.clusters import ClusterOptions, SceneSplit, split_scene
from geocli.defaults import DEFAULT_CLASSIFIER, DEFAULT_SEGMENTER
from geocli.ensemble import Classifier
from geocli.io import Geometry, GeometryError
from geocli.prefetch import prefetch
from geocli.zoo import LoadedModel

Result = TypeVar("Result")


@dataclass
class ObjectPrediction(Prediction):
    """One object of a scene: :class:`~geocli.api.Prediction`'s fields (``path`` the scene's,
    ``source_points`` the scene's points as read), then ``instance`` (its id in the scene,
    0 for the largest), ``instance_points`` (the scene's points it holds), and its ``centroid``
    and ``bounds`` (``{"min": [x, y, z], "max": [x, y, z]}``) in the scene's units.
    A scene that could not be read, or in which no object was found, gets one record whose
    ``instance`` is ``None``, with the ``error`` or a warning."""

    instance: int | None = None
    instance_points: int | None = None
    centroid: list[float] | None = None
    bounds: dict[str, list[float]] | None = None


@dataclass
class SceneClassification:
    """A scene's objects, each classified (:class:`ObjectPrediction`); ``error`` when it could not be read."""

    path: str
    objects: list[ObjectPrediction] = field(default_factory=list)
    error: str | None = None
    split: SceneSplit | None = field(default=None, repr=False)
    model: str | None = None

    def records(self) -> list[dict[str, Any]]:
        """One record per object; a scene that failed or holds no object still gets one (:class:`ObjectPrediction`)."""
        if self.error:
            return [ObjectPrediction(path=self.path, error=self.error, model=self.model).to_dict()]
        if not self.objects:
            return [ObjectPrediction(path=self.path, warnings=[NO_OBJECT], model=self.model).to_dict()]
        return [found.to_dict() for found in self.objects]


OBJECT_CSV_COLUMNS = [
    "instance",
    "instance_points",
    *(f"{key}_{axis}" for key in ("centroid", "min", "max") for axis in "xyz"),
]


def object_csv_cells(record: dict[str, Any]) -> dict[str, Any]:
    """An :class:`ObjectPrediction` record's cells for :data:`OBJECT_CSV_COLUMNS`: centroid and bounds spread
    over ``centroid_x, ..., min_x, ..., max_z`` (``None`` where the record has no object)."""
    corners = record["bounds"] or {"min": None, "max": None}
    vectors = {"centroid": record["centroid"], **corners}
    spread = {
        f"{key}_{axis}": None if vector is None else vector[i]
        for key, vector in vectors.items()
        for i, axis in enumerate("xyz")
    }
    return {"instance": record["instance"], "instance_points": record["instance_points"], **spread}


NO_OBJECT = "no object found: nothing is left once the floor and the clusters too small to be an object are removed"


@dataclass
class SceneSegmentation(Segmentation):
    """A scene's part labels, :class:`~geocli.api.Segmentation`'s for the whole scan: ``labels`` -1 and
    ``scores`` 0 where a point belongs to no object (the floor, noise), ``instances`` each point's
    object (-1 likewise), ``objects`` each object's own :class:`~geocli.api.Segmentation`
    (its ``labels`` are for the points ``split.objects[i]`` names). ``category`` is ``None``:
    each object has its own. Objects' warnings are the scene's, each prefixed ``object <i>:``."""

    instances: np.ndarray | None = None
    objects: list[Segmentation] = field(default_factory=list)
    split: SceneSplit | None = field(default=None, repr=False)

    def to_dict(self, timings: bool = False) -> dict[str, Any]:
        """The scene's summary: its points, those in no object, and per object its category, points and parts
        (``timings`` as in :meth:`geocli.api.Segmentation.to_dict`)."""
        if self.error or self.labels is None or self.instances is None:
            return super().to_dict(timings)
        objects = [
            {
                "instance": i,
                "category": found.category,
                "points": 0 if found.labels is None else len(found.labels),
                "parts": found.part_counts(),
            }
            for i, found in enumerate(self.objects)
        ]
        return {
            "input": self.path,
            "points": len(self.labels),
            "background_points": int((self.instances < 0).sum()),
            "objects": objects,
            "warnings": self.warnings,
            **({"timings": self.timings.to_dict()} if timings else {}),
        }


@dataclass
class _SplitScene:
    """A scene read, split and its objects prepared for the network (the work done ahead in threads)."""

    geometry: Geometry
    split: SceneSplit
    objects: list[Geometry]
    inputs: list[NetworkInput]


def object_geometry(geometry: Geometry, indices: np.ndarray) -> Geometry:
    """The part of ``geometry`` at ``indices``: those points (normals, colours), a mesh's faces wholly among them."""
    faces = None
    if geometry.faces is not None and len(geometry.faces):
        place = np.full(len(geometry.points), -1, dtype=np.int64)
        place[indices] = np.arange(len(indices))
        inside = geometry.faces[(place[geometry.faces] >= 0).all(axis=1)]
        faces = place[inside] if len(inside) else None
    return Geometry(
        path=geometry.path,
        points=geometry.points[indices],
        faces=faces,
        normals=None if geometry.normals is None else geometry.normals[indices],
        colors=None if geometry.colors is None else geometry.colors[indices],
    )


def read_scene(
    item: Input, name: str, n: int, seed: int, max_points: int | None, options: ClusterOptions
) -> _SplitScene:
    """Read a scene, split it into objects and prepare each one for a network of ``n`` input points."""
    geometry = as_geometry(item, name, max_points)
    split = split_scene(geometry.points, options)
    objects = [object_geometry(geometry, indices) for indices in split.objects]
    return _SplitScene(geometry, split, objects, [prepare_input(found, n, seed) for found in objects])


def _read_scene(
    named: tuple[str, Input], n: int, seed: int, max_points: int | None, options: ClusterOptions
) -> tuple[str, _SplitScene | GeometryError]:
    """:func:`read_scene` for :func:`prefetch`: the name goes along, an unusable input is a value, not a raise."""
    name, item = named
    try:
        return name, read_scene(item, name, n, seed, max_points, options)
    except GeometryError as error:
        return name, error


def _per_scene(
    inputs: Input | Iterable[Input],
    model: Classifier,
    kind: Callable[..., Result],
    done: Callable[[str, _SplitScene], Result],
    reading: tuple[int, int | None, int, ClusterOptions | None],
) -> Generator[Result, None, None]:
    """``done(name, scene)`` for each input split into objects (``kind(path=name, error=...)`` where it cannot
    be read), in order; ``reading`` is ``(seed, max_points, workers, options)``, as the callers take them."""
    seed, max_points, workers, options = reading
    read = partial(
        _read_scene, n=model.input_points, seed=seed, max_points=max_points, options=options or ClusterOptions()
    )
    scenes = prefetch(read, _named(inputs), workers, 2 * workers)
    with closing(scenes):
        for name, scene in scenes:
            yield kind(path=name, error=str(scene)) if isinstance(scene, GeometryError) else done(name, scene)


def classify_scenes(
    inputs: Input | Iterable[Input],
    model: Classifier | str = DEFAULT_CLASSIFIER,
    *,
    options: ClusterOptions | None = None,
    device: str = "auto",
    top_k: int = 5,
    min_score: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    max_points: int | None = None,
    workers: int = 0,
) -> Generator[SceneClassification, None, None]:
    """Each scene's objects, classified (one :class:`SceneClassification` per input, in order).

    Arguments as for :func:`geocli.api.classify_iter`; ``options`` say how scenes are split.
    """
    loaded = require_task(load_models(model, device) if isinstance(model, str | os.PathLike) else model, "classify")
    batch_size = network_batch(loaded, batch_size)
    classified = partial(_classify_objects, loaded, top_k=top_k, min_score=min_score, batch_size=batch_size)
    kind = partial(SceneClassification, model=loaded.name)
    return _per_scene(inputs, loaded, kind, classified, (seed, max_points, workers, options))


def _classify_objects(
    model: Classifier, name: str, scene: _SplitScene, top_k: int, min_score: float | None, batch_size: int
) -> SceneClassification:
    """Every object of one scene classified, ``batch_size`` objects a network pass."""
    found: list[ObjectPrediction] = []
    for start in range(0, len(scene.inputs), batch_size):
        batch = scene.inputs[start : start + batch_size]
        probabilities = predict_probabilities(model, torch.from_numpy(np.stack([prepared.cloud for prepared in batch])))
        predictions = _predictions(model, probabilities, [name] * len(batch), top_k, min_score)
        for prediction, prepared in zip(predictions, batch):
            instance = len(found)
            points = scene.objects[instance].points
            found.append(
                ObjectPrediction(
                    **{
                        **asdict(prediction),
                        "points": len(prepared.cloud),
                        "source_points": len(scene.geometry.points),
                        "warnings": prepared.warnings,
                    },
                    instance=instance,
                    instance_points=len(points),
                    centroid=points.mean(axis=0).tolist(),
                    bounds={"min": points.min(axis=0).tolist(), "max": points.max(axis=0).tolist()},
                )
            )
    return SceneClassification(name, found, split=scene.split, model=model.name)


def segment_scenes(
    inputs: Input | Iterable[Input],
    model: LoadedModel | str = DEFAULT_SEGMENTER,
    *,
    options: ClusterOptions | None = None,
    device: str = "auto",
    seed: int = 0,
    max_points: int | None = None,
    workers: int = 0,
) -> Generator[SceneSegmentation, None, None]:
    """Each scene's objects, segmented one by one (one :class:`SceneSegmentation` per input, in order).

    Arguments as for :func:`geocli.api.segment`; ``options`` say how scenes are split.
    """
    loaded = _model_for("segment", model, device)
    return _per_scene(
        inputs, loaded, SceneSegmentation, partial(_segment_objects, loaded), (seed, max_points, workers, options)
    )


def _segment_objects(model: LoadedModel, name: str, scene: _SplitScene) -> SceneSegmentation:
    """One scene's labels: each object segmented as its own input, its labels put back at its points."""
    count = len(scene.geometry.points)
    labels, scores = np.full(count, -1, dtype=np.int64), np.zeros(count, dtype=np.float32)
    objects, warnings = [], [] if scene.objects else [NO_OBJECT]
    for instance, (indices, found, prepared) in enumerate(zip(scene.split.objects, scene.objects, scene.inputs)):
        result = _segment_prepared(model, found, prepared)
        assert result.labels is not None and result.scores is not None  # set on every success
        labels[indices], scores[indices] = result.labels, result.scores
        warnings += [f"object {instance}: {warning}" for warning in result.warnings]
        objects.append(result)
    return SceneSegmentation(
        path=name,
        classes=model.classes,
        labels=labels,
        scores=scores,
        geometry=scene.geometry,
        warnings=warnings,
        instances=scene.split.instances,
        objects=objects,
        split=scene.split,
    )
