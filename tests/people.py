"""The people of one image, as a stage hands them on (a /predict body, people.jsonl, an npz), checked
against the in-process Predictor's: the same persons in the same order, each within the rounding of
the written result, and the audience summary counted here from the persons themselves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

BOX_ATOL = 0.15  # px: a result's boxes are rounded to 0.1 px, so two runs may differ by one step
PROBABILITY_ATOL = 2e-4  # scores and probabilities are rounded to 4 decimals
YAW_ATOL = 0.15  # degrees, rounded to 0.1


def assert_same_people(got: Sequence[Mapping[str, Any]], want: Sequence[Mapping[str, Any]]) -> None:
    """`got` holds exactly `want`'s persons: box, score, every attribute's label and probabilities, yaw."""
    assert len(got) == len(want), (len(got), len(want), got, want)
    for i, (mine, theirs) in enumerate(zip(got, want, strict=True)):
        assert set(mine) == set(theirs), (i, sorted(mine), sorted(theirs))
        np.testing.assert_allclose(mine["box"], theirs["box"], atol=BOX_ATOL, err_msg=f"person {i}")
        assert mine["score"] == pytest.approx(theirs["score"], abs=PROBABILITY_ATOL), i
        for name, value in theirs.items():
            if isinstance(value, Mapping):  # an attribute: {"label", "probabilities"}
                assert mine[name]["label"] == value["label"], (i, name)
                assert mine[name]["probabilities"] == pytest.approx(value["probabilities"], abs=PROBABILITY_ATOL)
        if "yaw" in theirs:
            turn = (mine["yaw"] - theirs["yaw"] + 180.0) % 360.0 - 180.0
            assert abs(turn) <= YAW_ATOL, (i, mine["yaw"], theirs["yaw"])


def expected_audience(people: Sequence[Mapping[str, Any]], attributes: Mapping[str, Sequence[str]]) -> dict:
    """The audience summary of these persons: how many, how many look (the `looking` attribute's
    last class, "yes"), and per other attribute how many of each class."""
    audience: dict[str, Any] = {"count": len(people)}
    for name, classes in attributes.items():
        labels = [p[name]["label"] for p in people]
        if name == "looking":
            audience["looking"] = labels.count(classes[-1])
        else:
            audience[name] = {c: labels.count(c) for c in classes}
    return audience


def people_arrays(people: Sequence[Mapping[str, Any]], attributes: Mapping[str, Sequence[str]], yaw: bool) -> dict:
    """The persons as `onepass predict --format npz` stores them: `people_boxes` (P, 4) in pixels,
    `people_scores` (P,), `people_<attribute>` (P, C) in the attribute's class order, `people_yaw` (P,)."""
    arrays = {
        "people_boxes": np.array([p["box"] for p in people], np.float32).reshape(-1, 4),
        "people_scores": np.array([p["score"] for p in people], np.float32),
    }
    for name, classes in attributes.items():
        rows = [[p[name]["probabilities"][c] for c in classes] for p in people]
        arrays[f"people_{name}"] = np.array(rows, np.float32).reshape(-1, len(classes))
    if yaw:
        arrays["people_yaw"] = np.array([p["yaw"] for p in people], np.float32)
    return arrays
