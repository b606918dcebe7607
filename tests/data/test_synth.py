"""Procedural scene renderer: determinism, exact and mutually consistent labels (the people's
instances included), scene statistics."""

from __future__ import annotations

import numpy as np
import pytest

from onepass.data.synth import (
    ATTRIBUTE_GROUPS,
    CLASS_NAMES,
    LOOKING_YAW_DEGREES,
    PERSON_ATTRIBUTES,
    CameraPose,
    Scene,
    render_scene,
    render_scene_with_pose,
)

FLOOR, WALL, CEILING, PERSON = (CLASS_NAMES.index(name) for name in ("floor", "wall", "ceiling", "person"))
SIZE = (48, 64)  # small enough that the 40-scene checks stay fast
SCENE_COUNT = 40


def _render(seed: int, index: int, height: int = SIZE[0], width: int = SIZE[1]) -> tuple[Scene, CameraPose]:
    return render_scene_with_pose(np.random.default_rng([seed, index]), height, width)


@pytest.fixture(scope="module")
def scenes() -> list[tuple[Scene, CameraPose]]:
    return [_render(11, index) for index in range(SCENE_COUNT)]


def _camera_rays(pose: CameraPose) -> np.ndarray:
    """Every pixel's camera-space ray direction, scaled to z = -1: (H, W, 3)."""
    x, y = pose.camera_directions()
    x, y = np.broadcast_arrays(x, y)
    return np.stack([x, y, -np.ones_like(x)], axis=-1)


def _border(mask: np.ndarray) -> np.ndarray:
    return np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])


def test_same_generator_state_gives_identical_scenes():
    first = render_scene(np.random.default_rng([3, 5]), 40, 56)
    second = render_scene(np.random.default_rng([3, 5]), 40, 56)
    for name in ("image", "semseg", "depth", "normals", "instances", "saliency"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)
    assert first.attributes == second.attributes
    assert first.people == second.people


def test_different_seeds_give_different_scenes():
    first = render_scene(np.random.default_rng([3, 5]), 40, 56)
    second = render_scene(np.random.default_rng([3, 6]), 40, 56)
    assert not np.array_equal(first.image, second.image)
    assert not np.allclose(first.depth, second.depth)


@pytest.mark.parametrize("height, width", [(48, 64), (37, 90), (80, 40)])
def test_shapes_and_dtypes(height, width):
    scene = render_scene(np.random.default_rng([1, height]), height, width)
    assert scene.image.shape == (height, width, 3) and scene.image.dtype == np.uint8
    assert scene.semseg.shape == (height, width) and scene.semseg.dtype == np.uint8
    assert scene.depth.shape == (height, width) and scene.depth.dtype == np.float32
    assert scene.normals.shape == (height, width, 3) and scene.normals.dtype == np.float32
    assert scene.instances.shape == (height, width) and scene.instances.dtype == np.int16
    assert set(scene.attributes) == set(ATTRIBUTE_GROUPS)
    for array in (scene.image, scene.semseg, scene.depth, scene.normals, scene.instances):
        assert array.flags.c_contiguous


def test_dense_labels_are_valid(scenes):
    for scene, pose in scenes:
        assert np.isfinite(scene.depth).all() and (scene.depth > 0).all()
        assert scene.semseg.max() < len(CLASS_NAMES)
        length = np.linalg.norm(scene.normals, axis=-1)
        np.testing.assert_allclose(length, 1.0, atol=1e-4)
        facing = np.einsum("hwc,hwc->hw", scene.normals, _camera_rays(pose))
        assert (facing < 0).all(), "normals must point back towards the camera"


