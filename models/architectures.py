"""Architectures: how the task heads share the network after the encoder.

Encoder-centric (the only family so far):
- `shared-fpn`: one shared FPN decoder, a thin head per task. Cheapest at inference; the default.
- `hps`: hard parameter sharing of the encoder only; each dense task has its own light FPN decoder.

Each task says which features its head reads (`Task.head_input`): "decoder" (per-pixel maps, and
the centre heatmaps of instance tasks) or "deepest" (image-level tasks: they need the whole image's
context, which the deepest encoder stage has and a stride-4 decoder map does not add). The module
dicts keep their first names, `dense_heads` (on the decoder) and `image_heads` (on the deepest
stage), so that packages saved before instance tasks existed still load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from onepass.models.decoders import FPNDecoder
from onepass.models.tasks.base import Task, unknown_name_error

ARCHITECTURES: dict[str, type[Architecture]] = {}


def register_architecture(name: str) -> Callable[[type[Architecture]], type[Architecture]]:
    def register(cls: type[Architecture]) -> type[Architecture]:
        ARCHITECTURES[name] = cls
        cls.name = name
        return cls

    return register


class Architecture(nn.Module):
    """Encoder features -> raw output per task. Heads on the decoder give maps at the encoder's finest
    stride; the model resizes each task's raw output as the task says (`Task.resize_raw`)."""

    name: str

    def __init__(self, encoder_channels: list[int], tasks: Sequence[Task], decoder_channels: int):
        super().__init__()
        on_decoder = [t for t in tasks if t.head_input == "decoder"]
        on_deepest = [t for t in tasks if t.head_input == "deepest"]
        self.image_heads = nn.ModuleDict({t.name: t.build_head(encoder_channels[-1]) for t in on_deepest})
        self.build_dense(encoder_channels, on_decoder, decoder_channels)

    def build_dense(self, channels: list[int], tasks: list[Task], decoder_channels: int) -> None:
        raise NotImplementedError

    def dense_forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        outputs = self.dense_forward(features)
        for name, head in self.image_heads.items():
            outputs[name] = head(features[-1])  # (B, out)
        return outputs

    def last_shared_parameters(self) -> list[nn.Parameter] | None:
        """The last layer shared by every task (GradNorm's W), or None when that is in the encoder."""
        return None


@register_architecture("shared-fpn")
class SharedFPN(Architecture):
    def build_dense(self, channels: list[int], tasks: list[Task], decoder_channels: int) -> None:
        self.decoder = FPNDecoder(channels, decoder_channels) if tasks else None
        self.dense_heads = nn.ModuleDict({t.name: t.build_head(decoder_channels) for t in tasks})

    def dense_forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        if self.decoder is None:
            return {}
        shared = self.decoder(features)  # (B, C, H / 4, W / 4)
        return {name: head(shared) for name, head in self.dense_heads.items()}

    def last_shared_parameters(self) -> list[nn.Parameter] | None:
        # With an image-level task the decoder is not shared by all tasks; the encoder's last stage is.
        if self.decoder is None or len(self.image_heads):
            return None
        return self.decoder.last_layer_parameters()


@register_architecture("hps")
class HardParameterSharing(Architecture):
    def build_dense(self, channels: list[int], tasks: list[Task], decoder_channels: int) -> None:
        # "light": each task's decoder has half the shared decoder's width
        width = max(decoder_channels // 2, 16)
        self.decoders = nn.ModuleDict({t.name: FPNDecoder(channels, width) for t in tasks})
        self.dense_heads = nn.ModuleDict({t.name: t.build_head(width) for t in tasks})

    def dense_forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        return {name: self.dense_heads[name](decoder(features)) for name, decoder in self.decoders.items()}


def architecture_class(name: str) -> type[Architecture]:
    if name not in ARCHITECTURES:
        raise unknown_name_error("architecture", name, list(ARCHITECTURES))
    return ARCHITECTURES[name]
