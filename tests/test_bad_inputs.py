"""Bad input never crashes geocli: the generated corpus through the readers, `info` and `classify`.

Every bad file must give one line on stderr naming the file and the problem, no traceback,
exit code 1, and must not stop the good files of the same batch. Degenerate but valid clouds
(collinear, planar, symmetric) are classified, with the same label on every run and pose.
The corpus is generated into tmp_path by tests/corpus/make_corpus.py.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from corpus import deadline, succeeded
from corpus.make_corpus import DIRECTORY, UNREADABLE, build, degenerate_clouds, unreadable_for_this_user
from geocli.cli import app
from geocli.io import GeometryError, read_geometry, readers

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_data"
GOOD = [SAMPLES / "chair_0001.pcd", SAMPLES / "teapot.obj", SAMPLES / "cow_2048.ply"]
GEOCLI = Path(sys.executable).with_name("geocli")
PREFIX = "geocli: error: "


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, build(folder)


def _bad(expected: dict[str, str | None]) -> dict[str, str]:
    """The cases that must be refused; the chmod-000 one only where permissions bind this user."""
    return {n: e for n, e in expected.items() if e is not None and (n != UNREADABLE or unreadable_for_this_user())}


def _valid(expected: dict[str, str | None]) -> list[str]:
    valid = [n for n, e in expected.items() if e is None]
    return valid + ([] if unreadable_for_this_user() else [UNREADABLE])  # root reads the chmod-000 file


def _check_errors(stderr: str, expected: dict[str, str], folder: Path) -> None:
    """Exactly one ``geocli: error: <path>: <problem>`` line per bad file, and nothing else.

    Warning lines are not errors: degenerate clouds (a line, a plane, a few points) are
    classified, with a warning that the label may mean little.
    """
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if not line.startswith("geocli: warning: ")]
    assert all(line.startswith(PREFIX) for line in lines), stderr
    reported = {line[len(PREFIX) :].split(": ", 1)[0]: line for line in lines}
    assert len(reported) == len(lines), "a file was reported twice"
    assert sorted(reported) == sorted(str(folder / name) for name in expected)
    for name, text in expected.items():
        assert text in reported[str(folder / name)], (name, reported[str(folder / name)])


# --- the readers --------------------------------------------------------------------------------


def test_every_corpus_file_is_refused_with_its_reason_or_read(corpus: tuple[Path, dict[str, str | None]]) -> None:
    folder, expected = corpus
    for name, text in _bad(expected).items():
        path = folder / name
        with deadline(30), pytest.raises(GeometryError) as caught:
            read_geometry(path)
        message = str(caught.value)
        assert "\n" not in message and message.startswith(f"{path}: ") and text in message, (name, message)
    for name in _valid(expected):
        geometry = read_geometry(folder / name)
        assert len(np.unique(geometry.points, axis=0)) >= 2


def test_file_names_with_newlines_and_undecodable_bytes_give_one_printable_line(tmp_path: Path) -> None:
    cases = {
        b"two\nlines.xyz": "two\\nlines.xyz",
        b"latin1-\xe9t\xe9.xyz": "latin1-\\xe9t\\xe9.xyz",  # not UTF-8: undecodable bytes
        b"tab\tcr\r.ply": "tab\\tcr\\r.ply",
    }
    for raw, shown in cases.items():
        path = os.fsdecode(os.path.join(os.fsencode(tmp_path), raw))
        Path(path).write_bytes(b"")
        with pytest.raises(GeometryError) as caught:
            read_geometry(path)
        assert str(caught.value) == f"{tmp_path}/{shown}: file is empty"
        assert caught.value.path == path  # the exact name stays available to callers


def test_folder_scans_and_globs_list_loops_without_following_them(corpus: tuple[Path, dict[str, str | None]]) -> None:
    """Link loops: ``DirEntry.is_dir`` raised ELOOP, and ``glob(recursive=True)`` followed ``folder_loop`` for hours."""
    from geocli.discovery import expand_inputs
    from geocli.io import SUPPORTED_EXTENSIONS

    folder, expected = corpus
    files = sorted(str(folder / n) for n in expected if n != DIRECTORY)
    with deadline(30):
        flat = list(expand_inputs([str(folder)], SUPPORTED_EXTENSIONS))
        deep = list(expand_inputs([str(folder)], SUPPORTED_EXTENSIONS, recursive=True))
        globbed = list(expand_inputs([f"{folder}/**/*.*"], SUPPORTED_EXTENSIONS))
    # folder_loop and directory.ply are folders: not listed (a glob match that is a folder is walked: it is empty)
    assert sorted(flat) == sorted(deep) == sorted(globbed) == files


# --- the commands, in-process (the same code as the console script) --------------------------


def test_info_reports_each_bad_file_and_prints_the_good_ones(
    corpus: tuple[Path, dict[str, str | None]], capfd: pytest.CaptureFixture[str]
) -> None:
    folder, expected = corpus
    bad = _bad(expected)
    names = sorted(set(bad) | set(_valid(expected)))
    paths = [str(folder / n) for n in names]
    batch = [*paths[: len(paths) // 2], *map(str, GOOD), *paths[len(paths) // 2 :]]  # good files amid the bad
    with deadline(120):
        result = CliRunner().invoke(app, ["info", *batch])
    assert result.exit_code == 1
    printed = succeeded(result.stdout)
    assert printed == [p for p in batch if Path(p).name not in bad]
    walked = {DIRECTORY: "no point cloud or mesh file in this folder"} if DIRECTORY in bad else {}  # as by classify
    _check_errors(result.stderr, {**bad, **walked}, folder)
    assert capfd.readouterr().err == ""  # nothing printed behind Python's back by C libraries


@pytest.mark.slow
def test_each_bad_file_on_its_own(corpus: tuple[Path, dict[str, str | None]]) -> None:
    """Alone on the command line: one error line, nothing on stdout, exit code 1, for both commands."""
    folder, expected = corpus
    for name, text in _bad(expected).items():
        path = str(folder / name)
        for command in (["info", "-"], ["classify", "-", "-f", "jsonl"]):  # '-': a folder name is read, not walked
            with deadline(60):
                result = CliRunner().invoke(app, command, input=f"{path}\n")
            assert (result.exit_code, succeeded(result.stdout)) == (1, []), (name, command)
            assert result.stderr.startswith(f"{PREFIX}{path}: ") and result.stderr.count("\n") == 1, result.stderr
            assert text in result.stderr


def test_classify_reports_each_bad_file_from_a_pipeline_list(
    corpus: tuple[Path, dict[str, str | None]], capfd: pytest.CaptureFixture[str]
) -> None:
    """`find ... | geocli classify -`: every listed path reaches the reader, the folder named .ply too."""
    folder, expected = corpus
    bad = _bad(expected)
    listing = "".join(f"{folder / n}\n" for n in sorted(set(bad) | set(_valid(expected))))
    with deadline(300):
        result = CliRunner().invoke(app, ["classify", "-", *map(str, GOOD), "-f", "jsonl", "-k", "1"], input=listing)
    assert result.exit_code == 1
    classified = {Path(p).name for p in succeeded(result.stdout)}
    assert classified == set(_valid(expected)) | {p.name for p in GOOD}
    _check_errors(result.stderr, bad, folder)
    assert capfd.readouterr().err == ""


def test_max_points_option_refuses_large_files_in_a_batch() -> None:
    result = CliRunner().invoke(app, ["classify", *map(str, GOOD), "--max-points", "1500", "-f", "jsonl"])
    assert result.exit_code == 1
    assert [Path(p).name for p in succeeded(result.stdout)] == ["chair_0001.pcd"]
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all("more than the max_points limit of 1,500" in line for line in lines)


# --- the real console script: no traceback, no hang, nothing else on stderr ----------------------


@pytest.mark.slow
def test_console_script_scans_the_corpus_folder_recursively(tmp_path: Path) -> None:
    """Folder links back to the corpus are not followed, file link loops are reported, nothing hangs."""
    scan = tmp_path / "scan"
    scan.mkdir()
    expected = build(scan)
    (scan / "nested").mkdir()
    shutil.copy(GOOD[0], scan / "nested")
    os.symlink("..", scan / "nested" / "up")  # a second loop, one level down
    command = [str(GEOCLI), "classify", str(scan), "-r", "-f", "jsonl", "-k", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1
    classified = sorted(Path(p).name for p in succeeded(done.stdout))
    assert classified == sorted([*_valid(expected), GOOD[0].name])
    bad = {n: e for n, e in _bad(expected).items() if n != DIRECTORY}  # a folder is walked, not read
    _check_errors(done.stderr, bad, scan)


def _without_read_override() -> None:
    """In the child: drop root's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set.

    Root reads chmod-000 files because of these two capabilities; without them in the bounding
    set, the exec'd geocli runs as root but the kernel enforces file permissions on it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.slow
