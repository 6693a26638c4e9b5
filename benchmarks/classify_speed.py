"""Shapes per second of a shipped classifier on ModelNet40 test clouds (network + FPS, no file I/O).

Usage: python benchmarks/classify_speed.py [MODEL ...] [--shapes 128] [--batch-size 16] [--threads N]
Prints one JSON line per model, measured twice in the same run: with the pure-torch
gather-max (``old_``, the code before the fused kernels) and with the compiled kernel
(``new_``), with their ratio and the largest logit difference between the two. Compare
models only on the same machine and thread count.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from geocli.api import load_model, predict_logits
from geocli.data.modelnet40 import load_split
from geocli.ops import kernels_available, use_kernels
from geocli.zoo import list_models


def shapes_per_second(model, clouds: torch.Tensor, batch_size: int) -> tuple[float, torch.Tensor]:
    """Throughput over ``clouds`` after one warm-up batch, and the logits."""
    predict_logits(model, clouds[:batch_size])
    started = time.perf_counter()
    logits = torch.cat([predict_logits(model, clouds[i : i + batch_size]) for i in range(0, len(clouds), batch_size)])
    return len(clouds) / (time.perf_counter() - started), logits


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
        with use_kernels(False):
            old, old_logits = shapes_per_second(model, clouds, args.batch_size)
        with use_kernels(True):
            new, new_logits = shapes_per_second(model, clouds, args.batch_size)
        print(
            json.dumps(
                {
                    "model": name,
                    "shapes": len(clouds),
                    "batch_size": args.batch_size,
                    "threads": args.threads,
                    "kernels_built": kernels_available(),
                    "old_shapes_per_second": round(old, 2),
                    "new_shapes_per_second": round(new, 2),
                    "speedup": round(new / old, 2),
                    "max_logit_difference": float((new_logits - old_logits).abs().max()),
                    "views_per_shape": model.net.num_views,
                    "device": "cpu",
                }
            )
        )


if __name__ == "__main__":
    main()
