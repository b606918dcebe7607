"""The command line and the grid of the docs' scene pictures (scripts/synth_people_grid.py,
scripts/synth_saliency_grid.py): each script draws one scene's tile; this lays tiles out and saves."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from PIL import Image


def grid_main(scene_tile: Callable[[int, int], Image.Image], default_out: str, description: str | None) -> None:
    """Parse --out/--seed/--first/--scenes/--columns, draw `scene_tile(seed, index)` for each scene
    and save the grid (4 px white gaps) as a 256-colour PNG."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out)
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
