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

:func:`plan_outputs` makes that plan, :meth:`OutputPlan.resume` leaves out what is done,
and :func:`write_each` writes a batch's results to it (``geocli segment`` and ``geocli
align``: :func:`geocli.labelled.segment_files`, :func:`geocli.align.align_files`), each input's
outcome one :class:`Written`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from geocli.discovery import FoundFile
from geocli.io.errors import printable_path

RESUMED = "output exists (--resume)"  # why --resume left an input out


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


@dataclass
class OutputPlan:
    """A batch's outputs: ``targets``, each input's output in input order, for the inputs that get one;
    ``refused``, a one-line error for each input whose output would replace an input."""

    targets: dict[str, Path]
    refused: list[str]

    def resume(self) -> tuple[list[Written[Any]], dict[str, Path]]:
        """``--resume``: a :class:`Written` (``skipped``) for each input whose output exists, and the targets left."""
        done: list[Written[Any]] = [
            Written(path, str(target), skipped=RESUMED) for path, target in self.targets.items() if target.exists()
        ]
        skipped = {written.path for written in done}
        return done, {path: target for path, target in self.targets.items() if path not in skipped}


def plan_outputs(inputs: list[str], out: Path, extension: str) -> OutputPlan:
    """:func:`output_paths`, split into the inputs that get an output and one-line refusals for the others.

    Raises :class:`OutputError`, before any input is read, as :func:`output_paths` does.
    """
    planned = output_paths(inputs, out, extension)
    return OutputPlan(
        {path: target for path, target in planned.items() if isinstance(target, Path)},
        [target for target in planned.values() if isinstance(target, str)],
    )


class BatchResult(Protocol):
    """What :func:`write_each` writes: a result naming its input, with ``error`` set when there is nothing to write."""

    path: str
    error: str | None


R = TypeVar("R", bound=BatchResult)
Writer = Callable[[R, Path], dict[str, Any]]
"""Writes one result to its output and returns its record (what ``geocli segment`` prints for it)."""
Hook = Callable[[R, Path], None]
"""Writes something more beside an output once the output is written (a preview image, say)."""


@dataclass
class Written(Generic[R]):
    """One input's outcome in a batch with outputs: written (``record``), left out by --resume (``skipped``),
    or failed (``error``, one line: it could not be used, or its output could not be written)."""

    path: str
    output: str | None = None
    result: R | None = field(default=None, repr=False)
    record: dict[str, Any] | None = None
    skipped: str | None = None
    error: str | None = None

    @property
    def warnings(self) -> list[str]:
        """The result's warnings (:class:`geocli.api.Segmentation`'s), ``[]`` where it has none."""
        return list(getattr(self.result, "warnings", []))

    def to_dict(self) -> dict[str, Any]:
        """The written output's record, a skipped input's ``input, output, skipped``, a failure's ``input, error``."""
        if self.record is not None:
            return self.record
        if self.skipped is not None:
            return {"input": self.path, "output": self.output, "skipped": self.skipped}
        return {"input": self.path, "error": self.error, "warnings": self.warnings}


def write_each(
    results: Iterable[R], targets: Mapping[str, Path], write: Writer[R], hooks: Sequence[Hook[R]] = ()
) -> Generator[Written[R], None, None]:
    """Write each result to its target, then run ``hooks`` on it; one :class:`Written` per result, in order.

    A result with an error is passed on; an ``OSError`` (or a ``ValueError``: a value the format
    cannot hold) from ``write`` or a hook fails that input alone, in one line naming the output.
    Closing this generator closes ``results``.
    """
    source = iter(results)
    try:
        for result in source:
            if result.error:
                yield Written(result.path, result=result, error=result.error)
                continue
            target = targets[result.path]
            try:
                record = write(result, target)
                for hook in hooks:
                    hook(result, target)
            except (OSError, ValueError) as error:
                reason = error.strerror if isinstance(error, OSError) and error.strerror else error
                yield Written(
                    result.path, str(target), result, error=f"{result.path}: cannot write {target} ({reason})"
                )
            else:
                yield Written(result.path, str(target), result, record)
    finally:
        close = getattr(source, "close", None)
        if close:
            close()
