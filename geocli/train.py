"""Training of invariant classifiers (ModelNet40) and segmenters (Labeled PSB): cached, resumable, seeded.

Every preprocessing step of an invariant model (farthest point sampling, the
canonical frame, the kNN graph, PaRot's patches) depends only on the cloud, not on
how it is posed, so it is computed once per shape and cached; an epoch is then only
the network's forward and backward passes. Rotation augmentation would be a no-op
for an exactly invariant front-end; those families are augmented on their canonical
clouds instead (sign views, per-axis scaling, jitter). Families whose invariance is
learned (PaRot) are rotated, and add their own auxiliary loss.

The run folder holds ``state.safetensors`` + ``state.json`` (the last epoch, to
resume from), ``best.safetensors`` (weights with the best validation accuracy) and
``log.jsonl``. Nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from geocli.api import model_input
from geocli.data import TASK, dataset
from geocli.data.pointset import DataError, PointSet, validation_split
from geocli.defaults import DEFAULT_CLASSIFIER, DEFAULT_SEGMENTER
from geocli.geometry.partial import single_views
from geocli.geometry.rotations import RANDOM_ROTATIONS, frame_jitter
from geocli.io import Geometry
from geocli.io.atomic import atomic_write
from geocli.metrics import segmentation_report
from geocli.nets.registry import DEFAULT_FAMILY, EDGE_TRUNK, INVARIANCE, Network, create_model, get_family
from geocli.ops import farthest_point_sample
from geocli.parts import decode, part_categories
from geocli.precision import autocast, precision_name
from geocli.zoo import ModelError, models_dir, read_card, sha256_of

Log = Callable[[str], None]
RESUMABLE_CHANGES = ("epochs", "validate_after")
RUN_STATE_KEYS = ("config", "classes", "epoch", "best_val", "best_epoch", "history")  # what state.json holds


class RunError(ValueError):
    """A run that cannot start, resume or be exported as asked (its folder, data, start weights or
    hyper-parameters); the message is one line, and the command line reports it as a usage error."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; written to the run folder and the model card."""

    dataset: str = "modelnet40"  # modelnet40 trains a classifier, psb a segmenter
    family: str = DEFAULT_FAMILY
    hparams: dict = field(default_factory=lambda: {"group": "O3", **EDGE_TRUNK})
    points: int = 512
    epochs: int = 14
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.2
    warmup_epochs: float = 1.0
    scale_range: tuple[float, float] = (0.8, 1.25)
    jitter: float = 0.01
    val_fraction: float = 0.1
    validate_after: float = 0.8  # share of epochs before validation starts: early epochs are never the best
    seed: int = 0
    init: str | None = None  # weights to start from, e.g. a shipped checkpoint
    resamples: int = 0  # extra surface samplings of each training mesh (data sets with meshes only)
    partial_views: int = 0  # extra single-view scans of each training shape (classifiers only)
    rotation: str = "so3"  # training rotations ("so3" or "z") for families not exactly invariant
    frame_jitter: float = 0.0  # exactly invariant families: degrees of random turn in the canonical frame
    tie_ratio: float = 1.0  # ... and any turn in planes whose variances tie above this ratio (1: never)

    def to_json(self) -> dict:
        """Plain JSON values (tuples become lists), so a saved config compares equal to a live one."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


# What differs from the defaults when a data set is named; the command line starts from these,
# then applies the family's named recipe (geocli.nets.registry.FAMILIES).
RECIPES: dict[str, dict] = {
    "modelnet40": {},
    "psb": {
        "points": 1024,
        "batch_size": 16,
        "epochs": 12,
        "resamples": 7,
        "label_smoothing": 0.1,
        "val_fraction": 0.2,
        "validate_after": 0.3,
    },
    # The user's own folders (geocli.data.folders): fine-tuning a shipped model (FINE_TUNED below), so a
    # gentle peak rate, a short warm-up, few epochs, and validation after every epoch to select one.
    "folder": {"epochs": 8, "lr": 5e-4, "warmup_epochs": 0.3, "validate_after": 0.0},
    "parts-folder": {
        "points": 1024,
        "batch_size": 16,
        "epochs": 10,
        "lr": 5e-4,
        "warmup_epochs": 0.3,
        "label_smoothing": 0.1,
        "val_fraction": 0.2,
        "validate_after": 0.0,
    },
}
# A folder data set starts from the shipped default model of its task unless told otherwise: the shipped
# trunk has seen thousands of shapes, a user's folder a few hundred. ``--init none`` starts from random weights.
FINE_TUNED = {"folder": DEFAULT_CLASSIFIER, "parts-folder": DEFAULT_SEGMENTER}
NO_INIT = "none"


def recipe(dataset_name: str, family: str | None = None, name: str = "cpu", **overrides) -> TrainConfig:
    """A data set's configuration, then the family's named recipe, then ``overrides`` (None values ignored)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    start = fine_tuning_start(dataset_name, family, name, given)
    family = family or start.get("family") or DEFAULT_FAMILY
    recipes = get_family(family).recipes
    if name not in recipes:
        raise ValueError(f"family {family!r} has no recipe {name!r}; known: {', '.join(recipes)}")
    if given.get("init") == NO_INIT:
        given["init"] = None
    return TrainConfig(
        dataset=dataset_name, **{"family": family, **RECIPES[dataset_name], **recipes[name], **start, **given}
    )


