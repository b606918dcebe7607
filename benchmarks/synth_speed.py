"""Renderer speed on one core: `OMP_NUM_THREADS=1 python benchmarks/synth_speed.py`.

Prints images/s of `render_scene` alone (no PNG encoding) at the training size and at a larger one.
The target (foundation issue): at least 50 images/s at 128x160 on one core.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from onepass.data.synth import render_scene


def images_per_second(size: tuple[int, int], count: int) -> float:
    render_scene(np.random.default_rng([99, 0]), *size)  # warm-up
    started = time.perf_counter()
    for index in range(count):
        render_scene(np.random.default_rng([0, index]), *size)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="scenes per size")
    args = parser.parse_args()
    for size in ((128, 160), (288, 384)):
        print(f"render_scene {size[0]}x{size[1]}: {images_per_second(size, args.count):.0f} images/s on one core")


if __name__ == "__main__":
    main()
