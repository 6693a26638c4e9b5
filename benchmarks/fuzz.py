"""Fuzz geocli through its console script: structure-aware cases of every format, read in batches.

Cases come from tests/corpus/structured.py: a valid PLY, PCD, OBJ, OFF, STL, glTF, GLB, LAS,
LAZ, NPY, NPZ or text-table file built from a seed, then one edit of its structure (header
counts, face indices, types, buffer and material references, truncation at section
boundaries, repeated or missing header lines, line ends, byte-order marks); ``--samples``
of them (a share) are byte-level mutations of the sample files instead (tests/corpus/mutate.py).
Any case is rebuilt from (seed, index) alone.

tests/corpus/judge.py runs them: ``--batch`` files (plus three good samples, first, middle and
last) per ``geocli info`` process, every ``--classify-every``-th batch through ``geocli classify``
too, with a time limit (a hang), an address-space cap, and the peak resident memory measured
(above ``--memory-mb`` is a failure). Every file must come out exactly once, a record or one
error line naming it; no traceback or other stray line on stderr; exit code 1 when a file
failed; the good samples read; ``info`` and ``classify`` agree; and a file a correct reader must
refuse (or read, with how many points) is not read (or refused). A batch that fails as a whole
is rerun file by file to find the case that did it. Each failing case is written to --keep
with ``case.json`` (how to rebuild it).

Prints a table by format on stderr and one JSON object on stdout (also to --json). Exit 1 on any failure.
Run: `OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/fuzz.py [N] [--seed S]`;
one case again: `... benchmarks/fuzz.py --seed S --case INDEX`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from corpus.judge import FAILURES, Limits, Result, Tally, run_batch  # noqa: E402 (after sys.path)
from corpus.mutate import load_sources, mutation  # noqa: E402
from corpus.structured import Case, case  # noqa: E402


def build(seed: int, index: int, samples: float, sources: dict[str, bytes]) -> Case:
    """Case ``index`` of run ``seed``: a byte-level mutation of a sample for a ``samples`` share, else structured."""
    if (index * 7919) % 1000 < samples * 1000:  # spread over the run, the same indices for every seed
        found = mutation(seed, index, sources)
        extension = Path(found.source).suffix.lstrip(".")
        return Case(seed, index, "sample " + extension, found.kind, f"{found.source}: {found.detail}", found.data,
                    extension=extension)  # fmt: skip
    return case(seed, index)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000, help="number of cases (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case", type=int, action="append", help="run only this case (repeatable)")
    parser.add_argument("--samples", type=float, default=0.1, help="share of byte-level sample mutations")
    parser.add_argument("--batch", type=int, default=100, help="files per geocli process")
    parser.add_argument("--classify-every", type=int, default=10, help="every k-th batch through classify too")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per file before a batch is a hang")
    parser.add_argument("--memory-mb", type=float, default=1024, help="peak resident memory allowed a process")
    parser.add_argument("--keep", type=Path, default=Path("/tmp/geocli-fuzz-failures"), help="failing cases go here")
    parser.add_argument("--json", type=Path, help="write the summary here too")
    args = parser.parse_args()

    start = time.perf_counter()
    sources = load_sources()
    indices = args.case or list(range(args.n))
    limits = Limits(seconds_per_file=args.timeout, memory_mib=args.memory_mb)
    tally, results = Tally(), []
    with tempfile.TemporaryDirectory(prefix="geocli-fuzz-") as scratch:
        for number, first in enumerate(range(0, len(indices), args.batch)):
            batch = [build(args.seed, i, args.samples, sources) for i in indices[first : first + args.batch]]
            folder = Path(scratch) / f"batch{number}"
            folder.mkdir()
            found = run_batch(batch, folder, number % args.classify_every == 0 or bool(args.case), limits, tally)
            for result in found:
                if result.outcome in FAILURES:
                    _keep(result, folder, args.keep)
            results += found
            shutil.rmtree(folder)
            if (first + len(batch)) % 500 < args.batch:
                failed = sum(r.outcome in FAILURES for r in results)
                print(f"fuzz: {len(results)}/{len(indices)} cases, {failed} failures", file=sys.stderr, flush=True)
                if args.json:  # so far: a long run can be read before it ends
                    args.json.write_text(json.dumps(_summary(results, tally, args, time.perf_counter() - start)))
    summary = _summary(results, tally, args, time.perf_counter() - start)
    _print_table(summary)
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if summary["failures"] else 0


def _keep(result: Result, folder: Path, keep: Path) -> None:
    """Copy a failing case (and the files it references) with ``case.json``: what failed and how to rebuild it."""
    case = result.case
    target = keep / f"s{case.seed}_{case.index:05d}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / case.name, target / case.name)
    for name, content in case.extras.items():
        if isinstance(content, bytes):
            (target / name).write_bytes(content)
    (target / "case.json").write_text(json.dumps({
        "seed": case.seed, "index": case.index, "format": case.format, "mutation": case.mutation,
        "detail": case.detail, "expect": case.expect, "points": case.points, "outcome": result.outcome,
        "command": result.command, "failure": result.detail,
        "rebuild": f"benchmarks/fuzz.py --seed {case.seed} --case {case.index}",
    }, indent=1) + "\n")  # fmt: skip


def _summary(results: list[Result], tally: Tally, args: argparse.Namespace, wall: float) -> dict[str, object]:
    outcomes = Counter(r.outcome for r in results)
    by_format: dict[str, Counter[str]] = {}
    for result in results:
        by_format.setdefault(result.case.format, Counter())[result.outcome] += 1
    failing = [r for r in results if r.outcome in FAILURES]
    return {
        "bench": "fuzz",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "seed": args.seed,
        "cases": len(results),
        "failures": len(failing),
        "failures_by_kind": {kind: outcomes[kind] for kind in FAILURES},
        "read": outcomes["read"],
        "refused": outcomes["refused"],
        "cases_classified_too": tally.classified,
        "processes": tally.processes,
        "peak_memory_mib_max": round(tally.peak_mib, 1),
        "memory_limit_mib": args.memory_mb,
        "by_format": {name: dict(counts) for name, counts in sorted(by_format.items())},
        "mutations": dict(Counter(r.case.mutation for r in results).most_common()),
        "examples": [
            {
                "index": r.case.index,
                "format": r.case.format,
                "mutation": r.case.mutation,
                "detail": r.case.detail,
                "outcome": r.outcome,
                "failure": r.detail[:400],
            }
            for r in failing[:20]
        ],  # fmt: skip
        "kept_in": str(args.keep) if failing else None,
        "wall_s": round(wall, 1),
    }


def _print_table(summary: dict[str, object]) -> None:
    by_format = summary["by_format"]
    assert isinstance(by_format, dict)
    print(f"{'format':<12}{'cases':>7}{'read':>7}{'refused':>9}{'failed':>8}", file=sys.stderr)
    for name, counts in by_format.items():
        failed = sum(n for kind, n in counts.items() if kind in FAILURES)
        row = f"{name:<12}{sum(counts.values()):>7}{counts.get('read', 0):>7}{counts.get('refused', 0):>9}{failed:>8}"
        print(row, file=sys.stderr)
    print(f"{'all':<12}{summary['cases']:>7}{summary['read']:>7}{summary['refused']:>9}{summary['failures']:>8}",
          file=sys.stderr)  # fmt: skip
    print(f"peak memory of a geocli process: {summary['peak_memory_mib_max']} MiB; "
          f"{summary['processes']} processes; {summary['wall_s']} s", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
