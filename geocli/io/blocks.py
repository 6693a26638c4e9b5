"""Whole blocks of mesh text parsed by numpy's C code, for text plain enough to make that exact.

Reading an OFF or OBJ file word by word in Python costs about a microsecond a number, far more
than the network spends on the shape. These helpers parse a block in a few numpy calls, but only
text built from a few characters (digits, signs, points, exponents, spaces, tabs, line ends),
where numpy's parsers read every number exactly as ``checks.integer`` and ``checks.decimal`` do:
numpy's text parsers call the same ``PyOS_string_to_double`` as Python's ``float``, and digits with an
optional leading minus are the same integer to ``int`` and to numpy's ``strtoll``, unless beyond
int64, where numpy reads the nearest int64 limit: a block with such a value is declined.
Anything else (comments, ``nan``, ``1_0``, a form feed, a lone carriage return) makes them
return ``None``, and the reader falls back to its careful line-by-line parser, which accepts,
reads or refuses it. So a file is parsed by exactly one parser, and errors come from one place.
"""

from __future__ import annotations

import numpy as np

DECIMAL_TEXT = b"0123456789+-.eE \t\r\n"
"""The characters of rows of decimal numbers that need no line-by-line reading."""

_INDEX_TEXT = b"0123456789 \t\r\n"
_CORNER_TEXT = _INDEX_TEXT + b"-/"
_SLASHES_TO_SPACES = bytes.maketrans(b"/", b" ")
_CLAMPED = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max])  # what numpy reads for integers beyond int64


def plain(text: bytes, alphabet: bytes) -> bool:
    """Whether ``text`` holds only ``alphabet``'s characters and no carriage return but before a newline."""
    return not text.translate(None, alphabet) and (b"\r" not in text or text.count(b"\r") == text.count(b"\r\n"))


def decimal_rows(block: bytes, count: int, columns: int) -> tuple[np.ndarray, bytes] | None:
    """The first ``columns`` numbers of each of the first ``count`` lines of ``block`` (float64), and
    the text after those lines; or ``None``.

    ``None`` unless the whole block is plain (see :data:`DECIMAL_TEXT`) and each of those lines
    holds ``columns`` valid numbers at least; a blank one among them also gives ``None`` (numpy
    would skip it, so every row after it would shift). Numbers after the first ``columns`` of a
    line are not read, as the careful readers ignore them too.
    """
    if not plain(block, DECIMAL_TEXT):
        return None
    rows = block.split(b"\n", count)
    rest = rows.pop() if len(rows) > count else b""
    if not rows or len(rows) < count:
        return None
    try:
        values = np.loadtxt(rows, usecols=range(columns), comments=None, ndmin=2)
    except ValueError:
        return None
    return (values, rest) if len(values) == count else None


def integer_words(block: bytes, corners: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """The integer words of ``block`` as int64, and how many words each of its lines holds.

    Lines are what ``block.split(b"\\n")`` gives, so there is one count more than newlines.
    Every word must be digits; with ``corners`` it is an OBJ face corner instead: an optional
    minus sign and digits (the vertex index, which is what is returned), then optionally ``/``
    and more digits or slashes (texture and normal indices, not read). ``None`` when any word is
    anything else.
    """
    if not plain(block, _CORNER_TEXT if corners else _INDEX_TEXT):
        return None
    codes = np.frombuffer(block, np.uint8)
    edges = np.diff((codes > 32).view(np.int8), prepend=np.int8(0))  # 1 where a word starts
    starts = np.flatnonzero(edges == 1)
    text, number_starts = block, starts
    if corners:
        if (codes[starts] == ord("/")).any() or not _signs_lead_digits(block, codes, edges):
            return None
        if b"/" in block:  # every number, the texture and normal indices too, is read; then the first of each word kept
            text = block.translate(_SLASHES_TO_SPACES)
            number_edges = np.diff((np.frombuffer(text, np.uint8) > 32).view(np.int8), prepend=np.int8(0))
            number_starts = np.flatnonzero(number_edges == 1)
    values = np.fromstring(text, np.int64, sep=" ") if len(number_starts) else np.zeros(0, np.int64)
    if len(values) != len(number_starts) or np.isin(values, _CLAMPED).any():
        return None
    if text is not block:
        values = values[edges[number_starts] == 1]
    line_ends = np.searchsorted(starts, np.flatnonzero(codes == ord("\n")))
    return values, np.diff(line_ends, prepend=0, append=len(starts))


def _signs_lead_digits(block: bytes, codes: np.ndarray, edges: np.ndarray) -> bool:
    """Every minus sign starts a word and is followed by a digit (``-/2`` and ``1/-2`` are not plain)."""
    if b"-" not in block:
        return True
    signs = np.flatnonzero(codes == ord("-"))
    after = signs + 1
    return bool((edges[signs] == 1).all() and after[-1] < len(codes) and (codes[after] - 48 < 10).all())
