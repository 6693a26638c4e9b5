"""geocli in real pipelines: stdout redirected or piped while the progress bar runs on a terminal,
one record schema for every classify format, and the errors a pipeline meets first.

The terminal is a pseudo-terminal (``pty``), so Rich draws its live progress bar exactly as it
would for a user; the inputs are the repository's sample files (11 scans and meshes, enough for
the bar, which appears from 8 files on).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import IO

import pytest
from typer.testing import CliRunner

from geocli.cli import PROGRESS_THRESHOLD, app
from geocli.defaults import DEFAULT_CLASSIFIER
from geocli.io import SUPPORTED_EXTENSIONS, read_geometry
from geocli.zoo import read_card, resolve

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
SCANS = sorted(str(p) for p in SAMPLES.iterdir() if p.suffix in SUPPORTED_EXTENSIONS)
GEOCLI = Path(sys.executable).with_name("geocli")
FIELDS = ["path", "label", "score", "top_k", "points", "source_points", "error", "warnings", "model"]
NETWORK_POINTS = read_card(resolve(DEFAULT_CLASSIFIER)[0])["input_points"]  # the default classifier's input size

runner = CliRunner()


def on_terminal(args: list[str], stdout: int | IO[bytes] | None, columns: int = 120) -> tuple[int, str]:
    """Run the geocli console script with stderr on a pseudo-terminal, and stdout there too when ``stdout`` is None.

    Returns the exit code and everything the terminal received. The terminal is read while
    the command runs: a pseudo-terminal holds a few kilobytes, and a full one blocks the writer.
    Rich wraps the lines it prints above the bar at the terminal's width, so tests that read
    whole lines back from the screen ask for a wide one.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {key: value for key, value in os.environ.items() if not key.startswith("TTY_") and key != "COLUMNS"}
    env.update(TERM="xterm-256color", OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        [str(GEOCLI), *args],
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout is None else stdout,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    received, deadline = bytearray(), time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the command and its children have closed the terminal
                    break
                if not chunk:
                    break
                received += chunk
        return process.wait(timeout=max(1.0, deadline - time.monotonic())), received.decode(errors="replace")
    finally:
        process.kill()
        os.close(master)


def shows_progress(terminal: str, label: str) -> bool:
    return label in terminal and "━" in terminal


def screen(output: str) -> list[str]:
    """The non-blank lines a terminal shows after ``output``: carriage return, newline, cursor up
    and erase line are all of a terminal that Rich's transient live display uses."""
    lines, row, column = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", output):
        if token == "\r":
            column = 0
        elif token == "\n":
            row += 1
            lines += [""] * (row + 1 - len(lines))
        elif token.endswith("A") and token.startswith("\x1b["):
            row = max(0, row - int(token[2:-1] or 1))
        elif token == "\x1b[2K":
            lines[row] = ""
        elif not token.startswith("\x1b["):  # text (colours and cursor visibility change nothing here)
            line = lines[row].ljust(column)
            lines[row] = line[:column] + token + line[column + len(token) :]
            column += len(token)
    return [line.rstrip() for line in lines if line.strip()]


def test_the_samples_are_enough_for_the_progress_bar() -> None:
    assert len(SCANS) >= PROGRESS_THRESHOLD


@pytest.mark.slow
@pytest.mark.parametrize("output_format, into", [("jsonl", "file"), ("csv", "pipe")])
def test_classify_records_reach_redirected_stdout_while_the_bar_shows(
    output_format: str, into: str, tmp_path: Path
) -> None:
    """`geocli classify sample_data/ -f jsonl > out.jsonl` got nothing (Rich's display took stdout to the terminal),
    and `| wc -l` counted only the CSV header."""
    unsupported = str(SAMPLES / "README.md")  # named explicitly: one error line, and a record
    args = ["classify", *SCANS, unsupported, "-f", output_format, "-k", "2"]
    if into == "file":
        with open(tmp_path / "out", "wb") as out:
            code, terminal = on_terminal(args, out, columns=1000)
        text = (tmp_path / "out").read_text()
    else:
        reader, writer = os.pipe()
        code, terminal = on_terminal(args, writer, columns=1000)  # 12 short records fit in a pipe's buffer
        os.close(writer)
        with open(reader) as pipe:
            text = pipe.read()
    assert code == 1
    assert shows_progress(terminal, "classifying")
    assert not any(path in terminal for path in SCANS)  # no record leaked onto the terminal
    assert screen(terminal) == [
        f"geocli: error: {unsupported}: unsupported extension '.md' (supported: {' '.join(SUPPORTED_EXTENSIONS)})"
    ]
    if output_format == "jsonl":
        records = [json.loads(line) for line in text.splitlines()]
    else:
        records = list(csv.DictReader(io.StringIO(text)))
    assert [r["path"] for r in records] == [*SCANS, unsupported]
    assert all(r["label"] and not r["error"] for r in records[:-1]) and records[-1]["error"]


@pytest.mark.slow
def test_segment_lines_reach_redirected_stdout_while_the_bar_shows(tmp_path: Path) -> None:
    with open(tmp_path / "out.jsonl", "wb") as out:
        code, terminal = on_terminal(["segment", str(SAMPLES), "--out", str(tmp_path / "labeled")], out)
    assert code == 0
    assert shows_progress(terminal, "segmenting") and screen(terminal) == []
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["input"] for line in lines] == SCANS
    for line in lines:
        assert Path(line["output"]).is_file() and sum(line["parts"].values()) == line["points"] > 0


