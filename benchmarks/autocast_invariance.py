"""How far autocast moves a classifier's logits under a rotation: why inference stays in float32 (geocli/gpu.py).

Usage: python benchmarks/autocast_invariance.py [MODEL] [--shapes 32]

On a CPU (autocast behaves alike on CUDA for these types), for ModelNet40 test shapes and
the same shapes under a seeded random rotation, prints the largest logit change under the
rotation in float32 and under float16 and bfloat16 autocast, and each type's largest
change from the float32 logits. geocli's invariance tests allow 1e-4.
"""

from __future__ import annotations

import argparse
import json

import torch

from geocli.api import load_model, predict_logits
from geocli.data.modelnet40 import load_split
from geocli.defaults import DEFAULT_CLASSIFIER
from geocli.geometry.rotations import random_rotations, rotate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=DEFAULT_CLASSIFIER)
    parser.add_argument("--shapes", type=int, default=32)
    args = parser.parse_args()
    clouds = torch.from_numpy(load_split("test").points[: args.shapes])
    turned = rotate(clouds, random_rotations(len(clouds), "so3", seed=1))
    model = load_model(args.model, device="cpu")
    exact = predict_logits(model, clouds)
    row = {
        "model": args.model,
        "shapes": len(clouds),
        "float32_rotation_change": (exact - predict_logits(model, turned)).abs().max().item(),
    }
    for dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cpu", dtype=dtype):
            logits, rotated = predict_logits(model, clouds), predict_logits(model, turned)
        name = str(dtype).removeprefix("torch.")
        row[f"{name}_rotation_change"] = (logits - rotated).abs().max().item()
        row[f"{name}_change_from_float32"] = (logits - exact).abs().max().item()
    print(json.dumps(row))


if __name__ == "__main__":
    main()
