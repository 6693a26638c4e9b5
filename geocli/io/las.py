"""LAS and LAZ through laspy: coordinates at the file's own precision, every point dimension kept, labelled copies.

A LAS file stores each coordinate as an integer ``X`` with a header ``scale`` and ``offset``
(``x = X * scale + offset``, a survey scan at UTM easting 512345.678 is ``X = 345678`` with
``scale 0.001``, ``offset 512000``). laspy computes that product in floating point, which can
be a neighbouring double: with ``offset 0``, ``X = 512345671`` gives ``512345.67100000003``, as
do about one in five coordinates. :func:`read_las` returns instead the double nearest the
decimal value the header means, so the coordinate prints, writes to CSV and compares as
``512345.671``, and ``round((x - offset) / scale)`` still gives back ``X`` exactly.

:func:`write_las` writes a segmentation as LAS or LAZ. From a LAS input it is that file's
points, every dimension, header (scale, offset, point format, version) and VLRs (the CRS) kept,
with the part label in ``classification`` and ``label`` (and ``score``) added as extra
dimensions; the input's own ``classification`` is kept as ``input_classification``. From any
other input it is a new LAS 1.4 file, point format 6 (7 with colours).

``classification`` holds 0-255 in point formats 6-10 but 0-31 in formats 0-5; see
:func:`las_classification` for how labels are mapped into it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from geocli.io.atomic import atomic_write
from geocli.io.checks import check_count, check_size
from geocli.io.errors import one_line

INPUT_PREFIX = "input_"
"""An input's value under a name the output uses itself (``classification``, ``label``) keeps it with this prefix."""


def read_las(path: str, max_points: int) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """Points (decimal-exact, see the module), colours in [0, 1] (``None`` when the format has none) and every
    other point dimension in its own type (:func:`point_dimensions`, less the colours)."""
    import laspy

    with laspy.open(path) as reader:
        check_count(path, reader.header.point_count, max_points)
        if not reader.header.are_points_compressed:
            _check_records(path, reader.header)
        las = reader.read()
    colors = _colors(las)
    dimensions = point_dimensions(las)
    if colors is not None:  # held by colors
        for channel in ("red", "green", "blue"):
            del dimensions[channel]
    return coordinates(las), colors, dimensions


def _check_records(path: str, header: Any) -> None:
    """The header's point count must fill the space its records have, exactly.

    laspy reads as many records as the header declares, so a count too low silently dropped
    the rest, and a count too high read the records there are without a word.
    """
    start, record = header.offset_to_point_data, header.point_format.size
    following = (header.start_of_first_evlr, header.start_of_waveform_data_packet_record)
    end = min((offset for offset in following if offset > start), default=os.path.getsize(path))
    check_size(path, "LAS", header.point_count * record, end - start, record)


def coordinates(las: Any) -> np.ndarray:
    """(N, 3) float64 coordinates, each the double nearest ``X * scale + offset`` computed in decimal.

    Where the scale and offset are short decimals (0.001 and 512000, as nearly every file has),
    ``X * step + base`` is an exact integer count of ``10**-digits`` and one division by
    ``10**digits`` rounds it correctly; otherwise (an odd scale, or integers beyond 2**53) the
    coordinate is laspy's floating-point product.
    """
    header = las.header
    return np.column_stack(
        [
            _decimal_axis(np.asarray(raw), float(scale), float(offset))
            for raw, scale, offset in zip((las.X, las.Y, las.Z), header.scales, header.offsets)
        ]
    )


def _decimal_axis(raw: np.ndarray, scale: float, offset: float) -> np.ndarray:
    digits = decimals(scale, offset)
    if digits is not None and len(raw):
        unit = 10**digits
        step, base = round(scale * unit), round(offset * unit)
        if int(np.abs(raw).max()) * abs(step) + abs(base) < 2**53:  # the integers and the division are exact
            return (raw.astype(np.int64) * step + base) / float(unit)
    return raw * scale + offset


def decimals(*values: float) -> int | None:
    """The fewest decimal places (up to 15) in which every value is written exactly, ``None`` when there are none."""
    for digits in range(16):
        unit = 10**digits
        if all(round(value * unit) / unit == value for value in values):
            return digits
    return None


def _colors(las: Any) -> np.ndarray | None:
    """LAS colours are 16-bit by the spec, but many writers store 8-bit values in them."""
    if not {"red", "green", "blue"} <= set(las.point_format.dimension_names):
        return None
    rgb = np.column_stack([las.red, las.green, las.blue]).astype(np.float64)
    return rgb / (65535.0 if rgb.max() > 255 else 255.0)


