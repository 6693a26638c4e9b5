"""Inference on a CUDA device: the precision that keeps geocli's invariance, and a batch that fills the device.

Precision. geocli promises the same logits, to 1e-4, under any rotation of the input
(``tests/test_invariance.py``). Autocast to float16 or bfloat16 keeps 11 or 8 significant
bits (relative steps of 4.9e-4 and 3.9e-3): the canonical coordinates alone, rounded so,
move by more than that promise. Measured on a CPU (``benchmarks/autocast_invariance.py``: 32
ModelNet40 test shapes and the same shapes turned, default classifier), the largest logit
change under the rotation is 3.1e-6 in float32, 0.016 with float16 autocast and 0.11 with
bfloat16 (the README's "Speed" section gives up to 1.3 for bfloat16). TF32, which CUDA's
convolutions use by default, also keeps 11 bits. So the network runs in float32 on CUDA, with autocast and
TF32 switched off for the pass; the speed of a GPU comes from the batch instead.

Batch. On CUDA one pass over a few hundred clouds costs about what one over sixteen does,
so :func:`inference_batch_size` measures what a cloud costs in device memory (the peak of
one pass over a few random clouds) and takes the largest power of two whose pass fits in
half of the memory free now, the rest left to other processes and fragmentation. On a CPU
it is 16, as before: there a larger batch gains nothing and holds more files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from geocli.zoo import LoadedModel

CPU_BATCH = 16
PROBE_CLOUDS = 8  # clouds in the pass that measures a cloud's memory
MEMORY_SHARE = 0.5  # of the free device memory, for one pass
MOST_CLOUDS = 4096  # past this, a pass takes long enough that results stream in bursts


@contextlib.contextmanager
def exact_float32(device: torch.device) -> Iterator[None]:
    """Float32 products on CUDA for the pass: no autocast, no TF32 (restored after); nothing to do on a CPU."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.autocast("cuda", enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def batch_for_memory(free_bytes: int, bytes_per_cloud: int) -> int:
    """The largest power of two of clouds, 16 to 4096, whose pass takes at most half of ``free_bytes``."""
    fits = int(MEMORY_SHARE * free_bytes) // max(1, bytes_per_cloud)
    batch = CPU_BATCH
    while batch * 2 <= min(fits, MOST_CLOUDS):
        batch *= 2
    return batch


def inference_batch_size(model: LoadedModel) -> int:
    """Clouds per network pass for ``model`` where it is: 16 on a CPU, what fills the device on CUDA."""
    device = next(model.net.parameters()).device
    if device.type != "cuda":
        return CPU_BATCH
    probe = torch.rand(PROBE_CLOUDS, model.input_points, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad(), exact_float32(device):
        model.net(probe.to(device))
    torch.cuda.synchronize(device)
    per_cloud = (torch.cuda.max_memory_allocated(device) - before) // PROBE_CLOUDS
    free, _ = torch.cuda.mem_get_info(device)
    return batch_for_memory(free, per_cloud)
