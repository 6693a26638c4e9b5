"""Data sets geocli trains and evaluates on, by name, and the task each one trains."""

from __future__ import annotations

from types import ModuleType

from geocli.data import modelnet40, psb

DATASETS: dict[str, ModuleType] = {"modelnet40": modelnet40, "psb": psb}
TASK = {"modelnet40": "classify", "psb": "segment"}


def dataset(name: str) -> ModuleType:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]
