"""Reading 3D geometry files; heavy backends are imported only when a file is read."""

# The package's API is exactly what geocli.io.readers lists in its __all__.
from geocli.io.readers import *  # noqa: F403
from geocli.io.readers import __all__ as __all__
