"""`onepass train`: one loop for every architecture, task set and loss balancer.

Resumable bit-for-bit on CPU: the sample order comes from (seed, epoch), augmentation from
(seed, epoch, index), and the checkpoint holds model, optimiser, balancer, scaler and RNG states.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import platform
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import onepass
from onepass.data.folder import DatasetDescription, DatasetError
from onepass.data.progress import progress_bar
from onepass.errors import ConfigError, unknown_name_error
from onepass.models.architectures import initial_predictions
from onepass.models.model import ModelConfig, MultiTaskModel, normalise
from onepass.models.package import ModelPackage, save_metrics, save_package
from onepass.models.tasks.base import TASK_TYPES, Task
from onepass.train.balancers import LossBalancer, build_balancer
from onepass.train.calibrate import calibrate, has_settings_to_calibrate
from onepass.train.config import ModelOptions, OptimizerOptions, TrainConfig
from onepass.train.dataset import TaskDataset, to_device
from onepass.train.distributed import ProcessGroup, average_parameters, barrier, init_process_group
from onepass.train.evaluate import (
    Metrics,
    data_description,
    dataset_provenance,
    evaluate,
    evaluate_dataset,
    fit_constant_predictor,
)
from onepass.train.initial_weights import InitialWeights, load_initial_weights

CHECKPOINT_FORMAT = "onepass-checkpoint"
CHECKPOINT_VERSION = 1
# Decoded, resized training samples kept in memory across epochs, split among the loader's workers:
# a 128x160 sample with semseg, depth, normals and people takes about 0.41 MB, so 3,000 take 1.2 GB.
# Decoding them again every epoch cost about 5 of the 9 ms a sample takes to prepare.
SAMPLE_CACHE_BYTES = 2 * 1024**3
RUN_DIR = "train"  # inside the package: checkpoint.pt, log.jsonl (not part of the shipped package)


def tasks_for_dataset(
    names: tuple[str, ...], description: DatasetDescription, task_options: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[Task, ...]:
    """Each task as the dataset describes it (its classes), then with the config's `task_options` for it."""
    tasks = []
    for name in names:
        if name not in TASK_TYPES:
            raise unknown_name_error("task", name, list(TASK_TYPES))
        task = TASK_TYPES[name].from_dataset(description)
        options = {k: _frozen(v) for k, v in (task_options or {}).get(name, {}).items()}
        tasks.append(dataclasses.replace(task, **options) if options else task)  # the task validates them
    return tuple(tasks)


def _frozen(value: Any) -> Any:
    """A config's lists as the tasks' tuples (their fields are frozen)."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _frozen(v) for k, v in value.items()}
    return value


# Model options the Trainer applies itself rather than the ModelConfig: the package's config never
# names a weights file or package (loading the package must not need it; training.pretrained_file and
# training.init_from record them). task_options are in the tasks themselves.
TRAINER_MODEL_OPTIONS = ("pretrained_file", "init_from", "task_options")


def model_config(options: ModelOptions, tasks: tuple[Task, ...]) -> ModelConfig:
    """The package's ModelConfig: every model option but TRAINER_MODEL_OPTIONS (task names become the
    dataset's tasks)."""
    skipped = ("tasks", *TRAINER_MODEL_OPTIONS)
    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name not in skipped}
    return ModelConfig(tasks=tasks, **values)


