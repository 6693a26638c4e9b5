"""Where batch outputs go: one name per input that depends on that input alone, checked before any work.

An input's output is ``--out``, then the input's folders below its *root*, then its whole
file name with the format's extension added::

    geocli segment scans -r --out labeled     scans/sub/a.pcd   ->  labeled/sub/a.pcd.ply
    geocli segment scans/sub/a.pcd --out labeled                 ->  labeled/a.pcd.ply
    geocli segment 'scans/*/*.obj' --out labeled  scans/x/t.obj  ->  labeled/x/t.obj.ply

The root is the folder named on the command line that the file was found in, or the
folders of a glob before its first wildcard (:class:`geocli.discovery.FoundFile`); a file
named directly, or listed on stdin, is its own folder's. Nothing else in the batch counts,
so a batch, a loop over its files and a ``--resume`` run all use the same names; and the
extension stays in the name, so ``a.ply`` and ``a.pcd`` side by side never meet.

What would lose an output is refused before anything is segmented, with one
:class:`OutputError` for the whole batch: two inputs that map to one output (names that
differ only in case included, since they are one file on macOS and Windows), and an
``--out`` that is a file (or lies below one). An output that would replace one of the
inputs is refused for that input alone (a one-line message in place of its path).
"""

from __future__ import annotations

import os
from pathlib import Path

from geocli.discovery import FoundFile
from geocli.io.errors import printable_path


class OutputError(ValueError):
    """A batch whose outputs cannot all be written as asked; the message is one line, naming the fix."""


def output_path(path: str, out: Path, extension: str) -> Path:
    """Where ``path``'s output goes: ``out`` / its place below its root / its name + ``.extension``."""
    root = path.root if isinstance(path, FoundFile) else os.path.dirname(path)
    return out / f"{os.path.relpath(os.path.abspath(path), os.path.abspath(root))}.{extension}"


def output_paths(inputs: list[str], out: Path, extension: str) -> dict[str, Path | str]:
    """Each input's output path, or a one-line error when that path is one of the inputs.

    Raises :class:`OutputError` when ``out`` cannot be a folder or two inputs would write one
    output, before any input is read.
    """
    _check_folder(out)
    targets = {path: output_path(path, out, extension) for path in inputs}
    _check_collisions(targets)
    real_inputs = {os.path.realpath(path) for path in inputs}
    return {
        path: f"{path}: the output {target} would overwrite this input; choose another --out folder"
        if os.path.realpath(target) in real_inputs
        else target
        for path, target in targets.items()
    }


def _check_folder(out: Path) -> None:
    """Refuse an ``out`` that is, or lies below, something other than a folder."""
    for folder in (out, *out.parents):
        if os.path.exists(folder):
            if not os.path.isdir(folder):
                where = "is" if folder == out else f"lies below {printable_path(str(folder))}, which is"
                raise OutputError(f"--out {printable_path(str(out))} {where} a file, not a folder; choose a folder")
            return


def _check_collisions(targets: dict[str, Path]) -> None:
    """Refuse two different input files whose outputs are one file, even on a case-insensitive file system."""
    claims: dict[str, list[str]] = {}
    for path, target in targets.items():
        claims.setdefault(os.path.abspath(target).casefold(), []).append(path)
    clashes = [paths for paths in claims.values() if len({os.path.realpath(p) for p in paths}) > 1]
    if not clashes:
        return
    first = clashes[0]
    case = len({str(targets[path]) for path in first}) > 1
    raise OutputError(
        f"{' and '.join(printable_path(path) for path in first)} map to one output, "
        f"{printable_path(str(targets[first[0]]))}"
        + (" (names that differ only in case are one file on macOS and Windows)" if case else "")
        + (f", and {len(clashes) - 1} more outputs are claimed twice" if len(clashes) > 1 else "")
        + "; nothing was segmented: rename the inputs, or segment them into different --out folders"
    )
