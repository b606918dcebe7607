"""Colour maps for pictures of dense maps (no matplotlib dependency)."""

from __future__ import annotations

import numpy as np

# Google's Turbo colour map, polynomial approximation (Mikhailov 2019, Apache-2.0 reference code).
_TURBO_R = (0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943)
_TURBO_G = (0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604)
_TURBO_B = (0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973)


def turbo(values: np.ndarray) -> np.ndarray:
    """values in [0, 1], any shape -> (..., 3) uint8 RGB."""
    x = np.clip(values, 0.0, 1.0)[..., None]  # (..., 1)
    powers = x ** np.arange(6)  # (..., 6)
    rgb = np.stack([powers @ np.array(c) for c in (_TURBO_R, _TURBO_G, _TURBO_B)], axis=-1)  # (..., 3)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
