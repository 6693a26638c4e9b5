"""geocli's compiled CPU kernels (``kernels/``, package ``geocli_kernels``): whether to use them.

``scripts/setup.sh`` compiles them against the installed torch, as it does torch-cluster.
Every kernel has a pure-torch twin that gives the same results (the reference, tested
against it); the twin runs on CUDA, where the kernels are not built or stale (their ABI
differs from :data:`KERNEL_ABI`), and where ``GEOCLI_KERNELS=0`` or :func:`use_kernels`
turns them off.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from types import ModuleType

__all__ = ["compiled", "kernels_available", "kernels_enabled", "use_kernels"]

KERNEL_ABI = 4  # the contract geocli_kernels must implement (its _C.ABI)
_forced: bool | None = None  # set by use_kernels(); None: decided by the environment


@functools.cache
def _load() -> ModuleType | None:
    try:
        import geocli_kernels
    except (ImportError, OSError):
        return None
    return geocli_kernels if getattr(geocli_kernels, "ABI", None) == KERNEL_ABI else None


def kernels_available() -> bool:
    """Whether the compiled CPU kernels are installed and current."""
    return _load() is not None


def kernels_enabled() -> bool:
    """Whether CPU work should go to the compiled kernels now: available, and not turned off."""
    on = _forced if _forced is not None else os.environ.get("GEOCLI_KERNELS", "1") != "0"
    return on and kernels_available()


def compiled() -> ModuleType:
    """The compiled module; call only when :func:`kernels_enabled`."""
    module = _load()
    if module is None:
        raise RuntimeError("geocli_kernels is not available")
    return module


@contextlib.contextmanager
def use_kernels(enabled: bool) -> Iterator[None]:
    """Force the compiled route on or off inside the block (benchmarks and tests compare them)."""
    global _forced
    previous, _forced = _forced, enabled
    try:
        yield
    finally:
        _forced = previous
