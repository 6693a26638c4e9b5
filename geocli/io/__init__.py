"""Reading 3D geometry files; heavy backends are imported only when a file is read."""

from geocli.io.errors import GeometryError
from geocli.io.readers import (
    DEFAULT_MAX_POINTS,
    SUPPORTED_EXTENSIONS,
    Geometry,
    read_geometry,
    validate_points,
)

__all__ = ["DEFAULT_MAX_POINTS", "SUPPORTED_EXTENSIONS", "Geometry", "GeometryError", "read_geometry", "validate_points"]
