"""End-to-end training on tiny data: package output, bit-for-bit resume, per-task LRs, torchrun DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from onepass.errors import ConfigError
from onepass.models import open_package
from onepass.models.architectures import initial_predictions
from onepass.models.model import normalise
from onepass.train.config import TrainConfig
from onepass.train.loop import Trainer, train
from tests.tiny import TINY_ENCODER, write_random_dataset

TASKS = ("semseg", "depth", "normals", "attributes")


def tiny_train_config(tmp_path, **overrides) -> TrainConfig:
    data = tmp_path / "train_data"
    if not data.exists():
        write_random_dataset(data, n=12, size=(64, 96))
        write_random_dataset(tmp_path / "val_data", n=4, size=(64, 96), seed=1)
    values = dict(
        data=str(data), val_data=str(tmp_path / "val_data"), out=str(tmp_path / "pkg"), encoder=TINY_ENCODER,
        decoder_channels=16, input_size=(64, 96), epochs=2, batch_size=4, num_workers=0, warmup_steps=2, log_every=1,
        device="cpu",  # tiny models run faster on the CPU, and only there is training deterministic
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig.from_mapping(values)


@pytest.mark.parametrize("architecture", ["shared-fpn", "hps"])
@pytest.mark.parametrize("balancer", ["fixed", "uncertainty", "gradnorm", "dwa"])
def test_train_writes_a_complete_package(tmp_path, architecture, balancer):
    config = tiny_train_config(tmp_path, architecture=architecture, balancer=balancer)
    package = train(config, progress=False)
    assert package is not None
    reopened = open_package(config.run.out)
    assert reopened.config.architecture == architecture
    assert reopened.training["steps"] == 6 and reopened.training["epochs"] == 2
    metrics = reopened.metrics
    assert set(metrics["metrics"]) == {"semseg", "depth", "normals", "attributes"}
    assert set(metrics["baselines"]["trivial"]) == set(metrics["metrics"])
    assert metrics["data"]["images"] == 4
    log = [json.loads(line) for line in (tmp_path / "pkg" / "train" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1]
    assert set(log[0]["weights"]) == set(metrics["metrics"])
    reopened.load_model()


@pytest.mark.parametrize("architecture", ["padnet", "mtinet"])
def test_decoder_centric_models_train_with_deep_supervision(tmp_path, architecture):
    trainer = Trainer(tiny_train_config(tmp_path, architecture=architecture, epochs=1), progress=False)
    batch = next(iter(trainer.loader(0, 0)))
    x = normalise(batch["image"], trainer.model.config.mean, trainer.model.config.std)
    targets = {task.name: batch[task.name] for task in trainer.tasks}
    torch.manual_seed(0)
    losses = trainer.task_losses(x, targets)
    torch.manual_seed(0)
    raw = trainer.model(x)  # the same forward pass: train mode, the same inputs
    for task in trainer.tasks:
        final = task.loss(raw[task.name], targets[task.name])
        initial = [task.loss(v, targets[task.name]) for v in initial_predictions(raw, task.name)]
        expected = final + sum(initial) / len(initial) if initial else final  # the initial losses' mean
        torch.testing.assert_close(losses[task.name], expected)
    assert trainer.fit() is not None and open_package(tmp_path / "pkg").config.architecture == architecture


@pytest.mark.parametrize("balancer", ["gradnorm", "dwa"])  # stateful: own optimiser; epoch-mean history
def test_resume_continues_bit_for_bit(tmp_path, balancer):
    # On the CPU only: CUDA kernels (atomics, cuDNN autotuning) and AMP are not bit-reproducible, so
    # there even two uninterrupted runs differ. The stop is a step count, not a timer or a signal.
    straight = tiny_train_config(tmp_path, out=str(tmp_path / "a"), balancer=balancer, epochs=3, device="cpu")
    train(straight, progress=False)
    interrupted = tiny_train_config(tmp_path, out=str(tmp_path / "b"), balancer=balancer, epochs=3, device="cpu")
    assert train(interrupted, progress=False, stop_after=4) is None  # stops mid-epoch 1 (3 steps/epoch)
    assert (tmp_path / "b" / "train" / "checkpoint.pt").is_file()
    assert not (tmp_path / "b" / "weights.safetensors").exists()
    train(interrupted, resume=True, progress=False)
    a = open_package(tmp_path / "a").load_model().state_dict()
    b = open_package(tmp_path / "b").load_model().state_dict()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=name)


def test_resume_refuses_a_changed_config(tmp_path):
    config = tiny_train_config(tmp_path, epochs=2)
    train(config, progress=False, stop_after=1)
    changed = tiny_train_config(tmp_path, epochs=2, lr=0.5)
    with pytest.raises(ValueError, match="different lr"):
        train(changed, resume=True, progress=False)


def test_resume_refuses_fewer_steps_than_the_checkpoint_has_done(tmp_path):
    config = tiny_train_config(tmp_path, epochs=2)  # 3 steps an epoch
    train(config, progress=False, stop_after=4)
    with pytest.raises(ValueError, match="at step 4, past this run's 3 steps; resume with --steps .* at least 4"):
        train(tiny_train_config(tmp_path, epochs=2, steps=3), resume=True, progress=False)
    assert not (tmp_path / "pkg" / "weights.safetensors").exists()  # nothing recorded for the shorter run
    assert train(tiny_train_config(tmp_path, epochs=2, steps=5), resume=True, progress=False) is not None


def test_per_task_learning_rates_are_parameter_groups(tmp_path):
    config = tiny_train_config(tmp_path, lr=1e-3, lr_shared=1e-4, lr_tasks={"depth": 5e-3}, balancer="uncertainty")
    trainer = Trainer(config, progress=False)
    groups = {g["name"]: g["base_lr"] for g in trainer.optimizer.param_groups}
    assert groups == {
        "shared": 1e-4,
        "semseg": 1e-3,
        "depth": 5e-3,
        "normals": 1e-3,
        "attributes": 1e-3,
        "balancer": 1e-3,
    }
    depth_head = {id(p) for p in trainer.model.task_parameters("depth")}
    (depth_group,) = [g for g in trainer.optimizer.param_groups if g["name"] == "depth"]
    assert {id(p) for p in depth_group["params"]} == depth_head


def test_partially_labelled_data_trains_each_head_on_its_labels_only(tmp_path):
    data = tmp_path / "partial"
    write_random_dataset(
        data, n=8, size=(64, 96), drop={"depth": range(0, 8, 2), "attributes": [1, 2, 3], "normals": range(8)}
    )
    config = tiny_train_config(tmp_path, data=str(data), val_data=None, epochs=1, balancer="gradnorm")
    trainer = Trainer(config, progress=False)
    initial = {name: [p.detach().clone() for p in trainer.model.task_parameters(name)] for name in TASKS}
    assert trainer.fit() is not None
    assert trainer.state.step == 2
    log = [json.loads(line) for line in (tmp_path / "pkg" / "train" / "log.jsonl").read_text().splitlines()]
    assert set(log[0]["loss"]) == {"total", "semseg", "depth", "attributes"}  # no normals label, no normals loss
    for name in TASKS:
        trained = trainer.model.task_parameters(name)
        unchanged = all(torch.equal(a, b) for a, b in zip(initial[name], trained, strict=True))
        assert unchanged == (name == "normals"), f"{name} head {'unchanged' if unchanged else 'changed'}"


@pytest.mark.slow
def test_torchrun_ddp_on_cpu(tmp_path):
    config = tiny_train_config(tmp_path, epochs=1, balancer="uncertainty")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "onepass", "train",
        "--data", config.data.path, "--out", config.run.out, "--encoder", TINY_ENCODER, "--input-size", "64x96", "--epochs", "1",
        "--batch-size", "2", "--num-workers", "0", "--device", "cpu", "--set", "decoder_channels=16",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    package = open_package(config.run.out)
    assert package.training["processes"] == 2
    assert package.training["steps"] == 3  # 12 images / (2 per process x 2 processes)


def test_batches_without_any_label_are_skipped(tmp_path):
    data = tmp_path / "sparse"
    unlabelled = [0, 1, 2]
    drop = {task: unlabelled for task in ("semseg", "depth", "normals", "attributes")}
    write_random_dataset(data, n=4, size=(64, 96), drop=drop)
    config = tiny_train_config(tmp_path, data=str(data), val_data=None, epochs=1, batch_size=1, balancer="gradnorm")
    package = train(config, progress=False)
    assert package is not None and package.training["steps"] == 4


def test_an_existing_run_is_never_overwritten(tmp_path):
    config = tiny_train_config(tmp_path, epochs=1, val_data=None)
    train(config, progress=False)
    with pytest.raises(ValueError, match="already holds a training run.*--resume"):
        train(config, progress=False)


def test_one_persistent_loader_serves_every_epoch_as_fresh_loaders_would(tmp_path):
    """Workers that persist across epochs (and keep their decoded samples) must hand out each epoch's
    own order and augmentation, and a resumed epoch's rest."""
    trainer = Trainer(tiny_train_config(tmp_path, num_workers=1, epochs=3), progress=False)
    reference = Trainer(tiny_train_config(tmp_path, epochs=3, out=str(tmp_path / "other")), progress=False).train_set
    orders = []
    for epoch, skip in ((0, 0), (1, 0), (2, 1), (1, 0)):
        batches = list(trainer.loader(epoch, skip))
        assert len(batches) == 3 - skip
        orders.append(torch.cat([b["index"] for b in batches]).tolist())
        for batch in batches:
            for position, index in enumerate(batch["index"].tolist()):
                expected = reference[(epoch, index)]  # that epoch's augmentation, read afresh
                assert torch.equal(batch["image"][position], expected["image"])
                assert torch.equal(batch["normals"][position], expected["normals"])
    assert orders[1] == orders[3] and orders[0] != orders[1]
    assert trainer.train_set.cache_bytes > 0
    trainer.close_loader()
    assert trainer._loader is None


def test_val_every_evaluates_every_nth_epoch_and_the_last(tmp_path):
    config = tiny_train_config(tmp_path, epochs=3, val_every=2)
    train(config, progress=False)
    records = [json.loads(line) for line in (tmp_path / "pkg" / "train" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert [r["val"] is not None for r in records] == [False, True, True]
    assert set(records[2]["val"]) == set(TASKS)
    with pytest.raises(ConfigError, match="val_every must be at least 1 epoch, got 0"):
        tiny_train_config(tmp_path, val_every=0)
