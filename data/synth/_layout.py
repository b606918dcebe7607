"""A whole scene in world units: sampling the room, its materials, the camera, people, furniture,
objects and lighting, before anything depends on the image size."""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from onepass.data.synth._camera import CameraRig
from onepass.data.synth._geometry import Box, Cylinder, Ellipsoid, Primitive, Room, _rotate_y
from onepass.data.synth._materials import FloorMaterial, Material, PlainMaterial, StripeMaterial, WallMaterial
from onepass.data.synth._people import (
    PEOPLE_COUNT_PROBABILITIES,
    Person,
    _person_primitives,
    _sample_gaze_pitches,
    _sample_look,
    _sample_people,
)
from onepass.data.synth._sampling import (
    PLACEMENT_CANDIDATES,
    _first_clear,
    _Footprint,
    _Frustum,
    _inside_room,
    _random_colour,
    _shifted,
    _uniform,
)
from onepass.data.synth._scene import FURNITURE, OBJECT, Colour, Vector

# --------------------------------------------------------------------------------------------
# Scene description (world units only, no image size).


@dataclass(frozen=True)
class OccluderGroup:
    """Primitives that cast shadows, with bounding spheres (of the group and of each member) to
    skip most shadow rays."""

    center: Vector
    radius: float
    members: tuple[int, ...]  # indices into Layout.primitives
    member_centres: tuple[Vector, ...]
    member_radii: tuple[float, ...]


@dataclass(frozen=True)
class Layout:
    room: Room
    face_materials: tuple[Material, ...]  # per room face id
    rig: CameraRig
    primitives: tuple[Primitive, ...]
    occluders: tuple[OccluderGroup, ...]
    people: tuple[Person, ...]
    person_primitives: tuple[range, ...]  # per person: its indices into `primitives`
    gaze_pitches: tuple[float, ...]  # per person: degrees the gaze looks up (> 0) or down (< 0)
    light_position: Vector
    light_colour: Colour  # includes the power
    ambient_colour: Colour
    vignetting: float  # brightness lost in the corners
    noise_sigma: float  # sensor noise, in 8-bit steps
    exposure: float

    @functools.cached_property
    def primitive_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Corners lo and hi (n, 3) of each primitive's world bounding box (the primary rays' screen
        rectangles and the gaze rays' bounding spheres both start from them)."""
        if not self.primitives:
            return np.zeros((0, 3)), np.zeros((0, 3))
        lo, hi = zip(*(primitive.bounds() for primitive in self.primitives), strict=True)
        return np.array(lo), np.array(hi)


# --------------------------------------------------------------------------------------------
# Sampling a layout.


def _sample_room_and_rig(
    rng: np.random.Generator, width: tuple[float, float], depth: tuple[float, float], yaw_degrees: float
) -> tuple[Room, CameraRig]:
    """A room of `width` x `depth` metres (ranges) and a camera on its front wall, turned at most
    `yaw_degrees` either way, tilted down and with a 60-75 degree field of view."""
    room = Room(width=_uniform(rng, *width), depth=_uniform(rng, *depth), height=_uniform(rng, 2.5, 3.5))
    rig = CameraRig(
        position=(_uniform(rng, -0.2, 0.2) * room.width / 2, _uniform(rng, 1.4, 2.2), -_uniform(rng, 0.15, 0.4)),
        yaw=math.radians(_uniform(rng, -yaw_degrees, yaw_degrees)),
        pitch=math.radians(_uniform(rng, 6.0, 14.0)),
        horizontal_fov=math.radians(_uniform(rng, 60.0, 75.0)),
    )
    return room, rig


