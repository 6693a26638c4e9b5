"""The command line end to end, with the shipped classifier (a real checkpoint, loaded and checked)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from geocli.cli import app
from geocli.geometry.rotations import random_rotations

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_data"
MODEL = "fa-edge-modelnet40"

runner = CliRunner()


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, list(args), input=stdin)


def test_classify_folder_of_samples_in_raw_units() -> None:
    result = run("classify", str(SAMPLES), "-f", "json")
    assert result.exit_code == 0, result.stderr
    records = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    # ModelNet10 shapes stored in raw mesh units (coordinates up to ~100)
    assert records["chair_0001.pcd"]["label"] == "chair"
    assert records["toilet_0001.pcd"]["label"] == "toilet"
    assert records["monitor_0001.pcd"]["label"] == "monitor"
    assert {
        "teapot.obj",
        "cow.obj",
        "bunny_4k.stl",
        "cow_2048.ply",
        "igea_2048.xyz",
        "bunny_1024.npy",
    } <= records.keys()
    for record in records.values():
        assert len(record["top_k"]) == 5 and 0 < record["score"] <= 1
        assert record["top_k"][0]["label"] == record["label"]


def test_table_in_a_pipe_keeps_whole_paths(tmp_path: Path) -> None:
    """Rich assumes 80 columns when stdout is not a terminal; a long path must still come out whole."""
    deep = tmp_path / ("a_folder_name_long_enough_to_push_the_table_past_eighty_columns" * 2)
    deep.mkdir()
    scan = deep / "chair_0001.pcd"
    scan.write_bytes((SAMPLES / "chair_0001.pcd").read_bytes())
    result = runner.invoke(app, ["classify", str(scan), "-m", MODEL], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert str(scan) in result.stdout and "chair" in result.stdout


def test_prediction_does_not_depend_on_pose(tmp_path: Path) -> None:
    from geocli.io import read_geometry

    points = read_geometry(SAMPLES / "chair_0001.pcd").points
    paths = []
    for i, rotation in enumerate(random_rotations(4, "so3", seed=11).numpy()):
        path = tmp_path / f"pose{i}.npy"
        np.save(path, (points @ rotation.T * (i + 1) + i).astype(np.float32))
        paths.append(str(path))
    result = run("classify", *paths, "-f", "json", "--top-k", "40")
    assert result.exit_code == 0, result.stderr
    records = json.loads(result.stdout)
    reference = {t["label"]: t["score"] for t in records[0]["top_k"]}
    for record in records[1:]:
        assert record["label"] == records[0]["label"]
        for top in record["top_k"]:
            assert abs(top["score"] - reference[top["label"]]) < 1e-4


def test_jsonl_from_stdin_list() -> None:
    listing = "\n".join(str(SAMPLES / name) for name in ("chair_0001.pcd", "teapot.obj")) + "\n"
    result = run("classify", "-", "-f", "jsonl", stdin=listing)
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in lines] == ["chair_0001.pcd", "teapot.obj"]
    assert all({"path", "label", "score", "top_k"} <= r.keys() for r in lines)


def test_csv_output_and_glob() -> None:
    result = run("classify", str(SAMPLES / "*.pcd"), "-f", "csv", "-k", "2")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [Path(r["path"]).name for r in rows] == ["chair_0001.pcd", "monitor_0001.pcd", "toilet_0001.pcd"]
    assert all(r["label_2"] and float(r["score"]) >= float(r["score_2"]) > 0 and not r["error"] for r in rows)


def test_bad_files_are_reported_and_the_rest_classified(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    nan = tmp_path / "nan.xyz"
    nan.write_text("0 0 0\n1 nan 0\n0 1 1\n")
    missing = tmp_path / "missing.pcd"
    result = run("classify", str(empty), str(SAMPLES / "chair_0001.pcd"), str(missing), str(nan), "-f", "jsonl")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["empty.ply", "chair_0001.pcd", "missing.pcd", "nan.xyz"]
    assert [r["label"] for r in records] == [None, "chair", None, None]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3 and "Traceback" not in result.stderr
    failed = [r for r in records if r["error"]]
    for name, line, record in zip(["empty.ply", "missing.pcd", "nan.xyz"], errors, failed):
        assert name in line and line == f"geocli: error: {record['error']}"


def test_recursive_folder(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "chair.pcd").write_bytes((SAMPLES / "chair_0001.pcd").read_bytes())
    (tmp_path / "notes.md").write_text("not geometry")
    flat = run("classify", str(tmp_path), "-f", "json")
    assert flat.exit_code == 1 and "--recursive" in flat.stderr
    deep = run("classify", str(tmp_path), "--recursive", "-f", "json")
    assert [Path(r["path"]).name for r in json.loads(deep.stdout)] == ["chair.pcd"]


def test_usage_errors_exit_2() -> None:
    assert run("classify", str(SAMPLES / "chair_0001.pcd"), "--model", "no-such-model").exit_code == 2
    assert run("classify", str(SAMPLES / "chair_0001.pcd"), "--format", "xml").exit_code == 2
    if not _cuda():
        result = run("classify", str(SAMPLES / "chair_0001.pcd"), "--device", "cuda")
        assert result.exit_code == 2 and "CUDA" in result.stderr


def test_version_is_the_packages() -> None:
    import geocli

    result = run("--version")
    assert result.exit_code == 0 and result.stdout == f"geocli {geocli.__version__}\n"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_models_table_json_and_card() -> None:
    cards = json.loads(run("models", "--json").stdout)
    # Piped, and even at 80 columns, every row keeps its whole name and the last column (MB).
    table = runner.invoke(app, ["models"], env={"COLUMNS": "80"})
    assert table.exit_code == 0
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line.split()}
    for listed in cards:
        assert rows[listed["name"]][-1] == f"{listed['weights']['bytes'] / 1e6:.1f}"
    card = next(c for c in cards if c["name"] == MODEL)
    assert card["metrics"]["produced_by"] == "geocli eval"
    assert {"z/z", "z/SO3", "SO3/SO3"} <= set(card["metrics"]["protocols"])  # single-view/SO3 since it existed
    assert json.loads(run("models", MODEL, "--json").stdout)["weights"]["sha256"] == card["weights"]["sha256"]


def test_info_reports_geometry(tmp_path: Path) -> None:
    result = run("info", str(SAMPLES / "teapot.obj"), str(SAMPLES / "chair_0001.pcd"))
    assert result.exit_code == 0
    teapot, chair = (json.loads(line) for line in result.stdout.splitlines())
    assert teapot["faces"] > 0 and chair["points"] == 1024 and chair["faces"] == 0
    bad = run("info", str(tmp_path / "nothing.ply"))
    assert bad.exit_code == 1 and "nothing.ply" in bad.stderr


@pytest.mark.slow
def test_console_script_pipeline() -> None:
    """The installed entry point in a real pipeline: paths on stdin, JSON lines out."""
    exe = Path(sys.executable).with_name("geocli")
    if not exe.exists():
        pytest.fail(f"console script {exe} missing: install the package (make test does)")
    listing = f"{SAMPLES / 'toilet_0001.pcd'}\n"
    done = subprocess.run(
        [str(exe), "classify", "-", "-f", "jsonl"], input=listing, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["label"] == "toilet"


def test_learned_invariance_is_said_once_and_exact_invariance_not_at_all():
    """PaRot's invariance is learned: classify and segment say so once, with its measured agreement."""
    learned = runner.invoke(
        app, ["classify", str(SAMPLES / "cow.obj"), str(SAMPLES / "cow.obj"), "-m", "parot-modelnet40", "-f", "jsonl"]
    )
    assert learned.exit_code == 0, learned.stderr
    warnings = [line for line in learned.stderr.splitlines() if "learned its rotation invariance" in line]
    assert len(warnings) == 1 and "geocli eval" in warnings[0] and len(learned.stdout.splitlines()) == 2
    exact = runner.invoke(app, ["classify", str(SAMPLES / "cow.obj"), "-f", "jsonl"])
    assert exact.exit_code == 0 and "rotation invariance" not in exact.stderr
