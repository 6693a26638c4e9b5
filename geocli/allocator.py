"""Keep freed memory in the process for the next step, instead of handing it back to the OS.

glibc's ``malloc`` serves a large block with its own ``mmap`` and unmaps it when it is freed
(above a threshold that starts at 128 KiB and rises, as it learns, to 32 MiB at most), and
hands the top of the heap back once more than 128 KiB of it is free. A training step allocates
the same large activations as the step before, so every step faulted all their pages in
again, each one zeroed by the kernel: a quarter of the wide recipe's CPU time was the
kernel's. Here no block gets a mapping of its own and the
heap keeps what is freed (up to 2 GiB above its top, and 1 GiB more whenever it grows), so a
step reuses the pages of the step before. ``python benchmarks/train_step.py --only
trunk-1024,tinvnn-modelnet40 --steps 4`` (2 cores, AVX-512, bfloat16, one run): a wide-trunk
step 0.664 s with glibc's defaults, 0.417 s kept (1.6x); the shipped small trunk's 0.133 s and
0.097 s.

The price is that the process holds its peak memory until it ends, which suits a training run
or a batch command and not a library call inside someone's notebook, so only ``geocli``'s
batch commands that run the network for minutes ask for it (``train``, ``eval``,
``calibrate``: :func:`keep_freed_memory`), never an import. Elsewhere than glibc (macOS,
musl) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt's parameters (glibc's malloc.h) and the values set: no block of its own mapping (glibc
# caps the mmap threshold at 32 MiB, and a wide trunk's activations are larger), and the largest
# trim threshold a C int holds.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
MMAP_MAX = 0
TRIM_THRESHOLD = 2**31 - 1
TOP_PAD = 1024 * 1024 * 1024

_kept = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap, trim and top-pad thresholds for this process (once); whether they are raised."""
    global _kept
    if _kept:
        return True
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no C library by that name, or not glibc's
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_MAX, MMAP_MAX), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    _kept = all(mallopt(parameter, value) == 1 for parameter, value in settings)
    return _kept
