"""Procedural indoor scenes, ray cast with numpy: an image and exact labels from one geometry.

The scenario: a camera on an advertising display looks into a room. The model must tell how
many people stand in front of it, whether anyone faces the screen, whether the nearest person is
a child or an adult (by TRUE height, so depth is needed: a near child and a far adult can look
the same size), and the scene layout (segmentation, depth, normals).

World frame: metres, y up. The room spans x in [-width/2, width/2], y in [0, height] (floor at
y = 0) and z in [-depth, 0]; the camera hangs near the wall z = 0 and looks towards -z.
Camera frame: x right, y up, z towards the camera (the camera looks along -z).

Every pixel casts one ray through its centre. The camera-space ray direction is scaled so its
z component is -1, which makes the ray parameter of a hit equal to its z-depth. All primitives
are intersected analytically (room box from the inside, yaw-rotated boxes, ellipsoids and spheres,
vertical capped cylinders); the nearest hit gives class, depth and the geometric normal, so the
labels are exact and mutually consistent. Shading (Lambert, a point light with hard shadows,
ambient, vignetting, sensor noise) uses the same hits.

Scene parameters are drawn from the generator before anything depends on the image size, so the
same generator state gives the same scene at any resolution; only the sensor noise, drawn last,
depends on the size.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("floor", "wall", "ceiling", "furniture", "object", "person")
FLOOR, WALL, CEILING, FURNITURE, OBJECT, PERSON = range(len(CLASS_NAMES))

ATTRIBUTE_GROUPS: dict[str, tuple[str, ...]] = {
    "people": ("0", "1", "2", "3+"),
    "facing": ("no", "yes"),  # is any visible person facing the camera
    "age_group": ("none", "child", "adult"),  # of the nearest person (smallest depth)
}

# Scenes are composed inside the frustum of an image with this height / width; the focal length
# is chosen so that every image size sees at least that frustum (people are never cut).
REFERENCE_ASPECT = 0.75
FRAME_MARGIN = 0.06  # fraction of the reference half-frustum kept free around people
NEAREST_PERSON_DEPTH, FARTHEST_PERSON_DEPTH = 1.5, 6.0
CHILD_PROBABILITY = 0.4
SHADOW_OFFSET = 1e-3  # metres; shadow rays start this far off the surface to miss it
INF = np.float32(np.inf)

Colour = tuple[float, float, float]  # linear RGB in [0, 1]
Vector = tuple[float, float, float]  # world point or direction, metres


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    semseg: np.ndarray  # (H, W) uint8 class ids, indices into CLASS_NAMES
    depth: np.ndarray  # (H, W) float32 z-depth in metres, > 0
    normals: np.ndarray  # (H, W, 3) float32 unit normals in camera space, facing the camera
    attributes: dict[str, str]  # group -> class name, one entry per ATTRIBUTE_GROUPS key


@dataclass(frozen=True)
class CameraPose:
    """A pinhole camera for one image size.

    Pixel (row i, column j) looks along the camera-space direction
    ((j + 0.5 - width / 2) / focal, -(i + 0.5 - height / 2) / focal, -1).
    """

    position: np.ndarray  # (3,) float64, world
    rotation: np.ndarray  # (3, 3) float64 camera-to-world; columns are the camera axes in world
    focal: float  # pixels
    height: int
    width: int

    def camera_directions(self) -> tuple[np.ndarray, np.ndarray]:
        """Camera-space x and y of every pixel's ray (z is -1): shapes (1, W) and (H, 1)."""
        x = (np.arange(self.width, dtype=np.float32) + 0.5 - self.width / 2) / self.focal
        y = (self.height / 2 - 0.5 - np.arange(self.height, dtype=np.float32)) / self.focal
        return x[None, :], y[:, None]

    def world_directions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World-space ray directions of all pixels, each component (H, W) float32."""
        x, y = self.camera_directions()
        r = self.rotation.astype(np.float32)
        return tuple(r[k, 0] * x + r[k, 1] * y - r[k, 2] for k in range(3))  # 3 x (H, W)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (n, 3) -> camera-space points (n, 3)."""
        return (points - self.position) @ self.rotation


def render_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """Draw one random room with people from `rng` and render it at height x width pixels."""
    scene, _ = render_scene_with_pose(rng, height, width)
    return scene


def render_scene_with_pose(rng: np.random.Generator, height: int, width: int) -> tuple[Scene, CameraPose]:
    """Like `render_scene`, also returning the camera the scene was rendered with."""
    layout = _sample_layout(rng)
    pose = layout.rig.pose(height, width)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        hits = _cast_primary_rays(layout, pose)
        surface = _resolve_surfaces(layout, pose, hits)
        radiance = _shade(layout, surface)  # (3, H*W)
    image = _expose(rng, layout, pose, radiance)
    normals_camera = (pose.rotation.T.astype(np.float32) @ surface.normal).T  # (H*W, 3)
    scene = Scene(
        image=image,
        semseg=surface.class_id.reshape(height, width),
        depth=hits.t.astype(np.float32, copy=False),
        normals=np.ascontiguousarray(normals_camera.reshape(height, width, 3)),
        attributes=_attributes(layout.people),
    )
    return scene, pose


