"""Seeded fuzzing of the sample files, bounded for the test suite (benchmarks/fuzz.py runs 10,000).

The mutations (truncation, byte flips, header edits, chunk edits) come from tests/corpus/mutate.py,
the same code as the benchmark. Every mutated file goes through what `geocli info` and
`geocli classify` run, in-process; a few go through the real console script as well.
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

from corpus.mutate import KINDS, SAMPLE_DATA, SOURCES, Mutation, mutations
from geocli.io import GeometryError, read_geometry

SEED = 0
COUNT = 240  # 24 per sample file
CLASSIFIED = 8  # valid mutated files that also go through the network
GEOCLI = Path(sys.executable).with_name("geocli")

pytestmark = pytest.mark.slow  # fuzzing: every mutated sample through the readers and the console script


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Mutation, Path]]:
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


def test_mutated_samples_are_refused_in_one_line_or_classified(
    cases: list[tuple[Mutation, Path]], capfd: pytest.CaptureFixture[str]
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
        for mutation, path in cases:  # what `geocli info` runs, then what `classify` feeds the network
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
        chosen = [path for _, path in cases if str(path) in refused or path in valid[:CLASSIFIED]]
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
    assert 0.2 < len(refused) / len(cases) < 0.95  # the mutations hit both the parsers and the data


def test_console_script_on_mutated_files(cases: list[tuple[Mutation, Path]]) -> None:
    """The real entry point: one stderr line per refused file, no traceback, exit 1, good files kept."""
    refused, kept = [], []
    for _, path in cases:
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
        assert [line.split(": ")[2] for line in lines] == [str(p) for p in refused[:5]]  # "geocli: error: <path>: ..."
        assert all(line.startswith("geocli: error: ") for line in lines)
        records = [
            json.loads(line) for line in done.stdout.splitlines()
        ]  # classify's include the refused, with "error"
        assert [r["path"] for r in records if not r.get("error")] == [str(p) for p in chosen[5:]]
