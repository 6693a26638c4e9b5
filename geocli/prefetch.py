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

That overlap only pays on cores the network leaves free. Where its threads already use every
core (two cores, torch's two threads), a preparing thread takes a core from the network's
parallel loops for a while, and each loop waits for its slowest thread: on a 2-core machine
with nothing else running, PaRot over 400 generated files in ten formats
(``benchmarks/run.py``'s) ran at 111-130 files/s preparing each file in the main thread (five
runs), and in the same runs never faster with threads: 108 and 126 with one preparing ahead,
109 with two, 102-125 with one or two taking turns with the network (preparing the next batch
while it waits; preparing holds the GIL much of the time); its network alone did 154-201. So by
default workers go only to the cores torch's threads leave free (:func:`default_workers`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_DEFAULT_WORKERS = 4  # past this, reading a folder of small files no longer outpaces a CPU network


def usable_cores() -> int:
    """The cores this process may use (a container's share where the OS says so)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(device: torch.device | None = None) -> int:
    """Preparing threads when none are asked for: one per core the network on ``device`` leaves free, at most 4.

    A network on the CPU has torch's threads (``torch.get_num_threads()``), so where they take every
    core this is 0 and files are prepared in the main thread between batches (see the module's
    doc); a GPU's network leaves all cores but the one that drives it.
    """
    cores = usable_cores()
    spare = cores - 1 if device is not None and device.type != "cpu" else cores - torch.get_num_threads()
    return max(0, min(MAX_DEFAULT_WORKERS, spare))


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
