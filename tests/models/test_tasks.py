"""Each task's loss, metrics and post-processing against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from onepass.data.codecs import IGNORE_INDEX
from onepass.errors import ConfigError
from onepass.models.tasks import (
    TASK_TYPES,
    AttributesTask,
    DepthTask,
    NormalsTask,
    PeopleTask,
    SaliencyTask,
    SemsegTask,
    build_task,
)
from onepass.train.dataset import as_tensor
from tests.tiny import every_task_type, random_raw


@pytest.mark.parametrize("task", every_task_type(), ids=lambda t: t.name)
def test_config_round_trip(task):
    assert build_task(task.to_config()) == task


PERSONS = [{"bbox": [1, 1, 4, 6], "attributes": {"gender": "male"}}]


def test_every_registered_type_is_covered():
    assert {t.name for t in every_task_type()} == set(TASK_TYPES)


def test_unknown_task_type_suggests_a_close_match():
    with pytest.raises(ConfigError, match="did you mean 'semseg'"):
        build_task({"type": "semsge"})


@pytest.mark.parametrize("task", every_task_type(), ids=lambda t: t.name)
def test_output_specs_match_postprocess(task):
    raw = random_raw(task, 2, 8, 12)
    outputs = task.postprocess(raw)
    assert [o.name for o in task.output_specs()] == list(outputs)
    for spec in task.output_specs():
        value = outputs[spec.name]
        assert str(value.dtype).removeprefix("torch.") == spec.dtype
        expected = [2 if d == "N" else 8 if d == "H" else 12 if d == "W" else d for d in spec.shape]
        if spec.dtype == "float32":
            assert bool(value.isfinite().all()), spec.name
        assert list(value.shape) == expected


@pytest.mark.parametrize("task", every_task_type(), ids=lambda t: t.name)
def test_postprocess_at_gives_the_output_specs_at_the_size_asked_for(task):
    raw = random_raw(task, 2, 8, 12)
    outputs = task.postprocess_at(raw, (21, 30))
    assert [o.name for o in task.output_specs()] == list(outputs)
    for spec in task.output_specs():
        expected = [2 if d == "N" else 21 if d == "H" else 30 if d == "W" else d for d in spec.shape]
        assert list(outputs[spec.name].shape) == expected, spec.name
        assert str(outputs[spec.name].dtype).removeprefix("torch.") == spec.dtype


@pytest.mark.parametrize("task", every_task_type(), ids=lambda t: t.name)
def test_results_from_either_graph_agree_at_the_models_own_size(task):
    """At the model's own size there is nothing to resize: the frame-size graph's outputs give, through
    `frame_result`, what `to_result` makes of the fixed-size graph's, and `model_result` the same."""
    raw = random_raw(task, 1, 8, 12)
    fixed = {k: v[0].numpy() for k, v in task.postprocess(raw).items()}
    frame = {k: v[0].numpy() for k, v in task.postprocess_at(raw, (8, 12)).items()}
    expected = task.to_result(fixed, (8, 12))
    for got in (task.frame_result(frame, (8, 12)), task.model_result(fixed, (8, 12))):
        if isinstance(expected, np.ndarray):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        else:
            assert got == expected


