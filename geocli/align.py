"""Canonical poses: each input turned into the frame a model sees it in, kept in its own units.

A rotation-invariant network first puts every cloud in a frame that moves with it, so the
same shape in any pose gives the same canonical view. ``geocli align`` writes that view out
as geometry: every scan of an object, however it was held, comes out in one pose, to be
compared, overlaid or measured. Unlike the network's view it is not scaled to the unit
sphere: a scan in millimetres stays in millimetres.

The frame is TinvNN's (:class:`geocli.nets.tinvnn.TinvNN`): the principal axes of the cloud
the model is given (:func:`geocli.api.network_points`: the model's input size, FPS, a mesh
sampled on its surface with ``seed``), largest variance first, near-equal variances
resolved by a fourth moment (:func:`geocli.geometry.frames.principal_axes`), and each axis'
sign fixed by the cloud's third moment along it (:func:`geocli.geometry.frames.axis_signs`).
The other families have no single canonical frame (Frame Averaging and APEN's top level
average over all eight sign choices, APEN's parts and PaRot's patches have local frames), so
for them the same TinvNN rule is applied to the cloud that model is given; ``--model`` then
only sets how many points define the frame.

One departure from the network's view: the sign rule picks each axis' sign on its own, so
the three signed axes may form a left-handed frame, and coordinates in it would be the
input's mirror image. An aligned scan must be the scan, moved, so there the third axis is
reversed and the pose is always a proper rotation. :attr:`Pose.view_signs` records it: the
network's canonical cloud is ``pose.apply(cloud) * view_signs / radius``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geocli.api import Input, _named, as_geometry, load_model, network_points
from geocli.defaults import DEFAULT_CLASSIFIER
from geocli.geometry.frames import axis_signs, principal_axes
from geocli.geometry.sampling import normalize_unit_sphere
from geocli.io import Geometry, GeometryError
from geocli.io.atomic import atomic_write
from geocli.io.writers import write_ply
from geocli.outputs import Written, write_each
from geocli.prefetch import prefetch
from geocli.zoo import LoadedModel


@dataclass(frozen=True, eq=False)
class Pose:
    """A rigid motion into a canonical frame: ``aligned = (points - centre) @ rotation.T``.

    Equivalently ``aligned = points @ rotation.T + translation``, and back,
    ``points = aligned @ rotation + centre``. ``rotation`` is proper (determinant +1) and its
    rows are the frame's axes in input coordinates, largest variance first. ``variances``
    are the principal variances of the cloud that defined the frame (the eigenvalues of its
    covariance, in input units squared, largest first). ``view_signs`` and ``radius`` relate
    the pose to the network's own canonical view (see the module docstring).
    """

    rotation: np.ndarray
    centre: np.ndarray
    variances: np.ndarray
    view_signs: np.ndarray
    radius: float

    @property
    def translation(self) -> np.ndarray:
        return -self.rotation @ self.centre

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points (N,3) in input coordinates -> the same points in the canonical frame."""
        return (np.asarray(points, dtype=np.float64) - self.centre) @ self.rotation.T

    def to_dict(self) -> dict[str, Any]:
        """The transform as JSON-ready lists (what ``geocli align`` writes beside each output)."""
        return {
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
            "centre": self.centre.tolist(),
            "variances": self.variances.tolist(),
            "model_view": {"signs": self.view_signs.tolist(), "radius": self.radius},
        }


def canonical_pose(points: np.ndarray) -> Pose:
    """TinvNN's canonical frame of an (N,3) cloud, as a proper rigid motion in the cloud's units.

    The same steps as ``TinvNN.canonical`` (centre, scale to the unit sphere, principal
    axes, sign rule), run in float64 and kept as a matrix rather than applied, so that the
    frame of one input and of a rotated, moved copy agree to rounding error.
    """
    points = np.asarray(points, dtype=np.float64)
    centre = points.mean(axis=0)
    centred = points - centre
    radius = float(np.linalg.norm(centred, axis=1).max()) or 1.0  # coincident points: normalize_unit_sphere's rule
    normalised = torch.from_numpy(centred / radius)[None]
    axes, variances = principal_axes(normalised)
    frame = axes[0] * axis_signs(normalised @ axes)[0]  # columns: the signed axes
    view_signs = torch.ones(3, dtype=frame.dtype)
    if torch.linalg.det(frame) < 0:
        view_signs[2] = -1.0
    rotation = (frame * view_signs).T.numpy()
    return Pose(rotation, centre, variances[0].numpy() * radius**2, view_signs.numpy(), radius)


