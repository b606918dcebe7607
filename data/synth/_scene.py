"""What a render returns and the vocabulary every part of the renderer shares: the class ids of
the segmentation, the attribute groups, and the world-unit aliases for colours and vectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("floor", "wall", "ceiling", "furniture", "object", "person")
FLOOR, WALL, CEILING, FURNITURE, OBJECT, PERSON = range(len(CLASS_NAMES))

ATTRIBUTE_GROUPS: dict[str, tuple[str, ...]] = {
    "people": ("0", "1", "2", "3+"),
    "facing": ("no", "yes"),  # is any visible person facing the camera
    "age_group": ("none", "child", "adult"),  # of the nearest person (smallest depth)
}

Colour = tuple[float, float, float]  # linear RGB in [0, 1]
Vector = tuple[float, float, float]  # world point or direction, metres


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    semseg: np.ndarray  # (H, W) uint8 class ids, indices into CLASS_NAMES
    depth: np.ndarray  # (H, W) float32 z-depth in metres, > 0
    normals: np.ndarray  # (H, W, 3) float32 unit normals in camera space, facing the camera
    attributes: dict[str, str]  # group -> class name, one entry per ATTRIBUTE_GROUPS key
