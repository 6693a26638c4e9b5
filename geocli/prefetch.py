"""Prepare the next inputs while the network works on the current ones, keeping input order.

``geocli classify DIR`` over a folder of small files spent most of its time reading,
sampling and normalising one file after another while the network idled. :func:`prefetch`
runs that per-file work in a pool of threads and hands results back in input order, at
most ``window`` files ahead of the consumer, so memory stays flat over any folder size.

Threads rather than processes, measured on a 2-core machine whose cores a training run
kept busy. Preparing the 11 files of ``sample_data/`` four times (44 reads, each
:func:`geocli.api.as_geometry` + :func:`geocli.api.prepare_input` at 512 points): one after
the other 0.55 s (80 files/s), two threads 0.34 s (130 files/s), two 'forkserver'
processes 0.36 s (122 files/s) after 2.4 s to start them (each imports torch), more than
a folder of a few hundred small files takes. Two threads gaining as much as two
processes says reading and FPS release the GIL for most of their time; and a thread needs
no pickling: it runs exactly the same code on the same objects, so results are
bit-identical to ``workers=0``. End to end, 220 small files (``sample_data/`` 20 times)
with the default classifier ran at 59-61 files/s with no workers and 61-64 with one or
two: the training run left no idle core to overlap on (a forked process preparing beside
the network gave no overlap either: 1.91 s for 0.88 s of preparation and 0.93 s of
network), so the gain shows where a core is free.

Threads pay where the network leaves time over, even on two cores whose both the network's
threads use: ``python benchmarks/run.py --parts raw,e2e --workers 0`` against the default, one
worker, over 1,000 generated files in ten formats on a 2-core machine with nothing else
running (``benchmarks/results/intel-xeon-2-cores-workers-0.json`` and
``intel-xeon-2-cores.json``), end-to-end over raw rate: TinvNN 0.82 against 0.95, Frame
Averaging 0.90 against 0.95 (the preparing thread fills the network's serial stretches), while
for the cheapest networks it makes little difference either way (APEN 0.73 and 0.70, PaRot
0.59 and 0.57: there preparing a file costs as much CPU as the network, and both cores are
busy whichever thread runs it).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_DEFAULT_WORKERS = 4  # past this, reading a folder of small files no longer outpaces a CPU network


def default_workers() -> int:
    """Preparing threads when none are asked for: one core is left to the network, at most 4, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (a container's share)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cores - 1))


def prefetch(
    fn: Callable[[Item], Result], items: Iterable[Item], workers: int, window: int
) -> Generator[Result, None, None]:
    """``fn(item)`` for each item, in order, run ahead in ``workers`` threads (0: here, one at a time).

    At most ``window`` items are taken from ``items`` and not yet handed back, so a caller that
    stops early, or a folder of any size, holds no more than that. An exception from ``fn``
    is raised here, at its item's turn; ``fn`` should turn expected failures into values.
    Closing the generator (the consumer was interrupted) cancels what has not started and
    waits for the at most ``workers`` items under way, so no thread outlives the batch.
    """
    if workers == 0:
        yield from map(fn, items)
        return
    if window < 1:
        raise ValueError(f"window must be 1 or more, not {window}")
    source = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="geocli-prepare")
    ahead: deque[Future[Result]] = deque()
    try:
        for item in source:
            ahead.append(pool.submit(fn, item))
            if len(ahead) >= window:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
