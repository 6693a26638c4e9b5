"""Real scans in real pipelines (issue 20): lossless, attribute-keeping, self-describing outputs, through the CLI.

The scans are generated: a LAS survey scan at UTM coordinates (millimetre scale, 512345.678 m
east, where float32 is 3 cm coarse), with every kind of LAS dimension and a CRS; a float32
PLY with normals, colours and a property of its own. The segmenter is the shipped default,
so every test is the command a user runs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import laspy
import numpy as np
import pytest
from laspy.vlrs.known import GeoKeyDirectoryVlr, GeoKeyEntryStruct, WktCoordinateSystemVlr
from typer.testing import CliRunner

from geocli.cli import app
from geocli.defaults import DEFAULT_SEGMENTER as SEGMENTER
from geocli.io import read_geometry
from geocli.io.las import decimals, las_classification
from geocli.io.ply import read_header
from geocli.io.writers import decimal_strings

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
SAMPLES, MODELS = REPO / "sample_data", REPO / "models"

WKT = 'PROJCS["WGS 84 / UTM zone 32N",GEOGCS["WGS 84"],UNIT["metre",1]]'
SCALE, OFFSET = 0.001, (512000.0, 5423000.0, 300.0)


def utm_scan(path: Path, point_format: int, n: int = 1500, seed: int = 0) -> laspy.LasData:
    """A scan of a 20 m x 10 m x 5 m box of points at UTM 32N (512345.678, 5423456.789), written to ``path``.

    Millimetre scale; many neighbours 1 mm apart, which float32 (3 cm steps at 512 km) merges;
    every dimension of the point format filled, an extra dimension, the CRS as WKT and as an EPSG key.
    """
    rng = np.random.default_rng(seed)
    header = laspy.LasHeader(point_format=point_format, version="1.4" if point_format >= 6 else "1.2")
    header.scales, header.offsets = [SCALE] * 3, list(OFFSET)
    keys = GeoKeyDirectoryVlr()
    key = GeoKeyEntryStruct()
    key.id, key.tiff_tag_location, key.count, key.value_offset = 3072, 0, 1, 32632
    keys.geo_keys, keys.geo_keys_header.number_of_keys = [key], 1
    header.vlrs.extend([keys, WktCoordinateSystemVlr(WKT)])
    header.add_extra_dim(laspy.ExtraBytesParams(name="reflectance", type=np.float32))
    las = laspy.LasData(header)
    start = np.array([345678, 456789, 0])  # 512345.678, 5423456.789, 300.000
    raw = start + rng.integers(0, [20_000, 10_000, 5_000], size=(n, 3))
    raw[: n // 2, 0] = start[0] + np.arange(n // 2)  # 1 mm apart
    raw[0] = start  # the lowest corner
    las.X, las.Y, las.Z = raw.T
    for dimension in las.point_format.dimensions:
        if dimension.name in ("X", "Y", "Z"):
            continue
        top = 2 ** min(dimension.num_bits, 16) - 1
        values = rng.uniform(0, 1e6, n) if dimension.kind.name == "FloatingPoint" else rng.integers(0, top + 1, n)
        if dimension.name == "scan_angle_rank":
            values = rng.integers(-90, 91, n)
        elif dimension.name == "scan_angle":
            values = rng.integers(-15000, 15001, n)
        las[dimension.name] = values.astype(np.float32) if dimension.name == "reflectance" else values
    las.write(path)
    return laspy.read(path)


def segment(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["segment", *args])
    return result.exit_code, result.stdout, result.stderr


def exact_coordinates(las: laspy.LasData) -> np.ndarray:
    """The coordinates the header means: X * 0.001 + offset, as the doubles nearest those decimals."""
    raw = np.column_stack([las.X, las.Y, las.Z]).astype(np.int64)
    return (raw + np.round(np.array(OFFSET) * 1000).astype(np.int64)) / 1000.0


def ply_types(path: Path) -> dict[str, str]:
    """Each vertex property's numpy type, from the PLY header."""
    vertex = next(e for e in read_header(str(path)).elements if e.name == "vertex")
    return {p.name: p.dtype.str[1:] for p in vertex.properties}


