"""Encoders: any timm backbone that supports `features_only=True`, optionally starting from
pretrained weights read from a local file (no hub needed).

A pretrained file is any of these layouts (found from its tensor names, never from its file name):

| layout            | tensor names                                         | e.g.                                   |
|-------------------|------------------------------------------------------|----------------------------------------|
| `timm`            | the full timm classifier's (`timm.create_model(name)`) | timm's `model.safetensors`, `pytorch_model.bin` |
| `timm-features`   | the features-only backbone's (what `Encoder.backbone` holds) | `torch.save(timm.create_model(name, features_only=True).state_dict())` |
| `onepass-package` | `encoder.backbone.*` of a package's weights.safetensors | another onepass model's encoder          |
| `torchvision`     | torchvision's model of the same architecture, renamed by `TORCHVISION_RENAMES` | `resnet50-0676ba61.pth`, `mobilenet_v2-b0353104.pth` |

Before that, a checkpoint dict that holds the weights under "state_dict" or "model" (timm's and
torchvision's training scripts) is unwrapped, and a "module." prefix (DistributedDataParallel) is
dropped. The classifier and whatever else the features-only backbone does not use (a timm model's
`conv_head`, `fc`) may be present or absent; every tensor the backbone does use must be in the file
with its shape, and every tensor in the file must belong to the architecture, or the file is refused
with the missing and unexpected names.

Files are safetensors, or torch files read with `torch.load(weights_only=True)` (tensors and plain
containers only): onepass never unpickles arbitrary objects.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import Tensor, nn

from onepass.data.files import file_sha256
from onepass.errors import ConfigError, UserError

MIN_REDUCTION = 4  # decoders start at stride 4; a stride-2 map costs memory and adds little
PACKAGE_PREFIX = "encoder.backbone."  # a onepass package's encoder tensors (MultiTaskModel.encoder.backbone)
PACKAGE_PARTS = ("encoder.", "heads.")  # every tensor of a package's weights; the heads are left behind
WRAPPER_KEYS = ("state_dict", "model")  # where training scripts' checkpoints keep the weights
SHOWN_NAMES = 6  # names listed per kind in an error


class PretrainedFileError(UserError, ValueError):
    """A pretrained weights file cannot be read or does not fit the encoder; the message says which tensors."""


@dataclass(frozen=True)
class PretrainedSource:
    """Where an encoder's starting weights came from: recorded as training provenance."""

    path: str
    sha256: str
    layout: str  # timm | timm-features | onepass-package | torchvision
    tensors: int  # tensors of the backbone loaded from the file

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "layout": self.layout, "tensors": self.tensors}


class Encoder(nn.Module):
    """timm multi-scale features at strides 4, 8, 16, 32 (or whatever the backbone offers >= 4).

    Consumers read `channels` and `reductions`, never the backbone's name.
    """

    def __init__(self, name: str, pretrained: bool = False):
        super().__init__()
        if not timm.is_model(name):
            close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
            raise ConfigError(f"unknown timm encoder {name!r}" + (f"; similar: {', '.join(close)}" if close else ""))
        self.name = name
        try:
            self.backbone = timm.create_model(name, features_only=True, pretrained=pretrained)
        except RuntimeError as error:
            raise ConfigError(f"encoder {name!r} cannot produce multi-scale features: {error}") from None
        info = self.backbone.feature_info
        self._keep = [i for i, r in enumerate(info.reduction()) if r >= MIN_REDUCTION]
        self.channels = [info.channels()[i] for i in self._keep]
        self.reductions = [info.reduction()[i] for i in self._keep]

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.backbone(x)
        return [features[i] for i in self._keep]

    def load_pretrained_file(self, path: str | Path) -> PretrainedSource:
        """Replace the backbone's weights (in place: the same Parameter objects) with a file's; see the
        module docstring for the layouts it reads."""
        path = Path(path)
        state = _unwrap(read_weights_file(path), path)
        layout, backbone_state = self._backbone_state(state, path)
        self.backbone.load_state_dict(backbone_state, strict=True)
        return PretrainedSource(str(path.resolve()), file_sha256(path), layout, len(backbone_state))

    def _backbone_state(self, state: dict[str, Tensor], path: Path) -> tuple[str, dict[str, Tensor]]:
        """The file's tensors under the backbone's own names, and the layout they came in."""
        layout = "timm-features"
        if any(k.startswith(PACKAGE_PREFIX) for k in state) and all(k.startswith(PACKAGE_PARTS) for k in state):
            layout = "onepass-package"
            state = {k[len(PACKAGE_PREFIX) :]: v for k, v in state.items() if k.startswith(PACKAGE_PREFIX)}
        own = self.backbone.state_dict()
        if set(state) <= set(own) and not _missing(own, state):
            _check_shapes(state, own, path, self.name)
            return layout, {k: state.get(k, own[k]) for k in own}  # a missing batch counter keeps its own
        full = timm.create_model(self.name, pretrained=False)  # the classifier's names: a timm checkpoint's
        full_state = full.state_dict()
        layout = "timm"
        rename = TORCHVISION_RENAMES.get(self.name)
        if rename is not None and len(set(state) & set(full_state)) < len(state) / 2:
            layout = "torchvision"
            state = rename(state)
        # missing ones in the model's order; unexpected ones by name (safetensors keeps no order), counters last
        unexpected = sorted((k for k in state if k not in full_state), key=lambda k: ("num_batches" in k, k))
        if unexpected:
            raise _misfit(path, self.name, layout, _missing(full_state, state), unexpected)
        classifier = _classifier_names(full)
        _check_shapes({k: v for k, v in state.items() if k not in classifier}, full_state, path, self.name)
        # timm builds the features-only backbone from this state as `pretrained=True` would from the hub
        # (its own key filters, the classifier dropped). What the file lacks goes in as NaN: any NaN in
        # the built backbone is a tensor it uses that the file does not have.
        sentinel = {k: _nan_like(v) for k, v in full_state.items() if k not in state and k not in classifier}
        with _quiet(logging.getLogger("timm.models._builder")):  # it warns of the head's tensors, checked above
            built = timm.create_model(
                self.name,
                features_only=True,
                pretrained=True,
                pretrained_cfg_overlay={"state_dict": {**state, **sentinel}},
            )
        built_state = built.state_dict()
        uncovered = [k for k, v in built_state.items() if v.is_floating_point() and bool(v.isnan().any())]
        if uncovered:
            raise _misfit(path, self.name, layout, list(sentinel), [], uses=uncovered)
        return layout, built_state


