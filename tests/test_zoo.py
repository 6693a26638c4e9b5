"""Checkpoints: round trip, and refusal of tampered, mismatched or pickled files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from geocli.nets.registry import create_model
from geocli.zoo import ModelError, load_model, read_card, save_model

HPARAMS = {"group": "O3", "k": 8, "widths": [16, 16], "embedding": 32}


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    net = create_model("frame_averaging", 5, HPARAMS).eval()
    card = {
        "name": "tiny",
        "family": "frame_averaging",
        "task": "classify",
        "hparams": HPARAMS,
        "classes": list("abcde"),
        "input_points": 64,
    }
    save_model(net, card, tmp_path, half=False)
    return net, tmp_path


def test_round_trip_gives_same_logits(saved) -> None:
    net, folder = saved
    loaded = load_model(folder / "tiny.json")
    points = torch.randn(2, 64, 3)
    with torch.no_grad():
        assert torch.allclose(net(points), loaded.net(points), atol=1e-6)
    assert loaded.classes == list("abcde") and loaded.input_points == 64


def test_card_records_sha256_of_weights(saved) -> None:
    import hashlib

    _, folder = saved
    card = read_card(folder / "tiny.json")
    assert card["weights"]["sha256"] == hashlib.sha256((folder / "tiny.safetensors").read_bytes()).hexdigest()


def test_tampered_weights_are_refused(saved) -> None:
    _, folder = saved
    weights = folder / "tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_model(folder / "tiny.json")


def _rewrite_card(folder: Path, **changes) -> None:
    path = folder / "tiny.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_card_that_does_not_match_tensors_is_refused(saved) -> None:
    _, folder = saved
    _rewrite_card(folder, hparams={**HPARAMS, "embedding": 48})
    with pytest.raises(ModelError, match="do not match"):
        load_model(folder / "tiny.json")


def test_pickle_is_refused_even_with_a_matching_hash(saved) -> None:
    import hashlib

    _, folder = saved
    payload = pickle.dumps({"weights": [1, 2, 3]}, protocol=4)
    (folder / "tiny.safetensors").write_bytes(payload)
    _rewrite_card(folder, weights={"sha256": hashlib.sha256(payload).hexdigest()})
    with pytest.raises(ModelError, match="pickle"):
        load_model(folder / "tiny.json")


def test_unknown_model_name_lists_known_ones(monkeypatch, saved) -> None:
    _, folder = saved
    monkeypatch.setenv("GEOCLI_MODELS", str(folder))
    with pytest.raises(ModelError, match="known: tiny"):
        load_model("no-such-model")
    assert load_model("tiny").name == "tiny"
