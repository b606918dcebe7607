"""A picture of the synthetic people, to check by eye that gender, age and head direction read.

    python scripts/synth_people_grid.py --out docs/synth-people.png

Each tile is one scene: on the left at the model's 128x160 (shown 2x, nearest neighbour), on the
right at 256x320 with each visible person's box and label: F/M (gender), c/a (child/adult), the
head yaw in degrees (0 faces the camera, > 0 turned to the person's left), L when looking, T when
truncated.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/synth-people.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="index of the first scene")
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--columns", type=int, default=3)
    args = parser.parse_args()
    tiles = [scene_tile(args.seed, args.first + k) for k in range(args.scenes)]
    rows = -(-len(tiles) // args.columns)
    width, height = tiles[0].size
    grid = Image.new("RGB", (args.columns * width + (args.columns - 1) * 4, rows * height + (rows - 1) * 4), "white")
    for k, tile in enumerate(tiles):
        grid.paste(tile, ((k % args.columns) * (width + 4), (k // args.columns) * (height + 4)))
    # 256 colours keep the picture small (the sensor noise defeats PNG's compression) and look the same.
    grid.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(args.out, optimize=True)
    print(f"wrote {args.out}: {len(tiles)} scenes")


if __name__ == "__main__":
    main()
