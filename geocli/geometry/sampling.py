"""Turn meshes into point clouds and put clouds into a common frame before classification."""

from __future__ import annotations

import numpy as np


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Return ``n`` points spread uniformly over the mesh surface, reproducibly for a ``seed``."""
    return sample_surface_faces(vertices, faces, n, seed)[0]


def sample_surface_faces(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` surface points and the index of the face each lies on (to carry face labels over).

    Triangles are drawn with probability proportional to their area (so dense tessellation
    does not bias the cloud), then a point uniformly inside each drawn triangle.
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
    corners = vertices[faces]  # (F, 3 corners, 3 coords)
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    total = areas.sum()
    if not np.isfinite(total) or total <= 0.0:
        raise ValueError("mesh has zero surface area (degenerate triangles): cannot sample its surface")
    rng = np.random.default_rng(seed)
    face = rng.choice(len(faces), size=n, p=areas / total)
    chosen = corners[face]
    # sqrt keeps the density uniform: without it, points crowd towards the first corner.
    root = np.sqrt(rng.random(n))[:, None]
    r2 = rng.random(n)[:, None]
    return (1.0 - root) * chosen[:, 0] + root * (1.0 - r2) * chosen[:, 1] + root * r2 * chosen[:, 2], face


def normalize_unit_sphere(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre ``points`` on their mean and scale the furthest one to radius 1.

    Returns ``(normalised, centre, scale)`` with ``points == normalised * scale + centre``, so
    predictions can be mapped back to raw units. If all points coincide (scale 0) the result is
    all zeros with ``scale = 1.0`` instead of a division by zero.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"expected a non-empty (N, 3) array, got shape {points.shape}")
    centre = points.mean(axis=0)
    centred = points - centre
    scale = float(np.linalg.norm(centred, axis=1).max())
    if scale == 0.0:
        return centred, centre, 1.0
    return centred / scale, centre, scale
