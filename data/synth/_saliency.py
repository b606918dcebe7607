"""The saliency label: where the people in the scene look, as a density over the image's pixels.

In the advertising scenario this is "what they look at". Two things draw attention, each one unit
of mass (a Gaussian blob integrating to 1 over the image plane):

- Gaze points. From each visible person's eyes (on the front of the head) one ray goes along the
  head's yaw, pitched by the person's gaze pitch (_people.GAZE_PITCH_DEGREES). The first surface it
  meets (the room, furniture, objects, other people; never the person's own body) is what they look
  at. The blob's standard deviation is GAZE_SPREAD_DEGREES at the eye: eye-to-point distance times
  tan(5 degrees) in metres, turned into pixels by the point's depth from the camera, so a near look
  is a tight spot and a far one a wide patch. Occlusion is not tested: a point hidden from the
  camera behind someone nearer still marks its place in the image (the map shows the direction of
  the attention).
- Faces turned to the camera. A looking person (|yaw| < LOOKING_YAW_DEGREES) looks at the display;
  a viewer of the display's camera looks back at them, so the face gets a blob of its own, centred
  on the front of the head, with FACE_SPREAD times the head's radius as its standard deviation (it
  stays on the face).

A blob counts only if its centre lies in front of the camera and inside the image: a gaze that
lands behind the camera's view (the looking people's, mostly: they look at the display, which
is behind the image plane) adds nothing. The map is scaled to sum to 1 over the image (a blob cut
by the border keeps the part in view). A scene where nothing counts (no one visible, every gaze out
of view and no one looking) gets an all-zero map, which the saliency task reads as "not labelled":
a distribution cannot say "nowhere", so there is nothing to learn from such a scene.

Every blob is integrated exactly over each pixel's square (a separable Gaussian: differences of the
normal distribution function at the pixel edges), so a 2x image's map summed over 2x2 pixels equals
the 1x map up to rounding: the density does not depend on the resolution. The gaze rays and their
hits are in world units, so the same scene gives the same density at any size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from onepass.data.synth._camera import CameraPose
from onepass.data.synth._layout import Layout
from onepass.data.synth._people import _heading
from onepass.data.synth._scene import LOOKING_YAW_DEGREES

GAZE_SPREAD_DEGREES = 5.0  # standard deviation of a gaze point, as an angle at the eye
FACE_SPREAD = 0.5  # standard deviation of a looking face's blob, in head radii
# Eyes: this far in front of the head centre (in head radii) and this far above it; the face's eyes
# are drawn there (_materials.HeadMaterial).
EYE_FORWARD, EYE_UP = 0.95, 0.15


def _gaze_rays(layout: Layout, people: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Eye positions and unit gaze directions (world) of the given people: (n, 3) each."""
    camera = layout.rig.position
    origins, directions = [], []
    for number in people:
        person, pitch = layout.people[number], math.radians(layout.gaze_pitches[number])
        forward_x, forward_z = _heading(person, camera, person.yaw)
        x, y, z = person.head_centre
        r = person.head_radius
        origins.append((x + EYE_FORWARD * r * forward_x, y + EYE_UP * r, z + EYE_FORWARD * r * forward_z))
        directions.append((math.cos(pitch) * forward_x, math.sin(pitch), math.cos(pitch) * forward_z))
    return np.array(origins, dtype=np.float64).reshape(-1, 3), np.array(directions, dtype=np.float64).reshape(-1, 3)


