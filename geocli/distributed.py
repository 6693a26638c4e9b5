"""classify and segment over a Ray cluster (``--ray ADDRESS``; ``pip install 'geocli[ray]'``).

Each Ray worker is an actor that loads the model (or ensemble) once, then reads and prepares
files and runs the network on what the driver sends it, with the stages a local run uses
(:func:`geocli.api.input_stages`, :func:`geocli.api.classify_stages`, :func:`geocli.api.segment_stages`,
through :func:`geocli.pipeline.prepare` and :func:`geocli.pipeline.finish`). Results come back in
input order, as from :func:`geocli.api.classify` and :func:`geocli.api.segment`, and they are the
same records (calibrated scores, ``min_score``, the ``model`` field, timings): classify's batches are
formed on the driver by :func:`geocli.pipeline.batches`, exactly as a local run forms them
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
from dataclasses import dataclass, replace
from itertools import chain, islice
from pathlib import Path
from typing import Any, TypeVar

import torch

from geocli.api import (
    Input,
    NetworkInput,
    Prediction,
    Segmentation,
    _named,
    classify_stages,
    input_stages,
    load_models,
    require_task,
    segment_stages,
)
from geocli.defaults import DEFAULT_CLASSIFIER
from geocli.ensemble import model_names
from geocli.gpu import CPU_BATCH
from geocli.io import Geometry
from geocli.pipeline import Prepared, batches, finish, prepare
from geocli.zoo import LoadedModel

MISSING = "--ray needs Ray, an optional extra: pip install 'geocli[ray]'"
FILES_PER_CALL = 8  # files a worker reads per call: a Ray call costs about a millisecond, a small file a few
CALLS_AHEAD = 2  # per worker, queued behind the one it runs, so that no worker waits for the driver

Item = TypeVar("Item")
Result = TypeVar("Result")


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached: one line for the user."""


@dataclass(frozen=True)
class Cluster:
    """Where a run goes and what its workers load: ``address`` as :func:`ray.init` takes it ('auto': the
    cluster this machine is part of, 'local': a new one here, the head's 'host:6379', or None:
    ``RAY_ADDRESS`` or a new local one; a Ray already initialised in this process is used as it is),
    ``workers`` actors (default: one per CPU of the cluster) that each load ``model`` (a shipped name, a
    card path, or an ensemble ``a,b``, as ``--model`` takes it) onto ``device``."""

    address: str | None = None
    workers: int | None = None
    model: str = DEFAULT_CLASSIFIER
    device: str = "cpu"


class Worker:
    """One Ray actor's state: the model, loaded once; each method is one call from the driver."""

    def __init__(self, model: str, device: str, task: str, seed: int, max_points: int | None, threads: int) -> None:
        # The driver's thread count, not the one CPU Ray gives an actor: torch splits a reduction's sum
        # among its threads, so the last bits of a score (and of a 6-decimal record, 29 of 400) follow it.
        torch.set_num_threads(threads)
        self.model = require_task(load_models(model, device=device), task)
        self.stages = input_stages(self.model, seed, max_points)

    def prepare(self, named: list[tuple[str, Input]]) -> list[Prepared[NetworkInput]]:
        """Classify's reading and sampling, with what its network does not read left out (see :func:`_slim`)."""
        return [_slim(prepare(item, *self.stages)) for item in named]

    def classify(self, batch: list[Prepared[NetworkInput]], top_k: int, min_score: float | None) -> list[Prediction]:
        return finish(batch, *classify_stages(self.model, top_k, min_score))

    def segment(self, named: list[tuple[str, Input]]) -> list[Segmentation]:
        assert isinstance(self.model, LoadedModel)  # a segmenter, never an ensemble (require_task)
        stages = segment_stages(self.model)
        return [result for item in named for result in finish([prepare(item, *self.stages)], *stages)]


