"""The torch Predictor: any input size and type, outputs at the image's size, same as the model.

Every test names its device: the API tests run on the CPU, the comparison with the inference
graph on each device present (on CUDA with TF32 off, at fp32 tolerances)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import onepass
from onepass.errors import ConfigError
from onepass.models import InferenceGraph, MultiTaskModel, save_package
from onepass.runtime.predictor import python_resizing
from tests.devices import DEVICES, strict_fp32
from tests.tiny import tiny_config


@pytest.fixture(scope="module")
def package_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("pkg")
    torch.manual_seed(0)
    save_package(path, MultiTaskModel(tiny_config()).eval(), "tiny")
    return path


@pytest.fixture(scope="module")
def predictor(package_path):
    return onepass.load(package_path, device="cpu")


def test_outputs_at_each_images_own_size(predictor):
    images = [np.zeros((30, 50, 3), np.uint8), Image.new("L", (77, 41)), Image.new("RGBA", (64, 96))]
    results = predictor.predict(images)
    for result, (height, width) in zip(results, [(30, 50), (41, 77), (96, 64)], strict=True):
        assert result["semseg"].shape == (height, width) and result["semseg"].dtype == np.uint8
        assert result["depth"].shape == (height, width) and result["depth"].dtype == np.float32
        assert result["normals"].shape == (height, width, 3)
        np.testing.assert_allclose(np.linalg.norm(result["normals"], axis=-1), 1.0, atol=1e-4)
        assert set(result["attributes"]) == {"people", "facing"}
        assert result["attributes"]["people"]["label"] in ("0", "1", "2")


@pytest.mark.parametrize("device", DEVICES)
def test_matches_the_inference_graph_at_input_size(package_path, device):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    with strict_fp32():
        result = onepass.load(package_path, backend="torch", device=device).predict(image)[0]
    model = onepass.models.open_package(package_path).load_model()  # the reference: PyTorch on the CPU
    with torch.no_grad():
        expected = InferenceGraph(model)(torch.from_numpy(image)[None])
    if device == "cpu":  # the same kernels: the same class at every pixel
        np.testing.assert_array_equal(result["semseg"], expected["semseg"][0].numpy())
    else:  # other kernels, other rounding: a pixel whose two best classes nearly tie may flip
        assert (result["semseg"] == expected["semseg"][0].numpy()).mean() >= 0.999
    np.testing.assert_allclose(result["depth"], expected["depth"][0].numpy(), rtol=1e-4, atol=1e-5)
    probabilities = list(result["attributes"]["facing"]["probabilities"].values())
    np.testing.assert_allclose(probabilities, expected["attr_facing"][0].numpy(), rtol=1e-4, atol=1e-6)


def test_single_image_and_task_selection(predictor):
    (result,) = predictor.predict(np.zeros((10, 10, 3), np.uint8), tasks=["depth"])
    assert list(result) == ["depth"]
    assert predictor.predict([]) == []


def test_predict_is_its_three_public_phases(predictor):
    """preprocess -> run -> postprocess, as the bench times them, gives what predict gives on a backend
    without the frame-size graph."""
    predictor = python_resizing(predictor)
    assert not predictor.runs_frames
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), rng.integers(0, 256, (70, 30, 3), dtype=np.uint8)]
    batch, sizes = predictor.preprocess(images)
    assert batch.shape == (2, *predictor.config.input_size, 3) and batch.dtype == np.uint8
    assert sizes == [(40, 50), (70, 30)]
    outputs = predictor.run(batch)
    phased = predictor.postprocess(outputs, sizes, ["semseg", "attributes"])
    whole = predictor.predict(images, tasks=["semseg", "attributes"])
    for mine, theirs in zip(phased, whole, strict=True):
        assert list(mine) == ["semseg", "attributes"]
        np.testing.assert_array_equal(mine["semseg"], theirs["semseg"])
        assert mine["attributes"] == theirs["attributes"]
    assert [list(r) for r in predictor.postprocess(outputs, sizes)] == [list(predictor.tasks)] * 2
    with pytest.raises(ConfigError, match="dpeth"):
        predictor.postprocess(outputs, sizes, ["dpeth"])


def test_the_frame_path_is_its_three_public_phases(predictor):
    """On the torch backend predict takes each frame at its own size: stack_frames -> run_frames ->
    frame_results, and images of several sizes go in one group per size, results in order."""
    assert predictor.runs_frames
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(2)]
    frames, sizes = predictor.stack_frames(images)
    assert frames.shape == (2, 40, 50, 3) and sizes == [(40, 50)] * 2
    outputs = predictor.run_frames(frames)
    assert outputs["semseg"].shape == (2, 40, 50)  # the maps come out of the graph at the frame's size
    phased = predictor.frame_results(outputs, sizes, ["depth"])
    mixed = predictor.predict([images[0], np.zeros((70, 30, 3), np.uint8), images[1]], tasks=["depth"])
    assert [r["depth"].shape for r in mixed] == [(40, 50), (70, 30), (40, 50)]
    np.testing.assert_array_equal(mixed[0]["depth"], phased[0]["depth"])
    np.testing.assert_array_equal(mixed[2]["depth"], phased[1]["depth"])
    with pytest.raises(ConfigError, match="must have one size"):
        predictor.stack_frames([images[0], np.zeros((70, 30, 3), np.uint8)])
    # smaller than the exported frame graph takes (FRAME_SIDES): resized in Python, same answer's shape
    assert predictor.predict(np.zeros((4, 6, 3), np.uint8), tasks=["semseg"])[0]["semseg"].shape == (4, 6)


def test_maps_at_the_models_resolution(predictor):
    image = np.random.default_rng(5).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    (small,) = predictor.predict(image, maps_at="model")
    (full,) = predictor.predict(image)
    height, width = predictor.config.input_size
    assert small["semseg"].shape == (height, width) and small["normals"].shape == (height, width, 3)
    assert full["semseg"].shape == (120, 200)
    assert small["attributes"].keys() == full["attributes"].keys()
    with pytest.raises(ConfigError, match="unknown maps_at 'frames'; did you mean 'frame'"):
        predictor.predict(image, maps_at="frames")


def test_bad_inputs_are_clear(predictor):
    with pytest.raises(ConfigError, match="did you mean 'depth'"):
        predictor.predict(np.zeros((10, 10, 3), np.uint8), tasks=["dpeth"])
    with pytest.raises(ConfigError, match="image 0: expected an \\(H, W, 3\\) or \\(H, W\\) uint8 array"):
        predictor.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ConfigError, match="expected a PIL image or a numpy array, got str"):
        predictor.predict(["photo.jpg"])


def test_bf16_precision_runs_and_stays_close(package_path):
    fp32 = onepass.load(package_path, device="cpu")
    bf16 = onepass.load(package_path, device="cpu", precision="bf16")
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    a, b = fp32.predict(image)[0], bf16.predict(image)[0]
    assert np.abs(a["depth"] - b["depth"]).max() < 0.1 * a["depth"].max()
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):  # on a CPU; CUDA runs it (test_backends)
        onepass.load(package_path, device="cpu", precision="fp16")


def test_unknown_backend(package_path):
    with pytest.raises(ConfigError, match="unknown backend 'onnx'"):
        onepass.load(package_path, backend="onnx", device="cpu")


def test_frames_are_stacked_without_going_through_pillow_and_as_pillow_would():
    """stack_frames' arrays: an RGB uint8 array is used as it is; a grey one gets its level in every
    channel, as Pillow's "L" to "RGB" conversion does; anything else goes through Pillow, and the errors
    name the image."""
    from onepass.runtime.predictor import as_rgb_array, as_rgb_image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    assert as_rgb_array(rgb, "image 0") is rgb
    grey = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    np.testing.assert_array_equal(as_rgb_array(grey, "image 0"), np.asarray(as_rgb_image(grey, "image 0")))
    picture = Image.fromarray(rgb).convert("P")  # a palette image: Pillow converts it
    np.testing.assert_array_equal(as_rgb_array(picture, "image 0"), np.asarray(picture.convert("RGB")))
    with pytest.raises(ConfigError, match="image 3: expected an"):
        as_rgb_array(rgb.astype(np.float32), "image 3")
    with pytest.raises(ConfigError, match="image 4: expected an"):
        as_rgb_array(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "image 4")


def test_candidates_follow_the_counted_people_on_both_paths(tmp_path):
    """`predict(candidates=score)`: a tracked task's result is its counted people, then every other peak
    scoring at least that, marked not counted; the frame graph and Python's resizing agree on them."""
    from onepass.models.tasks import PeopleTask
    from tests.tiny import PERSON_ATTRIBUTES

    torch.manual_seed(0)
    config = tiny_config(tasks=(PeopleTask(PERSON_ATTRIBUTES, max_people=8, score_threshold=0.9),))
    save_package(tmp_path, MultiTaskModel(config).eval(), "tiny")
    predictor = onepass.load(tmp_path, device="cpu")
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    assert predictor.predict(image)[0]["people"] == []  # the random model's peaks score about 0.1
    frame, resized = (p.predict(image, candidates=1e-6)[0]["people"] for p in (predictor, python_resizing(predictor)))
    assert frame and all(p["counted"] is False and 1e-6 <= p["score"] < 0.9 for p in frame)
    assert [p["score"] for p in frame] == pytest.approx([p["score"] for p in resized], abs=1e-3)
    np.testing.assert_allclose([p["box"] for p in frame], [p["box"] for p in resized], atol=0.5)
    assert predictor.predict(image, candidates=0.5)[0]["people"] == []