def fine_tuning_start(dataset_name: str, family: str | None, name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The family, network, input size and weights of the shipped model a folder data set fine-tunes by default.

    Only where those weights fit: no ``--init`` (nor ``--init none``), no ``--hparams``, the
    default recipe, and the shipped model's family. Nothing for the built-in data sets.
    """
    if dataset_name not in FINE_TUNED or "init" in given or "hparams" in given or name != "cpu":
        return {}
    card = read_card(models_dir() / f"{FINE_TUNED[dataset_name]}.json")
    if family not in (None, card["family"]):
        return {}
    weights = str(models_dir() / card["weights"].get("file", f"{card['name']}.safetensors"))
    return {"family": card["family"], "hparams": card["hparams"], "points": card["input_points"], "init": weights}


def cache_dir() -> Path:
    return Path(os.environ.get("GEOCLI_CACHE", Path.home() / ".cache" / "geocli"))


def preprocess(model: Network, clouds: np.ndarray, points: int, chunk: int = 256) -> dict[str, Tensor]:
    """FPS subsets of the clouds, what the model prepares from them, and the chosen indices.

    Everything a model prepares depends only on the cloud, not on its pose (canonical
    coordinates and kNN graph; PaRot's normalised points and patch indices), so it is
    stored once: floats as float32, indices as int16, plus ``index`` (S,n) int32 (which
    input point each row is, to pick per-point labels).
    """
    out: dict[str, list[Tensor]] = {}
    with torch.no_grad():
        for start in range(0, len(clouds), chunk):
            raw = torch.from_numpy(clouds[start : start + chunk])
            index = farthest_point_sample(raw, points)  # every point, in order, when the cloud has no more
            sampled = torch.gather(raw, 1, index.unsqueeze(-1).expand(-1, -1, 3))
            prepared = {
                key: value.float() if value.is_floating_point() else value.to(torch.int16)
                for key, value in model.prepare(sampled).items()
            }
            for key, value in {**prepared, "index": index.to(torch.int32)}.items():
                out.setdefault(key, []).append(value)
    return {key: torch.cat(value) for key, value in out.items()}


def cached_preprocess(model: Network, data: PointSet, points: int, tag: str, log: Log) -> dict[str, Tensor]:
    """:func:`preprocess` memoised on disk by content, the model's preparation and sizes."""
    digest = hashlib.sha256()
    digest.update(data.points.tobytes())
    digest.update(json.dumps([3, model.cache_key(), points]).encode())
    path = cache_dir() / f"{tag}-{digest.hexdigest()[:16]}.safetensors"
    if path.is_file():
        return load_file(path)
    started = time.perf_counter()
    tensors = preprocess(model, data.points, points)
    with atomic_write(path) as handle:
        handle.write(_safetensors_bytes(tensors))
    log(f"preprocessed {len(data)} {tag} shapes in {time.perf_counter() - started:.0f}s -> {path}")
    return tensors


# Sensor noise of simulated scans, in cloud radii: depth along the line of sight, and across it.
SCAN_DEPTH_NOISE, SCAN_LATERAL_NOISE = 0.01, 0.003


def scanned(shapes: PointSet, views: int) -> PointSet:
    """``views`` simulated single-view scans of each shape (:mod:`geocli.geometry.partial`), with sensor noise.

    A view keeps about 40 % of a shape's points; it is brought back to the shapes' point
    count as ``geocli classify`` brings a file to the network's (:func:`geocli.api.model_input`),
    so the copies join the data set and go through the same preprocessing as the shapes.
    Seeds come from the view index and the shape's place in the set: the same scans (and
    preprocessing cache) on every run.
    """
    if shapes.labels.ndim != 1:
        raise ValueError("partial views need one label per shape (classification)")
    clouds, labels, names = [], [], []
    for view in range(views):
        seed = zlib.crc32(f"single-view#{view}".encode())
        for scan, label, name in zip(
            single_views(shapes.points, seed, SCAN_DEPTH_NOISE, SCAN_LATERAL_NOISE), shapes.labels, shapes.names
        ):
            geometry = Geometry(path=str(name), points=scan, faces=None, normals=None, colors=None)
            clouds.append(model_input(geometry, shapes.points.shape[1], seed))
            labels.append(label)
            names.append(name)
    return PointSet(np.stack(clouds).astype(np.float32), np.array(labels), np.array(names))


def split_groups(data: PointSet, classes: list[str]) -> np.ndarray:
    """What the validation split is stratified by: a shape's class, or a segmented shape's category
    (that of its most frequent label: a Labeled PSB shape's labels all lie in its own category)."""
    if data.labels.ndim == 1:
        return data.labels
    categories, category_of = part_categories(classes)
    return np.array([categories[int(category_of[np.bincount(labels).argmax()])] for labels in data.labels])


def targets(data: PointSet, index: Tensor) -> Tensor:
    """Shape labels as they are; per-point labels picked at the sampled points."""
    labels = torch.from_numpy(data.labels)
    return labels if labels.ndim == 1 else torch.gather(labels, 1, index.long())


def load_init(model: Network, path: str, log: Log) -> None:
    """Start from another model's weights: every tensor whose name and shape match.

    A segmenter can so start from a classifier's trunk (the heads differ); loading
    nothing at all is an error, not a silent random start.
    """
    own = model.state_dict()
    try:
        given = load_file(path)
    except (OSError, SafetensorError) as error:
        raise RunError(f"{path}: cannot start from it ({error})") from None
    matched = {k: v for k, v in given.items() if k in own and own[k].shape == v.shape}
    if not any(not k.startswith("head.") for k in matched):
        raise RunError(f"{path}: no weights outside the head match this network; cannot start from it")
    model.load_state_dict(matched, strict=False)
    log(f"initialised {len(matched)} of {len(own)} tensors from {path}")


def record_ancestry(run: Path, init: str | None, log: Log) -> None:
    """Snapshot, in ``run/init.json``, the training history of the shipped model a run starts from.

    Runs often continue a shipped checkpoint that their own export then replaces, so the
    history is read at the start, before that can happen, and only from a card whose
    sha256 matches the weights; :func:`geocli.export.export_run` puts it on the new card.
    """
    target = run / "init.json"
    if target.exists() or init is None or not (card_path := Path(init).with_suffix(".json")).is_file():
        return
    try:
        card = read_card(card_path)
    except ModelError as error:
        log(f"not recording where {init} came from: {error}")
        return
    if card["weights"].get("sha256") != sha256_of(Path(init)):
        log(f"not recording where {init} came from: its card describes other weights")
        return
    history = card.get("training", {})
    entry = {
        "model": card["name"],
        "weights_sha256": card["weights"]["sha256"],
        "family": card["family"],
        "started_from": history.get("started_from"),
        "epochs_trained": history.get("epochs_trained"),
        "selected_epoch": history.get("selected_epoch"),
        "lr": history.get("recipe", {}).get("lr"),
    }
    with atomic_write(target, "w") as handle:
        json.dump({"ancestry": [*history.get("ancestry", []), entry]}, handle, indent=1)


def _safetensors_bytes(tensors: dict[str, Tensor]) -> bytes:
    return save({k: v.contiguous() for k, v in tensors.items()})


def augment(
    model: Network, batch: dict[str, Tensor], config: TrainConfig, generator: torch.Generator, labels: Tensor
) -> dict[str, Tensor]:
    """Random per-axis scaling, clipped jitter and rotation, applied by the model to what it prepared.

    The draws are shared; what a model does with them is its own business: exactly
    invariant families scale a random sign view of the canonical cloud and turn it by
    :func:`frame_jitter`'s rotations (a rotation of the raw cloud would change nothing);
    PaRot and the upright reference rotate their clouds. ``labels`` are the batch's targets, for
    a front-end that chooses each cloud's training view by them (:mod:`geocli.nets.confident_up`).
    """
    shape = batch["index"].shape
    low, high = config.scale_range
    scale = low + (high - low) * torch.rand(shape[0], 1, 3, generator=generator)
    noise = (config.jitter * torch.randn(*shape, 3, generator=generator)).clamp(-5 * config.jitter, 5 * config.jitter)
    if INVARIANCE[config.family] == "exact" and "canonical" in batch:
        rotations = frame_jitter(batch["canonical"], config.frame_jitter, config.tie_ratio, generator)
    else:
        rotations = RANDOM_ROTATIONS[config.rotation](shape[0], generator).float()
    return model.augment(batch, scale, noise, rotations, generator, labels)


def learning_rate(config: TrainConfig, progress: float) -> float:
    """Linear warm-up, then cosine decay to zero; ``progress`` is in epochs."""
    if progress < config.warmup_epochs:
        return config.lr * (progress + 1e-3) / config.warmup_epochs
    span = max(config.epochs - config.warmup_epochs, 1e-9)
    return 0.5 * config.lr * (1 + math.cos(math.pi * min(1.0, (progress - config.warmup_epochs) / span)))


def batch_of(cached: dict[str, Tensor], rows: Tensor | slice, device: str) -> dict[str, Tensor]:
    return {key: value[rows].to(device) for key, value in cached.items()}


@torch.no_grad()
def predict_cached(model: Network, cached: dict[str, Tensor], device: str, batch_size: int = 64) -> Tensor:
    """Evaluation-mode outputs for cached preparations, gathered on the CPU."""
    model.eval()
    total = len(cached["index"])
    return torch.cat(
        [
            model.forward_prepared(batch_of(cached, slice(i, i + batch_size), device)).float().cpu()
            for i in range(0, total, batch_size)
        ]
    )


def validation_score(
    model: Network, cached: dict[str, Tensor], labels: Tensor, classes: list[str], device: str, batch_size: int
) -> float:
    """What selects the model: accuracy for classifiers, mean IoU over categories for segmenters."""
    outputs = predict_cached(model, cached, device, batch_size)
    if labels.ndim == 1:
        return float((outputs.argmax(1) == labels).float().mean())
    categories, category_of = part_categories(classes)
    decoded = decode(outputs, category_of)
    return segmentation_report(list(labels.numpy()), list(decoded.labels.numpy()), categories, category_of.numpy())[
        "category_miou"
    ]


def save_state(run: Path, model: Network, optimizer: torch.optim.Optimizer, meta: dict) -> None:
    """Model and optimiser tensors as safetensors, the rest as JSON; both replaced atomically."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = value if isinstance(value, Tensor) else torch.tensor(value)
    with atomic_write(run / "state.safetensors") as handle:
        handle.write(_safetensors_bytes(tensors))
    with atomic_write(run / "state.json", "w") as handle:
        json.dump(meta, handle, indent=1)


def load_state(run: Path, model: Network, optimizer: torch.optim.Optimizer) -> dict:
    """Restore what :func:`save_state` wrote; returns the JSON metadata."""
    tensors = load_file(run / "state.safetensors")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    return json.loads((run / "state.json").read_text())


def read_run(run: Path) -> dict[str, Any]:
    """``state.json`` of a run folder (what :func:`save_state` wrote); :class:`RunError` when ``run`` is not one."""
    state = run / "state.json"
    if not state.is_file():
        what = "no such folder" if not run.exists() else "no state.json: `geocli train --out` makes one"
        raise RunError(f"{run}: not a training run ({what})")
    try:
        meta = json.loads(state.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"{state}: unreadable ({error})") from None
    if not isinstance(meta, dict) or not set(RUN_STATE_KEYS) <= meta.keys():
        raise RunError(f"{state}: not the state of a geocli training run")
    return meta


def resumable_run(run: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The metadata of the run that ``config`` resumes in ``run``, or None when ``run`` holds none yet.

    The epoch budget may change between sessions (the cosine schedule follows it); nothing
    else may, so another configuration is a :class:`RunError` that names what differs. Fields
    added to TrainConfig after a run started take their defaults, which is what the run used.
    """
    if run.exists() and not run.is_dir():
        raise RunError(f"{run}: is a file; --out names a run folder")
    if not (run / "state.json").is_file():
        return None
    saved = read_run(run)
    wanted = config.to_json()
    defaults = {k: v for k, v in TrainConfig().to_json().items() if k not in saved["config"]}
    previous = {**defaults, **saved["config"], **{k: wanted[k] for k in RESUMABLE_CHANGES}}
    changed = [f"{k} {previous.get(k)!r} -> {wanted.get(k)!r}" for k in wanted.keys() | previous.keys()
               if previous.get(k) != wanted.get(k)]  # fmt: skip
    if changed:
        raise RunError(
            f"{run}: existing run has a different configuration ({'; '.join(sorted(changed))}); use a new --out folder"
        )
    return saved


def check_config(config: TrainConfig) -> None:
    """Refuse, before any data is read, hyper-parameters that build no network of the family (one line)."""
    try:
        create_model(config.family, 2, config.hparams, task=TASK[config.dataset])
    except (TypeError, ValueError) as error:
        raise RunError(
            f"hyper-parameters {json.dumps(config.hparams)} build no {config.family} network ({error})"
        ) from None


def train(config: TrainConfig, run: Path, data_root: Path | None = None, device: str = "cpu", log: Log = print) -> dict:
    """Train (or resume) a run in ``run``; returns the final metadata with the history.

    Everything that can be refused (:class:`RunError`: the run folder, the data folder, the
    hyper-parameters, the start weights) is checked before the first epoch.
    """
    saved = resumable_run(run, config)
    check_config(config)
    if config.init and not Path(config.init).is_file():
        raise RunError(f"{config.init}: no such file to start from (--init)")
    data = dataset(config.dataset, log)
    try:
        data_root = data_root or data.default_root()
        classes = data.class_names(data_root)
        full = data.load_split("train", data_root)
    except FileNotFoundError as error:
        missing = f"{error.filename}: {error.strerror}" if error.filename else str(error)
        raise RunError(f"no {config.dataset} data in {data_root} ({missing}); --data names its folder") from None
    except DataError as error:
        raise RunError(str(error)) from None
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = create_model(config.family, len(classes), config.hparams, task=TASK[config.dataset])
    if config.init:
        load_init(model, config.init, log)
        record_ancestry(run, config.init, log)
    train_idx, val_idx = validation_split(split_groups(full, classes), config.val_fraction, config.seed)
    train_set, val_set = full.subset(train_idx), full.subset(val_idx)
    if config.resamples:
        train_set = train_set + data.resampled(train_set, config.resamples, data_root)
    if config.partial_views:
        train_set = train_set + scanned(train_set, config.partial_views)
    tag = f"{config.dataset}-{config.family}"
    train_cache = cached_preprocess(model, train_set, config.points, f"{tag}-train", log)
    val_cache = cached_preprocess(model, val_set, config.points, f"{tag}-val", log)
    train_y, val_y = targets(train_set, train_cache["index"]), targets(val_set, val_cache["index"])

    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    meta = {
        "config": config.to_json(),
        "classes": classes,
        "epoch": 0,
        "best_val": -1.0,
        "best_epoch": 0,
        "history": [],
        "data": {"root": str(data_root), "shapes": len(full)},
        "init_sha256": sha256_of(Path(config.init)) if config.init else None,
    }
    if saved is not None:
        load_state(run, model, optimizer)
        meta = {**meta, **saved, "config": meta["config"]}
        log(
            f"resuming {run} after epoch {meta['epoch']} "
            f"(best val {meta['best_val']:.4f} at epoch {meta['best_epoch']})"
        )
    (run / "config.json").write_text(json.dumps(config.to_json(), indent=1))

    steps_per_epoch = math.ceil(len(train_y) / config.batch_size)
    precision = precision_name(device)  # per machine: a resumed run may have moved to another CPU
    log(f"training on {device} in {precision} (cpu capability {torch.backends.cpu.get_cpu_capability()})")
    for epoch in range(meta["epoch"], config.epochs):
        model.train()
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        torch.manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(train_y), generator=generator)
        started, total_loss, correct, seen = time.perf_counter(), 0.0, 0, 0
        for step in range(steps_per_epoch):
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            if len(batch) < 2:  # BatchNorm needs two samples
                continue
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, epoch + step / steps_per_epoch)
            target = train_y[batch]
            inputs = augment(model, batch_of(train_cache, batch, "cpu"), config, generator, target)
            with autocast(device):
                logits = model.forward_prepared({key: value.to(device) for key, value in inputs.items()}).float()
            loss = (
                criterion(logits.reshape(-1, logits.shape[-1]), target.reshape(-1).to(device))
                + model.auxiliary_loss().float()
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
            correct += int((logits.argmax(-1).cpu() == target).sum())
            seen += target.numel()
            if step % 50 == 0:
                log(
                    f"epoch {epoch + 1} step {step}/{steps_per_epoch} loss {loss.item():.4f} "
                    f"{time.perf_counter() - started:.0f}s"
                )
        val_acc = None
        if epoch + 1 > config.validate_after * config.epochs or epoch + 1 == config.epochs:
            val_acc = validation_score(model, val_cache, val_y, classes, device, config.batch_size)
        record = {
            "epoch": epoch + 1,
            "loss": total_loss / len(train_y),
            "train_acc": correct / max(seen, 1),
            "val_acc": val_acc,
            "seconds": time.perf_counter() - started,
            "precision": precision,
        }
        meta["history"].append(record)
        meta["epoch"] = epoch + 1
        if val_acc is not None and val_acc > meta["best_val"]:
            meta["best_val"], meta["best_epoch"] = val_acc, epoch + 1
            with atomic_write(run / "best.safetensors") as handle:
                handle.write(_safetensors_bytes({k: v.cpu() for k, v in model.state_dict().items()}))
        save_state(run, model, optimizer, meta)
        with open(run / "log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        log(json.dumps(record))
    return meta
