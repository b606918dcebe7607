"""What a render returns and the vocabulary every part of the renderer shares: the class ids of
the segmentation, the attribute groups, the per-person labels, and the world-unit aliases for
colours and vectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("floor", "wall", "ceiling", "furniture", "object", "person")
FLOOR, WALL, CEILING, FURNITURE, OBJECT, PERSON = range(len(CLASS_NAMES))

# A person is looking at the display when their head turns less than this from the camera.
LOOKING_YAW_DEGREES = 20.0

# Image-level attributes, all derived from the visible people (Scene.people).
ATTRIBUTE_GROUPS: dict[str, tuple[str, ...]] = {
    "people": ("0", "1", "2", "3+"),  # how many are visible (at least one pixel)
    "facing": ("no", "yes"),  # is any visible person looking (|yaw| < LOOKING_YAW_DEGREES)
    "age_group": ("none", "child", "adult"),  # of the nearest visible person (smallest depth)
}

# Per-person categorical attributes and their classes; `looking` (a boolean) and `yaw` (degrees)
# are the other two per-person attributes.
PERSON_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "age_group": ("child", "adult"),  # by true height: children 0.9-1.35 m, adults 1.55-1.95 m
    "gender": ("female", "male"),
}

Colour = tuple[float, float, float]  # linear RGB in [0, 1]
Vector = tuple[float, float, float]  # world point or direction, metres


@dataclass(frozen=True)
class PersonLabel:
    """Exact ground truth of one visible person; person k of a scene has the value k in Scene.instances.

    Pixel coordinates: x right, y down, pixel (row i, column j) covers [j, j + 1) x [i, i + 1).
    """

    box: tuple[int, int, int, int]  # x, y, width, height (COCO xywh): tight around the visible pixels
    visible_pixels: int  # > 0; a person hidden entirely is no instance
    truncated: bool  # the body, hidden parts included, reaches the image border
    head_centre: tuple[float, float]  # x, y of the projected centre of the head, pixels
    height: float  # true height (the top of the head), metres
    depth: float  # camera z-depth of the body centre, metres
    yaw: float  # head yaw, degrees in [-180, 180): 0 faces the camera, > 0 turns to the person's left
    age_group: str  # a class of PERSON_ATTRIBUTES["age_group"]
    gender: str  # a class of PERSON_ATTRIBUTES["gender"]

    @property
    def looking(self) -> bool:
        return abs(self.yaw) < LOOKING_YAW_DEGREES


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    semseg: np.ndarray  # (H, W) uint8 class ids, indices into CLASS_NAMES
    depth: np.ndarray  # (H, W) float32 z-depth in metres, > 0
    normals: np.ndarray  # (H, W, 3) float32 unit normals in camera space, facing the camera
    attributes: dict[str, str]  # group -> class name, one entry per ATTRIBUTE_GROUPS key
    people: tuple[PersonLabel, ...]  # the visible people, nearest (smallest depth) first
    instances: np.ndarray  # (H, W) int16: index into `people` of the person each pixel shows, -1 for none
    saliency: np.ndarray  # (H, W) float32 density of where the people look (_saliency.py): sums to 1, or all 0

    @property
    def maps(self) -> dict[str, np.ndarray]:
        """The per-pixel labels by task name: what a dataset folder holds per image (one folder each)."""
        return {"semseg": self.semseg, "depth": self.depth, "normals": self.normals, "saliency": self.saliency}
