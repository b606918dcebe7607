"""What a running service is configured with, and where its model comes from.

The values arrive as BentoML arguments (`bentoml serve ... --arg model=DIR --arg workers=2`, which
is what `onepass serve` runs), so every worker process and a built Bento see the same settings.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onepass.errors import ConfigError
from onepass.models.package import CONFIG_FILE, PackageError


@dataclass(frozen=True)
class ServeSettings:
    model: str = "default"  # "default" (the shipped model), a package directory, or a model store tag
    backend: str = "auto"  # any of onepass.runtime.predictor.BACKENDS, passed through to onepass.load
    device: str = "auto"  # a GPU when there is one (onepass.load resolves it)
    precision: str = "fp32"
    compile: bool = False  # torch backend: torch.compile the graph (with backend auto: a candidate to time)
    workers: int = 1  # server processes; each loads the model once and batches its own requests
    max_upload_mb: float = 20.0  # a larger request body is refused with 413 before it is read
    max_image_pixels: int = 40_000_000  # a decoded image over this is refused (decompression bombs)
    max_batch_size: int = 16  # adaptive batching: most images in one forward pass (BentoML needs >= 2)
    max_latency_ms: int = 10_000  # adaptive batching: a request that waited longer for the model gets 503
    max_video_seconds: float = 60.0  # a longer video upload is refused with 413 (serve/video.py)
    video_fps: float = 5.0  # a video upload is analysed at this many frames per second

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> ServeSettings:
        """From BentoML arguments (strings from `--arg`, or typed values from an args file)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(arguments) - set(fields))
        if unknown:
            raise ConfigError(f"unknown serve argument(s) {unknown} (valid: {', '.join(fields)})")
        values: dict[str, Any] = {}
        for name, value in arguments.items():
            kind = type(getattr(cls, name))
            try:
                values[name] = _boolean(value) if kind is bool else kind(value)
            except (TypeError, ValueError):
                raise ConfigError(f"serve argument {name}={value!r} must be {kind.__name__}") from None
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        for name, least in (("workers", 1), ("max_image_pixels", 1), ("max_batch_size", 2), ("max_latency_ms", 1)):
            if getattr(self, name) < least:
                raise ConfigError(f"serve argument {name} must be at least {least}, got {getattr(self, name)}")
        for name in ("max_upload_mb", "max_video_seconds", "video_fps"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"serve argument {name} must be positive, got {getattr(self, name)}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def to_arguments(self) -> dict[str, str]:
        """The `--arg key=value` pairs that reproduce these settings (only those not at their default)."""
        default = ServeSettings()
        return {
            f.name: str(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }


def _boolean(value: Any) -> bool:
    """A flag from `--arg compile=True` (a string: bool("False") would be True) or from an args file."""
    if isinstance(value, bool):
        return value
    words = {"true": True, "1": True, "false": False, "0": False}
    if str(value).lower() not in words:
        raise ValueError(value)
    return words[str(value).lower()]


def resolve_model(spec: str | os.PathLike | None) -> Path | None:
    """A model package directory for `spec`; None means the shipped default model.

    `spec` is "default", a package directory, or a BentoML model store tag ("name" or "name:version")
    whose model directory holds a package (see docs/serving.md, "Models from the BentoML model store").
    """
    if spec is None or str(spec) == "default":
        return None
    path = Path(spec)
    if path.is_dir():
        return path
    if path.exists():
        raise PackageError(f"{path}: not a model package directory")
    text = str(spec)
    if os.sep in text or text.startswith("."):
        raise PackageError(f"{path}: no such model package directory")
    import bentoml
    from bentoml.exceptions import BentoMLException, NotFound

    try:
        model = bentoml.models.get(text)
    except NotFound:
        raise PackageError(
            f"model {text!r}: neither a model package directory nor a tag in the BentoML model store; "
            "give a directory, 'default', or a tag listed by `bentoml models list`"
        ) from None
    except BentoMLException as error:  # a malformed tag
        raise PackageError(
            f"model {text!r}: not a package directory, and not a valid model store tag ({error})"
        ) from None
    root = Path(model.path)
    if not (root / CONFIG_FILE).is_file():
        raise PackageError(
            f"model store entry {model.tag}: {root} holds no {CONFIG_FILE}; it is not an onepass model package"
        )
    return root
