"""classify and segment over a Ray cluster (``--ray ADDRESS``; ``pip install 'geocli[ray]'``).

Each Ray worker is an actor that loads the model once, then reads and prepares files
(:func:`geocli.api.classify_entry`, :func:`geocli.api.read_prepared`) and runs the network
on what the driver sends it. Results come back in input order, as from
:func:`geocli.api.classify_iter` and :func:`geocli.api.segment`, and they are the same
records: the workers run the same functions on the same inputs, and classify's batches are
formed on the driver by :func:`geocli.api.batch_groups`, exactly as a local run forms them
(a cloud's logits can differ in their last bits from one batch composition to another).
So a classify run sends each file's prepared cloud (the model's input size, a few KB)
back to the driver and, grouped into its batch, to a worker again; segment runs a whole
file on one worker and brings its labels and the geometry back for the driver to write.

Files are read by the workers: on a cluster of several machines, every path must be
readable at the same place on every node (a shared file system), as must a model card
given by path; every node needs geocli and its dependencies installed. Workers get the
driver's ``PYTHONPATH``, with the folder this geocli is imported from first, so a
checkout run without installing imports the same code on the workers of this machine.

Work in flight is bounded (two calls per worker ahead of the one the driver waits for),
so memory stays flat over any folder; closing a generator early (Ctrl-C between two
files) ends the workers, with whatever they had queued.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from itertools import chain, islice
from pathlib import Path
from typing import Any, TypeVar

from geocli.api import (
    Entry,
    Input,
    Prediction,
    Segmentation,
    _model_for,
    _named,
    _read_prepared,
    batch_groups,
    classify_entry,
    load_model,
    predict_group,
    segment_outcome,
)
from geocli.defaults import DEFAULT_CLASSIFIER, DEFAULT_SEGMENTER
from geocli.gpu import CPU_BATCH

MISSING = "--ray needs Ray, an optional extra: pip install 'geocli[ray]'"
FILES_PER_CALL = 8  # files a worker reads per call: a Ray call costs about a millisecond, a small file a few
CALLS_AHEAD = 2  # per worker, queued behind the one it runs, so that no worker waits for the driver

Item = TypeVar("Item")
Result = TypeVar("Result")


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached: one line for the user."""


class Worker:
    """One Ray actor's state: the model, loaded once; each method is one call from the driver."""

    def __init__(self, model: str, device: str) -> None:
        self.model = load_model(model, device=device)

    def classify_entries(self, named: list[tuple[str, Input]], seed: int, max_points: int | None) -> list[Entry]:
        n = self.model.input_points
        return [classify_entry(item, n, seed, max_points) for item in named]

    def predict(self, group: list[Entry], top_k: int) -> list[Prediction]:
        return predict_group(self.model, group, top_k)

    def segment(self, named: list[tuple[str, Input]], seed: int, max_points: int | None) -> list[Segmentation]:
        n = self.model.input_points
        return [segment_outcome(self.model, *_read_prepared(item, n, seed, max_points)) for item in named]


def classify_ray(
    inputs: Input | Iterable[Input],
    model: str | os.PathLike = DEFAULT_CLASSIFIER,
    *,
    address: str | None = None,
    workers: int | None = None,
    top_k: int = 5,
    batch_size: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    max_points: int | None = None,
) -> Generator[Prediction, None, None]:
    """:func:`geocli.api.classify_iter` on a Ray cluster: the same predictions, in input order.

    ``address`` is what :func:`ray.init` takes ('auto': the cluster this machine is part of,
    'local': a new one on this machine, the head's 'host:6379', or None: ``RAY_ADDRESS`` or a new
    local one); a Ray already initialised in this process is used as it is. ``workers``
    actors (default: one per CPU of the cluster) each load ``model``, a shipped name or a card path.
    ``batch_size`` is 16 unless given, as in a local run on a CPU (the driver cannot size a worker's GPU).
    A wrong model, a missing Ray and an unreachable cluster are raised here, before the first result
    (:class:`geocli.zoo.ModelError`, ``ValueError``, :class:`RayUnavailable`).
    """
    _model_for("classify", model, "cpu")
    batch_size = batch_size or CPU_BATCH
    return _classify_on(_connect(address), _actors(model, device, workers), inputs, top_k, batch_size, seed, max_points)


