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
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from geocli.defaults import DEFAULT_CLASSIFIER, DEFAULT_SEGMENTER, RANDOM_START
from geocli.nets.registry import DEFAULT_FAMILY, FAMILIES, list_families  # no torch: the help lists them

if TYPE_CHECKING:
    from rich.table import Table

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


class _Group(TyperGroup):
    """``geocli`` itself (``--version``, ``--help``), likewise."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _untype_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


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


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _load(model: str, device: str, task: str | None = None):
    """Load a model for a command; unknown names, bad files and the wrong task are usage errors."""
    from geocli.api import load_model, require_task
    from geocli.zoo import ModelError

    try:
        loaded = load_model(model, device=device)
        return require_task(loaded, task) if task else loaded
    except (ModelError, ValueError, RuntimeError) as error:
        fail_usage(str(error))


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


RayOption = Annotated[
    str | None,
    typer.Option(
        metavar="ADDRESS",
        help="Spread the files over a Ray cluster's workers, each loading the model once: auto (this machine's "
        "cluster), local (a new one here), or the head's HOST:PORT; --workers: how many (default: one per "
        "CPU). Needs pip install 'geocli[ray]'.",
    ),
]


def _on_ray(run: Callable[..., Generator[Any, None, None]], *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
    """``run`` from :mod:`geocli.distributed`: a missing Ray or an unreachable cluster is a usage error."""
    from geocli.distributed import RayUnavailable

    try:
        return run(*args, **kwargs)
    except RayUnavailable as error:
        fail_usage(str(error))


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


def _csv_columns(k: int) -> list[str]:
    """classify's CSV header: the record's fields, top_k spread over label_i, score_i (i = 2..k) after the best."""
    runners_up = [f"{key}_{i}" for i in range(2, k + 1) for key in ("label", "score")]
    return ["path", "label", "score", *runners_up, "points", "source_points", "error"]


def _csv_line(cells: list[Any]) -> str:
    """One CSV line, written by the caller to ``sys.stdout`` as it is at that moment."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _csv_cells(record: dict[str, Any], k: int) -> list[Any]:
    """A record as one CSV row; a null field (a failed input's label, say) is an empty cell."""
    runners_up = {
        f"{key}_{i}": top[key] for i, top in enumerate(record["top_k"][1:], start=2) for key in ("label", "score")
    }
    row = {**record, **runners_up}
    return ["" if row.get(column) is None else row[column] for column in _csv_columns(k)]


@app.command()
def classify(
    paths: PathsArgument,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Shipped model name, or path to your own .json card.")
    ] = DEFAULT_CLASSIFIER,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many classes to list per input.")] = 5,
    output_format: FormatOption = OutputFormat.table,
    recursive: RecursiveOption = False,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Clouds per network pass.")] = 16,
    seed: Annotated[int, typer.Option(callback=_non_negative_seed, help="Seed of mesh surface sampling.")] = 0,
    max_points: MaxPointsOption = None,
    workers: WorkersOption = None,
    ray: RayOption = None,
) -> None:
    """Predict the object class of each input, whatever its orientation."""
    files, bad = _collect_inputs(paths, recursive)
    loaded = _load(model, device, "classify")
    from geocli.api import Prediction, classify_iter

    k = min(top_k, len(loaded.classes))
    records = _Records(output_format, _csv_columns(k), lambda record: _csv_cells(record, k), _print_table)
    for item in bad:
        records.emit(Prediction(path=item.path, error=item.error).to_dict())
    options: dict[str, Any] = {"top_k": top_k, "batch_size": batch_size, "seed": seed, "max_points": max_points}
    if ray:
        from geocli.distributed import classify_ray

        predictions = _on_ray(classify_ray, files, model, address=ray, workers=workers, device=device, **options)
    else:
        predictions = classify_iter(files, loaded, workers=_workers(workers), **options)
    _stream_records(records, predictions, len(files), "classifying")


def _stream_records(records: _Records, results: Generator[Any, None, None], total: int, doing: str) -> NoReturn:
    """Emit each result as it comes, under a progress bar; stop between files on a signal; exit 1 if any failed."""
    done = 0
    with _StopOnSignal() as stop, _progress(total, doing) as advance, closing(results):
        try:
            for result in results:
                records.emit(result.to_dict())
                done += 1
                advance()
                stop.check()
        except KeyboardInterrupt:
            report_error(f"interrupted after {done} of {total} files; the results above are complete")
            raise typer.Exit(130) from None
    records.close()
    raise typer.Exit(1 if records.failures else 0)


