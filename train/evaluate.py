"""Evaluation: pooled metrics over a whole dataset, trivial baselines, and Δ_MTL."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from onepass.data.progress import progress_bar
from onepass.models.inference_graph import InferenceGraph
from onepass.models.model import MultiTaskModel, normalise
from onepass.models.panel import Row, Tile, compose, picture_tiles
from onepass.models.tasks.base import Calibrator, Metric, Task
from onepass.train.dataset import TaskDataset, to_device

Metrics = dict[str, dict[str, float]]  # task -> metric -> value


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Mapping[str, Tensor]],
    tasks: Sequence[Task],
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Metrics:
    """Every metric is pooled over all labelled pixels/images of the set (never a mean of batch means),
    and scores the post-processed outputs, as every backend returns them."""
    accumulators = {t.name: t.new_metric() for t in tasks}
    accumulate(model, batches, tasks, accumulators, mean, std, device, progress, "evaluate")
    return {name: accumulator.compute() for name, accumulator in accumulators.items()}


@torch.no_grad()
def accumulate(
    model: nn.Module,
    batches: Iterable[Mapping[str, Tensor]],
    tasks: Sequence[Task],
    accumulators: Mapping[str, Metric | Calibrator],
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "evaluate",
) -> None:
    """One pass of `model` (in eval mode) over `batches`: each task's post-processed outputs and targets
    go to its accumulator (a metric, or a calibrator), for the tasks that have one."""
    was_training = model.training
    model.eval()
    for batch in progress_bar(batches, desc=desc, unit="batch", enabled=progress, leave=False):
        raw = model(normalise(batch["image"].to(device), mean, std))
        for task in tasks:
            if task.name in accumulators:
                outputs = task.postprocess(raw[task.name].float())
                accumulators[task.name].update(outputs, to_device(batch[task.name], device))
    model.train(was_training)


def evaluate_dataset(
    model: MultiTaskModel,
    dataset: TaskDataset,
    batch_size: int = 16,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Metrics:
    """`evaluate` a model on a whole dataset, with its own tasks and normalisation: the held-out
    evaluation of training and `onepass eval` alike."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    config = model.config
    return evaluate(model, loader, config.tasks, config.mean, config.std, device, progress)


def data_description(path: str | os.PathLike, images: int) -> dict[str, Any]:
    """The "data" of a metrics document: the folder, how many images were scored, and what made them."""
    return {"path": str(path), "images": images, **dataset_provenance(path)}


def dataset_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """What made the data, when the folder says so: `onepass data synth` writes synth.json, and
    `onepass data convert sequence-frames` records the frames it added in sequence_frames.json."""
    from onepass.data.convert.sequence_frames import SEQUENCE_FRAMES_FILE, read_sequence_frames_record

    provenance: dict[str, Any] = {}
    origin = Path(path) / "synth.json"
    if origin.is_file():
        provenance["synth"] = json.loads(origin.read_text())
    frames = Path(path) / SEQUENCE_FRAMES_FILE
    if frames.is_file():
        provenance["sequence_frames"] = read_sequence_frames_record(frames)["added"]
    return provenance


def delta_mtl(results: Metrics, baselines: Metrics, tasks: Sequence[Task]) -> float:
    """Δ_MTL (Maninis et al. 2019; Vandenhende et al. 2021), in percent, positive = better:

        Δ_MTL = 1/T Σ_t  1/|M_t| Σ_{m ∈ M_t}  (-1)^{l_m} (M_{t,m} - B_{t,m}) / B_{t,m} × 100

    where B is the single-task baseline's value of metric m of task t and l_m = 1 when lower is
    better for m. Only metrics present (and non-zero) in both results and baselines count.
    """
    per_task = []
    for task in tasks:
        if task.name not in results or task.name not in baselines:
            raise KeyError(f"Δ_MTL needs both results and a baseline for task {task.name!r}")
        changes = []
        for metric, higher_is_better in task.metric_directions().items():
            value, base = results[task.name].get(metric), baselines[task.name].get(metric)
            if value is None or base is None or base == 0 or math.isnan(value) or math.isnan(base):
                continue
            sign = 1.0 if higher_is_better else -1.0
            changes.append(sign * (value - base) / abs(base) * 100.0)
        if not changes:
            raise ValueError(f"Δ_MTL: no comparable metric for task {task.name!r}")
        per_task.append(sum(changes) / len(changes))
    return sum(per_task) / len(per_task)


class ConstantPredictor(nn.Module):
    """The trivial baselines as a "model": majority class, mean depth, most common normal,
    majority class per attribute group, nobody in the picture — all estimated on a training set."""

    def __init__(self, tasks: Sequence[Task], constants: Mapping[str, Tensor]):
        super().__init__()
        self.tasks = list(tasks)
        self.constants = dict(constants)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        batch, _, height, width = x.shape
        return {t.name: t.constant_raw(self.constants[t.name], batch, (height, width)) for t in self.tasks}


@torch.no_grad()
def fit_constant_predictor(
    batches: Iterable[Mapping[str, Tensor]], tasks: Sequence[Task], max_images: int = 256
) -> ConstantPredictor:
    """Each task's trivial constant (`Task.constant_output`), estimated on up to `max_images`
    training images — plenty for a majority class or a mean."""
    collected: dict[str, list[Tensor]] = {t.name: [] for t in tasks}
    seen = 0
    for batch in batches:
        for task in tasks:
            collected[task.name].append(batch[task.name])
        seen += len(batch["image"])
        if seen >= max_images:
            break
    return ConstantPredictor(tasks, {t.name: t.constant_output(concatenate(collected[t.name])) for t in tasks})


def concatenate(batches: Sequence[Any]) -> Any:
    """Batched targets (tensors, or dicts of them) -> one batch."""
    if isinstance(batches[0], dict):
        return {k: concatenate([b[k] for b in batches]) for k in batches[0]}
    return torch.cat(list(batches))


@torch.no_grad()
def prediction_panel(model: MultiTaskModel, dataset: Sequence[Mapping[str, Tensor]], count: int) -> Image.Image:
    """The first `count` images of `dataset`: input, then truth and prediction per dense task, each
    with its key, and the predicted image-level results beside the true ones."""
    tasks = model.config.tasks
    graph = InferenceGraph(model).eval()
    rows = []
    for index in range(min(count, len(dataset))):
        item = dataset[index]
        image = item["image"].permute(1, 2, 0).numpy()  # (H, W, 3) uint8
        outputs = {k: v[0].numpy() for k, v in graph(torch.from_numpy(image)[None]).items()}
        size = image.shape[:2]
        predicted = {t.name: t.to_result(outputs, size) for t in tasks}
        truth = {t.name: item[t.name].numpy() for t in tasks if t.codec is not None}  # labels drawn as maps
        tiles = [Tile("input", image)]
        for true_tile, predicted_tile in zip(
            picture_tiles(image, truth, tasks, "true"), picture_tiles(image, predicted, tasks, "predicted"), strict=True
        ):
            tiles += [true_tile, predicted_tile]
        text = []
        for task in tasks:
            if lines := task.describe(predicted[task.name]):
                text += [
                    (f"{task.name} predicted", lines),
                    (f"{task.name} true", task.describe_target(item[task.name])),
                ]
        rows.append(Row(tiles, text))
    return compose(rows)
