"""The ``geocli`` command: a thin layer over :mod:`geocli.api`, :mod:`geocli.train` and friends.

Nothing heavy is imported at module level: ``geocli --help`` must answer without
loading torch, so every command imports what it needs when it runs.

Exit codes: 0 success, 1 some inputs failed (each reported on stderr in one line),
2 usage errors (bad options, unknown model, unavailable device).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections.abc import Callable, Generator
from contextlib import closing
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from geocli.defaults import (
    CLUSTER_EPS,
    DEFAULT_CLASSIFIER,
    DEFAULT_SEGMENTER,
    FLOOR_DISTANCE,
    FLOOR_SHARE,
    MIN_OBJECT_POINTS,
)
from geocli.nets.registry import DEFAULT_FAMILY, FAMILIES, list_families  # no torch: the help lists them

if TYPE_CHECKING:
    from rich.table import Table

    from geocli.clusters import ClusterOptions
    from geocli.outputs import OutputPlan
    from geocli.zoo import ModelCard


def _untype_flags(params: list[Any]) -> None:
    """Typer's help gives every flag a ``<bool>`` type, as if ``--recursive true`` were expected; flags get none."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class _Command(TyperCommand):
    """A command whose help shows flags without a type."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _untype_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


RAY_WORDS = ("auto", "local")  # --ray's named addresses; any other is HOST:PORT or a ray:// URL, with a colon


def _ray_address_optional(args: list[str]) -> list[str]:
    """``args`` with an empty address after each ``--ray`` that has none (Ray's own default: ``RAY_ADDRESS``,
    else a new cluster here).

    A click option takes a value always or never, so ``--ray [ADDRESS]`` is settled here, before parsing:
    the word after ``--ray`` is its address only when it is one (``auto``, ``local`` or a word with a colon);
    otherwise, a path or another option, ``--ray`` gets ``""`` and the word is left to what it is.
    """
    out: list[str] = []
    for i, word in enumerate(args):
        if word == "--":  # what follows is positional, even a '--ray'
            return out + args[i:]
        out.append(word)
        if word == "--ray":
            following = args[i + 1] if i + 1 < len(args) else None
            if following is None or not (following in (*RAY_WORDS, "") or ":" in following):
                out.append("")
    return out


class _Group(TyperGroup):
    """``geocli`` itself (``--version``, ``--help``), likewise; it also settles ``--ray``'s optional address."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _untype_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _ray_address_optional(args))


class _Typer(typer.Typer):
    """Every command gets :class:`_Command`'s help."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        return super().command(*args, **{"cls": _Command, **kwargs})


app = _Typer(
    name="geocli",
    help="Classify and segment 3D point clouds and meshes with rotation-invariant networks.",
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    """``--version``: print the one version the package has (:data:`geocli.__version__`) and stop."""
    if value:
        from geocli import __version__

        typer.echo(f"geocli {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    # No docstring: the app's help (above) is what `geocli --help` shows.
    pass


PROGRESS_THRESHOLD = 8  # show a progress bar from this many inputs on


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def fail_usage(message: str) -> NoReturn:
    report_error(message)
    raise typer.Exit(2)


def report_error(message: str) -> None:
    """One line on ``sys.stderr`` as it is now: while a progress bar runs, that is the bar's
    display, which prints the line above the bar (typer.echo would write past it, onto the bar)."""
    print(f"geocli: error: {message}", file=sys.stderr, flush=True)


def report_warning(message: str) -> None:
    """One warning line on stderr, drawn like :func:`report_error`; a warning never changes the exit code."""
    print(f"geocli: warning: {message}", file=sys.stderr, flush=True)


def _non_negative_seed(value: int | None) -> int | None:
    """``--seed``'s check, in every command: a seed is 0 or more (numpy refuses a negative one, which ended
    ``check`` in a traceback and was taken by the others), and a negative one is one usage line, exit 2."""
    if value is not None and value < 0:
        fail_usage(f"--seed must be 0 or more, not {value}")
    return value


def _cli_wording(message: str) -> str:
    """An API error names the ``max_points`` argument; on the command line the knob is ``--max-points``."""
    return message.replace("(the limit can be raised)", "(raise it with --max-points)")


def _stderr_line(message: str) -> None:
    typer.echo(message, err=True)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _load(model: str, device: str, task: str | None = None):
    """Load a model (or an ensemble, ``a,b``) for a command; unknown names, bad files and the wrong task are usage
    errors."""
    from geocli.api import load_models, require_task
    from geocli.zoo import ModelError

    try:
        loaded = load_models(model, device=device)
        return require_task(loaded, task) if task else loaded
    except (ModelError, ValueError, RuntimeError) as error:
        fail_usage(str(error))


def _load_predictor(model: str, device: str, task: str):
    """:func:`_load` for classify and segment, which also say, once, when the model's answer can depend on the pose."""
    from geocli.ensemble import members_of

    loaded = _load(model, device, task)
    for member in members_of(loaded):
        if member.pose_warning:
            report_warning(member.pose_warning)
    return loaded


