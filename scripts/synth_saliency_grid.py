"""A picture of the synthetic saliency label, to check by eye that the blobs sit where people look.

    python scripts/synth_saliency_grid.py --out docs/synth-saliency.png

Each tile is one scene at 256x320: on the left the image with each visible person's head yaw
(0 faces the camera, > 0 turned to the person's left; L when looking), on the right the saliency
map over it as the saliency task draws it (SaliencyTask.visualize: dark blue is no attention, red
the scene's most looked-at place) and "not labelled" where the map is all zeros.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/synth-saliency.png")
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
