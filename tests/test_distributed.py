"""--ray: classify and segment on a Ray cluster give a local run's records, outputs, errors and order.

The cluster is a local one with two workers, started by this module in the test process
(geocli uses a Ray already initialised); the tests are skipped where Ray is not installed.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from geocli.cli import _ray_address_optional, app
from geocli.defaults import DEFAULT_CLASSIFIER as DEFAULT
from test_prefetch import mixed_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [[], ["-m", "tinvnn-edge-modelnet40,apen-edge-modelnet40", "--min-score", "0.5"]],
    ids=["default", "ensemble-min-score"],
)
def test_classify_on_ray_prints_what_a_local_run_prints(cluster: None, tmp_path: Path, options: list[str]) -> None:
    folder = mixed_folder(tmp_path / "scans")
    command = ["classify", str(folder), "-f", "jsonl", "--batch-size", "3", *options]
    local = runner.invoke(app, [*command, "--workers", "0"])
    remote = runner.invoke(app, [*command, "--ray", "auto", "--workers", "2"])
    assert local.exit_code == remote.exit_code == 1  # three unusable files
    assert remote.stdout == local.stdout  # every record, its scores to the last digit, in input order
    assert remote.stderr == local.stderr  # errors and warnings, one line each
    assert len(remote.stdout.splitlines()) == 2 * 11 + 4
    records = [json.loads(line) for line in remote.stdout.splitlines()]
    assert {record["model"] for record in records} == {"+".join(options[1].split(",")) if options else DEFAULT}


@pytest.mark.slow
def test_segment_on_ray_writes_what_a_local_run_writes_and_resumes_alike(cluster: None, tmp_path: Path) -> None:
    folder = mixed_folder(tmp_path / "scans")
    full = tmp_path / "full"
    assert runner.invoke(app, ["segment", str(folder), "--out", str(full), "--workers", "0"]).exit_code == 1
    runs = {}
    for where, options in (("local", ["--workers", "0"]), ("ray", ["--ray", "--workers", "2"])):  # bare --ray
        out = tmp_path / where  # an interrupted batch: the first five outputs are there
        out.mkdir()
        for done in sorted(full.glob("*.ply"))[:5]:
            shutil.copy(done, out / done.name)
        runs[where] = runner.invoke(app, ["segment", str(folder), "--out", str(out), "--resume", *options])
    assert runs["local"].exit_code == runs["ray"].exit_code == 1
    assert runs["ray"].stderr == runs["local"].stderr
    assert runs["ray"].stdout == runs["local"].stdout.replace(str(tmp_path / "local"), str(tmp_path / "ray"))
    assert runs["ray"].stdout.count('"skipped"') == 5
    written = sorted(path.name for path in full.iterdir())
    assert sorted(path.name for path in (tmp_path / "ray").iterdir()) == written
    for name in written:
        assert (tmp_path / "ray" / name).read_bytes() == (full / name).read_bytes()


def test_without_ray_the_option_is_one_usage_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError, as where it is not installed
    scan = Path(__file__).resolve().parents[1] / "sample_data" / "chair_0001.pcd"
    result = runner.invoke(app, ["classify", str(scan), "--ray", "auto"])
    assert result.exit_code == 2
    assert result.stderr == "geocli: error: --ray needs Ray, an optional extra: pip install 'geocli[ray]'\n"
    assert result.stdout == ""


def test_ray_does_not_take_clusters(tmp_path: Path) -> None:
    scan = Path(__file__).resolve().parents[1] / "sample_data" / "chair_0001.pcd"
    for command in (["classify", str(scan)], ["segment", str(scan), "--out", str(tmp_path / "out")]):
        result = runner.invoke(app, [*command, "--ray", "auto", "--clusters"])
        assert result.exit_code == 2
        assert result.stderr == "geocli: error: --ray does not split scenes (--clusters); run it without --ray\n"
        assert result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_the_address_is_optional_and_never_swallows_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--ray [ADDRESS]``: bare, before a path or before another option, it takes Ray's default address."""
    assert _ray_address_optional(["classify", "scans/", "--ray"]) == ["classify", "scans/", "--ray", ""]
    assert _ray_address_optional(["classify", "--ray", "scans/"]) == ["classify", "--ray", "", "scans/"]
    assert _ray_address_optional(["segment", "--ray", "-r", "x"]) == ["segment", "--ray", "", "-r", "x"]
    for address in ("auto", "local", "head:6379", "ray://head:10001"):
        assert _ray_address_optional(["classify", "--ray", address, "x"]) == ["classify", "--ray", address, "x"]
    assert _ray_address_optional(["classify", "--", "--ray"]) == ["classify", "--", "--ray"]
    monkeypatch.setitem(sys.modules, "ray", None)
    scan = str(Path(__file__).resolve().parents[1] / "sample_data" / "chair_0001.pcd")
    for args in (["classify", scan, "--ray"], ["classify", "--ray", scan]):
        result = runner.invoke(app, args)  # parsed, the path an input: it fails only for want of Ray
        assert result.exit_code == 2
        assert result.stderr == "geocli: error: --ray needs Ray, an optional extra: pip install 'geocli[ray]'\n"
