"""The one loop behind :func:`geocli.classify` and :func:`geocli.segment`: prepare ahead, batch, yield in order.

Every input goes through the same stages: *read* (a file, or an array's validation),
*sample* (the network's cloud: normalising, surface sampling, FPS) and *network* (its share
of one pass over a batch of clouds, and whatever turns logits into its result). Reading
and sampling run ahead of the network in ``workers`` threads (:func:`geocli.prefetch.prefetch`);
the network takes ``batch_size`` clouds at a time; results come back in input order, an
unusable input's failure waiting behind the clouds before it. A caller stops the loop
by closing the generator (a ``for`` loop left early, or ``close()``): what has not been
started is cancelled and no thread outlives it.

Each result carries its :class:`Timings`, measured with :func:`time.perf_counter`. They
stay out of the records (``to_dict()``), which are the same from run to run.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from time import perf_counter
from typing import Generic, Protocol, TypeVar

from geocli.io import Geometry, GeometryError
from geocli.prefetch import prefetch

Item = TypeVar("Item")
Ready = TypeVar("Ready")


@dataclass
class Timings:
    """Seconds one input spent in each stage; ``network`` is its share of its batch's pass (the pass over
    the batch's clouds divided by their number), and for a segmenter includes carrying labels back to every point."""

    read: float = 0.0
    sample: float = 0.0
    network: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class Timed(Protocol):
    """A result of the loop: it carries its input's timings."""

    timings: Timings


Result = TypeVar("Result", bound=Timed)


@dataclass
class Prepared(Generic[Ready]):
    """One input after reading and sampling: its geometry and what the network takes, or the one-line error."""

    name: str
    geometry: Geometry | None = None
    ready: Ready | None = None
    error: str | None = None
    timings: Timings = field(default_factory=Timings)


def prepare(
    named: tuple[str, Item], read: Callable[[Item, str], Geometry], sample: Callable[[Geometry], Ready]
) -> Prepared[Ready]:
    """Read and sample one named input, timing both; an unusable input is a value (its error), not a raise."""
    name, item = named
    prepared: Prepared[Ready] = Prepared(name)
    start = perf_counter()
    try:
        prepared.geometry = read(item, name)
        read_end = perf_counter()
        prepared.ready = sample(prepared.geometry)
    except GeometryError as error:
        prepared.error, prepared.timings.read = str(error), perf_counter() - start
        return prepared
    prepared.timings.read, prepared.timings.sample = read_end - start, perf_counter() - read_end
    return prepared


def run(
    named: Iterable[tuple[str, Item]],
    read: Callable[[Item, str], Geometry],
    sample: Callable[[Geometry], Ready],
    network: Callable[[list[Prepared[Ready]]], list[Result]],
    failed: Callable[[Prepared[Ready]], Result],
    *,
    batch_size: int,
    workers: int,
) -> Generator[Result, None, None]:
    """``network``'s result for every usable input and ``failed``'s for every other, in input order.

    ``network`` gets up to ``batch_size`` prepared inputs and returns one result for each, in
    order. While it runs, the next batch and two inputs per worker are prepared, so at most
    two batches and two inputs per worker are held, however many inputs there are.
    """
    window = batch_size + 2 * workers  # a whole next batch is prepared while the network runs this one
    prepared_inputs = prefetch(partial(prepare, read=read, sample=sample), named, workers, window)
    with closing(prepared_inputs):
        for batch in batches(prepared_inputs, batch_size):
            yield from finish(batch, network, failed)


def batches(prepared: Iterable[Prepared[Ready]], batch_size: int) -> Generator[list[Prepared[Ready]], None, None]:
    """The network's batches, in input order: each ends with its ``batch_size``-th usable input (or the inputs).

    A failure waits in the batch of the inputs before it, to keep input order; one with nothing
    before it is a batch by itself, handed on at once. Which inputs share a pass is decided here
    alone, so a run elsewhere (:mod:`geocli.distributed`) batches exactly as a local one: a
    cloud's logits may differ in their last bits from one batch to another.
    """
    held: list[Prepared[Ready]] = []
    usable = 0
    for entry in prepared:
        held.append(entry)
        usable += entry.error is None
        if usable in (0, batch_size):
            yield held
            held, usable = [], 0
    if held:
        yield held


def finish(
    batch: list[Prepared[Ready]],
    network: Callable[[list[Prepared[Ready]]], list[Result]],
    failed: Callable[[Prepared[Ready]], Result],
) -> list[Result]:
    """Every input's result, in order, after one ``network`` pass over the batch's usable inputs, with its timings."""
    waiting = [entry for entry in batch if entry.error is None]
    start = perf_counter()
    results = iter(network(waiting) if waiting else [])
    share = (perf_counter() - start) / max(len(waiting), 1)
    out = []
    for entry in batch:
        if entry.error is None:
            result = next(results)
            result.timings = replace(entry.timings, network=share)
        else:
            result = failed(entry)
            result.timings = entry.timings
        out.append(result)
    return out
