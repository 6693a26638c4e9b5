"""Part labels over several categories at once, without being told the category.

A segmenter's classes are named ``Category/part`` (94 of them for Labeled PSB). Taking
each point's arg-max over all parts can mix categories on one shape (a chair leg on a
table). Instead the shape's category is decided first, by the probability mass its
parts collect over the whole cloud, and each point then takes the most probable part
*of that category*. The category comes free as a whole-shape prediction, and a shape
is never labelled with parts of two categories.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def part_categories(classes: list[str]) -> tuple[list[str], Tensor]:
    """Category names (in order of first appearance) and each class's category index."""
    categories: list[str] = []
    index = []
    for name in classes:
        category = name.split("/", 1)[0] if "/" in name else ""
        if category not in categories:
            categories.append(category)
        index.append(categories.index(category))
    return categories, torch.tensor(index)


@dataclass
class Decoded:
    category: Tensor  # (B,) category index
    labels: Tensor  # (B, N) class index (within every class)
    scores: Tensor  # (B, N) probability of the label among the category's parts


def decode(logits: Tensor, category_of: Tensor) -> Decoded:
    """Category by summed part probabilities, then each point's best part within it."""
    probs = logits.float().softmax(dim=-1)  # (B, N, C)
    mass = torch.zeros(probs.shape[0], int(category_of.max()) + 1, dtype=probs.dtype, device=probs.device)
    mass.index_add_(1, category_of.to(probs.device), probs.sum(dim=1))
    category = mass.argmax(dim=1)
    allowed = category_of.to(probs.device)[None, :] == category[:, None]  # (B, C)
    restricted = probs * allowed[:, None, :]
    best, labels = restricted.max(dim=-1)
    return Decoded(category, labels, best / restricted.sum(dim=-1).clamp_min(1e-12))
