"""The Python API that the command line is a thin layer over.

>>> import geocli
>>> model = geocli.load_model()                    # the default shipped classifier
>>> geocli.classify("scan.ply", model=model)[0].label
>>> result = next(geocli.segment("scan.ply"))      # the default shipped segmenter
>>> result.category, result.labels                 # one part label per input point
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geocli.defaults import DEFAULT_CLASSIFIER, DEFAULT_SEGMENTER
from geocli.geometry.quality import shape_warnings
from geocli.geometry.resample import fps_resample, radius_stratified
from geocli.geometry.sampling import normalize_unit_sphere, sample_surface
from geocli.gpu import exact_float32, inference_batch_size
from geocli.io import Geometry, GeometryError, read_geometry, validate_points
from geocli.ops import farthest_point_sample, knn
from geocli.parts import decode, part_categories
from geocli.prefetch import prefetch
from geocli.zoo import LoadedModel
from geocli.zoo import load_model as _load_model

PRESAMPLE_FACTOR = 32  # clouds over 32n points are thinned invariantly before FPS (see radius_stratified)
MESH_SAMPLES_PER_INPUT_POINT = 2  # meshes: 2n area-weighted samples, then FPS to n, as in training

Input = str | os.PathLike | np.ndarray


DEVICE_SPEC = re.compile(r"cpu|cuda(:\d+)?")


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' picks CUDA when available; 'cuda' or 'cuda:N' without a GPU is a clear error.

    Anything else is refused in one line naming the choices: ``torch.device`` would list
    every device type torch knows (twenty of them), most of which geocli cannot run on.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not DEVICE_SPEC.fullmatch(spec):
        raise ValueError(f"unknown device {spec!r}; choose auto, cpu, cuda or cuda:N")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available")
    return device


def load_model(name: str | os.PathLike = DEFAULT_CLASSIFIER, device: str = "auto") -> LoadedModel:
    """A shipped model by name, or your own ``.json`` + ``.safetensors`` pair by path."""
    return _load_model(name, device=str(resolve_device(device)))


def require_task(model: LoadedModel, task: str) -> LoadedModel:
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
    """

    path: str
    label: str | None = None
    score: float | None = None
    top_k: list[dict[str, Any]] = field(default_factory=list)
    points: int | None = None
    source_points: int | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Every field, ``None`` (``[]`` for lists) where it does not apply.

        Failed and classified inputs share one schema, so a consumer never branches on the record's shape.
        """
        return asdict(self)


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
    normalised = normalize_unit_sphere(geometry.points)[0]
    drawn = source_cloud(normalised, geometry.faces, n, seed)
    return NetworkInput(normalised, fps_points(drawn, n).astype(np.float32), shape_warnings(drawn))


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


def _predictions(model: LoadedModel, logits: Tensor, names: Sequence[str], top_k: int) -> list[Prediction]:
    probs = logits.softmax(dim=1)
    scores, index = probs.topk(min(top_k, probs.shape[1]), dim=1)
    out = []
    for name, row_scores, row_index in zip(names, scores.tolist(), index.tolist()):
        top = [{"label": model.classes[i], "score": round(s, 6)} for s, i in zip(row_scores, row_index)]
        out.append(Prediction(path=name, label=top[0]["label"], score=top[0]["score"], top_k=top))
    return out


def classify(
    inputs: Input | Iterable[Input],
    model: LoadedModel | str = DEFAULT_CLASSIFIER,
    *,
    top_k: int = 5,
    batch_size: int | None = None,
    device: str = "auto",
    seed: int = 0,
    max_points: int | None = None,
    workers: int = 0,
    on_result: Callable[[Prediction], None] | None = None,
) -> list[Prediction]:
    """Classify files or (N,3) arrays; a bad input yields a Prediction with ``error`` set.

    Results come back in input order, and ``on_result`` sees them in that order as soon
    as each is known, so a caller can stream results and show progress on long lists
    (:func:`classify_iter` is the same as a generator). ``workers`` and ``batch_size`` as in :func:`classify_iter`.
    """
    results = []
    predictions = classify_iter(
        inputs,
        model,
        top_k=top_k,
        batch_size=batch_size,
        device=device,
        seed=seed,
        max_points=max_points,
        workers=workers,
    )
    with closing(predictions):
        for prediction in predictions:
            if on_result:
                on_result(prediction)
            results.append(prediction)
    return results


def classify_iter(
    inputs: Input | Iterable[Input],
    model: LoadedModel | str = DEFAULT_CLASSIFIER,
    *,
    top_k: int = 5,
    batch_size: int | None = None,
    device: str = "auto",
    seed: int = 0,
    max_points: int | None = None,
    workers: int = 0,
) -> Generator[Prediction, None, None]:
    """:func:`classify`'s predictions as a generator, each yielded in input order as soon as it is known.

    ``workers`` threads read and prepare the next files (:func:`read_prepared`, run exactly as
    with ``workers=0``, which does it here, one file after another) while the network runs
    a batch. The next batch and two files per worker are prepared ahead (:func:`geocli.prefetch.prefetch`),
    so at most two batches and two files per worker are held, however many inputs there are.
    ``batch_size`` clouds go through the network at once: by default 16 on a CPU, and on CUDA
    as many as fill half the free device memory (:func:`geocli.gpu.inference_batch_size`).
    """
    model = _model_for("classify", model, device)
    batch_size = batch_size or inference_batch_size(model)
    entry = partial(classify_entry, n=model.input_points, seed=seed, max_points=max_points)
    window = batch_size + 2 * workers  # a whole next batch is prepared while the network runs this one
    entries = prefetch(entry, _named(inputs), workers, window)
    with closing(entries):
        for group in batch_groups(entries, batch_size):
            yield from predict_group(model, group, top_k)


Entry = Prediction | tuple[str, NetworkInput, int]
"""One input made ready for :func:`predict_group`: its failed Prediction, or (name, network input, points read)."""


def classify_entry(named: tuple[str, Input], n: int, seed: int, max_points: int | None) -> Entry:
    """The per-file work of classify before the network (:func:`read_prepared`); an unusable input is its Prediction."""
    name, outcome = _read_prepared(named, n, seed, max_points)
    if isinstance(outcome, GeometryError):
        return Prediction(path=name, error=str(outcome))
    geometry, prepared = outcome
    return name, prepared, len(geometry.points)


def batch_groups(entries: Iterable[Entry], batch_size: int) -> Iterator[list[Entry]]:
    """classify's network batches, in input order: each group ends with its ``batch_size``-th cloud (or the inputs).

    A failure waits in the group of the clouds before it, to keep input order; one with no
    cloud before it is a group by itself, handed back at once. Which clouds share a batch
    is decided here alone, so a run elsewhere (:mod:`geocli.distributed`) batches exactly
    as a local one: a cloud's logits may differ in their last bits from one batch to another.
    """
    held: list[Entry] = []
    clouds = 0
    for entry in entries:
        held.append(entry)
        clouds += not isinstance(entry, Prediction)
        if clouds == 0 or clouds == batch_size:
            yield held
            held, clouds = [], 0
    if held:
        yield held


def predict_group(model: LoadedModel, group: Sequence[Entry], top_k: int) -> list[Prediction]:
    """Every entry's prediction, in order, after one network pass over the group's clouds."""
    waiting = [entry for entry in group if not isinstance(entry, Prediction)]
    if not waiting:  # failures only
        return [entry for entry in group if isinstance(entry, Prediction)]
    logits = predict_logits(model, torch.from_numpy(np.stack([prepared.cloud for _, prepared, _ in waiting])))
    predictions = iter(_predictions(model, logits, [name for name, _, _ in waiting], top_k))
    out = []
    for entry in group:
        if not isinstance(entry, Prediction):
            _, prepared, source_points = entry
            entry = next(predictions)
            entry.points, entry.source_points = int(prepared.cloud.shape[0]), source_points
            entry.warnings = prepared.warnings
        out.append(entry)
    return out


def read_prepared(item: Input, name: str, n: int, seed: int, max_points: int | None) -> tuple[Geometry, NetworkInput]:
    """The per-file work before the network: read (or validate) the input and :func:`prepare_input` it."""
    geometry = as_geometry(item, name, max_points)
    return geometry, prepare_input(geometry, n, seed)


def _read_prepared(
    named: tuple[str, Input], n: int, seed: int, max_points: int | None
) -> tuple[str, tuple[Geometry, NetworkInput] | GeometryError]:
    """:func:`read_prepared` for :func:`prefetch`: the name goes along, an unusable input is a value, not a raise."""
    name, item = named
    try:
        return name, read_prepared(item, name, n, seed, max_points)
    except GeometryError as error:
        return name, error


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

    def part_counts(self) -> dict[str, int]:
        """Points per predicted part, by part name."""
        if self.labels is None:
            return {}
        values, counts = np.unique(self.labels, return_counts=True)
        return {self.classes[v].split("/", 1)[-1]: int(c) for v, c in zip(values, counts)}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-point arrays); ``warnings`` is always there, ``[]`` when none."""
        if self.error or self.labels is None:
            return {"input": self.path, "error": self.error, "warnings": self.warnings}
        return {
            "input": self.path,
            "category": self.category,
            "points": int(len(self.labels)),
            "parts": self.part_counts(),
            "warnings": self.warnings,
        }


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

    A generator, unlike :func:`classify`: each result holds a label per input point, and
    a folder of million-point scans must not be held in memory at once. A bad input
    yields a result with ``error`` set. ``workers`` threads read and prepare the next
    inputs (two each at most) while the network labels this one, as in :func:`classify_iter`.
    """
    model = _model_for("segment", model, device)
    read = partial(_read_prepared, n=model.input_points, seed=seed, max_points=max_points)
    prepared_inputs = prefetch(read, _named(inputs), workers, 2 * workers)
    with closing(prepared_inputs):
        for name, outcome in prepared_inputs:
            yield segment_outcome(model, name, outcome)


def segment_outcome(
    model: LoadedModel, name: str, outcome: tuple[Geometry, NetworkInput] | GeometryError
) -> Segmentation:
    """One input's :class:`Segmentation` after :func:`read_prepared`: its labels, or its error."""
    if isinstance(outcome, GeometryError):
        return Segmentation(path=name, error=str(outcome))
    return _segment_prepared(model, *outcome)


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
