"""glTF and GLB: the document is checked here before trimesh reads anything.

trimesh allocates what accessors declare (a 300-byte file declaring a 50-million-element
accessor without a buffer made it allocate gigabytes), opens whatever a buffer URI names (a
named pipe blocked it forever), and reported invalid JSON as a missing file. So the JSON is
parsed first; every buffer is found and measured, a referenced file being checked like an input;
each accessor must lie inside its buffer view and each view inside its buffer; and the vertices
of every mesh instance are counted against max_points. Only then does trimesh read the file,
without materials (textures are not geometry, and images are more files to open).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

import numpy as np

from geocli.io.checks import check_count, regular_file_size
from geocli.io.errors import GeometryError

MAX_BUFFER_BYTES_PER_POINT = 256
"""A glTF's buffers may hold this many bytes per point of the max_points limit (1.28 GB by default):
positions, normals, texture coordinates, colours and indices need far less; a larger buffer,
which trimesh would read whole, is refused like a file over the limit."""

_COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_TYPE_VALUES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_GLB_JSON, _GLB_BIN = 0x4E4F534A, 0x004E4942


def read_gltf(path: str, max_points: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Vertices, triangles and vertex colours of every mesh in the scene, node transforms applied."""
    import trimesh

    resolver = trimesh.resolvers.FilePathResolver(path)
    _check_document(path, max_points, resolver)
    scene = trimesh.load_scene(path, resolver=resolver, skip_materials=True, process=False)
    meshes = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not meshes:
        return np.empty((0, 3)), None, None
    # Any: trimesh annotates concatenate's result and a mesh's visual more loosely than a list of
    # Trimesh gives (a Trimesh, with colour visuals when kind is "vertex").
    mesh: Any = trimesh.util.concatenate(meshes)
    colors = mesh.visual.vertex_colors[:, :3] / 255.0 if mesh.visual.kind == "vertex" else None
    return mesh.vertices, mesh.faces, colors


def _check_document(path: str, max_points: int, resolver: Any) -> None:
    """Measure buffers, views and accessors against each other and count the vertices, reading no data."""
    document, binary_chunk = _parse(path)
    buffers = []
    for index, buffer in enumerate(_objects(path, document, "buffers")):
        where = f"buffers[{index}]"
        declared = _uint(path, buffer, "byteLength", where)
        available = _buffer_bytes(path, buffer, where, binary_chunk, resolver)
        if available < declared:
            problem = f"{where} holds {available:,} bytes, its byteLength is {declared:,}"
            raise GeometryError(path, f"corrupt glTF data: {problem}")
        buffers.append((declared, available))
    total = sum(available for _, available in buffers)
    if total > MAX_BUFFER_BYTES_PER_POINT * max_points:
        limit = f"{MAX_BUFFER_BYTES_PER_POINT} bytes per point of the max_points limit of {max_points:,}"
        raise GeometryError(path, f"buffers hold {total:,} bytes, more than {limit} (the limit can be raised)")
    views = []
    for index, view in enumerate(_objects(path, document, "bufferViews")):
        where = f"bufferViews[{index}]"
        size = buffers[_index(path, view, "buffer", len(buffers), where)][0]
        end = _uint(path, view, "byteOffset", where, 0) + _uint(path, view, "byteLength", where)
        if end > size:
            problem = f"{where} ends at byte {end:,} of a {size:,}-byte buffer"
            raise GeometryError(path, f"corrupt glTF data: {problem}")
        views.append(view)
    accessors = _objects(path, document, "accessors")
    for index, accessor in enumerate(accessors):
        _check_accessor(path, accessor, f"accessors[{index}]", views)
    meshes = _objects(path, document, "meshes")
    vertices = [
        sum(accessors[a]["count"] for a in _positions(path, mesh, len(accessors), f"meshes[{i}]"))
        for i, mesh in enumerate(meshes)
    ]
    nodes = _objects(path, document, "nodes")
    instances = [
        _index(path, node, "mesh", len(meshes), f"nodes[{i}]") for i, node in enumerate(nodes) if "mesh" in node
    ]
    check_count(path, sum(vertices[m] for m in instances), max_points)  # trimesh copies a mesh per node


