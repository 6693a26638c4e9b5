"""The README's calibration table, from the shipped cards' ``calibration`` blocks (``geocli calibrate --update-card``).

Usage: python scripts/calibration_table.py   (Markdown on stdout; set GEOCLI_MODELS to read another models folder)

One row per classifier: the fitted temperature, then the expected calibration error (15 bins)
and the NLL before and after scaling, on the validation split the temperature was fitted on and
on the test split (``geocli eval``'s SO(3) protocol poses). A classifier without a calibration
block is listed with dashes: it is used at temperature 1.
"""

from __future__ import annotations

from typing import Any

from geocli.zoo import list_models

HEADER = [
    "name",
    "temperature",
    "validation ECE % before → after",
    "test ECE % before → after",
    "test NLL before → after",
    "test accuracy %",
]


def before_after(figures: dict[str, Any], key: str, percent: bool) -> str:
    scale, digits = (100, 1) if percent else (1, 3)
    return f"{figures[f'{key}_before'] * scale:.{digits}f} → {figures[f'{key}_after'] * scale:.{digits}f}"


def row(card: dict[str, Any]) -> list[str]:
    calibration = card.get("calibration")
    if not calibration:
        return [card["name"], *["-"] * (len(HEADER) - 1)]
    validation, test = calibration["validation"], calibration["test"]
    return [
        card["name"],
        f"{calibration['temperature']:.3f}",
        before_after(validation, "ece", percent=True),
        before_after(test, "ece", percent=True),
        before_after(test, "nll", percent=False),
        f"{test['accuracy'] * 100:.1f}",
    ]


def main() -> None:
    rows = [row(dict(card)) for card in list_models() if card["task"] == "classify"]
    for cells in [HEADER, ["---"] * len(HEADER), *rows]:
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
