"""Architectures: how the task heads share the network after the encoder.

Encoder-centric (the tasks share the encoder, and at most a decoder, then part):
- `shared-fpn`: one shared FPN decoder, a thin head per task. Cheapest at inference; the default.
- `hps`: hard parameter sharing of the encoder only; each dense task has its own light FPN decoder.

Decoder-centric (the tasks' predictions inform each other before the final ones):
- `padnet`: PAD-Net (Xu, Ouyang, Wang, Sebe, CVPR 2018; the survey of Vandenhende et al., TPAMI
  2021, arXiv 2004.13379): per-task features from the shared decoder make initial predictions
  (deeply supervised), then multi-modal distillation passes attention-gated messages from every
  other task's features into each task's, and the final heads read the distilled features.
- `mtinet`: MTI-Net (Vandenhende, Georgoulis, Van Gool, ECCV 2020): the same distillation at the
  feature pyramid's coarser scales, each scale's task features propagated from the coarser scale
  before it, and the distilled features of all scales aggregated at the finest for the final heads.

Each task says which features its head reads (`Task.head_input`): "decoder" (per-pixel maps, and
the centre heatmaps of instance tasks) or "deepest" (image-level tasks: they need the whole image's
context, which the deepest encoder stage has and a stride-4 decoder map does not add). The module
dicts keep their first names, `dense_heads` (on the decoder) and `image_heads` (on the deepest
stage), so that packages saved before instance tasks existed still load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from onepass.errors import ConfigError, unknown_name_error
from onepass.models.decoders import FPNDecoder, FPNPyramid, merge_onto, upsample
from onepass.models.tasks.base import Task, conv_bn_relu

ARCHITECTURES: dict[str, type[Architecture]] = {}


def initial_prediction_key(task: str, scale: int = 0) -> str:
    """The key of a task's deeply supervised initial prediction in a training forward pass (at a
    pyramid scale, 0 the finest): the training loop adds the mean of their losses to the task's own
    (decoder-centric architectures emit these)."""
    return f"{task}.initial" if scale == 0 else f"{task}.initial.{scale}"


def initial_predictions(outputs: dict[str, Tensor], task: str) -> list[Tensor]:
    """Every initial prediction of `task` in a training forward pass's outputs."""
    key = initial_prediction_key(task)
    return [value for name, value in outputs.items() if name == key or name.startswith(f"{key}.")]


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


@register_architecture("padnet")
class PadNet(Architecture):
    """Shared FPN decoder -> per-task features F_t (3x3 block) -> initial prediction per task (the
    task's own head, trained with the task's loss: deep supervision) -> multi-modal distillation
    F_t' = F_t + Σ_{s≠t} conv(F_s) ⊙ σ(conv_a(F_s)) (PAD-Net's attention-guided message passing,
    variant C) -> the final head per task.

    Deviation: PAD-Net's initial predictions come from the encoder at the decoder's resolution, and
    its intermediate auxiliary tasks may differ from the final ones; here the initial predictions
    are the final tasks themselves, read from the shared FPN decoder (the survey's re-implementation
    does the same). With one decoder-fed task there is nothing to distil: it is shared-fpn plus one
    block.
    """

    def build_dense(self, channels: list[int], tasks: list[Task], decoder_channels: int) -> None:
        self.decoder = FPNDecoder(channels, decoder_channels) if tasks else None
        names = [t.name for t in tasks]
        self.decoders = nn.ModuleDict(
            {
                t.name: nn.ModuleDict(
                    {
                        "features": conv_bn_relu(decoder_channels, decoder_channels),
                        "initial": t.build_head(decoder_channels),
                        "messages": nn.ModuleDict({s: GatedMessage(decoder_channels) for s in names if s != t.name}),
                    }
                )
                for t in tasks
            }
        )
        self.dense_heads = nn.ModuleDict({t.name: t.build_head(decoder_channels) for t in tasks})

    def dense_forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        if self.decoder is None:
            return {}
        shared = self.decoder(features)  # (B, C, H / 4, W / 4)
        per_task = {name: modules["features"](shared) for name, modules in self.decoders.items()}
        outputs = {}
        for name, modules in self.decoders.items():
            distilled = per_task[name]
            for source, message in modules["messages"].items():
                distilled = distilled + message(per_task[source])
            outputs[name] = self.dense_heads[name](distilled)
            if self.training:  # the initial predictions are only trained, never served
                outputs[initial_prediction_key(name)] = modules["initial"](per_task[name])
        return outputs

    def last_shared_parameters(self) -> list[nn.Parameter] | None:
        if self.decoder is None or len(self.image_heads):
            return None
        return self.decoder.last_layer_parameters()


