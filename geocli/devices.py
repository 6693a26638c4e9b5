"""Which torch device a ``--device`` spec names: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

from __future__ import annotations

import re

import torch

DEVICE_SPEC = re.compile(r"cpu|cuda(:\d+)?")


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' picks CUDA when available; 'cuda' or 'cuda:N' without a GPU is a clear error.

    Anything else is refused in one line naming the choices: ``torch.device`` would list
    every device type torch knows (twenty of them), most of which geocli cannot run on.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not DEVICE_SPEC.fullmatch(spec):
        raise ValueError(f"unknown device {spec!r}; choose auto, cpu, cuda or cuda:N")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available")
    return device