def _classify_on(
    started: bool,
    actors: _Actors,
    inputs: Input | Iterable[Input],
    top_k: int,
    batch_size: int,
    seed: int,
    max_points: int | None,
) -> Generator[Prediction, None, None]:
    with _session(started, actors):
        named_chunks = _chunks(_named(inputs), FILES_PER_CALL)
        entries = _flat(
            actors.ordered(lambda a, chunk: a.classify_entries.remote(chunk, seed, max_points), named_chunks)
        )
        with closing(entries):
            groups = batch_groups(entries, batch_size)
            yield from _flat(actors.ordered(lambda a, group: a.predict.remote(group, top_k), groups))


def segment_ray(
    inputs: Input | Iterable[Input],
    model: str | os.PathLike = DEFAULT_SEGMENTER,
    *,
    address: str | None = None,
    workers: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    max_points: int | None = None,
) -> Generator[Segmentation, None, None]:
    """:func:`geocli.api.segment` on a Ray cluster (arguments as :func:`classify_ray`): the same results, in order.

    One file per call: a segmentation carries its geometry and a label per point back to the driver.
    """
    _model_for("segment", model, "cpu")
    return _segment_on(_connect(address), _actors(model, device, workers), inputs, seed, max_points)


def _segment_on(
    started: bool, actors: _Actors, inputs: Input | Iterable[Input], seed: int, max_points: int | None
) -> Generator[Segmentation, None, None]:
    with _session(started, actors):
        named_chunks = _chunks(_named(inputs), 1)
        yield from _flat(actors.ordered(lambda a, chunk: a.segment.remote(chunk, seed, max_points), named_chunks))


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    source = iter(items)
    while chunk := list(islice(source, size)):
        yield chunk


def _flat(lists: Generator[list[Result], None, None]) -> Generator[Result, None, None]:
    """The items of each list in turn; closing this closes ``lists``."""
    with closing(lists):
        yield from chain.from_iterable(lists)


class _Actors:
    """The workers, and calls to them whose results come back in the order the calls were made."""

    def __init__(self, ray: Any, actors: list[Any]) -> None:
        self.ray, self.actors = ray, actors
        self.queued = [0] * len(actors)  # calls given to each worker whose results the driver has not taken

    def ordered(self, call: Callable[[Any, Item], Any], items: Iterable[Item]) -> Generator[Any, None, None]:
        """``call(worker, item)`` for each item, each on the worker with the fewest calls queued, results in order."""
        pending: deque[tuple[Any, int]] = deque()
        for item in items:
            worker = min(range(len(self.actors)), key=self.queued.__getitem__)
            pending.append((call(self.actors[worker], item), worker))
            self.queued[worker] += 1
            if len(pending) >= (CALLS_AHEAD + 1) * len(self.actors):
                yield self._take(pending)
        while pending:
            yield self._take(pending)

    def _take(self, pending: deque[tuple[Any, int]]) -> Any:
        ref, worker = pending.popleft()
        self.queued[worker] -= 1
        return self.ray.get(ref)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable(MISSING) from None
    return ray


def _connect(address: str | None) -> bool:
    """Join (or start) the cluster at ``address`` unless this process already has; whether it was done here."""
    ray = _ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address,
            runtime_env={"env_vars": {"PYTHONPATH": _workers_pythonpath()}},
            logging_level=logging.ERROR,
            log_to_driver=False,  # records and errors are the driver's to print, as in a local run
        )
    except Exception as error:  # Ray raises a bare Exception when a new local node does not start in 30 s
        raise RayUnavailable(f"cannot reach or start the Ray cluster {address or 'RAY_ADDRESS'}: {error}") from None
    return True


def _actors(model: str | os.PathLike, device: str, count: int | None) -> _Actors:
    """``count`` workers (default: the cluster's CPUs) that each load ``model`` once, as they start."""
    ray = _ray()
    count = count or max(1, int(ray.cluster_resources().get("CPU", 1)))
    actor = ray.remote(num_cpus=1, num_gpus=1 if device.startswith("cuda") else 0)(Worker)
    spec = str(Path(model).resolve()) if Path(model).exists() else str(model)  # a card path as every node sees it
    return _Actors(ray, [actor.remote(spec, device) for _ in range(count)])


@contextmanager
def _session(started: bool, actors: _Actors) -> Iterator[None]:
    """End the workers when the results are all handed back (or the consumer stops), and Ray if it was started here."""
    try:
        yield
    finally:
        for worker in actors.actors:
            actors.ray.kill(worker)
        if started:
            actors.ray.shutdown()


def _workers_pythonpath() -> str:
    """The folder this geocli is imported from, then the driver's own ``PYTHONPATH``."""
    here = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join([here, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