def _sample_layout(rng: np.random.Generator) -> Layout:
    room, rig = _sample_room_and_rig(rng, width=(4.0, 8.0), depth=(5.0, 10.0), yaw_degrees=12.0)
    pose = rig.pose(1, 1)  # only the rotation and position matter for composing the scene
    frustum = _Frustum(pose, *rig.reference_tangents())

    primitives: list[Primitive] = []
    occluders: list[OccluderGroup] = []
    person_primitives: list[range] = []
    count = int(rng.choice(len(PEOPLE_COUNT_PROBABILITIES), p=PEOPLE_COUNT_PROBABILITIES))
    people, person_cones = _sample_people(rng, room, frustum, count)
    for person in people:
        body, details = _person_primitives(person, _sample_look(rng, person), rig.position)
        occluders.append(_group(body, len(primitives)))  # the details cast no shadow
        person_primitives.append(range(len(primitives), len(primitives) + len(body) + len(details)))
        primitives.extend(body + details)

    furniture = _sample_furniture(rng, room, frustum, person_cones, int(rng.integers(0, 5)))
    for box in furniture:
        occluders.append(_group([box], len(primitives)))
        primitives.append(box)
    for shape in _sample_objects(rng, room, frustum, person_cones, furniture, int(rng.integers(0, 4))):
        occluders.append(_group([shape], len(primitives)))
        primitives.append(shape)

    light_power = _uniform(rng, 0.9, 1.6)
    light_tint = colorsys.hsv_to_rgb(_uniform(rng, 0.05, 0.6), _uniform(rng, 0.0, 0.25), 1.0)
    ambient = _uniform(rng, 0.2, 0.45)
    face_materials = _sample_room_materials(rng)
    light_position = (
        _uniform(rng, -0.4, 0.4) * room.width,
        room.height - _uniform(rng, 0.05, 0.3),
        -_uniform(rng, 0.5, 0.8) * room.depth,
    )
    vignetting = _uniform(rng, 0.1, 0.4)
    noise_sigma = _uniform(rng, 1.0, 5.0)
    exposure = _uniform(rng, 0.85, 1.2)
    # Drawn after everything else, so that adding them (with the saliency label) left every
    # earlier scene's geometry and labels as they were; only the sensor noise, drawn later, changed.
    gaze_pitches = _sample_gaze_pitches(rng, len(people))
    return Layout(
        room=room,
        face_materials=face_materials,
        rig=rig,
        primitives=tuple(primitives),
        occluders=tuple(occluders),
        people=tuple(people),
        person_primitives=tuple(person_primitives),
        gaze_pitches=gaze_pitches,
        light_position=light_position,
        light_colour=tuple(light_power * channel for channel in light_tint),
        ambient_colour=tuple(ambient * channel for channel in light_tint),
        vignetting=vignetting,
        noise_sigma=noise_sigma,
        exposure=exposure,
    )


def _sample_furniture(
    rng: np.random.Generator, room: Room, frustum: _Frustum, person_cones: Sequence[np.ndarray], count: int
) -> list[Box]:
    """Up to `count` boxes on the floor, never in front of a person nor inside each other."""
    boxes: list[Box] = []
    footprints: list[_Footprint] = []
    for _ in range(count):
        half_size = (_uniform(rng, 0.25, 1.0), _uniform(rng, 0.2, 1.0), _uniform(rng, 0.2, 0.5))
        yaw = float(rng.integers(4)) * math.pi / 2 if rng.random() < 0.6 else _uniform(rng, 0, math.pi)
        colour = _random_colour(rng)
        if rng.random() < 0.5:  # wood grain or painted bands
            c, s = math.cos(yaw), math.sin(yaw)
            material: Material = StripeMaterial(
                colour, _shifted(rng, colour, 0.2), (c, 0.0, -s), _uniform(rng, 0.02, 0.3), _uniform(rng, 0.3, 0.7)
            )
        else:
            material = PlainMaterial(colour)
        x = rng.uniform(-0.5, 0.5, PLACEMENT_CANDIDATES) * room.width  # (n,)
        z = -rng.uniform(0.15, 0.95, PLACEMENT_CANDIDATES) * room.depth  # (n,)
        extent = Box((0.0, 0.0, 0.0), half_size, yaw, FURNITURE, material).bounds()[1]  # (3,) half extents
        centre = np.stack([x, np.full_like(x, half_size[1]), z], axis=1)  # (n, 3)
        lo, hi = centre - extent, centre + extent  # (n, 3) each
        cones = frustum.cones(lo, hi)
        reach = math.hypot(extent[0], extent[2])
        valid = _inside_room(room, lo, hi, margin=0.02) & (cones[:, 4] > 1.0)
        chosen = _first_clear(valid, cones, person_cones, footprints, x, z, reach)
        if chosen is None:
            continue
        boxes.append(Box((float(x[chosen]), half_size[1], float(z[chosen])), half_size, yaw, FURNITURE, material))
        footprints.append(_Footprint(float(x[chosen]), float(z[chosen]), reach))
    return boxes