class _Records:
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
        self.output_format, self.cells, self.table = output_format, cells, table
        self.collected: list[dict[str, Any]] = []
        self.failures = 0
        if output_format == OutputFormat.csv:
            sys.stdout.write(_csv_line(columns))

    def emit(self, record: dict[str, Any]) -> None:
        if record["error"]:
            self.failures += 1
            record["error"] = _cli_wording(record["error"])
            report_error(record["error"])
        for warning in record.get("warnings", []):  # check's records have none
            report_warning(f"{record['path']}: {warning}")
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


def _print_table(records: list[dict[str, Any]]) -> None:
    """classify's records as a table: the same fields as JSON and CSV, every runner-up in one cell."""
    from rich.table import Column, Table

    # A path or an error folds onto more lines rather than lose its end in a narrow terminal.
    table = Table(
        Column("file", overflow="fold"),
        "label",
        "score",
        "runners-up",
        "points",
        "source points",
        Column("error", overflow="fold"),
    )
    for record in records:
        runners_up = ", ".join(f"{top['label']} ({top['score']:.3f})" for top in record["top_k"][1:])
        score = "" if record["score"] is None else f"{record['score']:.3f}"
        counts = ("" if record[key] is None else str(record[key]) for key in ("points", "source_points"))
        _literal_row(table, record["path"], record["label"] or "", score, runners_up, *counts, record["error"] or "")
    _print_whole(table)


LEGEND_FILE = "labels.json"  # beside segment's outputs: each label's id, part name and colour, and the model


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
    recursive: RecursiveOption = False,
    device: DeviceOption = "auto",
    seed: Annotated[int, typer.Option(callback=_non_negative_seed, help="Seed of mesh surface sampling.")] = 0,
    max_points: MaxPointsOption = None,
    workers: WorkersOption = None,
    ray: RayOption = None,
) -> None:
    """Label every point of each input with its part, whatever its orientation; one JSON line per file on stdout."""
    if per_face and output_format != SegmentFormat.ply:
        fail_usage("--per-face needs --format ply (only PLY holds faces)")
    files, bad = _collect_inputs(paths, recursive)
    targets, failures = _output_targets(files, bad, out, output_format.value)  # refusals before any work
    loaded = _load(model, device, "segment")
    from geocli.api import segment as run_segment
    from geocli.io.writers import Legend, write_legend, write_segmentation

    legend = Legend.of(loaded.card)
    try:  # before any output, so that every output under --out has it, an interrupted batch's too
        write_legend(out / LEGEND_FILE, legend)
    except OSError as error:
        report_error(f"cannot write {out / LEGEND_FILE} ({error.strerror or error})")
        raise typer.Exit(1) from None

    todo = []
    for path, target in targets.items():
        if resume and target.exists():
            sys.stdout.write(
                json.dumps({"input": path, "output": str(target), "skipped": "output exists (--resume)"}) + "\n"
            )
        else:
            todo.append(path)
    done = 0
    if ray:
        from geocli.distributed import segment_ray

        results = _on_ray(
            segment_ray, todo, model, address=ray, workers=workers, device=device, seed=seed, max_points=max_points
        )
    else:
        results = run_segment(todo, loaded, seed=seed, max_points=max_points, workers=_workers(workers))
    with _StopOnSignal() as stop, _progress(len(todo), "segmenting") as advance, closing(results):
        try:
            for result in results:
                if result.error:
                    failures += 1
                    report_error(_cli_wording(result.error))
                else:
                    geometry, target = result.geometry, targets[result.path]
                    assert geometry is not None and result.labels is not None  # set on every success
                    try:
                        write_segmentation(
                            target,
                            geometry,
                            result.labels,
                            fmt=output_format.value,
                            scores=result.scores if scores else None,
                            face_labels=result.face_labels if per_face else None,
                            legend=legend,
                        )
                    except (OSError, ValueError) as error:  # ValueError: a value the format cannot hold
                        failures += 1
                        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
                        report_error(f"{result.path}: cannot write {target} ({reason})")
                    else:
                        for warning in result.warnings:
                            report_warning(f"{result.path}: {warning}")
                        sys.stdout.write(json.dumps({**result.to_dict(), "output": str(target)}) + "\n")
                sys.stdout.flush()
                done += 1
                advance()
                stop.check()
        except KeyboardInterrupt:
            report_error(
                f"interrupted after {done} of {len(todo)} files; finished outputs are complete, "
                "run again with --resume to do the rest"
            )
            raise typer.Exit(130) from None
    raise typer.Exit(1 if failures else 0)


