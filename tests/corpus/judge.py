"""Run the real console script on batches of generated files and judge what it printed, file by file.

One ``geocli info`` (or ``geocli classify``) process reads a whole batch, with a time limit (a
hang is a timeout), an address-space cap (so a blow-up fails instead of exhausting the machine)
and its peak resident memory measured (``os.wait4``). Every file of the batch must come out
exactly once: a JSON record on stdout, or one ``geocli: error: <path>: <problem>`` line on
stderr, never both, never neither, so one bad file cannot hide another or take the good files
of its batch down with it. Good sample files are mixed in to prove the latter. The exit code is
1 when a file failed and 0 otherwise; stderr holds nothing else (no traceback, no warning a C
library printed behind geocli's back). Where a case knows what a correct reader must do
(:mod:`corpus.structured`), a file read that must be refused, or refused or read with other
points than it holds, is a silent misread.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from corpus.structured import Case

REPO = Path(__file__).resolve().parents[2]
GEOCLI = Path(sys.executable).with_name("geocli")
GOOD = [REPO / "sample_data" / name for name in ("chair_0001.pcd", "teapot.off", "bunny_1024.npy")]
ERROR, WARNING = "geocli: error: ", "geocli: warning: "

# What can go wrong with one file, or with the process that read it.
FAILURES = ("signal", "hang", "memory", "traceback", "stray_output", "exit_code", "lost", "duplicated",
            "good_file_lost", "disagree", "misread", "false_refusal")  # fmt: skip


@dataclass
class Run:
    """One finished (or killed) process: its exit status, output, wall time and peak resident memory."""

    returncode: int | None  # None: killed after the time limit
    stdout: str
    stderr: str
    wall_s: float
    peak_mib: float


def run(arguments: Sequence[str], timeout: float, address_space_mib: int) -> Run:
    """Run ``arguments`` with a time limit and an address-space cap; measure its peak RSS with ``wait4``."""

    def limit() -> None:
        cap = address_space_mib << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        os.setpgrp()  # a timeout kills the process group: prefetch threads and any child with it

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(list(arguments), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   preexec_fn=limit, env=env, cwd=REPO)  # fmt: skip
        killed = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                os.killpg(process.pid, signal.SIGKILL)
                _, status, usage = os.wait4(process.pid, 0)
                killed = True
                break
            time.sleep(0.02)
        process.returncode = 0  # reaped here: keep Popen from waiting for it again
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        code = None if killed else os.waitstatus_to_exitcode(status)
        return Run(code, out.read(), err.read(), wall, usage.ru_maxrss / 1024)


@dataclass
class Judged:
    """The outcome of every file of a batch (``read``, ``refused`` or a failure) and what the batch itself did."""

    outcomes: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)  # the error line, the record or what went wrong
    records: dict[str, dict] = field(default_factory=dict)  # type: ignore[type-arg]
    batch: list[tuple[str, str]] = field(default_factory=list)  # failures of the process: (kind, detail)


def judge(done: Run, paths: Sequence[str], command: str, memory_mib: float) -> Judged:
    """Account for every path in what ``geocli <command>`` printed (see the module docstring)."""
    judged = Judged()
    if done.returncode is None:
        judged.batch.append(("hang", f"no exit within {done.wall_s:.0f} s"))
    elif done.returncode < 0:
        judged.batch.append(("signal", f"killed by {signal.Signals(-done.returncode).name}"))
    if done.peak_mib > memory_mib:
        judged.batch.append(("memory", f"peak resident memory {done.peak_mib:.0f} MiB"))
    if "Traceback" in done.stderr:
        judged.batch.append(("traceback", done.stderr[-1500:]))
    known = set(paths)
    errors: dict[str, list[str]] = {p: [] for p in paths}
    for line in done.stderr.splitlines():
        owner = _owner(line, known)
        if line.startswith(ERROR) and owner:
            errors[owner].append(line[len(ERROR) + len(owner) + 2 :])
        elif not (line.startswith(WARNING) and owner) and "Traceback" not in done.stderr:
            judged.batch.append(("stray_output", line[:300]))
    records: dict[str, list[dict]] = {p: [] for p in paths}  # type: ignore[type-arg]
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
            records[record["path"]].append(record)
        except (ValueError, KeyError, TypeError):
            judged.batch.append(("stray_output", f"stdout: {line[:300]}"))
    for path in paths:
        judged.outcomes[path], judged.details[path] = _outcome(errors[path], records[path], command)
        if judged.outcomes[path] == "read":
            judged.records[path] = records[path][0]
        if any("not enough memory" in message for message in errors[path]):
            judged.outcomes[path], judged.details[path] = "memory", errors[path][0]
    failed = any(outcome != "read" for outcome in judged.outcomes.values())
    if done.returncode is not None and done.returncode >= 0 and done.returncode != int(failed):
        judged.batch.append(("exit_code", f"exit code {done.returncode} with {'some' if failed else 'no'} file failed"))
    return judged


def _owner(line: str, known: set[str]) -> str | None:
    """The path a ``geocli: error:`` or ``warning:`` line names, if it is one of ``known``."""
    for prefix in (ERROR, WARNING):
        if line.startswith(prefix):
            rest = line[len(prefix) :]
            path = rest.split(": ", 1)[0]
            return path if path in known else None
    return None


def _outcome(errors: list[str], records: list[dict], command: str) -> tuple[str, str]:  # type: ignore[type-arg]
    """``read``/``refused`` with the message, or ``lost``/``duplicated`` when the file is not there exactly once."""
    if command == "info":
        if len(errors) + len(records) == 1:
            return ("refused", errors[0]) if errors else ("read", "")
        return ("lost", "no record and no error line") if not errors and not records else (
            "duplicated", f"{len(records)} records, {len(errors)} error lines")  # fmt: skip
    if len(records) != 1:
        return ("lost" if not records else "duplicated"), f"{len(records)} records, {len(errors)} error lines"
    error = records[0].get("error")
    if error and errors == [error.split(": ", 1)[-1]]:
        return "refused", errors[0]
    if not error and not errors:
        return "read", ""
    return "duplicated", f"record error {error!r}, error lines {errors}"


def commands(paths: Sequence[str], command: str) -> list[str]:
    """The console script's arguments for ``command`` on ``paths``."""
    if command == "info":
        return [str(GEOCLI), "info", *paths]
    return [str(GEOCLI), "classify", "-f", "jsonl", "-k", "1", *paths]


