"""A training step of the default recipe, with its loader reading from the files, from its workers'
memory, and with no loader running beside it, interleaved in one process.

On 2 cores the loader's worker shares the CPU with the step's two threads, so what a sample costs
to prepare comes out of the step. This builds the recipe's Trainer (configs/default.yaml, or
--config) on a folder dataset, and in each round times `--steps` optimiser steps of each arm after
5 untimed ones:

- `files`: the worker decodes every sample from its files (a run's first epoch);
- `memory`: every sample is in the worker's cache (the epochs after the first);
- `no loader`: the batches were prepared before the clock started (the floor).

Prints the median ms per step over the rounds, and each arm against `no loader`:

    onepass data synth --out /tmp/synth-train --n 3000 --size 128x160 --seed 0
    python benchmarks/train_step.py /tmp/synth-train --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from onepass.runtime.cpu import cpu_features, cpu_flags
from onepass.train.config import TrainConfig, parse_overrides, read_config_file
from onepass.train.loop import SAMPLE_CACHE_BYTES, Trainer

ARMS = ("files", "memory", "no loader")
WARMUP_STEPS = 5


def time_arm(arm: str, config: dict, data: str, out: Path, steps: int) -> float:
    """ms per optimiser step of one arm, in a fresh Trainer (so a cache never carries over)."""
    trainer = Trainer(TrainConfig.from_mapping({**config, "data": data, "out": str(out)}), progress=False)
    dataset = trainer.train_set
    if arm == "memory":  # fill the cache before the worker forks: it starts with every sample
        dataset.cache_bytes = SAMPLE_CACHE_BYTES
        for index in range(len(dataset)):
            dataset.prepared(index)
    batches = iter(trainer.loader(0, 0))  # "files": the first epoch's samples, none read before
    if arm == "no loader":
        batches = iter([next(batches) for _ in range(WARMUP_STEPS + steps)])
    for _ in range(WARMUP_STEPS):
        trainer.train_step(next(batches))
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(batches))
    elapsed = time.perf_counter() - started
    trainer.close_loader()
    return elapsed / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a folder dataset with the config's tasks (onepass data synth ...)")
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides, as onepass train's")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per arm and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    config = {**read_config_file(args.config), **parse_overrides(args.set)}
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(args.rounds):
            order = ARMS if round_number % 2 == 0 else ARMS[::-1]
            for arm in order:
                times[arm].append(time_arm(arm, config, args.data, Path(scratch) / arm, args.steps))
                print(f"round {round_number + 1}: {arm} {times[arm][-1]:.1f} ms/step", flush=True)
    floor = statistics.median(times["no loader"])
    features = cpu_features(cpu_flags())
    found = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in features.items())
    table = Table(title=f"training step, batch {config.get('batch_size', 16)} ({found})")
    for column in ("loader", "ms per step (median)", "rounds", "against no loader"):
        table.add_column(column)
    for arm in ARMS:
        median = statistics.median(times[arm])
        table.add_row(arm, f"{median:.1f}", ", ".join(f"{t:.0f}" for t in times[arm]), f"{median / floor:.2f}x")
    Console().print(table)
    if args.json:
        document = {
            "format": "onepass-train-step", "version": 1, "config": args.config, "overrides": args.set,
            "cpu": features, "steps": args.steps, "ms_per_step": times,
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