class _StopOnSignal:
    """Turn SIGINT/SIGTERM into a request that a batch honours between two inputs.

    Stopping only between inputs means every output reported is complete (outputs are
    also written atomically), so the count printed on exit is exactly what was done.
    """

    def __enter__(self) -> _StopOnSignal:
        import signal

        self.requested: list[int] = []
        self.previous = {
            s: signal.signal(s, lambda number, frame: self.requested.append(number))
            for s in (signal.SIGINT, signal.SIGTERM)
        }
        return self

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        import signal

        for number, handler in self.previous.items():
            signal.signal(number, handler)


# Options that several commands take, declared once.
PathsArgument = Annotated[list[str], typer.Argument(help="Files, folders, globs, or '-' to read paths from stdin.")]
RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
SamplingSeedOption = Annotated[int, typer.Option(callback=_non_negative_seed, help="Seed of mesh surface sampling.")]
MaxPointsOption = Annotated[
    int | None, typer.Option(min=1, help="Refuse files with more points (default: geocli.io's limit).")
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output on stdout.")]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Threads that read and prepare the next files while the network runs (align: that do all the work); "
        "default: the cores but one, 1 to 4; 0: none, one file after another.",
    ),
]


ClustersOption = Annotated[
    bool,
    typer.Option(
        "--clusters",
        help="Scene scans: remove the floor plane, split the rest into objects and give each object its own result.",
    ),
]
FloorDistanceOption = Annotated[
    float | None,
    typer.Option(
        min=0,
        help=f"--clusters: floor = points within this many point spacings of the plane (default {FLOOR_DISTANCE:g}).",
    ),
]
FloorShareOption = Annotated[
    float | None,
    typer.Option(
        min=0,
        max=1,
        help=f"--clusters: the plane is a floor from this share of the points on (default {FLOOR_SHARE:g}).",
    ),
]
ClusterEpsOption = Annotated[
    float | None,
    typer.Option(
        min=0, help=f"--clusters: points this many point spacings apart are one object (default {CLUSTER_EPS:g})."
    ),
]
MinObjectPointsOption = Annotated[
    int | None, typer.Option(min=1, help=f"--clusters: smaller clusters are noise (default {MIN_OBJECT_POINTS}).")
]


def _cluster_options(
    clusters: bool,
    floor_distance: float | None,
    floor_share: float | None,
    cluster_eps: float | None,
    min_object_points: int | None,
) -> ClusterOptions | None:
    """``--clusters``' settings (``None`` without it); one given without ``--clusters`` is a usage error."""
    given: dict[str, Any] = {"floor_distance": floor_distance, "floor_share": floor_share, "cluster_eps": cluster_eps}
    given["min_object_points"] = min_object_points
    named = {name: value for name, value in given.items() if value is not None}
    if not clusters:
        if named:
            fail_usage(f"--{next(iter(named)).replace('_', '-')} needs --clusters")
        return None
    from dataclasses import replace

    from geocli.clusters import ClusterOptions

    try:
        return replace(ClusterOptions(), **named)
    except ValueError as error:  # a length or share of 0
        fail_usage(f"--{str(error).replace('_', '-')}")


RayOption = Annotated[
    str | None,
    typer.Option(
        metavar="[ADDRESS]",
        help="Spread the files over a Ray cluster's workers, each loading the model once: auto (this machine's "
        "cluster), local (a new one here), the head's HOST:PORT, or none (RAY_ADDRESS, else a new one here); "
        "--workers: how many (default: one per CPU). Needs pip install 'geocli[ray]'.",
    ),
]


