"""The one error type geometry readers raise, so the CLI can print it without a traceback."""

from __future__ import annotations

import os

_MAX_DETAIL = 200


class GeometryError(ValueError):
    """A file could not be turned into geometry; ``str()`` is one line: ``"<path>: <problem>"``.

    Raise it as ``GeometryError(path, problem)``, or ``GeometryError("<path>: <problem>")`` with a
    ready message, in which case ``path`` and ``problem`` are split at the first ``": "``.
    """

    def __init__(self, path: str | os.PathLike, problem: str | None = None) -> None:
        if problem is None:
            path, _, problem = one_line(os.fspath(path)).partition(": ")
            if not problem:
                path, problem = "", path
        self.path = os.fspath(path)
        self.problem = one_line(problem)
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)


def one_line(text: object) -> str:
    """Collapse whitespace and cap the length: backend messages can span many lines."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 3] + "..."
