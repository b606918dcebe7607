"""Procedural indoor scenes by numpy ray casting, with exact ground truth for every task.

A camera on an advertising display looks into a room with furniture-like boxes, spheres,
cylinders and 0-3 people. Every label comes from the same geometry, so the tasks are related as
in NYUv2: class ids, metric z-depth, camera-space normals and the image-level attributes
`people`, `facing` and `age_group` (child or adult by TRUE height: a near child and a far adult
can look the same size, so depth is needed to tell them apart).

Conventions: world x right, y up, z toward the viewer; the camera looks along -z (OpenGL). Rays use
unnormalised directions whose camera-space z is -1, so the ray parameter t IS the z-depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("floor", "wall", "ceiling", "furniture", "object", "person")
FLOOR, WALL, CEILING, FURNITURE, OBJECT, PERSON = range(6)
ATTRIBUTE_GROUPS: dict[str, tuple[str, ...]] = {
    "people": ("0", "1", "2", "3+"),
    "facing": ("no", "yes"),  # is any person facing the camera
    "age_group": ("none", "child", "adult"),  # of the nearest person; none without people
}
INF = np.float32(1e9)


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    semseg: np.ndarray  # (H, W) uint8 class ids
    depth: np.ndarray  # (H, W) float32 metric z-depth, metres
    normals: np.ndarray  # (H, W, 3) float32 unit normals, camera space (x right, y up, z to camera)
    attributes: dict[str, str]


@dataclass(frozen=True)
class Person:
    x: float
    z: float
    height: float
    child: bool
    facing: bool
    yaw: float  # direction the person faces, radians, in the xz plane
    skin: np.ndarray
    hair: np.ndarray
    clothes: np.ndarray
    trousers: np.ndarray


@dataclass(frozen=True)
class Camera:
    height: float
    pitch: float  # radians, negative = looking down
    yaw: float
    focal: float  # pixels
    size: tuple[int, int]

    @property
    def rotation(self) -> np.ndarray:
        """Camera-to-world rotation (3, 3): yaw about y, then pitch about x."""
        cp, sp, cy, sy = math.cos(self.pitch), math.sin(self.pitch), math.cos(self.yaw), math.sin(self.yaw)
        pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        return (yaw @ pitch).astype(np.float32)

    @property
    def origin(self) -> np.ndarray:
        return np.array([0.0, self.height, 0.0], np.float32)

    def window(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice] | None:
        """The pixel rectangle that a world box covers (None when it is out of view)."""
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], np.float32
        )
        local = (corners - self.origin) @ self.rotation  # (8, 3) camera space
        height, width = self.size
        if (-local[:, 2] < 0.05).any():  # a corner behind the camera: take the whole frame
            return slice(0, height), slice(0, width)
        rows = height / 2 - self.focal * local[:, 1] / -local[:, 2]
        cols = width / 2 + self.focal * local[:, 0] / -local[:, 2]
        r0, r1 = max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, height)
        c0, c1 = max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, width)
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def project(self, point: np.ndarray) -> tuple[float, float, float]:
        """World point -> (row, column, depth)."""
        local = self.rotation.T @ (point - self.origin)
        depth = -local[2]
        height, width = self.size
        return height / 2 - self.focal * local[1] / depth, width / 2 + self.focal * local[0] / depth, depth


class Hits:
    """The nearest hit so far for every pixel: depth, world normal, class and primitive id.

    Primitives are cast only against the pixels inside their projected bounding box (`window`):
    people and furniture cover a small part of the frame, so this is most of the renderer's speed.
    """

    def __init__(self, rays: np.ndarray, origin: np.ndarray, t: np.ndarray, normal: np.ndarray, cls: np.ndarray):
        self.rays = rays  # (H, W, 3)
        self.origin = origin
        self.t, self.normal, self.cls = t, normal, cls  # (H, W), (H, W, 3), (H, W)
        self.prim = np.zeros(t.shape, np.int16)

    def update(self, window: tuple[slice, slice], t: np.ndarray, normal: np.ndarray, cls: int, prim: int) -> None:
        current = self.t[window]  # views: writing into them writes into the full arrays
        shape = current.shape
        t = t.reshape(shape)
        closer = (t > 1e-4) & (t < current)
        current[closer] = t[closer]
        self.normal[window][closer] = normal.reshape(*shape, 3)[closer]
        self.cls[window][closer] = cls
        self.prim[window][closer] = prim


def _rng_colour(rng: np.random.Generator, low: float = 0.15, high: float = 0.95) -> np.ndarray:
    return rng.uniform(low, high, 3).astype(np.float32)


def _cast_box(o, d, lo, hi):
    """Slab test: (t, normal) of rays d from o against an axis-aligned box."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d  # (N, 3)
        t1 = (lo - o) * inv
        t2 = (hi - o) * inv
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = np.argmax(tmin, axis=1)  # the slab the ray enters last is the face it hits
    near = tmin[np.arange(len(d)), axis]
    far = tmax.min(axis=1)
    t = np.where((near <= far) & (near > 0), near, INF)
    normal = np.zeros_like(d)
    normal[np.arange(len(d)), axis] = -np.sign(d[np.arange(len(d)), axis])
    return t, normal


