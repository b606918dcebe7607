"""The people task on its own: targets, the centre-based loss and decoding agree, and the metrics
match hand-computed values (pycocotools' AP included)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from onepass.errors import ConfigError
from onepass.models.tasks.people import (
    PeopleTask,
    angle_difference,
    best_count_threshold,
    box_iou_matrix,
    count_accuracy,
    match_people,
)

H, W = 16, 20  # the raw head map (cells)
SIZE = (64, 80)  # the image (pixels), stride 4


def persons():
    return [
        {
            "bbox": [8, 4, 16, 40],
            "attributes": {"age_group": "adult", "gender": "female", "looking": True, "yaw": 10.0},
        },
        {
            "bbox": [44, 20, 12, 30],
            "attributes": {"age_group": "child", "gender": "male", "looking": False, "yaw": -150},
        },
        {"bbox": [60, 6, 14, 50], "attributes": {"gender": "male"}},  # age, looking and yaw not labelled
    ]


def batch_of(task, labels):
    targets = [task.target(label, SIZE, "test") for label in labels]
    return {k: torch.from_numpy(np.stack([t[k] for t in targets])) for k in targets[0]}


def test_target_fractions_classes_and_missing_values():
    task = PeopleTask(max_people=4)
    target = task.target(persons(), SIZE, "test")
    assert target["labelled"] and target["valid"].tolist() == [True, True, True, False]
    np.testing.assert_allclose(target["boxes"][0], [8 / 80, 4 / 64, 24 / 80, 44 / 64])
    assert target["age_group"].tolist() == [1, 0, -1, -1]
    assert target["looking"].tolist() == [1, 0, -1, -1]
    assert target["yaw"][0] == 10.0 and math.isnan(target["yaw"][2])
    empty = task.target(None, SIZE, "test")
    assert not empty["labelled"] and not empty["valid"].any()
    with pytest.raises(ValueError, match="'elder' is not a class of attribute 'age_group'"):
        task.target([{"bbox": [0, 0, 1, 1], "attributes": {"age_group": "elder"}}], SIZE, "img 7")


def test_flip_mirrors_boxes_and_yaw_and_twice_is_identity():
    task = PeopleTask(max_people=4)
    target = task.target(persons(), SIZE, "test")
    flipped = task.flip_target(target)
    np.testing.assert_allclose(flipped["boxes"][0], [1 - 24 / 80, 4 / 64, 1 - 8 / 80, 44 / 64], rtol=1e-6)
    assert flipped["yaw"][1] == 150
    again = task.flip_target(flipped)
    np.testing.assert_allclose(again["boxes"], target["boxes"], atol=1e-6)


def test_decoding_a_hand_built_map():
    task = PeopleTask(attributes={"gender": ("female", "male")}, max_people=3, score_threshold=0.5)
    raw = torch.full((1, task.out_channels, H, W), 0.0)
    raw[:, 0] = -10.0  # nobody ...
    raw[0, 0, 5, 7] = 3.0  # ... but a confident peak at cell (x=7, y=5)
    raw[0, 0, 5, 8] = 2.0  # its neighbour is not a peak
    raw[0, 0, 12, 2] = -0.5  # a weak peak, under the threshold
    raw[0, 1:3, 5, 7] = torch.log(torch.tensor([4.0, 8.0]))  # 4 x 8 cells
    raw[0, 3:5, 5, 7] = torch.tensor([0.5, 0.25])  # sub-cell offset
    raw[0, 5:7, 5, 7] = torch.tensor([0.0, 5.0])  # male
    raw[0, 7:9, 5, 7] = torch.tensor([1.0, 0.0])  # sin 90°, cos 0 -> yaw 90°
    out = {k: v.numpy() for k, v in task.postprocess(raw).items()}
    assert out["people_count"].tolist() == [1]
    assert out["people_scores"][0, 0] == pytest.approx(1 / (1 + math.exp(-3)), rel=1e-6)
    assert out["people_scores"][0, 1] == pytest.approx(1 / (1 + math.exp(0.5)), rel=1e-6)
    cx, cy = (7 + 0.5) / W, (5 + 0.25) / H
    np.testing.assert_allclose(out["people_boxes"][0, 0], [cx - 2 / W, cy - 4 / H, cx + 2 / W, cy + 4 / H], rtol=1e-5)
    assert out["people_gender"][0, 0].argmax() == 1
    assert out["people_yaw"][0, 0] == pytest.approx(90.0, abs=1e-4)
    result = task.to_result({k: v[0] for k, v in out.items()}, (640, 800))  # a 10x larger frame
    assert len(result) == 1 and result[0]["gender"]["label"] == "male" and result[0]["yaw"] == 90.0
    assert result[0]["box"] == pytest.approx(
        [(cx - 2 / W) * 800, (cy - 4 / H) * 640, (cx + 2 / W) * 800, (cy + 4 / H) * 640], abs=0.06
    )
    assert task.summary(result) == {"count": 1, "gender": {"female": 0, "male": 1}}
    # the weak peak is a candidate for a tracker: left out of the result, marked not counted, same form
    image = {k: v[0] for k, v in out.items()}
    (weak,) = task.candidates(image, (640, 800), 0.3)
    assert weak["counted"] is False and weak["score"] == pytest.approx(0.3775, abs=1e-4)
    assert set(weak) == {*result[0], "counted"} and task.candidates(image, (640, 800), 0.4) == []
    in_pixels = task.candidates(image, (640, 800), 0.3, in_pixels=True)[0]["box"]  # the frame graph's boxes
    assert in_pixels == pytest.approx(image["people_boxes"][1].tolist(), abs=0.06)
    assert weak["box"] == pytest.approx((image["people_boxes"][1] * [800, 640, 800, 640]).tolist(), abs=0.06)
    record = task.record(result + [weak])
    assert [d.counted for d in task.detections(record)] == [True, False]
    (coco,) = task.run_files({"a.png": record}, {"a.png": 1})["people.coco.json"]  # COCO results: counted only
    assert coco["score"] == result[0]["score"]


def test_loss_and_decoding_agree_when_the_raw_map_is_fitted():
    """Optimising a free raw map against the loss must decode back to the labelled persons."""
    task = PeopleTask(max_people=8)
    target = batch_of(task, [persons(), []])
    raw = torch.zeros(2, task.out_channels, H, W, requires_grad=True)
    optimiser = torch.optim.Adam([raw], lr=0.1)
    first = None
    for _ in range(300):
        loss = task.loss(raw, target)
        first = first if first is not None else float(loss.detach())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert float(loss.detach()) < 0.1 * first
    out = {k: v.numpy() for k, v in task.postprocess(raw.detach()).items()}
    assert out["people_count"].tolist() == [3, 0]
    true = target["boxes"][0, :3].numpy()
    pairs = match_people(out["people_boxes"][0, :3], true, iou=0.8)
    assert len(pairs) == 3
    for p, t in pairs:
        assert out["people_gender"][0, p].argmax() == target["gender"][0, t]
    metrics = task.new_metric()
    metrics.update(task.postprocess(raw.detach()), target)
    values = metrics.compute()
    assert values["ap50"] == pytest.approx(1.0) and values["count_acc"] == 100.0 and values["count_mae"] == 0.0
    assert values["acc_gender"] == 100.0 and values["acc_age_group"] == 100.0  # 3 and 2 persons labelled
    assert values["yaw_mae"] < 5.0


def test_unlabelled_images_are_masked():
    task = PeopleTask()
    target = batch_of(task, [None, None])
    assert task.loss(torch.zeros(2, task.out_channels, H, W), target) is None
    mixed = batch_of(task, [None, persons()])
    raw = torch.randn(2, task.out_channels, H, W, requires_grad=True)
    task.loss(raw, mixed).backward()
    assert raw.grad[0].abs().sum() == 0 and raw.grad[1].abs().sum() > 0


def test_metrics_against_hand_computed_values():
    task = PeopleTask(attributes={"gender": ("female", "male")}, yaw=False, max_people=2, score_threshold=0.5)
    truth = [{"bbox": [0, 0, 40, 32], "attributes": {"gender": "female"}}]
    target = batch_of(task, [truth, truth])
    metrics = task.new_metric()
    # image 0: one exact, confident, correct prediction; image 1: a confident box elsewhere, wrong gender
    outputs = {
        "people_boxes": torch.tensor([[[0, 0, 0.5, 0.5], [0, 0, 0, 0]], [[0.5, 0.5, 1.0, 1.0], [0, 0, 0, 0]]]),
        "people_scores": torch.tensor([[0.9, 0.0], [0.8, 0.0]]),
        "people_gender": torch.tensor([[[0.9, 0.1], [0.5, 0.5]], [[0.1, 0.9], [0.5, 0.5]]]),
        "people_count": torch.tensor([1, 1]),
    }
    metrics.update(outputs, target)
    values = metrics.compute()
    assert values["count_acc"] == 100.0 and values["count_mae"] == 0.0
    assert values["acc_gender"] == 100.0  # only the matched person counts
    # two true persons, two detections: the 0.9 one is right, the 0.8 one is wrong; COCO's 101-point
    # interpolated precision is 1 up to recall 0.5 and 0 beyond: AP50 = 51/101
    assert values["ap50"] == pytest.approx(51 / 101, abs=1e-6)


def test_helpers():
    assert angle_difference(170.0, -170.0) == pytest.approx(20.0)
    iou = box_iou_matrix(np.array([[0, 0, 2, 2]], np.float32), np.array([[1, 1, 3, 3], [0, 0, 2, 2]], np.float32))
    np.testing.assert_allclose(iou, [[1 / 7, 1.0]])
    assert match_people(np.array([[0, 0, 2, 2], [0, 0, 2, 2]], float), np.array([[0, 0, 2, 2]], float)) == [(0, 0)]


def test_config_is_checked():
    with pytest.raises(ConfigError, match="at least two"):
        PeopleTask(attributes={"gender": ("f",)})
    with pytest.raises(ConfigError, match="taken"):
        PeopleTask(attributes={"count": ("a", "b")})
    with pytest.raises(ConfigError, match="score_threshold"):
        PeopleTask(score_threshold=1.5)


def a_person(box: list[float], looking: str = "yes") -> dict:
    return {
        "box": box, "score": 0.9, "yaw": 3.0,
        "age_group": {"label": "adult", "probabilities": {}}, "gender": {"label": "female", "probabilities": {}},
        "looking": {"label": looking, "probabilities": {}},
    }  # fmt: skip


def test_the_key_gives_each_box_colour_its_meaning_and_count():
    task = PeopleTask()
    people = [a_person([10.0, 10.0, 50.0, 90.0]), a_person([70.0, 10.0, 110.0, 90.0], looking="no")]
    picture = task.visualize(people, np.full((120, 240, 3), 128, np.uint8))
    legend = task.legend(people)
    (looking, green), (away, orange) = legend.items
    assert (looking, away) == ("looking (1)", "not looking (1)")
    assert tuple(picture[50, 10]) == green and tuple(picture[50, 70]) == orange  # the boxes' left edges
    assert "age_group · gender · looking" in legend.note
    assert task.legend(people[1:]).items[0][0] == "looking (0)"
    silent = PeopleTask(attributes={"gender": ("female", "male")})  # no `looking`: one colour for everyone
    assert [label for label, _ in silent.legend(people).items] == ["person (2)"]


def test_a_persons_label_sits_on_its_own_background():
    task = PeopleTask()
    person = a_person([10.0, 40.0, 60.0, 100.0])
    grey = np.full((120, 240, 3), 128, np.uint8)
    band = task.visualize([person], grey)[29:40]  # the label's rows, above the box
    black = np.flatnonzero((band == 0).all(-1).any(0))
    assert black.size and black[0] == 10  # the background starts at the box's left edge
    outside = np.delete(band, np.arange(black[0], black[-1] + 1), axis=1)
    assert (outside == 128).all()  # no stroke of the text beyond its background
    inside = band[:, black[0] : black[-1] + 1]
    assert (inside != 0).any(-1).sum() > 20  # and the text is drawn on it
    # a person at the right edge: the label moves in, whole, rather than running off the picture
    at_edge = {**person, "box": [200.0, 40.0, 238.0, 100.0]}
    edge_band = task.visualize([at_edge], grey)[29:40]
    edge_black = np.flatnonzero((edge_band == 0).all(-1).any(0))
    assert edge_black[-1] - edge_black[0] == black[-1] - black[0]  # the whole label, as wide as before
    assert edge_black[0] < 200  # so it starts left of the box
    assert (np.delete(edge_band, np.arange(edge_black[0], edge_black[-1] + 1), axis=1) == 128).all()


def brute_force_best_count_accuracy(scores: np.ndarray, counts: np.ndarray) -> float:
    """The best count accuracy over every threshold in (0, 1), tried one by one: a count changes only
    where the threshold passes a score, so each distinct score and one point above them all are enough."""
    candidates = [*np.unique(scores), (float(scores.max()) + 1.0) / 2.0]
    return max(
        100.0 * np.mean([int(np.sum(row >= t)) == c for row, c in zip(scores, counts, strict=True)])
        for t in candidates
        if 0.0 < t < 1.0
    )


def test_the_count_threshold_counting_the_most_images_right_is_chosen():
    # scores (best first) and true counts: image 0 is right at (0.6, 0.9], image 1 at (0.3, 0.7],
    # image 2 at (0.5, 0.8], image 3 (nobody) at (0.55, 1): all four at (0.6, 0.7], whose middle is 0.65
    scores = np.array([[0.9, 0.6, 0.1], [0.8, 0.7, 0.3], [0.8, 0.5, 0.2], [0.55, 0.1, 0.0]])
    counts = np.array([1, 2, 1, 0])
    chosen = best_count_threshold(scores, counts, current=0.3)
    assert chosen.threshold == pytest.approx(0.65) and chosen.accuracy == 100.0
    assert count_accuracy(scores, counts, 0.3) == 0.0  # and the old threshold counted none of them right
    # a threshold that is already among the best stays
    assert best_count_threshold(scores, counts, current=0.62).threshold == 0.62


@pytest.mark.parametrize("seed", range(20))
def test_the_chosen_count_threshold_is_as_good_as_trying_every_one(seed):
    rng = np.random.default_rng(seed)
    images, k = int(rng.integers(1, 60)), int(rng.integers(1, 9))
    scores = rng.random((images, k)).round(int(rng.integers(1, 4)))  # coarse scores: ties, as real ones have
    counts = rng.integers(0, k + 2, images)  # some more than K peaks can count
    chosen = best_count_threshold(scores, counts, current=0.3)
    assert 0.0 < chosen.threshold < 1.0
    assert chosen.accuracy == pytest.approx(brute_force_best_count_accuracy(scores, counts))
    assert chosen.accuracy == pytest.approx(count_accuracy(scores, counts, chosen.threshold))


def test_the_calibrator_records_the_threshold_and_the_count_accuracy_before_and_after():
    task = PeopleTask(attributes={"gender": ("female", "male")}, yaw=False, max_people=3)
    one = [{"bbox": [0, 0, 40, 32], "attributes": {}}]
    target = batch_of(task, [one, one + one, None])  # the third image has no person labels: left out
    calibrator = task.new_calibrator()
    scores = torch.tensor([[0.9, 0.35, 0.1], [0.8, 0.7, 0.2], [0.9, 0.9, 0.9]])
    calibrator.update({"people_scores": scores}, target)
    calibration = calibrator.compute()
    assert calibrator.counts.tolist() == [1, 2]
    assert calibration.task == PeopleTask(attributes={"gender": ("female", "male")}, yaw=False, max_people=3,
                                          score_threshold=calibration.task.score_threshold)  # fmt: skip
    assert 0.35 < calibration.task.score_threshold <= 0.7  # image 0 right above 0.35, image 1 up to 0.7
    assert calibration.record == {
        "images": 2,
        "score_threshold": {"before": 0.3, "after": calibration.task.score_threshold},
        "count_acc": {"before": 50.0, "after": 100.0},
    }
    with pytest.raises(ValueError, match="no image has people labels"):
        empty = task.new_calibrator()
        empty.update({"people_scores": scores[2:]}, batch_of(task, [None]))
        empty.compute()


def test_the_label_summary_says_where_the_count_starts():
    assert PeopleTask(score_threshold=0.44136).label_summary().endswith("; counted at score >= 0.44136")
