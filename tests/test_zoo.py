"""Checkpoints: round trip, and refusal of tampered, mismatched or pickled files."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
import torch

from geocli.nets.registry import create_model
from geocli.zoo import ModelError, load_model, models_dir, read_card, save_model

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "chair_0001.pcd"
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
    loaded = load_model(folder / "tiny.json", device="cpu")
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
        load_model(folder / "tiny.json", device="cpu")


def _rewrite_card(folder: Path, **changes) -> None:
    path = folder / "tiny.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_card_that_does_not_match_tensors_is_refused(saved) -> None:
    _, folder = saved
    _rewrite_card(folder, hparams={**HPARAMS, "embedding": 48})
    with pytest.raises(ModelError, match="do not match"):
        load_model(folder / "tiny.json", device="cpu")


def test_pickle_is_refused_even_with_a_matching_hash(saved) -> None:
    import hashlib

    _, folder = saved
    payload = pickle.dumps({"weights": [1, 2, 3]}, protocol=4)
    (folder / "tiny.safetensors").write_bytes(payload)
    _rewrite_card(folder, weights={"sha256": hashlib.sha256(payload).hexdigest()})
    with pytest.raises(ModelError, match="pickle"):
        load_model(folder / "tiny.json", device="cpu")


def test_unknown_model_name_lists_known_ones(monkeypatch, saved) -> None:
    _, folder = saved
    monkeypatch.setenv("GEOCLI_MODELS", str(folder))
    with pytest.raises(ModelError, match="known: tiny"):
        load_model("no-such-model")
    assert load_model("tiny", device="cpu").name == "tiny"


def test_every_shipped_card_reads_as_the_json_it_is() -> None:
    """Validation checks cards, never rewrites them: a shipped card reads back exactly as stored."""
    cards = sorted(models_dir().glob("*.json"))
    assert cards
    for path in cards:
        assert read_card(path) == json.loads(path.read_text()), path


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"card_version": 2}, "card_version 2 is not one this geocli reads (1)"),
        ({"card_version": "1"}, "card_version '1' is not one this geocli reads"),
        ({"classes": "abcde"}, "field 'classes' should be list, not str"),
        ({"input_points": True}, "field 'input_points' should be int, not bool"),
        ({"input_points": 0}, "input_points should be 1 to 65,536, not 0"),
        ({"input_points": 10**12}, "input_points should be 1 to 65,536, not 1,000,000,000,000"),
        ({"task": "detect"}, "task 'detect' is not one of classify, segment"),
        ({"weights": None}, "field 'weights' should be dict, not NoneType"),
    ],
)
def test_a_card_that_is_not_version_1_is_refused_in_one_line(saved, change: dict, problem: str) -> None:
    _, folder = saved
    _rewrite_card(folder, **change)
    with pytest.raises(ModelError, match=re.escape(problem)) as refused:
        load_model(folder / "tiny.json", device="cpu")
    assert "\n" not in str(refused.value) and str(refused.value).startswith(str(folder / "tiny.json"))


def test_a_card_lacking_fields_or_not_an_object_is_refused(saved) -> None:
    _, folder = saved
    path = folder / "tiny.json"
    card = json.loads(path.read_text())
    del card["hparams"], card["classes"]
    path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="lacks classes, hparams"):
        read_card(path)
    path.write_text("[1, 2]")
    with pytest.raises(ModelError, match="a JSON object, not list"):
        read_card(path)


def test_an_unknown_card_version_is_a_usage_error_on_the_command_line(saved) -> None:
    from typer.testing import CliRunner

    from geocli.cli import app

    _, folder = saved
    _rewrite_card(folder, card_version=3)
    result = CliRunner().invoke(app, ["classify", str(SAMPLE), "--model", str(folder / "tiny.json")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "card_version 3" in result.stderr
