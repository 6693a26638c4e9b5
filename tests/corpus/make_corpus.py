"""Write the bad-input corpus: every kind of file geocli must refuse cleanly, plus degenerate valid clouds.

Everything is generated from code and the small files in ``sample_data/`` (no opaque blobs), so
the corpus is reproducible and reviewable. ``build(folder)`` returns, for each path it created
relative to ``folder``, what geocli must do with it:

* a string: the file must be refused with a one-line error containing that text
  (``""``: any clear error will do, e.g. for random bytes);
* ``None``: the file is valid, if degenerate, and must be classified.

Run ``python tests/corpus/make_corpus.py OUT_DIR`` to write it out and list the expectations.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_data"

Expected = str | None

# Cases that need special handling by whoever runs the corpus, named here once.
UNREADABLE = "unreadable.xyz"  # chmod 000: root can still read it, so run that case as another user
FIFO = "named_pipe.ply"  # opening a FIFO for reading blocks until a writer appears
DIRECTORY = "directory.ply"  # a folder named like a file: a folder argument is walked, a listed path is refused
LOOP_LINKS = ("link_loop_a.ply", "link_loop_b.ply")


def _xyz(path: Path, points: np.ndarray) -> None:
    np.savetxt(path, points, fmt="%.9g")


def _ply_header(count: int, encoding: str = "binary_little_endian") -> bytes:
    return (
        f"ply\nformat {encoding} 1.0\nelement vertex {count}\n"
        "property float x\nproperty float y\nproperty float z\nend_header\n"
    ).encode()


def _binary_ply(points: np.ndarray, declared: int | None = None) -> bytes:
    count = len(points) if declared is None else declared
    return _ply_header(count) + np.asarray(points, "<f4").tobytes()


def _binary_pcd(points: np.ndarray) -> bytes:
    n = len(points)
    header = (
        "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA binary\n"
    )
    return header.encode() + np.asarray(points, "<f4").tobytes()


def degenerate_clouds() -> dict[str, np.ndarray]:
    """Valid clouds whose principal axes are degenerate: they must be classified, identically in any pose."""
    t = np.linspace(-1.0, 1.0, 200)
    u, v = np.meshgrid(np.linspace(-1, 1, 20), np.linspace(-0.5, 0.5, 12))
    angle = np.linspace(0, 2 * np.pi, 300, endpoint=False)
    golden = np.pi * (3.0 - np.sqrt(5.0))
    k = np.arange(400)
    z = 1 - 2 * (k + 0.5) / 400
    ring = np.sqrt(1 - z**2)
    cube = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    return {
        "collinear.xyz": np.column_stack([t, 2 * t + 1, -t]),
        "two_points.xyz": np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]),
        "planar.xyz": np.column_stack([u.ravel(), v.ravel(), np.zeros(u.size)]),  # a 2:1 rectangle grid
        "disk.xyz": np.column_stack([np.cos(angle), np.sin(angle), np.zeros_like(angle)]),  # circular symmetry
        "sphere.xyz": np.column_stack([ring * np.cos(golden * k), ring * np.sin(golden * k), z]),  # isotropic
        "cube_corners.xyz": cube,  # three equal eigenvalues and octahedral symmetry
    }


def build(folder: str | os.PathLike) -> dict[str, Expected]:
    """Create the corpus in ``folder`` (which must exist) and return what geocli must do per path."""
    root = Path(folder)
    rng = np.random.default_rng(0)
    cow_ply = (SAMPLES / "cow_2048.ply").read_bytes()
    chair_pcd = (SAMPLES / "chair_0001.pcd").read_bytes()
    chair = np.frombuffer(chair_pcd[chair_pcd.index(b"DATA binary\n") + 12 :], "<f4").reshape(-1, 3).astype(float)
    expected: dict[str, Expected] = {}

    def write(name: str, content: bytes | str, expect: Expected) -> None:
        path = root / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        expected[name] = expect

    # Empty and truncated files.
    write("empty.ply", b"", "file is empty")
    write("empty.xyz", b"", "file is empty")
    write("truncated_binary.ply", cow_ply[: len(cow_ply) * 3 // 5], "corrupt PLY data")
    write("truncated_header.ply", cow_ply[:120], "no end_header")
    write("truncated_binary.pcd", chair_pcd[: len(chair_pcd) // 2], "corrupt PCD data")
    write("truncated_header.pcd", chair_pcd[:150], "")
    write("truncated.npy", (SAMPLES / "bunny_1024.npy").read_bytes()[:3000], "corrupt NPY data")

    # Headers that lie about their counts.
    write("count_too_high.ply", _binary_ply(chair, declared=2 * len(chair)), "corrupt PLY data")
    write("count_too_low.ply", _binary_ply(chair, declared=len(chair) // 2), "corrupt PLY data")
    ascii_rows = "".join(f"{x:.6g} {y:.6g} {z:.6g}\n" for x, y, z in chair[:50])
    write("count_too_high_ascii.ply", _ply_header(500, "ascii") + ascii_rows.encode(), "corrupt PLY data")
    write("count_too_low_ascii.ply", _ply_header(20, "ascii") + ascii_rows.encode(), "corrupt PLY data")
    write("count_huge.ply", _ply_header(10**12), "max_points limit")
    write(
        "count_huge.pcd", _binary_pcd(chair[:10]).replace(b"POINTS 10\n", b"POINTS 1000000000000\n"), "max_points limit"
    )
    write("count_huge.off", "OFF\n1000000000000 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "max_points limit")
    write("faces_huge.off", "OFF\n3 1000000000000 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "corrupt OFF data")
    write("facets_huge.stl", b"\0" * 80 + np.uint32(4_000_000_000).tobytes() + b"\0" * 100, "corrupt STL data")
    write("facets_too_many.stl", b"\0" * 80 + np.uint32(1000).tobytes() + b"\0" * 500, "corrupt STL data")
    write("count_too_high.pcd", _binary_pcd(chair).replace(b"POINTS 1024\n", b"POINTS 4096\n"), "corrupt PCD data")

    # Text where numbers belong.
    write("text_in_numbers.xyz", "0 0 0\n1 two 3\n4 5 6\n", "cannot parse")
    write("text_in_numbers.txt", "0,0,0\n1,2,3\n4,5,six\n", "cannot parse")
    write("text_in_numbers_ascii.ply", _ply_header(3, "ascii") + b"0 0 0\n1 two 3\n4 5 6\n", "corrupt PLY data")
    pcd_ascii = (
        "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 3\nHEIGHT 1\nPOINTS 3\nDATA ascii\n"
    )
    write("text_in_numbers_ascii.pcd", pcd_ascii + "0 0 0\n1 two 3\n4 5 6\n", "corrupt PCD data")
    write("text_in_numbers.off", "OFF\n3 1 0\n0 0 0\n1 x 0\n0 1 0\n3 0 1 2\n", "")
    write("text_in_numbers.obj", "v 0 0 0\nv 1 zero 0\nv 0 1 0\nf 1 2 3\n", "")
    write("text_in_header.ply", _ply_header(3).replace(b"vertex 3", b"vertex three") + b"\0" * 36, "invalid PLY header")

    # NaN and Inf coordinates, in text and binary formats.
    write("nan.xyz", "0 0 0\nnan 1 1\n1 1 0\n", "NaN or infinite")
    write("inf.xyz", "0 0 0\n1 inf 1\n1 1 0\n", "NaN or infinite")
    write("overflow.xyz", "0 0 0\n1 1e999 1\n1 1 0\n", "NaN or infinite")
    poisoned = chair.copy()
    poisoned[7] = [np.nan, 0, 0]
    write("nan.pcd", _binary_pcd(poisoned), "NaN or infinite")
    poisoned[7] = [0, np.inf, 0]
    write("inf.ply", _binary_ply(poisoned), "NaN or infinite")
    bunny = np.load(SAMPLES / "bunny_1024.npy").astype(np.float64)
    bunny[3, 2] = -np.inf
    np.save(root / "inf.npy", bunny)
    expected["inf.npy"] = "NaN or infinite"

    # No shape at all: one point, or every point in the same place.
    write("single_point.xyz", "1 2 3\n", "only one point")
    write("single_point.ply", _binary_ply(np.array([[1.0, 2.0, 3.0]])), "only one point")
    _xyz(root / "identical.xyz", np.tile([4.0, -2.0, 7.5], (500, 1)))
    expected["identical.xyz"] = "all 500 points are identical"
    write("identical.pcd", _binary_pcd(np.zeros((64, 3))), "all 64 points are identical")

    # Coordinates near the float range: 1e30 is fine (valid), beyond float32 (which the networks use) is not.
    _xyz(root / "scale_1e30.xyz", chair * 1e28)
    expected["scale_1e30.xyz"] = None
    _xyz(root / "scale_1e-30.xyz", chair * 1e-32)
    expected["scale_1e-30.xyz"] = None
    _xyz(root / "scale_1e300.xyz", chair * 1e298)
    expected["scale_1e300.xyz"] = "too large"
    write("scale_1e300.obj", "v 0 0 0\nv 1e300 0 0\nv 0 1e300 0\nf 1 2 3\n", "too large")

    # Meshes without usable faces.
    write("no_faces.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "mesh has no faces")
    write("no_faces.off", "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n", "mesh has no faces")
    write("zero_area.obj", "v 0 0 0\nv 1 1 1\nv 2 2 2\nf 1 2 3\n", "zero surface area")
    write("zero_area.off", "OFF\n3 1 0\n1 1 1\n1 1 1\n1 1 1\n3 0 1 2\n", "")
    write("faces_out_of_range.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "face indices out of range")

    # The right content under the wrong extension.
    write("ply_named.pcd", cow_ply, "PLY data")
    write("pcd_named.xyz", chair_pcd, "PCD data")
    write("npy_named.ply", (SAMPLES / "bunny_1024.npy").read_bytes(), "NPY data")
    write("obj_named.stl", (SAMPLES / "cow.obj").read_bytes()[:20000], "")
    write("ply_named.off", cow_ply, "PLY data")

    # Random bytes under every extension geocli reads from sample files.
    for extension in ("ply", "pcd", "xyz", "obj", "off", "stl", "npy", "npz", "las", "glb"):
        write(f"random.{extension}", rng.bytes(4096), "")

    # Not regular files, links that lead nowhere.
    (root / DIRECTORY).mkdir()
    expected[DIRECTORY] = "is a directory"
    os.mkfifo(root / FIFO)
    expected[FIFO] = "not a regular file"
    os.symlink(LOOP_LINKS[1], root / LOOP_LINKS[0])
    os.symlink(LOOP_LINKS[0], root / LOOP_LINKS[1])
    expected.update(dict.fromkeys(LOOP_LINKS, "symbolic link loop"))
    os.symlink("does_not_exist.ply", root / "broken_link.ply")
    expected["broken_link.ply"] = "broken symbolic link"
    os.symlink(".", root / "folder_loop")  # a folder link back to the corpus: never followed, never reported
    _xyz(root / UNREADABLE, chair[:100])
    os.chmod(root / UNREADABLE, 0)
    expected[UNREADABLE] = "permission denied"

    # Degenerate but valid.
    for name, points in degenerate_clouds().items():
        _xyz(root / name, points)
        expected[name] = None
    return expected


def unreadable_for_this_user() -> bool:
    """Whether a chmod-000 file is really unreadable here (not for root, which bypasses permissions)."""
    return os.geteuid() != 0


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python tests/corpus/make_corpus.py OUT_DIR", file=sys.stderr)
        return 2
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    print(json.dumps(build(folder), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
