"""Freed memory kept for the next training step (geocli.allocator): fewer pages faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "kept":
    from geocli.allocator import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()
for _ in range(3):  # the first rounds grow the heap (and teach glibc the block size); the last is a step
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [np.ones(1_000_000) for _ in range(25)]  # a step's activations: 25 blocks of 8 MB, freed at its end
    del blocks
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_in_second_round(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_kept_memory_is_reused_without_faulting_its_pages_in_again() -> None:
    default, kept = faults_in_second_round("default"), faults_in_second_round("kept")
    pages = 25 * 8_000_000 // 4096  # fewer faults than pages where the kernel maps huge pages at once
    assert default > pages / 8  # handed back to the OS when freed, faulted in again
    assert kept < default / 20
