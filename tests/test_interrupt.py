"""A batch stopped by a real signal reports how far it got, with no traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"

pytestmark = pytest.mark.slow  # signal trials: console scripts stopped and resumed


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_batch(tmp_path: Path, signum: int) -> None:
    chair = (SAMPLES / "chair_0001.pcd").read_bytes()
    for i in range(300):
        (tmp_path / f"chair{i:03d}.pcd").write_bytes(chair)
    proc = subprocess.Popen(
        [sys.executable, "-m", "geocli.cli", "classify", str(tmp_path), "-f", "jsonl", "--batch-size", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline()  # wait until results are flowing
    assert '"label"' in first
    proc.send_signal(signum)
    proc.wait(timeout=120)
    # read through the same buffered pipes: communicate() would skip what readline() buffered
    rest, err = proc.stdout.read(), proc.stderr.read()
    lines = [first] + rest.splitlines()
    assert proc.returncode == 130, err
    assert "interrupted after" in err and "Traceback" not in err
    done = int(err.split("interrupted after ")[1].split()[0])
    assert len([line for line in lines if line.strip()]) == done < 300


def test_interrupted_segment_batch_loses_nothing_and_resumes(tiny_segmenter, tmp_path: Path) -> None:
    """One seeded trial of benchmarks/interrupt_trials.py (which runs 20), with the tiny segmenter."""
    sys.path.insert(0, str(SAMPLES.parent / "benchmarks"))
    from interrupt_trials import prepare, trial

    card, _ = tiny_segmenter
    scans, reference = prepare(tmp_path, 12, str(card))
    result = trial(scans, reference, str(card), seed=3, out=tmp_path / "out")
    assert result["problems"] == [] and 0 < result["finished_before_signal"] <= 12
