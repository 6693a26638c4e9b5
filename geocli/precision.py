"""Which floating-point type the networks' matrix products run in, decided per machine.

On CPUs with native bfloat16 (AVX-512 BF16 or AMX) a bfloat16 matrix product runs about
5x as fast as a float32 one; elsewhere (AVX2 only) bfloat16 is emulated and slower. The
choice is therefore made in code, from the CPU this process runs on, never once for all:
training moves between machines from one session to the next.

Training autocasts to bfloat16 where it pays (and always on CUDA). Inference stays in
float32 unless asked: exact invariance is a promise geocli tests (the same logits, to
1e-4, under any rotation), and bfloat16 rounding of canonical coordinates that differ
in their last float32 bit would break it.

``GEOCLI_BF16=0`` or ``=1`` overrides the detection for training (benchmarks, tests).
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

__all__ = ["autocast", "autocast_dtype", "native_bfloat16", "precision_name"]


@functools.cache
def _cpu_has_native_bfloat16() -> bool:
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (``GEOCLI_BF16`` overrides)."""
    forced = os.environ.get("GEOCLI_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    return _cpu_has_native_bfloat16()


def autocast_dtype(device: str | torch.device) -> torch.dtype | None:
    """bfloat16 on CUDA and on CPUs with native bfloat16; None (float32) elsewhere."""
    kind = torch.device(device).type
    if kind == "cuda" or (kind == "cpu" and native_bfloat16()):
        return torch.bfloat16
    return None


def precision_name(device: str | torch.device) -> str:
    """'bfloat16' or 'float32': what :func:`autocast` runs in, for logs and model cards."""
    return "bfloat16" if autocast_dtype(device) is not None else "float32"


def autocast(device: str | torch.device) -> contextlib.AbstractContextManager:
    """Autocast to :func:`autocast_dtype` on ``device``, or nothing where float32 is faster."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