def _on_ray(start: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``start(...)``, a run that may go to Ray (:mod:`geocli.distributed`): a missing Ray or an unreachable
    cluster is a usage error."""
    from geocli.distributed import RayUnavailable

    try:
        return start(*args, **kwargs)
    except RayUnavailable as error:
        fail_usage(str(error))


def _cluster(ray: str | None, clusters: bool, model: str, workers: int | None, device: str) -> Any:
    """``--ray``'s :class:`geocli.distributed.Cluster` (``None`` without it); with ``--clusters``, a usage error."""
    if ray is None:
        return None
    if clusters:
        fail_usage("--ray does not split scenes (--clusters); run it without --ray")
    from geocli.distributed import Cluster

    return Cluster(ray or None, workers, model, device)


def _workers(given: int | None) -> int:
    """``--workers`` as given, or :func:`geocli.prefetch.default_workers` when it is not."""
    from geocli.prefetch import default_workers

    return default_workers() if given is None else given


def _collect_inputs(paths: list[str], recursive: bool) -> tuple[list[str], list[Any]]:
    from geocli.discovery import BadInput, expand_inputs
    from geocli.io import SUPPORTED_EXTENSIONS

    files: list[str] = []
    bad: list[BadInput] = []
    for item in expand_inputs(paths, SUPPORTED_EXTENSIONS, recursive=recursive):
        if isinstance(item, BadInput):
            bad.append(item)
        else:
            files.append(item)
    return files, bad


def _csv_columns(k: int, first: int, objects: bool = False) -> list[str]:
    """classify's CSV header: the record's fields, top_k spread over label_i, score_i (i = first..k) after the label;
    with ``--clusters``, each object's fields (:data:`geocli.scenes.OBJECT_CSV_COLUMNS`) last.

    ``first`` is 2 (the label is the best class), or 1 with ``--min-score``, where the label may be
    ``unknown`` and the best class must still be there.
    """
    from geocli.scenes import OBJECT_CSV_COLUMNS

    candidates = [f"{key}_{i}" for i in range(first, k + 1) for key in ("label", "score")]
    extra = OBJECT_CSV_COLUMNS if objects else []
    return ["path", "label", "score", *candidates, "points", "source_points", "error", "model", *extra]


def _csv_line(cells: list[Any]) -> str:
    """One CSV line, written by the caller to ``sys.stdout`` as it is at that moment."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _csv_cells(record: dict[str, Any], k: int, first: int, objects: bool = False) -> list[Any]:
    """A record as one CSV row; a null field (a failed input's label, say) is an empty cell."""
    from geocli.scenes import object_csv_cells

    candidates = {
        f"{key}_{i}": top[key]
        for i, top in enumerate(record["top_k"][first - 1 :], start=first)
        for key in ("label", "score")
    }
    row = {**record, **candidates, **(object_csv_cells(record) if objects else {})}
    return ["" if row.get(column) is None else row[column] for column in _csv_columns(k, first, objects)]


def _score_share(value: float | None) -> float | None:
    """``--min-score``'s check: a probability, 0 to 1; anything else is one usage line, exit 2."""
    if value is not None and not 0 <= value <= 1:
        fail_usage(f"--min-score must be a probability from 0 to 1, not {value}")
    return value


@app.command()
def classify(
    paths: PathsArgument,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Shipped model name, or path to your own .json card; a,b,...: an ensemble (probabilities averaged).",
        ),
    ] = DEFAULT_CLASSIFIER,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many classes to list per input.")] = 5,
    min_score: Annotated[
        float | None,
        typer.Option(callback=_score_share, help="Label 'unknown' below this calibrated score (0 to 1)."),
    ] = None,
    output_format: FormatOption = OutputFormat.table,
    recursive: RecursiveOption = False,
    device: DeviceOption = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Clouds per network pass (default: 16 on a CPU; on CUDA, what fills half its free memory)."
        ),
    ] = None,
    seed: SamplingSeedOption = 0,
    max_points: MaxPointsOption = None,
    workers: WorkersOption = None,
    ray: RayOption = None,
    clusters: ClustersOption = False,
    floor_distance: FloorDistanceOption = None,
    floor_share: FloorShareOption = None,
    cluster_eps: ClusterEpsOption = None,
    min_object_points: MinObjectPointsOption = None,
) -> None:
    """Predict the object class of each input, whatever its orientation (--clusters: of each object of a scene)."""
    scenes = _cluster_options(clusters, floor_distance, floor_share, cluster_eps, min_object_points)
    cluster = _cluster(ray, clusters, model, workers, device)
    files, bad = _collect_inputs(paths, recursive)
    loaded = _load_predictor(model, device, "classify")
    from geocli.api import Prediction
    from geocli.api import classify as run_classify
    from geocli.scenes import ObjectPrediction, classify_scenes

    k, first, objects = min(top_k, len(loaded.classes)), 2 if min_score is None else 1, scenes is not None
    records = _Records(
        output_format,
        _csv_columns(k, first, objects),
        lambda record: _csv_cells(record, k, first, objects),
        lambda rows: _print_table(rows, objects),
    )
    for item in bad:
        failed = (ObjectPrediction if objects else Prediction)(path=item.path, error=item.error, model=loaded.name)
        records.emit(failed.to_dict())
    options: dict[str, Any] = {"top_k": top_k, "min_score": min_score, "batch_size": batch_size, "seed": seed}
    options["max_points"] = max_points
    if cluster is not None:
        from geocli.distributed import classify_ray

        results = _on_ray(classify_ray, files, cluster, **options)
    else:
        run: Callable[..., Generator[Any, None, None]] = (
            run_classify if scenes is None else partial(classify_scenes, options=scenes)
        )
        results = run(files, loaded, workers=_workers(workers), **options)
    _stream(
        records,
        results,
        len(files),
        "classifying",
        "the results above are complete",
        (lambda scene: scene.records()) if objects else None,
    )


def _stream(
    sink: _Lines,
    results: Generator[Any, None, None],
    total: int,
    doing: str,
    complete: str,
    records_of: Callable[[Any], list[dict[str, Any]]] | None = None,
) -> NoReturn:
    """Every command's loop: emit each result's records (``records_of``; by default its ``to_dict()``) as they
    come, under a progress bar; stop between files on a signal (saying what is ``complete``, exit 130); exit 1
    if any input failed."""
    done = 0
    with _StopOnSignal() as stop, _progress(total, doing) as advance, closing(results):
        try:
            for result in results:
                for record in records_of(result) if records_of else [result.to_dict()]:
                    sink.emit(record)
                done += 1
                advance()
                stop.check()
        except KeyboardInterrupt:
            report_error(f"interrupted after {done} of {total} files; {complete}")
            raise typer.Exit(130) from None
    sink.close()
    raise typer.Exit(1 if sink.failures else 0)


class _Lines:
    """segment's and align's stdout: one JSON line per output written (or skipped by --resume).

    A failed input is one stderr line instead, counted for the exit code (``failures``
    starts at the inputs refused before the batch); a warning is one stderr line too.
    """

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures

    def emit(self, record: dict[str, Any]) -> None:
        if self.reported(record):
            sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    def reported(self, record: dict[str, Any]) -> bool:
        """Report a record's error or warnings on stderr; whether it goes on to stdout (a failure does not)."""
        if record.get("error"):
            self.failures += 1
            record["error"] = _cli_wording(record["error"])
            report_error(record["error"])
            return False
        for warning in record.get("warnings", []):  # check's records have none
            report_warning(f"{record.get('path', record.get('input'))}: {warning}")
        return True

    def close(self) -> None:
        pass


