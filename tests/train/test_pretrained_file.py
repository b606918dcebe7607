"""`pretrained_file`: training starts the encoder from a local file, the package records which file
(path and SHA-256), and loading the package never needs the file again."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from onepass.cli import build_parser
from onepass.data.files import file_sha256
from onepass.errors import ConfigError
from onepass.models.package import open_package
from onepass.train.config import TrainConfig
from onepass.train.loop import train
from tests.tiny import TINY_ENCODER


def timm_file(path, seed: int) -> str:
    torch.manual_seed(seed)
    save_file({k: v.contiguous() for k, v in timm.create_model(TINY_ENCODER).state_dict().items()}, path)
    return str(path)


def tiny_config(data, out, weights, **changes) -> TrainConfig:
    values = dict(
        data=str(data), out=str(out), encoder=TINY_ENCODER, decoder_channels=16, input_size=(64, 96),
        steps=2, batch_size=4, num_workers=0, device="cpu", pretrained_file=weights, warmup_steps=1,
    )  # fmt: skip
    return TrainConfig.from_mapping({**values, **changes})


def test_the_package_starts_from_the_file_and_records_it(random_dataset, tmp_path):
    weights = timm_file(tmp_path / "imagenet.safetensors", seed=5)
    sha = file_sha256(tmp_path / "imagenet.safetensors")
    source = timm.create_model(TINY_ENCODER)
    source.load_state_dict(load_file(weights))
    package = train(tiny_config(random_dataset, tmp_path / "model", weights, lr=0.0, weight_decay=0.0), progress=False)
    assert package.training["pretrained_file"] == {
        "path": str((tmp_path / "imagenet.safetensors").resolve()), "sha256": sha, "layout": "timm", "tensors": 80,
    }  # fmt: skip
    assert package.training["config"]["pretrained_file"] == weights
    (tmp_path / "imagenet.safetensors").unlink()  # the package holds the weights now
    model = open_package(package.path).load_model()
    loaded = model.encoder.backbone.state_dict()
    # lr 0: the convolutions are the file's (BatchNorm's statistics moved in training)
    convs = [k for k, v in source.state_dict().items() if k in loaded and v.ndim == 4]
    assert len(convs) > 10
    for name in convs:
        assert torch.equal(loaded[name], source.state_dict()[name]), name


def test_resuming_from_another_file_is_refused(random_dataset, tmp_path):
    weights = timm_file(tmp_path / "imagenet.safetensors", seed=5)
    config = tiny_config(random_dataset, tmp_path / "model", weights, steps=4, checkpoint_every=1)
    assert train(config, progress=False, stop_after=1) is None
    timm_file(tmp_path / "imagenet.safetensors", seed=6)  # the same path, other weights
    with pytest.raises(ConfigError, match="started from another pretrained file"):
        train(config, resume=True, progress=False)


def test_pretrained_from_the_hub_and_from_a_file_exclude_each_other(tmp_path):
    with pytest.raises(ConfigError, match="choose one"):
        TrainConfig.from_mapping({"data": "d", "out": "o", "pretrained": True, "pretrained_file": "w.safetensors"})


def test_the_train_command_takes_the_flag():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--pretrained-file", "w.pth"])
    assert args.pretrained_file == "w.pth"
