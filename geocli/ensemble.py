"""Ensembles: several classifiers of one class list, their calibrated probabilities averaged.

Networks of different families make different mistakes (TinvNN's sign rule, Frame
Averaging's eight views, APEN's parts), so the average of their probabilities is often
right where one of them is not. Each member's probabilities are its own calibrated ones
(its card's temperature, :mod:`geocli.calibration`), so a member that is overconfident
does not outvote the others. An ensemble is given as ``a,b,...`` wherever a classifier is
(``--model``, :func:`geocli.api.load_models`), and it names itself ``a+b+...``.

Members may take different input sizes: every input is prepared once at the largest of
them, and each member's network takes its own number of points from that cloud by
farthest point sampling, as it does from any cloud (:func:`geocli.api.predict_logits`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from geocli.zoo import LoadedModel

SEPARATOR = ","  # between members on the command line
JOINER = "+"  # between members in the ensemble's name: a record's `model`, a report's


@dataclass
class Ensemble:
    """Classifiers that share one class list, used as one (see the module's docstring)."""

    members: list[LoadedModel]

    @property
    def name(self) -> str:
        return JOINER.join(member.name for member in self.members)

    @property
    def classes(self) -> list[str]:
        return self.members[0].classes

    @property
    def task(self) -> str:
        return "classify"

    @property
    def input_points(self) -> int:
        return max(member.input_points for member in self.members)


Classifier = LoadedModel | Ensemble


def members_of(model: Classifier) -> list[LoadedModel]:
    """An ensemble's members, or the one model."""
    return model.members if isinstance(model, Ensemble) else [model]


def model_names(spec: str | os.PathLike) -> list[str]:
    """The models ``--model`` names: ``a,b`` is two, and so is ``a, b``; a file's path is one, comma or not."""
    text = os.fspath(spec)
    if SEPARATOR not in text or Path(text).exists():
        return [text]
    names = [name.strip() for name in text.split(SEPARATOR)]
    if not all(names):
        raise ValueError(f"model list {text!r} has an empty name; give names or cards separated by commas")
    return names


def ensemble(members: list[LoadedModel]) -> Ensemble:
    """Members as one :class:`Ensemble`, or a one-line ``ValueError`` saying why they cannot be averaged."""
    for member in members:
        if member.task != "classify":
            raise ValueError(f"model {member.name!r} is a {member.task} model; an ensemble averages classifiers")
    names = [member.name for member in members]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"model {twice[0]!r} is listed twice in the ensemble")
    first = members[0]
    for member in members[1:]:
        if member.classes != first.classes:
            raise ValueError(
                f"models {first.name!r} and {member.name!r} have different classes "
                f"({len(first.classes)} and {len(member.classes)}, {_first_difference(first, member)}); "
                "an ensemble's members must share one class list"
            )
    return Ensemble(members)


def _first_difference(a: LoadedModel, b: LoadedModel) -> str:
    """Where two class lists first part, in a few words."""
    for index, (x, y) in enumerate(zip(a.classes, b.classes)):
        if x != y:
            return f"class {index} is {x!r} in one, {y!r} in the other"
    return "one list is longer"
