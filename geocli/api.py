"""The Python API that the command line is a thin layer over.

>>> import geocli
>>> model = geocli.load_model()                    # the default shipped classifier
>>> geocli.classify("scan.ply", model=model)[0].label
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geocli.geometry.resample import fps_resample
from geocli.geometry.sampling import normalize_unit_sphere, sample_surface
from geocli.io import Geometry, GeometryError, read_geometry
from geocli.zoo import LoadedModel
from geocli.zoo import load_model as _load_model

DEFAULT_CLASSIFIER = "fa-edge-modelnet40"
MESH_SAMPLES_PER_INPUT_POINT = 2  # meshes: 2n area-weighted samples, then FPS to n, as in training

Input = str | os.PathLike | np.ndarray


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' picks CUDA when available; 'cuda' or 'cuda:N' without a GPU is a clear error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available")
    return device


def load_model(name: str | os.PathLike = DEFAULT_CLASSIFIER, device: str = "auto") -> LoadedModel:
    """A shipped model by name, or your own ``.json`` + ``.safetensors`` pair by path."""
    return _load_model(name, device=str(resolve_device(device)))


@dataclass
class Prediction:
    """One input's result; ``error`` is set (and the rest empty) when the input could not be used."""

    path: str
    label: str | None = None
    score: float | None = None
    top_k: list[dict[str, Any]] = field(default_factory=list)
    points: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


def model_input(geometry: Geometry, n: int, seed: int) -> np.ndarray:
    """Unit-sphere cloud of at most ``n`` points from any geometry, ready for the network.

    Meshes are first sampled on their surface (area-weighted, seeded), so the network
    sees the same kind of cloud it was trained on. Clouds with fewer than ``n`` points
    are tiled up to ``n``: duplicates leave max-pooled features unchanged and keep the
    kNN graph defined for tiny inputs.
    """
    points = geometry.points
    if geometry.faces is not None and len(geometry.faces):
        points = sample_surface(points, geometry.faces, MESH_SAMPLES_PER_INPUT_POINT * n, seed=seed)
    if len(points) < n:
        points = np.resize(points, (n, 3))
    normalised, _, _ = normalize_unit_sphere(np.asarray(points, dtype=np.float64))
    return normalised.astype(np.float32)


@torch.no_grad()
def predict_logits(model: LoadedModel, clouds: Tensor) -> Tensor:
    """Logits for (B,N,3) clouds after FPS to the model's input size."""
    device = next(model.net.parameters()).device
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
    batch_size: int = 16,
    device: str = "auto",
    seed: int = 0,
    max_points: int | None = None,
    on_result: Callable[[Prediction], None] | None = None,
) -> list[Prediction]:
    """Classify files or (N,3) arrays; a bad input yields a Prediction with ``error`` set.

    Results come back in input order, and ``on_result`` sees them in that order as soon
    as each is known, so a caller can stream results and show progress on long lists.
    """
    if isinstance(model, str | os.PathLike):
        model = load_model(model, device=device)
    items = [inputs] if isinstance(inputs, str | os.PathLike | np.ndarray) else list(inputs)
    results: list[Prediction | None] = [None] * len(items)
    pending: list[tuple[int, str, np.ndarray]] = []
    emitted = 0

    def settle(position: int, prediction: Prediction) -> None:
        """Store a result and pass on every result now complete in input order."""
        nonlocal emitted
        results[position] = prediction
        while emitted < len(results) and results[emitted] is not None:
            if on_result:
                on_result(results[emitted])
            emitted += 1

    def flush() -> None:
        if not pending:
            return
        logits = predict_logits(model, torch.from_numpy(np.stack([cloud for _, _, cloud in pending])))
        for prediction, (position, _, cloud) in zip(_predictions(model, logits, [n for _, n, _ in pending], top_k), pending):
            prediction.points = int(cloud.shape[0])
            settle(position, prediction)
        pending.clear()

    for position, item in enumerate(items):
        name = f"<array {position}>" if isinstance(item, np.ndarray) else os.fspath(item)
        try:
            cloud = model_input(as_geometry(item, name, max_points), model.input_points, seed)
        except GeometryError as error:
            settle(position, Prediction(path=name, error=str(error)))
            continue
        pending.append((position, name, fps_resample(torch.from_numpy(cloud)[None], model.input_points)[0].numpy()))
        if len(pending) >= batch_size:
            flush()
    flush()
    return results  # type: ignore[return-value]  # every slot is filled by now


def as_geometry(item: Input, name: str, max_points: int | None = None) -> Geometry:
    """Read a file, or validate an in-memory (N,3) array with the same rules as the readers."""
    if not isinstance(item, np.ndarray):
        return read_geometry(item) if max_points is None else read_geometry(item, max_points=max_points)
    array = np.asarray(item, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 3:
        raise GeometryError(f"{name}: expected an (N, 3) array, got shape {array.shape}")
    if len(array) == 0:
        raise GeometryError(f"{name}: no points")
    if not np.isfinite(array[:, :3]).all():
        raise GeometryError(f"{name}: NaN or Inf coordinates")
    return Geometry(path=name, points=array[:, :3], faces=None, normals=None, colors=None)
