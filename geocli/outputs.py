"""Where batch outputs go: named after their inputs, mirroring their folders, never onto an input.

``geocli segment scans/ --out labeled/`` writes ``labeled/a.ply`` for ``scans/a.pcd`` and
``labeled/sub/b.ply`` for ``scans/sub/b.xyz``: paths are taken relative to the folder
that holds all inputs, so files of the same name in different folders never collide.
Inputs that differ only by extension (``a.ply`` and ``a.pcd``) keep it in the name
(``a_ply.ply``, ``a_pcd.ply``). The mapping depends only on the set of inputs, so
``--resume`` finds the same names again.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path


def output_paths(inputs: list[str], out: Path, extension: str) -> dict[str, Path | str]:
    """Each input's output path, or a one-line error when that path is one of the inputs."""
    if not inputs:
        return {}
    absolute = {path: os.path.abspath(path) for path in inputs}
    root = os.path.commonpath([os.path.dirname(p) for p in absolute.values()])
    plain = {path: Path(os.path.relpath(full, root)).with_suffix(f".{extension}") for path, full in absolute.items()}
    clashes = Counter(plain.values())
    targets: dict[str, Path | str] = {}
    real_inputs = {os.path.realpath(p) for p in inputs}
    for path, relative in plain.items():
        if clashes[relative] > 1:
            source = Path(path).suffix.lstrip(".").lower() or "noext"
            relative = relative.with_name(f"{relative.stem}_{source}.{extension}")
        target = out / relative
        if os.path.realpath(target) in real_inputs:
            targets[path] = f"{path}: the output {target} would overwrite this input; choose another --out folder"
        else:
            targets[path] = target
    return targets
