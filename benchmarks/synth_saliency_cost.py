"""What the saliency label costs the renderer: `OMP_NUM_THREADS=1 python benchmarks/synth_saliency_cost.py`.

Renders the same scenes at 128x160 with the label and with the label replaced by an all-zero map
(everything else as usual), interleaved scene by scene in one process so that a loaded machine
slows both alike, and prints both rates and their ratio. benchmarks/synth_speed.py gives the
absolute rate (target: at least 50 images/s at 128x160 on one core).
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from unittest import mock

import numpy as np

from onepass.data.synth import _render, render_scene


def _no_saliency(layout, pose, people) -> np.ndarray:
    return np.zeros((pose.height, pose.width), np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="scenes (each rendered both ways)")
    parser.add_argument("--size", default="128x160", help="HxW")
    args = parser.parse_args()
    size = tuple(int(side) for side in args.size.split("x"))
    render_scene(np.random.default_rng([99, 0]), *size)  # warm-up
    seconds = {"with": 0.0, "without": 0.0}
    for index in range(args.count):
        for variant in ("with", "without") if index % 2 else ("without", "with"):  # alternate the order
            with mock.patch.object(_render, "_saliency_map", _no_saliency) if variant == "without" else nullcontext():
                started = time.perf_counter()
                render_scene(np.random.default_rng([0, index]), *size)
                seconds[variant] += time.perf_counter() - started
    with_rate, without_rate = args.count / seconds["with"], args.count / seconds["without"]
    print(
        f"render_scene {size[0]}x{size[1]}: {with_rate:.1f} images/s with the saliency label, "
        f"{without_rate:.1f} without: {with_rate / without_rate:.3f}x"
    )


if __name__ == "__main__":
    main()
