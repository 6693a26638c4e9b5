"""The model zoo: shipped checkpoints, their cards, and safe loading.

A model is two files: ``<name>.safetensors`` (weights, never pickled) and
``<name>.json`` (its card: family, hyper-parameters, classes, input size, training
recipe, measured metrics and the weights' sha256). The card alone is enough to
rebuild the network through :func:`geocli.nets.registry.create_model`, so loading
runs no code from disk. Loading refuses weights whose hash differs from the card,
files that are not safetensors (pickles above all) and cards that do not describe
the tensors they come with.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypedDict, cast, get_origin, get_type_hints, is_typeddict

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from geocli.defaults import DEFAULT_CLASSIFIER
from geocli.devices import resolve_device
from geocli.io.atomic import atomic_write
from geocli.io.errors import one_line
from geocli.nets.registry import TASKS, Network, create_model

CARD_VERSION = 1  # what save_model writes
READABLE_CARD_VERSIONS = (1,)  # what read_card accepts; a card without card_version predates it and is 1
MAX_INPUT_POINTS = 1 << 16
"""A network's input is a sample of the cloud (the shipped models take 512 or 1024 points); a card asking for
more is a mistake, and one asking for 10**12 made every input allocate terabytes before anything was said."""


class WeightsInfo(TypedDict, total=False):
    """A card's ``weights``: what :func:`save_model` wrote; loading checks ``sha256`` against the file."""

    file: str
    dtype: str
    sha256: str
    bytes: int


class CalibrationInfo(TypedDict, total=False):
    """A card's ``calibration``, written by ``geocli calibrate --update-card`` (:mod:`geocli.calibrate`).

    ``temperature`` divides the logits before the softmax wherever a score is reported; a card
    without the block is used at 1. The rest says where ``temperature`` was fitted and what it
    changed: expected calibration error and NLL before and after, on the validation split it was
    fitted on and on the test split. ``weights_sha256`` names the weights it was fitted for: a
    card whose weights are not those is refused (its scores would be wrong), as for ``metrics``.
    """

    temperature: float
    method: str
    ece_bins: int
    validation: dict[str, Any]
    test: dict[str, Any]
    seed: int
    data_sha256: dict[str, str]
    weights_sha256: str
    produced_by: str


class _CardCore(TypedDict):
    """What every card has: enough to rebuild the network (:func:`create_model`) and name its outputs."""

    name: str
    family: str
    task: str  # one of geocli.nets.registry.TASKS
    hparams: dict[str, Any]
    classes: list[str]
    input_points: int
    weights: WeightsInfo


class ModelCard(_CardCore, total=False):
    """A model card, version 1: the JSON object beside a model's weights, as :func:`read_card` returns it.

    A TypedDict, not a class of its own, so that a card stays the JSON object it is on disk
    (keys, order and any extra key kept, so ``geocli models NAME`` and ``eval --update-card``
    give back what they read), while mypy and :func:`validate_card` both read its fields from
    this one declaration. ``training`` and ``metrics`` are written by export and eval.
    """

    card_version: int
    description: str
    invariance: str  # "exact", "learned" or "none" (geocli.nets.registry.Invariance)
    parameters: int
    training: dict[str, Any]
    metrics: dict[str, Any]
    comparison: dict[str, Any]  # a note some cards carry (TinvNN against Frame Averaging)
    calibration: CalibrationInfo


_CARD_FIELDS = get_type_hints(ModelCard)


def validate_card(data: object, source: str | os.PathLike) -> ModelCard:
    """``data`` as a :class:`ModelCard`, or a one-line :class:`ModelError` that names ``source`` and the problem.

    The one place a card is checked: reading a user's card, and writing any card, go through
    here, so a card that loads today is never refused by another command, nor the reverse.
    """
    if not isinstance(data, dict):
        raise ModelError(f"{source}: a model card is a JSON object, not {type(data).__name__}")
    version = data.get("card_version", 1)
    if version not in READABLE_CARD_VERSIONS or isinstance(version, bool):
        readable = ", ".join(map(str, READABLE_CARD_VERSIONS))
        raise ModelError(
            f"{source}: card_version {version!r} is not one this geocli reads ({readable}); "
            "a newer geocli wrote it, or the file is not a model card"
        )
    missing = ModelCard.__required_keys__ - data.keys()
    if missing:
        raise ModelError(f"{source}: model card lacks {', '.join(sorted(missing))}")
    for key, hint in _CARD_FIELDS.items():
        kind = get_origin(hint) or (dict if is_typeddict(hint) else hint)
        if key in data and (not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool))):
            raise ModelError(
                f"{source}: model card field {key!r} should be {kind.__name__}, not {type(data[key]).__name__}"
            )
    if data["task"] not in TASKS:
        raise ModelError(f"{source}: model card task {data['task']!r} is not one of {', '.join(TASKS)}")
    if not data["classes"] or not all(isinstance(name, str) for name in data["classes"]):
        raise ModelError(f"{source}: model card classes should be a non-empty list of names")
    if not 1 <= data["input_points"] <= MAX_INPUT_POINTS:
        raise ModelError(
            f"{source}: model card input_points should be 1 to {MAX_INPUT_POINTS:,}, not {data['input_points']:,}"
        )
    if "calibration" in data:
        _validate_calibration(data["calibration"], data["weights"], source)
    return cast(ModelCard, data)


