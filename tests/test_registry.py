"""One registry entry per family: everything that names families reads it, and every family keeps its contract."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn
from typer.testing import CliRunner

from geocli.cli import app
from geocli.nets.registry import FAMILIES, TASKS, Trainable, create_model, get_family, list_families
from geocli.train import recipe
from geocli.zoo import list_models


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", list_families())
def test_every_family_builds_a_module_with_the_training_interface(family: str, task: str) -> None:
    net = create_model(family, 5, recipe("modelnet40", family).hparams, task=task)
    assert isinstance(net, nn.Module) and isinstance(net, Trainable) and net.num_views >= 1


@pytest.mark.parametrize("family", list_families())
def test_every_recipe_of_every_family_makes_a_configuration(family: str) -> None:
    spec = get_family(family)
    assert "cpu" in spec.recipes and spec.description and spec.invariance in ("exact", "learned", "none")
    for name in spec.recipes:
        config = recipe("psb", family, name, epochs=3)
        assert (config.family, config.dataset, config.epochs) == (family, "psb", 3)


def test_unknown_family_names_the_known_ones() -> None:
    known = "apen, confident_up, frame_averaging, parot, tinvnn, upright"
    with pytest.raises(ValueError, match=f"unknown family 'pointnet'; known: {known}"):
        create_model("pointnet", 5)
    with pytest.raises(ValueError, match="unknown family"):
        recipe("modelnet40", "pointnet")


def test_the_registry_imports_no_torch() -> None:
    """`geocli --help` lists the families from the registry, so reading it must stay light."""
    code = "import sys, geocli.nets.registry; print('torch' in sys.modules)"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "False", probe.stderr


def test_cards_and_the_command_line_take_what_the_registry_says() -> None:
    for card in list_models():
        assert card["description"] == FAMILIES[card["family"]].description, card["name"]
        assert card.get("invariance", FAMILIES[card["family"]].invariance) == FAMILIES[card["family"]].invariance
    help_text = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).stdout
    assert all(family in help_text for family in FAMILIES) and "tinvnn wide" in help_text
    table = CliRunner().invoke(app, ["models"], env={"COLUMNS": "120"}).stdout
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.split()}
    assert all(rows[name] == [spec.invariance, *", ".join(spec.recipes).split()] for name, spec in FAMILIES.items())
    assert json.loads(CliRunner().invoke(app, ["models", "--json"]).stdout)  # JSON lists cards only, as before


def test_the_guide_to_adding_a_family_quotes_the_code_as_it_is() -> None:
    """docs/adding-a-family.md shows real code: each Python block, headed by the file it comes from, is in that file."""
    repo = Path(__file__).resolve().parents[1]
    guide = (repo / "docs" / "adding-a-family.md").read_text()
    blocks = re.findall(r"```python\n# (\S+)\n(.*?)```", guide, flags=re.DOTALL)
    assert len(blocks) >= 4
    for path, code in blocks:
        assert code in (repo / path).read_text(), f"docs/adding-a-family.md quotes {path} as it no longer is"
