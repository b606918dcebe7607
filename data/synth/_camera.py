"""The camera: a rig in world units (position, yaw, pitch, field of view) and the pinhole pose it
gives for one image size."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onepass.data.synth._scene import Vector

# Scenes are composed inside the frustum of an image with this height / width; the focal length
# is chosen so that every image size sees at least that frustum (people are never cut).
REFERENCE_ASPECT = 0.75


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