def test_frame_size_post_processing_by_task():
    """Semseg: argmax after upsampling the logits; depth: softplus after; normals: unit vectors after;
    saliency: a distribution over the frame's pixels; people: boxes in the frame's pixels."""
    logits = torch.tensor([[[[0.0, 4.0]], [[1.0, 0.0]]]])  # (1, 2 classes, 1, 2)
    # at 1x4 the middle columns blend the two logit columns 3:1 and 1:3: class 0's large logit wins the
    # second column too, where upsampling the class ids (nearest) would give [1, 1, 0, 0]
    assert SemsegTask(("a", "b")).postprocess_at(logits, (1, 4))["semseg"].tolist() == [[[1, 0, 0, 0]]]
    depth = DepthTask().postprocess_at(torch.zeros(1, 1, 2, 2), (5, 7))["depth"]
    np.testing.assert_allclose(depth.numpy(), math.log(2.0), rtol=1e-6)
    normals = NormalsTask().postprocess_at(torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]]), (1, 4))
    np.testing.assert_allclose(np.linalg.norm(normals["normals"].numpy(), axis=-1), 1.0, rtol=1e-6)
    saliency = SaliencyTask().postprocess_at(torch.randn(2, 1, 4, 6), (9, 13))["saliency"]
    np.testing.assert_allclose(saliency.sum(dim=(1, 2)).numpy(), 1.0, rtol=1e-5)
    people = PeopleTask(max_people=4)
    raw = random_raw(people, 1, 8, 12)
    fractions = people.postprocess(raw)["people_boxes"]
    pixels = people.postprocess_at(raw, (80, 120))["people_boxes"]
    np.testing.assert_allclose(
        pixels.numpy(), (fractions * torch.tensor([120.0, 80.0, 120.0, 80.0])).numpy(), rtol=1e-6
    )


@pytest.mark.parametrize("task", every_task_type(), ids=lambda t: t.name)
def test_loss_is_none_without_labels_and_masks_missing(task):
    size = (4, 5)
    raw = random_raw(task, 2, *size)
    missing = default_collate([as_tensor(task.target(None, size, "x"))] * 2)
    assert task.loss(raw, missing) is None


def test_semseg_loss_and_metrics_by_hand():
    task = SemsegTask(("a", "b", "c"))
    raw = torch.zeros(1, 3, 1, 4)
    raw[0, :, 0, 0] = torch.tensor([5.0, 0, 0])  # predicts a
    raw[0, :, 0, 1] = torch.tensor([0, 5.0, 0])  # predicts b
    raw[0, :, 0, 2] = torch.tensor([0, 5.0, 0])  # predicts b
    raw[0, :, 0, 3] = torch.tensor([0, 0, 5.0])  # predicts c, but unlabelled
    target = torch.tensor([[[0, 1, 0, IGNORE_INDEX]]], dtype=torch.uint8)
    expected = torch.nn.functional.cross_entropy(raw[0, :, 0, :3].T, torch.tensor([0, 1, 0]))
    torch.testing.assert_close(task.loss(raw, target), expected)
    metric = task.new_metric()
    metric.update(task.postprocess(raw), target)
    result = metric.compute()
    # class a: TP 1, FP 0, FN 1 -> 1/2; class b: TP 1, FP 1, FN 0 -> 1/2; class c never seen -> excluded
    assert result["miou"] == pytest.approx(0.5)
    assert result["pixel_acc"] == pytest.approx(2 / 3)


def test_semseg_metrics_are_pooled_not_batch_averaged():
    task = SemsegTask(("a", "b"))
    metric = task.new_metric()
    good = torch.tensor([[[[5.0] * 9 + [0.0]], [[0.0] * 10]]]).permute(
        0, 1, 2, 3
    )  # (1, 2, 1, 10): predicts a everywhere
    metric.update(task.postprocess(good), torch.zeros(1, 1, 10, dtype=torch.uint8))  # 10 correct pixels
    metric.update(task.postprocess(good[..., :1]), torch.ones(1, 1, 1, dtype=torch.uint8))  # 1 wrong pixel
    assert metric.compute()["pixel_acc"] == pytest.approx(10 / 11)  # a mean of batch means would say 0.5


def test_semseg_rejects_unknown_class_ids():
    with pytest.raises(ValueError, match="labels.png: class ids \\[7\\]"):
        SemsegTask(("a", "b")).target(np.array([[0, 7]], np.uint8), (1, 2), "labels.png")


