"""Names the command line needs before it loads torch: the models used when none is named (the
best shipped one of each task, by its card's eval figures) and card vocabulary.

Kept free of imports so ``--help`` and ``geocli models`` stay fast.
"""

DEFAULT_CLASSIFIER = "tinvnn-edge-modelnet40"
DEFAULT_SEGMENTER = "tinvnn-edge-psb"
# What a card's training.started_from says when a run did not continue other weights.
RANDOM_START = "random initialisation"
# How `--clusters` splits a scene (geocli.clusters.ClusterOptions), lengths in point spacings: the
# floor is the dominant plane's points within FLOOR_DISTANCE of it, when they are FLOOR_SHARE of the
# scan or more; DBSCAN links points within CLUSTER_EPS; an object has MIN_OBJECT_POINTS or more;
# removed points in an object's footprint and within BASE_REACH (its own spacings) of it are its base.
FLOOR_DISTANCE = 2.0
FLOOR_SHARE = 0.2
CLUSTER_EPS = 10.0
MIN_OBJECT_POINTS = 100
BASE_REACH = 2.5
