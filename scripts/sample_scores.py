"""The README's table of the sample files' scores: raw (T = 1), calibrated, and the label under ``--min-score``.

Usage: python scripts/sample_scores.py [--model NAME] [--min-score 0.8]   (Markdown on stdout)

The calibrated column is what ``geocli classify sample_data/`` prints; the raw column is the
softmax of the same logits at temperature 1, as if the card had no ``calibration`` block. It
shows what calibration changes on real files of no test split, some of no ModelNet40 class.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from geocli.api import classify, load_model
from geocli.calibration import temperature_of
from geocli.defaults import DEFAULT_CLASSIFIER
from geocli.io import SUPPORTED_EXTENSIONS

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_CLASSIFIER)
    parser.add_argument("--min-score", type=float, default=0.8)
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    temperature = temperature_of(model.card)
    files = sorted(str(p) for p in SAMPLES.iterdir() if p.suffix.lower() in SUPPORTED_EXTENSIONS)
    calibrated = list(classify(files, model, min_score=args.min_score))
    uncalibrated = {key: value for key, value in model.card.items() if key != "calibration"}
    raw = list(classify(files, replace(model, card=uncalibrated)))  # T = 1
    calibrated_head = f"score, calibrated (T = {temperature:.3f})"
    print(f"| file | label | score, T = 1 | {calibrated_head} | label, `--min-score {args.min_score}` |")
    print("| --- | --- | --- | --- | --- |")
    for path, before, after in zip(files, raw, calibrated):
        assert before.top_k and after.top_k and before.top_k[0]["label"] == after.top_k[0]["label"]  # T keeps the order
        name = Path(path).name
        print(f"| {name} | {before.top_k[0]['label']} | {before.score:.3f} | {after.score:.3f} | {after.label} |")


if __name__ == "__main__":
    main()
