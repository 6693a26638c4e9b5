"""The models used when none is named: the best shipped one of each task, by its card's eval figures.

Kept free of imports so the command line can show them in ``--help`` without loading torch.
"""

DEFAULT_CLASSIFIER = "tinvnn-edge-modelnet40"
DEFAULT_SEGMENTER = "tinvnn-edge-psb"
