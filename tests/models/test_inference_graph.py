"""The two inference graphs: the frame-size graph resizes as training does, equals the fixed-size graph
where there is nothing to resize, and agrees with today's path (Pillow resizes the frame, each task's
`to_result` the maps) per output, within what resizing logits instead of results changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onepass.data.image import resize_to_input
from onepass.data.synth import render_scene
from onepass.models import InferenceGraph, MultiTaskModel
from onepass.models.inference_graph import FrameGraph, frame_to_input
from tests.tiny import every_task_type, tiny_config


@pytest.fixture(scope="module")
def model():
    """A tiny model of every task type whose outputs vary over the image (a freshly built one's are
    nearly constant, which would agree with anything): its convolutions redrawn at a larger scale."""
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_config(tasks=every_task_type())).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="linear")
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.5)
    return model


@pytest.mark.parametrize("frame", [(150, 203), (64, 96), (40, 57)], ids=["shrink", "same", "enlarge"])
def test_the_graphs_resize_is_pillows_within_one_grey_level(frame):
    image = render_scene(np.random.default_rng(5), *frame).image
    expected = resize_to_input(image, (64, 96)).astype(np.float32)
    got = frame_to_input(torch.from_numpy(image)[None], (64, 96))[0].permute(1, 2, 0).numpy()
    difference = np.abs(got - expected)
    assert difference.max() <= 1.0
    if frame == (64, 96):
        assert difference.max() == 0.0  # nothing to resize: the very pixels
    else:
        assert difference.mean() < 0.3  # Pillow's fixed-point rounding, on a minority of the values


def test_the_frame_graph_at_the_models_size_is_the_fixed_graph(model):
    images = torch.from_numpy(np.stack([render_scene(np.random.default_rng([6, i]), 64, 96).image for i in range(2)]))
    with torch.no_grad():
        fixed, frame = InferenceGraph(model)(images), FrameGraph(model)(images)
    assert list(frame) == list(fixed)
    for name, value in fixed.items():
        if name == "people_boxes":  # fractions there, the frame's pixels here
            value = value * torch.tensor([96.0, 64.0, 96.0, 64.0])
        torch.testing.assert_close(frame[name], value, rtol=1e-5, atol=1e-5, msg=name)


def test_the_frame_graph_agrees_with_todays_path_per_output(model):
    """At 2x the model's size, on a scene: the frame graph's outputs through `frame_result` against the
    fixed graph's on Pillow's resize through `to_result`. They differ where resizing logits differs
    from resizing results (class boundaries, normals across edges) and by the input's rounding."""
    height, width = 131, 197
    scene = render_scene(np.random.default_rng(8), height, width).image
    with torch.no_grad():
        fixed = InferenceGraph(model)(torch.from_numpy(resize_to_input(scene, (64, 96)).copy())[None])
        frame = FrameGraph(model)(torch.from_numpy(scene)[None])
    fixed = {k: v[0].numpy() for k, v in fixed.items()}
    frame = {k: v[0].numpy() for k, v in frame.items()}
    tasks = {t.name: t for t in model.config.tasks}
    today = {name: task.to_result(fixed, (height, width)) for name, task in tasks.items()}
    new = {name: task.frame_result(frame, (height, width)) for name, task in tasks.items()}
    for name in ("semseg", "depth", "normals", "saliency"):
        assert new[name].shape == today[name].shape == (height, width, *today[name].shape[2:])
    # measured: 99.4 % of pixels, depth 5.5e-4 at most, normals 0.03° (median), saliency 1.2e-3 of its
    # peak, attributes 5e-7, 8 people with the same boxes to 0.1 px
    assert 0.98 <= (new["semseg"] == today["semseg"]).mean() < 1.0  # boundaries move: argmax after upsampling
    depth_error = np.abs(new["depth"] - today["depth"]) / today["depth"]
    assert depth_error.max() < 5e-3
    angles = np.degrees(np.arccos(np.clip((new["normals"] * today["normals"]).sum(-1), -1, 1)))
    assert np.median(angles) < 0.3 and angles.max() < 2.0
    assert np.abs(new["saliency"] - today["saliency"]).max() < 0.01 * today["saliency"].max()
    np.testing.assert_allclose(new["saliency"].sum(), 1.0, rtol=1e-4)
    for group, value in today["attributes"].items():
        for label, probability in value["probabilities"].items():
            assert abs(new["attributes"][group]["probabilities"][label] - probability) < 1e-3
    assert len(new["people"]) == len(today["people"]) > 0
    for a, b in zip(new["people"], today["people"], strict=True):
        assert np.abs(np.array(a["box"]) - np.array(b["box"])).max() <= 1.0  # pixels of the frame
        assert a["age_group"]["label"] == b["age_group"]["label"]