class _Records(_Lines):
    """One record per input, failed ones included, in classify's and check's formats.

    jsonl and csv print each record as it comes, so a pipe sees progress; json and the
    table need every record and print at :meth:`close`. A failed input's error is also
    printed on stderr as one line, and counted for the exit code.
    """

    def __init__(
        self,
        output_format: OutputFormat,
        columns: list[str],
        cells: Callable[[dict[str, Any]], list[Any]],
        table: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        super().__init__()
        self.output_format, self.cells, self.table = output_format, cells, table
        self.collected: list[dict[str, Any]] = []
        if output_format == OutputFormat.csv:
            sys.stdout.write(_csv_line(columns))

    def emit(self, record: dict[str, Any]) -> None:
        self.reported(record)
        if self.output_format == OutputFormat.jsonl:
            sys.stdout.write(json.dumps(record) + "\n")
        elif self.output_format == OutputFormat.csv:
            sys.stdout.write(_csv_line(self.cells(record)))
        else:
            self.collected.append(record)
        sys.stdout.flush()

    def close(self) -> None:
        if self.output_format == OutputFormat.json:
            typer.echo(json.dumps(self.collected, indent=2))
        elif self.output_format == OutputFormat.table:
            self.table(self.collected)


class _progress:
    """A transient progress bar on stderr for long batches; silent for short ones or no terminal.

    Rich's live display captures ``sys.stdout`` by default and prints it on its own console,
    which is stderr here: ``> out.jsonl`` would get nothing and the records would land on the
    terminal. So stdout is left alone, unless it is the very terminal the bar is drawn on:
    there, records go through the display, which prints them above the bar instead of
    gluing them to it. Error lines on stderr always go through it, for the same reason.
    """

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.bar = total, label, None

    def __enter__(self):
        console = _stderr_console()
        if self.total >= PROGRESS_THRESHOLD and console.is_terminal:
            from rich.progress import Progress

            self.bar = Progress(
                console=console, transient=True, redirect_stdout=_stdout_shares_stderr_terminal(), redirect_stderr=True
            )
            self.bar.start()
            task = self.bar.add_task(self.label, total=self.total)
            return lambda: self.bar.advance(task)
        return lambda: None

    def __exit__(self, *exc) -> None:
        if self.bar:
            self.bar.stop()


def _stdout_shares_stderr_terminal() -> bool:
    """Whether stdout is the same terminal as stderr (not a file, a pipe, or another terminal)."""
    try:
        return sys.stdout.isatty() and os.path.samestat(os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno()))
    except (OSError, ValueError):  # a stream without a file descriptor
        return False


def _print_whole(table: Table) -> None:
    """Print a Rich table; a pipe or file gets its full width, not the 80 columns Rich assumes there."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        unbounded = console.options.update(max_width=10_000)
        console = Console(width=max(console.width, console.measure(table, options=unbounded).maximum))
    console.print(table)


def _literal_row(table: Table, *cells: object) -> None:
    """Add a row whose cells print as they are: a file or class named ``scan [v2]`` is text, not Rich markup
    (which would print ``scan .ply`` for ``scan [v2].ply``, or fail on ``[/]``); every table here uses it."""
    from rich.text import Text

    table.add_row(*(Text(str(cell)) for cell in cells))


def _print_table(records: list[dict[str, Any]], objects: bool = False) -> None:
    """classify's records as a table: the same fields as JSON and CSV, every runner-up in one cell;
    with ``--clusters``, each object's instance, points and centroid too."""
    from rich.table import Column, Table

    # A path or an error folds onto more lines rather than lose its end in a narrow terminal.
    table = Table(
        Column("file", overflow="fold"),
        *(["object"] if objects else []),
        "label",
        "score",
        "runners-up",
        "points",
        "source points",
        *(["object points", "centroid"] if objects else []),
        Column("error", overflow="fold"),
    )
    for record in records:
        # an `unknown` label (--min-score) names no class: every candidate is then listed
        named = bool(record["top_k"]) and record["top_k"][0]["label"] == record["label"]
        runners_up = ", ".join(f"{top['label']} ({top['score']:.3f})" for top in record["top_k"][int(named) :])
        score = "" if record["score"] is None else f"{record['score']:.3f}"
        counts = ["" if record[key] is None else str(record[key]) for key in ("points", "source_points")]
        if objects:
            centroid = "" if record["centroid"] is None else ", ".join(f"{value:.4g}" for value in record["centroid"])
            found = "" if record["instance"] is None else str(record["instance"])
            size = "" if record["instance_points"] is None else str(record["instance_points"])
            cells = [record["path"], found, record["label"] or "", score, runners_up, *counts, size, centroid]
        else:
            cells = [record["path"], record["label"] or "", score, runners_up, *counts]
        _literal_row(table, *cells, record["error"] or "")
    _print_whole(table)


