"""Materials and procedural textures: the albedo of a surface at world hit points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from onepass.data.synth._scene import Colour, Vector

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
    """A head sphere: a face (skin, eyes, a darker nose, mouth) on the front, hair on the crown and
    the back."""

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
        face = front > 0.2
        eye = face & ((np.minimum(np.abs(side - 0.35), np.abs(side + 0.35)) ** 2 + (qy - 0.15) ** 2) < 0.025)
        nose = face & (np.abs(side) < 0.13) & (qy < 0.1) & (qy > -0.3)
        mouth = face & (np.abs(side) < 0.3) & (np.abs(qy + 0.45) < 0.07)
        hair = (qy > self.hairline) | (front < -0.05)
        colour = np.broadcast_to(_column(self.skin), (3, x.size)).copy()
        colour[:, nose] *= 0.78
        colour[:, hair] = _column(self.hair)
        colour[:, eye] = _column(self.eyes)
        colour[:, mouth] = _column(self.mouth)
        return colour
