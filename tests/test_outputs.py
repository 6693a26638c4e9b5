"""Issue 16, segment's outputs: one name per input whatever else is in the batch, and no output lost.

Names and batches are generated from seeds: stems with dots and underscores, every
readable extension in random case, nested folders; collisions are made by changing the
case of a name or of a folder, never by copying the review's examples.
"""

from __future__ import annotations

import copy
import pickle
import string
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from geocli.cli import app
from geocli.discovery import FoundFile, expand_inputs
from geocli.io import SUPPORTED_EXTENSIONS
from geocli.outputs import OutputError, output_path, output_paths

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
LETTERS = string.ascii_letters + string.digits + "._-"


def random_name(rng: np.random.Generator) -> str:
    stem = "".join(rng.choice(list(LETTERS), size=int(rng.integers(1, 9))))
    extension = str(rng.choice(SUPPORTED_EXTENSIONS)).lstrip(".")
    return f"{stem}.{''.join(c.upper() if rng.random() < 0.3 else c for c in extension)}"


def random_batch(rng: np.random.Generator, base: Path, size: int) -> list[str]:
    """Paths in up to four folders, no two of whose names are one on a case-insensitive system."""
    batch: dict[str, str] = {}
    while len(batch) < size:
        name = random_name(rng)
        batch.setdefault(name.casefold(), str(base / str(rng.choice(["", "x", "x/y", "z"])) / name))
    return list(batch.values())


def swap_case(rng: np.random.Generator, text: str) -> str:
    """``text`` with the case of at least one letter changed."""
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    chosen = set(rng.choice(letters, size=int(rng.integers(1, len(letters) + 1)), replace=False).tolist())
    return "".join(c.swapcase() if i in chosen else c for i, c in enumerate(text))


def test_an_output_name_depends_on_its_input_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    out = tmp_path / "out"
    for _ in range(30):
        batch = random_batch(rng, tmp_path / "in", int(rng.integers(2, 25)))
        targets = output_paths(batch, out, "ply")
        part = [p for p in batch if rng.random() < 0.5]
        assert output_paths(part, out, "ply") == {p: targets[p] for p in part}
        for path in batch:
            assert targets[path] == output_path(path, out, "ply") == out / f"{Path(path).name}.ply"


