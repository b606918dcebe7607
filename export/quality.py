"""What a precision costs in the user's terms: the task metrics (mIoU, RMSE, mean angle, accuracy)
of an exported graph next to the PyTorch fp32 model's, on the same held-out images.

The images are held-out synthetic scenes for models that speak the synthetic scenes' labels (the
shipped model and anything trained on `onepass data synth`), or a folder dataset the user gives.
Any backend's post-processed outputs are scored with the training metrics (which score
post-processed outputs), so an export is measured exactly as `onepass eval` measures the model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from onepass.data.synth import render_scene
from onepass.data.synth_dataset import SYNTHETIC_DESCRIPTION, scene_sample
from onepass.export.formats import ExportError
from onepass.export.parity import GraphRunner, onnx_runner, torch_runner
from onepass.models.package import ModelPackage
from onepass.train.dataset import as_tensor

QUALITY_SEED = 20261124  # not the parity scenes' seed, nor any training seed the scripts use
QUALITY_SCENES = 96
BATCH = 16

Metrics = dict[str, dict[str, float]]
Examples = tuple[np.ndarray, dict[str, torch.Tensor]]  # (N, H, W, 3) uint8 images, each task's targets


def speaks_synthetic_labels(package: ModelPackage) -> bool:
    """Whether every task's labels mean what the synthetic scenes' do (so they can score it)."""
    return all(task.reads_labels_of(SYNTHETIC_DESCRIPTION) for task in package.config.tasks)


def held_out_scenes(package: ModelPackage, count: int = QUALITY_SCENES) -> Examples:
    """Synthetic scenes at the model's input size that no training script renders."""
    if not speaks_synthetic_labels(package):
        raise ExportError(
            f"{package.path}: its classes or attribute groups are not the synthetic scenes', so they cannot "
            "measure it: give a labelled folder dataset with --eval-data DIR"
        )
    height, width = package.config.input_size
    scenes = [render_scene(np.random.default_rng([QUALITY_SEED, i]), height, width) for i in range(count)]
    samples = [scene_sample(scene, f"scene {i}") for i, scene in enumerate(scenes)]
    targets = {
        task.name: default_collate([as_tensor(task.target(task.label(s), (height, width), s.id)) for s in samples])
        for task in package.config.tasks
    }
    return np.stack([scene.image for scene in scenes]), targets


def folder_examples(package: ModelPackage, root: str | os.PathLike, count: int | None = None) -> Examples:
    """The first `count` images of a folder dataset (all by default), resized as in `onepass eval`."""
    from onepass.data.folder import FolderDataset
    from onepass.train.dataset import TaskDataset

    tasks = package.config.tasks
    folder = FolderDataset(Path(root), {t.name: t.codec for t in tasks if t.codec is not None})
    dataset = TaskDataset(folder, tasks, package.config.input_size)
    items = [dataset[i] for i in range(len(dataset) if count is None else min(count, len(dataset)))]
    images = np.stack([item["image"].permute(1, 2, 0).numpy() for item in items])
    return images, {t.name: default_collate([item[t.name] for item in items]) for t in tasks}


def graph_metrics(package: ModelPackage, run: GraphRunner, examples: Examples) -> Metrics:
    """The task metrics of a graph runner (any backend's `run`) on the examples."""
    images, targets = examples
    metrics = {task.name: task.new_metric() for task in package.config.tasks}
    for start in range(0, len(images), BATCH):
        outputs = {k: torch.from_numpy(np.asarray(v)) for k, v in run(images[start : start + BATCH]).items()}
        for task in package.config.tasks:
            metrics[task.name].update(outputs, batch_slice(targets[task.name], slice(start, start + BATCH)))
    return {name: metric.compute() for name, metric in metrics.items()}


def precision_metrics(
    package: ModelPackage, onnx_path: str | os.PathLike, examples: Examples | None = None
) -> dict[str, Metrics]:
    """{"pytorch fp32": metrics, "<file name>": metrics}: one run, the same images (by default the
    held-out synthetic scenes)."""
    examples = held_out_scenes(package) if examples is None else examples
    return {
        "pytorch fp32": graph_metrics(package, torch_runner(package), examples),
        os.path.basename(onnx_path): graph_metrics(package, onnx_runner(onnx_path), examples),
    }


def batch_slice(target, rows: slice):
    """Rows of a batched target (a tensor, or a dict of them)."""
    if isinstance(target, dict):
        return {k: batch_slice(v, rows) for k, v in target.items()}
    return target[rows]
