"""Write the README's tables of model figures from the cards (models/*.json) and their eval reports.

Usage: python scripts/readme_tables.py [--check] [--readme README.md]

Each generated table sits between two marker comments, ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``, and is rewritten whole; the rest of the README is left as it is.
``models-table`` is ``geocli models --markdown``; ``comparison-table`` sets TinvNN beside Frame
Averaging (same backbone) with the cards' figures and, for the symmetric classes, the
per-class figures of the eval reports the cards were copied from (reports/NAME-eval.json,
checked to be of the card's weights). ``--check`` writes nothing and exits 1, naming the
blocks, when the README is not what the cards give (tests/test_readme_tables.py runs it):
re-run without it after ``geocli eval NAME --update-card``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geocli.io.atomic import atomic_write
from geocli.model_tables import dig, markdown_table, models_markdown, percent
from geocli.zoo import ModelCard, list_models

REPO = Path(__file__).resolve().parents[1]
COMPARED = {"TinvNN": "tinvnn-edge", "Frame Averaging": "fa-edge"}  # column: the name of its models, less the data set
SYMMETRIC_CLASSES = ("bottle", "bowl", "cup", "vase", "lamp")  # (near) rotational or mirror symmetry


class StaleReport(ValueError):
    """An eval report that is not of its card's weights: its figures would not be the card's model's."""


def report_of(card: ModelCard) -> dict[str, Any]:
    """reports/NAME-eval.json, the report ``geocli eval --update-card`` copied the card's figures from."""
    path = REPO / "reports" / f"{card['name']}-eval.json"
    report: dict[str, Any] = json.loads(path.read_text())
    if report.get("weights_sha256") != dig(card, "weights", "sha256"):
        raise StaleReport(f"{path.relative_to(REPO)} is not of {card['name']}'s weights; re-run geocli eval")
    return report


def comparison_table(cards: dict[str, ModelCard]) -> str:
    """TinvNN against Frame Averaging: ModelNet40 and Labeled PSB figures, and the symmetric classes."""

    def row(heading: str, dataset: str, cell: Callable[[ModelCard], str]) -> list[str]:
        return [heading, *(cell(cards[f"{prefix}-{dataset}"]) for prefix in COMPARED.values())]

    def pair(card: ModelCard, protocol: str, first: str, second: str) -> str:
        figures = dig(card, "metrics", "protocols", protocol) or {}
        return f"{percent(figures.get(first))} / {percent(figures.get(second))}"

    def symmetric(card: ModelCard) -> str:
        per_class = report_of(card)["protocols"]["SO3/SO3"]["per_class_accuracy"]
        return ", ".join(f"{per_class[name] * 100:.0f}" for name in SYMMETRIC_CLASSES)

    rows = [
        row(
            "ModelNet40 SO3/SO3 overall / mean class %",
            "modelnet40",
            lambda card: pair(card, "SO3/SO3", "overall_accuracy", "mean_class_accuracy"),
        ),
        row(
            "Labeled PSB SO3 point accuracy / category mIoU %",
            "psb",
            lambda card: pair(card, "SO3", "point_accuracy", "category_miou"),
        ),
        row(f"symmetric classes (SO3/SO3 %: {', '.join(SYMMETRIC_CLASSES)})", "modelnet40", symmetric),
    ]
    return markdown_table(["", *COMPARED], rows)


def blocks() -> dict[str, str]:
    """Each generated block's Markdown, by marker name."""
    cards = list_models()
    return {
        "models-table": models_markdown(cards),
        "comparison-table": comparison_table({card["name"]: card for card in cards}),
    }


def rewritten(text: str, generated: dict[str, str]) -> str:
    """``text`` with every block's content between its markers replaced; a block without markers is an error."""
    for name, content in generated.items():
        pattern = re.compile(rf"<!-- {name}:start -->\n.*?<!-- {name}:end -->", re.DOTALL)
        found = list(pattern.finditer(text))
        if len(found) != 1:
            raise ValueError(f"README needs exactly one <!-- {name}:start --> ... <!-- {name}:end --> block")
        start, end = found[0].span()
        text = text[:start] + f"<!-- {name}:start -->\n{content}<!-- {name}:end -->" + text[end:]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Write nothing; exit 1 if the README is out of date.")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    try:
        generated = blocks()
        new = rewritten(text, generated)
    except (ValueError, OSError, KeyError) as error:
        print(f"readme_tables: error: {error}", file=sys.stderr)
        return 2
    if new == text:
        return 0
    if args.check:
        stale = [name for name in generated if rewritten(text, {name: generated[name]}) != text]
        print(f"readme_tables: {args.readme} is out of date ({', '.join(stale)}); run scripts/readme_tables.py")
        return 1
    with atomic_write(args.readme, "w") as handle:
        handle.write(new)
    print(f"rewrote {', '.join(generated)} in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
