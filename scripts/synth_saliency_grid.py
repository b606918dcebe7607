"""A picture of the synthetic saliency label, to check by eye that the blobs sit where people look.

    python scripts/synth_saliency_grid.py --out docs/synth-saliency.png

Each tile is one scene at 256x320: on the left the image with each visible person's head yaw
(0 faces the camera, > 0 turned to the person's left; L when looking), on the right the saliency
map over it as the saliency task draws it (SaliencyTask.visualize: dark blue is no attention, red
the scene's most looked-at place) and "not labelled" where the map is all zeros.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scene_grid import grid_main  # scripts/scene_grid.py, beside this script

from onepass.data.synth import render_scene
from onepass.models.tasks.saliency import SaliencyTask

SIZE = (256, 320)


def scene_tile(seed: int, index: int) -> Image.Image:
    scene = render_scene(np.random.default_rng([seed, index]), *SIZE)
    tile = Image.new("RGB", (2 * SIZE[1], SIZE[0]))
    annotated = Image.fromarray(scene.image)
    draw = ImageDraw.Draw(annotated)
    for person in scene.people:
        x, y = person.head_centre
        draw.text((x - 12, max(0, y - 22)), f"{person.yaw:+.0f}" + (" L" if person.looking else ""), fill="yellow")
    tile.paste(annotated, (0, 0))
    overlay = Image.fromarray(SaliencyTask().visualize(scene.saliency, scene.image))
    if not scene.saliency.any():
        ImageDraw.Draw(overlay).text((4, 4), "not labelled (all zeros)", fill="white")
    tile.paste(overlay, (SIZE[1], 0))
    return tile


if __name__ == "__main__":
    grid_main(scene_tile, "docs/synth-saliency.png", __doc__)
