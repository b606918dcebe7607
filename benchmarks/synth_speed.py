"""Renderer speed on one core: `OMP_NUM_THREADS=1 python benchmarks/synth_speed.py`.

Prints images/s of `render_scene` alone (no PNG encoding) at the training size and at a larger one,
with the mean number of visible people per scene (the main cost beyond the room).
The target (foundation issue, kept by the audience-analytics issue): at least 50 images/s at
128x160 on one core.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from onepass.bench.timing import time_calls
from onepass.data.synth import render_scene


def images_per_second(size: tuple[int, int], count: int) -> tuple[float, float]:
    """(images/s, mean visible people per scene) over scenes 0, 1, ... of seed 0 (at least `count`)."""
    render_scene(np.random.default_rng([99, 0]), *size)  # warm-up, on a scene outside the timed ones
    indices, people = itertools.count(), []

    def one_scene() -> None:
        people.append(len(render_scene(np.random.default_rng([0, next(indices)]), *size).people))

    timing = time_calls(one_scene, warmup=0, runs=count, seconds=0)
    return timing.throughput_per_s, sum(people) / len(people)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="scenes per size")
    args = parser.parse_args()
    for size in ((128, 160), (288, 384)):
        rate, people = images_per_second(size, args.count)
        print(f"render_scene {size[0]}x{size[1]}: {rate:.0f} images/s on one core ({people:.1f} people per scene)")


if __name__ == "__main__":
    main()