def test_unreadable_file_through_info_and_classify(tmp_path: Path) -> None:
    """A really unreadable file: as root, the commands run without the capability to bypass permissions."""
    locked = tmp_path / UNREADABLE
    np.savetxt(locked, np.eye(3))
    locked.chmod(0)
    preexec = None
    if not unreadable_for_this_user():
        preexec = _without_read_override
        probe = subprocess.run(["cat", str(locked)], preexec_fn=preexec, capture_output=True, check=False)
        if probe.returncode == 0:
            pytest.skip("running as root, and root's capability to read any file cannot be dropped here")
    for command in (["info"], ["classify", "-f", "jsonl"]):
        done = subprocess.run(
            [str(GEOCLI), *command, str(GOOD[0]), str(locked)],
            preexec_fn=preexec,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr == f"{PREFIX}{locked}: permission denied\n"
        assert succeeded(done.stdout) == [str(GOOD[0])]


# --- the max_points limit, before the big allocation --------------------------------------------


def _write_every_format(folder: Path) -> list[Path]:
    """A 200-vertex cloud or mesh in every format that can state (or be counted for) its size."""
    import laspy
    import open3d as o3d
    import trimesh

    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 3))
    faces = np.array([[i, i + 1, i + 2] for i in range(198)])
    mesh = trimesh.Trimesh(points, faces, process=False)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    o3d.io.write_point_cloud(str(folder / "cloud.ply"), cloud)
    o3d.io.write_point_cloud(str(folder / "ascii.ply"), cloud, write_ascii=True)
    o3d.io.write_point_cloud(str(folder / "cloud.pcd"), cloud)
    o3d.io.write_point_cloud(str(folder / "ascii.pcd"), cloud, write_ascii=True)
    o3d.io.write_point_cloud(str(folder / "compressed.pcd"), cloud, compressed=True)
    for name, file_type in [("mesh.ply", "ply"), ("mesh.off", "off"), ("mesh.obj", "obj"), ("binary.stl", "stl")]:
        mesh.export(folder / name, file_type=file_type)
    mesh.export(folder / "ascii.stl", file_type="stl_ascii")
    np.save(folder / "cloud.npy", points)
    np.savez(folder / "cloud.npz", points=points)
    las = laspy.LasData(laspy.LasHeader(point_format=3, version="1.2"))
    las.x, las.y, las.z = points.T
    las.write(folder / "cloud.las")
    return sorted(folder.iterdir())


