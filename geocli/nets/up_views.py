"""UpViews: TinvNN's canonical cloud seen with each of its six signed axes as up.

Why: a class's shapes meet TinvNN's frame in several unrelated poses, as their proportions
decide the axis order (``docs/accuracy.md``), so the front-ends that close that gap look at
all six: :class:`geocli.nets.confident_up.ConfidentUp` answers with one of them,
:class:`geocli.nets.pooled_up.PooledUp` pools the trunk's features over them. A view is
``c @ P_v^T`` for the canonical cloud ``c`` (B,N,3) and one of six signed permutation
matrices ``P_v`` of determinant +1, so each is a fixed function of the invariant ``c`` and
the views keep the points' order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geocli.nets.tinvnn import TinvNN


def up_views() -> Tensor:
    """(6,3,3) proper signed permutations, row-vector convention (a view is ``c @ P.T``): view
    ``2k`` has canonical axis ``k`` as its third coordinate, view ``2k + 1`` that axis negated."""
    matrices = []
    for axis in range(3):
        first, second = [a for a in range(3) if a != axis]
        for sign in (1.0, -1.0):
            matrix = torch.zeros(3, 3)
            matrix[0, first], matrix[1, second], matrix[2, axis] = 1.0, 1.0, sign
            if torch.linalg.det(matrix) < 0:  # an odd permutation, or a negated up: the second axis turns round
                matrix[1, second] = -1.0
            matrices.append(matrix)
    return torch.stack(matrices)


class UpViews(TinvNN):
    """TinvNN's canonical cloud in the six views of :func:`up_views`; subclasses say what is made of them."""

    matrices: Tensor  # (6,3,3): the views, row-vector convention

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("matrices", up_views(), persistent=False)

    @property
    def num_views(self) -> int:
        return self.matrices.shape[0]

    def views(self, canonical: Tensor) -> Tensor:
        return torch.einsum("bnj,vij->bvni", canonical, self.matrices.to(canonical.dtype))
