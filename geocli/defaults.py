"""Names the command line needs before it loads torch: the models used when none is named (the
best shipped one of each task, by its card's eval figures) and card vocabulary.

Kept free of imports so ``--help`` and ``geocli models`` stay fast.
"""

DEFAULT_CLASSIFIER = "tinvnn-edge-modelnet40"
DEFAULT_SEGMENTER = "tinvnn-edge-psb"
# What a card's training.started_from says when a run did not continue other weights.
RANDOM_START = "random initialisation"
