"""Checkers for lesson 08, does LDP lose information?"""

from __future__ import annotations

from typing import Any

import torch

from mobilevlm_mini.data import COARSE_TYPES, FINE_TYPES
from mobilevlm_mini.exercises._checking import NotYet, _call, checker

_RECORDS = [  # hidden records for lesson 08, exercise 1: (image, type, answer, predicted)
    (0, "colour", "red", "red"), (0, "size", "small", "large"), (0, "shape", "circle", "circle"),
    (2, "colour", "blue", "green"), (2, "count", "two", "two"), (3, "neighbour", "a red circle", "a red circle"),
    (3, "small", "yes", "yes"), (1, "size", "large", "large"),
]


@checker
def check_08_exercise_1(per_image: Any) -> str:
    """Lesson 08, exercise 1: per test image, the right answers and the questions asked of some question types (for a
    bootstrap)."""
    records = [{"image": i, "type": kind, "question": "?", "answer": a, "predicted": b} for i, kind, a, b in _RECORDS]
    n = 1 + max(r["image"] for r in records)
    for kinds, name in ((COARSE_TYPES, "COARSE_TYPES"), (FINE_TYPES, "FINE_TYPES")):
        result = _call(per_image, "per_image", records, kinds)
        try:
            right, asked = (torch.as_tensor(v, dtype=torch.float).flatten() for v in result)
        except (TypeError, ValueError, RuntimeError):
            raise NotYet("`per_image(records, kinds)` should return two tensors: (right answers, questions asked) per "
                         "image") from None
        if len(right) < n or len(asked) != len(right):
            raise NotYet(f"`per_image` should return one count per test image; with questions about images 0-{n - 1} "
                         f"it gave {len(right)} and {len(asked)} counts")
        want_right, want_asked = torch.zeros(len(right)), torch.zeros(len(right))
        for r in records:
            if r["type"] in kinds:
                want_right[r["image"]] += r["answer"] == r["predicted"]
                want_asked[r["image"]] += 1
        if not torch.equal(asked, want_asked):
            raise NotYet(f"the questions asked per image are wrong for kinds={name}: count only the records whose type "
                         "is in `kinds`, at the index of their image")
        if not torch.equal(right, want_right):
            raise NotYet(f"the right answers per image are wrong for kinds={name}: count the records of those types "
                         "whose `predicted` equals their `answer`")
    return "per-image counts are right: resample image indices, sum, divide, and read the 2.5% and 97.5% quantiles"
