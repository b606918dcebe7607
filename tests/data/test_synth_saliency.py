"""The synthetic saliency label (data/synth/_saliency.py): a density that sums to 1 or is all zeros,
blobs where the geometry says on hand-built layouts, faces of looking people, determinism, and the
same density at twice the size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onepass.data.synth import Scene, render_scene
from onepass.data.synth._camera import CameraRig
from onepass.data.synth._geometry import Box, Room
from onepass.data.synth._layout import Layout
from onepass.data.synth._materials import PlainMaterial
from onepass.data.synth._people import Person, _person_primitives, _sample_look
from onepass.data.synth._saliency import EYE_FORWARD, EYE_UP, FACE_SPREAD, GAZE_SPREAD_DEGREES, _saliency_map
from onepass.data.synth._scene import FURNITURE

SIZE = (48, 64)
SCENE_COUNT = 40
GREY = PlainMaterial((0.5, 0.5, 0.5))


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [render_scene(np.random.default_rng([21, index]), *SIZE) for index in range(SCENE_COUNT)]


# ---- hand-built layouts: one person in an empty room, camera level with the room's axis --------


ROOM = Room(width=6.0, depth=8.0, height=3.0)
RIG = CameraRig(position=(0.0, 1.8, -0.2), yaw=0.0, pitch=math.radians(10.0), horizontal_fov=math.radians(70.0))
PERSON_Z = -3.0


def _layout(yaw: float, pitch: float = 0.0, extra: tuple = (), rig: CameraRig = RIG) -> Layout:
    """One adult on the camera's axis (x = 0), 2.8 m in front of it, head turned `yaw` degrees."""
    person = Person(x=0.0, z=PERSON_Z, height=1.75, is_child=False, gender="female", yaw=yaw, depth=2.8)
    body, details = _person_primitives(person, _sample_look(np.random.default_rng(0), person), rig.position)
    parts = tuple(body + details)
    return Layout(
        room=ROOM,
        face_materials=(GREY,) * 6,
        rig=rig,
        primitives=parts + tuple(extra),
        occluders=(),
        people=(person,),
        person_primitives=(range(len(parts)),),
        gaze_pitches=(pitch,),
        light_position=(0.0, 2.9, -4.0),
        light_colour=(1.0, 1.0, 1.0),
        ambient_colour=(0.3, 0.3, 0.3),
        vignetting=0.0,
        noise_sigma=0.0,
        exposure=1.0,
    )


def _expected_pixel(pose, point: np.ndarray) -> tuple[float, float, float]:
    """Continuous pixel coordinates (u right, v down) and camera depth of a world point, by the pose."""
    x, y, z = pose.to_camera(point[None])[0]
    return pose.focal * x / -z + pose.width / 2, pose.height / 2 - pose.focal * y / -z, -z


def _moments(density: np.ndarray) -> tuple[float, float, float, float]:
    """Mean and standard deviation along columns and rows (pixel centres at k + 0.5)."""
    columns, rows = density.sum(axis=0), density.sum(axis=1)
    u, v = np.arange(density.shape[1]) + 0.5, np.arange(density.shape[0]) + 0.5
    mean_u, mean_v = float(columns @ u), float(rows @ v)
    return mean_u, math.sqrt(float(columns @ (u - mean_u) ** 2)), mean_v, math.sqrt(float(rows @ (v - mean_v) ** 2))


def _check_blob(density: np.ndarray, pose, point: np.ndarray, sigma_metres: float) -> None:
    """The density is one blob centred on `point`'s pixel, `sigma_metres` wide there."""
    u, v, depth = _expected_pixel(pose, point)
    sigma = pose.focal * sigma_metres / depth
    assert 3 * sigma < min(u, v, pose.width - u, pose.height - v), "the blob must not be cut by the border"
    np.testing.assert_allclose(density.sum(), 1.0, rtol=1e-5)
    row, column = np.unravel_index(np.argmax(density), density.shape)
    # The peak is the pixel holding the point (either one, for a point on the edge between two).
    assert column - 1e-6 <= u <= column + 1 + 1e-6 and row - 1e-6 <= v <= row + 1 + 1e-6, (row, column, u, v)
    mean_u, std_u, mean_v, std_v = _moments(density)
    spread = math.sqrt(sigma**2 + 1 / 12)  # a Gaussian integrated over unit pixels
    np.testing.assert_allclose((mean_u, mean_v), (u, v), atol=0.02)
    np.testing.assert_allclose((std_u, std_v), (spread, spread), rtol=0.02)
    far = np.hypot(*np.meshgrid(np.arange(pose.height) + 0.5 - v, np.arange(pose.width) + 0.5 - u, indexing="ij"))
    assert density[far > 6 * sigma + 1].sum() < 1e-6  # nothing where no gaze lands


def _eye(layout: Layout) -> np.ndarray:
    person = layout.people[0]
    x, y, z = person.head_centre
    forward = -1.0 if abs(person.yaw) > 90 else 1.0  # along -z (away) or +z (towards the camera)
    return np.array([x, y + EYE_UP * person.head_radius, z + forward * EYE_FORWARD * person.head_radius])


def test_a_person_facing_the_far_wall_looks_at_the_point_straight_ahead():
    layout = _layout(yaw=180.0)
    pose = RIG.pose(96, 128)
    eye = _eye(layout)
    hit = np.array([0.0, eye[1], -ROOM.depth])  # straight ahead on the far wall, at eye height
    distance = eye[2] - hit[2]
    density = _saliency_map(layout, pose, [0])
    _check_blob(density, pose, hit, distance * math.tan(math.radians(GAZE_SPREAD_DEGREES)))
    assert density.dtype == np.float32 and density.shape == (96, 128)


