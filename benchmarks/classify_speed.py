"""Shapes per second of a shipped classifier on ModelNet40 test clouds (network + FPS, no file I/O).

Usage: python benchmarks/classify_speed.py [MODEL ...] [--shapes 128] [--batch-size 16] [--threads N]
Prints one JSON line per model. Compare models only on the same machine and thread count.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from geocli.api import load_model, predict_logits
from geocli.data.modelnet40 import load_split
from geocli.zoo import list_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model names (default: every shipped classifier)")
    parser.add_argument("--shapes", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or [card["name"] for card in list_models() if card["task"] == "classify"]
    clouds = torch.from_numpy(load_split("test").points[: args.shapes])
    for name in names:
        model = load_model(name, device="cpu")
        predict_logits(model, clouds[: args.batch_size])  # warm-up
        started = time.perf_counter()
        for start in range(0, len(clouds), args.batch_size):
            predict_logits(model, clouds[start : start + args.batch_size])
        seconds = time.perf_counter() - started
        print(json.dumps({
            "model": name, "shapes": len(clouds), "batch_size": args.batch_size, "threads": args.threads,
            "seconds": round(seconds, 2), "shapes_per_second": round(len(clouds) / seconds, 2),
            "views_per_shape": model.net.num_views, "device": "cpu",
        }))


if __name__ == "__main__":
    main()
