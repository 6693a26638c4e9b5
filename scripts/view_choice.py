"""How much a view-choosing classifier loses to its own choice (issue 15, item 3).

Usage: python scripts/view_choice.py RUN_FOLDER [RUN_FOLDER ...] [--threads 1] [--out report.json]

A ``confident_up`` run (``geocli/nets/confident_up.py``) sees each canonical cloud in six
views, one per signed axis as up, and answers with the view it is most confident on. On
ModelNet40's validation split (what training selects on) this scores each run's selected
weights (``best.safetensors``) as it answers, and as it could have:

* ``answered``: what the model answers (its front-end's choice: the most confident view, or
  a learned selector's);
* ``most_confident``: the view with the largest class probability;
* ``mean_of_views``: the six views' probabilities averaged;
* ``oracle``: the view in which the true class is likeliest, which needs the label: what a
  perfect choice of pose would give, so ``oracle - most_confident`` is what the choice costs;
* ``choice_is_oracle``: how often the view the model answers with is the oracle's;
* ``oracle_view_class_share``: per class, the share of its shapes whose oracle view is the
  class's most common one, averaged over classes: 1 when every class has settled into a pose
  of its own (what choosing by the label in training aims at; TinvNN's plain frame puts the
  true up on one signed axis for 57 % of a class, ``reports/frame-views.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from geocli.data.modelnet40 import class_names, load_split
from geocli.data.pointset import validation_split
from geocli.nets.invariant import InvariantNet
from geocli.nets.registry import create_model
from geocli.train import cached_preprocess


@torch.no_grad()
def view_probabilities(net: InvariantNet, cache: dict[str, Tensor], batch_size: int = 32) -> Tensor:
    """(S,V,C) class probabilities of every validation shape in each of the front-end's views."""
    out = []
    for start in range(0, len(cache["canonical"]), batch_size):
        canonical = cache["canonical"][start : start + batch_size]
        neighbors = cache["neighbors"][start : start + batch_size].long()
        out.append(net.view_outputs(net.frontend.views(canonical), neighbors).float().softmax(-1))
    return torch.cat(out)


def choice_report(probabilities: Tensor, labels: Tensor, chosen: Tensor | None = None) -> dict[str, Any]:
    """The figures of the module's doc for (S,V,C) per-view probabilities, (S,) true classes and the (S,)
    views the model answers with (the most confident when not given)."""
    rows = torch.arange(len(labels))
    confident = probabilities.amax(-1).argmax(1)  # ties: the first view, as the model breaks them
    chosen = confident if chosen is None else chosen
    oracle = probabilities[rows, :, labels].argmax(1)
    accuracy = {
        "answered": probabilities[rows, chosen].argmax(-1),
        "most_confident": probabilities[rows, confident].argmax(-1),
        "mean_of_views": probabilities.mean(1).argmax(-1),
        "oracle": probabilities[rows, oracle].argmax(-1),
    }
    shares = [
        torch.bincount(oracle[labels == k], minlength=probabilities.shape[1]).max().item() / int((labels == k).sum())
        for k in labels.unique()
    ]
    return {
        **{name: round(100 * (answer == labels).float().mean().item(), 2) for name, answer in accuracy.items()},
        "choice_is_oracle": round(100 * (chosen == oracle).float().mean().item(), 2),
        "oracle_view_class_share": round(100 * sum(shares) / len(shares), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="Write the figures as JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, classes = load_split("train"), class_names()
    val = train.subset(validation_split(train.labels, 0.1, 0)[1])
    labels = torch.from_numpy(val.labels).long()
    report = {}
    for run in args.runs:
        config = json.loads((run / "config.json").read_text())
        net = create_model(config["family"], len(classes), dict(config["hparams"]))
        assert isinstance(net, InvariantNet), f"{run}: no canonical front-end with views"
        net.load_state_dict(load_file(run / "best.safetensors"))
        net.eval()
        cache = cached_preprocess(net, val, config["points"], f"modelnet40-{config['family']}-val", print)
        probabilities = view_probabilities(net, cache)
        log_probabilities = probabilities.log()  # what a choice sees as logits
        with torch.no_grad():
            answer = net.frontend.reduce(log_probabilities)
        chosen = (log_probabilities == answer[:, None]).all(-1).float().argmax(1)  # the view whose values it returned
        report[str(run)] = {"hparams": config["hparams"], **choice_report(probabilities, labels, chosen)}
        print(json.dumps({str(run): report[str(run)]}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