@dataclass
class Alignment:
    """One input in its canonical pose; ``error`` is set (and the rest empty) when it could not be used.

    ``geometry`` is the aligned input: every point (a mesh's vertices, its faces kept),
    normals turned with it, colours unchanged.
    """

    path: str
    model: str | None = None
    pose: Pose | None = None
    geometry: Geometry | None = field(default=None, repr=False)
    error: str | None = None


def align_geometry(model: LoadedModel, geometry: Geometry, seed: int = 0) -> Alignment:
    """Put one geometry in the canonical pose of the cloud ``model`` would be given."""
    normalised, centre, scale = normalize_unit_sphere(geometry.points)
    cloud = network_points(normalised, geometry.faces, model.input_points, seed) * scale + centre
    pose = canonical_pose(cloud)
    normals = None if geometry.normals is None else geometry.normals @ pose.rotation.T
    aligned = replace(geometry, points=pose.apply(geometry.points), normals=normals)
    return Alignment(path=geometry.path, model=model.name, pose=pose, geometry=aligned)


def align(
    inputs: Input | Iterable[Input],
    model: LoadedModel | str | os.PathLike = DEFAULT_CLASSIFIER,
    *,
    seed: int = 0,
    max_points: int | None = None,
    workers: int = 0,
) -> Generator[Alignment, None, None]:
    """Canonical poses of files or (N,3) arrays, one :class:`Alignment` per input, in order.

    A generator, like :func:`geocli.api.segment`: each result holds a whole aligned scan.
    Any model works (classifier or segmenter, any family); only its input size is used.
    There is no network to wait for, so ``workers`` threads align whole inputs, two each
    at most ahead of the caller (:func:`geocli.prefetch.prefetch`); 0 aligns them here.
    """
    if isinstance(model, str | os.PathLike):
        model = load_model(model, device="cpu")
    results = prefetch(
        partial(_align_named, model=model, seed=seed, max_points=max_points), _named(inputs), workers, 2 * workers
    )
    with closing(results):
        yield from results


def _align_named(named: tuple[str, Input], model: LoadedModel, seed: int, max_points: int | None) -> Alignment:
    """One input's :class:`Alignment`, or its error, for :func:`align`."""
    name, item = named
    try:
        geometry = as_geometry(item, name, max_points)
    except GeometryError as error:
        return Alignment(path=name, error=str(error))
    return align_geometry(model, geometry, seed)


def write_alignment(result: Alignment, target: str | os.PathLike) -> dict[str, Any]:
    """Write the aligned geometry to ``target`` (PLY) and its transform to ``target`` with ``.json``.

    Both are written atomically, the JSON last, so a JSON file always has its PLY. Returns
    the JSON's content: input, output, model and the pose (:meth:`Pose.to_dict`).
    """
    if result.pose is None or result.geometry is None:
        raise ValueError(f"{result.path}: nothing to write ({result.error})")
    target = Path(target)
    geometry = result.geometry
    write_ply(target, geometry.points, faces=geometry.faces, normals=geometry.normals, colors=geometry.colors)
    record = {"input": result.path, "output": str(target), "model": result.model, **result.pose.to_dict()}
    with atomic_write(target.with_suffix(".json"), "w") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    return record


def align_files(
    targets: Mapping[str, Path],
    model: LoadedModel | str | os.PathLike = DEFAULT_CLASSIFIER,
    *,
    seed: int = 0,
    max_points: int | None = None,
    workers: int = 0,
) -> Generator[Written[Alignment], None, None]:
    """Align each input and write it to its target (:func:`write_alignment`), in input order: ``geocli align``'s
    work, each input's outcome one :class:`geocli.outputs.Written` (its record, or a one-line error)."""
    results = align(list(targets), model, seed=seed, max_points=max_points, workers=workers)
    return write_each(results, targets, write_alignment)
