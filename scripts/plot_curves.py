"""Learning curves of every shipped model: reports/<name>-curve.json and docs/learning_curves.png.

Usage: python scripts/plot_curves.py [--run NAME=RUN_FOLDER_OR_LOG ...] [--out docs/learning_curves.png]
Uses matplotlib, which geocli depends on (for `segment --preview`). The curves come from the cards' training
history (validation accuracy for classifiers, category mIoU for segmenters, per epoch of
the run that produced the checkpoint; epochs before validation started are absent).
``--run`` adds a training run that was not exported, read from its ``log.jsonl``: the run folder, or
a copy of the log kept under ``reports/runs/`` (a run folder lives on the machine that trained it and
is lost with it; its log is a few kilobytes and is committed at the session's end, so its curve can
still be drawn on any machine).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from geocli.zoo import list_models  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def curve(history: list[dict]) -> dict[str, list]:
    """Epochs with their validation score and training accuracy, from a card's or a run's history."""
    scored = [record for record in history if record.get("val_acc") is not None]
    return {
        "epoch": [record["epoch"] for record in scored],
        "validation": [round(record["val_acc"], 4) for record in scored],
        "train_accuracy": [round(record["train_acc"], 4) for record in scored],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", action="append", default=[], help="NAME=PATH: a classifier's run folder or its log.jsonl"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "learning_curves.png")
    args = parser.parse_args()
    curves: dict[str, tuple[str, dict]] = {}
    for card in list_models():
        curves[card["name"]] = (card["task"], curve(card.get("training", {}).get("history", [])))
        report = {
            "model": card["name"],
            "selected_on": card.get("training", {}).get("selected_on"),
            **curves[card["name"]][1],
        }
        (REPO / "reports" / f"{card['name']}-curve.json").write_text(json.dumps(report, indent=1) + "\n")
    for spec in args.run:
        name, path = spec.split("=", 1)
        log_file = Path(path) / "log.jsonl" if Path(path).is_dir() else Path(path)
        log = [json.loads(line) for line in log_file.read_text().splitlines()]
        curves[f"{name} (run)"] = ("classify", curve(log))
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, task, label in zip(axes, ("classify", "segment"), ("validation accuracy", "validation category mIoU")):
        for name, (kind, points) in sorted(curves.items()):
            if kind == task and points["epoch"]:
                axis.plot(points["epoch"], points["validation"], marker="o", markersize=3, label=name)
        axis.set(
            title=f"{'Classifiers (ModelNet40)' if task == 'classify' else 'Segmenters (Labeled PSB)'}",
            xlabel="epoch of the last run",
            ylabel=label,
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