def test_max_points_is_enforced_for_every_format_before_the_backend_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import laspy
    import trimesh

    from geocli.io import meshes, pcd, ply

    files = _write_every_format(tmp_path)
    for path in files:
        assert len(read_geometry(path).points) >= 200, path  # a valid file, read whole without the limit

    def data_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data of a file over the limit were read")

    # Everything that reads (and allocates for) the data, after the header: geocli's parsers, numpy, the backends.
    readers = [(ply, "read_ply"), (pcd, "_read_columns"), (meshes, "array"), (meshes, "_ascii_stl_corners"),
               (np, "frombuffer"), (np, "loadtxt"), (np, "load"), (trimesh, "load_scene"),
               (laspy.LasReader, "read")]  # fmt: skip
    for owner, name in readers:
        monkeypatch.setattr(owner, name, data_read)
    for path in sorted(files, key=lambda p: p.suffix == ".npz"):
        if path.suffix == ".npz":
            monkeypatch.undo()  # last: NPZ headers live inside the zip archive that np.load opens
        message = str(pytest.raises(GeometryError, read_geometry, path, max_points=150).value)
        assert "more than the max_points limit of 150" in message, message
        assert message.startswith(f"{path}: has 200 ") or path.suffix == ".stl", message  # STL: 3 per facet


def test_max_points_default_is_documented() -> None:
    from geocli.io import DEFAULT_MAX_POINTS

    assert DEFAULT_MAX_POINTS == 5_000_000
    assert "5,000,000 points" in (REPO / "README.md").read_text()


# --- degenerate but valid clouds ---------------------------------------------------------------

_DEGENERATE = degenerate_clouds()
_SYMMETRIC_FRAMES = pytest.mark.xfail(
    strict=False,  # the small default model shipped until session 8 changed its label, the wide one does not
    reason="frames of a shape with cubic symmetry are arbitrary (equal 2nd and 4th moments): the label may change "
    "with pose, as the model's views of the cube in those frames happen to agree or not",
)


@pytest.fixture(scope="module")
def model():
    from geocli.api import load_model

    return load_model(device="cpu")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=_SYMMETRIC_FRAMES) if n == "cube_corners.xyz" else n for n in _DEGENERATE]
)
def test_degenerate_clouds_get_one_label_in_every_run_and_pose(name: str, model, tmp_path: Path) -> None:
    from geocli.api import classify
    from geocli.geometry.rotations import random_rotations

    points = _DEGENERATE[name]
    np.savetxt(tmp_path / name, points)
    runs = [next(classify(tmp_path / name, model)) for _ in range(2)]
    assert runs[0].error is None and runs[0].to_dict() == runs[1].to_dict()  # deterministic, scores included
    posed = [points @ rotation.T * 3.5 + 7.0 for rotation in random_rotations(6, "so3", seed=3).numpy()]
    labels = {p.label for p in classify(posed, model)}
    assert labels == {runs[0].label}


def test_validate_points_is_what_arrays_need_too() -> None:
    """The check the readers share, for callers holding arrays (geocli.api.as_geometry)."""
    for points, text in [
        (np.zeros((0, 3)), "no points found"),
        (np.array([[0, 0, np.nan], [1, 1, 1]]), "NaN or infinite"),
        (np.array([[0, 0, 1e39], [1, 1, 1]]), "too large"),
        (np.array([[1.0, 2.0, 3.0]]), "only one point"),
        (np.ones((5, 3)), "all 5 points are identical"),
    ]:
        with pytest.raises(GeometryError, match=text):
            readers.validate_points("<array 0>", points)
    line = readers.validate_points("<array 0>", [[0, 0, 0], [1, 2, 3]])
    assert line.dtype == np.float64 and line.shape == (2, 3)
