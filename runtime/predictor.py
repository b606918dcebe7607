"""One Predictor API over every backend: images of any size in, per-image results out."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image

from onepass.models.package import ModelPackage, open_package
from onepass.models.tasks.base import ConfigError, unknown_name_error

ImageInput = Image.Image | np.ndarray


class Backend(Protocol):
    name: str

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 at the model's input size -> post-processed outputs by name."""


class Predictor:
    """`predict(images)` -> one dict per image: task name -> result at the image's own size.

    semseg: (H, W) uint8 class ids; depth: (H, W) float32 metres; normals: (H, W, 3) float32 unit
    vectors; attributes: {group: {"label": str, "probabilities": {class: float}}}.
    """

    def __init__(self, package: ModelPackage, backend: Backend):
        self.package = package
        self.backend = backend
        self.config = package.config
        self.tasks = {t.name: t for t in self.config.tasks}

    def preprocess(self, images: Sequence[ImageInput]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Resize every image to the model's input and stack: (N, H, W, 3) uint8, original (H, W)s."""
        height, width = self.config.input_size
        batch = np.empty((len(images), height, width, 3), np.uint8)
        sizes = []
        for i, image in enumerate(images):
            rgb = as_rgb_image(image, f"image {i}")
            sizes.append((rgb.height, rgb.width))
            batch[i] = np.asarray(rgb.resize((width, height), Image.Resampling.BILINEAR))
        return batch, sizes

    def predict(
        self, images: ImageInput | Iterable[ImageInput], tasks: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """One image or several; always returns a list with one result dict per image."""
        if isinstance(images, Image.Image | np.ndarray):
            images = [images]
        images = list(images)
        chosen = self.select_tasks(tasks)
        if not images:
            return []
        batch, sizes = self.preprocess(images)
        outputs = self.backend.run(batch)
        results = []
        for i, size in enumerate(sizes):
            image_outputs = {k: v[i] for k, v in outputs.items()}  # this image's slice of every output
            results.append({name: self.tasks[name].to_result(image_outputs, size) for name in chosen})
        return results

    def select_tasks(self, tasks: Sequence[str] | None) -> list[str]:
        if tasks is None:
            return list(self.tasks)
        for name in tasks:
            if name not in self.tasks:
                raise unknown_name_error("task", name, list(self.tasks))
        return list(tasks)


def as_rgb_image(image: ImageInput, what: str) -> Image.Image:
    """PIL image (any mode) or (H, W) / (H, W, 3) uint8 array -> RGB PIL image."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ConfigError(f"{what}: expected an (H, W, 3) or (H, W) uint8 array, got {image.shape} {image.dtype}")
        return Image.fromarray(image).convert("RGB")
    raise ConfigError(f"{what}: expected a PIL image or a numpy array, got {type(image).__name__}")


BACKENDS = ("auto", "torch")


def load(
    path: str | os.PathLike | None = None,
    backend: str = "auto",
    device: str = "cpu",
    precision: str = "fp32",
    compile: bool = False,
) -> Predictor:
    """A Predictor for a model package directory (None or "default": the shipped model).

    backend "auto" picks the fastest backend available; today that is "torch" (the ONNX Runtime
    and TensorRT backends come with the export stage).
    """
    package = open_package(path)
    if backend not in BACKENDS:
        raise unknown_name_error("backend", backend, list(BACKENDS))
    from onepass.runtime.torch_backend import TorchBackend

    return Predictor(package, TorchBackend(package, device=device, precision=precision, compile=compile))
