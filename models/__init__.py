"""Shipped checkpoints (``<name>.safetensors`` + ``<name>.json`` cards), installed as ``geocli._models``."""