def _output_targets(files: list[str], bad: list[Any], out: Path, extension: str) -> tuple[dict[str, Path], int]:
    """Where each input's output goes (:func:`geocli.outputs.output_paths`), for the inputs that get one.

    Unusable inputs and inputs whose output would overwrite an input are reported, one line
    each, and left out; their count is returned with the targets, in input order.
    """
    from geocli.outputs import OutputError, output_paths

    try:
        planned = output_paths(files, out, extension)
    except OutputError as error:  # two inputs for one output, or --out a file: nothing is done
        fail_usage(str(error))
    for item in bad:
        report_error(item.error)
    targets: dict[str, Path] = {}
    refused = 0
    for path, target in planned.items():
        if isinstance(target, str):  # the output would replace an input
            refused += 1
            report_error(target)
        else:
            targets[path] = target
    return targets, len(bad) + refused


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
    _stream_records(records, results, len(files), "checking")


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
    seed: Annotated[int, typer.Option(callback=_non_negative_seed, help="Seed of mesh surface sampling.")] = 0,
    max_points: MaxPointsOption = None,
    workers: WorkersOption = None,
) -> None:
    """Write each input in the model's canonical pose, in its own units: a PLY and its transform as JSON (also on stdout)."""  # noqa: E501 (Rich help keeps line breaks)
    files, bad = _collect_inputs(paths, recursive)
    targets, failures = _output_targets(files, bad, out, "ply")  # refusals before any work
    loaded = _load(model, "cpu")
    from geocli.align import align as run_align
    from geocli.align import write_alignment

    done = 0
    results = run_align(list(targets), loaded, seed=seed, max_points=max_points, workers=_workers(workers))
    with _StopOnSignal() as stop, _progress(len(targets), "aligning") as advance, closing(results):
        try:
            for result in results:
                if result.error:
                    failures += 1
                    report_error(_cli_wording(result.error))
                else:
                    target = targets[result.path]
                    try:
                        record = write_alignment(result, target)
                    except OSError as error:
                        failures += 1
                        report_error(f"{result.path}: cannot write {target} ({error.strerror or error})")
                    else:
                        sys.stdout.write(json.dumps(record) + "\n")
                sys.stdout.flush()
                done += 1
                advance()
                stop.check()
        except KeyboardInterrupt:
            report_error(f"interrupted after {done} of {len(targets)} files; finished outputs are complete")
            raise typer.Exit(130) from None
    raise typer.Exit(1 if failures else 0)


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
    from rich import box
    from rich.table import Table

    for task, (title, header, row) in MODEL_TABLES.items():
        rows = [row(card) for card in cards if card["task"] == task]
        if not rows:
            continue
        if markdown:
            lines = [header, ["---"] * len(header), *rows]
            typer.echo(f"**{title}**\n\n" + "\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n")
        else:
            # Cells never truncate (a name is what --model takes); headings wrap instead. A
            # pipe or file gets the table's full width, not the 80 columns Rich assumes there.
            table = Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
            for column, heading in enumerate(header):
                table.add_column(heading, min_width=max(len(cells[column]) for cells in rows))
            for cells in rows:
                _literal_row(table, *cells)
            _print_whole(table)
    if not markdown:
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
    _literal_row(facts, "weights sha256", _dig(card, "weights", "sha256") or "-")
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


def _dig(card: Any, *keys: str) -> Any:
    """``card[k1][k2]...``, or ``None`` where a key is missing or a level is not an object (a user's odd card)."""
    for key in keys:
        if not isinstance(card, dict):
            return None
        card = card.get(key)
    return card


def _percent(value: Any) -> str:
    return f"{value * 100:.1f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _card_common(card: ModelCard) -> tuple[list[str], list[str]]:
    """Columns every model has: identity first, training size last."""
    head = [card["name"], card["family"], str(len(card["classes"])), str(card["input_points"])]
    size = _dig(card, "weights", "bytes")
    tail = [
        _percent(_dig(card, "metrics", "rotation_agreement", "agreement")),
        _epochs(card.get("training", {})),
        f"{size / 1e6:.1f}" if isinstance(size, int) else "-",
    ]
    return head, tail


def _epochs(training: dict[str, Any]) -> str:
    """Epochs since random initialisation; "N+" when only the last run's N are known (it continued other weights)."""
    if training.get("epochs_in_total") is not None:
        return str(training["epochs_in_total"])
    if "epochs_trained" not in training:
        return "-"
    return f"{training['epochs_trained']}{'' if training.get('started_from') == RANDOM_START else '+'}"