class SegmentFormat(str, Enum):
    ply = "ply"
    npy = "npy"
    csv = "csv"
    las = "las"
    laz = "laz"


@app.command()
def segment(
    paths: PathsArgument,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the labelled files: <out>/<folders below the one given>/<input file name>.<format>.",
        ),
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Shipped segmenter name, or path to your own .json card.")
    ] = DEFAULT_SEGMENTER,
    output_format: Annotated[
        SegmentFormat, typer.Option("--format", "-f", help="Labelled output file format.")
    ] = SegmentFormat.ply,
    per_face: Annotated[
        bool, typer.Option("--per-face", help="Meshes: keep the faces, with a label and colour per face (PLY).")
    ] = False,
    scores: Annotated[bool, typer.Option("--scores", help="Add each point's label probability.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Skip inputs whose output already exists.")] = False,
    preview: Annotated[
        bool, typer.Option("--preview", help="Also draw each output as <output>.png: three views, a legend of parts.")
    ] = False,
    recursive: RecursiveOption = False,
    device: DeviceOption = "auto",
    seed: SamplingSeedOption = 0,
    max_points: MaxPointsOption = None,
    workers: WorkersOption = None,
    ray: RayOption = None,
    clusters: ClustersOption = False,
    floor_distance: FloorDistanceOption = None,
    floor_share: FloorShareOption = None,
    cluster_eps: ClusterEpsOption = None,
    min_object_points: MinObjectPointsOption = None,
) -> None:
    """Label every point of each input with its part, whatever its orientation; one JSON line per file on stdout."""
    if per_face and output_format != SegmentFormat.ply:
        fail_usage("--per-face needs --format ply (only PLY holds faces)")
    if per_face and clusters:
        fail_usage("--per-face cannot be used with --clusters (a scene's objects are labelled by their points)")
    scenes = _cluster_options(clusters, floor_distance, floor_share, cluster_eps, min_object_points)
    cluster = _cluster(ray, clusters, model, workers, device)
    files, bad = _collect_inputs(paths, recursive)
    plan, lines = _plan_outputs(files, bad, out, output_format.value)  # refusals before any work
    loaded = _load_predictor(model, device, "segment")
    from geocli.labelled import LEGEND_FILE, segment_files, write_batch_legend

    try:  # before any output, so that every output under --out has it, an interrupted batch's too
        write_batch_legend(out, loaded)
    except OSError as error:
        report_error(f"cannot write {out / LEGEND_FILE} ({error.strerror or error})")
        raise typer.Exit(1) from None
    skipped, todo = plan.resume() if resume else ([], plan.targets)
    for written in skipped:
        lines.emit(written.to_dict())
    results = _on_ray(
        segment_files,
        todo,
        loaded,
        fmt=output_format.value,
        scores=scores,
        per_face=per_face,
        seed=seed,
        max_points=max_points,
        workers=_workers(workers),
        scenes=scenes,
        preview=preview,
        ray=cluster,
    )
    _stream(
        lines,
        results,
        len(todo),
        "segmenting",
        "finished outputs are complete, run again with --resume to do the rest",
    )


def _plan_outputs(files: list[str], bad: list[Any], out: Path, extension: str) -> tuple[OutputPlan, _Lines]:
    """Where each input's output goes (:func:`geocli.outputs.plan_outputs`), and the stdout lines to come.

    Unusable inputs and inputs whose output would overwrite an input are reported, one line
    each, and counted as failures; a batch that cannot be written as asked is a usage error.
    """
    from geocli.outputs import OutputError, plan_outputs

    try:
        plan = plan_outputs(files, out, extension)
    except OutputError as error:  # two inputs for one output, or --out a file: nothing is done
        fail_usage(str(error))
    lines = _Lines()
    for message in [item.error for item in bad] + plan.refused:
        lines.emit({"error": message})
    return plan, lines


@app.command()
def check(
    paths: PathsArgument,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Shipped classifier or segmenter name, or path to your own .json card.")
    ] = DEFAULT_CLASSIFIER,
    rotations: Annotated[int, typer.Option("--rotations", "-n", min=1, help="Random poses per input.")] = 8,
    output_format: FormatOption = OutputFormat.table,
    recursive: RecursiveOption = False,
    device: DeviceOption = "auto",
    seed: Annotated[
        int, typer.Option(callback=_non_negative_seed, help="Seed of the poses and of mesh surface sampling.")
    ] = 0,
    max_points: MaxPointsOption = None,
    workers: WorkersOption = None,
) -> None:
    """Measure invariance on your own files: each one's label against N random poses (turned, mirrored, scaled, moved, shuffled)."""  # noqa: E501 (Rich help keeps line breaks)
    files, bad = _collect_inputs(paths, recursive)
    loaded = _load(model, device)
    from dataclasses import fields

    from geocli.check import InvarianceCheck, check_invariance

    columns = [field.name for field in fields(InvarianceCheck)]
    records = _Records(
        output_format,
        columns,
        lambda record: ["" if record[c] is None else record[c] for c in columns],
        lambda rows: _print_check_table(rows, loaded.task),
    )
    for item in bad:
        records.emit(InvarianceCheck(path=item.path, error=item.error).to_dict())
    results = check_invariance(
        files, loaded, rotations=rotations, seed=seed, max_points=max_points, workers=_workers(workers)
    )
    _stream(records, results, len(files), "checking", "the results above are complete")


