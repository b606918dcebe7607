"""GET /samples/{i}.png: synthetic scenes of the kind the shipped model was trained on, for the web page."""

from __future__ import annotations

import functools

import numpy as np

from onepass.serve.responses import picture_png

SAMPLE_SEEDS = (7, 11, 2024, 31337)  # the scenes the page offers, by their renderer seed
SAMPLE_SIZE = (256, 320)  # (H, W)


@functools.cache  # a scene depends on its seed alone, so each is rendered once per process
def sample_png(index: int) -> bytes:
    """Sample `index` (0 <= index < len(SAMPLE_SEEDS)) as a PNG."""
    from onepass.data.synth import render_scene  # the renderer, only once the page asks for a sample

    scene = render_scene(np.random.default_rng(SAMPLE_SEEDS[index]), *SAMPLE_SIZE)
    return picture_png(scene.image)
