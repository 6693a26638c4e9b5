"""geocli: classify and segment 3D point clouds and meshes with rotation-invariant networks.

The public API is loaded lazily so that importing the package (and running
``geocli --help``) does not pay for importing torch.
"""

from __future__ import annotations

from typing import Any

# The one place the version is written: pyproject.toml reads it from here (setuptools' dynamic
# version), and so do the installed metadata and `geocli --version`.
__version__ = "0.1.0"
__all__ = ["classify", "classify_iter", "segment", "load_model", "load_models", "list_models"]


def __getattr__(name: str) -> Any:
    if name in ("classify", "classify_iter", "segment", "load_model", "load_models"):
        from geocli import api

        return getattr(api, name)
    if name == "list_models":
        from geocli.zoo import list_models

        return list_models
    raise AttributeError(f"module 'geocli' has no attribute {name!r}")
