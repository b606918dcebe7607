"""People: where they stand, how they are built and dressed, where they look, and the primitives
that make up a body."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onepass.data.synth._geometry import Cylinder, Ellipsoid, Primitive, Room
from onepass.data.synth._materials import HeadMaterial, Material, PlainMaterial, SplitMaterial, StripeMaterial
from onepass.data.synth._sampling import (
    PLACEMENT_CANDIDATES,
    _cones_overlap,
    _first,
    _Frustum,
    _inside_room,
    _random_colour,
    _shifted,
    _uniform,
)
from onepass.data.synth._scene import PERSON, Colour, Vector

NEAREST_PERSON_DEPTH, FARTHEST_PERSON_DEPTH = 1.5, 6.0
CHILD_PROBABILITY = 0.4


@dataclass(frozen=True)
class Person:
    x: float
    z: float
    height: float
    is_child: bool
    facing_camera: bool
    depth: float  # camera z-depth of the body centre


def _skin_colour(rng: np.random.Generator) -> Colour:
    light, dark = (0.95, 0.78, 0.66), (0.32, 0.2, 0.13)
    tone = rng.random()
    return tuple(a + (b - a) * tone + _uniform(rng, -0.03, 0.03) for a, b in zip(light, dark, strict=True))


HAIR_COLOURS: tuple[Colour, ...] = (
    (0.06, 0.05, 0.04),
    (0.25, 0.15, 0.08),
    (0.55, 0.4, 0.2),
    (0.8, 0.7, 0.45),
    (0.6, 0.6, 0.6),
    (0.5, 0.2, 0.08),
)


def _sample_people(
    rng: np.random.Generator, room: Room, frustum: _Frustum, count: int
) -> tuple[list[Person], list[np.ndarray]]:
    """Up to `count` people, each fully in the reference frustum and beside the others.

    Returns the people and the cone (6,) of each one's bounding box.
    """
    people: list[Person] = []
    cones: list[np.ndarray] = []
    camera_x, _, camera_z = frustum.pose.position
    forward = -frustum.pose.rotation[:, 2]
    norm = math.hypot(forward[0], forward[2])
    forward_x, forward_z = forward[0] / norm, forward[2] / norm  # horizontal viewing direction
    for _ in range(count):
        is_child = bool(rng.random() < CHILD_PROBABILITY)
        height = _uniform(rng, 0.9, 1.35) if is_child else _uniform(rng, 1.55, 1.95)
        facing = bool(rng.random() < 0.5)
        radius = _Body(height, is_child).footprint
        distance = rng.uniform(NEAREST_PERSON_DEPTH, FARTHEST_PERSON_DEPTH, PLACEMENT_CANDIDATES)  # (n,)
        lateral = distance * rng.uniform(-1.0, 1.0, PLACEMENT_CANDIDATES) * frustum.tan_h  # (n,)
        x = camera_x + distance * forward_x - lateral * forward_z  # (n,)
        z = camera_z + distance * forward_z + lateral * forward_x  # (n,)
        body_centre = np.stack([x, np.full_like(x, height / 2), z], axis=1)  # (n, 3)
        depth = -frustum.pose.to_camera(body_centre)[:, 2]  # (n,)
        lo = np.stack([x - radius, np.zeros_like(x), z - radius], axis=1)  # (n, 3)
        hi = np.stack([x + radius, np.full_like(x, height), z + radius], axis=1)  # (n, 3)
        candidate_cones = frustum.cones(lo, hi)  # (n, 6)
        valid = (
            (NEAREST_PERSON_DEPTH <= depth)
            & (depth <= FARTHEST_PERSON_DEPTH)
            & _inside_room(room, lo, hi, margin=0.3)
            & frustum.contains(candidate_cones)
        )
        for other in cones:
            valid &= ~_cones_overlap(candidate_cones, other, gap=0.03)
        chosen = _first(valid)
        if chosen is None:  # no room left for this person: the scene has one fewer
            continue
        people.append(Person(float(x[chosen]), float(z[chosen]), height, is_child, facing, float(depth[chosen])))
        cones.append(candidate_cones[chosen])
    return people, cones


@dataclass(frozen=True)
class _Body:
    """Body dimensions in metres, scaled from the true height (the top of the head).

    Children have relatively larger heads and shorter legs.
    """

    height: float
    is_child: bool

    @property
    def breadth(self) -> float:  # horizontal sizes scale with height
        return self.height / 1.75

    @property
    def head_radius(self) -> float:
        return self.height * (0.085 if self.is_child else 0.063)

    @property
    def leg_top(self) -> float:
        return self.height * (0.43 if self.is_child else 0.47)

    @property
    def shoulder(self) -> float:
        return self.height - 2 * self.head_radius - 0.02 * self.height

    @property
    def footprint(self) -> float:
        """Radius of a vertical cylinder around the whole body (arms included)."""
        return 0.3 * self.breadth


@dataclass(frozen=True)
class _Look:
    skin: Colour
    hair: Colour
    hairline: float  # hair covers the head above this height on the unit sphere
    torso: Material
    arms: Material
    legs: Material


def _sample_look(rng: np.random.Generator, body: _Body) -> _Look:
    skin = _skin_colour(rng)
    shirt = _random_colour(rng, value=(0.15, 0.95))
    trousers = _random_colour(rng, saturation=(0.0, 0.6), value=(0.1, 0.7))
    shoes = _random_colour(rng, saturation=(0.0, 0.3), value=(0.05, 0.4))
    hair = _shifted(rng, HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))], 0.15)
    if rng.random() < 0.35:
        torso: Material = StripeMaterial(shirt, _random_colour(rng), (0.0, 1.0, 0.0), _uniform(rng, 0.05, 0.15), 0.5)
    else:
        torso = PlainMaterial(shirt)
    sleeve_end = body.shoulder - 0.19 * body.height * _uniform(rng, 0.4, 2.0)  # bare forearms or long sleeves
    return _Look(
        skin=skin,
        hair=hair,
        hairline=_uniform(rng, 0.3, 0.6),
        torso=torso,
        arms=SplitMaterial(skin, shirt, sleeve_end),
        legs=SplitMaterial(shoes, trousers, 0.06 * body.height),
    )


def _sample_gaze(rng: np.random.Generator, person: Person, camera: Vector) -> Vector:
    """Horizontal unit vector the person looks along: within 35 degrees of the camera when
    facing it, otherwise turned away far enough that the camera sees the back of the head."""
    to_camera = math.atan2(camera[0] - person.x, camera[2] - person.z)  # heading angle, x over z
    turn = _uniform(rng, -35.0, 35.0) if person.facing_camera else _uniform(rng, 140.0, 220.0)
    heading = to_camera + math.radians(turn)
    return math.sin(heading), 0.0, math.cos(heading)


def _person_primitives(person: Person, gaze: Vector, look: _Look) -> list[Primitive]:
    """Legs (cylinders), torso, shoulders and arms (ellipsoids) and a head with a face."""
    body = _Body(person.height, person.is_child)
    h, b = person.height, body.breadth
    right = (-gaze[2], 0.0, gaze[0])
    # The local frame's -z is the gaze and +x the right hand: yaw with (sin, cos) = -(gx, gz).
    yaw = math.atan2(-gaze[0], -gaze[2])

    def beside(offset: float, y: float) -> Vector:
        """A point `offset` metres to the person's right of the body axis, at height y."""
        return person.x + offset * right[0], y, person.z + offset * right[2]

    parts: list[Primitive] = []
    for side in (-1.0, 1.0):
        foot = beside(side * 0.085 * b, 0.0)
        parts.append(Cylinder(foot[0], foot[2], 0.0, body.leg_top + 0.05, 0.06 * b, PERSON, look.legs))
    torso_bottom, torso_top = body.leg_top - 0.03 * h, body.shoulder + 0.03 * h
    torso_half_width, torso_half_depth = 0.19 * b, 0.12 * b
    torso_centre = beside(0.0, (torso_bottom + torso_top) / 2)
    torso_radii = (torso_half_width, (torso_top - torso_bottom) / 2, torso_half_depth)
    parts.append(Ellipsoid(torso_centre, torso_radii, yaw, PERSON, look.torso))
    # A flat ellipsoid across the shoulders rounds them off and hides the arms' upper tips.
    arm_radius, arm_half_length = 0.05 * b, 0.19 * h
    shoulders_radii = (torso_half_width + 1.2 * arm_radius, 0.05 * h, 0.9 * torso_half_depth)
    parts.append(Ellipsoid(beside(0.0, body.shoulder - 0.02 * h), shoulders_radii, yaw, PERSON, look.torso))
    for side in (-1.0, 1.0):
        hand = beside(side * (torso_half_width + 0.5 * arm_radius), body.shoulder - arm_half_length - 0.01 * h)
        arm_radii = (arm_radius, arm_half_length, 1.1 * arm_radius)
        parts.append(Ellipsoid(hand, arm_radii, yaw, PERSON, look.arms))
    # The head is slightly taller than wide; its top is the person's true height.
    head_radii = (body.head_radius, 1.08 * body.head_radius, body.head_radius)
    head_centre = beside(0.0, h - head_radii[1])
    face = HeadMaterial(
        center=head_centre,
        radius=body.head_radius,
        forward=gaze,
        skin=look.skin,
        hair=look.hair,
        eyes=(0.05, 0.04, 0.04),
        mouth=(0.45, 0.12, 0.12),
        hairline=look.hairline,
    )
    parts.append(Ellipsoid(head_centre, head_radii, yaw, PERSON, face))
    return parts
