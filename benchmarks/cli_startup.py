"""Start-up time of the installed `geocli --help` (the console script beside this Python).

Target: median under 0.3 s. `--help` must not import torch, open3d or other heavy
libraries; tests/test_packaging.py checks torch, this measures everything.

Prints one JSON line: {"bench": "cli_startup", "n": ..., "median_s": ..., "max_s": ..., ...}.
Run with `make bench`, or `.venv/bin/python benchmarks/cli_startup.py [N]`.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3


def measure(n: int = 10) -> dict:
    """Median and slowest wall time of ``n`` runs of ``geocli --help``, after one warm-up run."""
    # The script installed next to the interpreter running this (.venv/bin/geocli under make).
    script = Path(sys.executable).parent / "geocli"
    if not script.exists():
        script = Path(shutil.which("geocli") or script)
    cmd = [str(script), "--help"]

    subprocess.run(cmd, capture_output=True, check=True)  # warm-up: .pyc files and disk cache
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)

    median = statistics.median(times)
    return {
        "bench": "cli_startup",
        "command": " ".join(cmd),
        "n": n,
        "median_s": round(median, 4),
        "max_s": round(max(times), 4),
        "target_s": TARGET_S,
        "within_target": median < TARGET_S,
    }


def main() -> int:
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 10)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
