"""The training config: sections under unique flat keys, the registries' names, the resume rule, and
values checked before any data is read."""

from __future__ import annotations

import dataclasses

import pytest

from onepass.errors import ConfigError
from onepass.models import architectures
from onepass.models.architectures import ARCHITECTURES
from onepass.models.model import ModelConfig
from onepass.models.tasks import TASK_TYPES
from onepass.train.balancers import BALANCERS
from onepass.train.config import (
    ARCHITECTURE_NAMES,
    BALANCER_NAMES,
    HEAD_CONVOLUTIONS,
    TASK_TYPE_NAMES,
    Augmentation,
    ModelOptions,
    TrainConfig,
    options,
    read_config_file,
)
from onepass.train.loop import TRAINER_MODEL_OPTIONS, Trainer, model_config
from tests.tiny import TINY_ENCODER, all_tasks

REQUIRED = {"data": "d", "out": "o"}


def built_in(registry: dict) -> set[str]:
    """The names onepass itself registers (tests register toy task types of their own)."""
    return {name for name, cls in registry.items() if cls.__module__.startswith("onepass.")}


def test_the_flags_names_are_the_registries():
    assert set(TASK_TYPE_NAMES) == built_in(TASK_TYPES)
    assert set(ARCHITECTURE_NAMES) == built_in(ARCHITECTURES)
    assert set(BALANCER_NAMES) == built_in(BALANCERS)
    assert HEAD_CONVOLUTIONS == architectures.HEAD_CONVOLUTIONS


def test_every_option_has_a_unique_key_and_help():
    keys = [o.key for o in options()]
    assert len(keys) == len(set(keys))
    assert {o.path[0] for o in options()} == {"model", "data", "optimizer", "balancer", "calibration", "run"}
    assert [o.key for o in options() if o.required] == ["data", "out"]
    assert all(o.help for o in options()), [o.key for o in options() if not o.help]
    sections = {f.name for f in dataclasses.fields(TrainConfig)}
    assert sections == {"model", "data", "optimizer", "balancer", "calibration", "run"}


def test_the_shipped_config_file_reads_into_its_sections():
    config = TrainConfig.from_mapping({**read_config_file("configs/default.yaml"), **REQUIRED})
    assert config.model.encoder == "mobilenetv4_conv_small" and config.model.input_size == (128, 160)
    assert (config.run.epochs, config.run.name, config.run.seed) == (12, "onepass-default", 0)
    assert (config.optimizer.name, config.optimizer.lr, config.optimizer.batch_size) == ("adamw", 0.002, 16)
    assert config.balancer.name == "uncertainty" and config.data.augment is True


def test_flat_json_round_trips():
    values = {
        **REQUIRED, "val_data": "v", "tasks": ["semseg", "depth"], "architecture": "hps", "input_size": [64, 96],
        "lr_tasks": {"depth": 0.01}, "balancer": "gradnorm", "balancer_options": {"alpha": 1.0}, "min_zoom": 0.5,
        "flip": False, "steps": 7,
    }  # fmt: skip
    config = TrainConfig.from_mapping(values)
    assert config.data.augmentation == Augmentation(min_zoom=0.5, flip=False)
    assert config.optimizer.lr_tasks == {"depth": 0.01} and config.balancer.options == {"alpha": 1.0}
    record = config.to_json()
    assert set(record) == {o.key for o in options()}
    assert record["input_size"] == [64, 96] and record["min_zoom"] == 0.5  # JSON types, flat, as packages hold
    assert TrainConfig.from_mapping(record) == config


