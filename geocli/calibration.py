"""Scores a user can trust: temperature scaling, and the figures that say how well a score matches accuracy.

A network trained with cross-entropy (label smoothing included) gives scores that are not
the probability of being right: among inputs scored 0.9, far more or far fewer than 90 %
may be correct. Temperature scaling (Guo et al., "On Calibration of Modern Neural
Networks", ICML 2017) divides every logit by one number ``T`` before the softmax, ``T``
chosen to minimise the negative log-likelihood on held-out data (here the validation split
training carved from the training set; :mod:`geocli.calibrate`). Dividing by a positive
number keeps the logits' order, so no label changes; only how sure the scores say the
network is. A card without a ``calibration`` block is used with ``T = 1`` (its raw softmax).

The expected calibration error (ECE) measures what is left: predictions are put in
``ECE_BINS`` = 15 equal-width bins of confidence (the top score; bin ``i`` holds scores in
``(i/15, (i+1)/15]``, a score of 0 going to the first), and ECE is the average over bins of
``|accuracy - mean confidence|``, each bin weighted by its share of the predictions. 0 is
perfect; a network right 80 % of the time that always says 0.99 has an ECE of 0.19.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

ECE_BINS = 15
LOG_TEMPERATURE_RANGE = (-5.0, 5.0)  # T from 0.007 to 148: far beyond any network's need
_GOLDEN = (math.sqrt(5) - 1) / 2


def calibrated_probabilities(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``softmax(logits / temperature)`` in float64, so no two distinct float32 logits tie after scaling.

    In float32 two logits a rounding apart could become equal once divided by ``T``, and the
    arg-max (the label) could then move to the other class; float64 keeps them apart.
    """
    return (logits.double() / temperature).softmax(dim=-1)


def expected_calibration_error(probabilities: Tensor, labels: Tensor, bins: int = ECE_BINS) -> float:
    """ECE of (S, C) class probabilities against (S,) true labels (see the module's docstring)."""
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels).double()
    confidence = confidence.double()
    # bin i holds (i/bins, (i+1)/bins]; ceil(c * bins) - 1 is that index, 0 for a confidence of exactly 0
    index = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            error += float(members.double().mean() * (correct[members].mean() - confidence[members].mean()).abs())
    return error


def negative_log_likelihood(probabilities: Tensor, labels: Tensor) -> float:
    """Mean ``-log p(true class)``; a probability that underflowed to 0 counts as the smallest float64."""
    true = probabilities.double().gather(1, labels.long()[:, None])[:, 0]
    return float(-true.clamp_min(torch.finfo(torch.float64).tiny).log().mean())


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The ``T`` that minimises the NLL of ``softmax(logits / T)`` on (S, C) logits and their (S,) labels.

    The NLL is convex in ``1/T`` (a log-sum-exp of linear functions minus a linear one), hence
    unimodal in ``log T``, so a golden-section search over ``log T`` finds the minimum without
    step sizes to tune; 80 steps narrow the 10-wide bracket to 1e-15.
    """
    logits, labels = logits.double(), labels.long()
    true = logits.gather(1, labels[:, None])[:, 0]

    def nll(log_t: float) -> float:
        scaled = logits * math.exp(-log_t)
        return float((scaled.logsumexp(dim=1) - true * math.exp(-log_t)).mean())

    low, high = LOG_TEMPERATURE_RANGE
    a, b = high - _GOLDEN * (high - low), low + _GOLDEN * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - _GOLDEN * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + _GOLDEN * (high - low)
            fb = nll(b)
    return math.exp((low + high) / 2)


def calibration_figures(probabilities: Tensor, labels: Tensor) -> dict[str, float]:
    """ECE and NLL of probabilities against labels, the pair eval reports beside accuracy."""
    return {
        "ece": expected_calibration_error(probabilities, labels),
        "nll": negative_log_likelihood(probabilities, labels),
    }


def temperature_of(card: Mapping[str, Any]) -> float:
    """The card's fitted temperature, or 1 (the raw softmax) for a card never calibrated."""
    calibration = card.get("calibration")
    return float(calibration["temperature"]) if isinstance(calibration, Mapping) else 1.0
