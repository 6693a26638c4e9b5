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
from collections.abc import Callable, Iterable

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
    """splitmix64's finaliser, elementwise on uint64, in place: ``z`` is overwritten and returned.

    In place because it runs on every face several times per mesh: fresh arrays for each
    shift, xor and product cost more than the arithmetic.
    """
    shifted = z >> np.uint64(30)
    z ^= shifted
    z *= _MIX[0]
    np.right_shift(z, np.uint64(27), out=shifted)
    z ^= shifted
    z *= _MIX[1]
    np.right_shift(z, np.uint64(31), out=shifted)
    z ^= shifted
    return z


def _digest(columns: Iterable[np.ndarray | np.uint64], length: int) -> np.ndarray:
    """A 64-bit hash of each of ``length`` rows given column by column (uint64 arrays or scalars)."""
    digest = np.full(length, _GOLDEN, dtype=np.uint64)
    for column in columns:
        digest ^= column
        _mix(digest)
    return digest


def _uniform(stream: np.ndarray, draw: np.ndarray | int) -> np.ndarray:
    """Draw number ``draw`` of each random ``stream``, uniform in the open interval (0, 1)."""
    bits = _mix(stream + np.asarray(draw, dtype=np.uint64) * _GOLDEN)
    bits >>= np.uint64(11)
    uniform = bits.astype(np.float64)
    uniform += 0.5
    uniform *= 2.0**-53
    return uniform