def test_room_surfaces_have_the_normal_of_their_plane(scenes):
    for scene, pose in scenes:
        up = pose.rotation.T @ np.array([0.0, 1.0, 0.0])  # world up in camera space
        floor, ceiling = scene.semseg == FLOOR, scene.semseg == CEILING
        assert floor.any()
        np.testing.assert_allclose(scene.normals[floor], np.broadcast_to(up, scene.normals[floor].shape), atol=1e-5)
        np.testing.assert_allclose(
            scene.normals[ceiling], np.broadcast_to(-up, scene.normals[ceiling].shape), atol=1e-5
        )
        walls_up = scene.normals[scene.semseg == WALL] @ up  # walls are vertical
        np.testing.assert_allclose(walls_up, 0.0, atol=1e-5)


def test_floor_depth_is_the_floor_plane_intersection(scenes):
    for scene, pose in scenes:
        rays_world = _camera_rays(pose) @ pose.rotation.T  # (H, W, 3), z-depth is the ray parameter
        expected = -pose.position[1] / rays_world[..., 1]  # where the ray meets y = 0
        floor = scene.semseg == FLOOR
        np.testing.assert_allclose(scene.depth[floor], expected[floor], rtol=1e-4)


def test_attributes_agree_with_the_pixels(scenes):
    for scene, _ in scenes:
        for group, value in scene.attributes.items():
            assert value in ATTRIBUTE_GROUPS[group]
        person_pixels = scene.semseg == PERSON
        if scene.attributes["people"] == "0":
            assert not person_pixels.any()
            assert scene.attributes["facing"] == "no" and scene.attributes["age_group"] == "none"
        else:
            assert person_pixels.sum() >= 10
            assert scene.attributes["age_group"] != "none"


def test_image_attributes_derive_from_the_people(scenes):
    for scene, _ in scenes:
        people = scene.people
        assert scene.attributes["people"] == ("0", "1", "2", "3+")[min(len(people), 3)]
        assert scene.attributes["facing"] == ("yes" if any(abs(p.yaw) < 20 for p in people) else "no")
        nearest = min(people, key=lambda person: person.depth).age_group if people else "none"
        assert scene.attributes["age_group"] == nearest


def test_instances_are_exactly_the_person_pixels(scenes):
    for scene, _ in scenes:
        np.testing.assert_array_equal(scene.instances >= 0, scene.semseg == PERSON)
        assert scene.instances.min() >= -1 and scene.instances.max() < len(scene.people)


def test_boxes_and_counts_are_those_of_each_persons_visible_pixels(scenes):
    people = 0
    for scene, _ in scenes:
        for k, person in enumerate(scene.people):
            mask = scene.instances == k
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            x, y = cols[0], rows[0]
            assert person.box == (x, y, cols[-1] + 1 - x, rows[-1] + 1 - y)
            assert person.visible_pixels == mask.sum() > 0
            people += 1
    assert people > SCENE_COUNT  # several per scene on average


def test_people_are_listed_nearest_first_with_their_true_depth(scenes):
    for scene, _ in scenes:
        depths = [person.depth for person in scene.people]
        assert depths == sorted(depths)
        for k, person in enumerate(scene.people):
            # The body centre is inside the body, a little behind its visible surface.
            surface = np.median(scene.depth[scene.instances == k])
            assert person.depth - 0.4 < surface < person.depth + 0.1, (person, surface)


def test_head_centres_project_onto_the_heads(scenes):
    on_self = total = 0
    for scene, _ in scenes:
        height, width = scene.instances.shape
        for k, person in enumerate(scene.people):
            x, y = person.head_centre
            if 0 <= x < width and 0 <= y < height:
                on_self += scene.instances[int(y), int(x)] == k
            total += 1
            assert person.box[1] <= y < person.box[1] + person.box[3] / 3  # the head is at the top
    assert on_self >= 0.9 * total  # the others' heads are hidden behind someone nearer


def test_person_attributes_are_valid_and_looking_is_the_yaw_within_20_degrees(scenes):
    assert LOOKING_YAW_DEGREES == 20
    for scene, _ in scenes:
        for person in scene.people:
            assert -180 <= person.yaw < 180
            assert person.looking == (abs(person.yaw) < 20)
            assert person.age_group in PERSON_ATTRIBUTES["age_group"]
            assert person.gender in PERSON_ATTRIBUTES["gender"]
            assert (person.age_group == "child") == (person.height < 1.4)


