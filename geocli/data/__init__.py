"""Data sets geocli trains and evaluates on, by name, and the task each one trains."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from geocli.data import modelnet40, psb
from geocli.data.folders import ClassFolder, PartFolder

# The built-in data sets are modules; a folder data set is a class, made with the log its reading reports to.
DATASETS: dict[str, ModuleType | type] = {
    "modelnet40": modelnet40,
    "psb": psb,
    "folder": ClassFolder,
    "parts-folder": PartFolder,
}
TASK = {"modelnet40": "classify", "psb": "segment", "folder": "classify", "parts-folder": "segment"}


def dataset(name: str, log: Callable[[str], None] = print) -> Any:
    """The data set ``name``: ``default_root()``, ``class_names(root)``, ``load_split(split, root)`` and, for
    Labeled PSB, ``resampled``. ``log`` hears a folder's progress and its unusable files, one line each."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    entry = DATASETS[name]
    return entry(log) if isinstance(entry, type) else entry