def _validate_calibration(calibration: dict[str, Any], weights: dict[str, Any], source: str | os.PathLike) -> None:
    """A temperature that is a positive finite number, fitted for these weights (when the block says which)."""
    temperature = calibration.get("temperature")
    if (
        not isinstance(temperature, int | float)
        or isinstance(temperature, bool)
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ModelError(
            f"{source}: model card calibration temperature should be a positive number, not {temperature!r}"
        )
    fitted_for = calibration.get("weights_sha256")
    if fitted_for is not None and fitted_for != weights.get("sha256"):
        raise ModelError(
            f"{source}: model card calibration was fitted for other weights ({str(fitted_for)[:12]}…); "
            "run geocli calibrate again"
        )


class ModelError(ValueError):
    """A model that cannot be found or must not be loaded; the message is one line."""


def models_dir() -> Path:
    """``$GEOCLI_MODELS`` if set, else the checkpoints installed with the package."""
    env = os.environ.get("GEOCLI_MODELS")
    if env:
        return Path(env)
    try:
        return Path(str(resources.files("geocli._models")))
    except ModuleNotFoundError:  # running from a source tree that was never installed
        return Path(__file__).resolve().parents[1] / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_models() -> list[ModelCard]:
    """Every shipped card, sorted by name."""
    folder = models_dir()
    return [read_card(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def read_card(path: Path) -> ModelCard:
    """The card at ``path``, checked by :func:`validate_card`; the JSON as it is in the file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: unreadable model card ({error})") from None
    return validate_card(data, path)


def resolve(name_or_path: str | os.PathLike) -> tuple[Path, Path]:
    """(card, weights) paths for a shipped model name or a user's own ``.json``/``.safetensors`` path."""
    given = Path(name_or_path)
    if given.suffix in {".json", ".safetensors"} or given.exists():
        stem = given.with_suffix("")
    else:
        stem = models_dir() / str(name_or_path)
        if not stem.with_suffix(".json").is_file():
            known = ", ".join(card["name"] for card in list_models()) or "none installed"
            raise ModelError(f"unknown model {str(name_or_path)!r} (known: {known})")
    card, weights = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    for path in (card, weights):
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
    return card, weights


def _check_safetensors(path: Path, data: bytes) -> None:
    """Refuse anything that is not a safetensors file before a parser sees it."""
    if data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or data[:2] == b"PK":
        raise ModelError(f"{path}: looks like a pickle/torch.save file; geocli only loads safetensors")
    if len(data) < 10:
        raise ModelError(f"{path}: not a safetensors file (too short)")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > len(data) - 8 or data[8:9] != b"{":
        raise ModelError(f"{path}: not a safetensors file (bad header)")


@dataclass
class LoadedModel:
    """A network ready for inference with the card that describes it."""

    net: Network
    card: ModelCard

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def classes(self) -> list[str]:
        return self.card["classes"]

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def input_points(self) -> int:
        return int(self.card["input_points"])

    @property
    def pose_warning(self) -> str | None:
        """What a user should know before trusting one prediction: ``None`` for an exactly invariant
        family; for one whose invariance is learned (PaRot), that its label can depend on the input's
        pose, with the agreement over rotations that ``geocli eval`` measured, where the card has it;
        for the upright reference (invariance "none"), that it is not rotation invariant at all."""
        invariance = self.card.get("invariance")
        if invariance == "none":
            return f"{self.name} is not rotation invariant (an upright reference): its prediction depends on the pose"
        if invariance != "learned":
            return None
        measured = self.card.get("metrics", {}).get("rotation_agreement")
        agreement = (
            f"; the same {measured['unit'][:-1]} got one answer under {measured['rotations_per_shape']} random "
            f"rotations {measured['agreement']:.1%} of the time in `geocli eval`"
            if isinstance(measured, dict) and "agreement" in measured
            else ""
        )
        return (
            f"{self.name} learned its rotation invariance rather than having it by construction: "
            f"its prediction can depend on the input's pose{agreement}; `geocli check` measures it on your files"
        )


def load_model(name_or_path: str | os.PathLike = DEFAULT_CLASSIFIER, device: str = "auto") -> LoadedModel:
    """Load a shipped model by name, or a user's own card + safetensors pair by path, with every check, onto
    ``device`` (:func:`geocli.devices.resolve_device`: ``auto`` is CUDA where there is one); the one loader
    (``geocli.load_model`` and :mod:`geocli.api` re-export it)."""
    device = str(resolve_device(device))
    card_path, weights_path = resolve(name_or_path)
    card = read_card(card_path)
    data = weights_path.read_bytes()
    _check_safetensors(weights_path, data)
    actual = hashlib.sha256(data).hexdigest()
    if actual != card["weights"].get("sha256"):
        raise ModelError(
            f"{weights_path}: sha256 {actual[:12]}… differs from its card ({str(card['weights'].get('sha256'))[:12]}…)"
        )
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as error:  # safetensors raises its own error types
        raise ModelError(f"{weights_path}: corrupt safetensors file ({error})") from None
    try:
        net = create_model(card["family"], len(card["classes"]), card["hparams"], task=card["task"])
    except (ValueError, TypeError) as error:
        raise ModelError(f"{card_path}: card describes no buildable network ({error})") from None
    expected = net.state_dict()
    if tensors.keys() != expected.keys() or any(tensors[k].shape != expected[k].shape for k in expected):
        raise ModelError(f"{weights_path}: tensors do not match the architecture its card describes")
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    net = net.eval().to(device)
    _check_runs(net, card, card_path, device)
    return LoadedModel(net, card)


def _check_runs(net: Network, card: ModelCard, card_path: Path, device: str) -> None:
    """Run the network once on a fixed cloud of its input size, or raise a one-line :class:`ModelError`.

    Hyper-parameters can build a network that cannot run (``"k": -3``, ``"k": null``): without
    this, a user's card failed in the middle of the first batch, with a traceback. The cloud is
    an ellipsoid of distinct axes (frames are defined), and the global random state is left as
    it was, so loading a model changes no seeded result.
    """
    n = card["input_points"]
    turns = torch.arange(n, dtype=torch.float32) * (math.pi * (3 - math.sqrt(5)))  # a Fibonacci sphere
    heights = 1 - 2 * (torch.arange(n, dtype=torch.float32) + 0.5) / n
    ring = torch.sqrt(1 - heights**2)
    cloud = torch.stack([ring * torch.cos(turns), 0.7 * ring * torch.sin(turns), 0.4 * heights], dim=1)
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            net(cloud[None].to(device))
    except Exception as error:  # the families raise anything from ValueError to IndexError
        problem = f"card describes a network that cannot run on {n} points ({one_line(error)})"
        raise ModelError(f"{card_path}: {problem}") from None


def save_model(net: Network, card: Mapping[str, Any], folder: Path, half: bool = True) -> Path:
    """Write ``<name>.safetensors`` (float16 by default) and its card with the weights' sha256."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu() for k, v in net.state_dict().items()
    }
    data = save_safetensors_bytes(state)
    weights, card_path = folder / f"{card['name']}.safetensors", folder / f"{card['name']}.json"
    full = {
        **card,
        "card_version": CARD_VERSION,
        "weights": {
            "file": weights.name,
            "dtype": "float16" if half else "float32",
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        },
    }
    validate_card(full, card_path)  # before anything is written: no weights without their card
    with atomic_write(weights) as handle:
        handle.write(data)
    write_card(card_path, full)
    return weights


def update_card(name_or_path: str | os.PathLike, **fields: Any) -> Path:
    """Replace ``fields`` of a model's card (eval's ``metrics``, calibrate's ``calibration``), keeping the rest."""
    card_path = resolve(name_or_path)[0]
    write_card(card_path, {**read_card(card_path), **fields})
    return card_path


def write_card(path: Path, card: Mapping[str, Any]) -> None:
    """Write a card (checked first: a card geocli writes is one it reads back)."""
    card = validate_card(dict(card), path)
    with atomic_write(path, "w") as handle:
        json.dump(card, handle, indent=2)
        handle.write("\n")
