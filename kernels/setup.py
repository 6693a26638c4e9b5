"""Build of geocli's compiled CPU kernels (``pip install --no-build-isolation ./kernels``).

A package of its own, like torch-cluster: it must be compiled against the installed
torch, which build isolation would replace, and geocli works without it (pure-torch
fallback), so geocli itself stays a plain Python package.
"""

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

setup(
    name="geocli-kernels",
    version="1",
    description="Fused neighbour kernels for geocli (CPU, C++ with torch's thread pool)",
    packages=["geocli_kernels"],
    ext_modules=[
        CppExtension(
            "geocli_kernels._C",
            ["geocli_kernels/kernels.cpp"],
            # no FMA contraction: FPS must round its distances exactly as the torch route does
            extra_compile_args=["-O3", "-fopenmp", "-ffp-contract=off"],
            extra_link_args=["-fopenmp"],
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
