"""`geocli segment --preview`: a PNG beside each output, coloured as labels.json says, with a legend of the parts."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
from typer.testing import CliRunner

from conftest import REPO
from geocli.cli import app
from geocli.io import read_geometry
from geocli.io.writers import Legend
from geocli.preview import preview_figure, preview_path

runner = CliRunner()


def test_segment_preview_writes_a_png_beside_each_output(tmp_path: Path) -> None:
    out = tmp_path / "labelled"
    inputs = [str(REPO / "sample_data" / name) for name in ("human_1.ply", "cow.obj")]
    segmented = runner.invoke(app, ["segment", *inputs, "--out", str(out), "--preview", "--device", "cpu"])
    assert segmented.exit_code == 0, segmented.output
    for record in map(json.loads, segmented.stdout.splitlines()):
        picture = Path(record["output"] + ".png")
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = matplotlib.image.imread(picture).shape
        assert (width, height) == (1200, 420)
    assert sorted(path.name for path in out.iterdir()) == [
        "cow.obj.ply",
        "cow.obj.ply.png",
        "human_1.ply.ply",
        "human_1.ply.ply.png",
        "labels.json",
    ]
    plain = runner.invoke(app, ["segment", inputs[0], "--out", str(tmp_path / "plain"), "--device", "cpu"])
    assert plain.exit_code == 0 and not list((tmp_path / "plain").glob("*.png"))  # only when asked


def test_the_legend_names_the_parts_present_in_the_colours_of_labels_json(tmp_path: Path) -> None:
    labelled = tmp_path / "labelled"
    sample = str(REPO / "sample_data" / "human_1.ply")
    assert runner.invoke(app, ["segment", sample, "--out", str(labelled), "--device", "cpu"]).exit_code == 0
    entries = json.loads((labelled / "labels.json").read_text())["labels"]
    output = read_geometry(labelled / "human_1.ply.ply")
    labels = output.extra["label"]
    legend = Legend("m", "", tuple(entry["name"] for entry in entries))
    figure = preview_figure(output.points, labels, legend, "a $1 scan")  # a '$' is text, not mathematics
    (box,) = figure.legends
    present, counts = np.unique(labels, return_counts=True)
    texts = [text.get_text() for text in box.get_texts()]
    assert texts == [f"{i} {entries[i]['name']} ({n:,} points)" for i, n in zip(present.tolist(), counts.tolist())]
    colours = [tuple(round(c * 255) for c in handle.get_facecolor()[:3]) for handle in box.legend_handles]
    assert colours == [tuple(entries[i]["color"]) for i in present.tolist()]
    assert any("Human/head" in text for text in texts)
    figure.savefig(tmp_path / "check.png")
    assert preview_path("out/a.ply.ply") == Path("out/a.ply.ply.png")
