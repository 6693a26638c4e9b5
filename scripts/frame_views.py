"""Does averaging a classifier over the frames its canonicalisation could have chosen help? (issue 15, item 3)

Usage: python scripts/frame_views.py [--model NAME] [--threads 1] [--out reports/frame-views.json]

A single canonical frame is unstable where two principal variances nearly tie: noise decides
the axes in their plane. Averaging the network's probabilities over the frames that plane
allows, weighted by how close the tie is, keeps the model exactly invariant (every view is a
fixed function of the canonical cloud) and might recover what the unstable frame loses. Each
variant below averages the softmax of the identity view and extra views of the same cached
canonical cloud, on ModelNet40's validation split (10 %, stratified, seed 0: what training
selects on), for all shapes and for the symmetric classes where ties happen:

* ``tie-planes R``: in every plane of consecutive axes whose variance ratio exceeds ``R``,
  turns by +-45 and +-90 degrees times how close the tie is (0 at ``R``, 1 at equality): the
  frames that the training augmentation ``tie_ratio`` shows the network, as four views;
* ``sign-views``: the three other proper sign choices of the axes (Frame Averaging's SO(3) set);
* ``small-turns``: turns of +-10 degrees about each axis (six views), the frame's own wobble.

It also says how consistent the frame is within a class, on the whole training split: how
often the true up direction (z: the shapes come upright) lies within 10 degrees of a canonical
axis, and per class the share of shapes whose up direction is the class's most common
signed canonical axis.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from geocli.api import load_model
from geocli.data.modelnet40 import class_names, load_split
from geocli.data.pointset import validation_split
from geocli.geometry.frames import SO3_SIGNS, axis_signs, centre_and_scale, principal_axes
from geocli.geometry.rotations import plane_rotations
from geocli.nets.invariant import InvariantNet
from geocli.train import cached_preprocess

SYMMETRIC = ("bowl", "cup", "vase", "flower_pot", "lamp", "plant")
PLANES = ((0, 1), (1, 2))


def tie_turns(canonical: Tensor, tie_ratio: float) -> Tensor:
    """(B,4,3,3) turns in the tied planes of each canonical cloud (identity where nothing ties)."""
    variances = canonical.square().mean(dim=1)
    views = []
    for fraction in (-1.0, -0.5, 0.5, 1.0):
        turn = torch.eye(3).repeat(len(canonical), 1, 1)
        for i, j in PLANES:
            ratio = torch.minimum(variances[:, i], variances[:, j]) / torch.maximum(variances[:, i], variances[:, j])
            closeness = ((ratio - tie_ratio) / (1 - tie_ratio)).clamp(0, 1)
            turn = plane_rotations(fraction * math.pi / 2 * closeness, i, j) @ turn
        views.append(turn)
    return torch.stack(views, dim=1)


def fixed_views(matrices: Tensor, count: int) -> Tensor:
    """The same (V,3,3) views for each of ``count`` clouds: (count,V,3,3)."""
    return matrices.expand(count, *matrices.shape)


@torch.no_grad()
def probabilities(net: InvariantNet, canonical: Tensor, neighbors: Tensor, views: Tensor) -> Tensor:
    """(B,V,C) softmax of the backbone on every view ``canonical @ view.T`` (views (B,V,3,3))."""
    out = []
    for start in range(0, len(canonical), 32):
        c, n, v = canonical[start : start + 32], neighbors[start : start + 32], views[start : start + 32]
        out.append(net.view_outputs(torch.einsum("bnj,bvij->bvni", c, v), n).softmax(-1))
    return torch.cat(out)


def scores(probs: Tensor, labels: Tensor, classes: list[str]) -> dict[str, float]:
    """Accuracy over all shapes, over the symmetric classes, and per symmetric class (%)."""
    correct = (probs.mean(dim=1).argmax(dim=1) == labels).float()
    out = {"all": round(100 * correct.mean().item(), 2)}
    symmetric = torch.tensor([classes.index(name) for name in SYMMETRIC])
    out["symmetric"] = round(100 * correct[torch.isin(labels, symmetric)].mean().item(), 2)
    for name in SYMMETRIC:
        out[name] = round(100 * correct[labels == classes.index(name)].mean().item(), 2)
    return out


def up_consistency(points: Tensor, labels: Tensor, classes: list[str]) -> dict[str, Any]:
    """Where the true up direction (z) lies in TinvNN's canonical frames of upright (B,N,3) clouds."""
    normalised = centre_and_scale(points)
    axes = principal_axes(normalised)[0]
    axes = axes * axis_signs(normalised @ axes)[:, None, :]  # the sign rule, as TinvNN applies it
    up = axes[:, 2, :]  # world z in canonical coordinates
    nearest = up.abs().max(dim=1)
    signed = 2 * nearest.indices + (up.gather(1, nearest.indices[:, None])[:, 0] > 0).long()  # 6 signed axes
    majority = {
        name: round(torch.bincount(signed[labels == k], minlength=6).max().item() / int((labels == k).sum()), 3)
        for k, name in enumerate(classes)
    }
    return {
        "within_10_degrees_of_an_axis": round((nearest.values > math.cos(math.radians(10))).float().mean().item(), 3),
        "mean_class_majority_share": round(sum(majority.values()) / len(majority), 3),
        "class_majority_share": dict(sorted(majority.items(), key=lambda item: item[1])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tinvnn-edge-modelnet40")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="Write the scores as JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    net, classes = model.net.eval(), class_names()
    assert isinstance(net, InvariantNet), f"{args.model} has no canonical front-end to add views to"
    train = load_split("train")
    val = train.subset(validation_split(train.labels, 0.1, 0)[1])
    cache = cached_preprocess(net, val, model.input_points, f"modelnet40-{model.card['family']}-val", print)
    canonical, neighbors, labels = cache["canonical"], cache["neighbors"].long(), torch.from_numpy(val.labels).long()
    count = len(canonical)
    base = probabilities(net, canonical, neighbors, fixed_views(torch.eye(3)[None], count))
    flips = torch.diag_embed(SO3_SIGNS[1:].float())
    small = torch.cat(
        [
            plane_rotations(torch.full((2,), math.radians(10.0)) * torch.tensor([-1.0, 1.0]), i, j)
            for i, j in ((0, 1), (1, 2), (0, 2))
        ]
    )
    extra = {
        "tie-planes 0.85": tie_turns(canonical, 0.85),
        "tie-planes 0.7": tie_turns(canonical, 0.7),
        "sign-views": fixed_views(flips, count),
        "small-turns": fixed_views(small, count),
    }
    report: dict[str, Any] = {"model": model.name, "shapes": count, "identity": scores(base, labels, classes)}
    for name, views in extra.items():
        report[name] = scores(
            torch.cat([base, probabilities(net, canonical, neighbors, views)], dim=1), labels, classes
        )
    for name, row in report.items():
        if isinstance(row, dict):
            print(f"{name:>16}: " + ", ".join(f"{key} {value:.1f}" for key, value in row.items()))
    up = up_consistency(
        torch.from_numpy(train.points.astype("float32")), torch.from_numpy(train.labels).long(), classes
    )
    report["up_in_canonical_frames"] = up
    print(json.dumps({key: value for key, value in up.items() if key != "class_majority_share"}))
    print("least consistent classes:", list(up["class_majority_share"].items())[:8])
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