@register_architecture("mtinet")
class MTINet(Architecture):
    """MTI-Net's multi-scale multi-modal distillation on the FPN pyramid's coarser levels (strides 8,
    16 and 32 on a four-level encoder), aggregated at the finest:

    - from the coarsest scale to the finest of them, per task: features F_t^s from the pyramid level
      (a 3x3 block), where s is not the coarsest together with the feature propagation module's
      message from scale s+1: the tasks' features there concatenated, one shared 3x3 block,
      upsampled, and a squeeze-and-excitation gate per task (MTI-Net's FPM);
    - an initial prediction per task at each of these scales (deep supervision; an instance task's
      from the finest of them upsampled to the decoder's stride, since its head's centres and
      offsets are in the decoder's cells);
    - PAD-Net's attention-gated distillation at each scale: D_t^s = F_t^s + Σ_{u≠t} message(F_u^s);
    - feature aggregation at the finest pyramid level (stride 4): that level plus each D_t^s
      upsampled to it, summed, a 3x3 block, then the task's final head.

    Deviations from the paper: MTI-Net distils at all four scales, stride 4 included; here stride 4
    joins at the aggregation only, since distillation there is what makes PAD-Net cost 4x shared-fpn
    on a CPU (per task, two 3x3 convolutions per other task at the decoder's pixels), and at strides
    8-32 it costs a quarter of that or less. The scales are the FPN pyramid's levels (already mixed
    top-down), not the backbone's raw stages; the aggregation sums the scales (Panoptic-FPN's merge)
    where MTI-Net concatenates them; the propagation's per-task refinement is a squeeze-and-excitation
    gate alone; the loss of a task's initial predictions is their mean, so that each task's deep
    supervision weighs what PAD-Net's does.
    """

    def build_dense(self, channels: list[int], tasks: list[Task], decoder_channels: int) -> None:
        if tasks and len(channels) < 2:
            raise ConfigError(
                "mtinet needs an encoder with at least two feature levels (it distils at the coarser ones)"
            )
        self.pyramid = FPNPyramid(channels, decoder_channels) if tasks else None
        self.scales = len(channels) - 1  # distilled at pyramid levels 1.. (strides 8, 16, 32)
        width, names, coarsest = decoder_channels, [t.name for t in tasks], self.scales - 1
        self.in_decoder_cells = {t.name for t in tasks if not t.head_may_stride}  # instance heads

        def per_task(task: Task) -> nn.ModuleDict:
            supervised = [0] if task.name in self.in_decoder_cells else range(self.scales)
            return nn.ModuleDict(
                {
                    "features": nn.ModuleList(
                        conv_bn_relu(width if s == coarsest else 2 * width, width) for s in range(self.scales)
                    ),
                    "propagation": nn.ModuleList(SqueezeExcitation(width) for _ in range(coarsest)),
                    "initial": nn.ModuleDict({str(s): task.build_head(width) for s in supervised}),
                    "messages": nn.ModuleList(
                        nn.ModuleDict({u: GatedMessage(width) for u in names if u != task.name})
                        for _ in range(self.scales)
                    ),
                    "aggregate": conv_bn_relu(width, width),
                }
            )

        self.decoders = nn.ModuleDict({t.name: per_task(t) for t in tasks})
        # shared by every task: scale s's propagation reads the tasks' features at scale s+1
        self.propagation = nn.ModuleList(conv_bn_relu(len(tasks) * width, width) for _ in range(coarsest))
        self.dense_heads = nn.ModuleDict({t.name: t.build_head(width) for t in tasks})

    def dense_forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        if self.pyramid is None:
            return {}
        finest, *levels = self.pyramid(features)  # strides 4, then 8, 16, 32
        outputs: dict[str, Tensor] = {}
        distilled: dict[str, list[Tensor]] = {name: [] for name in self.decoders}
        coarser: dict[str, Tensor] = {}
        for scale in range(self.scales - 1, -1, -1):
            level = levels[scale]
            if coarser:  # the feature propagation module, from scale + 1
                shared = self.propagation[scale](torch.cat(list(coarser.values()), dim=1))
                shared = upsample(shared, level.shape[-2:])
            task_features = {}
            for name, modules in self.decoders.items():
                inputs = torch.cat([level, modules["propagation"][scale](shared)], dim=1) if coarser else level
                task_features[name] = modules["features"][scale](inputs)
            for name, modules in self.decoders.items():
                mixed = task_features[name]
                for source, message in modules["messages"][scale].items():
                    mixed = mixed + message(task_features[source])
                distilled[name].append(mixed)
                if self.training and str(scale) in modules["initial"]:  # trained, never served
                    head_input = task_features[name]
                    if name in self.in_decoder_cells:
                        head_input = upsample(head_input, finest.shape[-2:])
                    outputs[initial_prediction_key(name, scale)] = modules["initial"][str(scale)](head_input)
            coarser = task_features
        for name, modules in self.decoders.items():
            merged = merge_onto(finest, distilled[name][::-1])  # the finest distilled scale added first
            outputs[name] = self.dense_heads[name](modules["aggregate"](merged))
        return outputs

    def last_shared_parameters(self) -> list[nn.Parameter] | None:
        # The finest pyramid level reaches every task's aggregation directly (the propagation modules
        # read task-specific features, so they are not "shared" in GradNorm's sense).
        if self.pyramid is None or len(self.image_heads):
            return None
        return [self.pyramid.smooth[0][0].weight]


