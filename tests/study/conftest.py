"""A tiny study: two tasks on 8 random 48x64 images, the tiny encoder, 2 steps a run, 3 seeds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.tiny import TINY_ENCODER, write_random_dataset

TINY_BASE = {
    "tasks": ["semseg", "depth"],
    "encoder": TINY_ENCODER,
    "decoder_channels": 16,
    "input_size": [32, 64],
    "steps": 2,
    "batch_size": 4,
    "warmup_steps": 1,
    "balancer": "fixed",
    "augment": False,
    "num_workers": 0,
    "checkpoint_every": 1,
}


@pytest.fixture(autouse=True)
def _one_thread():
    # A tiny model's ops are too small to share: one thread trains it several times faster than two,
    # and far faster on a loaded machine, where a second thread waits for a core.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("study-data")
    return write_random_dataset(root / "train", n=8), write_random_dataset(root / "val", n=4, seed=1)


def study_values(tiny_data: tuple[Path, Path], out: Path, **changes: Any) -> dict[str, Any]:
    """A valid study config (as its YAML would load), with top-level `changes`."""
    values = {
        "format": "onepass-study",
        "version": 1,
        "out": str(out),
        "data": {"train": str(tiny_data[0]), "val": str(tiny_data[1])},
        "seeds": [0, 1, 2],
        "base": copy.deepcopy(TINY_BASE),
        "configurations": [{"name": "shared-fpn", "architecture": "shared-fpn"}],
        "latency": {"repeats": 2, "warmup": 0},
    }
    values.update(changes)
    return values