def _sample_objects(
    rng: np.random.Generator,
    room: Room,
    frustum: _Frustum,
    person_cones: Sequence[np.ndarray],
    furniture: Sequence[Box],
    count: int,
) -> list[Primitive]:
    """Up to `count` spheres and vertical cylinders standing on the floor or on furniture."""
    # One row per support, row 0 the floor: centre x, z, top height, half sizes, yaw cos and sin.
    supports = np.array(
        [(0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0)]
        + [
            (
                b.center[0],
                b.center[2],
                2 * b.half_size[1],
                b.half_size[0],
                b.half_size[2],
                math.cos(b.yaw),
                math.sin(b.yaw),
            )
            for b in furniture
        ]
    )  # (1 + boxes, 7)
    furniture_footprints = [_Footprint(*_footprint_of(box)) for box in furniture]
    shapes: list[Primitive] = []
    footprints: list[_Footprint] = []
    for _ in range(count):
        is_sphere = bool(rng.random() < 0.5)
        radius = _uniform(rng, 0.08, 0.3)
        tall = 2 * radius if is_sphere else _uniform(rng, 0.15, 1.0)
        colour = _random_colour(rng)
        if rng.random() < 0.4:
            material: Material = StripeMaterial(
                colour, _random_colour(rng), (0.0, 1.0, 0.0), _uniform(rng, 0.04, 0.3), _uniform(rng, 0.3, 0.8)
            )
        else:
            material = PlainMaterial(colour)
        support = supports[rng.integers(0, len(supports), PLACEMENT_CANDIDATES)]  # (n, 7)
        on_floor = support[:, 2] == 0  # (n,)
        floor_x = rng.uniform(-0.5, 0.5, PLACEMENT_CANDIDATES) * room.width
        floor_z = -rng.uniform(0.15, 0.95, PLACEMENT_CANDIDATES) * room.depth
        # On furniture: anywhere on the top that keeps the whole base on it.
        local_x = rng.uniform(-1, 1, PLACEMENT_CANDIDATES) * (support[:, 3] - radius)
        local_z = rng.uniform(-1, 1, PLACEMENT_CANDIDATES) * (support[:, 4] - radius)
        top_x, top_z = _rotate_y(local_x, local_z, support[:, 5], support[:, 6])
        x = np.where(on_floor, floor_x, support[:, 0] + top_x)  # (n,)
        z = np.where(on_floor, floor_z, support[:, 1] + top_z)  # (n,)
        base = support[:, 2]  # (n,)
        lo = np.stack([x - radius, base, z - radius], axis=1)  # (n, 3)
        hi = np.stack([x + radius, base + tall, z + radius], axis=1)  # (n, 3)
        cones = frustum.cones(lo, hi)
        valid = (
            (on_floor | (np.minimum(support[:, 3], support[:, 4]) >= radius))
            & _inside_room(room, lo, hi, margin=0.02)
            & (hi[:, 1] < room.height - 0.05)
            & (cones[:, 4] > 0.8)
        )
        for footprint in furniture_footprints:
            valid &= ~on_floor | ~footprint.overlaps(x, z, radius)
        chosen = _first_clear(valid, cones, person_cones, footprints, x, z, radius)
        if chosen is None:
            continue
        cx, cz, cbase = float(x[chosen]), float(z[chosen]), float(base[chosen])
        if is_sphere:
            shape: Primitive = Ellipsoid((cx, cbase + radius, cz), (radius, radius, radius), 0.0, OBJECT, material)
        else:
            shape = Cylinder(cx, cz, cbase, cbase + tall, radius, OBJECT, material)
        shapes.append(shape)
        footprints.append(_Footprint(cx, cz, radius))
    return shapes


