"""What the layout samplers share: scalar and colour draws from the generator, and the vectorised
checks that keep candidate positions in view, inside the room and apart from each other."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from onepass.data.synth._camera import CameraPose
from onepass.data.synth._geometry import _CORNER_SELECTORS, Room
from onepass.data.synth._scene import Colour

FRAME_MARGIN = 0.06  # fraction of the reference half-frustum kept free around people
PLACEMENT_CANDIDATES = 64  # positions tried at once per person / piece of furniture / object


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

    def contains(self, cones: np.ndarray, cut_sides: bool = False) -> np.ndarray:
        """Which cones (n, 6) lie inside the frustum with the margin: (n,) bool.

        With `cut_sides`, a cone may reach past the left or right side as long as its centre is in
        view; it still keeps the margin at the top and bottom.
        """
        keep_h, keep_v = self.tan_h * (1 - FRAME_MARGIN), self.tan_v * (1 - FRAME_MARGIN)
        vertical = (-keep_v <= cones[:, 2]) & (cones[:, 3] <= keep_v)
        if cut_sides:
            centre = (cones[:, 0] + cones[:, 1]) / 2
            return vertical & (np.abs(centre) <= self.tan_h)
        return vertical & (-keep_h <= cones[:, 0]) & (cones[:, 1] <= keep_h)


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


def _first_clear(
    valid: np.ndarray,
    cones: np.ndarray,
    person_cones: list[np.ndarray],
    footprints: list[_Footprint],
    x: np.ndarray,
    z: np.ndarray,
    reach: np.ndarray | float,
) -> int | None:
    """The first candidate that is `valid`, could not cover any person and keeps clear of every
    footprint already placed; None if there is none."""
    for person in person_cones:
        valid = valid & ~_hides(cones, person)
    for footprint in footprints:
        valid = valid & ~footprint.overlaps(x, z, reach)
    return _first(valid)
