"""Calibration: after training, each task with decision settings (`Task.new_calibrator`: the people
count's score threshold) chooses them on labelled data, and the package records which data chose them.

The last step of `onepass train` (on the training images, or `calibration_data`), and `onepass
calibrate MODEL --data DIR` for a package that exists. The weights do not change; the tasks' settings
are part of the package's config (onepass.json), so the exported graph bakes them in once it is
exported again.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from onepass.data.folder import DatasetError
from onepass.errors import ConfigError
from onepass.models.model import ModelConfig, MultiTaskModel
from onepass.models.tasks.base import Task
from onepass.train.dataset import TaskDataset
from onepass.train.evaluate import accumulate, data_description


@dataclass(frozen=True)
class CalibrationResult:
    config: ModelConfig  # the model's config with each calibrated task's new settings
    record: dict[str, Any]  # the package's `training.calibration`: the data, and each task's choice


def has_settings_to_calibrate(tasks: tuple[Task, ...]) -> bool:
    return any(t.new_calibrator() is not None for t in tasks)


def evenly_spaced(dataset: TaskDataset, images: int) -> torch.utils.data.Dataset:
    """Up to `images` of the dataset, spread over all of it (a folder sorted by camera or time is then
    sampled throughout, not at its start)."""
    if images >= len(dataset):
        return dataset
    indices = np.unique(np.linspace(0, len(dataset) - 1, images).round().astype(int))
    return torch.utils.data.Subset(dataset, indices.tolist())


def calibrate(
    model: MultiTaskModel,
    dataset: TaskDataset,
    images: int,
    batch_size: int = 16,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> CalibrationResult:
    """Each calibrated task's settings, chosen on up to `images` images of `dataset` (its labelled ones)."""
    config = model.config
    calibrators = {t.name: c for t in config.tasks if (c := t.new_calibrator()) is not None}
    root = dataset.folder.root
    if not calibrators:
        raise ConfigError(f"no task of this model has settings to calibrate (its tasks: {task_names(config)})")
    subset = evenly_spaced(dataset, images)
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, num_workers=num_workers)
    accumulate(model, loader, config.tasks, calibrators, config.mean, config.std, device, progress, "calibrate")
    chosen = {}
    for name, calibrator in calibrators.items():
        try:
            chosen[name] = calibrator.compute()
        except ValueError as error:
            raise DatasetError(f"{root}: {error}") from None
    tasks = tuple(chosen[t.name].task if t.name in chosen else t for t in config.tasks)
    record = {
        "data": data_description(root, len(subset)),
        "tasks": {name: c.record for name, c in chosen.items()},
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv) if sys.argv else None,
    }
    return CalibrationResult(dataclasses.replace(config, tasks=tasks), record)


def task_names(config: ModelConfig) -> str:
    return ", ".join(t.name for t in config.tasks)


def describe_calibration(record: Mapping[str, Any]) -> list[str]:
    """One line per task: each setting and metric, before -> after, and the data that chose them."""
    data = record["data"]
    lines = []
    for name, choice in record["tasks"].items():
        changes = [
            f"{key} {_number(value['before'])} -> {_number(value['after'])}"
            for key, value in choice.items()
            if isinstance(value, Mapping) and set(value) == {"before", "after"}
        ]
        lines.append(f"{name}: {', '.join(changes)} (on {data['images']} images of {data['path']})")
    return lines


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def same_folder(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