def _slim(prepared: Prepared[NetworkInput]) -> Prepared[NetworkInput]:
    """``prepared`` as classify's network reads it: the cloud, its warnings, and how many points were read.

    A prepared input goes back to the driver and, in its batch, to a worker again; the
    geometry and normalised points it was drawn from (a whole file) would go both ways for nothing.
    """
    if prepared.geometry is None or prepared.ready is None:
        return prepared
    points = prepared.geometry.points[:, :0]  # (N, 0): N points, no bytes
    geometry = Geometry(prepared.geometry.path, points, faces=None, normals=None, colors=None)
    ready = replace(prepared.ready, normalised=prepared.ready.normalised[:0])
    return replace(prepared, geometry=geometry, ready=ready)


def classify_ray(
    inputs: Input | Iterable[Input],
    cluster: Cluster,
    *,
    top_k: int = 5,
    min_score: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    max_points: int | None = None,
) -> Generator[Prediction, None, None]:
    """:func:`geocli.api.classify` on a Ray cluster: the same predictions, in input order.

    The workers read and prepare the files; the driver forms the batches
    (:func:`geocli.pipeline.batches`, exactly as a local run does) and sends each to a worker.
    ``batch_size`` is 16 unless given, as in a local run on a CPU (the driver cannot size a worker's GPU).
    A wrong model, a missing Ray and an unreachable cluster are raised here, before the first result
    (:class:`geocli.zoo.ModelError`, ``ValueError``, :class:`RayUnavailable`).
    """
    require_task(load_models(cluster.model, "cpu"), "classify")
    started = _connect(cluster.address)
    actors = _actors(cluster, "classify", seed, max_points)
    return _classify_on(started, actors, inputs, top_k, min_score, batch_size or CPU_BATCH)


def _classify_on(
    started: bool,
    actors: _Actors,
    inputs: Input | Iterable[Input],
    top_k: int,
    min_score: float | None,
    batch_size: int,
) -> Generator[Prediction, None, None]:
    with _session(started, actors):
        prepared = _flat(
            actors.ordered(lambda a, chunk: a.prepare.remote(chunk), _chunks(_named(inputs), FILES_PER_CALL))
        )
        with closing(prepared):
            groups = batches(prepared, batch_size)
            yield from _flat(actors.ordered(lambda a, batch: a.classify.remote(batch, top_k, min_score), groups))


def segment_ray(
    inputs: Input | Iterable[Input], cluster: Cluster, *, seed: int = 0, max_points: int | None = None
) -> Generator[Segmentation, None, None]:
    """:func:`geocli.api.segment` on a Ray cluster (arguments as :func:`classify_ray`): the same results, in order.

    One file per call: a segmentation carries its geometry and a label per point back to the driver.
    """
    require_task(load_models(cluster.model, "cpu"), "segment")
    started = _connect(cluster.address)
    return _segment_on(started, _actors(cluster, "segment", seed, max_points), inputs)


def _segment_on(started: bool, actors: _Actors, inputs: Input | Iterable[Input]) -> Generator[Segmentation, None, None]:
    with _session(started, actors):
        yield from _flat(actors.ordered(lambda a, chunk: a.segment.remote(chunk), _chunks(_named(inputs), 1)))


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


def _actors(cluster: Cluster, task: str, seed: int, max_points: int | None) -> _Actors:
    """``cluster.workers`` workers (default: the cluster's CPUs) that each load the model once, as they start."""
    ray = _ray()
    count = cluster.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    actor = ray.remote(num_cpus=1, num_gpus=1 if cluster.device.startswith("cuda") else 0)(Worker)
    # card paths as every node sees them; shipped names as they are
    spec = ",".join(str(Path(name).resolve()) if Path(name).exists() else name for name in model_names(cluster.model))
    threads = torch.get_num_threads()
    return _Actors(ray, [actor.remote(spec, cluster.device, task, seed, max_points, threads) for _ in range(count)])


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
