"""Split a scene scan into objects: remove the floor plane, then cluster what is left (``--clusters``).

Real scans hold several objects on a floor, and the networks were trained on single objects.
:func:`split_scene` finds the dominant plane by RANSAC and removes it when it is large enough
to be a floor, then clusters the remaining points with DBSCAN (Open3D); clusters too small to
be an object are noise. Every length is a multiple of the scan's own point spacing (the
median distance from a point to its nearest neighbour), so the defaults work in millimetres
as in metres and on dense as on sparse scans:

- the floor is the points within ``floor_distance`` spacings of the plane, removed only when
  they are at least ``floor_share`` of the scan: a scene's floor holds most of its points (70 %
  or more in the generated scenes, :mod:`geocli.data.scenes`), where a single object's flattest
  side rarely holds more than a few tenths of them. Rarely is not never (a table top, a piano's
  back): such a side is then given back as the base its object lies on (below), but a scan of
  several objects without a floor wants a higher ``floor_share``;
- DBSCAN links points closer than ``cluster_eps`` spacings, measured on the points left after the
  floor is removed (a floor scanned more densely than its objects must not set their scale).
  Objects stand on the floor: a cluster whose lowest point is more than ``cluster_eps`` above
  it cannot stand alone and joins the cluster nearest to it that reaches the floor
  (:func:`_hang_floating`; a lamp's shade on a stem too thin to be scanned). Something hung
  from the ceiling joins the object nearest to it likewise. A cluster is an object from
  ``min_object_points`` points on;
- an object resting on the floor has points within ``floor_distance`` of it too, its base, which
  the floor removal takes; each object gets them back (:func:`_base`): the removed points
  inside its footprint (the convex hull of its points seen along the plane's normal, widened
  by half a spacing: the outline of points about a spacing apart lies up to that outside
  their hull) that are linked to it by a chain of points each within ``base_reach`` of the
  next. Both are counted in the object's own spacing, as a near object is scanned more densely
  than a far one. The floor under an object is hidden from a scanner, so what is inside the
  footprint and linked to the object is the object's; the open floor around it is outside
  the footprint, and in a footprint's concave bays (between a U's arms) it is more than
  ``base_reach`` from the object where the scanner's shadow leaves a gap. Floor the scanner
  does see inside a footprint within ``base_reach`` of the object (under a table, seen from
  low down) goes with the object, and so does floor within half a spacing of its outline;
  ``base_reach`` 0 gives no points back. The base comes back after the clustering, so two
  objects whose bases touch stay two, and it costs one k-d tree at a time over an object's
  lowest slice and the near-floor points in its footprint.

The RANSAC is geocli's own, seeded: Open3D's ``segment_plane`` returns a slightly different
plane on every call even after ``open3d.utility.random.seed``, and a batch's results must
not change from one run to the next. Open3D is imported when a scene is split, not before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geocli.defaults import BASE_REACH, CLUSTER_EPS, FLOOR_DISTANCE, FLOOR_SHARE, MIN_OBJECT_POINTS

RANSAC_SAMPLE = 20_000  # plane hypotheses are scored on at most this many points (seeded), then refined on all
RANSAC_CHUNK = 64  # hypotheses scored at once: a (64, 20,000) distance table
HULL_CHUNK = 65_536  # points tested against a footprint's edges at once
# A footprint reaches this far outside the hull of an object's points (see the module's doc).
OUTLINE_TOLERANCE = 0.5  # the object's spacings


@dataclass(frozen=True)
class ClusterOptions:
    """How a scene is split (:func:`split_scene`); lengths are in point spacings, not in the scan's units."""

    floor_distance: float = FLOOR_DISTANCE
    floor_share: float = FLOOR_SHARE
    cluster_eps: float = CLUSTER_EPS
    base_reach: float = BASE_REACH
    dbscan_min_points: int = 4
    min_object_points: int = MIN_OBJECT_POINTS
    ransac_iterations: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("floor_distance", "cluster_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, not {getattr(self, name)}")
        if not self.base_reach >= 0:
            raise ValueError(f"base_reach must be 0 or more, not {self.base_reach}")
        if not 0 < self.floor_share <= 1:
            raise ValueError(f"floor_share must be in (0, 1], not {self.floor_share}")
        for name in ("dbscan_min_points", "min_object_points", "ransac_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be 1 or more, not {getattr(self, name)}")


