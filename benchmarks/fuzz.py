"""Fuzz the readers and the classify path with seeded mutations of the sample files; report crashes.

Each case is a sample file (sample_data/: PLY, PCD, XYZ, OBJ, OFF, STL, NPY) after one seeded
mutation from tests/corpus/mutate.py (truncation, byte flips, header edits, chunk edits: the
same code the bounded test in tests/test_fuzz.py runs). A worker process loads the default model
once and, per case, runs what `geocli info` and `geocli classify` run: geocli.io.describe.describe
and geocli.api.classify. A case crashes when it gives

* traceback:    an exception other than the one-line GeometryError (or a failed Prediction);
* bad_message:  an error that is not one line starting with the file's path;
* hang:         no answer within --timeout seconds (the worker is killed and restarted);
* memory:       MemoryError, or the worker dies, under an address-space limit of --memory-mb
                above what the worker uses after loading the model (the files are < 250 KB);
* died:         the worker process ends without answering (e.g. a segfault or abort);
* stray_output: anything written to the process's stderr (C libraries print there directly),
                which would break the one-line-per-bad-file contract.

Prints one JSON object: counts, crashes by kind, up to --examples examples each, wall time.
Run: `OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/fuzz.py [N] [--seed S]`.
Exit code 1 if any case crashed.
"""

from __future__ import annotations

import argparse
import json
import re
import select
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from corpus.mutate import CRASH_KINDS, SAMPLE_DATA, SOURCES, Mutation, mutations, run_case  # noqa: E402 (after sys.path)


def worker(memory_mb: int) -> None:
    """Answer one JSON line per path read from stdin; stderr goes to a file the parent inspects."""
    import resource

    import torch

    from geocli.api import load_model

    torch.set_num_threads(1)
    model = load_model(device="cpu")
    for source in SOURCES:  # warm up: imports, thread pools and allocator arenas exist before the limit
        run_case(str(SAMPLE_DATA / source), model)
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmPeak:"))
    limit = (peak_kb // 1024 + memory_mb) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print(json.dumps({"ready": True, "address_space_mb": limit >> 20}), flush=True)
    for line in sys.stdin:
        try:
            answer = run_case(line.rstrip("\n"), model)
        except MemoryError:  # raised outside the case's own handler, e.g. while formatting it
            answer = {"outcome": "memory"}
        print(json.dumps(answer), flush=True)


class Worker:
    """A worker process with a timeout on every answer; restarted after a hang or a death."""

    def __init__(self, memory_mb: int, stderr_path: Path) -> None:
        self.memory_mb, self.stderr_path = memory_mb, stderr_path
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.stderr = open(self.stderr_path, "w+")  # noqa: SIM115 - kept open for the worker's life
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--memory-mb", str(self.memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, cwd=REPO,
        )  # fmt: skip
        ready = self._answer(600)
        if not ready or not ready.get("ready"):
            raise RuntimeError(f"fuzz worker failed to start: {self.stray()}")
        self.address_space_mb = ready["address_space_mb"]

    def stray(self) -> str:
        self.stderr.seek(0)
        text = self.stderr.read()
        self.stderr.seek(0)
        self.stderr.truncate()
        return text

    def _answer(self, timeout: float) -> dict[str, object] | None:
        assert self.process and self.process.stdout
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else {"outcome": "died"}

    def ask(self, path: str, timeout: float) -> dict[str, object]:
        if self.process is None:
            self.start()
        assert self.process and self.process.stdin
        self.process.stdin.write(path + "\n")
        self.process.stdin.flush()
        answer = self._answer(timeout)
        if answer is None or answer.get("outcome") == "died":
            self.stop()
            code = None if answer is None else self.process.returncode
            answer = {"outcome": "hang"} if answer is None else {"outcome": "died", "detail": f"exit status {code}"}
            self.process = None
        stray = self.stray()
        if stray.strip() and answer["outcome"] in ("classified", "refused"):
            answer = {"outcome": "stray_output", "detail": stray[-600:]}
        return answer

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
        if self.process:
            self.process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000, help="number of mutations (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--memory-mb", type=int, default=1024, help="address space a case may add (MiB)")
    parser.add_argument("--examples", type=int, default=5, help="examples kept per crash kind")
    parser.add_argument("--keep", type=Path, help="copy every crashing input into this folder")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.memory_mb)
        return 0

    start = time.perf_counter()
    outcomes: Counter[str] = Counter()
    by_mutation: dict[str, Counter[str]] = {}
    examples: dict[str, list[dict[str, object]]] = {}
    problems: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="geocli-fuzz-") as scratch:
        runner = Worker(args.memory_mb, Path(scratch) / "worker-stderr.txt")
        runner.start()
        startup_s = time.perf_counter() - start
        for mutation in mutations(args.n, seed=args.seed):
            path = Path(scratch) / mutation.name
            path.write_bytes(mutation.data)
            answer = runner.ask(str(path), args.timeout)
            outcome = str(answer["outcome"])
            outcomes[outcome] += 1
            by_mutation.setdefault(mutation.kind, Counter())[outcome] += 1
            if outcome == "refused":
                problems[_problem_class(str(answer["detail"]))] += 1
            if outcome in CRASH_KINDS:
                _record(examples, outcome, mutation, answer, args)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    (args.keep / mutation.name).write_bytes(mutation.data)
            path.unlink()
            if (mutation.index + 1) % 1000 == 0:
                crashed = sum(outcomes[kind] for kind in CRASH_KINDS)
                print(f"fuzz: {mutation.index + 1}/{args.n} cases, {crashed} crashes", file=sys.stderr)
        runner.stop()
    crashes = {kind: outcomes[kind] for kind in CRASH_KINDS}
    print(json.dumps({
        "bench": "fuzz",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "n": args.n,
        "seed": args.seed,
        "timeout_s": args.timeout,
        "memory_limit_mb": runner.address_space_mb,
        "crashes": sum(crashes.values()),
        "crashes_by_kind": crashes,
        "refused": outcomes["refused"],
        "classified": outcomes["classified"],
        "by_mutation": {kind: dict(counts) for kind, counts in sorted(by_mutation.items())},
        "top_refusals": dict(problems.most_common(12)),
        "examples": examples,
        "worker_startup_s": round(startup_s, 1),
        "wall_s": round(time.perf_counter() - start, 1),
    }, indent=1))  # fmt: skip
    return 1 if sum(crashes.values()) else 0


def _record(
    examples: dict[str, list[dict[str, object]]],
    outcome: str,
    mutation: Mutation,
    answer: dict[str, object],
    args: argparse.Namespace,
) -> None:
    kept = examples.setdefault(outcome, [])
    if len(kept) < args.examples:
        kept.append({"case": mutation.name, "mutation": mutation.detail, "detail": answer.get("detail", "")})


def _problem_class(problem: str) -> str:
    """Group refusal messages by their wording, without the numbers (and details after "corrupt X data")."""
    if problem.startswith(("corrupt", "cannot")):
        problem = problem.split(" (")[0].split(":")[0]
    return re.sub(r"\d[\d,.]*", "N", problem)[:80]


if __name__ == "__main__":
    sys.exit(main())