@pytest.mark.parametrize("point_format", [3, 7])
def test_a_utm_las_scan_round_trips_through_segment_las_ply_and_csv(tmp_path: Path, point_format: int) -> None:
    scan = tmp_path / "scan.las"
    source = utm_scan(scan, point_format)
    dimensions = [name for name in source.point_format.dimension_names if name not in ("X", "Y", "Z")]
    exact = exact_coordinates(source)
    assert len(np.unique(exact[:, 0].astype(np.float32))) < len(np.unique(exact[:, 0]))  # float32 would merge them

    outputs = {}
    for fmt in ("las", "ply", "csv"):
        code, out, err = segment(str(scan), "--out", str(tmp_path / "out"), "-f", fmt, "--scores")
        assert (code, err) == (0, ""), err
        outputs[fmt] = Path(json.loads(out)["output"])

    written = laspy.read(outputs["las"])
    assert written.header.point_format.id == point_format and written.header.version == source.header.version
    assert list(written.header.scales) == [SCALE] * 3 and list(written.header.offsets) == list(OFFSET)
    for axis in "XYZ":
        np.testing.assert_array_equal(written[axis], source[axis])
    wkt = [vlr for vlr in written.header.vlrs if isinstance(vlr, WktCoordinateSystemVlr)]
    geo_keys = [vlr for vlr in written.header.vlrs if isinstance(vlr, GeoKeyDirectoryVlr)]
    assert wkt[0].string == WKT and geo_keys[0].geo_keys[0].value_offset == 32632
    for name in dimensions:  # every input dimension, its values unchanged; the input's classes beside the labels
        np.testing.assert_array_equal(
            written["input_classification" if name == "classification" else name], source[name]
        )
    labels = np.asarray(written["label"])
    assert np.asarray(written["score"]).dtype == np.float32 and ((written["score"] > 0) & (written["score"] <= 1)).all()
    if point_format >= 6:
        np.testing.assert_array_equal(written.classification, labels)  # 0-255: the label itself
    else:
        assert np.asarray(written.classification).max() < 20  # 0-31: the part's place within its category
        assert len(np.unique(written.classification)) == len(np.unique(labels))

    ply = read_geometry(outputs["ply"])
    types = ply_types(outputs["ply"])
    assert types["x"] == types["y"] == types["z"] == "f8"
    np.testing.assert_array_equal(ply.points, exact)  # every coordinate, at the input's precision
    np.testing.assert_array_equal(
        np.round((ply.points - OFFSET) / SCALE), np.column_stack([source.X, source.Y, source.Z])
    )
    np.testing.assert_array_equal(ply.extra["label"], labels)
    for name in dimensions:
        carried = f"input_{name}" if name in ("red", "green", "blue") else name  # red/green/blue: the label colour
        np.testing.assert_array_equal(ply.extra[carried], source[name])
        assert np.dtype(types[carried]) == np.asarray(source[name]).dtype

    with open(outputs["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["x", "y", "z", "label", "part", "score"]
    table = np.array([[float(row[axis]) for axis in "xyz"] for row in rows])
    np.testing.assert_array_equal(table, exact)
    assert rows[0]["x"] == repr(float(exact[0, 0])) and len(rows[0]["x"].split(".")[1]) <= 3  # 512345.678, no noise
    assert [int(row["label"]) for row in rows] == labels.tolist()


def test_a_float32_ply_keeps_float_coordinates_normals_colours_and_its_own_properties(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 800
    properties = {
        **dict.fromkeys(["x", "y", "z", "nx", "ny", "nz"], "float"),
        **dict.fromkeys(["red", "green", "blue"], "uchar"),
    }
    properties |= {"quality": "float", "ring": "ushort"}
    kinds = {"float": "<f4", "uchar": "u1", "ushort": "<u2"}
    vertex = np.empty(n, dtype=[(name, kinds[kind]) for name, kind in properties.items()])
    for name, kind in properties.items():
        vertex[name] = rng.normal(size=n) if kind == "float" else rng.integers(0, 200, n)
    vertex["x"][0] = 0.3
    header = "".join(f"property {kind} {name}\n" for name, kind in properties.items())
    scan = tmp_path / "scan.ply"
    scan.write_bytes(
        f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n{header}end_header\n".encode() + vertex.tobytes()
    )
    for fmt in ("ply", "csv"):
        code, _, err = segment(str(scan), "--out", str(tmp_path / "out"), "-f", fmt)
        assert (code, err) == (0, ""), err
    out = tmp_path / "out" / "scan.ply.ply"
    types = ply_types(out)
    assert types["x"] == "f4" and types["nx"] == "f4" and types["input_red"] == "u1" and types["ring"] == "u2"
    written = read_geometry(out)
    np.testing.assert_array_equal(written.points, np.column_stack([vertex[a] for a in "xyz"]))
    np.testing.assert_array_equal(written.normals, np.column_stack([vertex[a] for a in ("nx", "ny", "nz")]))
    for name in ("quality", "ring"):
        np.testing.assert_array_equal(written.extra[name], vertex[name])
    for name in ("red", "green", "blue"):
        np.testing.assert_array_equal(written.extra[f"input_{name}"], vertex[name])
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "scan.ply.csv").read_text())))
    assert rows[1][0] == "0.3"  # the float32 0.3 at its own precision, not 0.30000001192092896
    coordinates = np.array([[np.float32(value) for value in row[:3]] for row in rows[1:]])
    np.testing.assert_array_equal(coordinates, np.column_stack([vertex[a] for a in "xyz"]))


