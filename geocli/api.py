"""The Python API that the command line is a thin layer over.

>>> import geocli
>>> model = geocli.load_model()                    # the default shipped classifier
>>> next(geocli.classify("scan.ply", model=model)).label
>>> result = next(geocli.segment("scan.ply"))      # the default shipped segmenter
>>> result.category, result.labels                 # one part label per input point
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from geocli.calibration import calibrated_probabilities, temperature_of
from geocli.defaults import DEFAULT_CLASSIFIER, DEFAULT_SEGMENTER
from geocli.ensemble import Classifier, Ensemble, ensemble, members_of, model_names
from geocli.geometry.quality import shape_warnings
from geocli.geometry.resample import fps_resample, radius_stratified
from geocli.geometry.sampling import normalize_unit_sphere, sample_surface
from geocli.gpu import exact_float32, inference_batch_size
from geocli.io import Geometry, GeometryError, read_geometry, validate_points
from geocli.ops import farthest_point_sample, knn
from geocli.parts import decode, part_categories
from geocli.pipeline import Prepared, Result, Timings, run
from geocli.zoo import LoadedModel, load_model

PRESAMPLE_FACTOR = 32  # clouds over 32n points are thinned invariantly before FPS (see radius_stratified)
MESH_SAMPLES_PER_INPUT_POINT = 2  # meshes: 2n area-weighted samples, then FPS to n, as in training

Input = str | os.PathLike | np.ndarray
AnyModel = TypeVar("AnyModel", bound=LoadedModel | Ensemble)
UNKNOWN = "unknown"  # the label of a record whose score is below --min-score


def load_models(spec: str | os.PathLike, device: str = "auto") -> Classifier:
    """:func:`~geocli.zoo.load_model`, or an :class:`~geocli.ensemble.Ensemble` when ``spec`` lists models (``a,b``)."""
    names = model_names(spec)
    if len(names) == 1:
        return load_model(names[0], device=device)
    return ensemble([load_model(name, device=device) for name in names])


def require_task(model: AnyModel, task: str) -> AnyModel:
    """Refuse a model trained for the other task, naming the command that uses it."""
    if model.task != task:
        raise ValueError(f"model {model.name!r} is a {model.task} model; use it with `geocli {model.task}`")
    return model


def _model_for(task: str, model: LoadedModel | str | os.PathLike, device: str) -> LoadedModel:
    """Load ``model`` if named, and refuse one trained for the other task."""
    if isinstance(model, str | os.PathLike):
        model = load_model(model, device=device)
    return require_task(model, task)


@dataclass
class Prediction:
    """One input's result; ``error`` is set (and the rest empty) when the input could not be used.

    ``points`` is what the network saw (the model's input size), ``source_points`` what the
    input held as read (a mesh's vertices), so a caller can tell a sparse scan from a dense one.
    ``warnings`` says why a label may mean little although the input could be used (too few
    distinct points, most points at one spot, all on a line or in a plane: see
    :mod:`geocli.geometry.quality`); it is always present, ``[]`` when there is nothing to say.
    ``score`` is the calibrated probability of the most probable class (its card's temperature,
    :mod:`geocli.calibration`); below ``min_score`` the label is ``unknown``, and ``score`` and
    ``top_k`` still say what the network thought. ``model`` names the model, or the ensemble
    (``a+b``), that gave the answer.
    """

    path: str
    label: str | None = None
    score: float | None = None
    top_k: list[dict[str, Any]] = field(default_factory=list)
    points: int | None = None
    source_points: int | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    model: str | None = None
    timings: Timings = field(default_factory=Timings, repr=False, compare=False)

    def to_dict(self, timings: bool = False) -> dict[str, Any]:
        """Every field, ``None`` (``[]`` for lists) where it does not apply; ``timings`` only when asked for.

        Failed and classified inputs share one schema, so a consumer never branches on the record's shape;
        the timings change from run to run, and the record does not.
        """
        record = asdict(self)
        return record if timings else {key: value for key, value in record.items() if key != "timings"}


@dataclass
class NetworkInput:
    """One geometry made ready for a network: its points on the unit sphere, the network's
    (n,3) float32 cloud, and the warnings about the cloud that one was drawn from."""

    normalised: np.ndarray
    cloud: np.ndarray
    warnings: list[str]


def prepare_input(geometry: Geometry, n: int, seed: int) -> NetworkInput:
    """Normalise ``geometry``, draw the network's cloud from it, and say if what it was drawn from is degenerate.

    The warnings look at the points the ``n`` are chosen from (the cloud, or a mesh's
    surface samples) before a small cloud is repeated up to ``n``: after that, three
    points and a real scan both count ``n``.
    """
    normalised, drawn = fps_source(geometry, n, seed)
    return NetworkInput(normalised, fps_points(drawn, n).astype(np.float32), shape_warnings(drawn))


def fps_source(geometry: Geometry, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``geometry``'s points on the unit sphere, and the cloud its network's ``n`` points are then picked from
    by FPS (:func:`source_cloud`): what preparing a file costs before FPS (benchmarks time the rest alone)."""
    normalised = normalize_unit_sphere(geometry.points)[0]
    return normalised, source_cloud(normalised, geometry.faces, n, seed)


def model_input(geometry: Geometry, n: int, seed: int) -> np.ndarray:
    """The network's (n,3) float32 cloud for any geometry (see :func:`network_cloud`)."""
    return prepare_input(geometry, n, seed).cloud


def network_cloud(points: np.ndarray, faces: np.ndarray | None, n: int, seed: int) -> np.ndarray:
    """FPS subset of ``n`` points of unit-sphere-normalised ``points`` (or of their mesh's surface).

    Normalising first, in float64, keeps scans in any units (1e-200 as well as 1e30) finite
    and non-zero in float32. See :func:`source_cloud` and :func:`fps_points`.
    """
    return network_points(points, faces, n, seed).astype(np.float32)


def network_points(points: np.ndarray, faces: np.ndarray | None, n: int, seed: int) -> np.ndarray:
    """:func:`network_cloud`'s points in float64, for frames that must be exact (``geocli align``).

    FPS picks its points in float32, as for the network, and the float64 originals of those
    picks are returned, so casting the result to float32 gives the network's cloud bit for bit.
    """
    return fps_points(source_cloud(points, faces, n, seed), n)


def source_cloud(points: np.ndarray, faces: np.ndarray | None, n: int, seed: int) -> np.ndarray:
    """The float64 cloud the network's ``n`` points are chosen from.

    Meshes are sampled on their surface (2n area-weighted points, seeded, whatever the
    order of faces and vertices), so the network sees the same kind of cloud it was
    trained on. Huge clouds are first thinned to 32n points; others are kept as they are.
    """
    points = np.asarray(points, dtype=np.float64)
    if faces is not None and len(faces):
        points = sample_surface(points, faces, MESH_SAMPLES_PER_INPUT_POINT * n, seed=seed)
    return radius_stratified(points, PRESAMPLE_FACTOR * n)


def fps_points(points: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` float64 points FPS picks (in float32, as for the network) from ``points``.

    Clouds with fewer than ``n`` points are tiled up to ``n``: duplicates leave max-pooled
    features unchanged and keep the kNN graph defined for tiny inputs (and
    :func:`prepare_input`'s warnings say that it happened).
    """
    if len(points) < n:
        points = np.resize(points, (n, 3))
    index = farthest_point_sample(torch.from_numpy(points.astype(np.float32))[None], n)[0]
    return points[index.numpy()]


@torch.no_grad()
def predict_logits(model: LoadedModel, clouds: Tensor) -> Tensor:
    """Logits for (B,N,3) clouds after FPS to the model's input size."""
    device = next(model.net.parameters()).device
    with exact_float32(device):  # on CUDA: no autocast, no TF32 (see geocli.gpu)
        return model.net(fps_resample(clouds.to(device), model.input_points)).float().cpu()


@torch.no_grad()
def predict_probabilities(model: Classifier, clouds: Tensor) -> Tensor:
    """Calibrated class probabilities (float64) for (B,N,3) clouds: each model's softmax at its card's
    temperature, averaged over an ensemble's members. The order of a model's logits is kept, so its labels are."""
    members = members_of(model)
    return torch.stack(
        [calibrated_probabilities(predict_logits(member, clouds), temperature_of(member.card)) for member in members]
    ).mean(dim=0)


def _predictions(
    model: Classifier, probabilities: Tensor, names: Sequence[str], top_k: int, min_score: float | None
) -> list[Prediction]:
    scores, index = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    out = []
    for name, row_scores, row_index in zip(names, scores.tolist(), index.tolist()):
        top = [{"label": model.classes[i], "score": round(s, 6)} for s, i in zip(row_scores, row_index)]
        label = UNKNOWN if min_score is not None and top[0]["score"] < min_score else top[0]["label"]
        out.append(Prediction(path=name, label=label, score=top[0]["score"], top_k=top, model=model.name))
    return out


def classify(
    inputs: Input | Iterable[Input],
    model: Classifier | str = DEFAULT_CLASSIFIER,
    *,
    top_k: int = 5,
    min_score: float | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    seed: int = 0,
    max_points: int | None = None,
    workers: int = 0,
) -> Generator[Prediction, None, None]:
    """Classify files or (N,3) arrays: one :class:`Prediction` per input, in input order, each as soon as known.

    A bad input yields a Prediction with ``error`` set. ``batch_size`` clouds go through the
    network at a time (by default 16 on a CPU, and on CUDA as many as fill half the free device
    memory: :func:`geocli.gpu.inference_batch_size`), and ``workers`` threads read and prepare
    the next files meanwhile (0: here, one after another; the results are the same): see
    :func:`geocli.pipeline.run`, the loop :func:`segment` shares. ``list(classify(...))`` holds them all.
    """
    model = require_task(load_models(model, device) if isinstance(model, str | os.PathLike) else model, "classify")
    batch_size = network_batch(model, batch_size)
    read, sample = input_stages(model, seed, max_points)
    network, failed = classify_stages(model, top_k, min_score)
    return run(_named(inputs), read, sample, network, failed, batch_size=batch_size, workers=workers)


def network_batch(model: Classifier, batch_size: int | None) -> int:
    """``batch_size`` as given, or :func:`geocli.gpu.inference_batch_size` (of an ensemble: its least member's)."""
    return batch_size or min(inference_batch_size(member) for member in members_of(model))


classify_iter = classify  # its name while classify returned a list; code written against it keeps working

Network = Callable[[list[Prepared[NetworkInput]]], list[Result]]
"""The network stage of :func:`geocli.pipeline.run`: one result per prepared input of a batch, in order."""
Failed = Callable[[Prepared[NetworkInput]], Result]
"""The result of an input that could not be read or sampled."""


def input_stages(
    model: Classifier, seed: int, max_points: int | None
) -> tuple[Callable[[Input, str], Geometry], Callable[[Geometry], NetworkInput]]:
    """The stages every model shares before its network: read (:func:`as_geometry`), sample (:func:`prepare_input`)."""
    return partial(as_geometry, max_points=max_points), partial(prepare_input, n=model.input_points, seed=seed)


def classify_stages(
    model: Classifier, top_k: int, min_score: float | None
) -> tuple[Network[Prediction], Failed[Prediction]]:
    """:func:`classify`'s network and failure stages, for :func:`geocli.pipeline.run` here or a worker elsewhere."""

    def network(batch: list[Prepared[NetworkInput]]) -> list[Prediction]:
        """The batch's predictions, after one network pass over its clouds."""
        ready = [entry.ready for entry in batch if entry.ready is not None]
        probabilities = predict_probabilities(model, torch.from_numpy(np.stack([prepared.cloud for prepared in ready])))
        predictions = _predictions(model, probabilities, [entry.name for entry in batch], top_k, min_score)
        for prediction, entry, prepared in zip(predictions, batch, ready):
            assert entry.geometry is not None  # set on every prepared input
            prediction.points, prediction.source_points = int(prepared.cloud.shape[0]), len(entry.geometry.points)
            prediction.warnings = prepared.warnings
        return predictions

    return network, lambda entry: Prediction(path=entry.name, error=entry.error, model=model.name)


def _named(inputs: Input | Iterable[Input]) -> Iterator[tuple[str, Input]]:
    return ((_name(item, position), item) for position, item in enumerate(_items(inputs)))


def _items(inputs: Input | Iterable[Input]) -> list[Input]:
    return [inputs] if isinstance(inputs, str | os.PathLike | np.ndarray) else list(inputs)


def _name(item: Input, position: int) -> str:
    return f"<array {position}>" if isinstance(item, np.ndarray) else os.fspath(item)


@dataclass
class Segmentation:
    """One input's part labels, at the input's own resolution (every point, or every mesh vertex).

    ``labels`` index ``classes`` (``Category/part`` names); ``face_labels`` is set for
    meshes. ``geometry`` is the input as read, so a writer can put labels beside it.
    ``warnings`` is as in :class:`Prediction`.
    """

    path: str
    classes: list[str] = field(default_factory=list, repr=False)
    category: str | None = None
    labels: np.ndarray | None = None
    scores: np.ndarray | None = None
    face_labels: np.ndarray | None = None
    geometry: Geometry | None = field(default=None, repr=False)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings, repr=False, compare=False)

    def part_counts(self) -> dict[str, int]:
        """Points per predicted part, by part name."""
        if self.labels is None:
            return {}
        values, counts = np.unique(self.labels, return_counts=True)
        return {self.classes[v].split("/", 1)[-1]: int(c) for v, c in zip(values, counts)}

    def to_dict(self, timings: bool = False) -> dict[str, Any]:
        """A JSON-ready summary (no per-point arrays); ``warnings`` is always there, ``[]`` when none, and
        ``timings`` (:class:`geocli.pipeline.Timings`) only when asked for."""
        if self.error or self.labels is None:
            record: dict[str, Any] = {"input": self.path, "error": self.error, "warnings": self.warnings}
        else:
            record = {
                "input": self.path,
                "category": self.category,
                "points": int(len(self.labels)),
                "parts": self.part_counts(),
                "warnings": self.warnings,
            }
        return {**record, "timings": self.timings.to_dict()} if timings else record


def nearest(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Index of each query's nearest reference point (kd-tree with torch-cluster, else blockwise exact)."""
    refs, qry = (torch.from_numpy(np.asarray(a, dtype=np.float32))[None] for a in (references, queries))
    return knn(refs, 1, qry)[0, :, 0].numpy()


def segment_geometry(model: LoadedModel, geometry: Geometry, seed: int = 0) -> Segmentation:
    """Label every point (mesh: vertex and face) of one geometry.

    The network sees an FPS sample of ``model.input_points``; each input point then takes
    the label of its nearest sample. Distances do not change under rotation, reflection
    or scaling, so the carried-back labels stay invariant, and they follow any
    permutation of the input points.
    """
    return _segment_prepared(model, geometry, prepare_input(geometry, model.input_points, seed))


def _segment_prepared(model: LoadedModel, geometry: Geometry, prepared: NetworkInput) -> Segmentation:
    """:func:`segment_geometry` after :func:`prepare_input`: the network, and its labels carried back to every point."""
    normalised, cloud = prepared.normalised, prepared.cloud
    categories, category_of = part_categories(model.classes)
    decoded = decode(predict_logits(model, torch.from_numpy(cloud)[None]), category_of)
    labels, scores = decoded.labels[0].numpy(), decoded.scores[0].numpy()
    index = nearest(normalised, cloud)
    face_labels = None
    if geometry.faces is not None and len(geometry.faces):
        face_labels = labels[nearest(normalised[geometry.faces].mean(axis=1), cloud)]
    return Segmentation(
        path=geometry.path,
        classes=model.classes,
        category=categories[int(decoded.category[0])],
        labels=labels[index],
        scores=scores[index],
        face_labels=face_labels,
        geometry=geometry,
        warnings=prepared.warnings,
    )


def segment(
    inputs: Input | Iterable[Input],
    model: LoadedModel | str = DEFAULT_SEGMENTER,
    *,
    device: str = "auto",
    seed: int = 0,
    max_points: int | None = None,
    workers: int = 0,
) -> Generator[Segmentation, None, None]:
    """Part labels for files or (N,3) arrays, one :class:`Segmentation` per input, in order.

    The same generator as :func:`classify` (:func:`geocli.pipeline.run`), one input per network
    pass: each result holds a label per input point, and a folder of million-point scans
    must not be held in memory at once. A bad input yields a result with ``error`` set.
    ``workers`` threads read and prepare the next inputs (two each at most) meanwhile.
    """
    model = _model_for("segment", model, device)
    read, sample = input_stages(model, seed, max_points)
    return run(_named(inputs), read, sample, *segment_stages(model), batch_size=1, workers=workers)


def segment_stages(model: LoadedModel) -> tuple[Network[Segmentation], Failed[Segmentation]]:
    """:func:`segment`'s network and failure stages, for :func:`geocli.pipeline.run` here or a worker elsewhere."""

    def network(batch: list[Prepared[NetworkInput]]) -> list[Segmentation]:
        results = []
        for entry in batch:
            assert entry.geometry is not None and entry.ready is not None  # set on every prepared input
            results.append(_segment_prepared(model, entry.geometry, entry.ready))
        return results

    return network, lambda entry: Segmentation(path=entry.name, error=entry.error)


def as_geometry(item: Input, name: str, max_points: int | None = None) -> Geometry:
    """Read a file, or validate an in-memory (N,3) array with the same rules as the readers."""
    if not isinstance(item, np.ndarray):
        return read_geometry(item) if max_points is None else read_geometry(item, max_points=max_points)
    try:
        array = np.asarray(item, dtype=np.float64)
    except (TypeError, ValueError):
        raise GeometryError(name, f"expected a numeric (N, 3) array, got dtype {item.dtype}") from None
    if array.ndim != 2 or array.shape[1] < 3:
        raise GeometryError(name, f"expected an (N, 3) array, got shape {array.shape}")
    return Geometry(path=name, points=validate_points(name, array[:, :3]), faces=None, normals=None, colors=None)