def point_dimensions(las: Any) -> dict[str, np.ndarray]:
    """Every dimension but the raw integer coordinates, by laspy's name, in its own type.

    Bit fields (``return_number``, ``synthetic``, ...) are uint8; an extra dimension of several
    values per point (type ``3f8``, say) is one column each, ``name_0``, ``name_1``, ...
    """
    found: dict[str, np.ndarray] = {}
    for name in las.point_format.dimension_names:
        if name in ("X", "Y", "Z"):
            continue
        values = np.asarray(las[name])
        columns = values.T if values.ndim == 2 else [values]
        for index, column in enumerate(columns):
            found[f"{name}_{index}" if values.ndim == 2 else name] = np.ascontiguousarray(column)
    return found


def dimensions(path: str) -> list[dict[str, Any]]:
    """Every dimension of the point format, as stored: ``X, Y, Z`` int32 (scaled by the header), bit fields as
    uint8 with their ``bits``, an extra dimension of several values a point with its ``count``."""
    import laspy

    with laspy.open(path) as reader:
        found = []
        for dimension in reader.header.point_format.dimensions:
            kind = dimension.dtype
            entry: dict[str, Any] = {"name": dimension.name, "type": str(np.dtype(np.uint8) if kind is None else kind)}
            if kind is None:
                entry["bits"] = int(dimension.num_bits)
            elif kind.subdtype:
                entry["type"], entry["count"] = str(kind.subdtype[0]), int(np.prod(kind.subdtype[1]))
            found.append(entry)
    return found


def header_facts(path: str) -> dict[str, Any]:
    """What ``geocli info`` shows of a LAS header: version, point format, count, scale, offset, CRS."""
    import laspy

    with laspy.open(path) as reader:
        header = reader.header
        facts: dict[str, Any] = {
            "version": str(header.version),
            "point_format": header.point_format.id,
            "point_count": int(header.point_count),
            "scale": [float(s) for s in header.scales],
            "offset": [float(o) for o in header.offsets],
            "compressed": bool(header.are_points_compressed),
        }
        crs = crs_of([*header.vlrs, *(header.evlrs or [])])
    return {**facts, **({"crs": crs} if crs else {})}


def crs_of(records: Sequence[Any]) -> dict[str, Any]:
    """The CRS the VLRs state, without pyproj: an OGC WKT string, and the EPSG code of GeoTIFF keys."""
    crs: dict[str, Any] = {}
    for record in records:
        if getattr(record, "record_id", None) == 2112 and getattr(record, "string", ""):
            crs["wkt"] = record.string
        for key in getattr(record, "geo_keys", []) if getattr(record, "record_id", None) == 34735 else []:
            # ProjectedCSTypeGeoKey, then GeographicTypeGeoKey: 1024-32766 are EPSG codes
            if key.id in (3072, 2048) and 1024 <= key.value_offset <= 32766 and "epsg" not in crs:
                crs["epsg"] = int(key.value_offset)
    return crs


def las_classification(labels: np.ndarray, point_format: int, classes: Sequence[str] | None) -> np.ndarray:
    """The LAS ``classification`` of each label.

    Point formats 6-10 hold 0-255: the label itself (beyond 255, 255). Formats 0-5 hold 0-31,
    fewer than a segmenter's classes (94 for Labeled PSB), but one scan's labels all belong to
    one category (:mod:`geocli.parts`), none of which has more than 20 parts: a label becomes
    its part's place within its category (``Chair/back`` 0, ``Chair/seat`` 1, ...; beyond 31,
    31), so the parts of a scan stay apart. The ``label`` extra dimension keeps the label itself.
    A point with no label (-1: a scene's floor under ``--clusters``) gets the top class, 255 or 31,
    which no part takes.
    """
    labels = np.asarray(labels, dtype=np.int64)
    top = 255 if point_format >= 6 else 31
    if point_format < 6 and classes:
        categories = [name.split("/", 1)[0] for name in classes]
        place = np.array([categories[:i].count(category) for i, category in enumerate(categories)])
        labels = np.where(labels < 0, labels, place[labels])
    return np.where(labels < 0, top, np.minimum(labels, top)).astype(np.uint8)


def free_name(name: str, taken: set[str] | Mapping[str, Any]) -> str:
    """``name``, or ``input_name`` (``input_input_name``, ...) where that is taken."""
    while name in taken:
        name = INPUT_PREFIX + name
    return name


