"""Bring one image's outputs from the model's input size back to the image's size (numpy + PIL,
so every backend shares it)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 -> (H, W) by nearest neighbour (class ids must not blend)."""
    if array.shape == size:
        return array
    return np.asarray(Image.fromarray(array).resize((size[1], size[0]), Image.Resampling.NEAREST))


def resize_linear(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) or (h, w, C) float32 -> (H, W[, C]) bilinear, channel by channel."""
    if array.shape[:2] == size:
        return array.astype(np.float32, copy=False)
    if array.ndim == 3:
        return np.stack([resize_linear(array[..., c], size) for c in range(array.shape[2])], axis=-1)
    image = Image.fromarray(array.astype(np.float32, copy=False), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float32)