def test_depth_loss_and_metrics_by_hand():
    task = DepthTask()
    predicted = torch.tensor([1.0, 2.0, 4.0, 9.0])
    raw = torch.log(torch.expm1(predicted)).view(1, 1, 1, 4)  # softplus^-1
    target = torch.tensor([[[1.0, 1.0, 4.5, 0.0]]])  # last pixel unmeasured
    torch.testing.assert_close(task.loss(raw, target), torch.tensor((0 + 1 + 0.5) / 3))
    metric = task.new_metric()
    metric.update(task.postprocess(raw), target)
    result = metric.compute()
    assert result["abs_err"] == pytest.approx(0.5, rel=1e-5)
    assert result["abs_rel"] == pytest.approx((0 + 1 + 0.5 / 4.5) / 3, rel=1e-5)
    assert result["rmse"] == pytest.approx(math.sqrt(1.25 / 3), rel=1e-5)
    assert result["delta1"] == pytest.approx(200 / 3, rel=1e-5)  # 1/1 and 4.5/4 < 1.25; 2/1 is not


def test_depth_rescale_follows_zoom():
    assert DepthTask().rescale_target_values(np.array([2.0]), 0.5)[0] == pytest.approx(4.0)


def test_normals_loss_and_metrics_by_hand():
    task = NormalsTask()
    angle = math.radians(30)
    raw = torch.tensor([[0.0, 0.0, 2.0], [math.sin(angle), 0.0, math.cos(angle)], [1.0, 0, 0]]).T.reshape(1, 3, 1, 3)
    target = torch.tensor([[[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]]])  # third unlabelled
    torch.testing.assert_close(task.loss(raw, target), torch.tensor((0 + 1 - math.cos(angle)) / 2))
    metric = task.new_metric()
    metric.update(task.postprocess(raw), target)
    result = metric.compute()
    assert result["mean_angle"] == pytest.approx(15.0, abs=1e-3)
    assert result["median_angle"] == pytest.approx(0.0, abs=0.01)  # lower median of {0, 30}
    assert result["within_11.25"] == pytest.approx(50.0)
    assert result["within_30"] == pytest.approx(100.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_normals_are_unit_in_every_precision_with_a_fallback(dtype):
    """The in-graph normalisation, run in fp32 and in fp16 (as the fp16 export runs it)."""
    from onepass.models.tasks.normals import FALLBACK_NORMAL, unit_normals

    vectors = [
        (0.3, -1.2, 2.0),  # an ordinary head output
        (0.0, 0.0, 0.0),  # int8 rounds all three channels of a few pixels to zero
        (1e-8, 0.0, -1e-8),  # no trustworthy direction
        (2e-4, -1e-4, 2e-4),  # tiny but directed: its squares underflow in fp16 without rescaling
        (300.0, 400.0, 0.0),  # large: its squares overflow fp16 (max 65504) without rescaling
        (math.nan, 0.0, 1.0),
    ]
    raw = torch.tensor(vectors).T.reshape(1, 3, 1, len(vectors)).to(dtype)
    normals = unit_normals(raw)  # (1, 1, P, 3)
    assert normals.dtype == dtype and normals.shape == (1, 1, len(vectors), 3)
    normals = normals[0, 0].double()
    tolerance = 2e-3 if dtype == torch.float16 else 1e-6  # fp16 has 11 significant bits
    torch.testing.assert_close(
        normals.norm(dim=-1), torch.ones(len(vectors), dtype=torch.float64), atol=tolerance, rtol=0
    )
    for i in (1, 2, 5):
        assert normals[i].tolist() == list(FALLBACK_NORMAL)
    for i in (0, 3, 4):  # the directed ones keep their direction
        expected = torch.tensor(vectors[i], dtype=torch.float64)
        torch.testing.assert_close(normals[i], expected / expected.norm(), atol=tolerance, rtol=0)
    (output,) = NormalsTask().postprocess(raw).values()
    assert output.dtype == torch.float32  # the graph's output type, whatever the precision inside


def test_normals_flip_negates_x():
    target = np.zeros((1, 2, 3), np.float32)
    target[0, 0] = (0.6, 0.0, 0.8)
    flipped = NormalsTask().flip_target(target)
    np.testing.assert_allclose(flipped[0, 1], (-0.6, 0.0, 0.8))


def test_attributes_loss_metrics_and_result():
    task = AttributesTask({"people": ("0", "1", "2"), "facing": ("no", "yes")})
    raw = torch.tensor([[5.0, 0, 0, 0, 5.0], [0, 5.0, 0, 5.0, 0]])
    target = torch.tensor([[0, -1], [2, 0]])  # image 0: facing unlabelled; image 1: people wrong
    people = torch.nn.functional.cross_entropy(raw[:, :3], torch.tensor([0, 2]))
    facing = torch.nn.functional.cross_entropy(raw[1:, 3:], torch.tensor([0]))
    torch.testing.assert_close(task.loss(raw, target), (people + facing) / 2)
    metric = task.new_metric()
    metric.update(task.postprocess(raw), target)
    assert metric.compute() == {"acc_people": 50.0, "acc_facing": 100.0}
    outputs = {k: v[0].numpy() for k, v in task.postprocess(raw).items()}
    result = task.to_result(outputs, (10, 10))
    assert result["people"]["label"] == "0" and result["facing"]["label"] == "yes"
    assert sum(result["people"]["probabilities"].values()) == pytest.approx(1.0)


def test_attributes_target_rejects_unknown_class():
    task = AttributesTask({"people": ("0", "1")})
    with pytest.raises(ValueError, match="attributes.csv, line 3: '7' is not a class"):
        task.target({"people": "7"}, (1, 1), "attributes.csv, line 3")
    np.testing.assert_array_equal(task.target({"people": None}, (1, 1), "x"), [-1])


@pytest.mark.parametrize("task", every_task_type(), ids=lambda t: t.name)
def test_constant_output_is_the_trivial_predictor(task):
    def outputs(targets):
        return task.postprocess(task.constant_raw(task.constant_output(targets), 1, (8, 12)))

    if task.name == "semseg":
        targets = torch.tensor([[[0, 1, 1, 1]] * 3], dtype=torch.uint8)
        assert outputs(targets)["semseg"].unique().tolist() == [1]
    elif task.name == "depth":
        targets = torch.tensor([[[1.0, 3.0, 0.0]]])
        assert outputs(targets)["depth"].mean().item() == pytest.approx(2.0)
    elif task.name == "normals":
        targets = torch.tensor([[[[0.0, 1.0, 0.0]] * 3 + [[0.0, 0.0, 1.0]]]])
        assert task.constant_output(targets).tolist() == [0.0, 1.0, 0.0]
    elif task.name == "people":
        targets = default_collate([as_tensor(task.target(PERSONS, (8, 12), "x"))])
        assert outputs(targets)["people_count"].tolist() == [0]  # nobody
    elif task.name == "saliency":
        targets = torch.rand(2, 8, 12)
        assert bool(torch.allclose(outputs(targets)["saliency"], torch.full((1, 8, 12), 1 / 96)))  # uniform
    else:
        targets = torch.tensor([[1, 1], [1, 1], [2, -1], [0, 0]])  # majority: people 1, facing 1 (-1 unlabelled)
        probabilities = outputs(targets)
        assert probabilities["attr_people"].argmax().item() == 1
        assert probabilities["attr_facing"].argmax().item() == 1


@pytest.mark.parametrize("task", every_task_type(), ids=lambda t: t.name)
def test_agreement_passes_for_identical_outputs_and_fails_for_perturbed(task):
    raw = random_raw(task, 2, 8, 12)
    reference = {k: v.numpy() for k, v in task.postprocess(raw).items()}
    assert all(check.passed for check in task.agreement(reference, reference))
    perturbed = {k: v.numpy() for k, v in task.postprocess(raw + 2.0 * torch.randn_like(raw)).items()}
    checks = task.agreement(reference, perturbed)
    assert [c.output for c in checks] == [o.name for o in task.output_specs()]
    assert not any(check.passed for check in checks)
