"""Geometric primitives (boxes, ellipsoids, cylinders) and the room box: analytic ray intersections,
normals and bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from onepass.data.synth._materials import Material
from onepass.data.synth._scene import CEILING, FLOOR, WALL, Vector

INF = np.float32(np.inf)


# --------------------------------------------------------------------------------------------
# Geometry. Each primitive intersects rays o + t d (origins scalar or per ray, d not normalised)
# and returns the entry t, or inf where the ray misses or starts inside.


def _rotate_y(x, z, cos: float, sin: float):
    """Rotate (x, z) about the y axis: local-to-world with (cos, sin) of the yaw."""
    return cos * x + sin * z, cos * z - sin * x


def _around(center: Vector, extent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The axis-aligned box of half-size `extent` about `center`: (low corner, high corner)."""
    return np.array(center) - extent, np.array(center) + extent


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
        return _around(self.center, extent)


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
        return _around(self.center, extent)


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
_CORNER_SELECTORS = np.array([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], dtype=bool)  # (8, 3)


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
