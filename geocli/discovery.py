"""Turn command-line arguments into the list of input files: paths, folders, globs and '-'.

A missing path or a failing folder is not fatal: it becomes a :class:`BadInput` that the
command reports like any other bad file, so the rest of the batch still runs; so does a
folder named on the command line in which nothing is found, which is a mistake (a wrong
folder, a missing ``--recursive``), not an empty success.
Folders are walked, and ``**`` globs expanded, without following symbolic links, so a link
loop cannot hang a scan; a file link that loops is passed on, and the reader reports it.
A folder walk takes only files geocli reads, so ``README.md`` beside the scans is skipped;
a file named explicitly is always passed on, and the reader reports what it cannot read.
A file found in a folder or by a glob is a :class:`FoundFile`, which remembers the folder it
was found under, so ``geocli segment`` can mirror its place below that folder.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from geocli.io.errors import printable_path

GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class BadInput:
    path: str
    error: str


class FoundFile(str):
    """A path found by walking a folder or expanding a glob, with ``root``, the folder it was found under.

    It is a ``str``, so whatever takes paths takes it unchanged, and only
    :func:`geocli.outputs.output_paths` reads ``root``: ``scans/sub/a.ply`` found under
    ``scans`` is written as ``sub/a.ply...`` below ``--out``. ``root`` is the folder named
    on the command line, or the folders of a glob before its first wildcard. A path named
    directly (an argument, a line on stdin) stays a plain ``str``: its root is its own folder.
    """

    root: str

    def __new__(cls, path: str, root: str) -> FoundFile:
        found = super().__new__(cls, path)
        found.root = root
        return found

    def __reduce__(self) -> tuple[type[FoundFile], tuple[str, str]]:
        return FoundFile, (str(self), self.root)


AMBIGUOUS_EXTENSIONS = (".txt",)
"""Extensions of point tables that, in a folder, more often name prose (notes.txt, LICENSE.txt)."""

_TABLE_SNIFF_CHARS = 4096


def _wanted(path: str, extensions: tuple[str, ...]) -> bool:
    """Whether a folder walk should pass ``path`` on: a readable extension, and for ``.txt`` a table's content."""
    name = path.lower()
    if not name.endswith(extensions):
        return False
    return not name.endswith(AMBIGUOUS_EXTENSIONS) or _starts_like_a_table(path)


def _starts_like_a_table(path: str) -> bool:
    """Whether the first line that is not blank or a ``#`` comment holds only numbers.

    That line is a point (x y z ...) or a PTS point count in every table the reader accepts,
    and a word in notes. A file that cannot be opened is passed on for the reader to report.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(_TABLE_SNIFF_CHARS)
    except OSError:
        return True
    for line in head.splitlines():
        fields = line.split("#", 1)[0].replace(",", " ").split()
        if fields:
            return all(_is_number(field) for field in fields)
    return False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """``DirEntry.is_dir`` raises for a link loop (ELOOP); such an entry is no folder to list."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _walk(folder: str, recursive: bool, extensions: tuple[str, ...]) -> Iterator[str | BadInput]:
    errors: list[OSError] = []
    entries: Iterator[str]
    if recursive:
        entries = (
            os.path.join(root, name)
            for root, dirs, files in os.walk(folder, onerror=errors.append, followlinks=False)
            for name in sorted(files)
            if not dirs.sort()  # sort in place so the walk order is stable
        )
    else:
        try:
            entries = (entry.path for entry in sorted(os.scandir(folder), key=lambda e: e.name) if not _is_dir(entry))
        except OSError as error:
            errors.append(error)
            entries = iter(())
    for path in entries:
        if _wanted(path, extensions):
            yield path
    for failure in errors:
        where = str(failure.filename or folder)
        yield BadInput(where, f"{printable_path(where)}: cannot read folder ({failure.strerror})")


def _named_folder(folder: str, recursive: bool, extensions: tuple[str, ...]) -> Iterator[str | BadInput]:
    """Walk a folder given as an argument; finding nothing in it is an error, not an empty batch."""
    found = False
    for item in _walk(folder, recursive, extensions):
        found = True
        yield item if isinstance(item, BadInput) else FoundFile(item, folder)
    if not found:
        where = "in this folder or below" if recursive else "in this folder (--recursive also searches sub-folders)"
        yield BadInput(folder, f"{printable_path(folder)}: no point cloud or mesh file {where}")


def _split_pattern(pattern: str) -> tuple[Path, str]:
    """The literal folder before a glob's first wildcard, and the pattern relative to it."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if GLOB_CHARS & set(part))
    return (Path(*parts[:first]) if first else Path()), "/".join(parts[first:])


def _glob(pattern: str) -> list[str]:
    """Sorted matches of ``pattern``; ``**`` matches folders at any depth but never follows links.

    ``glob.glob(recursive=True)`` follows folder links inside ``**``: a link loop makes it run
    for hours. ``pathlib``'s ``**`` does not follow them, so patterns holding ``**`` go there,
    split into the literal folder before the first wildcard and the relative pattern after it.
    """
    if "**" not in pattern:
        return sorted(glob.glob(pattern))
    base, relative = _split_pattern(pattern)
    try:
        return sorted(str(match) for match in base.glob(relative))
    except (OSError, ValueError):  # e.g. an unreadable folder, or a pattern pathlib refuses
        return []


def expand_inputs(
    arguments: Iterable[str], extensions: tuple[str, ...], *, recursive: bool = False, stdin: TextIO | None = None
) -> Iterator[str | BadInput]:
    """Yield input files in argument order; '-' reads newline-separated paths from stdin.

    Lines from stdin may end in CRLF (lists written on Windows); the CR is not part of the path.
    """
    for argument in arguments:
        if argument == "-":
            for line in stdin or sys.stdin:
                if line.strip():
                    yield line.rstrip("\r\n")
        elif os.path.isdir(argument):
            yield from _named_folder(argument, recursive, extensions)
        elif os.path.lexists(argument) or not GLOB_CHARS & set(argument):
            yield argument  # a file, or a missing path that the reader reports
        else:
            matches = _glob(argument)
            if not matches:
                yield BadInput(argument, f"{printable_path(argument)}: no file matches this pattern")
            root = str(_split_pattern(argument)[0])
            for match in matches:
                for item in _walk(match, recursive, extensions) if os.path.isdir(match) else [match]:
                    yield item if isinstance(item, BadInput) else FoundFile(item, root)
