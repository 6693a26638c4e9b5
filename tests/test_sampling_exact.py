"""Issue 19, fast mesh sampling: the rewrite gives bit for bit the samples of the original.

The shipped models were trained and measured on clouds drawn by ``sample_surface_faces``, so
a faster version must not move a single bit: the same points, face indices and order for
every mesh and seed. The original implementation is kept below as the reference (verbatim
but for one docstring, and sharing the unchanged checks of the arguments). Random meshes
built to hit every branch (ties in distance, in coordinates and in priority, degenerate and
duplicate faces, repeated vertices, tiny, huge and overflowing scales, no faces) must give
byte-identical arrays or the same error, and the sample meshes must hash to the digests the
original gave.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import PSB
from geocli.geometry import sampling
from geocli.io import read_geometry

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
PSB_MESHES = PSB / "meshes"

# --- the reference: geocli/geometry/sampling.py as of 21cfc39, before issue 19 -------------

# splitmix64's constants: its finaliser is a bijection of 64-bit words that mixes every bit.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))

KEY_BITS = 20


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


def sample_surface_faces(
    vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The original; its checks of the arguments are shared, as they did not change."""
    vertices, faces = sampling._mesh_arrays(vertices, faces, n)
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


# --- meshes that reach every branch -------------------------------------------------------


