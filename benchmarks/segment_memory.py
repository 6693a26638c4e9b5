"""Peak memory and time of `geocli segment` on one large scan (goal: a million points in under 4 GiB).

Usage: python benchmarks/segment_memory.py [--points 1000000] [--model NAME (default: the default segmenter)]

Samples the part-labelled sample mesh (sample_data/human_1.ply) into a binary PLY cloud
of ``--points`` points, segments it in a child process, and reports the child's peak
resident memory (``ru_maxrss``) and wall time, and checks that every point got a label.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from geocli.defaults import DEFAULT_SEGMENTER
from geocli.geometry.sampling import sample_surface
from geocli.io import read_geometry
from geocli.io.writers import write_labeled

MESH = Path(__file__).resolve().parents[1] / "sample_data" / "human_1.ply"
GOAL_GIB = 4.0


def measure(points: int = 1_000_000, model: str = DEFAULT_SEGMENTER) -> dict:
    """Segment a ``points``-point scan in a child process: its wall time and peak memory, and whether all got labels."""
    mesh = read_geometry(MESH)
    cloud = sample_surface(mesh.points, mesh.faces, points, seed=0).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        scan = Path(tmp) / "scan.ply"
        write_labeled(scan, cloud, np.zeros(len(cloud), dtype=np.int64))  # any PLY cloud; its labels are ignored
        segment = [sys.executable, "-m", "geocli.cli", "segment", str(scan), "--out", str(Path(tmp) / "out")]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        done = subprocess.run([*segment, "-m", model, "--device", "cpu"], capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"segment failed: {done.stderr.strip()}")
        record = json.loads(done.stdout)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux reports KiB
        if peak_kib <= before:  # an earlier child of this process peaked higher: the figure says nothing of this one
            sys.exit("segment_memory.measure must run before any larger child process")
        peak_gib = peak_kib / 2**20
        return {
            "model": model,
            "points": points,
            "labelled": record["points"],
            "category": record["category"],
            "seconds": round(seconds, 1),
            "peak_rss_gib": round(peak_gib, 2),
            "goal_gib": GOAL_GIB,
            "met": peak_gib < GOAL_GIB and record["points"] == points,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--model", default=DEFAULT_SEGMENTER)
    args = parser.parse_args()
    print(json.dumps(measure(args.points, args.model)))


if __name__ == "__main__":
    main()
