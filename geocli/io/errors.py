"""The one error type geometry readers raise, so the CLI can print it without a traceback."""

from __future__ import annotations

import os

_MAX_DETAIL = 200


class GeometryError(ValueError):
    """A file could not be turned into geometry; ``str()`` is one line: ``"<path>: <problem>"``.

    Raise it as ``GeometryError(path, problem)``, or ``GeometryError("<path>: <problem>")`` with a
    ready message, in which case ``path`` and ``problem`` are split at the first ``": "``.
    ``path`` keeps the name as given; the message escapes control characters and undecodable
    bytes in it, so a file named ``"a\\nb.ply"`` still gives one printable line.
    """

    def __init__(self, path: str | os.PathLike, problem: str | None = None) -> None:
        if problem is None:
            path, _, problem = one_line(os.fspath(path)).partition(": ")
            if not problem:
                path, problem = "", path
        self.path = os.fspath(path)
        self.problem = one_line(problem)
        shown = printable_path(self.path)
        super().__init__(f"{shown}: {self.problem}" if shown else self.problem)


def one_line(text: object) -> str:
    """Collapse whitespace and cap the length: backend messages can span many lines."""
    flat = printable_path(" ".join(str(text).split()))
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 3] + "..."


def printable_path(path: str) -> str:
    """``path`` with newlines, other control characters and undecodable bytes escaped.

    File names may hold any byte but ``/`` and NUL; printed raw, a newline would split the
    one-line error and a lone surrogate (an undecodable byte) would make printing fail.
    """
    if path.isprintable():
        return path
    return "".join(c if c.isprintable() else _escape(c) for c in path)


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by the surrogateescape handler
        return f"\\x{code - 0xDC00:02x}"
    return char.encode("unicode_escape").decode("ascii") if code < 0x10000 else f"\\U{code:08x}"
