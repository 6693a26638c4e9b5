"""Tests for geocli.ops: FPS and kNN against brute-force references and across backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from geocli.ops import backend, farthest_point_sample, knn, neighbors

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELNET_TEST = SHARED / "data" / "modelnet40" / "test.npz"


def _cloud(b: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, 3, generator=torch.Generator().manual_seed(seed))


def _fps_reference(points: np.ndarray, n: int) -> list[int]:
    """Textbook greedy FPS in float64, started at the point farthest from the centroid."""
    d_centre = ((points - points.mean(0)) ** 2).sum(1)
    picks = [int(d_centre.argmax())]
    mind = ((points - points[picks[0]]) ** 2).sum(1)
    while len(picks) < n:
        picks.append(int(mind.argmax()))
        mind = np.minimum(mind, ((points - points[picks[-1]]) ** 2).sum(1))
    return picks


def _min_pairwise(points: torch.Tensor) -> float:
    d = torch.cdist(points, points)
    d.fill_diagonal_(float("inf"))
    return float(d.min())


@pytest.fixture
def torch_cluster():
    return pytest.importorskip("torch_cluster")


@pytest.fixture(scope="module")
def modelnet_shapes() -> torch.Tensor:
    if not MODELNET_TEST.exists():
        pytest.skip(f"{MODELNET_TEST} not available")
    with np.load(MODELNET_TEST, allow_pickle=False) as data:
        # Shape 1056 has a query whose 16th and 17th neighbours are exactly tied.
        pts = data["points"][[0, 1056]]
    assert pts.dtype == np.float16
    return torch.from_numpy(pts.astype(np.float32))


# ----------------------------------------------------------------------------- backend


def test_backend_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOCLI_OPS_BACKEND", "torch")
    assert backend() == "torch"
    monkeypatch.setenv("GEOCLI_OPS_BACKEND", "cuda-magic")
    with pytest.raises(ValueError, match="unknown ops backend"):
        backend()
    monkeypatch.setattr(neighbors, "_torch_cluster_available", lambda: False)
    monkeypatch.setenv("GEOCLI_OPS_BACKEND", "torch-cluster")
    with pytest.raises(RuntimeError, match="torch_cluster"):
        backend()
    monkeypatch.delenv("GEOCLI_OPS_BACKEND")
    assert backend() == "torch"
    with pytest.raises(RuntimeError, match="torch_cluster"):
        knn(_cloud(1, 8), 2, backend="torch-cluster")


def test_backend_default_prefers_torch_cluster(torch_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEOCLI_OPS_BACKEND", raising=False)
    assert backend() == "torch-cluster"


# ----------------------------------------------------------------------------- FPS


def test_fps_matches_reference() -> None:
    pts = _cloud(3, 200, seed=1)
    got = farthest_point_sample(pts, 40, backend="torch")
    assert got.shape == (3, 40) and got.dtype == torch.int64
    for b in range(3):
        assert got[b].tolist() == _fps_reference(pts[b].double().numpy(), 40)


@pytest.mark.parametrize("name", neighbors.BACKENDS)
def test_fps_permutation_equivariant(name: str) -> None:
    if name == "torch-cluster":
        pytest.importorskip("torch_cluster")
    pts = _cloud(2, 500, seed=2)
    perm = torch.randperm(500, generator=torch.Generator().manual_seed(3))
    base = farthest_point_sample(pts, 64, backend=name)
    permuted = farthest_point_sample(pts[:, perm], 64, backend=name)
    # Same points picked, in the same order, whatever their storage order.
    assert torch.equal(perm[permuted], base)


def test_fps_starts_farthest_from_centroid() -> None:
    pts = _cloud(4, 300, seed=4) * torch.tensor([3.0, 1.0, 0.5]) + 7.0
    got = farthest_point_sample(pts, 8, backend="torch")
    far = (pts - pts.mean(1, keepdim=True)).norm(dim=-1).argmax(1)
    assert torch.equal(got[:, 0], far)
    assert (got[:, 0] != 0).any()


def test_fps_spreads_points() -> None:
    pts = torch.rand(1, 2000, 3, generator=torch.Generator().manual_seed(5))
    idx = farthest_point_sample(pts, 64, backend="torch")[0]
    assert idx.unique().numel() == 64
    rand = torch.randperm(2000, generator=torch.Generator().manual_seed(6))[:64]
    assert _min_pairwise(pts[0, idx]) > 2 * _min_pairwise(pts[0, rand])


def test_fps_n_at_least_n_points_returns_all() -> None:
    pts = _cloud(2, 10)
    for n in (10, 15):
        assert torch.equal(farthest_point_sample(pts, n), torch.arange(10).expand(2, 10))
    with pytest.raises(ValueError):
        farthest_point_sample(pts, 0)


# ----------------------------------------------------------------------------- kNN


@pytest.mark.parametrize("chunk", [None, 100])
def test_knn_matches_brute_force(chunk: int | None) -> None:
    pts, qry = _cloud(2, 300, seed=7), _cloud(2, 50, seed=8)
    ref = torch.cdist(qry.double(), pts.double()).sort(-1).values[..., :9]
    got = knn(pts, 9, qry, backend="torch", chunk_elements=chunk)
    assert got.shape == (2, 50, 9) and got.dtype == torch.int64
    got_d = (qry[:, :, None].double() - pts.double()[torch.arange(2)[:, None, None], got]).norm(dim=-1)
    assert torch.allclose(got_d, ref, rtol=0, atol=1e-6)  # torch.testing imports for ~1 s


def test_knn_self_query_puts_self_first() -> None:
    pts = _cloud(2, 128, seed=9)
    got = knn(pts, 5, backend="torch")
    assert torch.equal(got[..., 0], torch.arange(128).expand(2, 128))
    assert torch.equal(got, knn(pts, 5, pts.clone(), backend="torch"))


def test_knn_chunked_equals_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    pts, qry = _cloud(3, 400, seed=10), _cloud(3, 333, seed=11)
    full = knn(pts, 12, qry, backend="torch")
    blocks: list[int] = []
    sq_dist = neighbors._sq_dist

    def recording_sq_dist(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
        out = sq_dist(a, b, dim)
        if dim == 0:  # the (batch, query, point) blocks; other calls are (B, M, k+1)
            blocks.append(out.numel())
        return out

    monkeypatch.setattr(neighbors, "_sq_dist", recording_sq_dist)
    # 1000 elements -> blocks of 1 cloud x 2 queries: many chunks, uneven last one.
    assert torch.equal(knn(pts, 12, qry, backend="torch", chunk_elements=1000), full)
    assert len(blocks) > 100 and max(blocks) <= 1000
    monkeypatch.setattr(neighbors, "KNN_CHUNK_ELEMENTS", 400 * 7)
    assert torch.equal(knn(pts, 12, qry, backend="torch"), full)
    assert torch.equal(knn(pts, 12, backend="torch", chunk_elements=1000), knn(pts, 12, backend="torch"))


def _grid_with_duplicates() -> torch.Tensor:
    """Integer lattice stored twice: every query has exact distance ties and a duplicate."""
    g = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1).view(1, -1, 3)
    return g.repeat(2, 2, 1) - torch.tensor([[[2.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]])


def _lexicographic_knn(points: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: first k by (distance, index), self first; exact on integer coordinates."""
    n = points.shape[1]
    d = torch.cdist(points.double(), points.double()).square().round().long()
    key = d * n + torch.arange(n)
    key[:, torch.arange(n), torch.arange(n)] = -1
    return key.sort(-1).indices[..., :k]


