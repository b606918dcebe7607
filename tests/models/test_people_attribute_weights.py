"""`PeopleTask.attribute_weights`: each named attribute's cross-entropy (or the yaw's L1) weighs in the
loss by its factor, and nothing else changes."""

from __future__ import annotations

import pytest
import torch

from onepass.errors import ConfigError
from onepass.models.tasks.base import build_task
from onepass.models.tasks.people import PeopleTask

H, W = 16, 20  # the raw head map (cells), stride 4
SIZE = (64, 80)
ATTRIBUTES = {"gender": ("female", "male"), "looking": ("no", "yes")}
PERSON = {"bbox": [24.0, 12.0, 16.0, 40.0], "attributes": {"gender": "male", "looking": True, "yaw": 30.0}}


def loss(task: PeopleTask) -> float:
    torch.manual_seed(0)
    raw = torch.randn(1, task.out_channels, H, W)
    target = {k: torch.from_numpy(v[None]) for k, v in task.target([PERSON], SIZE, "test").items()}
    return float(task.loss(raw, target))


@pytest.mark.parametrize("name", ["looking", "gender", "yaw"])
def test_a_weight_scales_that_term_alone(name):
    without = loss(PeopleTask(ATTRIBUTES, attribute_weights={name: 0.0}))
    term = loss(PeopleTask(ATTRIBUTES)) - without
    assert term > 0
    assert loss(PeopleTask(ATTRIBUTES, attribute_weights={name: 3.0})) == pytest.approx(without + 3 * term, rel=1e-5)


def test_weights_are_part_of_the_task_and_its_saved_config():
    task = PeopleTask(ATTRIBUTES, attribute_weights={"looking": 4.0})
    assert task != PeopleTask(ATTRIBUTES) and hash(task) != hash(PeopleTask(ATTRIBUTES))
    assert build_task(task.to_config()) == task
    saved = PeopleTask(ATTRIBUTES).to_config()
    del saved["attribute_weights"]  # a package from before the option
    assert build_task(saved).attribute_weights == {}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"lookin": 2.0}, "names 'lookin', which is not a person attribute of this task"),
        ({"looking": -1.0}, r"attribute_weights\['looking'\] must be a number >= 0"),
        ({"looking": "2"}, r"attribute_weights\['looking'\] must be a number >= 0"),
    ],
)
def test_a_wrong_weight_is_refused_naming_it(weights, message):
    with pytest.raises(ConfigError, match=message):
        PeopleTask(ATTRIBUTES, attribute_weights=weights)