def _cast_sphere(o, d, centre, radius, dd):
    oc = o - centre
    b = d @ oc  # (N,)
    c = float(oc @ oc) - radius * radius
    disc = b * b - dd * c
    hit = disc > 0
    t = np.where(hit, (-b - np.sqrt(np.maximum(disc, 0))) / dd, INF)
    normal = (o + t[:, None] * d - centre) / radius
    return t, normal


def _cast_cylinder(o, d, cx, cz, radius, y0, y1):
    """Vertical capped cylinder: side and top cap."""
    ox, oz = o[0] - cx, o[2] - cz
    dx, dz = d[:, 0], d[:, 2]
    a = dx * dx + dz * dz + 1e-12
    b = dx * ox + dz * oz
    c = ox * ox + oz * oz - radius * radius
    disc = b * b - a * c
    t_side = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, INF)
    y = o[1] + t_side * d[:, 1]
    t_side = np.where((y >= y0) & (y <= y1), t_side, INF)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_cap = (y1 - o[1]) / d[:, 1]
    px, pz = ox + t_cap * dx, oz + t_cap * dz
    t_cap = np.where((t_cap > 0) & (px * px + pz * pz <= radius * radius), t_cap, INF)
    use_cap = t_cap < t_side
    t = np.minimum(t_side, t_cap)
    normal = np.zeros_like(d)
    normal[:, 0] = (ox + t * dx) / radius
    normal[:, 2] = (oz + t * dz) / radius
    normal[use_cap] = (0.0, 1.0, 0.0)
    return t, normal


def _sample_camera(rng: np.random.Generator, height: int, width: int) -> Camera:
    hfov = math.radians(rng.uniform(60, 75))
    return Camera(
        height=float(rng.uniform(1.4, 2.2)),
        pitch=-math.radians(rng.uniform(4, 16)),
        yaw=math.radians(rng.uniform(-8, 8)),
        focal=width / 2 / math.tan(hfov / 2),
        size=(height, width),
    )


def _sample_people(rng: np.random.Generator, camera: Camera, room_half_width: float, room_depth: float) -> list[Person]:
    """0-3 people, each fully inside the image and laterally apart from the others."""
    count = int(rng.integers(0, 4))
    people: list[Person] = []
    height_px, width_px = camera.size
    for _ in range(count):
        for _attempt in range(30):
            child = bool(rng.random() < 0.4)
            height = float(rng.uniform(0.9, 1.35) if child else rng.uniform(1.55, 1.95))
            distance = float(rng.uniform(1.5, min(6.0, room_depth - 0.8)))
            bearing = float(rng.uniform(-0.4, 0.4))
            x = distance * math.sin(bearing + camera.yaw)
            z = -distance * math.cos(bearing + camera.yaw)
            if abs(x) > room_half_width - 0.5:
                continue
            top = camera.project(np.array([x, height, z], np.float32))
            feet = camera.project(np.array([x, 0.0, z], np.float32))
            left = camera.project(np.array([x - 0.3, height / 2, z], np.float32))
            right = camera.project(np.array([x + 0.3, height / 2, z], np.float32))
            margin = 2
            if not (
                top[0] > margin and feet[0] < height_px - margin and left[1] > margin and right[1] < width_px - margin
            ):
                continue
            # laterally apart from the people already placed, in the image, so nobody hides anybody
            if any(abs(math.atan2(x, -z) - math.atan2(p.x, -p.z)) < 0.16 for p in people):
                continue
            facing = bool(rng.random() < 0.5)
            to_camera = math.atan2(-x, z)  # the yaw whose forward (sin, 0, -cos) points at the camera
            turn = rng.uniform(-0.5, 0.5) if facing else math.pi + rng.uniform(-0.6, 0.6)
            skin = np.array([0.95, 0.75, 0.6], np.float32) * rng.uniform(0.45, 1.05)
            people.append(
                Person(
                    x,
                    z,
                    height,
                    child,
                    facing,
                    to_camera + turn,
                    skin.astype(np.float32),
                    _rng_colour(rng, 0.02, 0.45),
                    _rng_colour(rng),
                    _rng_colour(rng, 0.05, 0.6),
                )  # fmt: skip
            )
            break
    return people


