"""Turn meshes into point clouds and put clouds into a common frame before classification.

Both steps give the same result for the same shape however its file lists it and however it
is posed: surface sampling depends neither on the order of the faces, of their corners or of
the vertices, nor (beyond float rounding) on rotation, reflection, translation or scale; and
normalisation does not depend on the order of the points or (exactly, for powers of two) on
the cloud's scale. Without that, the same mesh saved by two programs, or the same scan in
other units, got other labels.
"""

from __future__ import annotations

import math

import numpy as np

# splitmix64's constants: its finaliser is a bijection of 64-bit words that mixes every bit.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))

KEY_BITS = 20
"""Resolution of a face's shape key: a step is 2**-20 of the mesh's squared radius.

Fine enough that two different faces of a ten-million-face mesh rarely share a key (which
would give them one random stream); coarse enough that float rounding in a moved copy
(about 1e-16 of a key) carries a key across a step about once in a billion keys.
"""


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64."""
    z = (z ^ (z >> np.uint64(30))) * _MIX[0]
    z = (z ^ (z >> np.uint64(27))) * _MIX[1]
    return z ^ (z >> np.uint64(31))


def _digest(words: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of an (M, K) uint64 array."""
    digest = np.full(len(words), _GOLDEN, dtype=np.uint64)
    for column in words.T:
        digest = _mix(digest ^ column)
    return digest


def _uniform(stream: np.ndarray, draw: np.ndarray | int) -> np.ndarray:
    """Draw number ``draw`` of each random ``stream``, uniform in the open interval (0, 1)."""
    bits = _mix(stream + np.asarray(draw, dtype=np.uint64) * _GOLDEN)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _sort_corners(corners: np.ndarray, radius2: np.ndarray) -> None:
    """Order each face's corners by distance from the centre, then x, y, z, in place.

    Distances do not change with pose, so a face's corners come in the same order in any
    pose and in any numbering; coordinates only break exact ties. Three compare-and-swaps
    per face (a sorting network).
    """
    keyed = np.concatenate([radius2[:, :, None], corners], axis=2)  # (F, 3 corners, 4)
    for i, j in ((0, 1), (1, 2), (0, 1)):
        a, b = keyed[:, i], keyed[:, j]
        less = b[:, 3] < a[:, 3]
        for column in (2, 1, 0):
            less = (b[:, column] < a[:, column]) | ((b[:, column] == a[:, column]) & less)
        keyed[less, i], keyed[less, j] = b[less], a[less]
    corners[...], radius2[...] = keyed[:, :, 1:], keyed[:, :, 0]


def _smallest(priority: np.ndarray, count: int, tie_break: np.ndarray) -> np.ndarray:
    """Indices of the ``count`` smallest priorities; equal ones are taken in ``tie_break`` order."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    threshold = np.partition(priority, count - 1)[count - 1]
    below = np.flatnonzero(priority < threshold)
    tied = np.flatnonzero(priority == threshold)
    return np.concatenate([below, tied[np.argsort(tie_break[tied], kind="stable")][: count - len(below)]])


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Return ``n`` points spread uniformly over the mesh surface, reproducibly for a ``seed``."""
    return sample_surface_faces(vertices, faces, n, seed)[0]


