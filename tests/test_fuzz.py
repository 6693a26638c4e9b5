"""Seeded fuzzing, bounded for the test suite (benchmarks/fuzz.py runs 10,000 cases).

Structure-aware cases (tests/corpus/structured.py: every format, edits of its counts, indices,
types and references) go through the real console script in batches, judged by
tests/corpus/judge.py, the same code as the benchmark; regression cases the fuzzer found are
rebuilt from their seed and index. Byte-level mutations of the sample files (truncation, byte
flips, header edits, chunk edits: tests/corpus/mutate.py) go through what `geocli info` and
`geocli classify` run, in-process, and a few through the console script.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from corpus import deadline
from corpus.judge import FAILURES, Limits, Tally, run_batch
from corpus.mutate import KINDS, SAMPLE_DATA, SOURCES, Mutation, mutations
from corpus.structured import FORMATS, GENERIC, case, cases
from geocli.io import GeometryError, read_geometry

SEED = 0
COUNT = 240  # 24 per sample file
CLASSIFIED = 8  # valid mutated files that also go through the network
GEOCLI = Path(sys.executable).with_name("geocli")

STRUCTURED = 200  # structure-aware cases through the console script, in the quick suite


def test_structured_cases_are_seeded_and_rebuilt_alone() -> None:
    many = cases(SEED, STRUCTURED)
    batch = many[:48]
    assert [(c.name, c.data) for c in batch] == [(c.name, c.data) for c in cases(SEED, 48)]
    assert [c.data for c in batch[:24]] != [c.data for c in cases(SEED + 1, 24)]
    assert case(SEED, 40).data == batch[40].data  # any case without the ones before it
    assert {c.format for c in batch} == set(FORMATS)
    assert len({c.mutation for c in many} & set(GENERIC)) >= len(GENERIC) - 1
    assert sum(c.expect == "refused" for c in many) > STRUCTURED // 4  # cases a reader must refuse
    assert sum(c.expect == "read" for c in many) > STRUCTURED // 8  # and must read, with their points


@pytest.mark.slow  # half a minute on an idle core, minutes on a busy one
def test_structured_fuzz_through_the_console_script(tmp_path: Path) -> None:
    """200 cases of every format in two `info` batches, one also through `classify`: no failure of any kind.

    A failure names its kind (see corpus.judge.FAILURES); rerun it alone with
    ``benchmarks/fuzz.py --seed 0 --case INDEX`` and read its case.json.
    """
    tally = Tally()
    results = []
    for number, first in enumerate(range(0, STRUCTURED, 100)):
        folder = tmp_path / f"batch{number}"
        folder.mkdir()
        results += run_batch(cases(SEED, 100, first), folder, number == 0, Limits(), tally)
    failures = [(r.case.index, r.case.format, r.case.detail, r.outcome, r.detail[:300]) for r in results
                if r.outcome in FAILURES]  # fmt: skip
    assert failures == []
    outcomes = Counter(r.outcome for r in results)
    assert outcomes["read"] > 40 and outcomes["refused"] > 80, outcomes
    assert tally.classified == 100 and tally.peak_mib < 1024


# Cases the structured fuzzer found, by (seed, index), and the start of the one line each must now give.
FOUND = {
    (1, 164): "corrupt LAS data: 2,147,483,648 VLRs cannot fit",  # LAZ: laspy read VLRs for ever
    (1, 199): "corrupt LAS data: the point data start at byte 4,294,967,295",  # laspy allocated 4 GiB
    (1, 165): "corrupt NPY data: ",  # a header length that lies: the data were read shifted
    (1, 238): "corrupt NPZ data: ",  # a dtype of half the size: numpy read half the data as other numbers
    (0, 3936): "corrupt PLY data: 12 bytes follow the data",  # binary faces, a count one too low: last face dropped
    (0, 5250): "corrupt GLB data: the binary chunk declares 4,294,967,295 bytes",  # trimesh allocated 4 GiB
    (0, 34): "all 500,000 points are identical",  # 256 MB of zeros deflated into 250 KB: inflated whole
}


@pytest.mark.parametrize(("seed", "index"), list(FOUND))
def test_cases_the_fuzzer_found_are_refused_in_bounded_time_and_memory(tmp_path: Path, seed: int, index: int) -> None:
    import tracemalloc

    found = case(seed, index)
    path = found.write(tmp_path)
    tracemalloc.start()
    try:
        with deadline(60), pytest.raises(GeometryError) as caught:
            read_geometry(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(caught.value).startswith(f"{path}: {FOUND[seed, index]}"), (found.detail, str(caught.value))
    assert peak < 128 << 20, f"{peak:,} bytes"


@pytest.fixture(scope="module")
def mutated(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Mutation, Path]]:
    folder = tmp_path_factory.mktemp("fuzz")
    written = []
    for mutation in mutations(COUNT, seed=SEED):
        path = folder / mutation.name
        path.write_bytes(mutation.data)
        written.append((mutation, path))
    return written


def test_mutations_are_seeded_and_cover_every_kind_and_sample() -> None:
    first = [(m.name, m.data) for m in mutations(30, seed=SEED)]
    assert first == [(m.name, m.data) for m in mutations(30, seed=SEED)]
    assert first != [(m.name, m.data) for m in mutations(30, seed=SEED + 1)]
    batch = list(mutations(COUNT, seed=SEED))
    assert set(Counter(m.kind for m in batch)) == set(KINDS)
    assert {m.source for m in batch} == set(SOURCES)
    unchanged = sum(m.data == (SAMPLE_DATA / m.source).read_bytes() for m in batch)
    assert unchanged < len(batch) // 50  # e.g. a header number replaced by itself


def _on_alarm(signum: int, frame: object) -> None:
    raise TimeoutError("a case took more than 30 s")


@pytest.mark.slow
def test_mutated_samples_are_refused_in_one_line_or_classified(
    mutated: list[tuple[Mutation, Path]], capfd: pytest.CaptureFixture[str]
) -> None:
    """Every case through `info`'s reading and the network's input preparation; `classify` on a subset.

    The network itself costs ~0.3 s a cloud on one core, so `classify` gets every refused case
    (they fail before it) and the first valid ones; the benchmark classifies all of them.
    """
    from geocli.api import classify, load_model, model_input

    model = load_model(device="cpu")
    refused: dict[str, str] = {}
    valid: list[Path] = []
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for mutation, path in mutated:  # what `geocli info` runs, then what `classify` feeds the network
            signal.alarm(30)
            try:
                geometry = read_geometry(path)
                assert json.dumps(geometry.info()), mutation
                cloud = model_input(geometry, model.input_points, seed=0)
                assert cloud.shape == (model.input_points, 3) and np.isfinite(cloud).all(), mutation
                valid.append(path)
            except GeometryError as error:
                refused[str(path)] = str(error)
            finally:
                signal.alarm(0)
        signal.alarm(300)
        chosen = [path for _, path in mutated if str(path) in refused or path in valid[:CLASSIFIED]]
        predictions = list(classify(chosen, model, batch_size=CLASSIFIED))  # what `geocli classify` runs
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    for path, prediction in zip(chosen, predictions):
        assert prediction.error == refused.get(str(path)), path  # both commands agree
        if prediction.error:
            assert "\n" not in prediction.error and prediction.error.startswith(f"{path}: "), prediction.error
        else:
            assert prediction.label in model.classes
    assert capfd.readouterr().err == ""  # C libraries printed nothing behind geocli's back
    assert 0.2 < len(refused) / len(mutated) < 0.95  # the mutations hit both the parsers and the data


@pytest.mark.slow
def test_console_script_on_mutated_files(mutated: list[tuple[Mutation, Path]]) -> None:
    """The real entry point: one stderr line per refused file, no traceback, exit 1, good files kept."""
    refused, kept = [], []
    for _, path in mutated:
        try:
            read_geometry(path)
            kept.append(path)
        except GeometryError:
            refused.append(path)
    chosen = [*refused[:5], *kept[:1], SAMPLE_DATA / "chair_0001.pcd"]
    for command in (["info"], ["classify", "-f", "jsonl", "-k", "1"]):
        arguments = [str(GEOCLI), *command, *map(str, chosen)]
        done = subprocess.run(arguments, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        lines = done.stderr.splitlines()
        errors = [line for line in lines if line.startswith("geocli: error: ")]
        assert [line.split(": ")[2] for line in errors] == [str(p) for p in refused[:5]]  # "geocli: error: <path>: ..."
        # anything else is a warning about a file that was used (a degenerate cloud's, say)
        others = [line for line in lines if line not in errors]
        assert all(
            line.startswith("geocli: warning: ") and line.split(": ")[2] in map(str, chosen[5:]) for line in others
        )
        records = [
            json.loads(line) for line in done.stdout.splitlines()
        ]  # classify's include the refused, with "error"
        assert [r["path"] for r in records if not r.get("error")] == [str(p) for p in chosen[5:]]