class EpochSampler(torch.utils.data.Sampler[tuple[int, int]]):
    """A permutation drawn from (seed, epoch), this rank's share of it, whole batches only,
    optionally skipping the batches a resumed run has already done. It yields (epoch, index) keys
    (TaskDataset's), so that one loader with persistent workers serves every epoch: `set_epoch`
    before each pass."""

    def __init__(self, size: int, batch_size: int, seed: int, group: ProcessGroup):
        self.size, self.batch_size, self.seed, self.group = size, batch_size, seed, group
        self.set_epoch(0)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.size, generator=generator)[self.group.rank :: self.group.world_size]
        usable = len(order) // self.batch_size * self.batch_size
        self.epoch = epoch
        self.indices = order[skip_batches * self.batch_size : usable].tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def learning_rate_factor(config: OptimizerOptions, step: int, total_steps: int) -> float:
    warmup = min(config.warmup_steps, max(total_steps // 5, 1))
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(total_steps - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def parameter_groups(config: OptimizerOptions, model: MultiTaskModel, balancer: LossBalancer) -> list[dict[str, Any]]:
    """Shared encoder/decoder, each task's own parameters and the balancer's, each with its lr."""
    shared_lr = config.lr_shared if config.lr_shared is not None else config.lr
    groups = [{"name": "shared", "params": model.shared_parameters(), "lr": shared_lr}]
    for task in model.config.tasks:
        groups.append(
            {
                "name": task.name,
                "params": model.task_parameters(task.name),
                "lr": config.lr_tasks.get(task.name, config.lr),
            }
        )
    if balancer.model_parameters():
        groups.append({"name": "balancer", "params": balancer.model_parameters(), "lr": config.lr, "weight_decay": 0.0})
    for group in groups:
        group["base_lr"] = group["lr"]
    return groups


def build_optimizer(config: OptimizerOptions, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, nesterov=True)


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA GPU is available here; use --device cpu")
    return device


@dataclass
class TrainingState:
    step: int = 0
    epoch: int = 0
    wall_time: float = 0.0
    # running sums of this epoch's losses: checkpointed, so that a run resumed mid-epoch hands DWA
    # the same epoch means as an uninterrupted one
    loss_sums: dict[str, float] = field(default_factory=dict)
    loss_counts: dict[str, int] = field(default_factory=dict)


class Trainer:
    def __init__(self, config: TrainConfig, progress: bool = True):
        self.config = config
        self.progress = progress
        self.out = Path(config.run.out)
        self.run_dir = self.out / RUN_DIR
        device = choose_device(config.run.device)
        self.group = init_process_group(device)
        if device.type == "cuda":
            device = torch.device("cuda", self.group.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        torch.manual_seed(config.run.seed)
        # The balancer first: its options' values are checked before any data is read.
        self.balancer = build_balancer(config.balancer.name, config.model.tasks, **config.balancer.options).to(device)
        self.balancer.check_world_size(self.group.world_size)

        data = config.data
        if not Path(data.path).is_dir():
            raise DatasetError(f"{data.path}: dataset folder does not exist")
        description = DatasetDescription.load(Path(data.path))
        self.tasks = tasks_for_dataset(config.model.tasks, description, config.model.task_options)
        input_size = config.model.input_size
        augmentation = data.augmentation if data.augment else None
        self.train_set = TaskDataset.from_folder(data.path, self.tasks, input_size, augmentation, config.run.seed)
        self.train_folder = self.train_set.folder
        self.val_set = TaskDataset.from_folder(data.val_path, self.tasks, input_size) if data.val_path else None
        # read now, so that a wrong folder fails before the training rather than after it
        calibration = config.calibration
        self.calibration_set = None
        if calibration.calibrate and has_settings_to_calibrate(self.tasks):
            folder = calibration.path
            self.calibration_set = (
                TaskDataset(self.train_folder, self.tasks, input_size)  # the training images, not augmented
                if folder is None
                else TaskDataset.from_folder(folder, self.tasks, input_size)
            )

        self.model = MultiTaskModel(model_config(config.model, self.tasks))
        # before the optimiser and DDP see the parameters; a resumed run's checkpoint then replaces them
        weights = config.model.pretrained_file
        self.pretrained_source = self.model.encoder.load_pretrained_file(weights) if weights else None
        self.initial_weights: InitialWeights | None = None  # init_from: read by `fit` at step 0, never on resume
        self.model = self.model.to(device).to(memory_format=torch.channels_last)
        groups = parameter_groups(config.optimizer, self.model, self.balancer)
        self.optimizer = build_optimizer(config.optimizer, groups)
        self.network: nn.Module = self.model
        if self.group.enabled:
            self.network = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )

        self.amp_dtype = None
        if device.type == "cuda" and config.run.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        batch_size = config.optimizer.batch_size
        self.steps_per_epoch = len(self.train_folder) // (batch_size * self.group.world_size)
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"{data.path}: {len(self.train_folder)} images cannot fill one batch of {batch_size} "
                f"per process ({self.group.world_size} processes); lower batch_size"
            )
        self.total_steps = config.run.steps or config.run.epochs * self.steps_per_epoch
        self.state = TrainingState()
        self._loader: torch.utils.data.DataLoader | None = None

    # ---- checkpoints ----------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        if not self.group.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": json.dumps(self.config.to_json(), sort_keys=True),
            "step": self.state.step,
            "epoch": self.state.epoch,
            "wall_time": self.state.wall_time,
            "loss_sums": self.state.loss_sums,
            "loss_counts": self.state.loss_counts,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "balancer": self.balancer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "pretrained_file": json.dumps(self.pretrained_source.to_json() if self.pretrained_source else None),
            "init_from": json.dumps(self.initial_weights.to_json() if self.initial_weights else None),
        }
        temporary = self.checkpoint_path.with_suffix(".tmp")
        torch.save(checkpoint, temporary)
        temporary.replace(self.checkpoint_path)  # a killed run never leaves half a checkpoint

    def load_checkpoint(self) -> None:
        path = self.checkpoint_path
        if not path.is_file():
            raise ConfigError(f"{path}: no checkpoint to resume from (train once without --resume)")
        checkpoint = torch.load(path, map_location=self.device, weights_only=True)  # never unpickle code
        if checkpoint.get("format") != CHECKPOINT_FORMAT or checkpoint.get("version") != CHECKPOINT_VERSION:
            raise ConfigError(f"{path}: not an onepass checkpoint of version {CHECKPOINT_VERSION}")
        conflicts = self.config.resume_conflicts(json.loads(checkpoint["config"]))
        if conflicts:
            differences = ", ".join(
                f"{key} {current!r} (the checkpoint's: {saved!r})"
                for key, (current, saved) in sorted(conflicts.items())
            )
            raise ConfigError(
                f"{path}: cannot resume with a different {differences}; "
                "resume with the checkpoint's values, or train into another --out"
            )
        started_from = json.loads(checkpoint.get("pretrained_file", "null"))
        if self.pretrained_source is not None and (started_from or {}).get("sha256") != self.pretrained_source.sha256:
            raise ConfigError(
                f"{path}: the run started from another pretrained file (SHA-256 {(started_from or {}).get('sha256')}) "
                f"than {self.pretrained_source.path} is now ({self.pretrained_source.sha256}); resume with that file"
            )
        started = json.loads(checkpoint.get("init_from", "null"))  # the package is not read again: these weights win
        self.initial_weights = InitialWeights(**started) if started else None
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.balancer.load_state_dict(checkpoint["balancer"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        torch.set_rng_state(checkpoint["torch_rng"].cpu())
        self.state = TrainingState(
            checkpoint["step"],
            checkpoint["epoch"],
            checkpoint["wall_time"],
            checkpoint["loss_sums"],
            checkpoint["loss_counts"],
        )
        if self.total_steps < self.state.step:  # it would stop at once, yet record the shorter run
            raise ConfigError(
                f"{path}: the checkpoint is at step {self.state.step}, past this run's {self.total_steps} steps; "
                f"resume with --steps (or --epochs) of at least {self.state.step}"
            )

    # ---- the loop -------------------------------------------------------------------------
    def loader(self, epoch: int, skip_batches: int) -> torch.utils.data.DataLoader:
        """The training batches of `epoch`, after the first `skip_batches`. One loader serves the
        whole run: its workers persist, and with them each one's cache of decoded samples."""
        if self._loader is None:
            workers = self.config.data.num_workers
            self.train_set.cache_bytes = SAMPLE_CACHE_BYTES // max(workers, 1)  # each worker caches what it reads
            self._loader = torch.utils.data.DataLoader(
                self.train_set,
                batch_size=self.config.optimizer.batch_size,
                sampler=EpochSampler(
                    len(self.train_set), self.config.optimizer.batch_size, self.config.run.seed, self.group
                ),
                num_workers=workers,
                persistent_workers=workers > 0,
                drop_last=True,
                pin_memory=self.device.type == "cuda",
            )
        self._loader.sampler.set_epoch(epoch, skip_batches)
        return self._loader

    def close_loader(self) -> None:
        """Ends the loader's workers and frees their caches (a study trains many runs in one process)."""
        self._loader = None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        images = batch["image"].to(self.device, non_blocking=True)
        x = normalise(images, self.model.config.mean, self.model.config.std).contiguous(
            memory_format=torch.channels_last
        )
        targets = {task.name: to_device(batch[task.name], self.device) for task in self.tasks}
        losses = self.task_losses(x, targets)
        if not losses:  # no task labelled in this batch: nothing to learn from it
            return {}
        self.optimizer.zero_grad(set_to_none=True)
        total = self.balancer.backward(losses, self.model, self.scaler)  # the balancer owns the backward pass
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.balancer.after_step(lambda: self.recomputed_losses(x, targets))  # FAMO only calls it
        average_parameters(list(self.balancer.parameters()), self.group)
        return {"total": float(total), **{name: float(loss.detach()) for name, loss in losses.items()}}

    def task_losses(self, x: torch.Tensor, targets: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The loss of every task labelled in this batch."""
        with self.autocast():
            raw = self.network(x)
        losses = {}
        for task in self.tasks:
            loss = task.loss(raw[task.name], targets[task.name])
            initial = initial_predictions(raw, task.name)  # deep supervision (padnet, mtinet)
            if loss is not None and initial:
                loss = loss + sum(task.loss(value, targets[task.name]) for value in initial) / len(initial)
            if loss is not None:
                losses[task.name] = loss
        return losses

    def recomputed_losses(self, x: torch.Tensor, targets: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The same batch's losses after the step, in train mode, without grad and without a second
        update of BatchNorm's running statistics (for balancers that learn from the step's effect)."""
        buffers = [b.clone() for b in self.model.buffers()]
        with torch.no_grad():
            losses = self.task_losses(x, targets)
            for buffer, saved in zip(self.model.buffers(), buffers, strict=True):
                buffer.copy_(saved)
        return losses

    def set_learning_rate(self) -> None:
        factor = learning_rate_factor(self.config.optimizer, self.state.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor

    def fit(self, resume: bool = False, stop_after: int | None = None) -> ModelPackage | None:
        """Train to `total_steps` (or stop after `stop_after` steps of this run, checkpointing) and
        write the package. Returns None when stopped early."""
        if resume:
            self.load_checkpoint()
        elif self.checkpoint_path.exists():
            raise ConfigError(
                f"{self.out}: already holds a training run ({self.checkpoint_path}); "
                "continue it with --resume, or choose another --out"
            )
        elif self.config.model.init_from:
            # in place, before the first step: the optimiser (and DDP) hold these very parameters
            self.initial_weights = load_initial_weights(self.model, self.config.model.init_from)
        if self.group.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        steps_this_run = 0
        progress = progress_bar(
            total=self.total_steps, initial=self.state.step, desc="train", unit="step",
            enabled=self.progress and self.group.is_main,
        )  # fmt: skip
        self.model.train()
        while self.state.step < self.total_steps:
            epoch = self.state.epoch
            done_in_epoch = self.state.step - epoch * self.steps_per_epoch
            if done_in_epoch == 0:
                self.state.loss_sums, self.state.loss_counts = {}, {}
            sums, counts = self.state.loss_sums, self.state.loss_counts
            started = time.perf_counter()
            for batch in self.loader(epoch, done_in_epoch):
                self.set_learning_rate()
                tick = time.perf_counter()
                losses = self.train_step(batch)
                self.state.step += 1
                steps_this_run += 1
                self.state.wall_time += time.perf_counter() - tick
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value
                    counts[name] = counts.get(name, 0) + 1
                images_per_second = (
                    self.config.optimizer.batch_size * self.group.world_size / max(time.perf_counter() - tick, 1e-9)
                )
                progress.update(1)
                run = self.config.run
                if losses and (self.state.step % run.log_every == 0 or self.state.step == self.total_steps):
                    progress.set_postfix(loss=f"{losses['total']:.3f}", img_s=f"{images_per_second:.0f}", epoch=epoch)
                if self.state.step % run.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.state.step >= self.total_steps or (stop_after is not None and steps_this_run >= stop_after):
                    break
            epoch_finished = (
                self.state.step == (epoch + 1) * self.steps_per_epoch or self.state.step >= self.total_steps
            )
            if epoch_finished:
                means = {k: sums[k] / counts[k] for k in sums}  # the tasks seen this epoch, and "total"
                self.balancer.end_epoch({k: v for k, v in means.items() if k != "total"})
                self.state.epoch += 1
                self.log_epoch(epoch, means, time.perf_counter() - started)
            if stop_after is not None and steps_this_run >= stop_after and self.state.step < self.total_steps:
                self.save_checkpoint()
                progress.close()
                self.close_loader()
                return None
        progress.close()
        self.close_loader()
        self.save_checkpoint()
        return self.finish()

    def log_epoch(self, epoch: int, mean_losses: dict[str, float], seconds: float) -> None:
        due = (epoch + 1) % self.config.run.val_every == 0 or self.state.step >= self.total_steps
        metrics = self.evaluate_val() if self.val_set is not None and due else None
        if not self.group.is_main:
            return
        record = {
            "epoch": epoch,
            "step": self.state.step,
            "seconds": round(seconds, 2),
            "loss": mean_losses,
            "weights": self.balancer.weights(),
            "lr": {g["name"]: g["lr"] for g in self.optimizer.param_groups},
            "val": metrics,
        }
        with (self.run_dir / "log.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def evaluate_val(self) -> Metrics | None:
        if self.val_set is None or not self.group.is_main:
            return None
        return evaluate_dataset(
            self.model,
            self.val_set,
            self.config.optimizer.batch_size,
            self.config.data.num_workers,
            self.device,
            self.progress,
        )

    def finish(self) -> ModelPackage | None:
        barrier(self.group)
        if not self.group.is_main:
            return None
        calibration = self.calibrate() if self.calibration_set is not None else None
        training = {**self.provenance(), **({"calibration": calibration} if calibration else {})}
        package = save_package(self.out, self.model, self.config.run.name or self.out.name, training=training)
        if self.val_set is not None:
            metrics = self.evaluate_val()
            trivial = self.trivial_baselines()
            description = data_description(self.config.data.val_path, len(self.val_set))
            save_metrics(self.out, metrics, description, baselines={"trivial": trivial})
        return package

    def calibrate(self) -> dict[str, Any]:
        """The tasks' decision settings, chosen on the calibration set; the model's config (and so the
        package, and the held-out metrics scored after this) takes them. Returns the record."""
        try:
            result = calibrate(
                self.model,
                self.calibration_set,
                self.config.calibration.images,
                self.config.optimizer.batch_size,
                self.config.data.num_workers,
                self.device,
                self.progress,
            )
        except DatasetError as error:  # the training is done and checkpointed: say how to keep it
            raise DatasetError(
                f"{error}; the trained model is in {self.checkpoint_path}: finish the run with --resume and "
                "another --calibration-data, or with --no-calibrate"
            ) from None
        self.model.config = result.config  # the weights stay; only post-processing settings changed
        self.tasks = result.config.tasks
        return result.record

    def trivial_baselines(self) -> Metrics:
        """Majority class / mean depth / most common normal / majority attribute, fit on the training
        set and scored on the validation set like the model."""
        plain = TaskDataset(self.train_folder, self.tasks, self.config.model.input_size)
        constant = fit_constant_predictor(torch.utils.data.DataLoader(plain, batch_size=32), self.tasks)
        loader = torch.utils.data.DataLoader(self.val_set, batch_size=self.config.optimizer.batch_size)
        return evaluate(constant, loader, self.tasks, self.model.config.mean, self.model.config.std, "cpu", False)

    def provenance(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(),
            "steps": self.state.step,
            "epochs": self.state.epoch,
            "train_images": len(self.train_folder),
            "train_data": dataset_provenance(self.config.data.path),
            "seconds": round(self.state.wall_time, 1),
            "processes": self.group.world_size,
            "device": str(self.device),
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv) if sys.argv else None,
            "versions": {
                "onepass": onepass.__version__,
                "torch": torch.__version__,
                "timm": timm.__version__,
                "python": platform.python_version(),
            },
            "balancer_weights": self.balancer.weights(),
            # the encoder's starting weights: the package holds them now, so loading it never needs the file
            "pretrained_file": self.pretrained_source.to_json() if self.pretrained_source else None,
            # the whole model's starting weights (init_from); the package holds them now, too
            "init_from": self.initial_weights.to_json() if self.initial_weights else None,
        }


def train(
    config: TrainConfig, resume: bool = False, progress: bool = True, stop_after: int | None = None
) -> ModelPackage | None:
    """Train a model package from `config`; see `Trainer.fit`."""
    return Trainer(config, progress).fit(resume=resume, stop_after=stop_after)