class SqueezeExcitation(nn.Module):
    """Hu et al. 2018: channels rescaled by a gate computed from their global average."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class GatedMessage(nn.Module):
    """PAD-Net's message from one task's features to another's: a 3x3 conv of the source, gated per
    pixel and channel by a sigmoid attention map computed from the same source."""

    def __init__(self, channels: int):
        super().__init__()
        self.message = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.attention = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.Sigmoid())

    def forward(self, source: Tensor) -> Tensor:
        return self.message(source) * self.attention(source)  # (B, C, h, w)


HEAD_CONVOLUTIONS = ("full", "separable")  # ModelConfig.head_convolution


def factorise_convolutions(module: nn.Module) -> None:
    """In place: every 3x3 convolution under `module` (not grouped) becomes a depthwise 3x3 followed by a
    pointwise 1x1, MobileNet's factorisation: C*9 + C*C' multiply-adds a pixel instead of C*C'*9 (at 64
    channels, 0.13x). Its BatchNorm and activation, if any, follow the pointwise convolution as before."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and child.kernel_size == (3, 3) and child.groups == 1 and child.in_channels > 1:
            depthwise = nn.Conv2d(
                child.in_channels, child.in_channels, 3, child.stride, child.padding, child.dilation,
                groups=child.in_channels, bias=False,
            )  # fmt: skip
            pointwise = nn.Conv2d(child.in_channels, child.out_channels, 1, bias=child.bias is not None)
            setattr(module, name, nn.Sequential(depthwise, pointwise))
        else:
            factorise_convolutions(child)


def factorise_heads(architecture: Architecture) -> None:
    """`factorise_convolutions` on every task's head (not on the shared or per-task decoders)."""
    factorise_convolutions(architecture.image_heads)
    factorise_convolutions(architecture.dense_heads)


HEAD_STRIDES = (1, 2)  # ModelConfig.head_stride


def stride_heads(architecture: Architecture, tasks: Sequence[Task]) -> None:
    """In place: the first 3x3 convolution of the final head of every task that allows it
    (`Task.head_may_stride`: the per-pixel maps) strides by 2, so that the head runs at half the
    decoder's resolution (stride 8 on the stride-4 decoder, a quarter of its multiply-adds) and the
    task's `resize_raw` upsamples its output to the input in the graph as it already did. The weights
    keep their names and shapes. The instance heads stay at the decoder's stride (their centres and
    offsets are in its cells), and so do PAD-Net's initial heads (trained, never served)."""
    for task in tasks:
        if not task.head_may_stride or task.name not in architecture.dense_heads:
            continue
        head = architecture.dense_heads[task.name]
        first = next((m for m in head.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)), None)
        if first is None:
            raise ConfigError(f"head_stride 2: the {task.name} head has no 3x3 convolution to stride")
        first.stride = (2, 2)


def architecture_class(name: str) -> type[Architecture]:
    if name not in ARCHITECTURES:
        raise unknown_name_error("architecture", name, list(ARCHITECTURES))
    return ARCHITECTURES[name]
