"""Pictures a person can read: every dense task's key (`Task.legend`) says what its colours mean,
image-level results come as text (`Task.describe`), and the panel lays them out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from onepass.data.codecs import IGNORE_INDEX, palette
from onepass.models.panel import (
    BACKGROUND,
    TILE_MAX_HEIGHT,
    TILE_MAX_WIDTH,
    TILE_MIN_WIDTH,
    Row,
    Tile,
    compose,
    draw_legend,
    panel_width,
    result_panel,
    tile_size,
)
from onepass.models.tasks import AttributesTask, DepthTask, NormalsTask, SemsegTask
from onepass.models.tasks.legends import ColourBar, KeyPicture, Swatches
from tests.tiny import CLASSES, GROUPS, all_tasks


def example_result(task, height: int = 30, width: int = 40):
    """A plausible result of `task` for one image: what `Predictor.predict` gives."""
    rng = np.random.default_rng(0)
    if isinstance(task, SemsegTask):
        return rng.integers(0, len(task.classes), (height, width), dtype=np.uint8)
    if isinstance(task, DepthTask):
        return rng.uniform(1.0, 6.0, (height, width)).astype(np.float32)
    if isinstance(task, NormalsTask):
        vectors = rng.normal(size=(height, width, 3)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
    return {
        group: {
            "label": classes[0],
            "probabilities": {c: (0.7 if i == 0 else 0.3 / (len(classes) - 1)) for i, c in enumerate(classes)},
        }
        for group, classes in task.groups.items()
    }


def drawn(picture: Image.Image) -> float:
    """Share of pixels that are not the panel's background."""
    return float((np.asarray(picture.convert("RGB")) != BACKGROUND).any(-1).mean())


@pytest.mark.parametrize("task", [t for t in all_tasks() if t.kind == "map"], ids=lambda t: t.name)
def test_every_dense_task_has_a_key_that_draws_and_serialises(task):
    legend = task.legend(example_result(task))
    assert isinstance(legend, Swatches | ColourBar | KeyPicture)
    as_json = json.loads(json.dumps(legend.to_json()))  # what /predict sends to the page
    assert as_json["kind"] in ("swatches", "colour_bar", "picture") and as_json["title"]
    for width in (120, 300):
        picture = draw_legend(legend, width)
        assert picture.width == width and 10 < picture.height < 160
        assert drawn(picture) > 0.03


@pytest.mark.parametrize("task", [t for t in all_tasks() if t.kind == "image"], ids=lambda t: t.name)
def test_image_level_tasks_have_no_key_but_words(task):
    assert task.legend(example_result(task)) is None
    assert task.describe(example_result(task)) and all(
        isinstance(line, str) for line in task.describe(example_result(task))
    )


def test_semseg_key_lists_the_classes_present_in_the_picture_colours():
    task = SemsegTask(CLASSES)
    result = np.array([[2, 0], [0, IGNORE_INDEX]], np.uint8)
    legend = task.legend(result)
    assert [label for label, _ in legend.items] == ["floor", "person", "unlabelled"]  # class order; "wall" absent
    picture = task.visualize(result)
    assert [colour for _, colour in legend.items] == [tuple(picture[0, 1]), tuple(picture[0, 0]), tuple(picture[1, 1])]
    assert legend.items[2][1] == (0, 0, 0) == tuple(palette(256)[IGNORE_INDEX])
    assert legend.to_json()["items"][0] == {"label": "floor", "colour": "#{:02x}{:02x}{:02x}".format(*picture[0, 1])}


def test_depth_key_is_the_picture_scale_in_metres():
    task = DepthTask()
    result = np.array([[1.0, 2.5], [4.75, 0.0]], np.float32)  # 0 = no depth
    legend = task.legend(result)
    metres = np.linspace(0.5, 10.0, len(legend.colours))
    np.testing.assert_array_equal(np.array(legend.colours), task.visualize(metres[None])[0])  # same colours, same scale
    ticks = {label: at for at, label in legend.ticks}
    assert ticks["0.5"] == 0.0 and ticks["10"] == 1.0 and ticks["2"] == pytest.approx((2 - 0.5) / 9.5)
    assert "1.0 to 4.8 m" in legend.note and "black: no depth" in legend.note
    assert "black" not in task.legend(result[:1]).note


def test_normals_key_is_a_sphere_coloured_like_the_pictures():
    task = NormalsTask()
    sphere = task.legend(example_result(task)).picture  # (h, w, 4): RGB and coverage
    size = sphere.shape[0]
    centre, right, top = sphere[size // 2, size // 2], sphere[size // 2, size - 3], sphere[2, size // 2]
    facing = {tuple(n): task.visualize(np.array([[n]], np.float32))[0, 0] for n in ((0, 0, 1), (1, 0, 0), (0, 1, 0))}
    np.testing.assert_allclose(centre[:3], facing[(0, 0, 1)], atol=8)  # faces the camera: blue
    np.testing.assert_allclose(right[:3], facing[(1, 0, 0)], atol=60)  # the right edge faces right: red
    np.testing.assert_allclose(top[:3], facing[(0, 1, 0)], atol=60)  # the top faces up: green
    assert sphere[0, 0, 3] == 0 and centre[3] == 255  # transparent around the sphere


def test_attributes_in_words():
    task = AttributesTask(GROUPS)
    assert task.describe(example_result(task)) == ["people: 0 (0.70)", "facing: no (0.70)"]
    assert task.describe_target(np.array([2, -1])) == ["people: 2", "facing: ?"]


@pytest.mark.parametrize(
    ("size", "expected_width"),
    [((48, 64), TILE_MIN_WIDTH), ((180, 240), 240), ((480, 640), 640), ((1080, 1920), TILE_MAX_WIDTH)],
)
def test_tile_size_keeps_the_aspect_between_limits(size, expected_width):
    height, width = tile_size(*size)
    assert width == expected_width and height == round(size[0] * width / size[1])
    assert tile_size(4000, 100)[0] == TILE_MAX_HEIGHT


def test_result_panel_lays_out_input_maps_keys_text_and_footnote():
    tasks = all_tasks()
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    result = {t.name: example_result(t, 48, 64) for t in tasks}
    panel = result_panel(image, result, tasks, "trained on synthetic scenes only")
    tile_height, tile_width = tile_size(48, 64)
    assert panel.width == panel_width(tile_width, 4, text=True) == 4 * tile_width + 3 * 6 + 6 + 220
    pixels = np.asarray(panel)
    top = next(y for y in range(panel.height) if (pixels[y, : tile_width // 2] != BACKGROUND).any(-1).mean() > 0.9)
    scaled = np.asarray(Image.fromarray(image).resize((tile_width, tile_height), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(pixels[top : top + tile_height, :tile_width], scaled)  # the input, first
    without = result_panel(image, result, tasks)
    assert panel.height > without.height  # the footnote has a line of its own
    keys = pixels[top + tile_height : top + tile_height + 40, tile_width + 6 :]  # under the maps
    text = pixels[top : top + 60, -220:]  # the column beside them
    assert drawn(Image.fromarray(keys)) > 0.02 and drawn(Image.fromarray(text)) > 0.02


def test_compose_without_image_level_results_has_no_text_column():
    tile = Tile("a", np.zeros((30, 40, 3), np.uint8))
    panel = compose([Row([tile, tile]), Row([tile])])
    assert panel.width == panel_width(tile_size(30, 40)[1], 2, text=False) == 2 * TILE_MIN_WIDTH + 6
