"""Turn a training run into a shipped model: float16 weights and a card with the recipe.

Metrics are deliberately left out: they are added only by ``geocli eval --update-card``,
so every figure on a card is the output of the evaluation command.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from geocli.data import TASK
from geocli.defaults import RANDOM_START
from geocli.nets.registry import create_model, get_family
from geocli.train import RunError, read_run
from geocli.zoo import save_model

TRAINING_DATA = {
    "modelnet40": "ModelNet40 (official train split, 1,024 points a shape) minus a stratified validation split",
    "psb": "Labeled PSB training meshes (15 per category) minus a validation split stratified by category; "
    "the stored 2,048-point clouds plus fresh surface samplings of each mesh",
    "folder": "{shapes} shapes in class sub-folders of {root} minus a stratified validation split",
    "parts-folder": "{shapes} labelled PLY files in {root} minus a validation split stratified by category",
}
SELECTED_ON = {"classify": "validation accuracy (view-averaged)", "segment": "validation mean IoU over categories"}


def epochs_in_total(ancestry: list[dict], started_from: str, selected_epoch: int) -> int | None:
    """Epochs behind the exported weights since random initialisation, when the whole chain is known.

    Each ancestor contributes the epochs up to its selected (shipped) weights; a chain
    whose oldest link started from weights no card describes has no known total.
    """
    origin = ancestry[0]["started_from"] if ancestry else started_from
    if origin != RANDOM_START:
        return None
    return sum(entry["selected_epoch"] for entry in ancestry) + selected_epoch


def export_run(run: Path, name: str, out: Path, note: str = "") -> Path:
    """Write ``out/<name>.safetensors`` and ``out/<name>.json`` from ``run``'s best epoch.

    A folder that is not a run, a run with no validated epoch yet, a name with folders in it
    or an ``out`` that is a file are :class:`~geocli.train.RunError` (one line), before anything is written.
    """
    meta = read_run(run)
    if not name or name in (".", "..") or Path(name).name != name:
        raise RunError(f"--name {name!r}: a model name is a file name, without folders")
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: is a file; --out names the folder for the model's two files")
    if not (run / "best.safetensors").is_file():
        raise RunError(f"{run}: no validated weights yet (best.safetensors appears with the first validated epoch)")
    ancestry = json.loads((run / "init.json").read_text())["ancestry"] if (run / "init.json").is_file() else []
    config = meta["config"]
    started_from = config.get("init") or RANDOM_START
    dataset = config.get("dataset", "modelnet40")
    task = TASK[dataset]
    family = get_family(config["family"])
    net = create_model(config["family"], len(meta["classes"]), config["hparams"], task=task)
    net.load_state_dict(load_file(run / "best.safetensors"))
    card = {
        "name": name,
        "family": config["family"],
        "task": task,
        "description": family.description,
        "invariance": family.invariance,
        "hparams": config["hparams"],
        "classes": meta["classes"],
        "input_points": config["points"],
        "parameters": sum(p.numel() for p in net.parameters()),
        "training": {
            "dataset": TRAINING_DATA[dataset].format(**meta.get("data", {})),
            "validation_fraction": config["val_fraction"],
            "train_rotation": "invariant" if family.invariance == "exact" else config.get("rotation", "so3"),
            "recipe": config,
            "epochs_trained": meta["epoch"],
            "selected_epoch": meta["best_epoch"],
            "selected_on": SELECTED_ON[task],
            "best_validation_score": round(meta["best_val"], 4),
            "started_from": started_from,
            "started_from_sha256": meta.get("init_sha256"),
            "ancestry": ancestry,
            "epochs_in_total": epochs_in_total(ancestry, started_from, meta["best_epoch"]),
            "history": meta["history"],
            "note": note,
        },
    }
    return save_model(net, card, out)