def test_only_truncated_people_reach_the_image_border(scenes):
    for scene, _ in scenes:
        for k, person in enumerate(scene.people):
            if _border(scene.instances == k).any():
                assert person.truncated


def test_every_person_value_appears(scenes):
    people = [person for scene, _ in scenes for person in scene.people]
    assert {person.gender for person in people} == set(PERSON_ATTRIBUTES["gender"])
    assert {person.age_group for person in people} == set(PERSON_ATTRIBUTES["age_group"])
    assert {person.looking for person in people} == {False, True}
    assert {person.truncated for person in people} == {False, True}
    assert {abs(person.yaw) >= 90 for person in people} == {False, True}  # backs turned too
    assert max(len(scene.people) for scene, _ in scenes) >= 5


def test_every_attribute_value_appears(scenes):
    seen = {group: {scene.attributes[group] for scene, _ in scenes} for group in ATTRIBUTE_GROUPS}
    assert seen["people"] == set(ATTRIBUTE_GROUPS["people"])
    assert seen["facing"] == {"no", "yes"}
    assert seen["age_group"] == set(ATTRIBUTE_GROUPS["age_group"])


def test_every_class_appears(scenes):
    pixels = np.bincount(np.concatenate([scene.semseg.ravel() for scene, _ in scenes]), minlength=len(CLASS_NAMES))
    assert (pixels > 0).all(), dict(zip(CLASS_NAMES, pixels.tolist(), strict=True))


def test_same_scene_at_another_resolution():
    # At 3x the resolution, low-res pixel (i, j) has the same ray as high-res pixel (3i + 1, 3j + 1).
    low, low_pose = _render(2, 7, 40, 50)
    high, high_pose = _render(2, 7, 120, 150)
    assert low.attributes == high.attributes
    np.testing.assert_allclose(high_pose.position, low_pose.position)
    np.testing.assert_allclose(high_pose.focal, 3 * low_pose.focal)
    same_ray = (slice(1, None, 3), slice(1, None, 3))
    np.testing.assert_allclose(high.depth[same_ray], low.depth, rtol=1e-4)
    assert (high.semseg[same_ray] == low.semseg).mean() > 0.999
    assert (high.instances[same_ray] == low.instances).mean() > 0.999
    assert len(low.people) >= 2
    for small, large in zip(low.people, high.people, strict=True):
        assert (small.yaw, small.gender, small.height, small.depth) == (
            large.yaw,
            large.gender,
            large.height,
            large.depth,
        )
        np.testing.assert_allclose(np.multiply(small.head_centre, 3), large.head_centre, rtol=1e-5)
        # Thin parts (legs, arms) may fall between low-res pixel centres, so the high-res box holds
        # the low-res one (every low-res hit is a high-res hit), give or take a rounding pixel.
        (x, y, w, h), (big_x, big_y, big_w, big_h) = small.box, large.box
        assert big_x <= 3 * x + 1 + 3 and 3 * (x + w - 1) + 1 - 3 <= big_x + big_w - 1
        assert big_y <= 3 * y + 1 + 3 and 3 * (y + h - 1) + 1 - 3 <= big_y + big_h - 1


def test_wide_and_tall_images_keep_the_reference_frustum():
    # The focal length shrinks for the narrow side, so people fit whatever the aspect ratio,
    # except those placed at the edge of the view on purpose (truncated).
    for height, width in ((30, 120), (120, 30)):
        for index in range(10):
            scene, _ = _render(5, index, height, width)
            person = scene.semseg == PERSON
            cut = [k for k, p in enumerate(scene.people) if p.truncated]
            assert not _border(person & ~np.isin(scene.instances, cut)).any()
            assert person.any() == (scene.attributes["people"] != "0")


def test_images_are_not_flat(scenes):
    for scene, _ in scenes:
        assert scene.image.std() > 5  # texture, shading and noise
