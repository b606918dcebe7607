"""`PeopleTask.nms_iou`: a peak whose box overlaps a better peak's is suppressed in the graph (Fast
NMS), so that one person with two heatmap maxima is counted, tracked and drawn once."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from onepass.errors import ConfigError
from onepass.models.tasks.base import build_task
from onepass.models.tasks.people import NEW_MODEL_NMS_IOU, CentreHead, PeopleTask, suppress_overlaps

H, W = 16, 20  # the raw head map (cells)
ATTRIBUTES = {"gender": ("female", "male"), "looking": ("no", "yes")}


def test_a_box_overlapping_a_better_one_is_suppressed_and_the_others_are_kept():
    boxes = torch.tensor(
        [
            [
                [0.10, 0.10, 0.30, 0.50],  # A
                [0.11, 0.12, 0.30, 0.52],  # A again, shifted: IoU 0.86 with A
                [0.60, 0.10, 0.80, 0.50],  # B, apart from A
                [0.25, 0.10, 0.45, 0.50],  # C: IoU 0.14 with A, beside it
            ]
        ]
    )
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6]])
    assert suppress_overlaps(boxes, scores, 0.3)[0].tolist() == pytest.approx([0.9, 0.0, 0.7, 0.6])
    assert suppress_overlaps(boxes, scores, 0.9)[0].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])


def test_fast_nms_lets_a_suppressed_box_suppress_as_its_docstring_says():
    """A chain A-B-C (A and B overlap, B and C overlap, A and C do not): greedy NMS would keep C,
    Fast NMS does not."""
    boxes = torch.tensor([[[0.0, 0.0, 0.4, 1.0], [0.2, 0.0, 0.6, 1.0], [0.4, 0.0, 0.8, 1.0]]])
    assert suppress_overlaps(boxes, torch.tensor([[0.9, 0.8, 0.7]]), 0.3)[0].tolist() == pytest.approx([0.9, 0, 0])


def two_peaks_on_one_person_and_one_apart(task: PeopleTask) -> torch.Tensor:
    """Peaks at (x=5, y=5) and (5, 8) with the same 4 x 12-cell box (one person, IoU 0.6), the first
    female and the second male; a third at (15, 6), male."""
    raw = torch.zeros(1, task.out_channels, H, W)
    raw[:, 0] = -10.0
    for (x, y), logit, gender in (((5, 5), 3.0, 0), ((5, 8), 2.0, 1), ((15, 6), 1.0, 1)):
        raw[0, 0, y, x] = logit
        raw[0, 1:3, y, x] = torch.log(torch.tensor([4.0, 12.0]))
        raw[0, 5 + gender, y, x] = 5.0  # gender: channels 5, 6
    return raw


def test_the_graph_counts_one_person_once_and_reads_the_survivors_attributes_in_score_order():
    plain = PeopleTask(ATTRIBUTES, max_people=4, yaw=False)
    raw = two_peaks_on_one_person_and_one_apart(plain)
    before = plain.postprocess(raw)
    assert before["people_count"].tolist() == [3]
    task = PeopleTask(ATTRIBUTES, max_people=4, yaw=False, nms_iou=0.3)
    after = task.postprocess(raw)
    assert after["people_count"].tolist() == [2]
    scores = after["people_scores"][0].tolist()
    assert scores[:2] == pytest.approx([1 / (1 + math.exp(-3.0)), 1 / (1 + math.exp(-1.0))])
    assert max(scores[2:]) < 1e-3  # a background cell, then the suppressed peak (0), last
    assert after["people_gender"][0, :2].argmax(-1).tolist() == [0, 1]  # the first peak's, then the third's
    np.testing.assert_allclose(after["people_boxes"][0, 1].numpy(), before["people_boxes"][0, 2].numpy())
    # in the frame's pixels too
    at_frame = task.postprocess_at(raw, (64, 80))
    assert at_frame["people_count"].tolist() == [2]
    np.testing.assert_allclose(
        at_frame["people_boxes"][0, 1].numpy(), after["people_boxes"][0, 1].numpy() * [80, 64, 80, 64]
    )


def test_new_models_suppress_and_saved_packages_keep_their_own_decoding():
    class Description:
        person_attributes = {"gender": ["female", "male"]}

    assert PeopleTask.from_dataset(Description()).nms_iou == NEW_MODEL_NMS_IOU
    saved = PeopleTask(ATTRIBUTES).to_config()
    del saved["nms_iou"]  # a package written before the option
    assert build_task(saved).nms_iou is None
    assert build_task({**saved, "nms_iou": 0.5}).nms_iou == 0.5
    assert PeopleTask(ATTRIBUTES, nms_iou=0.5) != PeopleTask(ATTRIBUTES)


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, -0.2])
def test_an_iou_outside_the_open_unit_interval_is_refused(value):
    with pytest.raises(ConfigError, match="nms_iou"):
        PeopleTask(ATTRIBUTES, nms_iou=value)


def test_suppression_exports_with_parity_and_removes_peaks_in_the_onnx_graph(tmp_path):
    """Wide boxes from a random head (every box 8 cells across) overlap their neighbours: the ONNX
    graph suppresses the same peaks as PyTorch, and counts fewer than without suppression."""
    import dataclasses

    from onepass.export.onnx import export_onnx
    from onepass.export.parity import onnx_parity, onnx_runner, parity
    from onepass.models import MultiTaskModel, open_package, save_package
    from tests.tiny import PERSON_ATTRIBUTES, tiny_config

    people = PeopleTask(PERSON_ATTRIBUTES, max_people=8, score_threshold=0.01, nms_iou=0.3)
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_config(tasks=(people,))).eval()
    head = next(m for m in model.modules() if isinstance(m, CentreHead))
    with torch.no_grad():
        head.project.bias[1:3] = math.log(8.0)
    save_package(tmp_path, model, "tiny")
    package = open_package(tmp_path)
    path = export_onnx(package)
    checks = onnx_parity(package, path)
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    with torch.no_grad():
        raw = model(torch.rand(2, 3, 64, 96))["people"]
    assert (
        people.postprocess(raw)["people_count"]
        < dataclasses.replace(people, nms_iou=None).postprocess(raw)["people_count"]
    ).all()
    unsuppressed = dataclasses.replace(people, nms_iou=None)
    raw_model = dataclasses.replace(package, config=dataclasses.replace(package.config, tasks=(unsuppressed,)))
    failed = {c.output for c in parity(raw_model, onnx_runner(path)) if not c.passed}
    assert "people_count" in failed  # the graph is not the plain decoding