def test_any_input_as_laz_and_a_labelled_las_segmented_again(tmp_path: Path) -> None:
    """A PLY becomes LAS 1.4 format 7 (its colours); a LAS output segmented again keeps the first labels.

    human_1.ply has human part labels of its own, in a ``label`` property: they go on as ``input_label``, and the
    first run's ``label`` as ``input_input_label`` in the second run's output (each name an ``input_`` further).
    """
    human = SAMPLES / "human_1.ply"
    code, out, err = segment(str(human), "--out", str(tmp_path / "first"), "-f", "laz")
    assert (code, err) == (0, ""), err
    first = laspy.read(json.loads(out)["output"])
    source = read_geometry(human)
    assert first.header.point_format.id == 7 and first.header.version == "1.4"
    assert np.abs(first.xyz - source.points).max() <= first.header.scales.max() / 2
    np.testing.assert_array_equal(first.classification, first["label"])
    np.testing.assert_array_equal(first["input_label"], source.extra["label"])

    code, out, err = segment(json.loads(out)["output"], "--out", str(tmp_path / "second"), "-f", "las")
    assert (code, err) == (0, ""), err
    second = laspy.read(json.loads(out)["output"])
    for kept, name in (("input_classification", "classification"), ("input_input_label", "label")):
        np.testing.assert_array_equal(second[kept], first[name])
    np.testing.assert_array_equal(second["input_label"], source.extra["label"])


def test_las_classification_fits_the_point_format() -> None:
    classes = ["Chair/back", "Chair/seat", "Chair/leg", "Cup/body", "Cup/handle"] + [f"X/p{i}" for i in range(40)]
    labels = np.array([0, 2, 3, 4, 44])
    assert las_classification(labels, 6, classes).tolist() == [0, 2, 3, 4, 44]
    assert las_classification(labels, 3, classes).tolist() == [0, 2, 0, 1, 31]  # X/p39 is its category's 40th


def test_las_coordinates_are_the_decimals_the_header_means(tmp_path: Path) -> None:
    """With offset 0, laspy's X * 0.001 is a neighbouring double for about one coordinate in five."""
    header = laspy.LasHeader(point_format=0, version="1.2")
    header.scales, header.offsets = [SCALE] * 3, [0.0] * 3
    las = laspy.LasData(header)
    raw = np.arange(512_345_000, 512_346_000)
    las.X, las.Y, las.Z = raw, raw, raw % 1000
    las.write(tmp_path / "offset0.las")
    points = read_geometry(tmp_path / "offset0.las").points
    assert 0.1 < np.mean(laspy.read(tmp_path / "offset0.las").x != points[:, 0]) < 0.3
    np.testing.assert_array_equal(points[:, 0], raw / 1000)  # each the double nearest the decimal
    assert repr(float(points[671, 0])) == "512345.671"


def test_decimal_precision_helpers() -> None:
    assert decimals(0.001, 512000.0) == 3 and decimals(0.25) == 2 and decimals(1 / 3) is None
    assert decimal_strings(np.array([0.1, 512345.678, 1e-7], dtype=np.float64)) == ["0.1", "512345.678", "1e-07"]
    assert decimal_strings(np.float32([0.3, 2.5]).astype(np.float64)) == ["0.3", "2.5"]


# --- self-describing outputs ---------------------------------------------------------------------


