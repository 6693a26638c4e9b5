"""Make the converted files in sample_data/ from shared/samples.

Run once, from the repo root: ``python -m sample_data.make_samples``.

Kept for provenance; the outputs are committed, so nothing needs to run this.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import open3d as o3d
import trimesh

from geocli.data.psb import category_offsets, class_names
from geocli.geometry.sampling import sample_surface
from geocli.io import read_geometry
from geocli.io.writers import write_labeled

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "samples"
PSB = SHARED.parent / "data" / "psb"
OUT = Path(__file__).resolve().parent
COPIED = ["chair_0001.pcd", "monitor_0001.pcd", "toilet_0001.pcd", "teapot.obj", "cow.obj"]


def main() -> None:
    for name in COPIED:
        shutil.copyfile(SHARED / name, OUT / name)

    cow = o3d.io.read_triangle_mesh(str(SHARED / "cow.obj"))
    cow.compute_triangle_normals()
    o3d.utility.random.seed(0)
    cloud = cow.sample_points_uniformly(2048, use_triangle_normal=True)
    o3d.io.write_point_cloud(str(OUT / "cow_2048.ply"), cloud)

    bunny = o3d.io.read_triangle_mesh(str(SHARED / "stanford-bunny.obj"))
    small = bunny.simplify_quadric_decimation(target_number_of_triangles=4000)
    mesh = trimesh.Trimesh(np.asarray(small.vertices), np.asarray(small.triangles), process=False)
    mesh.export(OUT / "bunny_4k.stl")

    teapot = read_geometry(SHARED / "teapot.obj")
    trimesh.Trimesh(teapot.points, teapot.faces, process=False).export(OUT / "teapot.off")

    igea = read_geometry(SHARED / "igea.ply")
    np.savetxt(OUT / "igea_2048.xyz", sample_surface(igea.points, igea.faces, 2048, seed=0), fmt="%.6f")

    bunny_geometry = read_geometry(SHARED / "stanford-bunny.obj")
    points = sample_surface(bunny_geometry.points, bunny_geometry.faces, 1024, seed=0)
    np.save(OUT / "bunny_1024.npy", points.astype(np.float32))
    part_labelled_mesh("Human/1")


def part_labelled_mesh(shape: str) -> None:
    """A Labeled PSB test mesh with its human part labels (global ids) per face and per vertex."""
    with np.load(PSB / "meshes" / f"{shape}.npz", allow_pickle=False) as mesh:
        vertices, faces = mesh["vertices"], mesh["faces"]
        face_labels = (
            mesh["face_labels"].astype(np.int64)
            + category_offsets(class_names(PSB.parent / "psb"))[shape.split("/")[0]]
        )
    vertex_labels = np.zeros(len(vertices), dtype=np.int64)
    vertex_labels[faces.reshape(-1)] = np.repeat(face_labels, 3)  # a vertex takes one of its faces' labels
    write_labeled(
        OUT / f"{shape.replace('/', '_').lower()}.ply", vertices, vertex_labels, faces=faces, face_labels=face_labels
    )


if __name__ == "__main__":
    main()
