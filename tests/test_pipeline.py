"""The library's one loop (geocli.pipeline) behind classify and segment, and segment's outputs as library calls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import geocli
from geocli.io import Geometry, GeometryError
from geocli.labelled import LEGEND_FILE, segment_files, write_batch_legend
from geocli.outputs import plan_outputs
from geocli.pipeline import Prepared, Timings, run

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
STAGES = {"read", "sample", "network"}


class Result:
    def __init__(self, name: str, batch: int | None = None) -> None:
        self.name, self.batch, self.timings = name, batch, Timings()


def read(item: int, name: str) -> Geometry:
    if item % 3 == 2:
        raise GeometryError(name, "unusable")
    return Geometry(path=name, points=np.zeros((1, 3)), faces=None, normals=None, colors=None)


def numbers(count: int) -> list[tuple[str, int]]:
    return [(str(i), i) for i in range(count)]


@pytest.mark.parametrize("workers", [0, 2])
def test_failures_keep_their_place_behind_the_batch_before_them(workers: int) -> None:
    batches: list[list[str]] = []

    def network(batch: list[Prepared[int]]) -> list[Result]:
        batches.append([entry.name for entry in batch])
        return [Result(entry.name, len(batches)) for entry in batch]

    results = list(
        run(numbers(11), read, lambda g: 0, network, lambda e: Result(e.name), batch_size=3, workers=workers)
    )
    assert [r.name for r in results] == [str(i) for i in range(11)]
    assert batches == [["0", "1", "3"], ["4", "6", "7"], ["9", "10"]]  # 2, 5, 8 failed
    assert [r.batch for r in results] == [1, 1, None, 1, 2, None, 2, 2, None, 3, 3]
    assert all(r.timings.network == 0 for r in results if r.batch is None)


def test_closing_the_loop_stops_reading() -> None:
    taken: list[int] = []

    def counting(item: int, name: str) -> Geometry:
        taken.append(item)
        return read(0, name)

    results = run(
        numbers(1000), counting, lambda g: 0, lambda b: [Result(e.name) for e in b], Result, batch_size=4, workers=2
    )
    assert next(results).name == "0"
    results.close()
    assert len(taken) <= 2 * 4 + 2 * 2


def test_classify_and_segment_are_generators_whose_results_carry_timings() -> None:
    inputs = [SAMPLES / "chair_0001.pcd", np.zeros((5, 2)), SAMPLES / "cow.obj"]
    predictions = geocli.classify(inputs, top_k=2, batch_size=2, device="cpu")
    segmentations = geocli.segment(inputs, device="cpu")
    for results in (predictions, segmentations):
        assert not isinstance(results, list)
        first, bad, mesh = results
        assert bad.error and bad.timings.network == 0 and "timings" not in bad.to_dict()
        for result in (first, mesh):
            assert result.error is None and "timings" not in result.to_dict()
            assert set(result.to_dict(timings=True)["timings"]) == STAGES
            assert min(result.timings.read, result.timings.sample, result.timings.network) > 0


def test_segment_files_writes_outputs_runs_hooks_and_resumes(tmp_path: Path) -> None:
    model = geocli.load_model("tinvnn-edge-psb", device="cpu")
    inputs = [str(SAMPLES / "cow_2048.ply"), str(SAMPLES / "igea_2048.xyz"), str(SAMPLES / "teapot.off")]
    out = tmp_path / "labeled"
    plan = plan_outputs(inputs, out, "csv")
    assert plan.refused == [] and list(plan.targets) == inputs
    assert write_batch_legend(out, model) == out / LEGEND_FILE
    assert json.loads((out / LEGEND_FILE).read_text())["model"] == "tinvnn-edge-psb"
    plan.targets[inputs[1]].mkdir()  # a folder where its output goes: that input alone fails
    previews: list[str] = []
    written = list(
        segment_files(plan.targets, model, fmt="csv", hooks=[lambda result, target: previews.append(result.path)])
    )
    assert [w.path for w in written] == inputs and previews == [inputs[0], inputs[2]]
    ok, failed, mesh = (w.to_dict() for w in written)
    assert ok["output"] == str(out / "cow_2048.ply.csv") and ok["points"] == 2048 and "category" in ok
    assert failed["error"].startswith(f"{inputs[1]}: cannot write {plan.targets[inputs[1]]}")
    assert (out / "teapot.off.csv").read_text().startswith("x,y,z,label,part\n")
    skipped, todo = plan.resume()
    assert [s.to_dict()["skipped"] for s in skipped] == ["output exists (--resume)"] * 3  # the folder exists too
    assert todo == {}