def test_outputs_name_their_model_and_parts_and_a_batch_gets_labels_json(tmp_path: Path) -> None:
    card = json.loads((MODELS / f"{SEGMENTER}.json").read_text())
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("cow_2048.ply", "igea_2048.xyz"):
        (scans / name).write_bytes((SAMPLES / name).read_bytes())
    code, _, err = segment(str(scans), "--out", str(tmp_path / "out"))
    assert (code, err) == (0, ""), err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "cow_2048.ply.ply",
        "igea_2048.xyz.ply",
        "labels.json",
    ]
    legend = json.loads((tmp_path / "out" / "labels.json").read_text())
    assert legend["model"] == SEGMENTER and legend["weights_sha256"] == card["weights"]["sha256"]
    assert [(entry["id"], entry["name"]) for entry in legend["labels"]] == list(enumerate(card["classes"]))

    output = tmp_path / "out" / "cow_2048.ply.ply"
    header = output.read_bytes().split(b"end_header")[0].decode().splitlines()
    comments = [line.removeprefix("comment ") for line in header if line.startswith("comment ")]
    assert f"model {SEGMENTER}" in comments and f"weights sha256 {card['weights']['sha256']}" in comments
    assert [line for line in comments if line.startswith("label ")] == [
        f"label {i} {name}" for i, name in enumerate(card["classes"])
    ]
    written = read_geometry(output)
    colours = {entry["id"]: entry["color"] for entry in legend["labels"]}
    for label, colour in zip(written.extra["label"], np.round(written.colors * 255).astype(int).tolist()):
        assert colours[int(label)] == colour  # labels.json gives the colours the PLY has


def test_models_name_is_a_readable_summary_and_json_the_card() -> None:
    card = json.loads((MODELS / f"{SEGMENTER}.json").read_text())
    result = runner.invoke(app, ["models", SEGMENTER], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0] == f"{SEGMENTER}: part segmenter"
    figures = card["metrics"]["protocols"]["SO3"]
    assert any(
        line.split() == ["category", "mIoU", "SO3", "%", f"{figures['category_miou'] * 100:.1f}"] for line in lines
    )
    assert any(line.split() == ["weights", "sha256", card["weights"]["sha256"]] for line in lines)
    assert "classes (94)" in lines and any(line.startswith("Airplane ") and "0 body, 1 wing" in line for line in lines)
    assert json.loads(runner.invoke(app, ["models", SEGMENTER, "--json"]).stdout) == card


# --- geocli info -----------------------------------------------------------------------------------


def float32_ply(path: Path, points: np.ndarray) -> None:
    """An ASCII PLY of float32 x, y, z and a uchar ``intensity``: a scanner's export."""
    rows = "".join(f"{x} {y} {z} 7\n" for x, y, z in points.astype(np.float32))
    header = "".join(f"property float {a}\n" for a in "xyz") + "property uchar intensity\n"
    path.write_text(f"ply\nformat ascii 1.0\nelement vertex {len(points)}\n{header}end_header\n{rows}")


