"""Every speed and memory figure of the README in one run: ``python benchmarks/run.py`` (or ``make bench``).

Per shipped classifier, in one process and one run, so that ratios compare like with like:

* ``raw_shapes_per_s``: the network and its FPS alone (``predict_logits``, batches of 16,
  or what fills a GPU: ``geocli.gpu.inference_batch_size``) on the clouds FPS picks from for
  the files below (a file's points normalised, a mesh's surface samples), already in memory:
  the issue's "network and FPS on pre-loaded clouds", the work end to end adds reading and
  sampling to;
* ``end_to_end_files_per_s``: ``classify_iter`` over a folder of ``--files`` generated
  files in ten formats (binary and ASCII PLY, PCD, XYZ, NPY, LAS clouds; OFF, OBJ, STL and
  PLY meshes), every record taken, the model already loaded, the default ``--workers`` (or
  ``--workers N``, to compare; the row says which);
* ``end_to_end_over_raw``: their ratio (target: 0.8 or more);
* ``one_file_s``: wall time of ``geocli classify FILE -m MODEL`` in a new process (median of 3);
* ``train_step_s``: one training step of the family's ``cpu`` recipe (``benchmarks/train_step.py``'s "new").

And for the default classifier, whether ``--ray`` on a new local cluster of two workers gives
the local run's JSONL byte for byte over the same files (``ray``: Ray must be installed), and
its end-to-end rate as issue 19 found it (``baseline``: the same files through the code of
:data:`BASELINE`, checked out in a temporary git worktree), for the issue's 1.6x target.

Once: ``geocli --help`` (``benchmarks/cli_startup.py``; target 0.3 s) and the default
segmenter on a 1,000,000-point scan (``benchmarks/segment_memory.py``: wall time and peak
memory; target 4 GiB). The machine is named in the result (CPU, cores, GPU if any, load
average before and after).

Writes ``benchmarks/results/<machine>.json`` and prints a table; ``--readme FILE.json``
puts that file's table into README.md between its ``bench:table`` markers (the
README's performance table is only ever written so; tests/test_benchmarks.py checks it).
``--quick`` is a smoke test (48 files, the default classifier, 20,000 points, one step).
``--parts e2e`` measures only the end-to-end rate, with whatever geocli is first on
``PYTHONPATH`` (to compare with another checkout: ``PYTHONPATH=../other python benchmarks/run.py
--parts e2e --models NAME --out other.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # tests.corpus's file writers; geocli itself comes from PYTHONPATH or the install

import cli_startup  # noqa: E402 (benchmarks/ is this script's folder, first on sys.path)
import segment_memory  # noqa: E402
import train_step  # noqa: E402

import geocli.api  # noqa: E402
from geocli.api import load_model, predict_logits  # noqa: E402
from geocli.data import modelnet40  # noqa: E402
from geocli.data.modelnet40 import load_split  # noqa: E402
from geocli.defaults import DEFAULT_CLASSIFIER, DEFAULT_SEGMENTER  # noqa: E402
from geocli.geometry.rotations import random_rotations  # noqa: E402
from geocli.io import read_geometry  # noqa: E402
from geocli.precision import autocast  # noqa: E402
from geocli.prefetch import default_workers  # noqa: E402
from geocli.train import recipe  # noqa: E402
from geocli.zoo import list_models  # noqa: E402
from tests.corpus.hostile import obj_bytes, off_bytes, pcd_bytes, ply_bytes  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"
TABLE_START, TABLE_END = "<!-- bench:table -->", "<!-- /bench:table -->"
MESHES = ("cow.obj", "teapot.off", "bunny_4k.stl", "human_1.ply")
FORMATS = ("ply", "pcd", "xyz", "npy", "las", "off", "obj", "stl", "mesh.ply", "ascii.pcd")
WARM_UP = 16  # files classified before the clock starts
BASELINE = "e58fece^"  # the code as issue 19 found it: the commit before its first change (files read ahead)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def machine_slug(info: dict[str, Any]) -> str:
    name = re.sub(r"\((r|tm)\)|processor|cpu|@.*", "", info["cpu"].lower())
    words = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    return f"{words}-{info['cores']}-cores" + (
        f"-{re.sub(r'[^a-z0-9]+', '-', info['gpu'].lower())}" if info["gpu"] else ""
    )


def generate_files(folder: Path, count: int, seed: int = 0) -> list[str]:
    """``count`` files cycling through :data:`FORMATS`: ModelNet40 test clouds and sample meshes, turned at random."""
    rng = np.random.default_rng(seed)
    clouds = load_split("test").points
    meshes = [read_geometry(REPO / "sample_data" / name) for name in MESHES]
    turns = random_rotations(count, "so3", seed=seed).numpy()
    paths = []
    for index in range(count):
        kind = FORMATS[index % len(FORMATS)]
        path = folder / f"{index:04d}.{kind}"
        mesh = meshes[index % len(meshes)]
        if kind in ("off", "obj", "stl", "mesh.ply"):
            points, faces = mesh.points @ turns[index].T, mesh.faces
        else:
            points, faces = clouds[rng.integers(len(clouds))].astype(np.float64) @ turns[index].T, None
        _write(path, kind, points, faces)
        paths.append(str(path))
    return paths


def _write(path: Path, kind: str, points: np.ndarray, faces: np.ndarray | None) -> None:
    polygons = faces.tolist() if faces is not None else []
    if kind in ("ply", "mesh.ply"):
        path.write_bytes(ply_bytes(points, polygons, encoding="binary_little_endian"))
    elif kind in ("pcd", "ascii.pcd"):
        path.write_bytes(pcd_bytes(points, "binary" if kind == "pcd" else "ascii"))
    elif kind == "xyz":
        np.savetxt(path, points, fmt="%.6f")
    elif kind == "npy":
        np.save(path, points.astype(np.float32))
    elif kind == "las":
        import laspy

        las = laspy.LasData(laspy.LasHeader(point_format=0, version="1.2"))
        las.header.scales, las.header.offsets = np.full(3, 1e-5), np.zeros(3)
        las.x, las.y, las.z = points.T
        las.write(str(path))
    elif kind == "off":
        path.write_bytes(off_bytes(points, polygons))
    elif kind == "obj":
        path.write_bytes(obj_bytes(points, polygons))
    else:
        import trimesh

        trimesh.Trimesh(points, faces, process=False).export(str(path))


def fps_sources(files: list[str], n: int) -> list[np.ndarray]:
    """Per file, the float32 cloud the network's ``n`` points are picked from by FPS
    (:func:`geocli.api.fps_source`): reading and sampling done, FPS not."""
    from geocli.api import as_geometry, fps_source  # (here: --parts e2e also measures older checkouts)

    return [fps_source(as_geometry(path, path), n, 0)[1].astype(np.float32) for path in files]


def raw_rate(model: Any, clouds: list[np.ndarray], batch_size: int) -> float:
    """Shapes per second of the network and its FPS over ``clouds`` (batched among clouds of one size), after one
    warm-up batch."""
    sizes = sorted({len(cloud) for cloud in clouds})
    groups = [np.stack([cloud for cloud in clouds if len(cloud) == size]) for size in sizes]
    starts = [(group, i) for group in groups for i in range(0, len(group), batch_size)]
    batches = [torch.from_numpy(group[i : i + batch_size]) for group, i in starts]
    predict_logits(model, batches[0])
    started = time.perf_counter()
    for batch in batches:
        predict_logits(model, batch)
    return len(clouds) / (time.perf_counter() - started)


def end_to_end_rate(model: Any, files: list[str], workers: int) -> float:
    """Files per second of classify_iter over ``files`` (``workers`` threads, the default batch), after a warm-up
    on a few.

    A checkout from before classify streamed (issue 19's baseline, ``e58fece^``: a ``classify``
    that returns a list, reading one file after another) is timed through that ``classify``.
    """

    def stream(paths: list[str], workers: int) -> Generator[Any, None, None]:
        if hasattr(geocli.api, "classify_iter"):
            return geocli.api.classify_iter(paths, model, workers=workers)
        return (p for p in geocli.api.classify(paths, model))  # the baseline: a list, no workers

    for _ in stream(files[:WARM_UP], workers=0):
        pass
    started = time.perf_counter()
    predictions = stream(files, workers=workers)
    with closing(predictions):
        done = sum(1 for _ in predictions)
    assert done == len(files)
    return len(files) / (time.perf_counter() - started)


def one_file_seconds(name: str, path: str, runs: int) -> float:
    command = [sys.executable, "-m", "geocli.cli", "classify", path, "-m", name, "-f", "jsonl"]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def train_step_seconds(family: str, quick: bool) -> float:
    config = recipe("modelnet40", family)
    if quick:
        config = replace(config, batch_size=4, points=256)
    return train_step.step_seconds(config, config.hparams, True, autocast("cpu"), 1 if quick else 3)


def classifier_row(name: str, files: list[str], parts: set[str], args: argparse.Namespace) -> dict[str, Any]:
    model = load_model(name, device=args.device)
    row: dict[str, Any] = {"model": name, "family": model.card["family"], "input_points": model.input_points}
    row["workers"] = default_workers() if args.workers is None else args.workers
    if "e2e" in parts:
        row["end_to_end_files_per_s"] = round(end_to_end_rate(model, files, row["workers"]), 2)
    if "raw" in parts:
        from geocli.gpu import inference_batch_size  # (here: --parts e2e also measures older checkouts)

        clouds = fps_sources(files, model.input_points)
        row["raw_shapes_per_s"] = round(raw_rate(model, clouds, inference_batch_size(model)), 2)
        if "e2e" in parts:
            row["end_to_end_over_raw"] = round(row["end_to_end_files_per_s"] / row["raw_shapes_per_s"], 3)
    if "cli" in parts:
        row["one_file_s"] = round(one_file_seconds(name, files[0], 1 if args.quick else 3), 3)
    if "train" in parts:
        row["train_step_s"] = round(train_step_seconds(model.card["family"], args.quick), 3)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def ray_agreement(name: str, files: list[str], workers: int = 2) -> dict[str, Any]:
    """``name`` over ``files`` here and on a new local Ray cluster of ``workers`` workers: the same JSONL?"""
    from geocli.distributed import Cluster, classify_ray

    local = [json.dumps(p.to_dict()) + "\n" for p in geocli.api.classify_iter(files, name, device="cpu", workers=0)]
    started = time.perf_counter()
    remote = [json.dumps(p.to_dict()) + "\n" for p in classify_ray(files, Cluster("local", workers, name))]
    seconds = time.perf_counter() - started
    return {
        "model": name,
        "files": len(files),
        "workers": workers,
        "identical_jsonl": "".join(remote) == "".join(local),
        "seconds_with_start": round(seconds, 1),
    }


def baseline_rate(files: list[str], commit: str = BASELINE) -> dict[str, Any]:
    """The end-to-end files/s over ``files`` of ``commit``'s default classifier, through ``commit``'s code and
    through this code: the gain of the pipeline alone, on the same model and files.

    ``commit`` is checked out in a temporary git worktree; this script runs there in a new process (whose
    geocli is that checkout's) and generates the same files (the same seed); here its model loads by path.
    """
    with tempfile.TemporaryDirectory() as tmp:
        checkout, out = Path(tmp) / "geocli", Path(tmp) / "baseline.json"
        git = ["git", "-C", str(REPO), "worktree"]
        subprocess.run([*git, "add", "--detach", "--quiet", str(checkout), commit], check=True, capture_output=True)
        try:
            command = [sys.executable, __file__, "--parts", "e2e", "--models", DEFAULT_CLASSIFIER]
            command += ["--files", str(len(files)), "--out", str(out)]
            env = {**os.environ, "PYTHONPATH": str(checkout), "GEOCLI_MODELNET40": str(modelnet40.default_root())}
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"baseline {commit}: {done.stderr.strip().splitlines()[-1:]}")
            model = load_model(checkout / "models" / f"{DEFAULT_CLASSIFIER}.json", device="cpu")
            now = end_to_end_rate(model, files, default_workers())
        finally:
            subprocess.run([*git, "remove", "--force", str(checkout)], capture_output=True)
        measured = json.loads(out.read_text())
    return {
        "model": DEFAULT_CLASSIFIER,
        "weights_sha256": model.card["weights"]["sha256"],
        "commit": measured["geocli"]["commit"],
        "then_files_per_s": measured["classifiers"][0]["end_to_end_files_per_s"],
        "now_files_per_s": round(now, 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = set(args.parts.split(","))
    info = machine()
    result: dict[str, Any] = {"machine": info, "geocli": _source(), "quick": args.quick, "device": args.device}
    started = time.perf_counter()
    if "segment" in parts:  # first: its peak memory is read from this process's finished children
        result["segment_1m"] = segment_memory.measure(20_000 if args.quick else 1_000_000, DEFAULT_SEGMENTER)
    if "cli" in parts:
        result["help"] = cli_startup.measure(2 if args.quick else 10)
    names = args.models.split(",") if args.models else [c["name"] for c in list_models() if c["task"] == "classify"]
    with tempfile.TemporaryDirectory() as tmp:
        files = generate_files(Path(tmp), args.files)
        result["files"] = {"count": len(files), "formats": list(FORMATS)}
        result["classifiers"] = [classifier_row(name, files, parts, args) for name in names]
        if "ray" in parts:
            from geocli.distributed import RayUnavailable

            try:
                result["ray"] = ray_agreement(DEFAULT_CLASSIFIER, files)
            except RayUnavailable as error:  # not installed, or a loaded machine's node did not start in time
                result["ray"] = {"model": DEFAULT_CLASSIFIER, "error": str(error)}
        if "baseline" in parts:
            result["baseline"] = baseline_rate(files)
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _source() -> dict[str, Any]:
    """Which geocli was measured: its folder and, in a git checkout, the commit (and whether it was changed)."""
    folder = Path(geocli.__file__).resolve().parents[1]
    git = ["git", "-C", str(folder)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run([*git, "status", "--porcelain", "geocli"], capture_output=True, text=True).stdout)
    return {"path": str(folder), "commit": commit or None, "changed": dirty, "version": geocli.__version__}


COLUMNS = [
    ("model", "model", "{}"),
    ("raw shapes/s", "raw_shapes_per_s", "{:.1f}"),
    ("end-to-end files/s", "end_to_end_files_per_s", "{:.1f}"),
    ("end-to-end / raw", "end_to_end_over_raw", "{:.2f}"),
    ("one file, s", "one_file_s", "{:.2f}"),
    ("training step, s", "train_step_s", "{:.3f}"),
]


def table(result: dict[str, Any]) -> str:
    """The Markdown table and the lines under it: every figure read from ``result``, the machine named."""
    info = result["machine"]
    rows = [[fmt.format(row[key]) if key in row else "-" for _, key, fmt in COLUMNS] for row in result["classifiers"]]
    lines = ["| " + " | ".join(head for head, _, _ in COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    where = f"{info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads"
    where += f", GPU {info['gpu']}" if info["gpu"] else ", no GPU"
    load = f"load average {info['load_average_before'][0]} before, {info['load_average_after'][0]} after"
    notes = [f"Measured on {where} ({load}), device {result['device']}, geocli {result['geocli']['commit']}."]
    files = result["files"]
    workers = sorted({row["workers"] for row in result["classifiers"]})
    notes += [
        f"End to end: {files['count']} generated files in {len(files['formats'])} formats, "
        f"default `--workers` ({' or '.join(map(str, workers))})."
    ]
    if result["quick"]:
        notes += ["A `--quick` run: a smoke test (the default classifier, a 20,000-point scan, a small training step)."]
    if "help" in result:
        notes += [
            f"`geocli --help`: median {result['help']['median_s']:.2f} s of {result['help']['n']} (target 0.3 s)."
        ]
    if "segment_1m" in result:
        seg = result["segment_1m"]
        notes += [
            f"Segmenting a {seg['points']:,}-point scan ({seg['model']}): {seg['seconds']} s, "
            f"{seg['peak_rss_gib']} GiB peak (target 4 GiB)."
        ]
    if "baseline" in result:
        base = result["baseline"]
        gain = base["now_files_per_s"] / base["then_files_per_s"]
        notes += [
            f"Before issue 19 (geocli {base['commit']}), its default classifier ({base['model']}, weights "
            f"{base['weights_sha256'][:8]}) ran end to end at {base['then_files_per_s']} files/s over the same files; "
            f"the same model now runs at {base['now_files_per_s']}: {gain:.2f}x (target 1.6x)."
        ]
    if "ray" in result:
        ray = result["ray"]
        if "error" in ray:
            notes += [f"`--ray`: not measured ({ray['error']})."]
        else:
            same = "byte for byte the same" if ray["identical_jsonl"] else "NOT the same"
            notes += [f"`--ray`, {ray['workers']} local workers: {ray['files']} records {same} as a local run's."]
    lines += ["", *(f"- {note}" for note in notes)]
    again = result.get("remeasured", {})
    lines += [f"- `{part}` re-measured alone, geocli {commit}." for part, commit in again.items()]
    return "\n".join(lines)


ONCE_PARTS = ("help", "segment_1m", "ray", "baseline")  # measured once per run, not per classifier


def combined(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The first run's figures, with what a later run re-measured alone (``--parts ray``, say) in place of its
    own once-per-run parts; the classifiers' rows, whose ratios must come from one run, stay the first run's."""
    out = dict(results[0])
    for later in results[1:]:
        again = [part for part in ONCE_PARTS if part in later]
        out.update({part: later[part] for part in again})
        out["remeasured"] = {**out.get("remeasured", {}), **{part: later["geocli"]["commit"] for part in again}}
    return out


def write_readme(results: list[dict[str, Any]], sources: list[Path], readme: Path = README) -> None:
    text = readme.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    named = " ".join(str(source.relative_to(REPO)) for source in sources)
    note = f"\n<!-- generated by python benchmarks/run.py --readme {named} -->\n"
    readme.write_text(text[:start] + note + table(combined(results)) + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 48 files, the default classifier, small")
    parser.add_argument("--files", type=int, help="generated files end to end (default 1000; --quick 48)")
    parser.add_argument(
        "--models", help="comma-separated classifiers (default: every shipped one; --quick the default)"
    )
    parser.add_argument(
        "--parts", default="raw,e2e,cli,segment,train,ray,baseline", help="what to measure (default: all)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--workers", type=int, help="end to end with this --workers (default: geocli's default)")
    parser.add_argument("--out", type=Path, help="the JSON file (default: benchmarks/results/<machine>.json)")
    parser.add_argument(
        "--readme",
        type=Path,
        nargs="+",
        help="write this JSON file's table into README.md, measure nothing; later files (a part re-run alone) "
        "replace the first's once-per-run parts (help, segment_1m, ray, baseline)",
    )
    args = parser.parse_args()
    if args.readme:
        write_readme([json.loads(path.read_text()) for path in args.readme], [path.resolve() for path in args.readme])
        return
    args.files = args.files or (48 if args.quick else 1000)
    args.models = args.models or (DEFAULT_CLASSIFIER if args.quick else None)
    result = run(args)
    out = args.out or RESULTS / f"{machine_slug(result['machine'])}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