def _parse(path: str) -> tuple[dict[str, Any], int | None]:
    """The JSON document, and the length of a GLB's binary chunk (``None`` for .gltf or without one)."""
    with open(path, "rb") as handle:
        data = handle.read()
    binary_chunk = None
    if path.lower().endswith(".glb"):
        if len(data) < 20 or data[:4] != b"glTF":
            raise GeometryError(path, "not a GLB file: no glTF header")
        length, json_length, json_type = struct.unpack_from("<III", data, 8)
        if length != len(data) or json_type != _GLB_JSON or 20 + json_length > len(data):
            declared = f"the header declares {length:,} bytes and a JSON chunk of {json_length:,}"
            raise GeometryError(path, f"corrupt GLB data: {declared}, the file has {len(data):,}")
        chunk = 20 + json_length
        if chunk + 8 <= len(data) and struct.unpack_from("<I", data, chunk + 4)[0] == _GLB_BIN:
            binary_chunk = struct.unpack_from("<I", data, chunk)[0]
            if binary_chunk > len(data) - chunk - 8:  # trimesh allocates what the chunk declares: 4 GiB for 2**32 - 1
                problem = f"the binary chunk declares {binary_chunk:,} bytes, {len(data) - chunk - 8:,} follow"
                raise GeometryError(path, f"corrupt GLB data: {problem}")
        data = data[20:chunk]
    try:
        document = json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise GeometryError(path, f"invalid glTF JSON: {exc}") from None
    if not isinstance(document, dict):
        raise GeometryError(path, "invalid glTF JSON: the document is not an object")
    return document, binary_chunk


def _buffer_bytes(path: str, buffer: dict[str, Any], where: str, binary_chunk: int | None, resolver: Any) -> int:
    """How many bytes a buffer's data hold: the GLB chunk, a base64 data URI, or a file checked like an input."""
    uri = buffer.get("uri")
    if uri is None:
        if binary_chunk is None:
            raise GeometryError(path, f"invalid glTF: {where} has no uri and the file has no binary chunk")
        return binary_chunk
    if not isinstance(uri, str):
        raise GeometryError(path, f"invalid glTF: {where}.uri is not a string")
    if "base64," in uri:  # how trimesh tells embedded data from a file name
        try:
            return len(base64.b64decode(uri[uri.index("base64,") + 7 :]))
        except binascii.Error:
            raise GeometryError(path, f"corrupt glTF data: {where} holds invalid base64 data") from None
    try:
        return regular_file_size(str(resolver.absolute(uri)))  # the path trimesh will open
    except ValueError as exc:  # a GeometryError, or trimesh's refusal of a path outside the file's folder
        problem = exc.problem if isinstance(exc, GeometryError) else "outside the file's folder"
        raise GeometryError(path, f"referenced file {uri!r}: {problem}") from None


def _check_accessor(path: str, accessor: dict[str, Any], where: str, views: list[dict[str, Any]]) -> None:
    """The accessor's elements must lie inside its buffer view: its count is then bounded by real bytes."""
    count = _uint(path, accessor, "count", where)
    if "bufferView" not in accessor or "sparse" in accessor:
        raise GeometryError(path, f"unsupported glTF data: {where} has no bufferView (zero-filled or sparse)")
    view = views[_index(path, accessor, "bufferView", len(views), where)]
    component = _COMPONENT_BYTES.get(accessor.get("componentType", 0))
    values = _TYPE_VALUES.get(accessor.get("type", ""))
    if component is None or values is None:
        raise GeometryError(path, f"invalid glTF: {where} has an unknown componentType or type")
    item = component * values
    stride = _uint(path, view, "byteStride", "its bufferView", item)
    if stride < item:
        raise GeometryError(path, f"invalid glTF: {where}'s bufferView has a byteStride below its {item}-byte elements")
    needed = _uint(path, accessor, "byteOffset", where, 0) + (stride * (count - 1) + item if count else 0)
    if needed > view["byteLength"]:
        problem = f"{where} declares {count:,} elements, which need {needed:,} bytes"
        problem += f"; its bufferView holds {view['byteLength']:,}"
        raise GeometryError(path, f"corrupt glTF data: {problem}")


def _positions(path: str, mesh: dict[str, Any], n_accessors: int, where: str) -> list[int]:
    """The POSITION accessor of each of a mesh's primitives, every accessor they name checked."""
    primitives = mesh.get("primitives", [])
    if not isinstance(primitives, list) or not all(
        isinstance(p, dict) and isinstance(p.get("attributes"), dict) for p in primitives
    ):
        raise GeometryError(path, f"invalid glTF: {where}.primitives must be objects with attributes")
    for i, primitive in enumerate(primitives):  # trimesh takes accessors[-1] for -1: the last, read as indices
        for name in primitive["attributes"]:
            _index(path, primitive["attributes"], name, n_accessors, f"{where}.primitives[{i}].attributes")
        if "indices" in primitive:
            _index(path, primitive, "indices", n_accessors, f"{where}.primitives[{i}]")
    return [p["attributes"]["POSITION"] for p in primitives if "POSITION" in p["attributes"]]


def _objects(path: str, document: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = document.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise GeometryError(path, f"invalid glTF: {key} must be a list of objects")
    return items


def _uint(path: str, item: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GeometryError(path, f"invalid glTF: {where}.{key} must be a non-negative integer")
    return value


def _index(path: str, item: dict[str, Any], key: str, size: int, where: str) -> int:
    value = _uint(path, item, key, where)
    if value >= size:
        raise GeometryError(path, f"invalid glTF: {where}.{key} is {value}, there are {size}")
    return value