# ---- reading the file ------------------------------------------------------------------------


def read_weights_file(path: Path) -> Any:
    """A safetensors file, or a torch file read with weights_only=True (chosen by content, not by name)."""
    if not path.is_file():
        raise PretrainedFileError(f"{path}: pretrained weights file not found")
    with path.open("rb") as handle:
        head = handle.read(16)
    if _is_safetensors(head, path.stat().st_size):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as error:
            raise PretrainedFileError(f"{path}: not a readable safetensors file ({error})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for what it refuses
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PretrainedFileError(
            f"{path}: not a safetensors file, nor a torch file of tensors that loads with weights_only=True "
            f"({message}). onepass does not unpickle arbitrary objects: save just the weights, "
            "torch.save(model.state_dict(), 'weights.pt'), or convert them to safetensors"
        ) from None


def _is_safetensors(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON header starting with '{'."""
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return 0 < length <= size - 8 and head[8:9] == b"{"


def _unwrap(content: Any, path: Path) -> dict[str, Tensor]:
    """A state dict from a file's content: the dict itself, or a training checkpoint's "state_dict" /
    "model" entry; a "module." prefix on every name (DistributedDataParallel) is dropped."""
    if isinstance(content, Mapping) and not _all_tensors(content):
        for key in WRAPPER_KEYS:
            if isinstance(content.get(key), Mapping) and _all_tensors(content[key]):
                content = content[key]
                break
    if not isinstance(content, Mapping) or not content or not _all_tensors(content):
        kind = type(content).__name__
        keys = f" with keys {sorted(map(str, content))[:SHOWN_NAMES]}" if isinstance(content, Mapping) else ""
        raise PretrainedFileError(
            f"{path}: holds a {kind}{keys}, not a state dict (tensor name -> tensor), nor a checkpoint with one "
            f"under {' or '.join(repr(k) for k in WRAPPER_KEYS)}"
        )
    state = {str(k): v for k, v in content.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _all_tensors(mapping: Mapping) -> bool:
    return all(isinstance(v, Tensor) for v in mapping.values())


# ---- checking the fit ------------------------------------------------------------------------


def _missing(expected: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> list[str]:
    """Expected names the file lacks, in the model's order; BatchNorm's batch counters may be absent
    (older checkpoints)."""
    return [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]


def _check_shapes(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], path: Path, name: str) -> None:
    wrong = [k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        shown = ", ".join(
            f"{k} {list(state[k].shape)} (encoder: {list(expected[k].shape)})" for k in wrong[:SHOWN_NAMES]
        )
        raise PretrainedFileError(
            f"{path}: {len(wrong)} tensors have other shapes than encoder {name!r}'s: {shown}; "
            "the file is for another architecture or width"
        )


def _classifier_names(model: nn.Module) -> set[str]:
    """The tensors of a timm model's classifier (its pretrained_cfg names the modules)."""
    modules = model.pretrained_cfg.get("classifier") or ()
    modules = (modules,) if isinstance(modules, str) else tuple(modules)
    return {k for k in model.state_dict() if any(k.startswith(f"{m}.") for m in modules)}


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Only errors from `logger` for the block (its level is restored after)."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _nan_like(tensor: Tensor) -> Tensor:
    return torch.full_like(tensor, math.nan) if tensor.is_floating_point() else torch.zeros_like(tensor)


def _misfit(
    path: Path, name: str, layout: str, missing: list[str], unexpected: list[str], uses: list[str] | None = None
) -> PretrainedFileError:
    def shown(names: list[str]) -> str:
        more = f", ... ({len(names) - SHOWN_NAMES} more)" if len(names) > SHOWN_NAMES else ""
        return ", ".join(names[:SHOWN_NAMES]) + more

    parts = []
    if missing:
        parts.append(f"missing {len(missing)}: {shown(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)}: {shown(unexpected)}")
    if uses:
        parts.append(f"the encoder uses {len(uses)} of the missing ones: {shown(uses)}")
    mapped = ", ".join(sorted(TORCHVISION_RENAMES))
    return PretrainedFileError(
        f"{path}: does not fit encoder {name!r} (read as the {layout} layout): {'; '.join(parts)}. "
        f"The file must be a timm or features-only state dict of {name!r}, a onepass package's weights, or a "
        f"torchvision state dict of an architecture onepass maps ({mapped})"
    )


# ---- torchvision -> timm names ---------------------------------------------------------------
# A torchvision state dict for the same architecture is renamed to timm's names, then checked like a
# timm file. tests/models/test_encoder_pretrained.py checks each mapping's features against the
# torchvision model's own.


def _same_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """torchvision's ResNets use timm's names (conv1, bn1, layer1-4, fc): nothing to rename."""
    return dict(state)


_MOBILENET_V2_STAGES = (1, 2, 3, 4, 3, 3, 1)  # inverted residual blocks per stage (timm's blocks.<stage>)


def _mobilenet_v2_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """torchvision mobilenet_v2 -> timm mobilenetv2_100:

    | torchvision                         | timm                                    |
    |-------------------------------------|-----------------------------------------|
    | features.0.0 / features.0.1          | conv_stem / bn1                         |
    | features.1.conv.{0.0, 0.1, 1, 2}     | blocks.0.0.{conv_dw, bn1, conv_pw, bn2}  |
    | features.N.conv.{0.0, 0.1, 1.0, 1.1, 2, 3} (N = 2..17, in stage order) | blocks.S.I.{conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3} |
    | features.18.0 / features.18.1        | conv_head / bn2                         |
    | classifier.1                         | classifier                              |
    """
    blocks = [(s, i) for s, count in enumerate(_MOBILENET_V2_STAGES) for i in range(count)]
    first = {"conv.0.0": "conv_dw", "conv.0.1": "bn1", "conv.1": "conv_pw", "conv.2": "bn2"}
    inverted = {
        "conv.0.0": "conv_pw", "conv.0.1": "bn1", "conv.1.0": "conv_dw", "conv.1.1": "bn2",
        "conv.2": "conv_pwl", "conv.3": "bn3",
    }  # fmt: skip
    fixed = {"features.0.0": "conv_stem", "features.0.1": "bn1", "features.18.0": "conv_head",
             "features.18.1": "bn2", "classifier.1": "classifier"}  # fmt: skip
    renamed = {}
    for key, value in state.items():
        module, _, tensor = key.rpartition(".")
        match = re.fullmatch(r"features\.(\d+)\.(conv\.[\d.]+)", module)
        if module in fixed:
            module = fixed[module]
        elif match and 1 <= int(match[1]) <= len(blocks):
            stage, index = blocks[int(match[1]) - 1]
            parts = first if int(match[1]) == 1 else inverted
            module = f"blocks.{stage}.{index}.{parts[match[2]]}" if match[2] in parts else module
        renamed[f"{module}.{tensor}"] = value
    return renamed


TORCHVISION_RENAMES: dict[str, Callable[[dict[str, Tensor]], dict[str, Tensor]]] = {
    **{
        name: _same_names
        for name in (
            "resnet18",
            "resnet34",
            "resnet50",
            "resnet101",
            "resnet152",
            "resnext50_32x4d",
            "resnext101_32x8d",
            "wide_resnet50_2",
            "wide_resnet101_2",
        )
    },  # fmt: skip
    "mobilenetv2_100": _mobilenet_v2_names,
}
