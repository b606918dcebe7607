"""The multi-task model: encoder -> architecture (decoders + heads) -> dict of raw outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from onepass.errors import ConfigError, unknown_name_error
from onepass.models.architectures import (
    HEAD_CONVOLUTIONS,
    HEAD_STRIDES,
    architecture_class,
    factorise_heads,
    stride_heads,
)
from onepass.models.encoder import Encoder
from onepass.models.tasks.base import Task, build_task

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; saved as the "model" section of onepass.json."""

    tasks: tuple[Task, ...]
    # mobilenetv4_conv_small: 1.3M parameters and the fastest CPU training step of the small timm
    # backbones we timed (see README), so the shipped model trains on 2 cores in minutes.
    encoder: str = "mobilenetv4_conv_small"
    architecture: str = "shared-fpn"  # the cheapest at inference
    decoder_channels: int = 64
    input_size: tuple[int, int] = (128, 160)  # (H, W): the display camera's frame, downscaled
    mean: tuple[float, float, float] = IMAGENET_MEAN  # timm backbones expect ImageNet statistics
    std: tuple[float, float, float] = IMAGENET_STD
    # Whether a newly built encoder starts from timm's pretrained weights (training only). Not part
    # of the saved config: a package's weights already hold whatever the encoder started from, so
    # loading one never downloads anything (training provenance records the option); an older
    # package's "pretrained" is read and ignored.
    pretrained: bool = field(default=False, compare=False)
    # The task heads' 3x3 convolutions: "full", or "separable" (depthwise 3x3 + pointwise 1x1:
    # `factorise_heads`), the lever against the heads' share of the cost (docs/performance.md).
    # Last, so that the fields before it keep the positions they had before it came.
    head_convolution: str = "full"
    # 1, or 2: the per-pixel heads' first convolution strides by 2, so they run at half the decoder's
    # resolution and their outputs are upsampled in the graph (`stride_heads`; docs/performance.md)
    head_stride: int = 1

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if not names:
            raise ConfigError("a model needs at least one task")
        if len(set(names)) != len(names):
            raise ConfigError(f"each task type may appear once (its name is its output key), got {names}")
        if len(self.input_size) != 2 or min(self.input_size) < 32 or any(s % 32 for s in self.input_size):
            raise ConfigError(f"input_size must be (H, W), multiples of 32 and >= 32, got {self.input_size}")
        architecture_class(self.architecture)  # fails early with the list of valid names
        if self.head_convolution not in HEAD_CONVOLUTIONS:
            raise unknown_name_error("head_convolution", self.head_convolution, list(HEAD_CONVOLUTIONS))
        if self.head_stride not in HEAD_STRIDES:
            raise ConfigError(f"head_stride must be one of {list(HEAD_STRIDES)}, got {self.head_stride!r}")

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "architecture": self.architecture,
            "decoder_channels": self.decoder_channels,
            "head_convolution": self.head_convolution,
            "head_stride": self.head_stride,
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "tasks": [t.to_config() for t in self.tasks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelConfig:
        data = dict(data)
        tasks = tuple(build_task(t) for t in data.pop("tasks", []))
        data.pop("pretrained", None)  # saved by packages before it became provenance only: never built from
        known = {f for f in cls.__dataclass_fields__ if f not in ("tasks", "pretrained")}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown model option(s) {sorted(unknown)} (valid: {sorted(known)})")
        for key in ("input_size", "mean", "std"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(tasks=tasks, **data)

    def same_network_as(self, saved: Mapping[str, Any]) -> bool:
        """Whether a saved "model" section (an export's metadata, an engine's sidecar) describes this
        network, whichever onepass version wrote it."""
        try:
            return ModelConfig.from_json(saved) == self
        except (KeyError, TypeError, ValueError):  # ConfigError is a ValueError
            return False


def normalise(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(B, 3, H, W) uint8 -> the model's float input, normalised with the config's mean/std.

    The one definition for training, evaluation and the exported graph, so they cannot drift.
    """
    mean_255 = torch.tensor(mean, device=images.device).view(1, 3, 1, 1) * 255.0
    std_255 = torch.tensor(std, device=images.device).view(1, 3, 1, 1) * 255.0
    return (images.float() - mean_255) / std_255


class MultiTaskModel(nn.Module):
    """`forward(x) -> {task: raw output}`, always a dict, for one task or many.

    x: (B, 3, H, W) float, already normalised with the config's mean/std. Each task's raw output comes
    back as its `resize_raw` says: per-pixel maps at the input's resolution, image-level outputs
    (B, out_channels), instance maps at the decoder's stride.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.encoder, pretrained=config.pretrained)
        self.heads = architecture_class(config.architecture)(
            self.encoder.channels, config.tasks, config.decoder_channels
        )
        if config.head_stride == 2:  # before factorising, which keeps each convolution's stride
            stride_heads(self.heads, config.tasks)
        if config.head_convolution == "separable":
            factorise_heads(self.heads)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.encoder(x)
        outputs = self.heads(features)
        size = x.shape[-2:]
        tasks = {task.name: task for task in self.config.tasks}
        # every output is a task's (an initial prediction in training carries its task's name first)
        return {key: tasks[key.partition(".")[0]].resize_raw(value, size) for key, value in outputs.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters()) + [
            p
            for name, p in self.heads.named_parameters()
            if not name.startswith(("dense_heads.", "image_heads.", "decoders."))
        ]

    def task_parameters(self, name: str) -> list[nn.Parameter]:
        """Parameters that only task `name` uses (its head, and its own decoder where it has one)."""
        prefixes = (f"dense_heads.{name}.", f"image_heads.{name}.", f"decoders.{name}.")
        return [p for n, p in self.heads.named_parameters() if n.startswith(prefixes)]

    def last_shared_parameters(self) -> Sequence[nn.Parameter]:
        """GradNorm's W: the last layer whose output every task depends on."""
        from_heads = self.heads.last_shared_parameters()
        if from_heads:
            return from_heads
        convs = [p for p in self.encoder.parameters() if p.ndim == 4]
        return convs[-1:]