def _share(value: float | None) -> str:
    """A share as a percentage rounded down, so that anything short of full agreement never shows 100.0."""
    return "" if value is None else f"{math.floor(round(value * 1000, 6)) / 10:.1f}"


def _print_check_table(records: list[dict[str, Any]], task: str) -> None:
    """check's records as a table; a segmenter's label is the shape's category, and it has a category column."""
    from rich.table import Column, Table

    segmenter = task == "segment"
    headings = ["category" if segmenter else "label", "poses", "points alike %" if segmenter else "agreement %"]
    headings += ["category alike %"] if segmenter else []
    table = Table(Column("file", overflow="fold"), *headings, "max score change", Column("error", overflow="fold"))
    for record in records:
        change = "" if record["max_score_change"] is None else f"{record['max_score_change']:.2g}"
        shares = [_share(record["agreement"])] + ([_share(record["category_agreement"])] if segmenter else [])
        _literal_row(
            table,
            record["path"],
            record["label"] or "",
            str(record["rotations"] or ""),
            *shares,
            change,
            record["error"] or "",
        )
    _print_whole(table)


@app.command()
def align(
    paths: PathsArgument,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the aligned PLY files and their .json transforms.")
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="The model whose input defines the frame (name or .json card).")
    ] = DEFAULT_CLASSIFIER,
    recursive: RecursiveOption = False,
    seed: SamplingSeedOption = 0,
    max_points: MaxPointsOption = None,
    workers: WorkersOption = None,
) -> None:
    """Write each input in the model's canonical pose, in its own units: a PLY and its transform as JSON (also on stdout)."""  # noqa: E501 (Rich help keeps line breaks)
    files, bad = _collect_inputs(paths, recursive)
    plan, lines = _plan_outputs(files, bad, out, "ply")  # refusals before any work
    loaded = _load(model, "cpu")
    from geocli.align import align_files

    results = align_files(plan.targets, loaded, seed=seed, max_points=max_points, workers=_workers(workers))
    _stream(lines, results, len(plan.targets), "aligning", "finished outputs are complete")


@app.command()
def info(
    paths: PathsArgument,
    recursive: RecursiveOption = False,
    max_points: MaxPointsOption = None,
) -> None:
    """One JSON line per file: points, faces, bounds, its dimensions and their types, a LAS file's header."""
    from geocli.io import GeometryError
    from geocli.io.describe import describe

    files, bad = _collect_inputs(paths, recursive)
    for item in bad:
        report_error(item.error)
    failures = len(bad)
    for path in files:
        try:
            record = describe(path) if max_points is None else describe(path, max_points)
        except GeometryError as error:
            failures += 1
            report_error(_cli_wording(str(error)))
        else:
            typer.echo(json.dumps(record))
    raise typer.Exit(1 if failures else 0)


