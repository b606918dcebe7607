"""The work around inference, done in worker processes by both engines: read a chunk of image files
into a model-input batch, and turn a chunk of model outputs into files and table rows.

Both are small picklable objects: the local engine sends them to a process pool with each chunk,
the Ray engine to its tasks. They reuse the Predictor's own preprocessing and each task's
`to_result`, so the files hold exactly what `Predictor.predict` returns.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from onepass.data.image import MAX_IMAGE_PIXELS, BadImage, decode_image
from onepass.models.card import card_footnote, model_card
from onepass.models.package import ModelPackage
from onepass.models.panel import result_panel
from onepass.models.tasks.base import Task
from onepass.predict.inputs import InputImage
from onepass.predict.outputs import OutputLayout, table_row, write_atomic
from onepass.runtime.audience import CANDIDATE_SCORE, tracked_task
from onepass.runtime.predictor import preprocess

TOO_LARGE = "{source} is too large: {width}x{height} is {pixels} pixels, more than --max-pixels {max_pixels}"


def read_image(source: str, max_pixels: int) -> Image.Image:
    """An input file -> an upright RGB image (data/image.py, with --max-pixels named when it is too
    large); BadImage, recorded and skipped, for anything else."""
    return decode_image(source, max_pixels, source, too_large=TOO_LARGE)


def error_record(image: InputImage, reason: str) -> dict[str, str]:
    return {"image": image.key, "source": image.source, "error": reason}


@dataclass
class DecodedChunk:
    """The readable images of a chunk as one model-input batch; the others as error records."""

    images: list[InputImage]
    batch: np.ndarray  # (N, H, W, 3) uint8 at the model's input size
    sizes: list[tuple[int, int]]  # each image's own (H, W)
    errors: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ImageReader:
    package: ModelPackage
    max_pixels: int = MAX_IMAGE_PIXELS

    def __call__(self, images: Sequence[InputImage]) -> DecodedChunk:
        readable, pictures, errors = [], [], []
        for image in images:
            try:
                pictures.append(read_image(image.source, self.max_pixels))
                readable.append(image)
            except BadImage as error:
                errors.append(error_record(image, str(error)))
        height, width = self.package.config.input_size
        if not pictures:
            return DecodedChunk([], np.empty((0, height, width, 3), np.uint8), [], errors)
        batch, sizes = preprocess(pictures, self.package.config.input_size)
        return DecodedChunk(readable, batch, sizes, errors)


@dataclass(frozen=True)
class ResultWriter:
    """One chunk's outputs -> every chosen task's file per image (atomically), then the table rows."""

    package: ModelPackage
    tasks: tuple[str, ...]
    layout: OutputLayout
    max_pixels: int = MAX_IMAGE_PIXELS
    maps_at: str = "frame"  # each task's `to_result` at the image's size, or "model": its `model_result`

    def output_names(self) -> list[str]:
        """The backend outputs the chosen tasks read (others need not travel to the workers)."""
        by_name = {t.name: t for t in self.package.config.tasks}
        return [spec.name for name in self.tasks for spec in by_name[name].output_specs()]

    def __call__(
        self, images: Sequence[InputImage], sizes: Sequence[tuple[int, int]], outputs: Mapping[str, np.ndarray]
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """-> (table rows of the images now complete, error records of those that are not)."""
        by_name = {t.name: t for t in self.package.config.tasks}
        rows, errors = [], []
        for i, (image, size) in enumerate(zip(images, sizes, strict=True)):
            image_outputs = {k: v[i] for k, v in outputs.items()}  # this image's slice, as Predictor.predict
            if self.maps_at == "frame":
                results = {name: by_name[name].to_result(image_outputs, size) for name in self.tasks}
            else:
                results = {name: by_name[name].model_result(image_outputs, size) for name in self.tasks}
            try:
                self.write(image, results)
            except BadImage as error:  # the file changed or vanished between reading and the panel
                errors.append(error_record(image, str(error)))
                continue
            values = {k: v for name in self.tasks for k, v in by_name[name].table_values(results[name]).items()}
            records = {name: by_name[name].record(results[name]) for name in self.layout.record_tasks}
            tracked = self.tracked_record_task
            if image.video and tracked is not None:  # a video frame's record holds what its tracker may use
                candidates = tracked.candidates(image_outputs, size, CANDIDATE_SCORE)
                records[tracked.name] = tracked.record(results[tracked.name] + candidates)
            rows.append(table_row(image, size, values, records))
        return rows, errors

    @functools.cached_property
    def tracked_record_task(self) -> Task | None:
        """The recorded task whose objects a video's tracker follows (the people), found once."""
        by_name = {t.name: t for t in self.package.config.tasks}
        return tracked_task([by_name[name] for name in self.layout.record_tasks])

    @functools.cached_property
    def panel_footnote(self) -> str:
        """The model card's caveat under every panel (read from the package once per writer)."""
        return card_footnote(model_card(self.package))

    def write(self, image: InputImage, results: Mapping[str, Any]) -> None:
        layout = self.layout
        by_name = {t.name: t for t in self.package.config.tasks}
        if layout.format == "npz":
            arrays = {k: v for name, result in results.items() for k, v in by_name[name].arrays(result).items()}
            write_atomic(layout.npz_file(image.key), _npz_bytes(arrays), layout.temp_dir)
        else:
            for name in layout.file_tasks:
                codec = by_name[name].codec
                write_atomic(layout.task_file(name, image.key), codec.encode(results[name]), layout.temp_dir)
        if layout.visualize:
            picture = np.asarray(read_image(image.source, self.max_pixels))
            tasks = [by_name[n] for n in self.tasks]
            panel = result_panel(picture, results, tasks, self.panel_footnote)
            buffer = io.BytesIO()
            panel.save(buffer, format="PNG", compress_level=1)
            write_atomic(layout.panel_file(image.key), buffer.getvalue(), layout.temp_dir)


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Every chosen task's arrays (`Task.arrays`: maps under the task's name, each attribute group's
    probabilities as `<task>.<group>` in the model's class order, the people's boxes, scores...)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