@dataclass(frozen=True, eq=False)
class SceneSplit:
    """A scene's points by object: ``instances`` per point (-1 for the floor and noise), ``objects``
    each object's point indices (instance ``i`` is ``objects[i]``, the largest first), ``floor`` the
    removed plane's point indices (empty when no plane was large enough), ``plane`` its unit
    normal and offset ``(a, b, c, d)`` with ``a x + b y + c z + d = 0`` (``None`` likewise), and
    ``spacing`` the scan's median nearest-neighbour distance, the unit of :class:`ClusterOptions`."""

    instances: np.ndarray
    objects: list[np.ndarray] = field(default_factory=list)
    floor: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    plane: np.ndarray | None = None
    spacing: float = 0.0


def split_scene(points: np.ndarray, options: ClusterOptions | None = None) -> SceneSplit:
    """Remove the floor plane of an (N, 3) scene and cluster the rest into objects (see the module's doc)."""
    options = options or ClusterOptions()
    points = np.asarray(points, dtype=np.float64)
    instances = np.full(len(points), -1, dtype=np.int64)
    spacing = median_spacing(points)
    if len(points) < options.min_object_points or spacing == 0:
        return SceneSplit(instances, spacing=spacing)
    plane, floor = _floor(points, spacing, options)
    rest = np.setdiff1d(np.arange(len(points)), floor)
    objects = _clusters(points, rest, plane, options) if len(rest) >= options.min_object_points else []
    if plane is not None and objects and options.base_reach > 0:
        objects, floor = _give_bases_back(points, objects, floor, plane, options.base_reach)
    for instance, members in enumerate(objects):
        instances[members] = instance
    return SceneSplit(instances, objects, floor, plane, spacing)


def median_spacing(points: np.ndarray) -> float:
    """The median distance from a point to its nearest other point (0 for fewer than two distinct points)."""
    import open3d as o3d

    if len(points) < 2:
        return 0.0
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)))
    distances = np.asarray(cloud.compute_nearest_neighbor_distance())
    distances = distances[distances > 0]  # duplicated points say nothing about the spacing
    return float(np.median(distances)) if len(distances) else 0.0


def _floor(points: np.ndarray, spacing: float, options: ClusterOptions) -> tuple[np.ndarray | None, np.ndarray]:
    """The dominant plane and its points, when they are ``floor_share`` of the scene; else ``(None, [])``."""
    threshold = options.floor_distance * spacing
    plane = fit_plane(points, threshold, options.ransac_iterations, options.seed)
    if plane is None:
        return None, np.zeros(0, dtype=np.int64)
    inliers = np.flatnonzero(np.abs(points @ plane[:3] + plane[3]) <= threshold)
    if len(inliers) < options.floor_share * len(points):
        return None, np.zeros(0, dtype=np.int64)
    return plane, inliers


def _give_bases_back(
    points: np.ndarray, objects: list[np.ndarray], floor: np.ndarray, plane: np.ndarray, reach: float
) -> tuple[list[np.ndarray], np.ndarray]:
    """``objects`` each with its base (:func:`_base`) and ``floor`` without them, largest object first again.

    A floor point in two objects' bases (footprints that overlap) goes to the first, the larger.
    """
    axes = np.linalg.svd(np.eye(3) - np.outer(plane[:3], plane[:3]))[0][:, :2]  # two directions in the plane
    flat, heights = points @ axes, np.abs(points @ plane[:3] + plane[3])
    free = np.ones(len(floor), dtype=bool)
    grown = []
    for members in objects:
        base = _base(points, flat, heights, members, floor[free], reach)
        grown.append(np.union1d(members, base))
        free[free] = ~np.isin(floor[free], base)
    return sorted(grown, key=lambda m: (-len(m), m[0])), floor[free]


