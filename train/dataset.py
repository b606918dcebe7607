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
        # decoded, resized samples kept in memory (per process: each loader worker has its own),
        # up to this many bytes; the training loop sets it, for its persistent workers
        self.cache_bytes = 0
        self._cache: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
        self._cached_bytes = 0

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

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """`key` is an index (augmented for `self.epoch`) or (epoch, index), as EpochSampler yields:
        a persistent loader worker keeps its copy of the dataset, and learns the epoch from the key."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        image, targets = self.prepared(index)
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            image, targets = augment(image, targets, self.tasks, self.augmentation, rng)
        item = {"image": as_tensor(image.transpose(2, 0, 1)), "index": torch.tensor(index)}
        for name, target in targets.items():
            item[name] = as_tensor(target)
        return item

    def prepared(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Sample `index` decoded, its targets built, both at the model's input size, before any
        augmentation: from memory when cached. Cached arrays are read-only (augment copies them)."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
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
        arrays = [image, *flat_arrays(targets)]
        size_in_bytes = sum(a.nbytes for a in arrays)
        if self._cached_bytes + size_in_bytes <= self.cache_bytes:
            for array in arrays:
                array.setflags(write=False)  # a view of a decoded file may be read-only already
            self._cache[index] = (image, targets)
            self._cached_bytes += size_in_bytes
        return image, targets


def flat_arrays(target: Any) -> list[np.ndarray]:
    """The arrays of a target, or of a dict of targets (instance targets are dicts of arrays)."""
    if isinstance(target, dict):
        return [array for value in target.values() for array in flat_arrays(value)]
    return [target]


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
        canvas[:] = mean_colour(image).astype(np.uint8)
        canvas[top : top + inner[0], left : left + inner[1]] = resize_to_input(np.ascontiguousarray(image), inner)
        image = canvas
        targets = {t.name: t.zoom_target(targets[t.name], inner, (top, left), (height, width)) for t in tasks}
    if config.colour > 0:
        image = jitter_colour(image, config.colour, rng)
    return image, targets


def mean_colour(image: np.ndarray) -> np.ndarray:
    """The mean (R, G, B) of an (H, W, 3) image, float32 (a matrix product: numpy's reduction over
    the pixel axis of an interleaved image is several times slower)."""
    pixels = image.reshape(-1, 3).astype(np.float32)
    return np.full(len(pixels), 1.0 / len(pixels), np.float32) @ pixels


def jitter_colour(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Saturation about each pixel's grey, then contrast about the image's mean and brightness:
    x' = c (g + s (x - g)) + m (b - c), one affine map of x and its grey g, since saturating leaves
    the image's mean m as it was."""
    brightness, contrast, saturation = 1.0 + rng.uniform(-amount, amount, size=3)
    x = image.astype(np.float32)  # (H, W, 3)
    gray = x @ np.full(3, 1.0 / 3.0, np.float32)  # (H, W)
    mean = float(gray.mean())
    x *= contrast * saturation
    x += (gray * (contrast * (1.0 - saturation)) + mean * (brightness - contrast))[..., None]
    return np.clip(x, 0, 255, out=x).astype(np.uint8)
