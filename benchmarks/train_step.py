"""Seconds per training step, before and after the fused kernels, measured side by side in one run.

Usage: python benchmarks/train_step.py [--only tinvnn,trunk-1024] [--steps 3] [--threads N] [--json out.json]

For every family's shipped ("cpu") recipe, and for the DGCNN-width trunk of the kernels
issue (TinvNN's "wide" recipe: widths 64-64-128-256, embedding 1024, k 20, 1,024 points,
batch 32), one
step (forward, auxiliary losses, backward, optimiser) is timed three ways on random
clouds of the recipe's size (no data set needed):

* ``old``: the code before the kernels: the edge-MLP first layer (``local="mlp"``), the
  pure-torch gather-max, float32;
* ``kernels``: the recipe as trained now (``local="max"`` first layer), the compiled
  gather-max, float32;
* ``new``: the same, with the autocast :mod:`geocli.precision` chooses on this CPU
  (bfloat16 where it is native, float32 elsewhere), and freed memory kept for the next
  step (:mod:`geocli.allocator`): what ``geocli train`` runs.

``malloc_default_seconds`` is ``new`` with glibc's default thresholds, measured first, for
every configuration, since the kept setting cannot be undone within a process.

Each row carries the CPU capability and the autocast choice; ``speedup`` is old / new.
Compare only figures from one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time

import torch

from geocli.allocator import keep_freed_memory
from geocli.data import TASK
from geocli.nets.registry import create_model
from geocli.ops import kernels_available, use_kernels
from geocli.precision import autocast, precision_name
from geocli.train import TrainConfig, recipe

# Training shapes per epoch: ModelNet40 train minus validation; Labeled PSB train meshes x (1 + resamples).
EPOCH_SHAPES = {"modelnet40": 8858, "psb": 1824}
CLASSES = {"modelnet40": 40, "psb": 94}


def configurations() -> dict[str, TrainConfig]:
    """Every family's shipped classifier recipe, the default segmenter's, the wide trunk and PaRot's published
    recipe."""
    configs = {
        f"{family}-modelnet40": recipe("modelnet40", family)
        for family in ("tinvnn", "frame_averaging", "apen", "parot")
    }
    configs["tinvnn-psb"] = recipe("psb", "tinvnn")
    configs["trunk-1024"] = recipe("modelnet40", "tinvnn", "wide")
    configs["parot-published"] = recipe("modelnet40", "parot", "published")  # the paper's, beside the CPU one
    return configs


def step_seconds(
    config: TrainConfig, hparams: dict, kernels: bool, precision: contextlib.AbstractContextManager, steps: int
) -> float:
    """Median seconds of ``steps`` training steps after one warm-up step."""
    torch.manual_seed(0)
    task = TASK[config.dataset]
    classes = CLASSES[config.dataset]
    model = create_model(config.family, classes, hparams, task=task).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    batch = model.prepare(torch.rand(config.batch_size, config.points, 3))
    target = torch.randint(classes, (config.batch_size, config.points) if task == "segment" else (config.batch_size,))
    times = []
    with use_kernels(kernels):
        for _ in range(steps + 1):
            started = time.perf_counter()
            with precision:
                logits = model.forward_prepared(batch).float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
            loss = loss + model.auxiliary_loss().float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
    measured = sorted(times[1:])
    return measured[len(measured) // 2]


def old_hparams(hparams: dict, family: str) -> dict:
    """The recipe as trained before the kernels: edge-MLP first layer (PaRot has no edge trunk)."""
    return hparams if family == "parot" else {**hparams, "local": "mlp"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated configuration names (default: all)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="also write every row to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = configurations()
    names = args.only.split(",") if args.only else list(configs)
    malloc_default = {
        name: step_seconds(configs[name], configs[name].hparams, True, autocast("cpu"), args.steps) for name in names
    }
    kept = keep_freed_memory()
    rows = []
    for name in names:
        config = configs[name]
        seconds = {
            "old": step_seconds(
                config, old_hparams(config.hparams, config.family), False, contextlib.nullcontext(), args.steps
            ),
            "kernels": step_seconds(config, config.hparams, True, contextlib.nullcontext(), args.steps),
            "new": step_seconds(config, config.hparams, True, autocast("cpu"), args.steps),
            "malloc_default": malloc_default[name],
        }
        steps_per_epoch = math.ceil(EPOCH_SHAPES[config.dataset] / config.batch_size)
        row = {
            "config": name,
            "family": config.family,
            "points": config.points,
            "batch_size": config.batch_size,
            "threads": args.threads,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "kernels_built": kernels_available(),
            "autocast": precision_name("cpu"),
            "memory_kept": kept,
            **{f"{key}_seconds": round(value, 3) for key, value in seconds.items()},
            "speedup": round(seconds["old"] / seconds["new"], 2),
            "new_minutes_per_epoch": round(steps_per_epoch * seconds["new"] / 60, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
