"""Seeded mutations of real geometry files: truncation, byte flips, header edits, chunk edits.

One implementation for the bounded fuzz test (``tests/test_fuzz.py``) and the 10,000-case
benchmark (``benchmarks/fuzz.py``): the same seed gives the same mutated bytes in both.
Header edits know where each format's header ends, so they hit what parsers trust most:
counts, types, encodings and keywords.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DATA = REPO / "sample_data"
# The committed samples, named so that files added to sample_data/ later do not change what a seed means.
SOURCES = ("bunny_1024.npy", "bunny_4k.stl", "chair_0001.pcd", "cow.obj", "cow_2048.ply", "igea_2048.xyz",
           "monitor_0001.pcd", "teapot.obj", "teapot.off", "toilet_0001.pcd")  # fmt: skip

KINDS = ("truncate", "flip", "header", "chunk")

# Numbers a header edit may put in place of a count or size: edge cases and plain lies.
_NUMBERS = (b"0", b"1", b"-1", b"2", b"3", b"7", b"4294967295", b"4294967296", b"9223372036854775807",
            b"1000000000000", b"99999999999999999999", b"1e308", b"nan", b"0x10", b"", b"abc")  # fmt: skip
# Keywords a header edit may swap in: every format's encodings, types and element names.
_WORDS = (b"ascii", b"binary", b"binary_compressed", b"binary_little_endian", b"binary_big_endian",
          b"float", b"double", b"uchar", b"char", b"int", b"uint", b"short", b"list", b"vertex", b"face",
          b"tristrips", b"property", b"element", b"end_header", b"x", b"rgb", b"FIELDS", b"SIZE", b"TYPE",
          b"COUNT", b"POINTS", b"DATA", b"F", b"U", b"I", b"OFF", b"v", b"f", b"vn", b"solid", b"facet",
          b"<f8")  # fmt: skip


@dataclass(frozen=True)
class Mutation:
    """Mutated file content; ``name`` keeps the source's extension, so the same reader is used."""

    index: int
    source: str
    kind: str
    detail: str
    data: bytes = field(repr=False)

    @property
    def name(self) -> str:
        return f"m{self.index:05d}_{self.kind}_{self.source}"


def load_sources(folder: Path = SAMPLE_DATA, names: tuple[str, ...] = SOURCES) -> dict[str, bytes]:
    """The sample files (PLY, PCD, XYZ, OBJ, OFF, STL, NPY), by file name."""
    return {name: (folder / name).read_bytes() for name in names}


def header_end(data: bytes) -> int:
    """Where the header ends: PLY ``end_header``, PCD ``DATA``, the NPY header, STL's 84 bytes, or ~10 text lines."""
    for marker in (b"end_header\n", b"end_header\r\n"):
        if data.startswith(b"ply") and marker in data[:65536]:
            return data.index(marker) + len(marker)
    data_line = re.search(rb"(^|\n)DATA [^\n]*\n", data[:65536])
    if data_line:
        return data_line.end()
    if data.startswith(b"\x93NUMPY") and len(data) >= 10:
        return 10 + int.from_bytes(data[8:10], "little")
    if len(data) >= 84 and not data.startswith(b"solid") and b"\n" not in data[:84]:
        return 84  # binary STL: 80 free bytes and the facet count
    lines = data[:2048].split(b"\n")[:10]
    return min(len(data), sum(len(line) + 1 for line in lines))


def mutate(data: bytes, kind: str, rng: random.Random) -> tuple[bytes, str]:
    """Return mutated bytes and a short description of what was done."""
    end = max(1, header_end(data))
    if kind == "truncate":
        cut = rng.randrange(end + 1) if rng.random() < 0.3 else rng.randrange(len(data))
        return data[:cut], f"keep the first {cut} of {len(data)} bytes"
    if kind == "flip":
        out = bytearray(data)
        region = end if rng.random() < 0.5 else len(data)
        spots = sorted(rng.randrange(region) for _ in range(rng.choice((1, 1, 2, 4, 16))))
        for spot in spots:
            out[spot] = rng.randrange(256) if rng.random() < 0.5 else out[spot] ^ (1 << rng.randrange(8))
        return bytes(out), f"change bytes at {spots[:8]}{'...' if len(spots) > 8 else ''}"
    if kind == "header":
        return _edit_header(data, end, rng)
    if kind == "chunk":
        start = rng.randrange(len(data))
        length = rng.randrange(1, min(len(data) - start, 4096) + 1)
        chunk = data[start : start + length]
        action = rng.choice(("delete", "duplicate", "zero", "random"))
        options = {"delete": b"", "duplicate": chunk * 2, "zero": bytes(length), "random": rng.randbytes(length)}
        replacement = options[action]
        return data[:start] + replacement + data[start + length :], f"{action} bytes {start}..{start + length}"
    raise ValueError(f"unknown mutation kind {kind!r}")


def _edit_header(data: bytes, end: int, rng: random.Random) -> tuple[bytes, str]:
    header = data[:end]
    numbers = list(re.finditer(rb"-?\d+(\.\d+)?(e[-+]?\d+)?", header))
    words = list(re.finditer(rb"[A-Za-z_][A-Za-z_0-9]*", header))
    lines = list(re.finditer(rb"[^\n]*\n", header))
    choice = rng.random()
    if numbers and choice < 0.5:
        target = rng.choice(numbers)
        old = int(float(target.group())) if abs(float(target.group())) < 1e18 else 0
        nearby = (old + 1, max(old - 1, 0), old * 2, old // 2)
        new = rng.choice((*_NUMBERS, *(str(n).encode() for n in nearby)))
        edited = data[: target.start()] + new + data[target.end() :]
        return edited, f"number {target.group()!r} at {target.start()} -> {new!r}"
    if words and choice < 0.8:
        target = rng.choice(words)
        new = rng.choice(_WORDS)
        edited = data[: target.start()] + new + data[target.end() :]
        return edited, f"word {target.group()!r} at {target.start()} -> {new!r}"
    if lines:
        target = rng.choice(lines)
        if rng.random() < 0.5:
            return data[: target.start()] + data[target.end() :], f"delete header line {target.group().strip()!r}"
        edited = data[: target.end()] + target.group() + data[target.end() :]
        return edited, f"repeat header line {target.group().strip()!r}"
    return mutate(data, "flip", rng)


def mutation(seed: int, index: int, sources: dict[str, bytes] | None = None) -> Mutation:
    """The ``index``-th mutation of run ``seed`` on its own, for fuzz runs that rebuild any case alone."""
    sources = load_sources() if sources is None else sources
    names = sorted(sources)
    rng = random.Random(f"{seed}:{index}")
    source = names[index % len(names)]
    kind = rng.choice(KINDS)
    data, detail = mutate(sources[source], kind, rng)
    return Mutation(index, source, kind, detail, data)


def mutations(count: int, seed: int = 0, sources: dict[str, bytes] | None = None) -> Iterator[Mutation]:
    """``count`` mutations, cycling through the sources; the same ``seed`` gives the same bytes."""
    sources = load_sources() if sources is None else sources
    return (mutation(seed, index, sources) for index in range(count))
