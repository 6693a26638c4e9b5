"""Short training runs that choose a recipe: one named variant of a family's recipe per call.

Usage: python scripts/ablation.py VARIANT --out RUN_FOLDER [--epochs 5] [--threads 1]

Every variant is trained with the same seed, schedule and validation split as its base
recipe and differs only where its entry below says; the run folder's ``log.jsonl`` holds
the per-epoch validation accuracy that ``docs/accuracy.md`` compares. Runs resume.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from geocli.allocator import keep_freed_memory
from geocli.nets.registry import EDGE_TRUNK
from geocli.train import recipe, train

# name: (family, recipe, overrides)
VARIANTS: dict[str, tuple[str, str, dict]] = {
    "small-canonical": ("tinvnn", "cpu", {}),
    "small-frame-jitter": ("tinvnn", "cpu", {"frame_jitter": 10.0, "tie_ratio": 0.85}),
    "small-tie-only": ("tinvnn", "cpu", {"tie_ratio": 0.85}),
    # The ceiling: the same trunk without a frame, trained with rotations about z, validated upright.
    "small-upright": ("upright", "cpu", {}),
    # Closing it: TinvNN's frame with the signed axis the network is surest of as up.
    "small-confident-up": ("confident_up", "cpu", {}),
    # ... choosing each training view by the true class's probability instead (the label is known there).
    "small-hindsight-up": ("confident_up", "cpu", {"hparams": {**EDGE_TRUNK, "choose": "label"}}),
    # ... and a selector trained to pick that view, which then picks it at inference.
    "small-learned-up": ("confident_up", "cpu", {"hparams": {**EDGE_TRUNK, "choose": "learned"}}),
    # ... or no choice: the trunk's features max-pooled over the six views.
    "small-pooled-up": ("tinvnn", "cpu", {"hparams": {**EDGE_TRUNK, "views": "pooled"}}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as geocli train does
    family, name, overrides = VARIANTS[args.variant]
    config = recipe("modelnet40", family, name, **{"epochs": args.epochs, "validate_after": 0.0, **overrides})
    meta = train(config, args.out, log=lambda message: print(message, flush=True))
    print(
        json.dumps(
            {
                "variant": args.variant,
                "best_val": meta["best_val"],
                "best_epoch": meta["best_epoch"],
                "val_acc": [record["val_acc"] for record in meta["history"]],
            }
        )
    )


if __name__ == "__main__":
    main()