def test_two_inputs_for_one_output_are_refused_up_front(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        batch = random_batch(rng, tmp_path / "in", int(rng.integers(1, 12)))
        victim = str(rng.choice(batch))
        twin = str(Path(victim).parent / swap_case(rng, Path(victim).name))
        shuffled = [str(p) for p in rng.permutation([*batch, twin])]
        with pytest.raises(OutputError) as caught:
            output_paths(shuffled, tmp_path / "out", "ply")
        message = str(caught.value)
        assert "\n" not in message and victim in message and twin in message and "differ only in case" in message


def test_folders_that_differ_in_case_collide_too(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for _ in range(10):
        name, folder = random_name(rng), "".join(rng.choice(list(string.ascii_lowercase), size=5))
        first, second = (
            FoundFile(f"{tmp_path}/{folder}/{name}", str(tmp_path)),
            FoundFile(f"{tmp_path}/{swap_case(rng, folder)}/{name}", str(tmp_path)),
        )
        with pytest.raises(OutputError, match="map to one output"):
            output_paths([first, second], tmp_path / "out", "npy")


def test_the_same_file_named_twice_is_no_collision(tmp_path: Path) -> None:
    (tmp_path / "scan.ply").write_bytes(b"")
    (tmp_path / "link.ply").symlink_to(tmp_path / "scan.ply")
    twice = [str(tmp_path / "scan.ply"), str(tmp_path / "." / "scan.ply")]
    assert set(output_paths(twice, tmp_path / "out", "ply").values()) == {tmp_path / "out" / "scan.ply.ply"}
    assert len(set(output_paths([twice[0], str(tmp_path / "link.ply")], tmp_path / "out", "ply").values())) == 2


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    afile = tmp_path / random_name(rng)
    afile.write_text("not a folder")
    for out in (afile, afile / "below", afile / "below" / "deeper"):
        with pytest.raises(OutputError, match="a file, not a folder"):
            output_paths([str(SAMPLES / "teapot.obj")], out, "ply")
        with pytest.raises(OutputError):
            output_paths([], out, "ply")
    assert output_paths([str(SAMPLES / "teapot.obj")], tmp_path / "new" / "folder", "ply")


def test_an_output_onto_an_input_is_refused_for_that_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    name = random_name(rng)
    scan, shadow = tmp_path / name, tmp_path / f"{name}.ply"
    targets = output_paths([str(scan), str(shadow)], tmp_path, "ply")
    assert "would overwrite this input" in targets[str(scan)] and targets[str(shadow)] == tmp_path / f"{name}.ply.ply"


def make_tree(rng: np.random.Generator, root: Path, files: int) -> list[Path]:
    made = []
    for path in random_batch(rng, root, files):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("0 0 0\n")
        made.append(Path(path))
    return made


def test_found_files_mirror_their_folder_whatever_else_is_named(tmp_path: Path) -> None:
    """A folder's files get the same outputs alone, beside another folder, and through a glob."""
    rng = np.random.default_rng(9)
    first, second = make_tree(rng, tmp_path / "one", 12), make_tree(rng, tmp_path / "two", 5)
    out = tmp_path / "out"
    expected = {str(f): out / f"{f.relative_to(tmp_path / 'one')}.ply" for f in first}
    for arguments, recursive in [(["one"], True), (["one", "two"], True), (["one/**/*"], False), (["one/*"], False)]:
        found = expand_inputs([f"{tmp_path}/{a}" for a in arguments], SUPPORTED_EXTENSIONS, recursive=recursive)
        mine = [f for f in found if f in expected]
        assert mine and output_paths(mine, out, "ply") == {p: expected[p] for p in mine}, arguments
    beside = expand_inputs([str(tmp_path / "one"), str(tmp_path / "two")], SUPPORTED_EXTENSIONS, recursive=True)
    assert {output_path(f, out, "ply") for f in beside if f not in expected} == {
        out / f"{f.relative_to(tmp_path / 'two')}.ply" for f in second
    }


def test_found_file_keeps_its_root_through_copies() -> None:
    found = FoundFile("scans/sub/a.ply", "scans")
    for clone in (copy.copy(found), pickle.loads(pickle.dumps(found))):
        assert clone == "scans/sub/a.ply" and clone.root == "scans" and isinstance(clone, FoundFile)


def test_segment_writes_nothing_when_two_inputs_share_an_output(tmp_path: Path) -> None:
    """Through the command line: one error line, exit 2, no output and no record."""
    rng = np.random.default_rng(10)
    scans = tmp_path / "scans"
    scans.mkdir()
    name = random_name(rng).rsplit(".", 1)[0] + ".ply"
    twin = swap_case(rng, name)
    for path in (name, twin):
        (scans / path).write_bytes((SAMPLES / "cow_2048.ply").read_bytes())
    result = CliRunner().invoke(
        app, ["segment", str(scans / name), str(scans / twin), "--out", str(tmp_path / "out"), "--device", "cpu"]
    )
    assert result.exit_code == 2 and result.stdout == "" and not (tmp_path / "out").exists()
    assert result.stderr.startswith("geocli: error: ") and result.stderr.count("\n") == 1, result.stderr
    afile = tmp_path / "afile"
    afile.write_text("")
    result = CliRunner().invoke(app, ["segment", str(scans / name), "--out", str(afile), "--device", "cpu"])
    assert result.exit_code == 2 and result.stdout == "" and afile.read_text() == ""
    assert result.stderr.startswith("geocli: error: ") and result.stderr.count("\n") == 1, result.stderr
