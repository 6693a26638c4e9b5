"""Write a generated scene scan (:func:`geocli.data.scenes.make_scene`) as a PLY cloud, to try ``--clusters`` on.

Usage: python scripts/make_scene.py OUT.ply [--seed 0] [--objects N (default: 2-6 at random)]

Prints each object's ModelNet40 shape name and class, in the order the scene was built.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geocli.data.modelnet40 import class_names, load_split
from geocli.data.scenes import make_scene
from geocli.io.writers import write_ply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objects", type=int, choices=range(1, 11), metavar="1-10")
    args = parser.parse_args()
    shapes, names = load_split("test"), class_names()
    scene = make_scene(shapes, args.seed, args.objects)
    write_ply(args.out, scene.points)
    for shape, label, found in zip(scene.shapes, scene.labels, scene.objects):
        print(f"{shapes.names[shape]}  {names[label]}  {len(found)} points")
    print(f"{args.out}: {len(scene.points)} points, {(scene.instances < 0).sum()} of them floor")


if __name__ == "__main__":
    main()