@pytest.mark.parametrize("chunk", [None, 3000])
def test_knn_ties_resolved_by_index(chunk: int | None) -> None:
    pts = _grid_with_duplicates()
    for k in (1, 2, 7, 19):
        assert torch.equal(knn(pts, k, backend="torch", chunk_elements=chunk), _lexicographic_knn(pts, k))


def test_knn_rejects_bad_k() -> None:
    pts = _cloud(1, 16)
    with pytest.raises(ValueError):
        knn(pts, 17)
    with pytest.raises(ValueError):
        knn(pts, 0)
    assert knn(pts, 16, backend="torch").shape == (1, 16, 16)


# ----------------------------------------------------------------------------- cross-backend


def _assert_backends_agree(pts: torch.Tensor, n_fps: int, k: int, qry: torch.Tensor) -> None:
    fps_t = farthest_point_sample(pts, n_fps, backend="torch")
    fps_c = farthest_point_sample(pts, n_fps, backend="torch-cluster")
    assert torch.equal(fps_t, fps_c)
    assert torch.equal(knn(pts, k, backend="torch"), knn(pts, k, backend="torch-cluster"))
    assert torch.equal(knn(pts, k, qry, backend="torch"), knn(pts, k, qry, backend="torch-cluster"))


def test_backends_agree_on_ties(torch_cluster) -> None:
    pts = _grid_with_duplicates()
    for k in (1, 7, 19):
        assert torch.equal(knn(pts, k, backend="torch-cluster"), _lexicographic_knn(pts, k))


def test_backends_agree_random(torch_cluster) -> None:
    pts = _cloud(2, 1024, seed=12)
    _assert_backends_agree(pts, 256, 16, _cloud(2, 300, seed=13))


def test_backends_agree_modelnet(torch_cluster, modelnet_shapes: torch.Tensor) -> None:
    centroids = farthest_point_sample(modelnet_shapes, 128, backend="torch")
    qry = modelnet_shapes[torch.arange(2)[:, None], centroids]
    _assert_backends_agree(modelnet_shapes, 512, 16, qry)
