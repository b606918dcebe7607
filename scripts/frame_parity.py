"""Parity of the frame-size path against today's path, per output: `Predictor.predict` on a backend with
the frame-size graph (frames resized in the graph, maps at the frame's size) against the same backend
without it (Pillow resizes the frame, each task's `to_result` the maps), on synthetic scenes rendered at
each frame size. Prints one Markdown table (docs/performance.md has its figures).

    python scripts/frame_parity.py [MODEL] [--sizes 480x640,1080x1920] [--count 4]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import onepass
from onepass.data.synth import render_scene
from onepass.runtime.predictor import python_resizing


def compare(today: dict, frame: dict) -> dict[str, tuple[str, float]]:
    """One image's results by both paths -> {output: (measure, value)}, for the outputs it has."""
    rows: dict[str, tuple[str, float]] = {}
    for name, old in today.items():
        new = frame[name]
        if isinstance(old, np.ndarray) and old.dtype == np.uint8:
            rows[name] = ("pixel agreement %", 100.0 * float((old == new).mean()))
        elif isinstance(old, np.ndarray) and old.ndim == 3:  # unit vectors
            cosine = np.clip((old * new).sum(-1), -1.0, 1.0)
            angles = np.degrees(np.arccos(cosine))
            rows[name] = ("mean / max angle °", (float(angles.mean()), float(angles.max())))
        elif isinstance(old, np.ndarray):
            relative = np.abs(new - old) / np.maximum(np.abs(old).max(), 1e-12)
            rows[name] = ("mean / max abs difference / map maximum", (float(relative.mean()), float(relative.max())))
        elif isinstance(old, list):  # people
            same = len(old) == len(new)
            boxes = [abs(np.array(a["box"]) - np.array(b["box"])).max() for a, b in zip(old, new, strict=False)]
            rows[name] = ("count agreement % / max box corner difference px", (100.0 * same, max(boxes, default=0.0)))
        elif isinstance(old, dict):  # attribute groups
            difference = max(
                abs(p - new[g]["probabilities"][c]) for g, v in old.items() for c, p in v["probabilities"].items()
            )
            rows[name] = ("max probability difference", float(difference))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="default")
    parser.add_argument("--sizes", default="480x640,1080x1920")
    parser.add_argument("--count", type=int, default=4, help="scenes per frame size")
    parser.add_argument("--backend", default="torch")
    args = parser.parse_args(argv)
    predictor = onepass.load(args.model, backend=args.backend, device="cpu")
    if not predictor.runs_frames:
        print(f"{args.model}: the {args.backend} backend has no frame-size graph here", file=sys.stderr)
        return 2
    today = python_resizing(predictor)
    print("| frame | output | measure | worst over the scenes |\n|---|---|---|---|")
    for item in args.sizes.split(","):
        height, width = (int(v) for v in item.split("x"))
        scenes = [render_scene(np.random.default_rng([77, i]), height, width).image for i in range(args.count)]
        per_output: dict[str, list] = {}
        for scene in scenes:
            for name, row in compare(today.predict(scene)[0], predictor.predict(scene)[0]).items():
                per_output.setdefault(name, []).append(row)
        for name, rows in per_output.items():
            measure = rows[0][0]
            values = np.array([r[1] for r in rows], dtype=np.float64).reshape(len(rows), -1)
            worse_low = measure.endswith("%") or measure.startswith("count")
            worst = values.min(axis=0) if worse_low else values.max(axis=0)
            if measure.startswith("count"):
                worst = np.array([values[:, 0].min(), values[:, 1].max()])
            print(f"| {item} | {name} | {measure} | {' / '.join(f'{v:.4g}' for v in worst)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
