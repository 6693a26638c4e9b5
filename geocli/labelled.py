"""Segment a batch of files into a folder of labelled files: ``geocli segment``'s work, for Python too.

>>> from geocli.labelled import segment_files, write_batch_legend
>>> from geocli.outputs import plan_outputs
>>> plan = plan_outputs(["scans/a.ply", "scans/b.las"], Path("labeled"), "ply")
>>> write_batch_legend(Path("labeled"), model)        # labels.json, before any output
>>> skipped, todo = plan.resume()                      # or plan.targets, to redo everything
>>> for written in segment_files(todo, model):
...     print(written.to_dict())

Where each output goes is :mod:`geocli.outputs`'s; what an output holds, :func:`geocli.io.writers.write_segmentation`'s.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geocli.api import Segmentation, segment
from geocli.clusters import ClusterOptions
from geocli.io.writers import Legend, write_legend, write_segmentation
from geocli.outputs import Hook, Written, write_each
from geocli.zoo import LoadedModel

if TYPE_CHECKING:
    from geocli.distributed import Cluster

LEGEND_FILE = "labels.json"  # beside the outputs: each label's id, part name and colour, and the model


def write_batch_legend(out: Path, model: LoadedModel) -> Path:
    """Write ``out``/labels.json for ``model``'s outputs; first, so that every output under ``out`` has it,
    an interrupted batch's too. Raises ``OSError`` when it cannot be written."""
    write_legend(out / LEGEND_FILE, Legend.of(model.card))
    return out / LEGEND_FILE


def segment_files(
    targets: Mapping[str, Path],
    model: LoadedModel,
    *,
    fmt: str = "ply",
    scores: bool = False,
    per_face: bool = False,
    seed: int = 0,
    max_points: int | None = None,
    workers: int = 0,
    scenes: ClusterOptions | None = None,
    preview: bool = False,
    hooks: Sequence[Hook[Segmentation]] = (),
    ray: Cluster | None = None,
) -> Generator[Written[Segmentation], None, None]:
    """Segment each input (:func:`geocli.api.segment`) and write its labels to its target, in input order.

    ``scores`` adds each point's probability, ``per_face`` a mesh's faces and their labels (PLY);
    ``scenes`` splits each input into objects first (:func:`geocli.scenes.segment_scenes`) and
    writes each point's instance too; ``preview`` draws ``<output>.png`` beside each output
    (:mod:`geocli.preview`); ``hooks`` each write something more beside an output
    (``hook(segmentation, target)``). ``ray`` segments on a Ray cluster's workers instead
    (:func:`geocli.distributed.segment_ray`: the same results, so the same outputs; not with
    ``scenes``). Each input's outcome is one :class:`geocli.outputs.Written`:
    its record (the segmentation's :meth:`~geocli.api.Segmentation.to_dict` and ``output``), or a
    one-line error.
    """
    legend = Legend.of(model.card)
    if preview:
        hooks = [*hooks, partial(_draw_preview, legend, model.name)]

    def write(result: Segmentation, target: Path) -> dict[str, Any]:
        assert result.geometry is not None and result.labels is not None  # set on every success
        write_segmentation(
            target,
            result.geometry,
            result.labels,
            fmt=fmt,
            scores=result.scores if scores else None,
            face_labels=result.face_labels if per_face else None,
            legend=legend,
            instances=getattr(result, "instances", None),
        )
        return {**result.to_dict(), "output": str(target)}

    if ray is not None:
        if scenes is not None:
            raise ValueError("--ray does not split scenes (--clusters); run it without --ray")
        from geocli.distributed import segment_ray

        results: Iterable[Segmentation] = segment_ray(list(targets), ray, seed=seed, max_points=max_points)
    elif scenes is None:
        results = segment(list(targets), model, seed=seed, max_points=max_points, workers=workers)
    else:
        from geocli.scenes import segment_scenes

        results = segment_scenes(
            list(targets), model, options=scenes, seed=seed, max_points=max_points, workers=workers
        )
    return write_each(results, targets, write, hooks)


def _draw_preview(legend: Legend, model_name: str, result: Segmentation, target: Path) -> None:
    """The ``preview`` hook: ``<output>.png`` of the labelled points, titled by input, category and model."""
    from geocli.preview import preview_path, write_preview  # matplotlib only when a picture is asked for

    assert result.geometry is not None and result.labels is not None
    title = f"{result.path}: {result.category or 'scene'} ({model_name})"
    write_preview(preview_path(target), result.geometry.points, result.labels, legend, title)