def test_info_takes_folders_and_globs_and_gives_dimensions_types_and_las_header(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    utm_scan(scans / "sub" / "survey.laz", 7, n=300)
    float32_ply(scans / "part.ply", np.array([[0.3, 0.1, 2.5], [1.0, -0.7, 0.2], [0.5, 0.5, 0.5]]))
    (scans / "notes.md").write_text("# not geometry\n")
    (scans / "broken.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 5\n")

    result = runner.invoke(app, ["info", str(scans), "-r"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"geocli: error: {scans / 'broken.ply'}: ")
    records = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert sorted(records) == ["part.ply", "survey.laz"]

    part = records["part.ply"]
    assert part["points"] == 3 and part["faces"] == 0
    assert part["dimensions"] == [
        *({"name": a, "type": "float32"} for a in "xyz"),
        {"name": "intensity", "type": "uint8"},
    ]
    assert part["bounds"] == {"min": [0.3, -0.7, 0.2], "max": [1.0, 0.5, 2.5]}  # float32 values, no float32 noise
    survey = records["survey.laz"]
    assert survey["bounds"]["min"][0] == 512345.678 and '"min": [512345.678, 5423456.789, 300.0]' in result.stdout
    dims = {d["name"]: d for d in survey["dimensions"]}
    assert (
        dims["X"]["type"] == "int32"
        and dims["intensity"]["type"] == "uint16"
        and dims["reflectance"]["type"] == "float32"
    )
    assert dims["classification"] == {"name": "classification", "type": "uint8"}  # all 8 bits in format 7
    assert dims["return_number"] == {"name": "return_number", "type": "uint8", "bits": 4}
    assert survey["las"] == {
        "version": "1.4",
        "point_format": 7,
        "point_count": 300,
        "scale": [SCALE] * 3,
        "offset": list(OFFSET),
        "compressed": True,
        "crs": {"epsg": 32632, "wkt": WKT},
    }

    globbed = runner.invoke(app, ["info", str(scans / "*.ply"), "-"], input=f"{scans / 'sub' / 'survey.laz'}\n")
    assert [Path(json.loads(line)["path"]).name for line in globbed.stdout.splitlines()] == ["part.ply", "survey.laz"]
    assert globbed.exit_code == 1 and globbed.stderr.count("\n") == 1  # broken.ply again


# --- user text is text, and odd arguments are one line -------------------------------------------

MARKUP_NAMES = ["scan [v2].ply", "[bold]chair.pcd", "odd[/]scan.xyz"]  # the last: a file "]scan.xyz" in "odd["


def test_names_with_rich_markup_print_as_they_are(tmp_path: Path) -> None:
    """`scan [v2].ply` printed as `scan .ply`, and `[/]` can end Rich with an error: every table cell is literal."""
    (tmp_path / "odd[").mkdir()
    for name, sample in zip(MARKUP_NAMES, ["cow_2048.ply", "chair_0001.pcd", "igea_2048.xyz"]):
        (tmp_path / name).write_bytes((SAMPLES / sample).read_bytes())
    models = tmp_path / "models"
    models.mkdir()
    card = json.loads((MODELS / "tinvnn-edge-modelnet40.json").read_text())
    card |= {"name": "odd [v2]", "classes": [f"[bold]{name}[/]" for name in card["classes"]]}
    (models / "odd.json").write_text(json.dumps(card))
    (models / "odd.safetensors").write_bytes((MODELS / "tinvnn-edge-modelnet40.safetensors").read_bytes())
    env = {"GEOCLI_MODELS": str(models), "COLUMNS": "200"}

    paths = [str(tmp_path / name) for name in MARKUP_NAMES]
    for command in (["classify", *paths, "-m", "odd", "-k", "2"], ["check", *paths, "-m", "odd", "-n", "1"]):
        result = runner.invoke(app, command, env=env)
        assert result.exit_code == 0, result.output
        for path in paths:
            assert path in result.stdout, (command[0], path)
        assert "[bold]chair[/]" in result.stdout  # the chair's class, as the card names it
    listing = runner.invoke(app, ["models"], env=env)
    assert listing.exit_code == 0 and "odd [v2]" in listing.stdout
    summary = runner.invoke(app, ["models", "odd"], env=env)
    assert summary.exit_code == 0 and "8 [bold]chair[/]" in summary.stdout and "odd [v2]" in summary.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["classify", str(SAMPLES / "teapot.obj")],
        ["segment", str(SAMPLES / "teapot.obj"), "--out", "unused"],
        ["check", str(SAMPLES / "teapot.obj")],
        ["align", str(SAMPLES / "teapot.obj"), "--out", "unused"],
        ["eval", "tinvnn-edge-psb"],
        ["train", "--out", "unused"],
    ],
)
def test_a_negative_seed_is_one_usage_line(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--seed", "-1"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "geocli: error: --seed must be 0 or more, not -1\n"
    assert not Path("unused").exists()


def test_a_malformed_card_given_by_path_is_one_usage_line(tmp_path: Path) -> None:
    card = json.loads((MODELS / f"{SEGMENTER}.json").read_text())
    malformed = {
        "not_json": "{'name': 1}",
        "a_list": "[]",
        "no_classes": json.dumps({key: value for key, value in card.items() if key != "classes"}),
        "odd_type": json.dumps({**card, "input_points": "1024"}),
        "huge_input": json.dumps({**card, "input_points": 10**12}),
        "unknown_family": json.dumps({**card, "family": "nope"}),
        "hparams_that_build_but_cannot_run": json.dumps({**card, "hparams": {**card["hparams"], "k": -3}}),
        "hparams_null": json.dumps({**card, "hparams": {**card["hparams"], "k": None}}),
    }
    for name, text in malformed.items():
        (tmp_path / f"{name}.json").write_text(text)
        (tmp_path / f"{name}.safetensors").write_bytes((MODELS / f"{SEGMENTER}.safetensors").read_bytes())
        path = str(tmp_path / f"{name}.json")
        for command in (["segment", str(SAMPLES / "teapot.obj"), "--out", str(tmp_path / "out"), "-m", path],):
            result = runner.invoke(app, command)
            assert (result.exit_code, result.stdout) == (2, ""), (name, result.output)
            assert result.stderr.startswith(f"geocli: error: {tmp_path / name}.") and result.stderr.count("\n") == 1
        if name in ("not_json", "a_list", "no_classes", "odd_type", "huge_input"):  # what models NAME reads
            result = runner.invoke(app, ["models", path])
            assert result.exit_code == 2 and result.stderr.count("\n") == 1, (name, result.output)