def render_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """Render one scene; the same rng state and size give bit-identical arrays."""
    camera = _sample_camera(rng, height, width)
    room_w, room_h = float(rng.uniform(4, 8)), float(rng.uniform(2.5, 3.5))
    back, front = -float(rng.uniform(5, 10)), 0.6
    half = room_w / 2
    people = _sample_people(rng, camera, half, -back)

    # rays: (H, W, 3) world directions with camera-space z = -1, so t is z-depth
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    local = np.stack(
        [(cols + 0.5 - width / 2) / camera.focal, -(rows + 0.5 - height / 2) / camera.focal, -np.ones_like(rows)], -1
    )
    rotation = camera.rotation
    rays = local @ rotation.T  # (H, W, 3)
    o = camera.origin
    hits = Hits(rays, o, *_cast_room(o, rays.reshape(-1, 3), half, room_h, back, front, (height, width)))

    colours: list[np.ndarray] = [np.zeros(3, np.float32)]  # per primitive base colour; 0 = room (textured)
    head_of: dict[int, int] = {}

    def add(lo: np.ndarray, hi: np.ndarray, cast, cls: int, colour: np.ndarray) -> int:
        """Cast one primitive (inside world box lo..hi) against the pixels it can cover."""
        colours.append(colour)
        window = camera.window(lo, hi)
        if window is not None:
            d = rays[window].reshape(-1, 3)
            hits.update(window, *cast(d), cls, len(colours) - 1)
        return len(colours) - 1

    def box(lo, hi):
        return lambda d: _cast_box(o, d, lo, hi)

    def sphere(centre, radius):
        lo, hi = centre - radius, centre + radius
        return lo, hi, lambda d: _cast_sphere(o, d, centre, radius, np.einsum("ij,ij->i", d, d))

    def cylinder(cx, cz, radius, y0, y1):
        lo = np.array([cx - radius, y0, cz - radius], np.float32)
        hi = np.array([cx + radius, y1, cz + radius], np.float32)
        return lo, hi, lambda d: _cast_cylinder(o, d, cx, cz, radius, y0, y1)

    # furniture along the walls and the back, never between the camera and a person
    nearest_person = min((-p.z for p in people), default=0.0)
    for _ in range(int(rng.integers(0, 5))):
        size = rng.uniform([0.4, 0.4, 0.4], [1.6, 1.2, 1.0]).astype(np.float32)
        back_low, back_high = max(nearest_person + 1.0, -back * 0.6), -back - size[2] / 2
        if rng.random() < 0.5 or back_low >= back_high:  # against a side wall
            side = rng.choice([-1.0, 1.0])
            x = side * (half - size[0] / 2 - 0.02)
            z = -float(rng.uniform(1.0, -back - 0.6))
        else:  # toward the back wall
            x = float(rng.uniform(-half + size[0] / 2, half - size[0] / 2))
            z = -float(rng.uniform(back_low, back_high))
        lo = np.array([x - size[0] / 2, 0.0, z - size[2] / 2], np.float32)
        hi = np.array([x + size[0] / 2, size[1], z + size[2] / 2], np.float32)
        add(lo, hi, box(lo, hi), FURNITURE, _rng_colour(rng))
    for _ in range(int(rng.integers(0, 4))):
        radius = float(rng.uniform(0.15, 0.45))
        x = float(rng.uniform(-half + radius, half - radius))
        near, far = max(nearest_person + 1.0, 2.0), -back - radius
        if near >= far:
            continue
        z = -float(rng.uniform(near, far))
        if rng.random() < 0.5:
            add(*sphere(np.array([x, radius, z], np.float32), radius), OBJECT, _rng_colour(rng))
        else:
            add(*cylinder(x, z, radius, 0.0, float(rng.uniform(0.3, 1.4))), OBJECT, _rng_colour(rng))

    torso_of: dict[int, tuple[int, float]] = {}  # primitive -> (person, shoulder height)
    for index, person in enumerate(people):
        s = person.height
        head_radius = (0.13 if person.child else 0.115) * (s / (1.1 if person.child else 1.75)) ** 0.5
        shoulder = s - 2 * head_radius - 0.03 * s
        hip = 0.47 * s
        for offset in (-0.07 * s, 0.07 * s):  # legs, set apart across the facing direction
            lx = person.x + offset * math.cos(person.yaw)
            lz = person.z + offset * math.sin(person.yaw)
            add(*cylinder(lx, lz, 0.055 * s, 0.0, hip), PERSON, person.trousers)
        torso_of[add(*cylinder(person.x, person.z, 0.12 * s, hip - 0.02, shoulder), PERSON, person.clothes)] = (
            index,
            shoulder,
        )
        centre = np.array([person.x, shoulder + head_radius + 0.02 * s, person.z], np.float32)
        head_of[add(*sphere(centre, head_radius), PERSON, person.hair)] = index

    # ---- ground truth -----------------------------------------------------------------------
    depth = hits.t
    normals_world = (hits.normal / np.maximum(np.linalg.norm(hits.normal, axis=-1, keepdims=True), 1e-6)).reshape(-1, 3)
    normals = (normals_world @ rotation).reshape(height, width, 3)  # world -> camera: R^T n
    semseg = hits.cls
    flat = FlatHits(hits.t.reshape(-1), normals_world, hits.cls.reshape(-1), hits.prim.reshape(-1))
    d = rays.reshape(-1, 3)

    # ---- appearance -------------------------------------------------------------------------
    points = o + flat.t[:, None] * d  # (N, 3)
    albedo = np.stack(colours)[flat.prim]  # (N, 3)
    _texture_room(rng, albedo, points, flat)
    _paint_people(albedo, points, flat, people, head_of, torso_of)
    light = np.array([rng.uniform(-half + 0.5, half - 0.5), room_h - 0.1, rng.uniform(back * 0.7, -1.0)], np.float32)
    to_light = light - points
    distance = np.linalg.norm(to_light, axis=1, keepdims=True)
    lambert = np.clip(np.einsum("ij,ij->i", normals_world, to_light / distance), 0, 1)[:, None]
    intensity = float(rng.uniform(0.6, 1.0))
    fill = np.clip(normals_world @ np.array([0.3, 0.5, 0.8], np.float32) / 1.0, 0, 1)[:, None] * 0.2
    shade = (
        float(rng.uniform(0.25, 0.4)) + intensity * lambert * np.minimum(1.0, 6.0 / (distance[:, 0:1] ** 2 + 2)) + fill
    )
    tint = rng.uniform(0.85, 1.1, 3).astype(np.float32)
    rgb = albedo * shade * tint
    vignette = 1.0 - 0.35 * (((rows - height / 2) / height) ** 2 + ((cols - width / 2) / width) ** 2).reshape(-1, 1)
    rgb = rgb * vignette + rng.normal(0, 0.015, rgb.shape).astype(np.float32)
    image = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)

    attributes = {
        "people": ATTRIBUTE_GROUPS["people"][min(len(people), 3)],
        "facing": "yes" if any(p.facing for p in people) else "no",
        "age_group": "none" if not people else ("child" if min(people, key=lambda p: -p.z).child else "adult"),
    }
    return Scene(image, semseg, depth.astype(np.float32), normals.astype(np.float32), attributes)