def _classifier_row(card: ModelCard) -> list[str]:
    """One classifier's summary; every figure is read from the card's eval-produced metrics."""
    head, tail = _card_common(card)
    protocols = ("z/z", "z/SO3", "SO3/SO3", "single-view/SO3")
    return [*head, *(_percent(_dig(card, "metrics", "protocols", p, "overall_accuracy")) for p in protocols), *tail]


def _segmenter_row(card: ModelCard) -> list[str]:
    """One segmenter's summary: point accuracy as given and under SO3, then SO3 mean IoUs."""
    head, tail = _card_common(card)
    figures = [
        ("as given", "point_accuracy"),
        ("SO3", "point_accuracy"),
        ("SO3", "category_miou"),
        ("SO3", "instance_miou"),
    ]
    return [*head, *(_percent(_dig(card, "metrics", "protocols", *figure)) for figure in figures), *tail]


MODEL_TABLES = {
    "classify": (
        "Classifiers (ModelNet40 test, overall accuracy)",
        [
            "name",
            "family",
            "classes",
            "points",
            "z/z %",
            "z/SO3 %",
            "SO3/SO3 %",
            "single-view %",
            "agreement %",
            "epochs",
            "MB",
        ],
        _classifier_row,
    ),
    "segment": (
        "Part segmenters (Labeled PSB test, no category given)",
        [
            "name",
            "family",
            "parts",
            "points",
            "accuracy as given %",
            "accuracy SO3 %",
            "category mIoU SO3 %",
            "instance mIoU SO3 %",
            "agreement %",
            "epochs",
            "MB",
        ],
        _segmenter_row,
    ),
}


def _recipe_help() -> str:
    """``--recipe``'s help, from the registry: the default every family has, then the others by family."""
    others = [f"{family} {name}" for family in list_families() for name in FAMILIES[family].recipes if name != "cpu"]
    also = f"; also {', '.join(others)}" if others else ""
    return f"The family's training recipe: cpu (the default, sized for a two-core machine){also}."


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, log; re-running resumes it.")],
    dataset: Annotated[
        str, typer.Option(help="modelnet40 (trains a classifier) or psb (a part segmenter).")
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
            help="Start from these weights (e.g. a shipped .safetensors; a classifier's trunk for a segmenter)."
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
    from geocli.api import resolve_device
    from geocli.data import DATASETS
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
    try:  # a RunError is raised before the first epoch: the run folder, data, weights or hparams do not fit
        meta = run_train(config, out, data_root=data, device=target, log=lambda m: typer.echo(m, err=True))
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
    model: Annotated[str, typer.Argument(help="Model name or path to its .json card.")],
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here (default: stdout).")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Data folder (default: the model's data set under ../shared/data).")
    ] = None,
    update_card: Annotated[bool, typer.Option(help="Copy the figures onto the model's card.")] = False,
    seed: Annotated[int, typer.Option(callback=_non_negative_seed, help="Seed of the protocol rotations.")] = 0,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N test shapes (smoke tests; never on cards).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    device: DeviceOption = "auto",
) -> None:
    """Classifiers: accuracy under z/z, z/SO3, SO3/SO3; segmenters: accuracy and mIoU as given and under SO3. One JSON report."""  # noqa: E501 (Rich help keeps line breaks)
    from geocli.evaluate import card_metrics, evaluate_classifier, evaluate_segmenter
    from geocli.io.atomic import atomic_write
    from geocli.zoo import read_card, resolve, write_card

    loaded = _load(model, device)
    console = _stderr_console()
    progress = (
        (lambda name, done, total: console.print(f"{name}: {done}/{total}", end="\r")) if console.is_terminal else None
    )
    try:
        if loaded.task == "classify":
            report = evaluate_classifier(loaded, data, seed=seed, batch_size=batch_size, limit=limit, progress=progress)
        else:
            report = evaluate_segmenter(loaded, data, seed=seed, limit=limit, progress=progress)
    except (ValueError, FileNotFoundError) as error:
        fail_usage(str(error))
    text = json.dumps(report, indent=2)
    if out:
        with atomic_write(out, "w") as handle:
            handle.write(text + "\n")
    else:
        typer.echo(text)
    if update_card:
        card_path = resolve(model)[0]
        try:
            metrics = card_metrics(report)
        except ValueError as error:
            fail_usage(str(error))
        write_card(card_path, {**read_card(card_path), "metrics": metrics})
        typer.echo(f"updated {card_path}", err=True)


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
