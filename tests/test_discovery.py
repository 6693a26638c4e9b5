"""Input discovery: files, folders, globs, stdin lists, and never hanging on link loops."""

from __future__ import annotations

import io
import os
from pathlib import Path

from geocli.discovery import BadInput, expand_inputs

EXT = (".ply", ".pcd")


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_folder_glob_and_stdin(tmp_path: Path) -> None:
    _touch(tmp_path / "b.ply", tmp_path / "a.pcd", tmp_path / "skip.md", tmp_path / "sub" / "c.ply")
    assert list(expand_inputs([str(tmp_path)], EXT)) == [str(tmp_path / "a.pcd"), str(tmp_path / "b.ply")]
    deep = list(expand_inputs([str(tmp_path)], EXT, recursive=True))
    assert deep == [str(tmp_path / "a.pcd"), str(tmp_path / "b.ply"), str(tmp_path / "sub" / "c.ply")]
    assert list(expand_inputs([str(tmp_path / "*.ply")], EXT)) == [str(tmp_path / "b.ply")]
    listing = io.StringIO(f"{tmp_path / 'a.pcd'}\n\n{tmp_path / 'b.ply'}\n")
    assert list(expand_inputs(["-"], EXT, stdin=listing)) == [str(tmp_path / "a.pcd"), str(tmp_path / "b.ply")]


def test_explicit_and_missing_paths_pass_through(tmp_path: Path) -> None:
    """Named files go to the reader even with odd extensions, which then reports them."""
    named = [str(tmp_path / "missing.ply"), str(tmp_path / "notes.md")]
    assert list(expand_inputs(named, EXT)) == named
    [bad] = list(expand_inputs([str(tmp_path / "*.xyz")], EXT))
    assert isinstance(bad, BadInput) and "no file matches" in bad.error


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    _touch(tmp_path / "scan" / "a.ply")
    os.symlink(tmp_path / "scan", tmp_path / "scan" / "loop")
    assert list(expand_inputs([str(tmp_path / "scan")], EXT, recursive=True)) == [str(tmp_path / "scan" / "a.ply")]