def random_mesh(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random triangle soup: degenerate faces, repeated vertices and faces, coarse grids (ties)."""
    count = int(rng.integers(3, 300))
    kind = rng.integers(4)
    if kind == 0:  # a small integer grid: many equal distances, coordinates and shapes
        vertices = rng.integers(-3, 4, size=(count, 3)).astype(np.float64)
    elif kind == 1:  # float32 data, as most files hold
        vertices = rng.normal(size=(count, 3)).astype(np.float32).astype(np.float64)
    else:
        vertices = rng.normal(size=(count, 3)) * rng.uniform(0.1, 10, size=3)
    vertices = vertices * 10.0 ** rng.choice([0, 0, 0, -3, 5, -150, 150, 300]) + rng.normal(size=3) * rng.choice(
        [0, 1, 1e3]
    )
    repeated = rng.integers(0, count, size=int(rng.integers(0, count // 3 + 1)))
    vertices = np.concatenate([vertices, vertices[repeated]])  # the same point under two numbers
    faces = rng.integers(0, len(vertices), size=(int(rng.integers(1, 400)), 3))  # some with a corner twice
    faces = np.concatenate([faces, faces[rng.integers(0, len(faces), size=len(faces) // 4)]])  # repeated faces
    order = rng.permutation(len(faces))
    return vertices, np.array(
        [np.roll(face, shift) for face, shift in zip(faces[order], rng.integers(0, 3, len(faces)))]
    )


def symmetric_mesh(divisions: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A cube's surface cut into equal right triangles about the origin: ties everywhere, in priority too."""
    grid = np.linspace(-1.0, 1.0, divisions + 1)
    vertices, faces = [], []
    for axis in range(3):
        for side in (-1.0, 1.0):
            u, v = np.meshgrid(grid, grid, indexing="ij")
            face_vertices = np.zeros((divisions + 1, divisions + 1, 3))
            face_vertices[..., axis], face_vertices[..., (axis + 1) % 3], face_vertices[..., (axis + 2) % 3] = (
                side,
                u,
                v,
            )
            base = sum(len(block) for block in vertices)
            index = base + np.arange((divisions + 1) ** 2).reshape(divisions + 1, divisions + 1)
            a, b, c, d = index[:-1, :-1], index[1:, :-1], index[1:, 1:], index[:-1, 1:]
            faces += [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]
            vertices.append(face_vertices.reshape(-1, 3))
    return np.concatenate(vertices) + shift, np.concatenate(faces)


def cases(random_meshes: int = 150) -> Iterator[tuple[np.ndarray, np.ndarray, int, int]]:
    rng = np.random.default_rng(19)
    for _ in range(random_meshes):
        vertices, faces = random_mesh(rng)
        yield vertices, faces, int(rng.choice([1, 2, 7, 100, 1024, 3000])), int(rng.integers(-5, 2**40))
    for divisions in (1, 2, 3, 5):
        for n in (1, 5, 13, 100, 1000):
            for seed in (0, 1, 2**64 - 1):
                yield *symmetric_mesh(divisions), n, seed
    yield *symmetric_mesh(3, shift=1e300), 50, 0  # overflowing squares
    yield np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), 10, 0  # nothing to sample
    yield np.eye(3), np.array([[0, 1, 2]]), 10, 0
    yield np.array([[np.inf, 0, 0], [0, 1, 0], [0, 0, 1]]), np.array([[0, 1, 2]]), 10, 0
    yield np.array([[np.nan, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]), np.array([[1, 2, 3]]), 10, 0
    yield np.array([[np.inf, 0, 0], [-np.inf, 1, 0], [0, 0, 1]]), np.array([[0, 1, 2]]), 10, 0
    yield np.array([[1.7e308, 0, 0], [-1.7e308, 1, 0], [-1.7e308, 0, 1]]), np.array([[0, 1, 2]]), 10, 0
    yield (
        np.array([[-0.0, 0.0, 0.0], [0.0, -0.0, 1.0], [0.0, 1.0, -0.0], [-0.0, -0.0, -0.0]]),
        np.array([[0, 1, 2], [3, 1, 2], [1, 3, 2], [2, 1, 3]]),
        40,
        3,
    )


def assert_same_as_reference(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int) -> None:
    with np.errstate(all="ignore"):
        try:
            expected_points, expected_face = sample_surface_faces(vertices, faces, n, seed)
        except (ValueError, OverflowError) as error:
            with pytest.raises(type(error), match=re.escape(str(error))):
                sampling.sample_surface_faces(vertices, faces, n, seed)
            return
        points, face = sampling.sample_surface_faces(vertices, faces, n, seed)
    assert points.dtype == expected_points.dtype and points.shape == expected_points.shape
    assert points.tobytes() == expected_points.tobytes()  # bit for bit, signed zeros included
    assert face.dtype == expected_face.dtype and np.array_equal(face, expected_face)


def test_random_and_symmetric_meshes_sample_as_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    ties = []
    position = sampling._position
    monkeypatch.setattr(sampling, "_position", lambda *args: ties.append(1) or position(*args))
    for vertices, faces, n, seed in cases():
        assert_same_as_reference(vertices, faces, n, seed)
    assert ties, "no case had equal priorities across the cut: the tie-break went untested"


@pytest.mark.parametrize("name", ["teapot.off", "human_1.ply", "bunny_4k.stl", "cow.obj"])
def test_sample_meshes_renumbered_sample_as_the_reference(name: str) -> None:
    mesh = read_geometry(SAMPLES / name)
    rng = np.random.default_rng(len(name))
    for seed in range(2):
        assert_same_as_reference(mesh.points, mesh.faces, 1024, seed)
        order = rng.permutation(len(mesh.faces))
        turned = np.array(
            [np.roll(face, shift) for face, shift in zip(mesh.faces[order], rng.integers(0, 3, len(order)))]
        )
        assert_same_as_reference(mesh.points * 1e-7, turned, 777, seed)
        as_stored = np.asfortranarray(mesh.points, dtype=np.float32), np.asfortranarray(turned, dtype=np.uint32)
        assert_same_as_reference(*as_stored, 99, seed)  # other dtypes and memory layouts


@pytest.mark.skipif(not PSB_MESHES.is_dir(), reason="needs the shared PSB meshes")
@pytest.mark.parametrize("name", ["Airplane/61", "Cup/21", "Glasses/41", "Table/141"])
def test_psb_meshes_sample_as_the_reference(name: str) -> None:
    with np.load(PSB_MESHES / f"{name}.npz", allow_pickle=False) as mesh:
        assert_same_as_reference(mesh["vertices"], mesh["faces"], 2048, 12345)


@pytest.mark.slow
@pytest.mark.skipif(not PSB_MESHES.is_dir(), reason="needs the shared PSB meshes")
def test_many_more_meshes_sample_as_the_reference() -> None:
    """Thousands of random meshes and all 380 PSB meshes (the training data's source), a seed each."""
    for vertices, faces, n, seed in cases(random_meshes=3000):
        assert_same_as_reference(vertices, faces, n, seed)
    for seed, path in enumerate(sorted(PSB_MESHES.glob("*/*.npz"))):
        with np.load(path, allow_pickle=False) as mesh:
            assert_same_as_reference(mesh["vertices"], mesh["faces"], 2048, seed)


# sha256 of points (float64) and face indices (int64), little-endian, from the reference.
DIGESTS = [
    ("teapot.off", 0, 1024, "1ad000664bf4b914bbc5eeb52114c987"),
    ("teapot.off", 7, 2048, "2fecbe04255f5728befc2dfbebffe23e"),
    ("human_1.ply", 0, 1024, "260af0ba1d8b839230b205daafe4f0bd"),
    ("human_1.ply", 7, 2048, "bf003b49003587237d9b6d535efd86b9"),
    ("bunny_4k.stl", 0, 1024, "ac653aab1ec783e99e8171eb22c3f2a7"),
    ("bunny_4k.stl", 7, 2048, "b24305378cafdbceee2376e19fe39789"),
    ("cow.obj", 0, 1024, "193c3b3f06aa30da7bfbff37fffe226d"),
    ("cow.obj", 7, 2048, "d8ce0d3df14195690fbb5cc6a4469b77"),
]


@pytest.mark.parametrize(("name", "seed", "n", "digest"), DIGESTS)
def test_sample_meshes_keep_their_digests(name: str, seed: int, n: int, digest: str) -> None:
    """Pinned without the reference, so a later change that moves a bit is caught too."""
    mesh = read_geometry(SAMPLES / name)
    points, face = sampling.sample_surface_faces(mesh.points, mesh.faces, n, seed)
    assert hashlib.sha256(points.astype("<f8").tobytes() + face.astype("<i8").tobytes()).hexdigest()[:32] == digest


# --- exact sums ------------------------------------------------------------------------------


def awkward_rows(rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Rows whose correctly rounded sum is easy to get wrong: cancellation, halfway cases, subnormals."""
    for _ in range(100):
        size = int(rng.integers(1, 2000))
        values = rng.normal(size=size) * 2.0 ** rng.integers(-1070, 1000, size=size).astype(float)
        values[rng.random(size) < 0.2] *= 2.0 ** -rng.integers(0, 60)
        cancelling = rng.permutation(np.concatenate([values, -values[: size // 2]]))
        yield values
        yield cancelling
        yield np.ldexp(rng.integers(-(2**20), 2**20, size=size).astype(float), int(rng.integers(-1080, 900)))
        narrow = rng.normal(size=size) * 2.0 ** rng.integers(-60, 10, size=size).astype(float)  # a few rounds
        yield rng.permutation(np.concatenate([narrow, -narrow[: size // 2]]))
        big = rng.uniform(1, 2, size=3) * 2.0 ** int(rng.integers(-1000, 1000))  # halfway cases, tipped or not
        yield rng.permutation(
            np.concatenate([big, [np.spacing(big[0]) / 2, -np.spacing(big[1]) / 2], narrow[:3] * 1e-30])
        )
    yield np.array([1.0, 2.0**-53])  # a tie: to even
    yield np.array([1.0, 2.0**-53, 2.0**-160])  # just above the tie
    yield np.array([1.0 + 2.0**-52, 2.0**-53])  # a tie: up to even
    yield np.array([5e-324, 5e-324, -1e-323, 2.0**-1022])
    yield np.array([-0.0, -0.0])  # math.fsum decides the sign of zero
    yield np.array([0.0, -0.0, 3.0, -3.0])
    yield np.array([1.7e308, 1.7e308])  # overflows: math.fsum's error
    yield np.array([1.7e308, -1.7e308, 1.7e308])
    yield np.array([np.inf, 1.0])
    yield np.array([np.inf, -np.inf])
    yield np.array([np.nan, 1.0])
    yield np.zeros(0)


def test_exact_sums_are_math_fsum_bit_for_bit() -> None:
    for row in awkward_rows(np.random.default_rng(0)):
        try:
            expected = math.fsum(row.tolist())
        except (ValueError, OverflowError) as error:
            with pytest.raises(type(error), match=re.escape(str(error))):
                sampling._exact_sums(row[None])
            continue
        got = sampling._exact_sums(np.stack([row, row[::-1], np.zeros_like(row)]))
        assert got.tobytes() == np.array([expected, expected, 0.0]).tobytes(), row


def test_exact_mean_is_the_reference() -> None:
    rng = np.random.default_rng(1)
    for size in (1, 2, 3, 10, 1000, 5000):
        for scale in (1e-300, 1e-30, 1.0, 1e30, 1e300):
            raw = rng.normal(size=(size, 3)) * scale
            for cloud in (raw, raw.astype(np.float32)) if scale < 1e38 else (raw,):  # float32: zeros at 1e-300
                assert sampling.exact_mean(cloud).tobytes() == exact_mean(cloud).tobytes()
