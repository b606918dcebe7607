"""Sequences: the same room filmed over time, with people who walk in, stop, turn their heads and walk
out, and exact ground truth per frame (each visible person's box, track id, yaw and attributes).

A sequence is planned in world units first (`plan_sequence`): one room with its furniture, objects,
camera and light, as a still scene has (data/synth/_layout.py), and the people who pass through it.
Each person keeps their identity for the whole sequence: age group, gender, height, build, hair and
clothes (`_Look`); what changes from frame to frame is where they stand and where their head points.

- Everyone walks along a lane at a fixed distance from the camera (2.2 m to 5.5 m, lanes at least
  0.6 m apart, so bodies never meet but may hide each other in the image), entering from beyond one
  side of the view, usually stopping somewhere in it for 1-6 s, then leaving by either side. A
  third of them pass by without stopping. Walls hide the parts of a path outside the room.
- Walking, the head points along the path (about 90 degrees from the camera), with the odd glance at
  the display; standing, it turns between looking at the display (|yaw| < 20) and looking away,
  each for 0.5-2.5 s, the turns themselves taking 0.3 s. The body follows the head as in a still scene.
- Furniture and objects stand only behind the lanes, so nothing but other people hides a person.

Determinism: the plan is drawn from its generator before anything depends on the image size or the
frame; frame k's sensor noise comes from its own generator (`render_sequence_frame`), so any frame
renders alone, at any size, to the same picture.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from onepass.data.synth._camera import CameraPose
from onepass.data.synth._geometry import Primitive
from onepass.data.synth._layout import (
    Layout,
    _group,
    _sample_furniture,
    _sample_objects,
    _sample_room_and_rig,
    _sample_room_materials,
)
from onepass.data.synth._people import (
    CHILD_PROBABILITY,
    Person,
    _Look,
    _person_primitives,
    _sample_gaze_pitches,
    _sample_look,
)
from onepass.data.synth._render import render_layout
from onepass.data.synth._sampling import _Frustum, _uniform
from onepass.data.synth._scene import LOOKING_YAW_DEGREES, Scene

NEAREST_LANE, FARTHEST_LANE = 2.2, 5.5  # metres from the camera
LANE_GAP = 0.6  # metres between two lanes
OUTSIDE_VIEW = 1.35  # where paths start and end, in half-widths of the view (1 = its edge)
PASS_BY_PROBABILITY = 1 / 3
GLANCE_PROBABILITY = 0.3  # a walker glances at the display once on the way
TURN_SECONDS = 0.3  # a head turn


@dataclass(frozen=True)
class Walker:
    """One person's pass through the scene: who they are, their lane, and their timetable."""

    track: int  # 1, 2, ...: the same in every frame
    height: float
    is_child: bool
    gender: str
    look: _Look
    distance: float  # metres from the camera along its horizontal view direction
    enter_side: float  # where the path starts, the stop, and where it ends: -1 the left edge, 1 the right
    stop_side: float
    exit_side: float
    speed: float  # metres per second
    enter_time: float  # seconds: the walk starts beyond the view
    stay: float  # seconds standing at the stop (0: passing by)
    head_keys: tuple[tuple[float, float], ...]  # while standing: (seconds after arriving, yaw target)
    glance: tuple[float, float] | None  # while walking: (seconds after entering, how long) looking
    gaze_pitch: float = 0.0  # degrees the eyes look up (> 0) or down (< 0): the saliency label's

    def _walk_seconds(self, tan_h: float, a: float, b: float) -> float:
        return abs(b - a) * self.distance * tan_h / self.speed

    def timetable(self, tan_h: float) -> tuple[float, float, float]:
        """Arrival at the stop, departure from it, and the moment the path ends (seconds)."""
        arrive = self.enter_time + self._walk_seconds(tan_h, self.enter_side, self.stop_side)
        leave = arrive + self.stay
        return arrive, leave, leave + self._walk_seconds(tan_h, self.stop_side, self.exit_side)

    def state(self, time: float, tan_h: float) -> tuple[float, float] | None:
        """(side, head yaw in degrees) at `time`, or None when off the path (not yet, or gone)."""
        arrive, leave, end = self.timetable(tan_h)
        if not self.enter_time <= time <= end:
            return None
        if time < arrive:  # walking in
            fraction = (time - self.enter_time) / max(arrive - self.enter_time, 1e-9)
            side = self.enter_side + fraction * (self.stop_side - self.enter_side)
            yaw = _walking_yaw(self.stop_side - self.enter_side)
            if self.glance is not None and 0 <= time - self.enter_time - self.glance[0] < self.glance[1]:
                yaw = 0.0
            return side, yaw
        if time <= leave:  # standing: the head turns between its targets
            return self.stop_side, _head_yaw(self.head_keys, time - arrive)
        fraction = (time - leave) / max(end - leave, 1e-9)
        side = self.stop_side + fraction * (self.exit_side - self.stop_side)
        return side, _walking_yaw(self.exit_side - self.stop_side)