@dataclass(frozen=True)
class FlatHits:
    """The final hits as flat per-pixel arrays, for shading."""

    t: np.ndarray  # (N,)
    normal: np.ndarray  # (N, 3) unit, world
    cls: np.ndarray  # (N,)
    prim: np.ndarray  # (N,)


def _cast_room(o, d, half, room_h, back, front, size):
    """The room seen from inside: per ray, the nearest of the three planes it travels toward."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = (np.where(d[:, 0] > 0, half, -half) - o[0]) / d[:, 0]
        ty = (np.where(d[:, 1] > 0, room_h, 0.0) - o[1]) / d[:, 1]
        tz = (np.where(d[:, 2] > 0, front, back) - o[2]) / d[:, 2]
    planes = np.stack([tx, ty, tz], 1)
    planes[~np.isfinite(planes) | (planes <= 0)] = INF
    axis = np.argmin(planes, 1)
    index = np.arange(len(d))
    t = planes[index, axis].astype(np.float32)
    normal = np.zeros_like(d)
    normal[index, axis] = -np.sign(d[index, axis])
    cls = np.where(axis == 1, np.where(d[:, 1] < 0, FLOOR, CEILING), WALL).astype(np.uint8)
    return t.reshape(size), normal.reshape(*size, 3), cls.reshape(size)


def _texture_room(rng: np.random.Generator, albedo: np.ndarray, points: np.ndarray, hits: FlatHits) -> None:
    """Floors get tiles, planks or a checker; walls stripes or blotches; ceilings stay plain."""
    floor = hits.cls == FLOOR
    base, second = _rng_colour(rng, 0.2, 0.8), _rng_colour(rng, 0.1, 0.7)
    scale = float(rng.uniform(0.25, 1.0))
    x, z = points[floor, 0], points[floor, 2]
    kind = int(rng.integers(0, 3))
    if kind == 0:  # checker
        pattern = ((np.floor(x / scale) + np.floor(z / scale)) % 2)[:, None]
    elif kind == 1:  # planks with grain
        pattern = (0.5 + 0.5 * np.sin(z / scale * 12.0 + np.floor(x / (scale * 0.3)) * 1.7))[:, None] * 0.5
    else:  # tiles with grout
        grout = (np.abs((x / scale) % 1 - 0.5) > 0.46) | (np.abs((z / scale) % 1 - 0.5) > 0.46)
        pattern = grout[:, None].astype(np.float32)
    albedo[floor] = base * (1 - pattern) + second * pattern
    wall = hits.cls == WALL
    wall_colour = _rng_colour(rng, 0.3, 0.95)
    u = points[wall, 0] + points[wall, 2]
    if rng.random() < 0.5:
        stripe = (np.sin(u * rng.uniform(3, 12)) > 0.6)[:, None] * rng.uniform(0.05, 0.25)
    else:
        stripe = (np.sin(u * 2.3) * np.sin(points[wall, 1] * 3.1 + u * 1.3))[:, None] * rng.uniform(0.03, 0.12)
    albedo[wall] = np.clip(wall_colour * (1 - stripe), 0, 1)
    albedo[hits.cls == CEILING] = _rng_colour(rng, 0.7, 1.0)


def _paint_people(albedo, points, hits: FlatHits, people, head_of, torso_of) -> None:
    """Heads: skin-coloured face with dark eyes and mouth on the front, hair behind and on top.
    Torsos: a skin-coloured neckline at the front, so a person seen from the front differs from
    behind even when the face is only a few pixels."""
    for prim, (index, shoulder) in torso_of.items():
        person = people[index]
        on = np.flatnonzero(hits.prim == prim)
        forward = np.array([math.sin(person.yaw), 0.0, -math.cos(person.yaw)], np.float32)
        neckline = (hits.normal[on] @ forward > 0.55) & (points[on, 1] > shoulder - 0.09 * person.height)
        albedo[on[neckline]] = person.skin
    for prim, index in head_of.items():
        person = people[index]
        on = hits.prim == prim
        if not on.any():
            continue
        n = hits.normal[on]
        forward = np.array([math.sin(person.yaw), 0.0, -math.cos(person.yaw)], np.float32)
        front = n @ forward  # (M,) cosine between the surface normal and the facing direction
        up = n[:, 1]
        colour = np.where(((front > 0.05) & (up < 0.6))[:, None], person.skin, person.hair)
        side = np.array([-forward[2], 0.0, forward[0]], np.float32)  # the person's right
        lateral = n @ side
        eyes = (front > 0.7) & (np.abs(np.abs(lateral) - 0.33) < 0.12) & (np.abs(up - 0.2) < 0.12)
        mouth = (front > 0.7) & (np.abs(lateral) < 0.2) & (np.abs(up + 0.32) < 0.08)
        colour[eyes] = (0.05, 0.05, 0.08)
        colour[mouth] = (0.45, 0.1, 0.1)
        albedo[on] = colour
