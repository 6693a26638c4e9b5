"""Issue 16's classes of hostile input, drawn fresh from seeds by tests/corpus/hostile.py.

Each file is read right (OBJ relative indices, PCD doubles, PLY headers full of comments) or
refused with one line naming the file and the problem, in bounded memory and time; and a batch
through the real console script keeps its good files, even where a bad one used to crash the
whole process (a polygon face index of -1) or block it forever (a glTF buffer in a named pipe).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from corpus import deadline, succeeded
from corpus.hostile import Case, build, gltf_document
from geocli.io import GeometryError, read_geometry
from geocli.io.gltf import MAX_BUFFER_BYTES_PER_POINT

REPO = Path(__file__).resolve().parents[1]
GOOD = [REPO / "sample_data" / name for name in ("chair_0001.pcd", "teapot.off", "cow_2048.ply")]
GEOCLI = Path(sys.executable).with_name("geocli")
PREFIX = "geocli: error: "
PEAK_BYTES = 32 << 20  # the generated files are a few kilobytes: reading one never needs more


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_case_is_read_right_or_refused_in_one_line(tmp_path: Path, seed: int) -> None:
    import laspy  # noqa: F401 - imported before memory is measured
    import trimesh  # noqa: F401

    for case in build(tmp_path, seed):
        path = tmp_path / case.name
        tracemalloc.start()
        try:
            with deadline(30):  # a named pipe is never opened
                geometry, error = _read(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < PEAK_BYTES, (case.name, f"{peak:,} bytes allocated")  # counts checked before allocating
        if case.error is not None:
            assert error is not None, f"{case.name} was read, expected: {case.error}"
            assert "\n" not in error and error.startswith(f"{path}: ") and case.error in error, (case.name, error)
            continue
        assert error is None, error
        _assert_same_geometry(case, geometry.points, geometry.faces)


def _read(path: Path) -> tuple[object, str | None]:
    try:
        return read_geometry(path), None
    except GeometryError as error:
        return None, str(error)


def _assert_same_geometry(case: Case, points: np.ndarray, faces: np.ndarray | None) -> None:
    if case.points is not None:
        np.testing.assert_array_equal(points, case.points, err_msg=case.name)
    if case.triangles is not None:
        np.testing.assert_array_equal(points[faces], case.triangles, err_msg=case.name)


@pytest.mark.slow
def test_console_script_keeps_the_good_files_of_a_hostile_batch(tmp_path: Path) -> None:
    """`info` and `classify` on good files amid every generated case: the batch survives whole."""
    cases = build(tmp_path, seed=3)
    named = [str(tmp_path / c.name) for c in cases]
    batch = [str(GOOD[0]), *named[: len(named) // 2], str(GOOD[1]), *named[len(named) // 2 :], str(GOOD[2])]
    expected = {str(tmp_path / c.name): c.error for c in cases if c.error}
    readable = [p for p in batch if p not in expected]
    for command in (["info"], ["classify", "-f", "jsonl", "-k", "1"]):
        done = subprocess.run([str(GEOCLI), *command, *batch], capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 1 and "Traceback" not in done.stderr, (command, done.returncode, done.stderr[-2000:])
        lines = done.stderr.splitlines()
        assert all(line.startswith(PREFIX) for line in lines), done.stderr
        reported = {line[len(PREFIX) :].split(": ", 1)[0]: line for line in lines}
        assert len(reported) == len(lines) and sorted(reported) == sorted(expected), command
        for path, text in expected.items():
            assert text in reported[path], reported[path]
        printed = succeeded(done.stdout)
        assert sorted(printed) == sorted(readable), command
        if command == ["info"]:
            assert printed == readable  # in the order given


def test_a_gltf_cannot_make_trimesh_read_a_huge_referenced_file(tmp_path: Path) -> None:
    """Buffers are measured before trimesh reads them whole: a sparse 8 GiB file costs nothing to refuse."""
    points = np.eye(3)
    document, blob = gltf_document(points, np.array([[0, 1, 2]]), "huge.bin")
    with open(tmp_path / "huge.bin", "wb") as handle:
        handle.write(blob)
        handle.truncate(8 << 30)
    (tmp_path / "scene.gltf").write_text(json.dumps(document))
    with pytest.raises(
        GeometryError, match=f"buffers hold 8,589,934,592 bytes, more than {MAX_BUFFER_BYTES_PER_POINT} bytes per point"
    ):
        read_geometry(tmp_path / "scene.gltf")
    os.truncate(tmp_path / "huge.bin", len(blob))
    assert len(read_geometry(tmp_path / "scene.gltf").points) == 3  # the same file, its real size