def _footprint_of(primitive: Primitive) -> tuple[float, float, float]:
    """A bounding circle of a primitive's floor plan: (x, z, radius)."""
    lo, hi = primitive.bounds()
    return float(lo[0] + hi[0]) / 2, float(lo[2] + hi[2]) / 2, float(math.hypot(hi[0] - lo[0], hi[2] - lo[2])) / 2


def _group(parts: Sequence[Primitive], first_index: int) -> OccluderGroup:
    bounds = [tuple(side.tolist() for side in part.bounds()) for part in parts]  # plain floats: cheaper here
    spheres = [_bounding_sphere(lo, hi) for lo, hi in bounds]
    if len(parts) == 1:
        centre, radius = spheres[0]
    else:
        lo = [min(values) for values in zip(*(b[0] for b in bounds), strict=True)]
        hi = [max(values) for values in zip(*(b[1] for b in bounds), strict=True)]
        centre, radius = _bounding_sphere(lo, hi)
    return OccluderGroup(
        centre,
        radius,
        tuple(range(first_index, first_index + len(parts))),
        tuple(sphere[0] for sphere in spheres),
        tuple(sphere[1] for sphere in spheres),
    )


def _bounding_sphere(lo: Sequence[float], hi: Sequence[float]) -> tuple[Vector, float]:
    """The sphere through the corners of the box lo, hi: (centre, radius)."""
    return (tuple((a + b) / 2 for a, b in zip(lo, hi, strict=True)), math.dist(lo, hi) / 2)


def _sample_room_materials(rng: np.random.Generator) -> tuple[Material, ...]:
    floor_colour = _random_colour(rng, value=(0.15, 0.9))
    floor = FloorMaterial(
        pattern=("checker", "tiles", "planks", "carpet")[int(rng.integers(4))],
        colour_a=floor_colour,
        colour_b=_random_colour(rng, value=(0.1, 0.9)) if rng.random() < 0.5 else _shifted(rng, floor_colour, 0.4),
        scale=_uniform(rng, 0.15, 0.8),
        variation=_uniform(rng, 0.0, 0.4),
        salt=int(rng.integers(1 << 31)),
        lattice=rng.random((16, 16), dtype=np.float32),
    )
    walls = [_sample_wall_material(rng)]
    walls.append(_sample_wall_material(rng) if rng.random() < 0.3 else walls[0])  # accent far wall
    ceiling = PlainMaterial(_random_colour(rng, saturation=(0.0, 0.3), value=(0.5, 1.0)))
    # Face ids: floor, ceiling, x-, x+, far wall (z = -depth), near wall (z = 0).
    return floor, ceiling, walls[0], walls[0], walls[1], walls[0]


def _sample_wall_material(rng: np.random.Generator) -> WallMaterial:
    colour = _random_colour(rng, value=(0.25, 1.0))
    pattern = ("plain", "stripes", "noise", "panel")[int(rng.integers(4))]
    partner = _random_colour(rng) if rng.random() < 0.5 else _shifted(rng, colour, 0.3)
    scale = _uniform(rng, 0.6, 1.2) if pattern == "panel" else _uniform(rng, 0.1, 1.0)
    return WallMaterial(pattern, colour, partner, scale, rng.random((16, 16), dtype=np.float32))
