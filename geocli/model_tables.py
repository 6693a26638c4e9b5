"""The models tables: each shipped model's figures, one row a model, read from its card.

``geocli models`` prints them, ``geocli models --markdown`` prints them as Markdown, and
``scripts/readme_tables.py`` writes that Markdown into the README, so the README's figures
are the cards' (a test checks that they still are). Every figure on a card comes from
``geocli eval --update-card``; a user's odd card gives ``-`` for what it lacks, never a crash.
No torch here: ``geocli models`` answers at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from geocli.defaults import RANDOM_START

if TYPE_CHECKING:
    from geocli.zoo import ModelCard


def dig(card: Any, *keys: str) -> Any:
    """``card[k1][k2]...``, or ``None`` where a key is missing or a level is not an object (a user's odd card)."""
    for key in keys:
        if not isinstance(card, dict):
            return None
        card = card.get(key)
    return card


def percent(value: Any) -> str:
    return f"{value * 100:.1f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _card_common(card: ModelCard) -> tuple[list[str], list[str]]:
    """Columns every model has: identity first, training size last."""
    head = [card["name"], card["family"], str(len(card["classes"])), str(card["input_points"])]
    size = dig(card, "weights", "bytes")
    tail = [
        percent(dig(card, "metrics", "rotation_agreement", "agreement")),
        epochs(card.get("training", {})),
        f"{size / 1e6:.1f}" if isinstance(size, int) else "-",
    ]
    return head, tail


def epochs(training: dict[str, Any]) -> str:
    """Epochs since random initialisation; "N+" when only the last run's N are known (it continued other weights)."""
    if training.get("epochs_in_total") is not None:
        return str(training["epochs_in_total"])
    if "epochs_trained" not in training:
        return "-"
    return f"{training['epochs_trained']}{'' if training.get('started_from') == RANDOM_START else '+'}"


def _classifier_row(card: ModelCard) -> list[str]:
    """One classifier's summary; every figure is read from the card's eval-produced metrics."""
    head, tail = _card_common(card)
    protocols = ("z/z", "z/SO3", "SO3/SO3", "single-view/SO3")
    return [*head, *(percent(dig(card, "metrics", "protocols", p, "overall_accuracy")) for p in protocols), *tail]


def _segmenter_row(card: ModelCard) -> list[str]:
    """One segmenter's summary: point accuracy as given and under SO3, then SO3 mean IoUs."""
    head, tail = _card_common(card)
    figures = [
        ("as given", "point_accuracy"),
        ("SO3", "point_accuracy"),
        ("SO3", "category_miou"),
        ("SO3", "instance_miou"),
    ]
    return [*head, *(percent(dig(card, "metrics", "protocols", *figure)) for figure in figures), *tail]


MODEL_TABLES = {
    "classify": (
        "Classifiers (ModelNet40 test, overall accuracy)",
        [
            "name",
            "family",
            "classes",
            "points",
            "z/z %",
            "z/SO3 %",
            "SO3/SO3 %",
            "single-view %",
            "agreement %",
            "epochs",
            "MB",
        ],
        _classifier_row,
    ),
    "segment": (
        "Part segmenters (Labeled PSB test, no category given)",
        [
            "name",
            "family",
            "parts",
            "points",
            "accuracy as given %",
            "accuracy SO3 %",
            "category mIoU SO3 %",
            "instance mIoU SO3 %",
            "agreement %",
            "epochs",
            "MB",
        ],
        _segmenter_row,
    ),
}


def models_tables(cards: Iterable[ModelCard]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each task's table that has a model among ``cards``, classifiers first."""
    cards = list(cards)
    tables = []
    for task, (title, header, row) in MODEL_TABLES.items():
        rows = [row(card) for card in cards if card["task"] == task]
        if rows:
            tables.append((title, header, rows))
    return tables


def markdown_table(header: list[str], rows: Iterable[list[str]]) -> str:
    """A Markdown table, one line a row, ending with a newline."""
    lines = [header, ["---"] * len(header), *rows]
    return "".join("| " + " | ".join(line) + " |\n" for line in lines)


def models_markdown(cards: Iterable[ModelCard]) -> str:
    """:func:`models_tables` in Markdown, each under its title in bold, a blank line after each."""
    return "".join(f"**{title}**\n\n{markdown_table(header, rows)}\n" for title, header, rows in models_tables(cards))