def with_good_files(paths: Sequence[str]) -> list[str]:
    """``paths`` with the good samples at the start, the middle and the end: they must come out whole."""
    middle = len(paths) // 2
    return [str(GOOD[0]), *paths[:middle], str(GOOD[1]), *paths[middle:], str(GOOD[2])]


@dataclass
class Limits:
    """What a run may take: seconds per file (on top of a start-up allowance), peak memory, address space."""

    seconds_per_file: float = 5.0
    startup_s: float = 60.0
    memory_mib: float = 1024.0
    address_space_mib: int = 4096


@dataclass
class Result:
    """What became of one case: ``read``, ``refused`` or a failure (one of ``FAILURES``), and why."""

    case: Case
    outcome: str
    detail: str = ""
    command: str = "info"


@dataclass
class Tally:
    """Counters over a whole run."""

    processes: int = 0
    peak_mib: float = 0.0
    classified: int = 0  # cases read by classify as well as info


def run_batch(cases: Sequence[Case], folder: Path, classify: bool, limits: Limits, tally: Tally) -> list[Result]:
    """Write ``cases`` into ``folder``, read them with ``info`` (and ``classify``), and judge every one."""
    paths = [str(case.write(folder)) for case in cases]
    results = {path: Result(case, "read") for path, case in zip(paths, cases)}
    for command in ("info", "classify") if classify else ("info",):
        judged = _judged(paths, command, limits, tally)
        if judged.batch:  # the process failed as a whole: find the file that did it, alone
            alone = {path: _judged([path], command, limits, tally) for path in paths}
            culprits = [path for path, found in alone.items() if found.batch]
            for path in culprits or paths:  # none alone: a failure of the batch, charged to every case in it
                kind, detail = (alone[path].batch or judged.batch)[0]
                _fail(results[path], kind, detail, command)
            judged.outcomes.update({p: found.outcomes[p] for p, found in alone.items() if p not in culprits})
        for path in paths:
            _compare(results[path], judged, path, command)
        tally.classified += len(cases) if command == "classify" else 0
    return list(results.values())


def _judged(paths: Sequence[str], command: str, limits: Limits, tally: Tally) -> Judged:
    batch = with_good_files(paths)
    done = run(commands(batch, command), limits.startup_s + limits.seconds_per_file * len(batch),
               limits.address_space_mib)  # fmt: skip
    tally.processes += 1
    tally.peak_mib = max(tally.peak_mib, done.peak_mib)
    judged = judge(done, batch, command, limits.memory_mib)
    for good in map(str, GOOD):
        if judged.outcomes[good] != "read" and not judged.batch:
            judged.batch.append(("good_file_lost", f"{good}: {judged.outcomes[good]} {judged.details[good]}"))
    return judged


def _fail(result: Result, kind: str, detail: str, command: str) -> None:
    if result.outcome in ("read", "refused"):  # the first failure found is kept
        result.outcome, result.detail, result.command = kind, detail, command


def _compare(result: Result, judged: Judged, path: str, command: str) -> None:
    """The file's outcome in this command against its expectation and against ``info``'s outcome."""
    outcome, detail, case = judged.outcomes[path], judged.details[path], result.case
    if outcome not in ("read", "refused"):
        _fail(result, outcome, detail, command)
    elif command == "classify":
        if outcome != result.outcome and result.outcome in ("read", "refused"):
            _fail(result, "disagree", f"info: {result.outcome} {result.detail}; classify: {outcome} {detail}", command)
    elif case.expect == "refused" and outcome == "read":
        _fail(result, "misread", f"read, must be refused ({case.detail}): {json.dumps(judged.records[path])[:300]}",
              command)  # fmt: skip
    elif case.expect == "read" and outcome == "refused":
        _fail(result, "false_refusal", detail, command)
    elif case.expect == "read" and case.points is not None and judged.records[path]["points"] != case.points:
        _fail(result, "misread", f"{judged.records[path]['points']} points read, the file holds {case.points}", command)
    else:
        result.outcome, result.detail = outcome, detail
