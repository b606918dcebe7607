"""Folder dataset -> training tensors: targets from each task, resized to the model's input, with
label-consistent augmentation (each task says how its target resizes, flips and zooms out)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from onepass.data.folder import DatasetError, FolderDataset
from onepass.data.image import resize_to_input
from onepass.models.tasks.base import Task
from onepass.train.config import Augmentation  # a config section (no torch there): defined with the options


class TaskDataset(torch.utils.data.Dataset):
    """Items: {"image": (3, H, W) uint8, <task>: target tensor (or dict of tensors), "index": int}.

    Augmentation randomness comes from (seed, epoch, index), never from global state, so a resumed
    run sees exactly the samples it would have seen.
    """

    def __init__(
        self,
        folder: FolderDataset,
        tasks: Sequence[Task],
        input_size: tuple[int, int],
        augmentation: Augmentation | None = None,
        seed: int = 0,
    ):
        self.folder = folder
        self.tasks = list(tasks)
        self.input_size = input_size
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0

    @classmethod
    def from_folder(
        cls,
        path: str | os.PathLike,
        tasks: Sequence[Task],
        input_size: tuple[int, int],
        augmentation: Augmentation | None = None,
        seed: int = 0,
    ) -> TaskDataset:
        """The folder dataset at `path`, its labels read with each task's codec."""
        folder = FolderDataset(path, {t.name: t.codec for t in tasks if t.codec is not None})
        return cls(folder, tasks, input_size, augmentation, seed)

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.folder[index]
        size = sample.image.shape[:2]
        source = f"{self.folder.root}: sample {sample.id!r}"
        targets = {}
        for task in self.tasks:
            try:
                targets[task.name] = task.target(task.label(sample), size, source)
            except ValueError as error:
                raise DatasetError(str(error)) from None
        image = resize_to_input(sample.image, self.input_size)
        targets = {t.name: t.resize_target(targets[t.name], self.input_size) for t in self.tasks}
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, targets = augment(image, targets, self.tasks, self.augmentation, rng)
        item = {"image": as_tensor(image.transpose(2, 0, 1)), "index": torch.tensor(index)}
        for name, target in targets.items():
            item[name] = as_tensor(target)
        return item


def as_tensor(target: Any) -> Any:
    """An array (or a dict of arrays, as instance targets are) -> tensors that default collation stacks."""
    if isinstance(target, dict):
        return {k: as_tensor(v) for k, v in target.items()}
    return torch.from_numpy(np.require(target, requirements=["C", "W"]))  # decoded PNGs are read-only


def to_device(target: Any, device: torch.device | str) -> Any:
    """A batched target (a tensor, or a dict of them) on `device`."""
    if isinstance(target, dict):
        return {k: to_device(v, device) for k, v in target.items()}
    return target.to(device, non_blocking=True)


def augment(
    image: np.ndarray,
    targets: dict[str, np.ndarray],
    tasks: Sequence[Task],
    config: Augmentation,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    height, width = image.shape[:2]
    if config.flip and rng.random() < 0.5:
        image = image[:, ::-1]
        targets = {t.name: t.flip_target(targets[t.name]) for t in tasks}
    zoom = rng.uniform(config.min_zoom, 1.0)
    if zoom < 0.99:
        inner = (max(1, round(height * zoom)), max(1, round(width * zoom)))
        top, left = int(rng.integers(0, height - inner[0] + 1)), int(rng.integers(0, width - inner[1] + 1))
        canvas = np.empty_like(image)
        canvas[:] = image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
        canvas[top : top + inner[0], left : left + inner[1]] = resize_to_input(np.ascontiguousarray(image), inner)
        image = canvas
        targets = {t.name: t.zoom_target(targets[t.name], inner, (top, left), (height, width)) for t in tasks}
    if config.colour > 0:
        image = jitter_colour(image, config.colour, rng)
    return image, targets


def jitter_colour(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32)  # (H, W, 3)
    brightness, contrast, saturation = 1.0 + rng.uniform(-amount, amount, size=3)
    gray = x.mean(axis=2, keepdims=True)
    x = gray + (x - gray) * saturation
    x = (x - x.mean()) * contrast + x.mean() * brightness
    return np.clip(x, 0, 255).astype(np.uint8)
