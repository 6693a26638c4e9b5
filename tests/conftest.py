"""Shared fixtures: the shared data folder and real shapes from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELNET40 = SHARED / "data" / "modelnet40"


@pytest.fixture(scope="session")
def modelnet_test() -> dict[str, np.ndarray]:
    with np.load(MODELNET40 / "test.npz", allow_pickle=False) as data:
        return {"points": data["points"][:64].astype(np.float32), "labels": data["labels"][:64].astype(np.int64)}


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)
