"""Turn command-line arguments into the list of input files: paths, folders, globs and '-'.

A missing path or a failing folder is not fatal: it becomes a :class:`BadInput` that the
command reports like any other bad file, so the rest of the batch still runs.
Folders are walked without following symbolic links, so a link loop cannot hang a scan.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class BadInput:
    path: str
    error: str


def _supported(path: str, extensions: tuple[str, ...]) -> bool:
    return path.lower().endswith(extensions)


def _walk(folder: str, recursive: bool, extensions: tuple[str, ...]) -> Iterator[str | BadInput]:
    errors: list[OSError] = []
    if recursive:
        entries = (
            os.path.join(root, name)
            for root, dirs, files in os.walk(folder, onerror=errors.append, followlinks=False)
            for name in sorted(files)
            if not dirs.sort()  # sort in place so the walk order is stable
        )
    else:
        try:
            entries = (entry.path for entry in sorted(os.scandir(folder), key=lambda e: e.name) if not entry.is_dir())
        except OSError as error:
            errors.append(error)
            entries = iter(())
    for path in entries:
        if _supported(path, extensions):
            yield path
    for error in errors:
        yield BadInput(str(error.filename or folder), f"{error.filename or folder}: cannot read folder ({error.strerror})")


def expand_inputs(
    arguments: Iterable[str], extensions: tuple[str, ...], *, recursive: bool = False, stdin: TextIO | None = None
) -> Iterator[str | BadInput]:
    """Yield input files in argument order; '-' reads newline-separated paths from stdin."""
    for argument in arguments:
        if argument == "-":
            for line in stdin or sys.stdin:
                if line.strip():
                    yield line.rstrip("\n")
        elif os.path.isdir(argument):
            yield from _walk(argument, recursive, extensions)
        elif os.path.lexists(argument) or not GLOB_CHARS & set(argument):
            yield argument  # a file, or a missing path that the reader reports
        else:
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                yield BadInput(argument, f"{argument}: no file matches this pattern")
            for match in matches:
                yield from _walk(match, recursive, extensions) if os.path.isdir(match) else [match]