def _first_hits(layout: Layout, origins: np.ndarray, directions: np.ndarray, people: Sequence[int]) -> np.ndarray:
    """Ray parameter of each unit-direction ray's first surface (n,), skipping the primitives of the
    ray's own person. A few rays against every primitive: each primitive's bounding sphere picks the
    rays that may hit it (numpy's per-call cost, not the arithmetic, is what a handful of rays pays)."""
    ox, oy, oz = origins.T  # (n,) each
    dx, dy, dz = directions.T
    t, _ = layout.room.exit(ox, oy, oz, dx, dy, dz)  # (n,) from inside the room: always finite
    if not layout.primitives:
        return t
    lo, hi = layout.primitive_bounds  # (p, 3) each
    centres, radii = (lo + hi) / 2, np.linalg.norm(hi - lo, axis=1) / 2  # (p, 3), (p,)
    offset = centres[None, :, :] - origins[:, None, :]  # (n, p, 3) eye -> centre
    along = np.einsum("npk,nk->np", offset, directions)  # (n, p)
    miss_squared = np.einsum("npk,npk->np", offset, offset) - along * along  # squared distance of ray and centre
    may_hit = (miss_squared <= radii * radii) & (along + radii > 0) & (along - radii < t[:, None])  # (n, p)
    owner = np.full(len(layout.primitives), -1)  # person number of each primitive, -1 for none
    for number, members in enumerate(layout.person_primitives):
        owner[members.start : members.stop] = number
    may_hit &= np.asarray(people)[:, None] != owner[None, :]
    for index in np.flatnonzero(may_hit.any(axis=0)).tolist():
        rays = np.flatnonzero(may_hit[:, index])
        t_new = layout.primitives[index].intersect(ox[rays], oy[rays], oz[rays], dx[rays], dy[rays], dz[rays])
        t[rays] = np.minimum(t[rays], t_new)
    return t


def _project(pose: CameraPose, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points (n, 3) -> continuous pixel coordinates u (right), v (down) and z-depth, each (n,)."""
    camera = pose.to_camera(points)  # (n, 3)
    depth = -camera[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = pose.focal * camera[:, 0] / depth + pose.width / 2
        v = pose.height / 2 - pose.focal * camera[:, 1] / depth
    return u, v, depth


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    """The standard normal distribution function; erf by Abramowitz and Stegun 7.1.26 (error < 1.5e-7)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.copysign(erf, x))


def _pixel_masses(centres: np.ndarray, sigmas: np.ndarray, count: int) -> np.ndarray:
    """Mass of 1-D Gaussians (n,) on each of `count` unit pixels [k, k + 1): (n, count)."""
    edges = np.arange(count + 1, dtype=np.float64)  # (count + 1,)
    cdf = _normal_cdf((edges[None, :] - centres[:, None]) / sigmas[:, None])  # (n, count + 1)
    return np.maximum(np.diff(cdf, axis=1), 0.0)


def _blobs(pose: CameraPose, u: np.ndarray, v: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """The sum of unit-mass isotropic Gaussians at pixel coordinates (u, v) with pixel sigmas: (H, W)."""
    columns = _pixel_masses(u, sigmas, pose.width)  # (n, W)
    rows = _pixel_masses(v, sigmas, pose.height)  # (n, H)
    return rows.T @ columns  # (H, W)


def _saliency_map(layout: Layout, pose: CameraPose, people: Sequence[int]) -> np.ndarray:
    """The density (H, W) float32 of where the given people (layout numbers: the visible ones) look:
    sums to 1, or all zeros when none of their gazes or faces counts (see the module docstring)."""
    if not people:
        return np.zeros((pose.height, pose.width), np.float32)
    origins, directions = _gaze_rays(layout, people)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        distance = _first_hits(layout, origins, directions, people)  # (n,) metres: the directions are unit
    points = [origins + distance[:, None] * directions]  # what they look at, world
    spreads = [distance * math.tan(math.radians(GAZE_SPREAD_DEGREES))]  # metres at the point
    looking = [number for number in people if abs(layout.people[number].yaw) < LOOKING_YAW_DEGREES]
    if looking:
        heads = np.array([layout.people[number].head_centre for number in looking])  # (m, 3)
        radii = np.array([layout.people[number].head_radius for number in looking])  # (m,)
        to_camera = pose.position - heads
        points.append(heads + radii[:, None] * to_camera / np.linalg.norm(to_camera, axis=1, keepdims=True))
        spreads.append(FACE_SPREAD * radii)
    u, v, depth = _project(pose, np.concatenate(points))
    sigma = pose.focal * np.concatenate(spreads) / depth  # (n,) pixels
    counts = (depth > 1e-3) & (sigma > 0) & (0 <= u) & (u < pose.width) & (0 <= v) & (v < pose.height)
    if not counts.any():
        return np.zeros((pose.height, pose.width), np.float32)
    density = _blobs(pose, u[counts], v[counts], sigma[counts])
    return (density / density.sum()).astype(np.float32)