def _network() -> np.ndarray:
    """Where three corners end up after the sorting network, for each outcome of comparing them.

    Row ``k`` holds, for each outcome, which corner lands in place ``k``. An outcome is
    ``c01 + 3 * c02 + 9 * c12``, where ``cpq`` is 1 if corner q's key is less than corner
    p's, 2 if greater, 0 if equal. The network compares places (0, 1), (1, 2), (0, 1) and
    swaps only on a strict "less", so equal corners keep their order.
    """
    table = np.empty((3, 27), dtype=np.intp)
    for outcome in range(27):
        relation = {(0, 1): outcome % 3, (0, 2): outcome // 3 % 3, (1, 2): outcome // 9}
        order = [0, 1, 2]
        for i, j in ((0, 1), (1, 2), (0, 1)):
            a, b = order[i], order[j]
            if relation[min(a, b), max(a, b)] == (1 if a < b else 2):  # b's key is less than a's
                order[i], order[j] = b, a
        table[:, outcome] = order
    return table


_NETWORK = _network()
_PAIRS = ((0, 1, 1), (0, 2, 3), (1, 2, 9))  # (corner p, corner q, weight of their outcome)

_Corners = tuple[np.ndarray, np.ndarray, np.ndarray]
"""A face property per corner: three (F,) arrays, first, second and third corner."""


def _key_less(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Whether each key row ``b`` (squared distance, x, y, z) comes before ``a``: distance, then x, y, z."""
    less = b[:, 3] < a[:, 3]
    for column in (2, 1, 0):
        less = (b[:, column] < a[:, column]) | ((b[:, column] == a[:, column]) & less)
    return less


def _sorted_corners(faces: np.ndarray, coordinates: np.ndarray, radius2: np.ndarray) -> _Corners:
    """Each face's vertex indices, its corners ordered by distance from the centre, then x, y, z.

    Distances do not change with pose, so a face's corners come in the same order in any
    pose and in any numbering; coordinates only break exact ties. The order is that of a
    sorting network of three compare-and-swaps (:func:`_network`), found from the three
    pairwise comparisons; distances alone decide them except on the few faces with two
    corners at one distance, where the coordinates are compared too. ``coordinates`` is
    (3, V), ``radius2`` (V,).
    """
    distance = [np.take(radius2, faces[:, corner]) for corner in range(3)]
    outcome = np.zeros(len(faces), dtype=np.uint8)
    for p, q, weight in _PAIRS:
        outcome += (distance[q] < distance[p]).view(np.uint8) * np.uint8(weight)
        outcome += (distance[p] < distance[q]).view(np.uint8) * np.uint8(2 * weight)
    tied = np.flatnonzero((distance[0] == distance[1]) | (distance[0] == distance[2]) | (distance[1] == distance[2]))
    if len(tied):
        keys = [np.column_stack([radius2[ids], coordinates[:, ids].T]) for ids in faces[tied].T]  # (T, 4) a corner
        outcome[tied] = sum(
            weight * (_key_less(keys[q], keys[p]) + 2 * _key_less(keys[p], keys[q])) for p, q, weight in _PAIRS
        )
    row = np.arange(0, faces.size, 3)
    first, second, third = (np.take(faces, row + np.take(place, outcome)) for place in _NETWORK)
    return first, second, third


def _smallest(priority: np.ndarray, count: int, tie_break: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Indices of the ``count`` smallest priorities; equal ones are taken in ``tie_break`` order.

    ``tie_break`` gives the keys of the indices it is passed; it is asked only when equal
    priorities straddle the cut, which is rare.
    """
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    threshold = np.partition(priority, count - 1)[count - 1]
    below = np.flatnonzero(priority < threshold)
    tied = np.flatnonzero(priority == threshold)
    if len(below) + len(tied) > count:
        tied = tied[np.argsort(tie_break(tied), kind="stable")][: count - len(below)]
    return np.concatenate([below, tied])


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

    This runs once per input file, so it is written for speed: work on every face is done
    on (F,) arrays, one coordinate or corner at a time and in place where it can (fewer and
    smaller temporaries, so fewer page faults for fresh memory), and a point's corners are
    fetched only for the faces that get points.
    """
    vertices, faces = _mesh_arrays(vertices, faces, n)
    centre = exact_mean(vertices) if len(vertices) else np.zeros(3)
    coordinates = np.subtract(vertices.T, centre[:, None], order="C")  # (3, V), about a centre that moves with the mesh
    radius2 = _squared_norm(coordinates)
    corners = _sorted_corners(faces, coordinates, radius2)
    areas, edges2 = _areas_and_edges(coordinates, corners)
    total = _exact_sum(areas)  # exact, so the same in any face order
    if not np.isfinite(total) or total <= 0.0:
        raise ValueError("mesh has zero surface area (degenerate triangles): cannot sample its surface")
    stream = _face_streams([np.take(radius2, corner) for corner in corners], edges2, seed)
    expected = n * areas
    expected /= total
    count = _face_counts(n, expected, stream, lambda tied: _position(coordinates, [c[tied] for c in corners]))
    hit = np.flatnonzero(count)
    face = np.repeat(hit, count[hit])
    draw = (np.arange(n) - np.repeat(np.cumsum(count[hit]) - count[hit], count[hit])).astype(np.uint64)  # 0, 1, ...
    chosen = [np.take(coordinates, corner[face], axis=1) for corner in corners]  # (3, n) a corner
    face_stream = stream[face]
    # sqrt keeps the density uniform: without it, points crowd towards the first corner.
    root = np.sqrt(_uniform(face_stream, 2 * draw + 1))
    r2 = _uniform(face_stream, 2 * draw + 2)
    points = (1.0 - root) * chosen[0] + root * (1.0 - r2) * chosen[1] + root * r2 * chosen[2] + centre[:, None]
    order = np.argsort(points[0])
    if not np.all(points[0, order[1:]] > points[0, order[:-1]]):  # equal x (or NaN): y, then z decide
        order = np.lexsort(points[::-1])
    return points.T[order], face[order]


def _mesh_arrays(vertices: np.ndarray, faces: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``vertices`` as float64 and ``faces`` as int64; ValueError for bad shapes or indices or ``n < 1``."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"expected (V, 3) vertices and (F, 3) faces, got {vertices.shape} and {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"face indices must lie in [0, {len(vertices)}), got [{faces.min()}, {faces.max()}]")
    if n < 1:
        raise ValueError(f"number of samples must be at least 1, got {n}")
    return vertices, faces


def _squared_norm(vectors: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """x² + y² + z² of vectors given as x, y and z rows, summed in that order as ``np.square(v).sum(axis=-1)``."""
    total = np.square(vectors[0])
    total += np.square(vectors[1])
    total += np.square(vectors[2])
    return total


def _areas_and_edges(coordinates: np.ndarray, corners: _Corners) -> tuple[np.ndarray, _Corners]:
    """Each face's area and squared edge lengths (in no particular order), from its sorted corners.

    The arithmetic is that of ``0.5 * np.linalg.norm(np.cross(c1 - c0, c2 - c0))``, so each
    area is rounded the same; ``c2 - c1`` is the third edge.
    """
    first, second, third = [], [], []  # x, y, z of c1 - c0, c2 - c0, c2 - c1
    for axis in coordinates:
        start, middle, end = (np.take(axis, corner) for corner in corners)
        second.append(end - start)
        end -= middle
        middle -= start
        first.append(middle)
        third.append(end)
    normal = [
        first[1] * second[2] - first[2] * second[1],
        first[2] * second[0] - first[0] * second[2],
        first[0] * second[1] - first[1] * second[0],
    ]
    areas = np.sqrt(_squared_norm(normal))
    areas *= 0.5
    return areas, (_squared_norm(first), _squared_norm(second), _squared_norm(third))


def _face_streams(radius2: list[np.ndarray], edges2: _Corners, seed: int) -> np.ndarray:
    """One random stream per face, seeded by ``seed`` and the face's *shape key*.

    The key is the face's corners' squared distances from the centre (``radius2``, sorted)
    and its squared edge lengths (``edges2``, in any order: they are sorted here), in steps
    of ``2**-KEY_BITS`` of the largest squared distance: the same in any numbering and any
    pose. Mirror faces of a symmetric mesh share a key, so their points mirror each other too.
    """
    shortest, longest = np.minimum(edges2[0], edges2[1]), np.maximum(edges2[0], edges2[1])
    middle, longest = np.minimum(longest, edges2[2]), np.maximum(longest, edges2[2])
    shortest, middle = np.minimum(shortest, middle), np.maximum(shortest, middle)
    largest = radius2[2].max()  # the corners are sorted by distance

    def key(column: np.ndarray) -> np.ndarray:
        step = column / largest
        step *= 2.0**KEY_BITS
        return np.rint(step, out=step).astype(np.int64).view(np.uint64)

    return _digest((*map(key, (*radius2, shortest, middle, longest)), np.uint64(seed % 2**64)), len(shortest))


def _position(coordinates: np.ndarray, corners: list[np.ndarray]) -> np.ndarray:
    """A hash of where each face is: the bits of its sorted corners' coordinates."""
    words = np.stack([coordinates[:, corner].T for corner in corners], axis=1).reshape(len(corners[0]), 9)
    return _digest(words.view(np.uint64).T, len(words))


def _face_counts(
    n: int, expected: np.ndarray, stream: np.ndarray, position: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Points per face, ``n`` in all: the whole part of ``expected`` for sure,
    and one more with probability its fraction.

    The extra points are placed by Pareto sampling (Rosén 1997), which gives each face very
    nearly its fraction as the chance of one, keeps the total at exactly ``n``,
    and decides each face by its own draw and fraction: unlike a draw along the faces' list,
    moving one face in the list changes no other face's count. Equal priorities need equal
    stream and share: faces alike in shape, ordered by where they are (``position`` of the
    faces given).
    """
    count = np.floor(expected).astype(np.int64)
    share = expected - count
    u = _uniform(stream, 0)
    with np.errstate(divide="ignore"):
        priority = np.where(share > 0, (u / (1 - u)) * ((1 - share) / share), np.inf)
    count[_smallest(priority, n - int(count.sum()), position)] += 1
    return count


def exact_mean(points: np.ndarray) -> np.ndarray:
    """The mean of each column, correctly rounded, so the same for the rows in any order.

    ``np.mean`` sums pairwise in the order given: a shuffled cloud, or a mesh with its
    vertices renumbered, gets a centre that differs in the last bit, and so slightly other
    coordinates everywhere downstream. An exact sum (:func:`_exact_sums`) is order-free.
    """
    return _exact_sums(np.ascontiguousarray(np.asarray(points, dtype=np.float64).T)) / len(points)


def _exact_sum(values: np.ndarray) -> float:
    """The correctly rounded sum of a 1-D array: :func:`_exact_sums` of one row."""
    return float(_exact_sums(values[None])[0])


_ROUNDS = 8  # bit-slices tried before handing a row to math.fsum: 2 or 3 do for real data


def _exact_sums(rows: np.ndarray) -> np.ndarray:
    """The sum of each row of a (K, N) array, correctly rounded: the same float as ``math.fsum``.

    ``math.fsum`` over a list costs about 30 ns a value, more than all the other work on a
    mesh. Here each round cuts every value at the same power of two, ``2**-53 * sigma``,
    into a high part (``(sigma + p) - sigma``: exact, a multiple of that power) and the
    rest (``p - high``, also exact); with ``sigma`` at least ``N`` times the largest value,
    the N high parts add up exactly in any order, so each round gives one exact float and
    leaves values about ``2**(53 - log2 N)`` times smaller (the "extraction" of Rump, Ogita
    and Oishi, 2008). When nothing is left, ``math.fsum`` of the few round totals is the
    correctly rounded sum. Rows that could overflow or hold infinities or NaNs, rows too
    long, rows that need too many rounds, and exact zeros (whose sign ``math.fsum``
    decides) go to ``math.fsum`` itself, so its errors and special values are kept too.
    """
    length = rows.shape[1]
    spread = length.bit_length()  # length < 2**spread
    rest = rows
    totals: list[np.ndarray] = []  # one exact sum of high parts per round
    for _ in range(_ROUNDS if 0 < length <= 2**25 else 0):
        largest = np.abs(rest).max(axis=1)
        if not largest.any():  # all taken: the round totals hold the exact sums
            sums = np.array([math.fsum(parts) for parts in zip(*totals)]) if totals else np.zeros(len(rows))
            for zero in np.flatnonzero(sums == 0):
                sums[zero] = math.fsum(rows[zero].tolist())
            return sums
        if not np.all(largest < 2.0 ** (1000 - spread)):  # infinities, NaNs, or sums near overflow
            break
        sigma = np.ldexp(1.0, np.frexp(largest)[1] + spread)[:, None]  # 2**spread * (a power of two >= largest)
        high = sigma + rest
        high -= sigma
        totals.append(high.sum(axis=1))
        rest = rest - high
    return np.array([math.fsum(row.tolist()) for row in rows])


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
