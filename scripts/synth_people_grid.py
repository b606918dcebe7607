"""A picture of the synthetic people, to check by eye that gender, age and head direction read.

    python scripts/synth_people_grid.py --out docs/synth-people.png

Each tile is one scene: on the left at the model's 128x160 (shown 2x, nearest neighbour), on the
right at 256x320 with each visible person's box and label: F/M (gender), c/a (child/adult), the
head yaw in degrees (0 faces the camera, > 0 turned to the person's left), L when looking, T when
truncated.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scene_grid import grid_main  # scripts/scene_grid.py, beside this script

from onepass.data.synth import render_scene

LOW, HIGH = (128, 160), (256, 320)


def _label(person) -> str:
    text = f"{person.gender[0].upper()}{person.age_group[0]} {person.yaw:+.0f}"
    return text + (" L" if person.looking else "") + (" T" if person.truncated else "")


def scene_tile(seed: int, index: int) -> Image.Image:
    low = render_scene(np.random.default_rng([seed, index]), *LOW)
    high = render_scene(np.random.default_rng([seed, index]), *HIGH)
    tile = Image.new("RGB", (2 * HIGH[1], HIGH[0]))
    tile.paste(Image.fromarray(low.image).resize((HIGH[1], HIGH[0]), Image.NEAREST), (0, 0))
    annotated = Image.fromarray(high.image)
    draw = ImageDraw.Draw(annotated)
    for person in high.people:
        x, y, w, h = person.box
        colour = (255, 60, 60) if person.gender == "female" else (60, 160, 255)
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=colour)
        draw.text((x + 1, max(0, y - 11)), _label(person), fill=colour)
    tile.paste(annotated, (HIGH[1], 0))
    return tile


if __name__ == "__main__":
    grid_main(scene_tile, "docs/synth-people.png", __doc__)
