"""Generated scene scans for ``--clusters``: ModelNet40 shapes in random poses on a noisy floor, seeded.

Each scene holds 2-6 shapes (or as many as asked), each turned by a uniform random rotation,
scaled to a bounding radius of 0.3-0.8 m, lowered until it rests on the floor (its lowest
point on the plane) and placed at least ``gap`` metres from the others' footprints. The floor
is a rectangle around them with a margin, sampled uniformly at about the objects' own point
spacing and jittered off the plane by ``floor_noise`` spacings (a scanner's noise), with no floor
under an object: a scanner does not see the floor through what stands on it, and floor points
under an object's base would lie among that base's own points, where no split could tell them
apart. Left out is every floor point within :data:`SHADOW` of the object's own spacings of
its points seen from above (on the floor's x, y): the object's vertical shadow. Its points
sample a closed surface at random, so their projection covers the ground it stands over
only with gaps (from a random spot the nearest of points scattered at random is more than
one median spacing away half the time; over a surface seen from above, top and bottom, it is
more than two only about 0.4 % of the time). Floor around the object, and in what it only
partly covers (between a U's arms), stays, right up to two spacings from its points. A
scanner that looks at a slant hides more (the shadow behind an object); leaving that floor
in keeps the scenes as hard as open floor can make them. The whole scene is then turned and
moved at random, as a scan comes in its scanner's frame, and its points shuffled.
``instances`` says which shape each point came from (-1: floor), so a split can be scored
point by point, and ``shapes`` which ModelNet40 shapes were used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geocli.data.pointset import PointSet

OBJECTS = (2, 6)
RADIUS = (0.3, 0.8)  # metres: a stool to a sofa; the classifier does not care, the spacing does
PLACEMENT_TRIES = 200  # random spots tried for a shape before the floor grows
SHADOW = 2.0  # the object's own spacings: no floor this close to its points seen from above


@dataclass(frozen=True, eq=False)
class Scene:
    """A generated scan: ``points`` (N, 3) in metres, ``instances`` (N,) the object each point came
    from (-1 for the floor), ``shapes`` each object's index in the :class:`PointSet` it was drawn
    from, ``labels`` its class, and ``objects`` each object's own points as posed in the scene."""

    points: np.ndarray
    instances: np.ndarray
    shapes: np.ndarray
    labels: np.ndarray

    @property
    def objects(self) -> list[np.ndarray]:
        return [self.points[self.instances == i] for i in range(len(self.shapes))]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniform random rotation (Haar measure): the Q of a Gaussian matrix's QR, signs fixed, det +1."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def make_scene(
    shapes: PointSet,
    seed: int,
    objects: int | None = None,
    *,
    gap: float = 0.25,
    floor_noise: float = 0.3,
) -> Scene:
    """A scene of ``objects`` shapes of ``shapes`` (2-6 at random when ``None``), placed apart by ``gap``
    metres on a floor jittered by ``floor_noise`` spacings; the same ``seed`` gives the same scene."""
    from geocli.clusters import median_spacing

    rng = np.random.default_rng(seed)
    count = int(rng.integers(OBJECTS[0], OBJECTS[1] + 1)) if objects is None else objects
    chosen = rng.choice(len(shapes), count, replace=False)
    posed = [
        _rest_on_floor(shapes.points[i].astype(np.float64) @ random_rotation(rng).T * rng.uniform(*RADIUS))
        for i in chosen
    ]
    footprints = np.array([np.linalg.norm(p[:, :2], axis=1).max() for p in posed])
    centres = _place(footprints, gap, rng)
    placed = [p + [*c, 0.0] for p, c in zip(posed, centres)]
    spacing = float(np.median([median_spacing(p) for p in placed]))
    floor = _floor(centres, footprints, spacing, floor_noise, rng)
    floor = floor[~np.any([_shadowed(floor, p) for p in placed], axis=0)]
    points = np.concatenate([*placed, floor])
    instances = np.concatenate([np.full(len(p), i) for i, p in enumerate(placed)] + [np.full(len(floor), -1)])
    order = rng.permutation(len(points))
    moved = points[order] @ random_rotation(rng).T + rng.uniform(-10, 10, 3)
    return Scene(moved, instances[order], chosen, shapes.labels[chosen])


def _rest_on_floor(points: np.ndarray) -> np.ndarray:
    """The shape centred over the origin (its bounding box's middle) with its lowest point at z = 0."""
    low, high = points.min(axis=0), points.max(axis=0)
    return points - [(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]]


def _place(footprints: np.ndarray, gap: float, rng: np.random.Generator) -> np.ndarray:
    """Footprint centres (x, y) at random, each footprint ``gap`` or more from every other one.

    Shapes go down largest first in a square that holds about twice their footprints' area;
    a shape that finds no free spot in :data:`PLACEMENT_TRIES` tries widens the square by 10 %.
    """
    side = np.sqrt(2 * np.sum((2 * footprints + gap) ** 2))
    centres = np.zeros((len(footprints), 2))
    placed: list[int] = []
    for i in np.argsort(-footprints, kind="stable"):
        while True:
            spots = rng.uniform(-side / 2, side / 2, (PLACEMENT_TRIES, 2))
            clear = np.ones(PLACEMENT_TRIES, dtype=bool)
            for j in placed:
                clear &= np.linalg.norm(spots - centres[j], axis=1) >= footprints[i] + footprints[j] + gap
            if clear.any():
                centres[i] = spots[np.argmax(clear)]
                placed.append(int(i))
                break
            side *= 1.1
    return centres


def _shadowed(floor: np.ndarray, placed: np.ndarray) -> np.ndarray:
    """Which ``floor`` points lie within :data:`SHADOW` of the ``placed`` object's spacings of its points, on x, y."""
    from scipy.spatial import cKDTree

    from geocli.clusters import median_spacing

    distances, _ = cKDTree(placed[:, :2]).query(floor[:, :2], distance_upper_bound=SHADOW * median_spacing(placed))
    return np.isfinite(distances)


def _floor(
    centres: np.ndarray, footprints: np.ndarray, spacing: float, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Uniform points on the rectangle around the footprints (margin: the largest footprint), at
    ``spacing`` between neighbours, each off the plane by a Gaussian of ``noise`` spacings."""
    margin = footprints.max()
    low, high = (
        (centres - footprints[:, None]).min(axis=0) - margin,
        (centres + footprints[:, None]).max(axis=0) + margin,
    )
    density = (0.5 / spacing) ** 2  # uniform points at density d lie about 0.5 / sqrt(d) from their nearest
    count = int(np.prod(high - low) * density)
    return np.column_stack([rng.uniform(low, high, (count, 2)), rng.normal(0, noise * spacing, count)])