def _walking_yaw(direction: float) -> float:
    """Head yaw walking towards the image's right (direction > 0): the person's own left, +90."""
    return 90.0 if direction > 0 else -90.0


def _head_yaw(keys: tuple[tuple[float, float], ...], elapsed: float) -> float:
    """The yaw at `elapsed` seconds: each target from its key time on, reached in TURN_SECONDS."""
    yaw = keys[0][1]
    for (start, target), (_, previous) in zip(keys[1:], keys, strict=False):
        if elapsed >= start:
            fraction = min(1.0, (elapsed - start) / TURN_SECONDS)
            yaw = previous + fraction * (target - previous)
    return yaw


@dataclass(frozen=True)
class SequencePlan:
    """A sequence in world units: the room without people, and who passes through it when."""

    layout: Layout  # everything but the people
    walkers: tuple[Walker, ...]
    fps: float
    frames: int

    @property
    def tan_h(self) -> float:
        return self.layout.rig.reference_tangents()[0]


@dataclass(frozen=True)
class SequenceFrame:
    time: float  # seconds from the first frame
    scene: Scene  # the picture and every label, as a still scene has them
    tracks: tuple[int, ...]  # the track id of each of scene.people, in their order


def plan_sequence(rng: np.random.Generator, seconds: float, fps: float, max_people: int = 5) -> SequencePlan:
    """A room and 1..max_people walkers whose passes start within the first 60 % of the sequence."""
    if not (seconds > 0 and fps > 0):
        raise ValueError(f"a sequence needs a positive duration and frame rate, got {seconds} s at {fps} fps")
    room, rig = _sample_room_and_rig(rng, width=(5.0, 8.0), depth=(7.0, 10.0), yaw_degrees=8.0)
    pose = rig.pose(1, 1)
    frustum = _Frustum(pose, *rig.reference_tangents())
    count = int(rng.integers(1, max_people + 1))
    distances = _lanes(rng, count)
    tan_h = rig.reference_tangents()[0]
    inside = room.width / 2 - abs(rig.position[0]) - 0.6  # metres to either side a walker may stop
    walkers = tuple(
        _sample_walker(rng, k + 1, distance, seconds, min(0.6, inside / (distance * tan_h)))
        for k, distance in enumerate(distances)
    )
    # Furniture and objects behind the lanes only: the whole walking band counts as one person to keep clear.
    far = (max(distances) if distances else FARTHEST_LANE) + 0.6
    camera_z = rig.position[2]
    band = frustum.cones(np.array([[-room.width, 0.0, camera_z - far]]), np.array([[room.width, 2.1, 0.0]]))
    static: list[Primitive] = []
    furniture = _sample_furniture(rng, room, frustum, [band[0]], int(rng.integers(0, 4)))
    static.extend(furniture)
    static.extend(_sample_objects(rng, room, frustum, [band[0]], furniture, int(rng.integers(0, 3))))
    light_power = _uniform(rng, 0.9, 1.6)
    light_tint = colorsys.hsv_to_rgb(_uniform(rng, 0.05, 0.6), _uniform(rng, 0.0, 0.25), 1.0)
    ambient = _uniform(rng, 0.2, 0.45)
    layout = Layout(
        room=room,
        face_materials=_sample_room_materials(rng),
        rig=rig,
        primitives=tuple(static),
        occluders=tuple(_group([shape], k) for k, shape in enumerate(static)),
        people=(),
        person_primitives=(),
        gaze_pitches=(),
        light_position=(
            _uniform(rng, -0.4, 0.4) * room.width,
            room.height - _uniform(rng, 0.05, 0.3),
            -_uniform(rng, 0.5, 0.8) * room.depth,
        ),
        light_colour=tuple(light_power * channel for channel in light_tint),
        ambient_colour=tuple(ambient * channel for channel in light_tint),
        vignetting=_uniform(rng, 0.1, 0.4),
        noise_sigma=_uniform(rng, 1.0, 4.0),
        exposure=_uniform(rng, 0.85, 1.2),
    )
    # Each walker's gaze pitch (the saliency label's), drawn last: every earlier draw, and so every
    # sequence planned before the label existed, stays as it was.
    pitches = _sample_gaze_pitches(rng, len(walkers))
    walkers = tuple(dataclasses.replace(w, gaze_pitch=p) for w, p in zip(walkers, pitches, strict=True))
    return SequencePlan(layout, walkers, fps, max(1, round(seconds * fps)))


def _lanes(rng: np.random.Generator, count: int) -> list[float]:
    """`count` distances in [NEAREST_LANE, FARTHEST_LANE], at least LANE_GAP apart (fewer if they do not fit)."""
    lanes: list[float] = []
    for _ in range(count):
        for _ in range(32):
            candidate = _uniform(rng, NEAREST_LANE, FARTHEST_LANE)
            if all(abs(candidate - lane) >= LANE_GAP for lane in lanes):
                lanes.append(candidate)
                break
    return lanes