@app.command()
def models(
    name: Annotated[
        str | None, typer.Argument(help="Show this model (a name, or the path of a .json card): a summary, or --json.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON: the cards, or this model's whole card.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="A Markdown table (for the README).")] = False,
) -> None:
    """List the shipped models, or show one model: what it is, its figures and its classes (--json: its card)."""
    from geocli.zoo import ModelError, list_models, read_card, resolve

    try:
        cards = [read_card(resolve(name)[0])] if name else list_models()
    except ModelError as error:
        fail_usage(str(error))
    if name and as_json:
        typer.echo(json.dumps(cards[0], indent=2))
        return
    if name:
        _print_card(cards[0])
        return
    if as_json:
        typer.echo(json.dumps(cards, indent=2))
        return
    from geocli.model_tables import models_markdown, models_tables

    if markdown:
        typer.echo(models_markdown(cards), nl=False)
        return
    from rich import box
    from rich.table import Table

    for title, header, rows in models_tables(cards):
        # Cells never truncate (a name is what --model takes); headings wrap instead. A
        # pipe or file gets the table's full width, not the 80 columns Rich assumes there.
        table = Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
        for column, heading in enumerate(header):
            table.add_column(heading, min_width=max(len(cells[column]) for cells in rows))
        for cells in rows:
            _literal_row(table, *cells)
        _print_whole(table)
    _print_families()


def _print_families() -> None:
    """What ``geocli train --family`` can train, from the registry (the zoo need not ship every family)."""
    from rich import box
    from rich.table import Table

    table = Table(title="Families (geocli train --family)", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for heading in ("family", "invariance", "recipes"):
        table.add_column(heading)
    for name in list_families():
        _literal_row(table, name, FAMILIES[name].invariance, ", ".join(FAMILIES[name].recipes))
    _print_whole(table)


def _print_card(card: ModelCard) -> None:
    """``geocli models NAME``: what the model is, its figures as the models table has them, and its classes.

    A segmenter's classes are listed by category (one line each, not 94), a classifier's in
    columns; every value from the card is printed as text, never read as Rich markup.
    """
    from rich.columns import Columns
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from geocli.model_tables import MODEL_TABLES, dig

    title, header, row = MODEL_TABLES[card["task"]]
    console = Console()
    console.print(Text(f"{card['name']}: {'part segmenter' if card['task'] == 'segment' else 'classifier'}", "bold"))
    if isinstance(card.get("description"), str):
        console.print(Text(card["description"]))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    _literal_row(facts, "figures", title)
    for heading, value in [*zip(header, row(card)), ("invariance", card.get("invariance", "-"))]:
        _literal_row(facts, heading, value)
    if card["task"] == "classify":
        _literal_row(facts, "calibration", _calibration_summary(card))
    _literal_row(facts, "weights sha256", dig(card, "weights", "sha256") or "-")
    _print_whole(facts)  # a pipe gets the hash on one line
    parts: dict[str, list[str]] = {}
    for index, name in enumerate(card["classes"]):
        category, _, part = name.rpartition("/")
        parts.setdefault(category, []).append(f"{index} {part}")
    console.print(Text(f"classes ({len(card['classes'])})", "bold"))
    if card["task"] == "segment":
        categories = Table.grid(padding=(0, 2))
        categories.add_column(no_wrap=True)
        categories.add_column()
        for category, named in parts.items():
            _literal_row(categories, category, ", ".join(named))
        console.print(categories)
    else:
        console.print(Columns([Text(f"{i:>3} {name}") for i, name in enumerate(card["classes"])], column_first=True))


def _calibration_summary(card: ModelCard) -> str:
    """A classifier's temperature and test ECE before and after, or why its scores are the raw softmax."""
    from geocli.model_tables import dig, percent

    if "calibration" not in card:
        return "none: scores are the raw softmax (geocli calibrate fits a temperature)"
    summary = f"temperature {card['calibration']['temperature']:.3f}"
    test = dig(card, "calibration", "test")
    if isinstance(test, dict):
        summary += f", test ECE {percent(test.get('ece_before'))} % -> {percent(test.get('ece_after'))} %"
    return summary


def _recipe_help() -> str:
    """``--recipe``'s help, from the registry: the default every family has, then the others by family."""
    others = [f"{family} {name}" for family in list_families() for name in FAMILIES[family].recipes if name != "cpu"]
    also = f"; also {', '.join(others)}" if others else ""
    return f"The family's training recipe: cpu (the default, sized for a two-core machine){also}."


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, log; re-running resumes it.")],
    dataset: Annotated[
        str,
        typer.Option(
            help="modelnet40 or folder (--data: one sub-folder per class) train a classifier; "
            "psb or parts-folder (--data: labelled PLY files, as segment writes them) a part segmenter."
        ),
    ] = "modelnet40",
    family: Annotated[
        str | None, typer.Option(help=f"Network family: {', '.join(list_families())} (default: {DEFAULT_FAMILY}).")
    ] = None,
    recipe_name: Annotated[str, typer.Option("--recipe", help=_recipe_help())] = "cpu",
    data: Annotated[Path | None, typer.Option(help="Data folder (default ../shared/data/<dataset>).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=2)] = None,
    points: Annotated[int | None, typer.Option(min=32, help="Input points per shape.")] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option(callback=_non_negative_seed)] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start from these weights (e.g. a shipped .safetensors; a classifier's trunk for a segmenter). "
            "folder and parts-folder start from the default model of their task unless given; none: random."
        ),
    ] = None,
    hparams: Annotated[str | None, typer.Option(help="Network hyper-parameters as JSON.")] = None,
    partial_views: Annotated[
        int | None, typer.Option(min=0, help="Classifiers: noisy single-view scans added per training shape.")
    ] = None,
    frame_jitter: Annotated[
        float | None, typer.Option(min=0, help="Exactly invariant families: degrees of random turn in the frame.")
    ] = None,
    device: DeviceOption = "auto",
) -> None:
    """Train a classifier (ModelNet40) or segmenter (Labeled PSB); resumable, seeded, selected on a validation split."""
    from geocli.data import DATASETS
    from geocli.devices import resolve_device
    from geocli.train import RunError, recipe
    from geocli.train import train as run_train

    if dataset not in DATASETS:
        fail_usage(f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASETS))}")
    given_hparams = _json_object("--hparams", hparams) if hparams else None
    try:
        config = recipe(
            dataset,
            family,
            recipe_name,
            epochs=epochs,
            batch_size=batch_size,
            points=points,
            lr=lr,
            seed=seed,
            init=str(init) if init else None,
            hparams=given_hparams,
            partial_views=partial_views,
            frame_jitter=frame_jitter,
        )
    except ValueError as error:
        fail_usage(str(error))
    try:
        target = str(resolve_device(device))
    except ValueError as error:
        fail_usage(str(error))
    from geocli.allocator import keep_freed_memory

    keep_freed_memory()  # a third faster steps on 2 cores (see geocli.allocator)
    try:  # a RunError is raised before the first epoch: the run folder, data, weights or hparams do not fit
        meta = run_train(config, out, data_root=data, device=target, log=_stderr_line)
    except RunError as error:
        fail_usage(str(error))
    typer.echo(
        json.dumps(
            {"run": str(out), "best_val": meta["best_val"], "best_epoch": meta["best_epoch"], "epochs": meta["epoch"]}
        )
    )


