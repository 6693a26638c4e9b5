"""Interrupt `geocli segment` at seeded random moments and check that no finished output is lost.

Usage: python benchmarks/interrupt_trials.py [--trials 20] [--inputs 24] [--seed 0]
       [--model NAME (default: the default segmenter)]

Each trial starts a batch over copies of a sample scan, waits for a random number of
results plus a random delay, sends SIGINT or SIGTERM, and then checks:
no traceback, exit code 130, one complete output per result reported (byte-identical to
an uninterrupted run), no temporary file left; then `--resume` must finish the rest,
skip exactly the finished files, and leave every output identical to the reference.
Prints one JSON line per trial and a summary; exits 1 if any trial lost or broke an output.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geocli.defaults import DEFAULT_SEGMENTER

SCAN = Path(__file__).resolve().parents[1] / "sample_data" / "cow_2048.ply"


def segment_command(scans: Path, out: Path, model: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "geocli.cli",
        "segment",
        str(scans),
        "--out",
        str(out),
        "-m",
        model,
        "--device",
        "cpu",
        *extra,
    ]


def outputs(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())} if folder.is_dir() else {}


def prepare(folder: Path, inputs: int, model: str) -> tuple[Path, dict[str, bytes]]:
    """Copies of the sample scan and the outputs of an uninterrupted run over them."""
    scans = folder / "scans"
    scans.mkdir(parents=True)
    for i in range(inputs):
        shutil.copyfile(SCAN, scans / f"scan{i:03d}.ply")
    reference = folder / "reference"
    subprocess.run(segment_command(scans, reference, model), check=True, capture_output=True)
    return scans, outputs(reference)


def trial(scans: Path, reference: dict[str, bytes], model: str, seed: int, out: Path) -> dict:
    """One interrupted batch and its resumption; ``problems`` lists every broken promise."""
    rng = random.Random(seed)
    signum = rng.choice([signal.SIGINT, signal.SIGTERM])
    wait_results, delay = rng.randrange(1, len(reference) // 2), rng.uniform(0.0, 0.5)
    proc = subprocess.Popen(
        segment_command(scans, out, model), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen = [proc.stdout.readline() for _ in range(wait_results)]  # the batch is running
    time.sleep(delay)
    proc.send_signal(signum)
    proc.wait(timeout=300)
    records = [json.loads(line) for line in seen + proc.stdout.read().splitlines() if line.strip()]
    err = proc.stderr.read()
    problems = []
    if "Traceback" in err:
        problems.append("traceback on stderr")
    if proc.returncode not in (130, 0):
        problems.append(f"exit code {proc.returncode}")
    written = {name: data for name, data in outputs(out).items() if name != "labels.json"}  # the legend, no result
    if any(name.endswith(".tmp") for name in written):
        problems.append("temporary file left behind")
    reported = {Path(r["output"]).name for r in records}
    if reported != set(written):
        problems.append(f"{len(written)} files written but {len(reported)} results reported")
    problems += [
        f"{name} differs from the uninterrupted run" for name, data in written.items() if reference.get(name) != data
    ]
    resumed = subprocess.run(segment_command(scans, out, model, "--resume"), capture_output=True, text=True)
    skipped = sum("skipped" in json.loads(line) for line in resumed.stdout.splitlines() if line.strip())
    if resumed.returncode != 0 or skipped != len(written):
        problems.append(f"resume: exit {resumed.returncode}, skipped {skipped} of {len(written)} finished")
    if outputs(out) != reference:
        problems.append("after --resume the outputs differ from the uninterrupted run")
    return {
        "seed": seed,
        "signal": signal.Signals(signum).name,
        "finished_before_signal": len(written),
        "of": len(reference),
        "exit": proc.returncode,
        "problems": problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--inputs", type=int, default=24)
    parser.add_argument("--model", default=DEFAULT_SEGMENTER)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scans, reference = prepare(Path(tmp), args.inputs, args.model)
        results = []
        for i in range(args.trials):
            results.append(trial(scans, reference, args.model, args.seed + i, Path(tmp) / f"out{i}"))
            print(json.dumps(results[-1]), flush=True)
    failed = [r for r in results if r["problems"]]
    print(
        json.dumps(
            {
                "trials": len(results),
                "failed": len(failed),
                "outputs_lost": sum(len(r["problems"]) for r in failed),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