def _sample_walker(rng: np.random.Generator, track: int, distance: float, seconds: float, reach: float) -> Walker:
    """A walker on the lane at `distance`, stopping within `reach` half-widths of the view's centre."""
    is_child = bool(rng.random() < CHILD_PROBABILITY)
    height = _uniform(rng, 0.9, 1.35) if is_child else _uniform(rng, 1.55, 1.95)
    gender = "female" if rng.random() < 0.5 else "male"
    look = _sample_look(rng, Person(0.0, 0.0, height, is_child, gender, 0.0, distance))
    enter_side = OUTSIDE_VIEW if rng.random() < 0.5 else -OUTSIDE_VIEW
    exit_side = OUTSIDE_VIEW if rng.random() < 0.5 else -OUTSIDE_VIEW
    passing = bool(rng.random() < PASS_BY_PROBABILITY)
    if passing:
        exit_side = -enter_side  # straight through
    stop_side = _uniform(rng, -reach, reach)
    stay = 0.0 if passing else _uniform(rng, 1.0, 6.0)
    keys: list[tuple[float, float]] = []
    elapsed = 0.0
    while elapsed <= stay:
        looking = rng.random() < 0.5
        if looking:
            yaw = _uniform(rng, -0.8, 0.8) * LOOKING_YAW_DEGREES
        else:
            yaw = _uniform(rng, 35.0, 150.0) * (1 if rng.random() < 0.5 else -1)
        keys.append((elapsed, yaw))
        elapsed += _uniform(rng, 0.5, 2.5)
    glance = (_uniform(rng, 0.3, 2.0), _uniform(rng, 0.4, 1.0)) if rng.random() < GLANCE_PROBABILITY else None
    return Walker(
        track=track,
        height=height,
        is_child=is_child,
        gender=gender,
        look=look,
        distance=distance,
        enter_side=enter_side,
        stop_side=stop_side,
        exit_side=exit_side,
        speed=_uniform(rng, 0.7, 1.3),
        enter_time=_uniform(rng, -1.0, 0.6 * seconds),
        stay=stay,
        head_keys=tuple(keys),
        glance=glance,
    )


def frame_layout(plan: SequencePlan, time: float) -> tuple[Layout, tuple[int, ...]]:
    """The layout at `time`: the walkers on their paths, then the room's own primitives; and the
    track id of each person in the layout."""
    layout = plan.layout
    pose: CameraPose = layout.rig.pose(1, 1)
    camera_x, _, camera_z = pose.position
    forward = -pose.rotation[:, 2]
    norm = math.hypot(forward[0], forward[2])
    forward_x, forward_z = forward[0] / norm, forward[2] / norm
    primitives: list[Primitive] = []
    occluders = []
    people: list[Person] = []
    person_primitives: list[range] = []
    gaze_pitches: list[float] = []
    tracks: list[int] = []
    for walker in plan.walkers:
        state = walker.state(time, plan.tan_h)
        if state is None:
            continue
        side, yaw = state
        lateral = walker.distance * side * plan.tan_h
        x = camera_x + walker.distance * forward_x - lateral * forward_z
        z = camera_z + walker.distance * forward_z + lateral * forward_x
        depth = float(-pose.to_camera(np.array([[x, walker.height / 2, z]]))[0, 2])
        yaw = (yaw + 180.0) % 360.0 - 180.0
        person = Person(float(x), float(z), walker.height, walker.is_child, walker.gender, yaw, depth)
        body, details = _person_primitives(person, walker.look, layout.rig.position)
        occluders.append(_group(body, len(primitives)))  # the details cast no shadow, as in a still scene
        person_primitives.append(range(len(primitives), len(primitives) + len(body) + len(details)))
        primitives.extend(body + details)
        people.append(person)
        gaze_pitches.append(walker.gaze_pitch)
        tracks.append(walker.track)
    for shape in layout.primitives:
        occluders.append(_group([shape], len(primitives)))
        primitives.append(shape)
    frame = dataclasses.replace(
        layout,
        primitives=tuple(primitives),
        occluders=tuple(occluders),
        people=tuple(people),
        person_primitives=tuple(person_primitives),
        gaze_pitches=tuple(gaze_pitches),
    )
    return frame, tuple(tracks)


def render_sequence_frame(
    plan: SequencePlan, frame: int, noise: np.random.Generator, height: int, width: int
) -> SequenceFrame:
    """Frame `frame` (time frame / fps) at height x width; `noise` draws its sensor noise only."""
    time = frame / plan.fps
    layout, tracks = frame_layout(plan, time)
    scene, _ = render_layout(noise, layout, height, width)
    # scene.people lists the visible people nearest first; each keeps its height and depth exactly,
    # which tells who is who.
    by_identity = {(p.height, p.depth): track for p, track in zip(layout.people, tracks, strict=True)}
    return SequenceFrame(time, scene, tuple(by_identity[(p.height, p.depth)] for p in scene.people))
