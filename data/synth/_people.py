"""People: where they stand, who they are (age group, gender, head yaw), how they are built and
dressed, and the primitives that make up a body.

What a viewer, and the model at 128x160, can read from the pixels:

- Age group is the TRUE height: children are 0.9-1.35 m tall, adults 1.55-1.95 m, so a near child
  and a far adult can look the same size and depth tells them apart. Children also have relatively
  larger heads and shorter legs.
- Gender has three documented cues, each with overlap so that no single one decides it:
  - Build (adults): men have a broad chest over narrow hips (a "V": half-widths 0.235 and 0.165
    of the breadth, height / 1.75), women a narrow chest over wide hips (an "A": 0.16 and 0.205),
    with the arms hanging outside the hips. Children of both genders share one build (0.19, 0.175).
  - Hair: 80 % of women and girls have long hair, a volume behind and below the head that reaches
    past the shoulders (from the front it frames the face and neck, from behind it covers the upper
    back); 90 % of men and boys have short hair, a cap on the head only.
  - Clothing: shirts come from a palette per gender (women: reds, pinks, purples, oranges, teals;
    men: browns, greens, blues, navy, indigo), and 30 % of everyone's from one shared palette of
    neutrals (black, white, greys, beige), so colour alone does not separate them; 40 % of women
    and girls wear a skirt (bare legs below it), men and boys never.
- Head yaw, in degrees from -180 to 180: 0 faces the camera (the person looks at the display),
  positive turns to the person's own left, which is towards the right of the image. The face
  (skin, dark eyes, a darker nose and a red mouth) covers the front of the head, hair the back
  and the crown: the face slides across the head with the yaw, a profile (|yaw| near 90) shows one
  eye and the nose, and the back of the head (|yaw| >= 90) only hair. `looking` is |yaw| < 20. The
  body turns with the head, give or take 20 degrees.
- Gaze: the eyes look along the head's yaw, pitched by an angle drawn from GAZE_PITCH_DEGREES (most
  people look a little down); the pitch does not show in the pixels (the head stays upright), only
  in where the gaze lands (the saliency label, _saliency.py).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from onepass.data.synth._geometry import Cylinder, Ellipsoid, Primitive, Room
from onepass.data.synth._materials import HeadMaterial, Material, PlainMaterial, SplitMaterial, StripeMaterial
from onepass.data.synth._sampling import (
    PLACEMENT_CANDIDATES,
    _first,
    _Frustum,
    _inside_room,
    _random_colour,
    _shifted,
    _uniform,
)
from onepass.data.synth._scene import PERSON, Colour, Vector

NEAREST_PERSON_DEPTH, FARTHEST_PERSON_DEPTH = 1.5, 6.0
# How many people a scene asks for, 0 to 6 (fewer when there is no room left for some).
PEOPLE_COUNT_PROBABILITIES = (0.15, 0.25, 0.2, 0.14, 0.1, 0.08, 0.08)
CHILD_PROBABILITY = 0.4
# Share of people who look towards the display (yaw within +-25 degrees); the others face any way.
ATTENDING_PROBABILITY = 0.35
# Share of people who stand at the left or right edge of the view where there is room (walls may
# leave none), cut by the image border.
AT_THE_EDGE_PROBABILITY = 0.2
# People may overlap in the image, but at most this share of each one's width (in the view) lies
# behind or in front of the others' bounding boxes, so everyone stays clearly visible.
MAX_COVERED_FRACTION = 0.5
# Where the eyes look up or down from the horizontal, degrees (< 0 looks down): uniform in this range.
GAZE_PITCH_DEGREES = (-20.0, 5.0)


@dataclass(frozen=True)
class Person:
    x: float
    z: float
    height: float
    is_child: bool
    gender: str  # "female" | "male"
    yaw: float  # head yaw, degrees in [-180, 180): 0 faces the camera, > 0 turns to the person's left
    depth: float  # camera z-depth of the body centre

    @property
    def age_group(self) -> str:
        return "child" if self.is_child else "adult"

    @property
    def head_centre(self) -> Vector:
        return self.x, _Body(self.height, self.is_child, self.gender).head_centre_height, self.z

    @property
    def head_radius(self) -> float:
        return _Body(self.height, self.is_child, self.gender).head_radius


@dataclass(frozen=True)
class _Body:
    """Body dimensions in metres, scaled from the true height (the top of the head)."""

    height: float
    is_child: bool
    gender: str

    @property
    def breadth(self) -> float:  # horizontal sizes scale with height
        return self.height / 1.75

    @property
    def head_radius(self) -> float:
        return self.height * (0.085 if self.is_child else 0.063)

    @property
    def head_centre_height(self) -> float:
        return self.height - 1.08 * self.head_radius  # the head is 1.08 times taller than wide

    @property
    def leg_top(self) -> float:
        return self.height * (0.43 if self.is_child else 0.47)

    @property
    def shoulder(self) -> float:
        return self.height - 2 * self.head_radius - 0.02 * self.height

    @property
    def chest_half_width(self) -> float:
        """Half-width of the upper torso (the module docstring's build cue)."""
        return self.breadth * (0.19 if self.is_child else 0.16 if self.gender == "female" else 0.235)

    @property
    def hip_half_width(self) -> float:
        """Half-width of the lower torso and hips."""
        return self.breadth * (0.175 if self.is_child else 0.205 if self.gender == "female" else 0.165)

    @property
    def arm_radius(self) -> float:
        return 0.05 * self.breadth

    @property
    def footprint(self) -> float:
        """Radius of a vertical cylinder around the whole body (arms included)."""
        return 0.32 * self.breadth


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
LONG_HAIR_PROBABILITY = {"female": 0.8, "male": 0.1}
SKIRT_PROBABILITY = {"female": 0.4, "male": 0.0}
SHARED_PALETTE_PROBABILITY = 0.3
# Shirt hues (0-1 on the colour wheel) per gender: the module docstring's clothing cue.
SHIRT_HUES = {
    "female": (0.0, 0.08, 0.47, 0.8, 0.9, 0.96),  # red, orange, teal, purple, pink, rose
    "male": (0.1, 0.3, 0.38, 0.58, 0.63, 0.67),  # brown, green, dark green, blue, navy, indigo
}


def _sample_people(
    rng: np.random.Generator, room: Room, frustum: _Frustum, count: int
) -> tuple[list[Person], list[np.ndarray]]:
    """Up to `count` people, each in the reference frustum, apart from the others on the floor and
    never covering more than MAX_COVERED_FRACTION of anyone in the view.

    Returns the people and the cone (6,) of each one's bounding box.
    """
    people: list[Person] = []
    cones: list[np.ndarray] = []
    footprints: list[float] = []
    covered: list[float] = []  # per person so far: the share of its width behind or before others
    camera_x, _, camera_z = frustum.pose.position
    forward = -frustum.pose.rotation[:, 2]
    norm = math.hypot(forward[0], forward[2])
    forward_x, forward_z = forward[0] / norm, forward[2] / norm  # horizontal viewing direction
    for _ in range(count):
        is_child = bool(rng.random() < CHILD_PROBABILITY)
        height = _uniform(rng, 0.9, 1.35) if is_child else _uniform(rng, 1.55, 1.95)
        gender = "female" if rng.random() < 0.5 else "male"
        if rng.random() < ATTENDING_PROBABILITY:
            yaw = _uniform(rng, -25.0, 25.0)
        else:
            yaw = _uniform(rng, -180.0, 180.0)
        at_the_edge = bool(rng.random() < AT_THE_EDGE_PROBABILITY)
        radius = _Body(height, is_child, gender).footprint
        distance = rng.uniform(NEAREST_PERSON_DEPTH, FARTHEST_PERSON_DEPTH, PLACEMENT_CANDIDATES)  # (n,)
        side = rng.uniform(-1.0, 1.0, PLACEMENT_CANDIDATES)  # (n,) where in the view, -1 to 1
        if at_the_edge:  # the first half of the candidates (tried first) near the left or right border
            edge = side[: PLACEMENT_CANDIDATES // 2]
            edge[:] = np.sign(edge) * (0.8 + 0.2 * np.abs(edge))
        lateral = distance * side * frustum.tan_h  # (n,)
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
            & frustum.contains(candidate_cones, cut_sides=at_the_edge)
        )
        width = candidate_cones[:, 1] - candidate_cones[:, 0]  # (n,) in tangent units
        overlaps = []
        for other, other_footprint, other_covered, person in zip(cones, footprints, covered, people, strict=True):
            valid &= np.hypot(x - person.x, z - person.z) > radius + other_footprint + 0.05  # bodies apart
            overlap = np.maximum(
                0.0, np.minimum(candidate_cones[:, 1], other[1]) - np.maximum(candidate_cones[:, 0], other[0])
            )  # (n,)
            valid &= other_covered + overlap / (other[1] - other[0]) <= MAX_COVERED_FRACTION
            overlaps.append(overlap)
        own_covered = sum(overlaps, np.zeros_like(width)) / width  # (n,) an upper bound of the union
        valid &= own_covered <= MAX_COVERED_FRACTION
        chosen = _first(valid)
        if chosen is None:  # no room left for this person: the scene has one fewer
            continue
        for k, overlap in enumerate(overlaps):
            covered[k] += float(overlap[chosen] / (cones[k][1] - cones[k][0]))
        people.append(Person(float(x[chosen]), float(z[chosen]), height, is_child, gender, yaw, float(depth[chosen])))
        cones.append(candidate_cones[chosen])
        footprints.append(radius)
        covered.append(float(own_covered[chosen]))
    return people, cones


def _sample_gaze_pitches(rng: np.random.Generator, count: int) -> tuple[float, ...]:
    """Each person's gaze pitch, degrees (< 0 looks down)."""
    return tuple(rng.uniform(*GAZE_PITCH_DEGREES, count).tolist())


@dataclass(frozen=True)
class _Look:
    skin: Colour
    hair: Colour
    long_hair: bool
    hairline: float  # the hair cap covers the head above this height on the unit sphere
    torso: Material
    waist: Material  # the lower torso: trousers or skirt below the belt, the shirt above
    arms: Material
    legs: Material
    skirt: Material | None
    body_turn: float  # degrees the body is turned from the head's yaw


def _shirt_colour(rng: np.random.Generator, gender: str) -> Colour:
    if rng.random() < SHARED_PALETTE_PROBABILITY:  # neutrals, worn by everyone
        return colorsys.hsv_to_rgb(_uniform(rng, 0.05, 0.15), _uniform(rng, 0.0, 0.15), _uniform(rng, 0.1, 0.95))
    hues = SHIRT_HUES[gender]
    hue = hues[int(rng.integers(len(hues)))] + _uniform(rng, -0.03, 0.03)
    return colorsys.hsv_to_rgb(hue % 1.0, _uniform(rng, 0.45, 0.9), _uniform(rng, 0.3, 0.9))


def _sample_look(rng: np.random.Generator, person: Person) -> _Look:
    body = _Body(person.height, person.is_child, person.gender)
    skin = _skin_colour(rng)
    shirt = _shirt_colour(rng, person.gender)
    trousers = _random_colour(rng, saturation=(0.0, 0.6), value=(0.1, 0.6))
    shoes = _random_colour(rng, saturation=(0.0, 0.3), value=(0.05, 0.4))
    hair = _shifted(rng, HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))], 0.15)
    long_hair = bool(rng.random() < LONG_HAIR_PROBABILITY[person.gender])
    if rng.random() < 0.35:
        torso: Material = StripeMaterial(shirt, _random_colour(rng), (0.0, 1.0, 0.0), _uniform(rng, 0.05, 0.15), 0.5)
    else:
        torso = PlainMaterial(shirt)
    sleeve_end = body.shoulder - 0.19 * body.height * _uniform(rng, 0.4, 2.0)  # bare forearms or long sleeves
    skirt = None
    legs = SplitMaterial(shoes, trousers, 0.06 * body.height)
    if rng.random() < SKIRT_PROBABILITY[person.gender]:
        trousers = _shirt_colour(rng, person.gender)
        skirt = PlainMaterial(trousers)
        legs = SplitMaterial(shoes, skin, 0.06 * body.height)
    return _Look(
        skin=skin,
        hair=hair,
        long_hair=long_hair,
        hairline=_uniform(rng, 0.15, 0.35) if long_hair else _uniform(rng, 0.3, 0.6),
        torso=torso,
        waist=SplitMaterial(trousers, shirt, body.leg_top + 0.06 * body.height),
        arms=SplitMaterial(skin, shirt, sleeve_end),
        legs=legs,
        skirt=skirt,
        body_turn=_uniform(rng, -20.0, 20.0),
    )


