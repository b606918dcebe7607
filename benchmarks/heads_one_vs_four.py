"""One pass against four single-task models, for each head option, interleaved in one process.

`onepass bench PACKAGE --vs-single-task` times one package against its single-task models once; on
these 2-core machines a ratio from one run moves by 0.1 and more. This builds untrained packages of
the default model's layout (semseg, depth, normals, people; decoder 64; 128x160; timing does not
depend on weights) with each head option (full or separable convolutions, head stride 1 or 2), and
their single-task models, exports each to ONNX, and times them with the onnxruntime backend in
rounds that alternate the options' order: in each round, the one-pass model's median model time
(`Predictor.run`) and the sum of its four single-task models' medians, at batch 1 and 8. Prints and
writes the median over rounds of each, and of each round's ratio, with its range:

    python benchmarks/heads_one_vs_four.py --rounds 7 --json docs/performance/heads-one-vs-four-vnni.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

import onepass
from onepass.bench.prepare import single_task_packages
from onepass.bench.timing import time_calls
from onepass.export.onnx import export_onnx
from onepass.models import MultiTaskModel, open_package, save_package
from onepass.runtime.cpu import cpu_features, cpu_flags

OPTIONS = {  # name -> (head_convolution, head_stride)
    "full-stride1": ("full", 1),
    "full-stride2": ("full", 2),
    "separable-stride1": ("separable", 1),
    "separable-stride2": ("separable", 2),
}
BATCHES = {1: 40, 8: 8}  # batch size -> timed runs per model per round


def build(root: Path, name: str, convolution: str, stride: int) -> list:
    """The one-pass Predictor and its single-task ones (the bench's own, `single_task_packages`), for
    one head option."""
    config = dataclasses.replace(open_package("default").config, head_convolution=convolution, head_stride=stride)
    if not (root / name / "onepass.json").is_file():
        torch.manual_seed(0)
        save_package(root / name, MultiTaskModel(config).eval(), name)
    package = open_package(root / name)
    packages = [package, *single_task_packages(package, config.input_size, root / f"{name}-single")]
    for each in packages:
        if not (each.path / "model.onnx").is_file():
            export_onnx(each)
    return [onepass.load(str(each.path), backend="onnxruntime") for each in packages]


def median_ms(predictor, batch: np.ndarray, runs: int) -> float:
    return time_calls(lambda: predictor.run(batch), warmup=1, runs=runs, seconds=0.0).latency.p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workdir", help="keep the packages here (default: a temporary directory)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(args.workdir or temporary)
        models = {name: build(root, name, *option) for name, option in OPTIONS.items()}
        rng = np.random.default_rng(0)
        pairs: dict[str, dict[int, list[tuple[float, float]]]] = {n: {b: [] for b in BATCHES} for n in OPTIONS}
        for r in range(args.rounds):
            order = list(OPTIONS) if r % 2 == 0 else list(reversed(OPTIONS))
            for batch_size, runs in BATCHES.items():
                batch = rng.integers(0, 256, (batch_size, 128, 160, 3), dtype=np.uint8)
                for name in order:
                    one, *singles = models[name]
                    pair = (median_ms(one, batch, runs), sum(median_ms(p, batch, runs) for p in singles))
                    pairs[name][batch_size].append(pair)
            print(f"round {r + 1}/{args.rounds}", flush=True)
    results = {}
    for name, by_batch in pairs.items():
        for batch_size, measured in by_batch.items():
            ratios = [one / four for one, four in measured]
            results.setdefault(name, {})[str(batch_size)] = {
                "one_pass_ms": round(statistics.median(one for one, _ in measured), 2),
                "single_task_sum_ms": round(statistics.median(four for _, four in measured), 2),
                "ratio_median": round(statistics.median(ratios), 3),
                "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
            }
            print(f"{name:18s} batch {batch_size}: {results[name][str(batch_size)]}")
    if args.json:
        document = {"format": "onepass-heads-one-vs-four", "version": 1, "rounds": args.rounds,
                    "cpu": cpu_features(cpu_flags()), "results": results}  # fmt: skip
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