@pytest.mark.slow
def test_records_print_above_the_bar_on_a_shared_terminal() -> None:
    """Stdout on the same terminal as the bar: every record ends up on a line of its own, the bar gone."""
    code, terminal = on_terminal(["classify", *SCANS, "-f", "jsonl", "-k", "1"], None, columns=1000)
    assert code == 0 and shows_progress(terminal, "classifying")
    records = [json.loads(line) for line in screen(terminal)]
    assert [r["path"] for r in records] == SCANS


# --- one record schema: table, json, jsonl, csv -------------------------------------------------


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two real files and one that cannot be read: every format must show all three."""
    folder = tmp_path_factory.mktemp("batch")
    (folder / "empty.ply").write_bytes(b"")
    return [str(SAMPLES / "chair_0001.pcd"), str(folder / "empty.ply"), str(SAMPLES / "teapot.obj")]


def classify(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["classify", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_and_jsonl_hold_every_input_with_the_same_fields(batch: list[str]) -> None:
    code, out, err = classify(*batch, "-f", "json", "-k", "3")
    assert code == 1 and out.endswith("]\n")
    assert err == f"geocli: error: {batch[1]}: file is empty\n"
    records = json.loads(out)
    assert [r["path"] for r in records] == batch and all(list(r) == FIELDS for r in records)
    chair, empty, teapot = records
    assert chair["label"] == chair["top_k"][0]["label"] == "chair" and len(chair["top_k"]) == 3
    assert (chair["points"], chair["source_points"]) == (NETWORK_POINTS, 1024)
    assert teapot["source_points"] == len(read_geometry(batch[2]).points) != NETWORK_POINTS == teapot["points"]
    assert empty == {
        **dict.fromkeys(FIELDS),
        **{"path": batch[1], "top_k": [], "warnings": []},
        "error": f"{batch[1]}: file is empty",
        "model": DEFAULT_CLASSIFIER,
    }
    assert chair["model"] == teapot["model"] == DEFAULT_CLASSIFIER
    assert chair["error"] is None and teapot["error"] is None

    code, out, err = classify(*batch, "-f", "jsonl", "-k", "3")
    assert code == 1 and err == f"geocli: error: {batch[1]}: file is empty\n"
    assert [json.loads(line) for line in out.splitlines()] == records


def test_csv_spreads_top_k_over_columns_and_keeps_failures(batch: list[str]) -> None:
    records = json.loads(classify(*batch, "-f", "json", "-k", "3")[1])
    code, out, _ = classify(*batch, "-f", "csv", "-k", "3")
    assert code == 1
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == [
        "path",
        "label",
        "score",
        "label_2",
        "score_2",
        "label_3",
        "score_3",
        "points",
        "source_points",
        "error",
        "model",
    ]
    for row, record in zip(rows[1:], records, strict=True):
        runners_up = [str(value) for top in record["top_k"][1:] for value in (top["label"], top["score"])] or [
            "",
            "",
            "",
            "",
        ]
        expected = [
            record["path"],
            record["label"],
            record["score"],
            *runners_up,
            record["points"],
            record["source_points"],
            record["error"],
            record["model"],
        ]
        assert row == ["" if value is None else str(value) for value in expected]


def test_table_shows_every_runner_up_and_the_failures(batch: list[str]) -> None:
    records = json.loads(classify(*batch, "-f", "json", "-k", "3")[1])
    code, out, _ = classify(*batch, "-k", "3")
    assert code == 1
    for record in records:
        row = next(line for line in out.splitlines() if record["path"] in line)
        if record["error"]:
            assert record["error"] in row
            continue
        assert all(f"{top['label']} ({top['score']:.3f})" in row for top in record["top_k"][1:])
        assert re.search(rf"\b{record['points']}\b.*\b{record['source_points']}\b", row)


# --- what a pipeline meets first: bad options, odd folders --------------------------------------


def test_unknown_device_is_one_line_naming_the_choices() -> None:
    code, out, err = classify(SCANS[0], "--device", "gpu")
    assert (code, out) == (2, "")
    assert err == "geocli: error: unknown device 'gpu'; choose auto, cpu, cuda or cuda:N\n"


def test_max_points_error_names_the_option() -> None:
    code, out, err = classify(str(SAMPLES / "chair_0001.pcd"), "--max-points", "100", "-f", "jsonl")
    assert code == 1
    assert "more than the max_points limit of 100" in err and "--max-points" in err and err.count("\n") == 1
    assert json.loads(out)["error"] == err.removeprefix("geocli: error: ").rstrip("\n")


@pytest.mark.parametrize("command", ["classify", "segment", "info", "models", "train", "export", "eval"])
def test_help_shows_no_type_after_flags(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--help" in result.stdout
    assert "<bool>" not in result.stdout


def test_folder_walk_skips_notes_but_a_named_note_is_an_error(tmp_path: Path) -> None:
    """notes.txt beside the scans failed the batch (.txt is a point-table extension) while README.md was skipped."""
    shutil.copy(SAMPLES / "chair_0001.pcd", tmp_path)
    shutil.copy(SAMPLES / "igea_2048.xyz", tmp_path / "igea_2048.txt")  # a real point table named .txt
    (tmp_path / "notes.txt").write_text("Scanned on Tuesday, 3 passes.\n1 2 3\n")
    (tmp_path / "README.md").write_text("# scans\n")
    code, out, err = classify(str(tmp_path), "-f", "jsonl", "-k", "1")
    assert (code, err) == (0, "")
    assert [Path(json.loads(line)["path"]).name for line in out.splitlines()] == ["chair_0001.pcd", "igea_2048.txt"]
    code, out, err = classify(str(tmp_path / "notes.txt"), "-f", "jsonl")
    assert code == 1 and err.startswith(f"geocli: error: {tmp_path / 'notes.txt'}: ") and err.count("\n") == 1


def test_a_folder_with_nothing_to_read_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# nothing here yet\n")
    (tmp_path / "sub").mkdir()
    code, out, err = classify(str(tmp_path))
    assert code == 1 and "label" in out  # the table header, and the folder's row
    hint = "(--recursive also searches sub-folders)"
    assert err == f"geocli: error: {tmp_path}: no point cloud or mesh file in this folder {hint}\n"
    code, out, err = classify(str(tmp_path), "--recursive", "-f", "json")
    assert (
        code == 1 and json.loads(out)[0]["error"] == f"{tmp_path}: no point cloud or mesh file in this folder or below"
    )
    assert err.count("\n") == 1
