"""What each configuration costs at inference: parameters and FLOPs (`bench.prepare.count_model`), and the
batch-1 latency of the torch backend (fp32, CPU, channels-last) at the package's input size.

Every model is timed in ONE process, interleaved: each round runs every model once, in an order that
rotates from round to round, so that a noisy machine slows them all alike and the ratios stay fair.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

import onepass
from onepass.bench.prepare import count_model
from onepass.bench.timing import LatencyStats
from onepass.models.package import open_package
from onepass.study.config import LatencyOptions
from onepass.study.runs import Log, log_line


def measure_costs(
    packages: Mapping[str, Path], options: LatencyOptions, log: Log = log_line
) -> dict[str, dict[str, Any]]:
    """label -> {parameters, flops_per_image, weights_bytes, latency: {n, p50, ...} (ms), threads}."""
    if options.threads:
        torch.set_num_threads(options.threads)
    labels = list(packages)
    predictors = {label: onepass.load(packages[label], backend="torch", device="cpu") for label in labels}
    rng = np.random.default_rng(0)
    images = {
        label: rng.integers(0, 256, (1, *p.config.input_size, 3), dtype=np.uint8) for label, p in predictors.items()
    }
    log(
        f"timing {len(labels)} models: {options.warmup} warm-up + {options.repeats} timed batch-1 runs each, "
        f"interleaved, {torch.get_num_threads()} torch threads"
    )
    samples: dict[str, list[float]] = {label: [] for label in labels}
    for round_ in range(options.warmup + options.repeats):
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            started = time.perf_counter()
            predictors[label].backend.run(images[label])
            if round_ >= options.warmup:
                samples[label].append(time.perf_counter() - started)
    costs = {}
    for label in labels:
        counts = count_model(open_package(packages[label]))
        costs[label] = {
            "parameters": counts.parameters,
            "flops_per_image": counts.flops_per_image,
            "weights_bytes": counts.weights_bytes,
            "latency": dataclasses.asdict(LatencyStats.of_seconds(samples[label])),
            "threads": torch.get_num_threads(),
        }
    return costs
