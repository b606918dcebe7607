"""Tiny models and tiny datasets, so the whole suite runs on 2 CPU cores."""

from __future__ import annotations

import numpy as np

from onepass.data.codecs import DepthPngCodec, IndexedPngCodec, NormalsPngCodec
from onepass.data.folder import DatasetDescription, DatasetWriter
from onepass.models.model import ModelConfig
from onepass.models.tasks import AttributesTask, DepthTask, NormalsTask, PeopleTask, SaliencyTask, SemsegTask

TINY_ENCODER = "test_efficientnet"  # timm's 82k-parameter test model: real code path, instant
CLASSES = ("floor", "wall", "person")
GROUPS = {"people": ("0", "1", "2"), "facing": ("no", "yes")}
CODECS = {"semseg": IndexedPngCodec(), "depth": DepthPngCodec(), "normals": NormalsPngCodec()}


PERSON_ATTRIBUTES = {"age_group": ("child", "adult"), "gender": ("female", "male"), "looking": ("no", "yes")}


def all_tasks() -> tuple:
    return (SemsegTask(CLASSES), DepthTask(), NormalsTask(), AttributesTask(GROUPS))


def every_task_type() -> tuple:
    """One tiny instance of every registered task type (the registry tests are parametrised over it)."""
    return (*all_tasks(), PeopleTask(PERSON_ATTRIBUTES, max_people=8), SaliencyTask())


def random_raw(task, batch: int, height: int, width: int):
    """A random raw head output of `task` for a batch whose maps are height x width."""
    import torch

    if task.kind == "image":
        return torch.randn(batch, task.out_channels)
    if task.kind == "instances":  # mostly below the score threshold, as a trained detector's map is
        return torch.randn(batch, task.out_channels, height, width) * 1.5 - 3.0
    return torch.randn(batch, task.out_channels, height, width)


def tiny_config(
    architecture: str = "shared-fpn", tasks: tuple | None = None, encoder: str = TINY_ENCODER
) -> ModelConfig:
    return ModelConfig(
        tasks=tasks or all_tasks(), encoder=encoder, architecture=architecture, decoder_channels=16, input_size=(64, 96)
    )


def random_labels(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, dict, dict]:
    """A random image with consistent-looking labels: class stripes, depth by row, one normal per class."""
    semseg = np.repeat((np.arange(height) * len(CLASSES) // height).astype(np.uint8)[:, None], width, axis=1)
    depth = (1.0 + np.arange(height, dtype=np.float32)[:, None] / height * 4.0).repeat(width, axis=1)
    normals_per_class = np.array([[0, 1, 0], [0, 0, 1], [0.6, 0, 0.8]], np.float32)
    normals = normals_per_class[semseg]
    image = (rng.random((height, width, 3)) * 60 + semseg[..., None] * 60).astype(np.uint8)
    attributes = {g: str(rng.choice(c)) for g, c in GROUPS.items()}
    return image, {"semseg": semseg, "depth": depth, "normals": normals}, attributes


def write_random_dataset(root, n: int = 8, size: tuple[int, int] = (48, 64), seed: int = 0, drop: dict | None = None):
    """A small folder dataset; `drop` = {task: [indices]} leaves those labels out."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root, DatasetDescription(CLASSES, GROUPS), CODECS)
    drop = drop or {}
    for i in range(n):
        image, dense, attributes = random_labels(rng, *size)
        dense = {k: v for k, v in dense.items() if i not in drop.get(k, ())}
        attributes = {} if i in drop.get("attributes", ()) else attributes
        writer.write(f"{i:04d}", image, dense, attributes)
    writer.close()
    return root