def _json_object(option: str, text: str) -> dict[str, Any]:
    """An option's JSON object, or a usage error that says what is wrong with it."""
    try:
        value = json.loads(text)
    except ValueError as error:
        fail_usage(f"{option} is not JSON ({error}): {text}")
    if not isinstance(value, dict):
        fail_usage(f"{option} must be a JSON object such as '{{\"k\": 16}}', not {text}")
    return value


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="A training run folder.")],
    name: Annotated[str, typer.Option(help="Model name for the zoo.")],
    out: Annotated[Path, typer.Option(help="Folder for <name>.safetensors and <name>.json.")] = Path("models"),
    note: Annotated[str, typer.Option(help="Free text for the card (e.g. what more training would bring).")] = "",
) -> None:
    """Ship a run's best-validation weights as a float16 safetensors file with its card."""
    from geocli.export import export_run
    from geocli.train import RunError

    try:
        typer.echo(str(export_run(run, name, out, note=note)))
    except RunError as error:
        fail_usage(str(error))


@app.command("eval")
def evaluate(
    model: Annotated[
        str, typer.Argument(help="Model name or path to its .json card; a,b,...: an ensemble of classifiers.")
    ],
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here (default: stdout).")] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Data folder (default: the model's data set under ../shared/data); "
            "classifiers: or a held-out folder, one sub-folder per class named for it."
        ),
    ] = None,
    update_card: Annotated[bool, typer.Option(help="Copy the figures onto the model's card.")] = False,
    seed: Annotated[int, typer.Option(callback=_non_negative_seed, help="Seed of the protocol rotations.")] = 0,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N test shapes (smoke tests; never on cards).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    device: DeviceOption = "auto",
) -> None:
    """Classifiers: accuracy, calibration error and NLL under z/z, z/SO3, SO3/SO3; segmenters: accuracy and mIoU as given and under SO3. One JSON report."""  # noqa: E501 (Rich help keeps line breaks)
    from geocli.allocator import keep_freed_memory
    from geocli.ensemble import Ensemble
    from geocli.evaluate import card_metrics, evaluate_classifier, evaluate_segmenter

    keep_freed_memory()  # a long run of network passes, as in training (see geocli.allocator)
    loaded = _load(model, device)
    if update_card and isinstance(loaded, Ensemble):
        fail_usage(f"--update-card: the ensemble {loaded.name} has no card (evaluate its members to update theirs)")
    try:
        if loaded.task == "classify":
            report = evaluate_classifier(
                loaded,
                data,
                seed=seed,
                batch_size=batch_size,
                limit=limit,
                progress=_console_progress(),
                log=_stderr_line,
            )
        else:
            report = evaluate_segmenter(loaded, data, seed=seed, limit=limit, progress=_console_progress())
        metrics = card_metrics(report) if update_card else None
    except (ValueError, FileNotFoundError) as error:
        fail_usage(str(error))
    _write_report(report, out, model, metrics=metrics)


@app.command()
def calibrate(
    model: Annotated[str, typer.Argument(help="Classifier name or path to its .json card.")],
    out: Annotated[Path | None, typer.Option(help="Write the JSON result here (default: stdout).")] = None,
    data: Annotated[Path | None, typer.Option(help="ModelNet40 folder (default: ../shared/data/modelnet40).")] = None,
    update_card: Annotated[
        bool, typer.Option(help="Write the result onto the model's card as its calibration.")
    ] = False,
    seed: Annotated[int, typer.Option(callback=_non_negative_seed, help="Seed of the shapes' rotations.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    device: DeviceOption = "auto",
) -> None:
    """Fit a classifier's temperature on the validation split its training held out; ECE and NLL before and after, on validation and test."""  # noqa: E501 (Rich help keeps line breaks)
    from geocli.allocator import keep_freed_memory
    from geocli.calibrate import calibrate_classifier

    keep_freed_memory()  # as geocli eval
    loaded = _load(model, device, "classify")
    try:
        calibration = calibrate_classifier(loaded, data, seed=seed, batch_size=batch_size, progress=_console_progress())
    except (ValueError, FileNotFoundError) as error:
        fail_usage(str(error))
    _write_report(dict(calibration), out, model, calibration=calibration if update_card else None)


def _console_progress() -> Callable[[str, int, int], None] | None:
    """Progress of a long measurement (eval, calibrate) on stderr, over itself, when stderr is a terminal."""
    console = _stderr_console()
    if not console.is_terminal:
        return None
    return lambda name, done, total: console.print(f"{name}: {done}/{total}", end="\r")


def _write_report(report: dict[str, Any], out: Path | None, model: str, **card_fields: Any) -> None:
    """A JSON report to ``out`` (atomically) or stdout; then the given fields, those not None, onto the model's card."""
    from geocli.io.atomic import atomic_write
    from geocli.zoo import update_card

    text = json.dumps(report, indent=2)
    if out:
        with atomic_write(out, "w") as handle:
            handle.write(text + "\n")
    else:
        typer.echo(text)
    fields = {key: value for key, value in card_fields.items() if value is not None}
    if fields:
        typer.echo(f"updated {update_card(model, **fields)}", err=True)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point; SIGTERM stops a batch as cleanly as Ctrl-C.

    A signal that lands outside a batch's own handling (while loading) still ends with
    one line and exit code 130, not a traceback. Once the command has finished, signals
    are ignored: everything is written, and a signal during interpreter shutdown would
    otherwise turn a complete run into a crash exit.
    """
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except KeyboardInterrupt:
        report_error("interrupted")
        sys.exit(130)
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)


if __name__ == "__main__":
    main()