def test_the_gaze_pitch_moves_the_point_down_the_wall():
    pitch = -10.0
    layout = _layout(yaw=180.0, pitch=pitch)
    pose = RIG.pose(96, 128)
    eye = _eye(layout)
    run = eye[2] + ROOM.depth  # horizontal distance to the far wall
    hit = np.array([0.0, eye[1] + run * math.tan(math.radians(pitch)), -ROOM.depth])
    distance = run / math.cos(math.radians(pitch))
    density = _saliency_map(layout, pose, [0])
    _check_blob(density, pose, hit, distance * math.tan(math.radians(GAZE_SPREAD_DEGREES)))


def test_a_person_never_looks_at_their_own_body():
    # Looking straight down, the gaze would meet the chest; it passes it and lands at the feet.
    pitch = -89.0
    rig = CameraRig(RIG.position, yaw=0.0, pitch=math.radians(25.0), horizontal_fov=RIG.horizontal_fov)  # sees the feet
    layout = _layout(yaw=180.0, pitch=pitch, rig=rig)
    pose = rig.pose(96, 128)
    eye = _eye(layout)
    run = eye[1] / math.tan(math.radians(-pitch))  # horizontal distance to where it meets the floor
    hit = np.array([0.0, 0.0, eye[2] - run])
    density = _saliency_map(layout, pose, [0])
    _check_blob(density, pose, hit, math.hypot(run, eye[1]) * math.tan(math.radians(GAZE_SPREAD_DEGREES)))


def test_the_gaze_stops_at_the_first_surface_in_its_way():
    front = -5.2  # a cupboard's front face, between the person and the far wall
    cupboard = Box((0.0, 1.0, front - 0.3), (1.0, 1.0, 0.3), 0.0, FURNITURE, GREY)
    layout = _layout(yaw=180.0, extra=(cupboard,))
    pose = RIG.pose(96, 128)
    eye = _eye(layout)
    hit = np.array([0.0, eye[1], front])
    density = _saliency_map(layout, pose, [0])
    _check_blob(density, pose, hit, (eye[2] - front) * math.tan(math.radians(GAZE_SPREAD_DEGREES)))


def test_a_looking_persons_face_draws_the_attention_and_their_gaze_at_the_display_adds_nothing():
    layout = _layout(yaw=5.0)
    pose = RIG.pose(96, 128)
    person = layout.people[0]
    head = np.array(person.head_centre)
    towards_camera = (pose.position - head) / np.linalg.norm(pose.position - head)
    face = head + person.head_radius * towards_camera
    density = _saliency_map(layout, pose, [0])
    _check_blob(density, pose, face, FACE_SPREAD * person.head_radius)


@pytest.mark.parametrize(
    "yaw",
    [
        40.0,  # not looking, the gaze lands on the wall behind the camera
        90.0,  # on the side wall, outside the camera's view
    ],
)
def test_a_gaze_out_of_view_gives_an_all_zero_map(yaw):
    pose = RIG.pose(48, 64)
    density = _saliency_map(_layout(yaw=yaw), pose, [0])
    assert density.shape == (48, 64) and not density.any()


def test_people_who_are_not_visible_add_nothing():
    pose = RIG.pose(48, 64)
    assert not _saliency_map(_layout(yaw=180.0), pose, []).any()


# ---- rendered scenes ----------------------------------------------------------------------------


def test_the_density_sums_to_one_or_is_all_zero(scenes):
    labelled = 0
    for scene in scenes:
        density = scene.saliency
        assert density.shape == SIZE and density.dtype == np.float32 and density.flags.c_contiguous
        assert np.isfinite(density).all() and (density >= 0).all()
        if density.any():
            np.testing.assert_allclose(density.sum(), 1.0, rtol=1e-5)
            labelled += 1
        if not scene.people:
            assert not density.any()  # no one to look anywhere
    assert 0.5 * SCENE_COUNT < labelled < SCENE_COUNT  # most scenes have a gaze in view, not all


def test_looking_peoples_faces_are_looked_at(scenes):
    faces = 0
    for scene in scenes:
        for person in scene.people:
            x, y = person.head_centre
            if person.looking and 0 <= x < SIZE[1] and 0 <= y < SIZE[0]:
                assert scene.saliency[int(y), int(x)] > 0.05 * scene.saliency.max()
                faces += 1
    assert faces >= 3


def test_same_generator_state_gives_the_same_density():
    first = render_scene(np.random.default_rng([3, 5]), *SIZE)
    second = render_scene(np.random.default_rng([3, 5]), *SIZE)
    np.testing.assert_array_equal(first.saliency, second.saliency)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_the_same_scene_at_twice_the_size_gives_the_same_density():
    compared = 0
    for index in range(12):
        low = render_scene(np.random.default_rng([8, index]), 40, 56)
        high = render_scene(np.random.default_rng([8, index]), 80, 112)
        assert low.saliency.any() == high.saliency.any()
        if not low.saliency.any():
            continue
        pooled = high.saliency.reshape(40, 2, 56, 2).sum(axis=(1, 3))  # (40, 56)
        assert _correlation(pooled, low.saliency) > 0.95
        np.testing.assert_allclose(pooled, low.saliency, atol=1e-4 * float(low.saliency.max()))
        compared += 1
    assert compared >= 6