def write_las(
    path: str | os.PathLike,
    points: np.ndarray,
    labels: np.ndarray,
    *,
    scores: np.ndarray | None,
    attributes: Mapping[str, np.ndarray],
    classes: Sequence[str] | None,
    source: str | None,
    compress: bool,
    instances: np.ndarray | None = None,
) -> None:
    """Write a labelled LAS (``compress``: LAZ) file atomically: ``source``'s points and header when it is a
    LAS/LAZ file with as many points as ``labels``, else a new file of ``points`` and ``attributes``;
    ``instances``, when given, as the extra dimension ``instance``."""
    import laspy

    try:
        if source is not None:
            las = laspy.read(source)
            if len(las.points) != len(labels):
                raise ValueError(f"{source} has {len(las.points):,} points, but {len(labels):,} labels were given")
        else:
            las = _new_las(points, attributes)
        added: dict[str, np.ndarray] = {}
        if source is not None:  # the input's classification stays, as an extra dimension
            added[INPUT_PREFIX + "classification"] = np.asarray(las.classification, dtype=np.uint8)
        added["label"] = np.asarray(labels, dtype=np.int32)
        if instances is not None:
            added["instance"] = np.asarray(instances, dtype=np.int32)
        if scores is not None:
            added["score"] = np.asarray(scores, dtype=np.float32)
        _add_dimensions(las, added)
        las.classification = las_classification(labels, las.point_format.id, classes)
        with atomic_write(path) as handle:
            las.write(handle, do_compress=compress)
    except laspy.LaspyException as error:  # an attribute LAS cannot hold (a name over 32 bytes, say)
        raise ValueError(f"LAS cannot hold this: {one_line(error)}") from None


def _add_dimensions(las: Any, added: Mapping[str, np.ndarray]) -> None:
    """Add extra dimensions; one the file already has under a name being added is kept, renamed ``input_...``."""
    import laspy

    names = set(las.point_format.dimension_names)
    clashing = [name for name in added if name in names]
    kept = {}
    for name in clashing:
        dimension = las.point_format.dimension_by_name(name)
        kept[free_name(INPUT_PREFIX + name, names | set(added))] = (dimension.dtype, np.array(las[name]))
    if clashing:
        las.remove_extra_dims(clashing)
    new = {**{name: (values.dtype, values) for name, values in added.items()}, **kept}
    las.add_extra_dims([laspy.ExtraBytesParams(name=name, type=dtype) for name, (dtype, _) in new.items()])
    for name, (_, values) in new.items():
        las[name] = values


def _new_las(points: np.ndarray, attributes: Mapping[str, np.ndarray]) -> Any:
    """A LAS 1.4 file of ``points``: format 7 with the input's colours, 6 without; other attributes as extra dimensions.

    One scale for all axes, the power of ten that fits the cloud's extent into 30 bits (1e-9
    for a shape a metre across, well below float32's resolution), and offsets at the centre
    rounded to that scale.
    """
    import laspy

    rgb = [attributes.get(channel) for channel in ("red", "green", "blue")]
    colors = None
    if all(c is not None and c.dtype in (np.uint8, np.uint16) for c in rgb):
        colors = [c.astype(np.uint16) * (257 if c.dtype == np.uint8 else 1) for c in rgb if c is not None]
    header = laspy.LasHeader(point_format=6 if colors is None else 7, version="1.4")
    low, high = points.min(axis=0), points.max(axis=0)
    digits = -math.ceil(math.log10(float((high - low).max()) / 2 / 2**30))
    header.scales = [10.0**-digits] * 3
    header.offsets = [round(float(centre), digits) for centre in (low + high) / 2]
    carried: dict[str, np.ndarray] = {}
    taken = set(header.point_format.dimension_names) | {"label", "score"}
    for name, values in attributes.items():
        if colors is None or name not in ("red", "green", "blue"):
            carried[free_name(name, taken | set(carried))] = values
    header.add_extra_dims([laspy.ExtraBytesParams(name=name, type=_las_type(v)) for name, v in carried.items()])
    las = laspy.LasData(header)
    las.x, las.y, las.z = points.T
    if colors is not None:
        las.red, las.green, las.blue = colors
    for name, values in carried.items():
        las[name] = values
    return las


def _las_type(values: np.ndarray) -> np.dtype:
    """Extra bytes hold little-endian integers and floats of 1 to 8 bytes; a boolean is a byte, a half float a float."""
    if values.dtype == np.bool_:
        return np.dtype(np.uint8)
    if values.dtype == np.float16:
        return np.dtype(np.float32)
    return values.dtype.newbyteorder("<")
