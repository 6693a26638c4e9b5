"""Preparing files ahead of the network (``--workers``): same records, input order, a bounded window."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from geocli.cli import app
from geocli.io import SUPPORTED_EXTENSIONS
from geocli.prefetch import prefetch

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"

runner = CliRunner()


def mixed_folder(folder: Path) -> Path:
    """Every sample format twice, with unusable files between them (empty, NaN, garbage) and one that warns."""
    folder.mkdir()
    for copy in range(2):
        for sample in sorted(SAMPLES.iterdir()):
            if sample.suffix in SUPPORTED_EXTENSIONS:
                (folder / f"{copy}_{sample.name}").write_bytes(sample.read_bytes())
    (folder / "0_empty.ply").write_bytes(b"")
    (folder / "1_nan.xyz").write_text("0 0 0\n1 nan 0\n0 1 1\n")
    (folder / "0_garbage.pcd").write_bytes(b"\x00\xffnot a point cloud")
    (folder / "1_three.xyz").write_text("0 0 0\n1 0 0\n0 1 0\n")  # usable, with warnings
    return folder


def counted(items: list[int], taken: list[int]) -> Iterator[int]:
    for item in items:
        taken.append(item)
        yield item


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_prefetch_keeps_order_and_takes_at_most_the_window_ahead(workers: int) -> None:
    window = 4
    taken: list[int] = []
    delays = random.Random(0)

    def slow_square(item: int) -> int:
        time.sleep(delays.random() / 200)  # later items often finish first
        return item * item

    results = []
    for result in prefetch(slow_square, counted(list(range(40)), taken), workers, window):
        # taken but not yet handed back, this one included: never more than the window (one at a time without workers)
        assert len(taken) - len(results) <= (window if workers else 1)
        results.append(result)
    assert results == [i * i for i in range(40)]


def test_closing_prefetch_early_stops_taking_and_ends_its_threads() -> None:
    taken: list[int] = []
    before = threading.active_count()
    results = prefetch(lambda item: item, counted(list(range(1000)), taken), 2, 5)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    results.close()
    assert len(taken) <= 3 + 5 and threading.active_count() == before


def test_an_unexpected_error_is_raised_at_its_turn() -> None:
    def fail_on_three(item: int) -> int:
        if item == 3:
            raise RuntimeError("three")
        return item

    seen = []
    with pytest.raises(RuntimeError, match="three"):
        for item in prefetch(fail_on_three, range(10), 2, 4):
            seen.append(item)
    assert seen == [0, 1, 2]


def test_classify_holds_at_most_two_batches_and_two_files_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    import geocli.api

    prepared: list[str] = []
    prepare = geocli.api.prepare_input

    def counting(geometry, n, seed):  # type: ignore[no-untyped-def]
        prepared.append(geometry.path)
        return prepare(geometry, n, seed)

    monkeypatch.setattr(geocli.api, "prepare_input", counting)
    files = [str(SAMPLES / "chair_0001.pcd"), str(SAMPLES / "cow_2048.ply")] * 15
    model = geocli.api.load_model(device="cpu")
    given = 0
    for prediction in geocli.api.classify(files, model, batch_size=4, workers=2):
        assert prediction.path == files[given]
        given += 1
        # the batch being handed out, and the next batch and two files per worker being prepared meanwhile
        assert len(prepared) - given <= 2 * 4 + 2 * 2
    assert given == len(prepared) == 30


def test_classify_workers_give_the_same_records_in_the_same_order(tmp_path: Path) -> None:
    folder = mixed_folder(tmp_path / "scans")
    runs = {
        workers: runner.invoke(app, ["classify", str(folder), "-f", "jsonl", "--batch-size", "3", "--workers", workers])
        for workers in ("0", "2")
    }
    assert runs["0"].exit_code == runs["2"].exit_code == 1
    assert runs["2"].stdout == runs["0"].stdout  # labels and scores bit for bit, errors and warnings alike
    assert runs["2"].stderr == runs["0"].stderr
    records = [json.loads(line) for line in runs["2"].stdout.splitlines()]
    assert [Path(r["path"]).name for r in records] == sorted(p.name for p in folder.iterdir())
    assert sum(r["error"] is not None for r in records) == 3
    assert next(r for r in records if r["path"].endswith("three.xyz"))["warnings"]


def test_segment_workers_give_the_same_outputs(tmp_path: Path) -> None:
    folder = mixed_folder(tmp_path / "scans")
    runs = {}
    for workers in ("0", "2"):
        out = tmp_path / f"out{workers}"
        runs[workers] = runner.invoke(app, ["segment", str(folder), "--out", str(out), "--workers", workers])
    assert runs["0"].exit_code == runs["2"].exit_code == 1
    assert runs["2"].stderr == runs["0"].stderr
    assert runs["2"].stdout == runs["0"].stdout.replace(str(tmp_path / "out0"), str(tmp_path / "out2"))
    written = sorted(p.name for p in (tmp_path / "out0").iterdir())
    assert len(written) == 2 * 11 + 1 + 1  # every usable scan, and labels.json
    for name in written:
        assert (tmp_path / "out2" / name).read_bytes() == (tmp_path / "out0" / name).read_bytes()


def test_check_and_align_workers_give_the_same_results(tmp_path: Path) -> None:
    folder = mixed_folder(tmp_path / "scans")
    # check prints a record for every input, the 3 unusable ones included; align only its outputs
    for command, extra, lines in (("check", ["-f", "jsonl", "-n", "2"], 2 * 11 + 4), ("align", [], 2 * 11 + 1)):
        runs = {}
        for workers in ("0", "2"):
            out = ["--out", str(tmp_path / f"{command}{workers}")] if command == "align" else []
            runs[workers] = runner.invoke(app, [command, str(folder), *extra, *out, "--workers", workers])
        assert runs["0"].exit_code == runs["2"].exit_code == 1
        assert runs["2"].stderr == runs["0"].stderr
        assert runs["2"].stdout == runs["0"].stdout.replace(f"{command}0", f"{command}2")
        assert len(runs["0"].stdout.splitlines()) == lines
