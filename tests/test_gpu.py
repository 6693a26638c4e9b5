"""CUDA inference (geocli/gpu.py): float32 passes that keep the invariance, and a batch that fills the device.

The tests marked ``cuda`` run where a CUDA device exists and are skipped elsewhere; the
batch arithmetic and the CPU default are tested everywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geocli.api import classify, load_model, predict_logits, segment
from geocli.geometry.rotations import random_rotations, rotate
from geocli.gpu import CPU_BATCH, MOST_CLOUDS, batch_for_memory, inference_batch_size
from geocli.io import SUPPORTED_EXTENSIONS
from geocli.zoo import list_models

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
TOLERANCE = 1e-4  # tests/test_invariance.py's: the same logits under any rotation
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_the_batch_is_the_largest_power_of_two_whose_pass_fits_half_the_free_memory() -> None:
    assert batch_for_memory(free_bytes=2**30, bytes_per_cloud=2**20) == 512  # 1 GiB free, 1 MiB a cloud
    assert batch_for_memory(free_bytes=2**30, bytes_per_cloud=3 * 2**20) == 128  # 170 fit: 128
    assert batch_for_memory(free_bytes=2**20, bytes_per_cloud=2**20) == CPU_BATCH  # never fewer than 16
    assert batch_for_memory(free_bytes=2**40, bytes_per_cloud=1) == MOST_CLOUDS


def test_on_a_cpu_the_batch_stays_16() -> None:
    assert inference_batch_size(load_model(device="cpu")) == CPU_BATCH


@cuda
@pytest.mark.parametrize("name", [card["name"] for card in list_models() if card["task"] == "classify"])
def test_cuda_logits_are_invariant_and_match_the_cpu(name: str, modelnet_test) -> None:
    clouds = torch.from_numpy(modelnet_test["points"][:32])
    turned = rotate(clouds, random_rotations(len(clouds), "so3", seed=1))
    on_gpu, on_cpu = load_model(name, device="cuda"), load_model(name, device="cpu")
    logits = predict_logits(on_gpu, clouds)
    assert (logits - predict_logits(on_gpu, turned)).abs().max() <= TOLERANCE
    assert (logits - predict_logits(on_cpu, clouds)).abs().max() <= TOLERANCE


@cuda
def test_cuda_batches_fill_the_device_and_give_the_cpu_labels() -> None:
    model = load_model(device="cuda")
    batch = inference_batch_size(model)
    assert CPU_BATCH < batch <= MOST_CLOUDS
    files = sorted(str(path) for path in SAMPLES.iterdir() if path.suffix in SUPPORTED_EXTENSIONS) * 20
    on_gpu = classify(files, model)  # one batch of 220 files, or a few
    on_cpu = classify(files, load_model(device="cpu"))
    assert [p.label for p in on_gpu] == [p.label for p in on_cpu]
    assert max(abs((a.score or 0) - (b.score or 0)) for a, b in zip(on_gpu, on_cpu)) <= TOLERANCE


@cuda
def test_cuda_segmentation_labels_match_the_cpu() -> None:
    scan = [str(SAMPLES / "human_1.ply")]
    on_gpu = next(segment(scan, device="cuda"))
    on_cpu = next(segment(scan, device="cpu"))
    assert on_gpu.category == on_cpu.category
    assert on_gpu.labels is not None and on_cpu.labels is not None
    assert (on_gpu.labels == on_cpu.labels).mean() >= 0.999  # a point equidistant from two samples may go either way


@cuda
def test_a_pass_leaves_tf32_as_it_found_it() -> None:
    torch.backends.cudnn.allow_tf32 = True
    predict_logits(load_model(device="cuda"), torch.rand(2, 512, 3))
    assert torch.backends.cudnn.allow_tf32
