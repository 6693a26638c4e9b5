#!/usr/bin/env bash
# Idempotent set-up of the development environment in .venv.
# Every step checks first and does nothing when its work is already done, so a
# second run takes seconds. No prompts anywhere: runs without a terminal or
# standard input (CI). Normally called by make through the .venv/.geocli-installed stamp.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0   # the CPU build pip finds on local disk
VENV=.venv
PY="$VENV/bin/python"

export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
export PATH="$PATH:/usr/sbin:/sbin"   # ldconfig, for non-login shells

log() { printf '[setup %3ds] %s\n' "$SECONDS" "$*"; }
pip() { "$PY" -m pip "$@" </dev/null; }
# Installed version of a distribution, or nothing.
dist_version() {
    "$PY" -c 'import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass' "$1"
}

# 1. open3d's wheel links against the system's libusb.
#    (grep reads all of ldconfig's output: `grep -q` could SIGPIPE ldconfig, and pipefail would call that "missing".)
if ! ldconfig -p | grep libusb-1.0 >/dev/null; then
    log "installing libusb-1.0-0 (needed by open3d)"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq </dev/null
    $sudo apt-get install -y -qq libusb-1.0-0 </dev/null
fi

# 2. The virtual environment, with a setuptools that builds wheels by itself
#    (needed by the --no-build-isolation builds below and in tests/test_packaging.py).
if [ ! -x "$PY" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
fi
if ! "$PY" -c 'import setuptools, sys; sys.exit(tuple(map(int, setuptools.__version__.split(".")[:2])) < (70, 1))' 2>/dev/null; then
    pip install -q 'setuptools>=70.1'
fi

# 3. torch, pinned, before anything that depends on it: left to itself pip would
#    resolve `torch` to a multi-GB CUDA build. (The version reads e.g. 2.13.0+cpu.)
installed_torch=$(dist_version torch)
if [ "${installed_torch%%+*}" != "$TORCH_VERSION" ]; then
    log "installing torch==$TORCH_VERSION (found: ${installed_torch:-none})"
    pip install "torch==$TORCH_VERSION"
fi

# 4. torch-cluster has no wheel: compile it against the torch above
#    (--no-build-isolation, else pip would build it against a fresh torch download).
#    FORCE_ONLY_CPU: our torch is a CPU build, even where nvcc is installed.
#    DIST_EXTRA_CONFIG: compile its C++ files in parallel, one per core (about halves the time).
if ! "$PY" -c 'import torch_cluster' 2>/dev/null; then
    log "building torch-cluster against torch $TORCH_VERSION (minutes: compiles C++)"
    build_cfg=$(mktemp)
    printf '[build_ext]\nparallel = %s\n' "$(nproc)" >"$build_cfg"
    export FORCE_ONLY_CPU=1 DIST_EXTRA_CONFIG="$build_cfg"
    pip install --no-build-isolation torch-cluster
    if ! "$PY" -c 'import torch_cluster'; then
        # pip may have reused a wheel it cached from a build against another torch.
        log "torch-cluster does not import: rebuilding it from source"
        pip install --no-build-isolation --no-cache-dir --force-reinstall --no-deps torch-cluster
        "$PY" -c 'import torch_cluster'
    fi
    rm -f "$build_cfg"
fi

# 5. geocli's own compiled kernels (kernels/: the fused neighbour max), against the same
#    torch. Rebuilt when their sources change (a hash stamp in the venv). geocli works
#    without them (a pure-torch fallback, slower), so a failed build warns and goes on.
kernels_hash=$(cat kernels/setup.py kernels/geocli_kernels/*.py kernels/geocli_kernels/*.cpp | sha256sum | cut -c1-16)
kernels_stamp="$VENV/.geocli-kernels-$kernels_hash"
if [ ! -f "$kernels_stamp" ] || ! "$PY" -c 'import geocli_kernels' 2>/dev/null; then
    log "building geocli-kernels (C++, about a minute)"
    rm -f "$VENV"/.geocli-kernels-*
    if pip install -q --no-build-isolation --no-deps --force-reinstall ./kernels; then
        rm -rf kernels/build kernels/*.egg-info
        touch "$kernels_stamp"
    else
        log "WARNING: geocli-kernels did not build; geocli falls back to pure torch (slower)"
    fi
fi

# 6. geocli itself (editable) with its dependencies, the test tools (pytest; ruff and mypy for `make lint`)
#    and Ray, so that the suite runs --ray on a local cluster (the ray extra: one 80 MB wheel, seconds).
#    The torch>=2.4 requirement is already met by the pinned build, so pip keeps it.
log "installing geocli (editable) with its dependencies"
pip install -q -e '.[test,ray]'

log "done"