def sample_surface_faces(
    vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` surface points and the index of the face each lies on (to carry face labels over).

    Each face gets ``n * area / total area`` points in expectation (so dense tessellation
    does not bias the cloud), uniformly inside it: see :func:`_face_counts`. A face's draws
    come from its own random stream (:func:`_face_streams`), which depends on ``seed`` and
    the face's shape and place in the mesh, not on the numbering or order of vertices,
    faces and corners nor on the pose; so the points drawn are the same in any numbering,
    and move with the mesh. The points are returned sorted by coordinates, the face indices
    in the same order, so even the order is the same.
    Raises ValueError for bad shapes or indices, ``n < 1``, or a mesh whose total area is zero.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"expected (V, 3) vertices and (F, 3) faces, got {vertices.shape} and {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"face indices must lie in [0, {len(vertices)}), got [{faces.min()}, {faces.max()}]")
    if n < 1:
        raise ValueError(f"number of samples must be at least 1, got {n}")
    centre = exact_mean(vertices) if len(vertices) else np.zeros(3)
    corners = vertices[faces] - centre  # (F, 3 corners, 3 coords), about a centre that moves with the mesh
    radius2 = np.square(corners).sum(axis=2)
    _sort_corners(corners, radius2)
    edges = corners[:, [1, 2, 2]] - corners[:, [0, 0, 1]]
    areas = 0.5 * np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=1)
    total = math.fsum(areas.tolist())  # exact, so the same in any face order
    if not np.isfinite(total) or total <= 0.0:
        raise ValueError("mesh has zero surface area (degenerate triangles): cannot sample its surface")
    stream = _face_streams(radius2, edges, seed)
    count = _face_counts(n, n * areas / total, stream, corners)
    face = np.repeat(np.arange(len(faces)), count)
    draw = (np.arange(n) - np.repeat(np.cumsum(count) - count, count)).astype(np.uint64)  # 0, 1, ... within a face
    chosen = corners[face]
    # sqrt keeps the density uniform: without it, points crowd towards the first corner.
    root = np.sqrt(_uniform(stream[face], 2 * draw + 1))[:, None]
    r2 = _uniform(stream[face], 2 * draw + 2)[:, None]
    points = (1.0 - root) * chosen[:, 0] + root * (1.0 - r2) * chosen[:, 1] + root * r2 * chosen[:, 2] + centre
    order = np.lexsort(points.T[::-1])
    return points[order], face[order]


def _face_streams(radius2: np.ndarray, edges: np.ndarray, seed: int) -> np.ndarray:
    """One random stream per face, seeded by ``seed`` and the face's *shape key*.

    The key is the face's corners' squared distances from the centre and its squared edge
    lengths, in steps of ``2**-KEY_BITS`` of the largest squared distance: the same in any
    numbering and any pose. Mirror faces of a symmetric mesh share a key, so their points
    mirror each other too.
    """
    shape = np.concatenate([radius2, np.sort(np.square(edges).sum(axis=2), axis=1)], axis=1) / radius2.max()
    key = np.rint(shape * 2.0**KEY_BITS).astype(np.int64).view(np.uint64)
    return _digest(np.column_stack([key, np.full(len(key), seed % 2**64, dtype=np.uint64)]))


def _face_counts(n: int, expected: np.ndarray, stream: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Points per face, ``n`` in all: the whole part of ``expected`` for sure,
    and one more with probability its fraction.

    The extra points are placed by Pareto sampling (Rosén 1997), which gives each face very
    nearly its fraction as the chance of one, keeps the total at exactly ``n``,
    and decides each face by its own draw and fraction: unlike a draw along the faces' list,
    moving one face in the list changes no other face's count.
    """
    count = np.floor(expected).astype(np.int64)
    share = expected - count
    u = _uniform(stream, 0)
    with np.errstate(divide="ignore"):
        priority = np.where(share > 0, (u / (1 - u)) * ((1 - share) / share), np.inf)
    # Equal priorities need equal stream and share: faces alike in shape, ordered by where they are.
    position = _digest(corners.reshape(len(corners), 9).view(np.uint64))
    count[_smallest(priority, n - int(count.sum()), position)] += 1
    return count


def exact_mean(points: np.ndarray) -> np.ndarray:
    """The mean of each column, correctly rounded, so the same for the rows in any order.

    ``np.mean`` sums pairwise in the order given: a shuffled cloud, or a mesh with its
    vertices renumbered, gets a centre that differs in the last bit, and so slightly other
    coordinates everywhere downstream. ``math.fsum`` is exact, hence order-free.
    """
    return np.array([math.fsum(column.tolist()) for column in np.asarray(points, dtype=np.float64).T]) / len(points)


def normalize_unit_sphere(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre ``points`` on their mean and scale the furthest one to radius 1.

    Returns ``(normalised, centre, scale)`` with ``points == normalised * scale + centre``, so
    predictions can be mapped back to raw units. If all points coincide (scale 0) the result is
    all zeros with ``scale = 1.0`` instead of a division by zero; any other cloud, however
    small, gets radius 1. :func:`geocli.geometry.frames.centre_and_scale`, its torch twin for
    batches inside the networks, and ``geocli align``'s frame follow the same rule.

    The points are first divided by the power of two nearest their largest coordinate,
    which is exact: the squared distances behind the radius then neither underflow (a
    cloud in units of 1e-170 had radius 0 and reached the network as all zeros) nor
    overflow, and a cloud scaled by any power of two gives bit-identical results. The
    centre is :func:`exact_mean`, so the point order does not matter either.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"expected a non-empty (N, 3) array, got shape {points.shape}")
    exponent = int(np.frexp(np.abs(points).max())[1])
    scaled = np.ldexp(points, -exponent)
    centre = exact_mean(scaled)
    centred = scaled - centre
    radius = float(np.sqrt(np.square(centred).sum(axis=1).max()))
    if radius == 0.0:
        return centred, np.ldexp(centre, exponent), 1.0
    return centred / radius, np.ldexp(centre, exponent), float(np.ldexp(radius, exponent))