def test_values_are_checked_against_the_fields_types():
    config = TrainConfig.from_mapping({**REQUIRED, "lr": "2e-3", "tasks": "semseg,depth", "augment": "false"})
    assert config.optimizer.lr == 0.002  # YAML 1.1 reads 2e-3 as a string
    assert config.model.tasks == ("semseg", "depth") and config.data.augment is False
    assert isinstance(TrainConfig.from_mapping({**REQUIRED, "lr": 1}).optimizer.lr, float)
    for key, value, expected in [
        ("lr", "fast", "training option lr: expected a number, got 'fast'"),
        ("epochs", 2.5, "training option epochs: expected an integer"),
        ("input_size", [64, 96, 3], "training option input_size: expected a list of 2 integers"),
        ("augment", "maybe", "training option augment: expected true or false"),
        ("lr_tasks", {"depth": "x"}, "training option lr_tasks: expected a mapping"),
        ("val_data", 3, "training option val_data: expected a string or None"),
    ]:
        with pytest.raises(ConfigError, match=expected.replace("(", "\\(")):
            TrainConfig.from_mapping({**REQUIRED, key: value})
    with pytest.raises(ConfigError, match="training option 'out' is required"):
        TrainConfig.from_mapping({"data": "d"})
    with pytest.raises(ConfigError, match="did you mean 'shared-fpn'"):
        TrainConfig.from_mapping({**REQUIRED, "architecture": "shared_fpn"})
    with pytest.raises(ConfigError, match="min_zoom must be in"):
        TrainConfig.from_mapping({**REQUIRED, "min_zoom": 0.05})


def test_the_model_options_become_the_model_config():
    shared = {f.name for f in dataclasses.fields(ModelOptions)} - {"tasks", *TRAINER_MODEL_OPTIONS}
    assert shared <= {f.name for f in dataclasses.fields(ModelConfig)}
    for name in shared:  # one default for a new model, in training as in Python
        assert ModelConfig.__dataclass_fields__[name].default == ModelOptions.__dataclass_fields__[name].default
    options_ = ModelOptions(
        encoder=TINY_ENCODER, architecture="hps", decoder_channels=16, input_size=(64, 96), pretrained=True
    )
    config = model_config(options_, all_tasks())
    assert [getattr(config, n) for n in sorted(shared)] == [getattr(options_, n) for n in sorted(shared)]


def test_the_resume_rule_is_in_the_fields():
    may_change = {o.key for o in options() if o.may_change_on_resume}
    assert may_change == {
        "out", "name", "val_data", "epochs", "steps", "num_workers", "checkpoint_every", "log_every", "val_every",
        "calibrate", "calibration_data", "calibration_images",  # they act after the last step
    }  # fmt: skip
    config = TrainConfig.from_mapping(REQUIRED)
    saved = config.to_json()
    assert config.resume_conflicts(saved) == {}
    longer = TrainConfig.from_mapping({**REQUIRED, "epochs": 20, "out": "elsewhere", "num_workers": 4})
    assert longer.resume_conflicts(saved) == {}
    changed = TrainConfig.from_mapping({**REQUIRED, "lr": 0.5, "flip": False})
    assert changed.resume_conflicts(saved) == {"lr": (0.5, 0.002), "flip": (False, True)}
    # a checkpoint from before the augmentation options existed trained with their defaults
    older = {k: v for k, v in saved.items() if k not in ("flip", "colour")}
    assert config.resume_conflicts(older) == {}
    assert changed.resume_conflicts(older) == {"lr": (0.5, 0.002), "flip": (False, True)}


def test_balancer_options_fail_before_any_data_is_read(tmp_path):
    missing = str(tmp_path / "no-such-data")
    with pytest.raises(ConfigError, match="balancer 'gradnorm' has no option\\(s\\) \\['alpah'\\].*alpha"):
        TrainConfig.from_mapping(
            {"data": missing, "out": "o", "balancer": "gradnorm", "balancer_options": {"alpah": 1}}
        )
    # a bad value is the balancer's to refuse: the trainer builds it before it looks at the data
    config = TrainConfig.from_mapping(
        {"data": missing, "out": "o", "balancer": "gradnorm", "balancer_options": {"alpha": -1}, "device": "cpu"}
    )
    with pytest.raises(ConfigError, match="alpha must be >= 0"):
        Trainer(config, progress=False)


def test_the_augmentation_options_reach_the_dataset(random_dataset, tmp_path):
    values = {"data": str(random_dataset), "out": str(tmp_path / "o"), "encoder": TINY_ENCODER, "device": "cpu"}
    values |= {"input_size": (64, 96), "decoder_channels": 16, "batch_size": 2, "num_workers": 0}
    trainer = Trainer(TrainConfig.from_mapping({**values, "min_zoom": 0.5, "flip": False, "colour": 0.0}), False)
    assert trainer.train_set.augmentation == Augmentation(min_zoom=0.5, flip=False, colour=0.0)
    assert Trainer(TrainConfig.from_mapping({**values, "augment": False}), False).train_set.augmentation is None
