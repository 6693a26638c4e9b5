"""Farthest point sampling and k-nearest neighbours for batched point clouds.

Two backends compute the same thing: ``torch-cluster`` (compiled kernels, used when
importable) and a pure-torch fallback. Both work in float32 with the same distance
formula and tie-breaking, so they select the same indices and models behave the same
whichever is installed.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import Tensor

from geocli.ops.kernels import compiled, kernels_enabled

__all__ = ["backend", "farthest_point_sample", "knn"]

BACKENDS = ("torch", "torch-cluster")

# Upper bound on the elements of one (batch, query, point) distance block in the
# torch kNN, so huge query sets never materialise a full distance matrix.
KNN_CHUNK_ELEMENTS = 64 * 2**20

# Limits of torch_cluster's CUDA kernels: kNN keeps candidates in a fixed array of 100,
# FPS starts its running min distance at 5e4.
_TC_CUDA_MAX_K = 100
_TC_CUDA_FPS_MAX_SQ_DIST = 5e4


@functools.cache
def _torch_cluster_available() -> bool:
    """Import check, cached: a failing import of a compiled extension is slow."""
    try:
        import torch_cluster  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def backend() -> str:
    """Backend used when none is passed: ``GEOCLI_OPS_BACKEND`` if set, else the best available."""
    forced = os.environ.get("GEOCLI_OPS_BACKEND")
    if forced:
        return _check_backend(forced)
    return "torch-cluster" if _torch_cluster_available() else "torch"


def _check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown ops backend {name!r}; expected one of {BACKENDS}")
    if name == "torch-cluster" and not _torch_cluster_available():
        raise RuntimeError("ops backend 'torch-cluster' requested but torch_cluster cannot be imported")
    return name


def _resolve(name: str | None) -> str:
    return backend() if name is None else _check_backend(name)


def _as_cloud(points: Tensor, name: str) -> Tensor:
    """Validate a (B, N, 3) cloud and cast it to float32 so every backend rounds alike."""
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (B, N, 3), got {tuple(points.shape)}")
    return points.float().contiguous()


def _sq_dist(a: Tensor, b: Tensor, dim: int = -1) -> Tensor:
    """Squared distances summed x, y, z in this order, the rounding torch_cluster uses.

    ``dim`` is the coordinate axis; a and b broadcast over the others.
    """
    d = (a.select(dim, 0) - b.select(dim, 0)).square_()
    for c in (1, 2):  # in place: these blocks are memory-bound
        d += (a.select(dim, c) - b.select(dim, c)).square_()
    return d


# ----------------------------------------------------------------------------- FPS


def farthest_point_sample(points: Tensor, n: int, *, backend: str | None = None) -> Tensor:
    """Indices (B, n) int64 of ``n`` points picked by farthest point sampling, in pick order.

    On the CPU the compiled kernel (:mod:`geocli.ops.kernels`) runs the same greedy loop
    as the torch route, with the same rounding and ties, without a Python step per pick.

    The first pick is the point farthest from the cloud's centroid (not index 0), so the
    result does not depend on the storage order of the points: permuting the input
    selects the same points. Exact distance ties go to the lowest index. If ``n >= N``
    every point is returned as ``arange(N)`` (no resampling or padding). On CUDA, clouds
    reaching over ~110 units from their centroid always use the torch backend.
    """
    pts = _as_cloud(points, "points")
    bsz, num = pts.shape[:2]
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if n >= num:
        return torch.arange(num, device=pts.device).expand(bsz, num).clone()
    # Shared by both backends so they start from the very same point.
    radius2, start = _sq_dist(pts, pts.mean(dim=1, keepdim=True)).max(dim=1)
    # torch_cluster's CUDA FPS caps squared distances at 5e4; wider clouds (diameter up
    # to 2 * radius) would tie there, so they take the torch path.
    capped = pts.is_cuda and bool((4 * radius2.max()) >= _TC_CUDA_FPS_MAX_SQ_DIST)
    # torch-cluster's CPU FPS is about 3x slower than the fallback (its per-step distance
    # sum over the size-3 axis), so on CPU it runs only when named; the indices are identical.
    named = backend is not None or "GEOCLI_OPS_BACKEND" in os.environ
    if _resolve(backend) == "torch-cluster" and not capped and (pts.is_cuda or named):
        return _fps_cluster(pts, n, start)
    if not pts.is_cuda and kernels_enabled():
        return compiled().farthest_point_sample(pts, n, start)
    return _fps_torch(pts, n, start)


def _fps_torch(pts: Tensor, n: int, start: Tensor) -> Tensor:
    """Whole-batch greedy loop over the n picks with a running min distance (B, N).

    Coordinates are split into contiguous (B, N) planes: summing a size-3 last dim is
    orders of magnitude slower on CPU, and the explicit x+y+z sum rounds identically.
    """
    bsz = pts.shape[0]
    planes = pts.permute(2, 0, 1).contiguous()
    rows = torch.arange(bsz, device=pts.device)

    def dist_to(idx: Tensor) -> Tensor:
        return _sq_dist(planes, planes[:, rows, idx, None], dim=0)

    out = torch.empty(bsz, n, dtype=torch.long, device=pts.device)
    out[:, 0] = start
    dist = dist_to(start)
    for i in range(1, n):
        far = dist.argmax(dim=1)
        out[:, i] = far
        torch.minimum(dist, dist_to(far), out=dist)
    return out


def _fps_cluster(pts: Tensor, n: int, start: Tensor) -> Tensor:
    """torch_cluster.fps starts at each cloud's first point, so move ``start`` to the front.

    The other points keep their relative order, so argmax ties resolve to the same
    original index as in the torch backend.
    """
    import torch_cluster

    bsz, num = pts.shape[:2]
    ar = torch.arange(num, device=pts.device)
    # perm[b] = [start, 0, .., start-1, start+1, .., N-1]
    perm = ar - 1 + (ar[None] > start[:, None]).long()
    perm[:, 0] = start
    x = torch.gather(pts, 1, perm[..., None].expand(-1, -1, 3)).view(-1, 3)
    batch = torch.arange(bsz, device=pts.device).repeat_interleave(num)
    # fps takes ceil(N * ratio) points per cloud, ratio in float32: aim between n-1 and n.
    idx = torch_cluster.fps(x, batch, ratio=(n - 0.5) / num, random_start=False)
    local = idx.view(bsz, n) - (torch.arange(bsz, device=pts.device) * num)[:, None]
    return torch.gather(perm, 1, local)


# ----------------------------------------------------------------------------- kNN


def knn(
    points: Tensor,
    k: int,
    queries: Tensor | None = None,
    *,
    backend: str | None = None,
    chunk_elements: int | None = None,
) -> Tensor:
    """Indices (B, M, k) int64 into ``points`` (B, N, 3) of each query's k nearest points.

    ``queries`` (B, M, 3) defaults to ``points``; then each point's first neighbour is
    itself. Neighbours are the first k in (float32 squared distance, index) order, so
    both backends agree even on exact ties, which quantised real data does produce.
    ``chunk_elements`` bounds one distance block of the torch backend (default
    ``KNN_CHUNK_ELEMENTS``). On CUDA, k > 100 always uses the torch backend.
    """
    pts = _as_cloud(points, "points")
    self_query = queries is None
    qry = pts if queries is None else _as_cloud(queries, "queries")
    if qry.shape[0] != pts.shape[0]:
        raise ValueError(f"batch sizes differ: points {pts.shape[0]}, queries {qry.shape[0]}")
    num = pts.shape[1]
    if not 1 <= k <= num:
        raise ValueError(f"k must be in [1, N={num}], got {k}")
    chunk_elements = chunk_elements or KNN_CHUNK_ELEMENTS
    # One spare neighbour shows where the k-th distance is tied with the next one, the
    # only case where a backend's own pick among equals could leak into the result.
    kk = min(k + 1, num)
    if _resolve(backend) == "torch-cluster" and not (pts.is_cuda and kk > _TC_CUDA_MAX_K):
        idx = _knn_cluster(pts, qry, kk)
    else:
        idx = _knn_torch(pts, qry, kk, chunk_elements)
    idx, key = _sort_neighbors(pts, qry, idx, self_query)
    if kk > k:
        tied = (key[..., k - 1] >> 32) == (key[..., k] >> 32)
        if tied.any():
            bi, mi = tied.nonzero(as_tuple=True)
            idx[bi, mi, :k] = _knn_exact(pts, qry, bi, mi, k, self_query, chunk_elements)
    return idx[..., :k].contiguous()


def _knn_torch(pts: Tensor, qry: Tensor, k: int, chunk_elements: int) -> Tensor:
    """Blockwise exact distances + topk; blocks over batch and queries stay under ``chunk_elements``."""
    bsz, num = pts.shape[:2]
    m_total = qry.shape[1]
    b_step = max(1, min(bsz, chunk_elements // num))
    m_step = max(1, chunk_elements // (b_step * num))
    # Coordinate planes (3, B, *) keep every elementwise op contiguous.
    p_planes = pts.permute(2, 0, 1).contiguous()
    q_planes = qry.permute(2, 0, 1).contiguous()
    out = torch.empty(bsz, m_total, k, dtype=torch.long, device=pts.device)
    for b0 in range(0, bsz, b_step):
        p = p_planes[:, b0 : b0 + b_step, None, :]
        for m0 in range(0, m_total, m_step):
            d = _sq_dist(q_planes[:, b0 : b0 + b_step, m0 : m0 + m_step, None], p, dim=0)
            out[b0 : b0 + b_step, m0 : m0 + m_step] = d.topk(k, dim=-1, largest=False, sorted=False).indices
    return out


def _knn_cluster(pts: Tensor, qry: Tensor, k: int) -> Tensor:
    """torch_cluster.knn returns (query, point) pairs over the flattened batch, k per query in query order."""
    import torch_cluster

    bsz, num = pts.shape[:2]
    m = qry.shape[1]
    dev = pts.device
    batch_x = torch.arange(bsz, device=dev).repeat_interleave(num)
    batch_y = torch.arange(bsz, device=dev).repeat_interleave(m)
    pairs = torch_cluster.knn(pts.view(-1, 3), qry.view(-1, 3), k, batch_x, batch_y)
    if pairs.shape[1] != bsz * m * k:
        raise RuntimeError(f"torch_cluster.knn returned {pairs.shape[1]} pairs, expected {bsz * m * k}")
    return pairs[1].view(bsz, m, k) - (torch.arange(bsz, device=dev) * num)[:, None, None]


def _dist_key(sq_dist: Tensor, idx: Tensor) -> Tensor:
    """int64 keys ordering by (distance, index) exactly: non-negative float32 bits sort like the floats."""
    return sq_dist.view(torch.int32).long() << 32 | idx


def _sort_neighbors(pts: Tensor, qry: Tensor, idx: Tensor, self_query: bool) -> tuple[Tensor, Tensor]:
    """Sort each query's neighbours by (distance, index), self first; return indices and keys.

    Backends order equal distances differently; one exact key sort makes them agree.
    """
    bsz, m, k = idx.shape
    nb = torch.gather(pts, 1, idx.view(bsz, m * k, 1).expand(-1, -1, 3)).view(bsz, m, k, 3)
    key = _dist_key(_sq_dist(qry[:, :, None, :], nb), idx)
    if self_query:
        key = torch.where(idx == torch.arange(m, device=idx.device)[:, None], -1, key)
    key, order = key.sort(dim=-1)
    return idx.gather(-1, order), key


def _knn_exact(
    pts: Tensor, qry: Tensor, bi: Tensor, mi: Tensor, k: int, self_query: bool, chunk_elements: int
) -> Tensor:
    """(R, k) first k points in (distance, index) order, self first, for the R queries (bi, mi).

    Used only for queries with ties at the k-th distance, so rows are few.
    """
    num = pts.shape[1]
    step = max(1, chunk_elements // num)
    ar = torch.arange(num, device=pts.device)
    out = []
    for r0 in range(0, bi.numel(), step):
        b, m = bi[r0 : r0 + step], mi[r0 : r0 + step]
        key = _dist_key(_sq_dist(qry[b, m][:, None, :], pts[b]), ar)
        if self_query:
            key[torch.arange(m.numel(), device=m.device), m] = -1
        out.append(key.topk(k, dim=-1, largest=False, sorted=True).indices)
    return torch.cat(out)