def _base(
    points: np.ndarray, flat: np.ndarray, heights: np.ndarray, members: np.ndarray, floor: np.ndarray, reach: float
) -> np.ndarray:
    """The ``floor`` points that are the object ``members``' base (see the module's doc): inside its footprint,
    the convex hull of its points in the plane (``flat``, their coordinates along two in-plane axes) widened
    by :data:`OUTLINE_TOLERANCE`, and linked to its points by a chain of points within ``reach`` of each
    other, both in the object's own spacings. Only the object's points within ``reach`` of the floor's
    layer (``heights``: each point's distance to the plane) can be a chain's first link, so only they
    go into the k-d tree: its memory follows an object's lowest slice, not the object."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import ConvexHull, QhullError, cKDTree

    spacing = median_spacing(points[members])
    widen = OUTLINE_TOLERANCE * spacing
    low, high = flat[members].min(axis=0) - widen, flat[members].max(axis=0) + widen
    boxed = floor[np.all((flat[floor] >= low) & (flat[floor] <= high), axis=1)]
    if len(boxed) == 0 or spacing == 0:
        return np.zeros(0, dtype=np.int64)
    try:
        edges = ConvexHull(flat[members]).equations  # a x + b y + c <= 0 inside, (a, b) a unit vector
    except QhullError:  # an object flat in the plane's direction has no footprint to speak of
        return np.zeros(0, dtype=np.int64)
    outside = np.concatenate(
        [
            (flat[chunk] @ edges[:, :2].T + edges[:, 2]).max(axis=1) > widen
            for chunk in np.array_split(boxed, -(-len(boxed) // HULL_CHUNK))
        ]
    )
    inside = boxed[~outside]
    if len(inside) == 0:
        return inside
    lowest = members[heights[members] <= heights[inside].max() + reach * spacing]
    linked = np.concatenate([lowest, inside])
    pairs = cKDTree(points[linked]).query_pairs(reach * spacing, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(linked), len(linked)))
    parts = connected_components(graph, directed=False)[1]
    return inside[np.isin(parts[len(lowest) :], parts[: len(lowest)])]


def fit_plane(points: np.ndarray, threshold: float, iterations: int, seed: int) -> np.ndarray | None:
    """The plane ``(a, b, c, d)`` (unit normal) that most points lie within ``threshold`` of, or ``None``.

    Seeded RANSAC: ``iterations`` planes through three random points are scored on a seeded
    subsample; the best is refitted by least squares to all its inliers (the normal is the
    direction of least variance), which removes the tilt three noisy points give it.
    """
    rng = np.random.default_rng(seed)
    scored = points if len(points) <= RANSAC_SAMPLE else points[rng.choice(len(points), RANSAC_SAMPLE, replace=False)]
    triples = points[rng.integers(0, len(points), (iterations, 3))]
    normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    valid = lengths > 0
    if not valid.any():  # every triple collinear: no plane to speak of
        return None
    normals, anchors = normals[valid] / lengths[valid, None], triples[valid, 0]
    offsets = -np.einsum("ij,ij->i", normals, anchors)
    counts = np.zeros(len(normals), dtype=np.int64)
    for start in range(0, len(normals), RANSAC_CHUNK):
        chunk = slice(start, start + RANSAC_CHUNK)
        counts[chunk] = (np.abs(scored @ normals[chunk].T + offsets[chunk]) <= threshold).sum(axis=0)
    best = int(np.argmax(counts))  # the first of equals: the same plane on every run
    inliers = points[np.abs(points @ normals[best] + offsets[best]) <= threshold]
    centre = inliers.mean(axis=0)
    normal = np.linalg.svd(inliers - centre, full_matrices=False)[2][-1]
    return np.append(normal, -normal @ centre)


def _clusters(
    points: np.ndarray, rest: np.ndarray, plane: np.ndarray | None, options: ClusterOptions
) -> list[np.ndarray]:
    """DBSCAN clusters of ``points[rest]`` (as indices into ``points``), those that do not reach the floor
    joined to one that does (:func:`_hang_floating`), from ``min_object_points`` on, largest first
    (ties: first point first)."""
    import open3d as o3d

    eps = options.cluster_eps * median_spacing(points[rest])
    if eps == 0:
        return []
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[rest]))
    labels = np.asarray(cloud.cluster_dbscan(eps, options.dbscan_min_points))
    members = [rest[labels == label] for label in range(labels.max() + 1)]
    if plane is not None and members:
        members = _hang_floating(points, members, plane, eps)
    kept = [m for m in members if len(m) >= options.min_object_points]
    return sorted(kept, key=lambda m: (-len(m), m[0]))


def _hang_floating(points: np.ndarray, members: list[np.ndarray], plane: np.ndarray, eps: float) -> list[np.ndarray]:
    """``members`` with each cluster whose lowest point is more than ``eps`` above the floor joined to the
    cluster nearest to it among those that come within ``eps`` of the floor (see the module's doc)."""
    from scipy.spatial import cKDTree

    heights = [points[m] @ plane[:3] + plane[3] for m in members]
    side = np.sign(np.median(np.concatenate(heights)))  # the objects' side of the plane
    standing = np.array([(side * h).min() <= eps for h in heights])
    if standing.all() or not standing.any():
        return members
    stand = np.flatnonzero(standing)
    owners = np.concatenate([np.full(len(members[i]), i) for i in stand])
    tree = cKDTree(points[np.concatenate([members[i] for i in stand])])
    joined = {int(i): [members[i]] for i in stand}
    for i in np.flatnonzero(~standing):
        distances, nearest = tree.query(points[members[i]])
        joined[int(owners[nearest[np.argmin(distances)]])].append(members[i])
    return [np.sort(np.concatenate(parts)) for parts in joined.values()]
