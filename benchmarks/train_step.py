"""Seconds per training step (forward, auxiliary losses, backward, optimiser) of a family's recipe.

Usage: python benchmarks/train_step.py [--family parot] [--recipe cpu] [--dataset modelnet40] [--steps 3] [--threads N] [--bf16]
Prints one JSON line with the step time and the projected minutes per epoch; it uses
random clouds of the recipe's size, so it needs no data set. ``--bf16`` runs the forward pass
under CPU bfloat16 autocast, which pays only on CPUs with native bfloat16 (AVX-512 BF16, AMX).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from geocli.data import TASK
from geocli.nets.registry import create_model
from geocli.train import recipe

# Training shapes per epoch: ModelNet40 train minus validation; Labeled PSB train meshes x (1 + resamples).
EPOCH_SHAPES = {"modelnet40": 8858, "psb": 1824}
CLASSES = {"modelnet40": 40, "psb": 94}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="parot")
    parser.add_argument("--recipe", default="cpu")
    parser.add_argument("--dataset", default="modelnet40", choices=sorted(EPOCH_SHAPES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast on the CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = recipe(args.dataset, args.family, args.recipe)
    task = TASK[args.dataset]
    model = create_model(config.family, CLASSES[args.dataset], config.hparams, task=task).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    batch = model.prepare(torch.rand(config.batch_size, config.points, 3))
    target = torch.randint(CLASSES[args.dataset], (config.batch_size, config.points) if task == "segment" else (config.batch_size,))
    times = []
    for _ in range(args.steps + 1):  # the first step warms up
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = model.forward_prepared(batch).float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1)) + model.auxiliary_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    step = sorted(times[1:])[len(times[1:]) // 2]
    print(json.dumps({
        "family": config.family, "recipe": args.recipe, "dataset": args.dataset, "batch_size": config.batch_size,
        "points": config.points, "threads": args.threads, "bf16": args.bf16,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "seconds_per_step": round(step, 3),
        "minutes_per_epoch": round(math.ceil(EPOCH_SHAPES[args.dataset] / config.batch_size) * step / 60, 1),
    }))


if __name__ == "__main__":
    main()