def _heading(person: Person, camera: Vector, turn: float) -> tuple[float, float]:
    """Horizontal unit vector (x, z) turned `turn` degrees (to the person's left) from the camera."""
    to_camera = math.atan2(camera[0] - person.x, camera[2] - person.z)  # heading angle, x over z
    heading = to_camera + math.radians(turn)
    return math.sin(heading), math.cos(heading)


def _person_primitives(person: Person, look: _Look, camera: Vector) -> tuple[list[Primitive], list[Primitive]]:
    """The body: legs (cylinders), a skirt (a cylinder), chest, hips, long hair and a head with a
    face (ellipsoids); and the details, whose shadows would hardly show beside the body's: the
    shoulders and the arms (ellipsoids)."""
    body = _Body(person.height, person.is_child, person.gender)
    h, b = person.height, body.breadth
    gaze_x, gaze_z = _heading(person, camera, person.yaw)
    facing_x, facing_z = _heading(person, camera, person.yaw + look.body_turn)
    right = (-facing_z, 0.0, facing_x)
    # A local frame's -z is where it faces and +x the right hand: yaw with (sin, cos) = -(fx, fz).
    body_yaw, head_yaw = math.atan2(-facing_x, -facing_z), math.atan2(-gaze_x, -gaze_z)

    def beside(offset: float, y: float) -> Vector:
        """A point `offset` metres to the person's right of the body axis, at height y."""
        return person.x + offset * right[0], y, person.z + offset * right[2]

    parts: list[Primitive] = []
    for side in (-1.0, 1.0):
        foot = beside(side * 0.085 * b, 0.0)
        parts.append(Cylinder(foot[0], foot[2], 0.0, body.leg_top + 0.05, 0.06 * b, PERSON, look.legs))
    if look.skirt is not None:  # from the hips to the knees, over both legs
        skirt_top = body.leg_top + 0.06 * h
        skirt = Cylinder(
            person.x, person.z, 0.5 * body.leg_top, skirt_top, 1.02 * body.hip_half_width, PERSON, look.skirt
        )
        parts.append(skirt)
    # The torso: a chest over a waist and hips, the chest wider for men and the hips for women.
    torso_half_depth = 0.12 * b
    chest_bottom, chest_top = body.shoulder - 0.28 * h, body.shoulder + 0.03 * h
    chest_radii = (body.chest_half_width, (chest_top - chest_bottom) / 2, torso_half_depth)
    parts.append(Ellipsoid(beside(0.0, (chest_bottom + chest_top) / 2), chest_radii, body_yaw, PERSON, look.torso))
    hips_bottom, hips_top = body.leg_top - 0.04 * h, body.shoulder - 0.18 * h
    hips_radii = (body.hip_half_width, (hips_top - hips_bottom) / 2, 0.95 * torso_half_depth)
    parts.append(Ellipsoid(beside(0.0, (hips_bottom + hips_top) / 2), hips_radii, body_yaw, PERSON, look.waist))
    # A flat ellipsoid across the shoulders rounds them off and hides the arms' upper tips.
    arm_radius, arm_half_length = body.arm_radius, 0.19 * h
    shoulders_radii = (body.chest_half_width + arm_radius, 0.045 * h, 0.9 * torso_half_depth)
    details: list[Primitive] = [
        Ellipsoid(beside(0.0, body.shoulder - 0.02 * h), shoulders_radii, body_yaw, PERSON, look.torso)
    ]
    # Arms hang beside the chest, or outside hips wider than the chest.
    arm_offset = max(body.chest_half_width, body.hip_half_width + 0.2 * arm_radius) + 0.5 * arm_radius
    for side in (-1.0, 1.0):
        hand = beside(side * arm_offset, body.shoulder - arm_half_length - 0.01 * h)
        arm_radii = (arm_radius, arm_half_length, 1.1 * arm_radius)
        details.append(Ellipsoid(hand, arm_radii, body_yaw, PERSON, look.arms))
    r = body.head_radius
    head_centre = (person.x, body.head_centre_height, person.z)
    if look.long_hair:  # behind and below the head, past the shoulders
        hair_centre = (head_centre[0] - 0.35 * r * gaze_x, head_centre[1] - 0.8 * r, head_centre[2] - 0.35 * r * gaze_z)
        parts.append(Ellipsoid(hair_centre, (1.1 * r, 1.15 * r, 0.75 * r), head_yaw, PERSON, PlainMaterial(look.hair)))
    face = HeadMaterial(
        center=head_centre,
        radius=r,
        forward=(gaze_x, 0.0, gaze_z),
        skin=look.skin,
        hair=look.hair,
        eyes=(0.05, 0.04, 0.04),
        mouth=(0.45, 0.12, 0.12),
        hairline=look.hairline,
    )
    parts.append(Ellipsoid(head_centre, (r, 1.08 * r, r), head_yaw, PERSON, face))
    return parts, details
