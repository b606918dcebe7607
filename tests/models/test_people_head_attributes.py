"""`PeopleTask.head_attributes`: the attributes (and the yaw) it names are read at the person's head
cell, not the box's centre cell: in the loss at the true box's, in decoding at the decoded box's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from onepass.errors import ConfigError
from onepass.models.model import ModelConfig
from onepass.models.package import open_package
from onepass.models.tasks.base import build_task
from onepass.models.tasks.people import HEAD_POINT_FRACTION, PeopleTask, head_cell_index

H, W = 16, 20  # the raw head map (cells)
SIZE = (64, 80)  # the image (pixels), stride 4
ATTRIBUTES = {"gender": ("female", "male"), "looking": ("no", "yes")}

# one person: a peak at cell (x=7, y=9), sub-cell offset (0.5, 0.25), 4 x 12 cells
PEAK_X, PEAK_Y, OFFSET, BOX = 7, 9, (0.5, 0.25), (4.0, 12.0)
CENTRE_Y = PEAK_Y + OFFSET[1]
HEAD_Y = math.floor(CENTRE_Y - BOX[1] / 2 + HEAD_POINT_FRACTION * BOX[1])  # row 4


def one_person_map(task: PeopleTask) -> torch.Tensor:
    """A raw map with one confident person whose centre cell says (male, not looking, yaw -90°) and
    whose head cell says (female, looking, yaw 90°)."""
    raw = torch.zeros(1, task.out_channels, H, W)
    raw[:, 0] = -10.0
    raw[0, 0, PEAK_Y, PEAK_X] = 3.0
    raw[0, 1:3, PEAK_Y, PEAK_X] = torch.log(torch.tensor(BOX))
    raw[0, 3:5, PEAK_Y, PEAK_X] = torch.tensor(OFFSET)
    for y, gender, looking, sin in ((PEAK_Y, 1, 0, -1.0), (HEAD_Y, 0, 1, 1.0)):
        raw[0, 5 + gender, y, PEAK_X] = 5.0  # gender: channels 5, 6
        raw[0, 7 + looking, y, PEAK_X] = 5.0  # looking: channels 7, 8
        raw[0, 9:11, y, PEAK_X] = torch.tensor([sin, 0.0])  # (sin, cos): yaw ±90°
    return raw


def test_the_head_point_sits_below_the_top_of_the_box():
    assert HEAD_Y == 4 and HEAD_Y != PEAK_Y  # the test map's head and centre cells differ
    boxes = torch.tensor([[[0.25, 0.25, 0.75, 0.75], [-0.3, -0.5, 0.1, 0.5], [0.9, 0.2, 1.4, 0.9]]])
    head_y = math.floor((0.25 + HEAD_POINT_FRACTION * 0.5) * H)
    assert head_cell_index(boxes, H, W).tolist() == [
        [head_y * W + W // 2, 0, math.floor((0.2 + HEAD_POINT_FRACTION * 0.7) * H) * W + W - 1]
    ]


def test_named_attributes_decode_from_the_head_cell_of_the_decoded_box():
    task = PeopleTask(ATTRIBUTES, max_people=3, head_attributes=("looking", "yaw"))
    raw = one_person_map(task)
    out = task.postprocess(raw)
    assert out["people_count"].tolist() == [1]
    assert out["people_looking"][0, 0].argmax() == 1  # the head cell's
    assert out["people_yaw"][0, 0] == pytest.approx(90.0, abs=1e-4)
    assert out["people_gender"][0, 0].argmax() == 1  # not named: the centre cell's
    at_frame = task.postprocess_at(raw, (640, 800))
    assert at_frame["people_looking"][0, 0].argmax() == 1 and at_frame["people_yaw"][0, 0] == pytest.approx(90.0)
    # without head_attributes, as before: everything at the centre cell
    plain = PeopleTask(ATTRIBUTES, max_people=3).postprocess(raw)
    assert plain["people_looking"][0, 0].argmax() == 0 and plain["people_yaw"][0, 0] == pytest.approx(-90.0)
    assert plain["people_gender"][0, 0].argmax() == 1
    np.testing.assert_array_equal(plain["people_boxes"].numpy(), out["people_boxes"].numpy())


def test_the_loss_takes_named_attributes_from_the_true_boxs_head_cell():
    x, y, w, h = 24.0, 12.0, 16.0, 40.0  # pixels, stride 4: centre cell (8, 8), head cell row 3
    person = {"bbox": [x, y, w, h], "attributes": {"gender": "male", "looking": True, "yaw": 30.0}}
    centre = (int((y + h / 2) / 4), int((x + w / 2) / 4))
    head = (math.floor((y + HEAD_POINT_FRACTION * h) / 4), centre[1])
    assert head != centre

    def gradients(task: PeopleTask) -> torch.Tensor:
        target = {k: torch.from_numpy(v[None]) for k, v in task.target([person], SIZE, "test").items()}
        raw = torch.zeros(1, task.out_channels, H, W, requires_grad=True)
        task.loss(raw, target).backward()
        return raw.grad[0]

    def cells_with_gradient(grad: torch.Tensor, channels: slice) -> list[tuple[int, int]]:
        return [tuple(c) for c in torch.nonzero(grad[channels].abs().sum(0)).tolist()]

    grad = gradients(PeopleTask(ATTRIBUTES, max_people=4, head_attributes=("looking", "yaw")))
    assert cells_with_gradient(grad, slice(7, 9)) == [head]  # looking
    assert cells_with_gradient(grad, slice(9, 11)) == [head]  # yaw
    assert cells_with_gradient(grad, slice(5, 7)) == [centre]  # gender
    assert cells_with_gradient(grad, slice(1, 5)) == [centre]  # size and offset
    plain = gradients(PeopleTask(ATTRIBUTES, max_people=4))
    assert cells_with_gradient(plain, slice(7, 11)) == [centre]


def test_bad_head_attributes_are_refused():
    with pytest.raises(ConfigError, match=r"'age'.*choose from: gender, looking, yaw"):
        PeopleTask(ATTRIBUTES, head_attributes=("age",))
    with pytest.raises(ConfigError, match=r"'yaw'.*choose from: gender, looking\)"):
        PeopleTask(ATTRIBUTES, yaw=False, head_attributes=("yaw",))
    with pytest.raises(ConfigError, match="twice"):
        PeopleTask(ATTRIBUTES, head_attributes=("looking", "looking"))
    with pytest.raises(ConfigError, match="list of names"):
        build_task({"type": "people", "head_attributes": "looking"})


def test_head_attributes_are_saved_and_an_entry_without_them_reads_as_none():
    task = PeopleTask(ATTRIBUTES, head_attributes=("looking", "yaw"))
    config = task.to_config()
    assert config["head_attributes"] == ["looking", "yaw"]
    assert build_task(config) == task and hash(build_task(config)) == hash(task)
    assert task != PeopleTask(ATTRIBUTES)
    old = {k: v for k, v in config.items() if k != "head_attributes"}  # written before the field existed
    assert build_task(old).head_attributes == ()
    shipped = open_package("default").config  # onepass.json has no head_attributes
    (people,) = [t for t in shipped.tasks if t.name == "people"]
    assert people.head_attributes == ()
    assert ModelConfig.from_json(shipped.to_json()) == shipped


def test_the_head_point_fraction_is_the_synthetic_persons_median():
    """HEAD_POINT_FRACTION is measured: the head centre's height in the box of the renderer's persons."""
    from onepass.data.synth import render_scene

    rng = np.random.default_rng(7)
    fractions = [
        (person.head_centre[1] - person.box[1]) / person.box[3]
        for _ in range(40)
        for person in render_scene(rng, 128, 160).people
        if not person.truncated and person.box[3] >= 20
    ]
    assert len(fractions) > 40
    assert abs(float(np.median(fractions)) - HEAD_POINT_FRACTION) < 0.01


def test_the_label_summary_says_what_is_read_at_the_head():
    assert "looking, yaw read at the head" in PeopleTask(ATTRIBUTES, head_attributes=("looking", "yaw")).label_summary()
    assert "head" not in PeopleTask(ATTRIBUTES).label_summary()