# --------------------------------------------------------------------------------------------
# Materials: albedo as a function of the world hit point, each returns (3, n) float32.


class Material(Protocol):
    def albedo(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray: ...


def _column(colour: Colour) -> np.ndarray:
    return np.asarray(colour, dtype=np.float32)[:, None]  # (3, 1)


def _mix(colour_a: Colour, colour_b: Colour, weight: np.ndarray) -> np.ndarray:
    """Per point blend, weight 0 -> colour_a, 1 -> colour_b: (n,) -> (3, n)."""
    a = _column(colour_a)
    return a + (_column(colour_b) - a) * weight.astype(np.float32, copy=False)


def _cell_hash(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """A pseudo-random value in [0, 1) per integer cell (i, j), equal for all points of a cell."""
    h = i.astype(np.int32).view(np.uint32) * np.uint32(0x8DA6B343)
    h ^= j.astype(np.int32).view(np.uint32) * np.uint32(0xD8163841)
    h ^= np.uint32(salt)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(16)
    return (h & np.uint32(0xFFFF)).astype(np.float32) * np.float32(1 / 65536)


def _value_noise(u: np.ndarray, v: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Smooth noise in [0, 1]: bilinear interpolation of a periodic random lattice (n, n)."""
    n = lattice.shape[0]
    fu, fv = np.floor(u), np.floor(v)
    su, sv = u - fu, v - fv
    su, sv = su * su * (3 - 2 * su), sv * sv * (3 - 2 * sv)  # smoothstep hides the lattice
    i0, j0 = fu.astype(np.int64) % n, fv.astype(np.int64) % n
    i1, j1 = (i0 + 1) % n, (j0 + 1) % n
    top = lattice[i0, j0] + (lattice[i1, j0] - lattice[i0, j0]) * su
    bottom = lattice[i0, j1] + (lattice[i1, j1] - lattice[i0, j1]) * su
    return top + (bottom - top) * sv


@dataclass(frozen=True)
class PlainMaterial:
    colour: Colour

    def albedo(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.broadcast_to(_column(self.colour), (3, x.size))


@dataclass(frozen=True)
class StripeMaterial:
    """Parallel bands across `direction` (world unit vector): shirts, wood grain, painted bands."""

    colour_a: Colour
    colour_b: Colour
    direction: Vector
    period: float  # metres
    duty: float  # fraction of a period in colour_a

    def albedo(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        dx, dy, dz = self.direction
        phase = (x * dx + y * dy + z * dz) * (1 / self.period)
        return _mix(self.colour_a, self.colour_b, (phase - np.floor(phase)) >= self.duty)


@dataclass(frozen=True)
class SplitMaterial:
    """One colour below a height, another above: shoes under trousers, hands under sleeves."""

    colour_below: Colour
    colour_above: Colour
    split_height: float

    def albedo(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return _mix(self.colour_below, self.colour_above, y >= self.split_height)


@dataclass(frozen=True)
class FloorMaterial:
    pattern: str  # "checker" | "tiles" | "planks" | "carpet"
    colour_a: Colour
    colour_b: Colour  # checker partner, grout, plank seams, carpet fibres
    scale: float  # metres per tile / plank width / noise cell
    variation: float  # per-tile brightness spread
    salt: int
    lattice: np.ndarray  # (n, n) noise lattice for the carpet

    def albedo(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        u, v = x * (1 / self.scale), z * (1 / self.scale)
        if self.pattern == "carpet":
            return _mix(self.colour_a, self.colour_b, _value_noise(u, v, self.lattice))
        iu, iv = np.floor(u), np.floor(v)
        if self.pattern == "checker":
            return _mix(self.colour_a, self.colour_b, ((iu + iv) % 2).astype(bool))
        if self.pattern == "planks":
            # Planks run along z; each one starts at its own offset so the butt joints stagger.
            plank_length = 5.0
            along = v * (1 / plank_length) + _cell_hash(iu, iu, self.salt)
            iv = np.floor(along)
            seam = (u - iu < 0.06) | (along - iv < 0.015)
        else:  # tiles
            seam = (u - iu < 0.05) | (v - iv < 0.05)
        shade = 1 + self.variation * (_cell_hash(iu, iv, self.salt) - 0.5)  # (n,)
        return _mix(self.colour_a, self.colour_b, seam) * shade


@dataclass(frozen=True)
class WallMaterial:
    pattern: str  # "plain" | "stripes" | "noise" | "panel"
    colour_a: Colour
    colour_b: Colour
    scale: float  # stripe period / noise cell / panel height, metres
    lattice: np.ndarray  # (n, n) noise lattice, also used for faint plaster blotches

    def albedo(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        # x + z runs along every wall: walls at x = const vary in z and walls at z = const in x.
        along = x + z
        if self.pattern == "stripes":
            phase = along * (1 / self.scale)
            base = _mix(self.colour_a, self.colour_b, phase - np.floor(phase) >= 0.5)
        elif self.pattern == "noise":
            noise = _value_noise(along * (1 / self.scale), y * (1 / self.scale), self.lattice)
            base = _mix(self.colour_a, self.colour_b, noise)
        elif self.pattern == "panel":
            base = _mix(self.colour_a, self.colour_b, y < self.scale)
        else:
            base = np.broadcast_to(_column(self.colour_a), (3, x.size))
        plaster = 0.92 + 0.16 * _value_noise(along * 2.5, y * 2.5, self.lattice)  # (n,)
        return base * plaster


@dataclass(frozen=True)
class HeadMaterial:
    """A head sphere: a face (skin, eyes, mouth) on the front, hair on the top and back."""

    center: Vector
    radius: float
    forward: Vector  # unit, horizontal: where the person looks
    skin: Colour
    hair: Colour
    eyes: Colour
    mouth: Colour
    hairline: float  # hair covers the head above this height on the unit sphere

    def albedo(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        inv_r = 1 / self.radius
        qx, qy, qz = (x - self.center[0]) * inv_r, (y - self.center[1]) * inv_r, (z - self.center[2]) * inv_r
        fx, _, fz = self.forward
        front = qx * fx + qz * fz  # (n,) along the gaze
        side = qx * -fz + qz * fx  # (n,) towards the person's right
        eye = (np.minimum(np.abs(side - 0.33), np.abs(side + 0.33)) ** 2 + (qy - 0.12) ** 2) < 0.012
        mouth = (np.abs(side) < 0.28) & (np.abs(qy + 0.4) < 0.06)
        face = front > 0.2
        hair = (qy > self.hairline) | (front < -0.05)
        colour = np.broadcast_to(_column(self.skin), (3, x.size)).copy()
        colour[:, hair] = _column(self.hair)
        colour[:, face & eye] = _column(self.eyes)
        colour[:, face & mouth] = _column(self.mouth)
        return colour


# --------------------------------------------------------------------------------------------
# Geometry. Each primitive intersects rays o + t d (origins scalar or per ray, d not normalised)
# and returns the entry t, or inf where the ray misses or starts inside.


def _rotate_y(x, z, cos: float, sin: float):
    """Rotate (x, z) about the y axis: local-to-world with (cos, sin) of the yaw."""
    return cos * x + sin * z, cos * z - sin * x


@dataclass(frozen=True)
class Box:
    center: Vector
    half_size: Vector
    yaw: float
    class_id: int
    material: Material

    def intersect(self, ox, oy, oz, dx, dy, dz) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        lox, loz = _rotate_y(ox - self.center[0], oz - self.center[2], c, -s)
        ldx, ldz = _rotate_y(dx, dz, c, -s)
        near, far = None, None
        for o, d, half in (
            (lox, ldx, self.half_size[0]),
            (oy - self.center[1], dy, self.half_size[1]),
            (loz, ldz, self.half_size[2]),
        ):
            inv = 1 / d
            t1, t2 = (-half - o) * inv, (half - o) * inv
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            near = lo if near is None else np.maximum(near, lo)
            far = hi if far is None else np.minimum(far, hi)
        return np.where((near <= far) & (near > 0), near, INF)

    def normal(self, x, y, z, dx, dy, dz):
        """Unit normals at surface points hit by rays with directions d, each (n,)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        hx, hy, hz = self.half_size
        lx, lz = _rotate_y(x - self.center[0], z - self.center[2], c, -s)
        ly = y - self.center[1]
        ldx, ldz = _rotate_y(dx, dz, c, -s)
        # Only the three faces turned towards the ray can be hit: per axis the one opposing d.
        # The hit face is the one the point lies on, i.e. where it is relatively farthest out;
        # back faces score about -1 there, so an edge never picks a face the ray cannot see.
        sx, sy, sz = -np.sign(ldx), -np.sign(dy), -np.sign(ldz)
        reach = np.stack([lx * sx * (1 / hx), ly * sy * (1 / hy), lz * sz * (1 / hz)])  # (3, n)
        axis = np.argmax(reach, axis=0)  # (n,)
        nx = np.where(axis == 0, sx, 0).astype(np.float32)
        ny = np.where(axis == 1, sy, 0).astype(np.float32)
        nz = np.where(axis == 2, sz, 0).astype(np.float32)
        nx, nz = _rotate_y(nx, nz, c, s)
        return nx, ny, nz

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c, s = abs(math.cos(self.yaw)), abs(math.sin(self.yaw))
        hx, hy, hz = self.half_size
        extent = np.array([c * hx + s * hz, hy, s * hx + c * hz])
        return np.array(self.center) - extent, np.array(self.center) + extent


@dataclass(frozen=True)
class Ellipsoid:
    """Axis radii in the yaw-rotated frame; equal radii make a sphere."""

    center: Vector
    radii: Vector
    yaw: float
    class_id: int
    material: Material

    def intersect(self, ox, oy, oz, dx, dy, dz) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        rx, ry, rz = self.radii
        lox, loz = _rotate_y(ox - self.center[0], oz - self.center[2], c, -s)
        ldx, ldz = _rotate_y(dx, dz, c, -s)
        # In coordinates scaled by 1 / radii the ellipsoid is the unit sphere.
        lox, loy, loz = lox * (1 / rx), (oy - self.center[1]) * (1 / ry), loz * (1 / rz)
        ldx, ldy, ldz = ldx * (1 / rx), dy * (1 / ry), ldz * (1 / rz)
        a = ldx * ldx + ldy * ldy + ldz * ldz
        b = lox * ldx + loy * ldy + loz * ldz
        disc = b * b - a * (lox * lox + loy * loy + loz * loz - 1)
        t = (-b - np.sqrt(disc)) / a
        return np.where((disc >= 0) & (t > 0), t, INF)

    def normal(self, x, y, z, dx, dy, dz):
        """Normals (not unit) at surface points; the ray directions d are not needed."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        rx, ry, rz = self.radii
        lx, lz = _rotate_y(x - self.center[0], z - self.center[2], c, -s)
        # The gradient of the implicit function (x/rx)^2 + ... is the normal direction.
        nx, nz = _rotate_y(lx * (1 / (rx * rx)), lz * (1 / (rz * rz)), c, s)
        ny = (y - self.center[1]) * (1 / (ry * ry))
        return nx, ny, nz

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        horizontal = max(self.radii[0], self.radii[2])
        extent = np.array([horizontal, self.radii[1], horizontal])
        return np.array(self.center) - extent, np.array(self.center) + extent


@dataclass(frozen=True)
class Cylinder:
    """A vertical cylinder with flat caps, axis through (x, z), from y = bottom to y = top."""

    x: float
    z: float
    bottom: float
    top: float
    radius: float
    class_id: int
    material: Material

    def intersect(self, ox, oy, oz, dx, dy, dz) -> np.ndarray:
        lox, loz = ox - self.x, oz - self.z
        r2 = self.radius * self.radius
        a = dx * dx + dz * dz
        b = lox * dx + loz * dz
        disc = b * b - a * (lox * lox + loz * loz - r2)
        t_side = (-b - np.sqrt(disc)) / a
        y_side = oy + t_side * dy
        side_hit = (disc >= 0) & (t_side > 0) & (y_side >= self.bottom) & (y_side <= self.top)
        best = np.where(side_hit, t_side, INF)
        inv_dy = 1 / dy
        for cap in (self.bottom, self.top):
            t_cap = (cap - oy) * inv_dy
            cx, cz = lox + t_cap * dx, loz + t_cap * dz
            cap_hit = (t_cap > 0) & (cx * cx + cz * cz <= r2)
            best = np.where(cap_hit & (t_cap < best), t_cap, best)
        return best

    def normal(self, x, y, z, dx, dy, dz):
        """Unit normals at surface points hit by rays with directions d, each (n,)."""
        rx, rz = x - self.x, z - self.z
        inv_radial = 1 / np.maximum(np.sqrt(rx * rx + rz * rz), 1e-6)
        side_x, side_z = rx * inv_radial, rz * inv_radial  # (n,) each
        # Near a rim the distances to side and cap are both rounding noise; the ray decides:
        # a downward ray can only hit the top cap, and only a side point facing the ray is hit.
        down = dy < 0
        cap_distance = np.abs(y - np.where(down, self.top, self.bottom))
        side_distance = np.abs(1 / inv_radial - self.radius)
        side_faces_ray = side_x * dx + side_z * dz < 0
        on_cap = ~side_faces_ray | (cap_distance < side_distance)
        nx = np.where(on_cap, 0, side_x).astype(np.float32)
        nz = np.where(on_cap, 0, side_z).astype(np.float32)
        ny = np.where(on_cap, np.where(down, 1, -1), 0).astype(np.float32)
        return nx, ny, nz

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        r = self.radius
        return np.array([self.x - r, self.bottom, self.z - r]), np.array([self.x + r, self.top, self.z + r])


Primitive = Box | Ellipsoid | Cylinder


@dataclass(frozen=True)
class Room:
    width: float
    depth: float
    height: float

    # Per face id of `exit`: floor, ceiling, walls x = -w/2, x = +w/2, z = -depth (far), z = 0
    # (behind the camera). Ids come in pairs per axis: low side (inward normal +axis), high side.
    FACE_CLASSES: ClassVar[tuple[int, ...]] = (FLOOR, CEILING, WALL, WALL, WALL, WALL)
    FACE_NORMALS: ClassVar[tuple[Vector, ...]] = ((0, 1, 0), (0, -1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1), (0, 0, -1))

    def exit(self, ox, oy, oz, dx, dy, dz) -> tuple[np.ndarray, np.ndarray]:
        """Where rays from inside leave the room: (t, face id) with ids indexing FACE_CLASSES."""
        half = self.width / 2
        t_best, face = None, None
        axes = ((ox, dx, -half, half, 2), (oy, dy, 0.0, self.height, 0), (oz, dz, -self.depth, 0.0, 4))
        for o, d, lo, hi, first_face in axes:
            inv = 1 / d  # +-inf for d == +-0 picks the right wall and gives t = inf
            forward = inv > 0
            t = np.where(forward, hi - o, lo - o) * inv
            this_face = np.where(forward, first_face + 1, first_face).astype(np.int8)
            if t_best is None:
                t_best, face = t, this_face
            else:
                closer = t < t_best
                t_best = np.where(closer, t, t_best)
                face = np.where(closer, this_face, face)
        return t_best, face


# --------------------------------------------------------------------------------------------
# Scene description (world units only, no image size).


@dataclass(frozen=True)
class CameraRig:
    position: Vector
    yaw: float  # radians, about y; positive turns left
    pitch: float  # radians, positive looks down
    horizontal_fov: float  # radians

    def rotation(self) -> np.ndarray:
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(-self.pitch), math.sin(-self.pitch)
        yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        return yaw @ pitch  # (3, 3) camera-to-world

    def reference_tangents(self) -> tuple[float, float]:
        """tan of the half-angles of the frustum every image size is guaranteed to see."""
        tan_h = math.tan(self.horizontal_fov / 2)
        return tan_h, REFERENCE_ASPECT * tan_h

    def pose(self, height: int, width: int) -> CameraPose:
        tan_h, tan_v = self.reference_tangents()
        # Wider images than the reference keep the vertical extent, taller ones the horizontal.
        focal = min(width / (2 * tan_h), height / (2 * tan_v))
        return CameraPose(np.array(self.position, dtype=np.float64), self.rotation(), focal, height, width)


@dataclass(frozen=True)
class Person:
    x: float
    z: float
    height: float
    is_child: bool
    facing_camera: bool
    depth: float  # camera z-depth of the body centre


@dataclass(frozen=True)
class OccluderGroup:
    """Primitives that may cast shadows, with a bounding sphere to skip most shadow rays."""

    center: Vector
    radius: float
    members: tuple[int, ...]  # indices into Layout.primitives


@dataclass(frozen=True)
class Layout:
    room: Room
    face_materials: tuple[Material, ...]  # per room face id
    rig: CameraRig
    primitives: tuple[Primitive, ...]
    occluders: tuple[OccluderGroup, ...]
    people: tuple[Person, ...]
    light_position: Vector
    light_colour: Colour  # includes the power
    ambient_colour: Colour
    vignetting: float  # brightness lost in the corners
    noise_sigma: float  # sensor noise, in 8-bit steps
    exposure: float


# --------------------------------------------------------------------------------------------
# Sampling a layout.


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _random_colour(
    rng: np.random.Generator, saturation: tuple[float, float] = (0.0, 0.8), value: tuple[float, float] = (0.2, 0.95)
) -> Colour:
    return colorsys.hsv_to_rgb(rng.random(), _uniform(rng, *saturation), _uniform(rng, *value))


def _shifted(rng: np.random.Generator, colour: Colour, spread: float) -> Colour:
    """A colour near `colour`: the partner of a two-tone texture."""
    factor = _uniform(rng, 1 - spread, 1 + spread)
    return tuple(min(1.0, max(0.0, channel * factor + _uniform(rng, -0.05, 0.05))) for channel in colour)


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


def _sample_layout(rng: np.random.Generator) -> Layout:
    room = Room(width=_uniform(rng, 4.0, 8.0), depth=_uniform(rng, 5.0, 10.0), height=_uniform(rng, 2.5, 3.5))
    rig = CameraRig(
        position=(_uniform(rng, -0.2, 0.2) * room.width / 2, _uniform(rng, 1.4, 2.2), -_uniform(rng, 0.15, 0.4)),
        yaw=math.radians(_uniform(rng, -12.0, 12.0)),
        pitch=math.radians(_uniform(rng, 6.0, 14.0)),
        horizontal_fov=math.radians(_uniform(rng, 60.0, 75.0)),
    )
    pose = rig.pose(1, 1)  # only the rotation and position matter for composing the scene
    frustum = _Frustum(pose, *rig.reference_tangents())

    primitives: list[Primitive] = []
    occluders: list[OccluderGroup] = []
    people, person_cones = _sample_people(rng, room, frustum, int(rng.integers(0, 4)))
    for person in people:
        gaze = _sample_gaze(rng, person, rig.position)
        parts = _person_primitives(person, gaze, _sample_look(rng, _Body(person.height, person.is_child)))
        occluders.append(_group(parts, len(primitives)))
        primitives.extend(parts)

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
    return Layout(
        room=room,
        face_materials=_sample_room_materials(rng),
        rig=rig,
        primitives=tuple(primitives),
        occluders=tuple(occluders),
        people=tuple(people),
        light_position=(
            _uniform(rng, -0.4, 0.4) * room.width,
            room.height - _uniform(rng, 0.05, 0.3),
            -_uniform(rng, 0.5, 0.8) * room.depth,
        ),
        light_colour=tuple(light_power * channel for channel in light_tint),
        ambient_colour=tuple(ambient * channel for channel in light_tint),
        vignetting=_uniform(rng, 0.1, 0.4),
        noise_sigma=_uniform(rng, 1.0, 5.0),
        exposure=_uniform(rng, 0.85, 1.2),
    )


PLACEMENT_CANDIDATES = 64  # positions tried at once per person / piece of furniture / object
_CORNER_SELECTORS = np.array([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], dtype=bool)  # (8, 3)


@dataclass(frozen=True)
class _Frustum:
    """The reference frustum, for keeping people in view and unoccluded."""

    pose: CameraPose
    tan_h: float
    tan_v: float

    def cones(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Axis-aligned world boxes, corners lo and hi (n, 3), as seen from the camera.

        Returns (n, 6) rows of left, right, bottom, top (tangents of the view angles; infinite
        where the box reaches behind the camera) and the nearest and farthest z-depth.
        """
        corners = np.where(_CORNER_SELECTORS, hi[:, None, :], lo[:, None, :])  # (n, 8, 3)
        camera = self.pose.to_camera(corners)  # (n, 8, 3)
        depth = -camera[..., 2]  # (n, 8)
        tan_x, tan_y = camera[..., 0] / depth, camera[..., 1] / depth  # (n, 8) each
        cones = np.stack([tan_x.min(1), tan_x.max(1), tan_y.min(1), tan_y.max(1), depth.min(1), depth.max(1)], axis=1)
        cones[depth.min(1) <= 0.05, :4] = (-np.inf, np.inf, -np.inf, np.inf)
        return cones

    def contains(self, cones: np.ndarray) -> np.ndarray:
        """Which cones (n, 6) lie inside the frustum with the margin: (n,) bool."""
        keep_h, keep_v = self.tan_h * (1 - FRAME_MARGIN), self.tan_v * (1 - FRAME_MARGIN)
        return (-keep_h <= cones[:, 0]) & (cones[:, 1] <= keep_h) & (-keep_v <= cones[:, 2]) & (cones[:, 3] <= keep_v)


def _cones_overlap(cones: np.ndarray, other: np.ndarray, gap: float) -> np.ndarray:
    """Which cones (n, 6) come within `gap` (tangent units) of `other` (6,) in the image: (n,)."""
    return (
        (cones[:, 0] < other[1] + gap)
        & (other[0] < cones[:, 1] + gap)
        & (cones[:, 2] < other[3] + gap)
        & (other[2] < cones[:, 3] + gap)
    )


def _hides(cones: np.ndarray, person_cone: np.ndarray) -> np.ndarray:
    """Which cones (n, 6) could cover part of a person or touch them: (n,) bool.

    Anything entirely farther than the person (plus a gap) can only be covered by them.
    """
    return _cones_overlap(cones, person_cone, gap=0.02) & (cones[:, 4] < person_cone[5] + 0.2)


def _inside_room(room: Room, lo: np.ndarray, hi: np.ndarray, margin: float) -> np.ndarray:
    """Which floor plans of boxes lo, hi (n, 3) keep `margin` from the walls: (n,) bool."""
    half = room.width / 2 - margin
    return (-half <= lo[:, 0]) & (hi[:, 0] <= half) & (-room.depth + margin <= lo[:, 2]) & (hi[:, 2] <= -margin)


@dataclass(frozen=True)
class _Footprint:
    """A bounding circle on the floor plan."""

    x: float
    z: float
    radius: float

    def overlaps(self, x: np.ndarray, z: np.ndarray, radius: np.ndarray | float) -> np.ndarray:
        return np.hypot(x - self.x, z - self.z) < radius + self.radius + 0.05


def _first(valid: np.ndarray) -> int | None:
    """Index of the first valid candidate, None if there is none."""
    hits = np.flatnonzero(valid)
    return int(hits[0]) if hits.size else None


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
        for person in person_cones:
            valid &= ~_hides(cones, person)
        for footprint in footprints:
            valid &= ~footprint.overlaps(x, z, reach)
        chosen = _first(valid)
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
        for person in person_cones:
            valid &= ~_hides(cones, person)
        for footprint in footprints:
            valid &= ~footprint.overlaps(x, z, radius)
        chosen = _first(valid)
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
    lows, highs = zip(*(part.bounds() for part in parts), strict=True)
    lo, hi = np.min(lows, axis=0), np.max(highs, axis=0)
    center = (lo + hi) / 2
    return OccluderGroup(
        tuple(float(c) for c in center),
        float(np.linalg.norm(hi - lo) / 2),
        tuple(range(first_index, first_index + len(parts))),
    )


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


# --------------------------------------------------------------------------------------------
# Rendering.


@dataclass(frozen=True)
class _Hits:
    t: np.ndarray  # (H, W) float32 ray parameter = z-depth of the nearest hit
    room_face: np.ndarray  # (H, W) int8 face id where the room is the nearest hit
    winner: np.ndarray  # (H, W) int16 primitive index, -1 for the room
    directions: tuple[np.ndarray, np.ndarray, np.ndarray]  # world, each (H, W)
    rects: tuple[tuple[slice, slice] | None, ...]  # per primitive: the pixels it may cover


def _screen_rect(primitive: Primitive, pose: CameraPose) -> tuple[slice, slice] | None:
    """Pixels a primitive can cover: the bounding rectangle of its projected world box."""
    lo, hi = primitive.bounds()
    camera = pose.to_camera(np.where(_CORNER_SELECTORS, hi, lo))  # (8, 3) box corners
    depth = -camera[:, 2]
    if depth.max() <= 0:
        return None
    if depth.min() <= 1e-3:  # straddles the camera plane: no finite projection
        return slice(0, pose.height), slice(0, pose.width)
    u = pose.focal * camera[:, 0] / depth + pose.width / 2  # (8,) continuous pixel coordinates
    v = pose.height / 2 - pose.focal * camera[:, 1] / depth
    cols = slice(max(0, math.floor(u.min()) - 1), min(pose.width, math.ceil(u.max()) + 1))
    rows = slice(max(0, math.floor(v.min()) - 1), min(pose.height, math.ceil(v.max()) + 1))
    if cols.start >= cols.stop or rows.start >= rows.stop:
        return None
    return rows, cols


def _cast_primary_rays(layout: Layout, pose: CameraPose) -> _Hits:
    dx, dy, dz = pose.world_directions()  # each (H, W)
    ox, oy, oz = (float(c) for c in pose.position)
    t, room_face = layout.room.exit(ox, oy, oz, dx, dy, dz)  # (H, W) each
    winner = np.full(t.shape, -1, dtype=np.int16)
    rects = []
    for index, primitive in enumerate(layout.primitives):
        rect = _screen_rect(primitive, pose)
        rects.append(rect)
        if rect is None:
            continue
        t_new = primitive.intersect(ox, oy, oz, dx[rect], dy[rect], dz[rect])
        t_view, winner_view = t[rect], winner[rect]  # views into the full buffers
        closer = t_new < t_view
        np.putmask(t_view, closer, t_new)
        np.putmask(winner_view, closer, index)
    return _Hits(t, room_face, winner, (dx, dy, dz), tuple(rects))


@dataclass(frozen=True)
class _Surface:
    points: tuple[np.ndarray, np.ndarray, np.ndarray]  # world hit points, each (N,), N = H * W
    normal: np.ndarray  # (3, N) float32 world unit normals
    albedo: np.ndarray  # (3, N) float32
    class_id: np.ndarray  # (N,) uint8


def _scatter(target: np.ndarray, idx: np.ndarray, values: np.ndarray) -> None:
    """target[:, idx] = values for (3, N) and (3, n) arrays; row by row, which numpy does ~5x faster."""
    for row in range(3):
        target[row, idx] = values[row]


def _resolve_surfaces(layout: Layout, pose: CameraPose, hits: _Hits) -> _Surface:
    """Normal, albedo and class of every pixel's nearest hit."""
    ox, oy, oz = (float(c) for c in pose.position)
    t = hits.t.ravel()
    dx, dy, dz = (d.ravel() for d in hits.directions)
    px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz  # (N,) each
    # Start from the room everywhere (its faces are planes: normal and class by face id), then
    # overwrite the pixels where a primitive is nearer.
    face = hits.room_face.ravel()
    normal = np.take(np.asarray(Room.FACE_NORMALS, dtype=np.float32).T, face, axis=1)  # (3, N)
    class_id = np.asarray(Room.FACE_CLASSES, dtype=np.uint8)[face]  # (N,)
    albedo = np.empty((3, t.size), dtype=np.float32)
    room_pixels = np.flatnonzero(hits.winner.ravel() < 0)
    # Faces sharing a material (the walls, mostly) are textured in one call.
    materials = list({id(m): m for m in layout.face_materials}.values())
    material_ids = [id(m) for m in materials]
    material_of_face = np.array([material_ids.index(id(m)) for m in layout.face_materials], dtype=np.int8)
    room_material = material_of_face[face[room_pixels]]  # (n_room,)
    for number, material in enumerate(materials):
        idx = room_pixels[room_material == number]
        if idx.size:
            _scatter(albedo, idx, material.albedo(px[idx], py[idx], pz[idx]))

    width = pose.width
    for index, (primitive, rect) in enumerate(zip(layout.primitives, hits.rects, strict=True)):
        if rect is None:
            continue
        rows, cols = np.nonzero(hits.winner[rect] == index)
        if rows.size == 0:
            continue
        idx = (rows + rect[0].start) * width + cols + rect[1].start  # flat pixel indices
        x, y, z = px[idx], py[idx], pz[idx]
        nx, ny, nz = primitive.normal(x, y, z, dx[idx], dy[idx], dz[idx])
        # Unit length, and facing the ray: a hit seen from outside does, up to rounding where
        # the ray grazes a silhouette.
        facing = nx * dx[idx] + ny * dy[idx] + nz * dz[idx]
        scale = np.where(facing > 0, -1, 1) / np.sqrt(nx * nx + ny * ny + nz * nz)
        normal[0, idx], normal[1, idx], normal[2, idx] = nx * scale, ny * scale, nz * scale
        _scatter(albedo, idx, primitive.material.albedo(x, y, z))
        class_id[idx] = primitive.class_id

    return _Surface((px, py, pz), normal, albedo, class_id)


def _shade(layout: Layout, surface: _Surface) -> np.ndarray:
    """Linear radiance (3, N): Lambert from a point light with hard shadows, plus ambient."""
    px, py, pz = surface.points
    nx, ny, nz = surface.normal
    lx, ly, lz = layout.light_position
    to_light = (lx - px, ly - py, lz - pz)  # 3 x (N,)
    distance = np.sqrt(to_light[0] ** 2 + to_light[1] ** 2 + to_light[2] ** 2)  # (N,)
    cosine = (nx * to_light[0] + ny * to_light[1] + nz * to_light[2]) / distance
    lit = np.flatnonzero(cosine > 0)
    visible = _light_visibility(layout, surface, lit)
    # Inverse-square falloff, softened so the room does not drop to black far from the light.
    irradiance = np.zeros_like(cosine)
    irradiance[lit] = cosine[lit] * visible / (1 + 0.08 * distance[lit] ** 2) * 2.0
    # Ambient is a little stronger on surfaces facing up, towards the lit ceiling.
    ambient = 0.85 + 0.15 * ny  # (N,)
    light = _column(layout.light_colour) * irradiance + _column(layout.ambient_colour) * ambient  # (3, N)
    return surface.albedo * light


def _light_visibility(layout: Layout, surface: _Surface, lit: np.ndarray) -> np.ndarray:
    """1 where the segment from a lit point to the light is free, else 0: (len(lit),) float32."""
    lx, ly, lz = layout.light_position
    ox, oy, oz = (p[lit] + SHADOW_OFFSET * n[lit] for p, n in zip(surface.points, surface.normal, strict=True))
    dx, dy, dz = lx - ox, ly - oy, lz - oz  # point -> light, t = 1 at the light
    length = np.sqrt(dx * dx + dy * dy + dz * dz)  # (n_lit,)
    shadowed = np.zeros(lit.size, dtype=bool)
    for group in layout.occluders:
        ex, ey, ez = group.center[0] - lx, group.center[1] - ly, group.center[2] - lz
        centre_distance = math.sqrt(ex * ex + ey * ey + ez * ez)
        if centre_distance > group.radius:
            # Only points inside the cone the bounding sphere casts from the light can be hidden.
            along = -(dx * ex + dy * ey + dz * ez)  # light->point . light->centre
            in_cone = along > length * math.sqrt(centre_distance**2 - group.radius**2)
            candidates = np.flatnonzero(in_cone & (length > centre_distance - group.radius) & ~shadowed)
        else:
            candidates = np.flatnonzero(~shadowed)
        if candidates.size == 0:
            continue
        sub = [a[candidates] for a in (ox, oy, oz, dx, dy, dz)]
        for member in group.members:
            t = layout.primitives[member].intersect(*sub)
            shadowed[candidates[t < 1]] = True
    return (~shadowed).astype(np.float32)


def _expose(rng: np.random.Generator, layout: Layout, pose: CameraPose, radiance: np.ndarray) -> np.ndarray:
    """Radiance (3, N) -> 8-bit image (H, W, 3) with vignetting, a display gamma and noise."""
    height, width = pose.height, pose.width
    x, y = pose.camera_directions()  # (1, W), (H, 1)
    corner = (width / 2 / pose.focal) ** 2 + (height / 2 / pose.focal) ** 2
    falloff = 1 - layout.vignetting * (x * x + y * y) / corner  # (H, W)
    # Gamma 2 (a square root) keeps dark rooms readable; the 255 ** 2 moves it into 8-bit steps.
    rgb = radiance.reshape(3, height, width)  # (3, H, W), worked on in place
    rgb *= falloff * np.float32(layout.exposure * 255**2)
    np.sqrt(np.maximum(rgb, 0, out=rgb), out=rgb)
    noise = rng.standard_normal(rgb.shape, dtype=np.float32)  # (3, H, W)
    noise *= np.float32(layout.noise_sigma)
    rgb += noise
    rgb += 0.5  # round to nearest in the cast below
    np.clip(rgb, 0, 255, out=rgb)
    return np.ascontiguousarray(rgb.astype(np.uint8).transpose(1, 2, 0))  # (H, W, 3)


def _attributes(people: Sequence[Person]) -> dict[str, str]:
    nearest = min(people, key=lambda person: person.depth) if people else None
    return {
        "people": ATTRIBUTE_GROUPS["people"][min(len(people), 3)],
        "facing": "yes" if any(person.facing_camera for person in people) else "no",
        "age_group": "none" if nearest is None else ("child" if nearest.is_child else "adult"),
    }
