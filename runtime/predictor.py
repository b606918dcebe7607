"""One Predictor API over every backend: images of any size in, per-image results out."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from onepass.data.image import resize_to_input, rgb_image
from onepass.errors import ConfigError, unknown_name_error
from onepass.models.package import ModelPackage, open_package
from onepass.models.package_exports import FRAME_SIDES
from onepass.models.tasks.base import Task
from onepass.runtime import cpu
from onepass.runtime.backend import (
    BACKEND_TYPES,
    Backend,
    BackendUnavailable,
    RegisteredBackend,
    device_kind,
    runs_frames,
)

ImageInput = Image.Image | np.ndarray
log = logging.getLogger(__name__)


MAPS_AT = ("frame", "model")  # where `predict` returns the maps: at each image's own size, or the model's input size


class Predictor:
    """`predict(images)` -> one dict per image: task name -> result at the image's own size.

    semseg: (H, W) uint8 class ids; depth: (H, W) float32 metres; normals: (H, W, 3) float32 unit
    vectors; attributes: {group: {"label": str, "probabilities": {class: float}}}.

    With a backend that has the frame-size graph (`runs_frames`: the torch backend, onnxruntime with
    model.frame.onnx), each frame goes in at its own size and the graph resizes it and the maps; the
    Python left here is slicing. Otherwise (TensorRT, reduced precisions, a package exported before
    model.frame.onnx existed) `preprocess` resizes the frames and each task's `to_result` the maps.
    `maps_at="model"` returns the maps at the model's input size instead: the cheapest answer.
    """

    def __init__(self, package: ModelPackage, backend: Backend):
        self.package = package
        self.backend = backend
        self.config = package.config
        self.tasks = {t.name: t for t in self.config.tasks}
        self.backend_choice = backend.name
        self.unavailable: dict[str, str] = {}  # backend "auto" left out: name -> why (BackendUnavailable)

    def preprocess(self, images: Sequence[ImageInput]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Phase 1 of `predict`: resize every image to the model's input and stack them: (N, H, W, 3)
        uint8, and each image's own (H, W)."""
        return preprocess(images, self.config.input_size)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Phase 2: the model on a preprocessed batch -> the graph's post-processed outputs by name."""
        return self.backend.run(batch)

    def postprocess(
        self,
        outputs: dict[str, np.ndarray],
        sizes: Sequence[tuple[int, int]],
        tasks: Sequence[str] | None = None,
        maps_at: str = "frame",
        candidates: float | None = None,
    ) -> list[dict[str, Any]]:
        """Phase 3: each image's slice of the outputs at the model's resolution (`run`'s) -> its results,
        for the tasks asked for (all by default): each task's `to_result`, at the image's own size, or
        with `maps_at="model"` its `model_result`, the maps left at the model's input size. With
        `candidates`, a tracked task's result also holds the objects scoring at least that below its
        threshold (`Task.candidates`, marked not counted), for a tracker."""
        chosen = self.select_tasks(tasks)
        check_maps_at(maps_at)
        if maps_at == "frame":
            return self._results(outputs, sizes, chosen, lambda task: task.to_result, candidates)
        return self._results(outputs, sizes, chosen, lambda task: task.model_result, candidates)

    @property
    def runs_frames(self) -> bool:
        """Whether this Predictor's backend runs the frame-size graph (see the class docstring)."""
        return runs_frames(self.backend)

    def stack_frames(self, images: Sequence[ImageInput]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Frame phase 1: images of one size as they are, stacked: (N, H, W, 3) uint8 and their (H, W)."""
        frames = [as_rgb_array(image, f"image {i}") for i, image in enumerate(images)]
        sizes = [frame.shape[:2] for frame in frames]
        if len(set(sizes)) > 1:
            raise ConfigError(f"stack_frames: the images must have one size, got {sorted(set(sizes))}")
        return np.stack(frames), sizes

    def run_frames(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Frame phase 2: the frame-size graph on a stack of frames -> its outputs at the frames' size."""
        return self.backend.run_frames(frames)

    def frame_results(
        self,
        outputs: dict[str, np.ndarray],
        sizes: Sequence[tuple[int, int]],
        tasks: Sequence[str] | None = None,
        candidates: float | None = None,
    ) -> list[dict[str, Any]]:
        """Frame phase 3: each image's slice of `run_frames`' outputs -> its results (`frame_result`;
        `candidates` as in `postprocess`)."""
        chosen = self.select_tasks(tasks)
        return self._results(outputs, sizes, chosen, lambda task: task.frame_result, candidates, in_pixels=True)

    def _results(
        self,
        outputs: dict[str, np.ndarray],
        sizes: Sequence[tuple[int, int]],
        chosen: Sequence[str],
        hook: Callable[[Task], Callable[[dict[str, np.ndarray], tuple[int, int]], Any]],
        candidates: float | None = None,
        in_pixels: bool = False,
    ) -> list[dict[str, Any]]:
        """Each image's slice of `outputs` -> its results, by each chosen task's `hook` (a result hook),
        a tracked task's `candidates` (from that score up) after its result's objects."""
        results = []
        for i, size in enumerate(sizes):
            image_outputs = {k: v[i] for k, v in outputs.items()}  # this image's slice of every output
            result = {name: hook(self.tasks[name])(image_outputs, size) for name in chosen}
            if candidates is not None:
                for name in chosen:
                    if self.tasks[name].tracks_objects:
                        result[name] = result[name] + self.tasks[name].candidates(
                            image_outputs, size, candidates, in_pixels
                        )
            results.append(result)
        return results

    def predict(
        self,
        images: ImageInput | Iterable[ImageInput],
        tasks: Sequence[str] | None = None,
        maps_at: str = "frame",
        candidates: float | None = None,
    ) -> list[dict[str, Any]]:
        """One image or several; always returns a list with one result dict per image, its maps at the
        image's own size (`maps_at="frame"`) or at the model's input size (`maps_at="model"`). With
        `candidates` (a score), a tracked task's result also holds its objects scoring at least that
        below its threshold, marked `"counted": False` (`Task.candidates`): what a video's tracker reads.

        The composition of `preprocess`, `run` and `postprocess`, or on a backend with the frame-size
        graph (and maps at the frames' size) of `stack_frames`, `run_frames` and `frame_results` for
        each group of images of one size (the bench times each phase)."""
        if isinstance(images, Image.Image | np.ndarray):
            images = [images]
        images = list(images)
        chosen = self.select_tasks(tasks)  # a wrong task name fails before any work
        check_maps_at(maps_at)
        if not images:
            return []
        if maps_at == "frame" and self.runs_frames:
            return self._predict_frames(images, chosen, candidates)
        return self._predict_resizing(images, chosen, maps_at, candidates)

    def _predict_resizing(
        self, images: list[ImageInput], chosen: list[str], maps_at: str, candidates: float | None
    ) -> list[dict[str, Any]]:
        batch, sizes = self.preprocess(images)
        return self.postprocess(self.run(batch), sizes, chosen, maps_at, candidates)

    def _predict_frames(
        self, images: list[ImageInput], chosen: list[str], candidates: float | None
    ) -> list[dict[str, Any]]:
        """Each group of same-size images through the frame-size graph in one batch, results in order."""
        rgb = [as_rgb_image(image, f"image {i}") for i, image in enumerate(images)]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(rgb):
            groups.setdefault((image.height, image.width), []).append(i)
        results: list[dict[str, Any] | None] = [None] * len(images)
        smallest, largest = FRAME_SIDES
        for (height, width), indices in groups.items():
            pictures = [rgb[i] for i in indices]
            if smallest <= min(height, width) and max(height, width) <= largest:
                frames, sizes = self.stack_frames(pictures)
                group = self.frame_results(self.run_frames(frames), sizes, chosen, candidates)
            else:  # outside the sides the exported frame graph takes: resized here, as before
                group = self._predict_resizing(pictures, chosen, "frame", candidates)
            for i, result in zip(indices, group, strict=True):
                results[i] = result
        return results

    def select_tasks(self, tasks: Sequence[str] | None) -> list[str]:
        return select_tasks(self.config.tasks, tasks)


def preprocess(images: Sequence[ImageInput], input_size: tuple[int, int]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Resize every image to the model's input and stack: (N, H, W, 3) uint8, original (H, W)s.

    A function as well as a method, for workers that preprocess without loading a model."""
    batch = np.empty((len(images), *input_size, 3), np.uint8)
    sizes = []
    for i, image in enumerate(images):
        rgb = as_rgb_array(image, f"image {i}")  # an (H, W, 3) array stays as it is, no copy through Pillow
        sizes.append(rgb.shape[:2])
        batch[i] = resize_to_input(rgb, input_size)
    return batch, sizes


class FixedSizeOnly:
    """A backend seen without its frame-size graph: `run` only."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.name = backend.name

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.backend.run(images)


def python_resizing(predictor: Predictor) -> Predictor:
    """The same package and backend, resizing frames and maps in Python (Pillow, each task's `to_result`)
    as `onepass predict`'s workers do: the path before the frame-size graph, to compare with it."""
    resizing = Predictor(predictor.package, FixedSizeOnly(predictor.backend))
    resizing.backend_choice = f"{predictor.backend_choice}, resizing in Python"
    return resizing


def check_maps_at(maps_at: str) -> None:
    if maps_at not in MAPS_AT:
        raise unknown_name_error("maps_at", maps_at, list(MAPS_AT))


def select_tasks(available: Sequence[Task], tasks: Sequence[str] | None) -> list[str]:
    """The task names asked for (all by default), each checked against the model's."""
    names = [t.name for t in available]
    if tasks is None:
        return names
    for name in tasks:
        if name not in names:
            raise unknown_name_error("task", name, names)
    return list(tasks)


def as_rgb_array(image: ImageInput, what: str) -> np.ndarray:
    """`as_rgb_image` as an (H, W, 3) uint8 array; an (H, W, 3) uint8 array is returned as it is (no copy:
    going through Pillow copied a 1080x1920 frame twice, 10 ms of the frame path), an (H, W) one with its
    grey level in each channel, as Pillow's "L" to "RGB" conversion does."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        if image.ndim == 3 and image.shape[2] == 3:
            return image
        if image.ndim == 2:
            return np.repeat(image[:, :, None], 3, axis=2)
    return np.asarray(as_rgb_image(image, what))


def as_rgb_image(image: ImageInput, what: str) -> Image.Image:
    """PIL image (any mode; EXIF orientation applied, as for a file) or (H, W) / (H, W, 3) uint8 array
    -> RGB PIL image. The conversions are the image decoder's (data/image.py)."""
    if isinstance(image, Image.Image):
        return rgb_image(image, what)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ConfigError(f"{what}: expected an (H, W, 3) or (H, W) uint8 array, got {image.shape} {image.dtype}")
        return Image.fromarray(image).convert("RGB")
    raise ConfigError(f"{what}: expected a PIL image or a numpy array, got {type(image).__name__}")


BACKENDS = ("auto", *BACKEND_TYPES)  # what `backend=` takes: "auto", or a registered backend's name
AUTO_TIMED_RUNS = 5  # timed runs per candidate, at the caller's batch size, when "auto" picks a backend
# precision "auto": the precisions tried, where a backend offers them. int8 is never picked for you: it
# costs accuracy (docs/performance.md), so it is asked for by name.
AUTO_PRECISIONS = ("fp32", "bf16")


def load(
    path: str | os.PathLike | None = None,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    compile: bool = False,
    shares_cores: bool = False,
    batch_size: int = 1,
) -> Predictor:
    """A Predictor for a model package directory (None or "default": the shipped model).

    device "auto" is the first CUDA GPU when there is one, else the CPU. backend "auto" builds every
    backend that can run this package at `precision` on `device`, times a few runs of each at
    `batch_size` (the batch the caller will run: which backend is fastest can change with it) and
    keeps the fastest; `predictor.backend_choice` says what it measured. precision "auto" (with
    backend "auto") times each backend at fp32 and, where it offers it and the hardware computes it
    natively (a CPU with AVX512-BF16 or AMX), at bf16. `compile=True` compiles the torch backend (the
    only one with that option): with bf16 on such a CPU, that is the pairing worth timing.
    `shares_cores=True` opens each backend as `Backend.sharing_cores` would leave it (its idle threads
    sleep), for a process that decodes or encodes beside inference: what "auto" times is then what
    runs, and no second session is built.
    """
    package = open_package(path)
    if backend != "auto" and backend not in BACKEND_TYPES:
        raise unknown_name_error("backend", backend, ["auto", *BACKEND_TYPES])
    device = resolve_device(device)
    if precision == "auto":
        if backend != "auto":
            raise ConfigError(f"precision 'auto' picks among backends: use it with backend 'auto', not {backend!r}")
        return _fastest(package, device, AUTO_PRECISIONS, compile, shares_cores, batch_size)
    if backend != "auto":
        check_compile(backend, compile)
        chosen = BACKEND_TYPES[backend]
        predictor = Predictor(package, open_backend(chosen, package, device, precision, compile, shares_cores))
        predictor.backend_choice = f"{backend} (asked for)"
        return predictor
    return _fastest(package, device, (precision,), compile, shares_cores, batch_size)


def check_compile(backend: str, compile: bool, option: str = "compile=True") -> None:
    """ConfigError when `compile` is asked of a backend (by name) that has no compile option."""
    if compile and backend != "auto" and "compile" not in BACKEND_TYPES[backend].options:
        raise ConfigError(f"{option}: the {backend} backend has no compile option (the torch backend has)")


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def open_backend(
    backend: type[RegisteredBackend],
    package: ModelPackage,
    device: str,
    precision: str,
    compile: bool = False,
    shares_cores: bool = False,
) -> RegisteredBackend:
    """The backend built for this package (sharing the CPU's cores if asked), or BackendUnavailable
    saying why it cannot run here."""
    options = {"compile": compile} if "compile" in backend.options else {}
    if shares_cores and device_kind(device) == "cpu":
        options |= backend.sharing_options()
    return backend.open(package, device, precision, **options)


def _fastest(
    package: ModelPackage,
    device: str,
    precisions: tuple[str, ...],
    compile: bool,
    shares_cores: bool = False,
    batch_size: int = 1,
) -> Predictor:
    """Every backend that is available for this package and device, at each of `precisions` it offers,
    timed; the fastest kept. With one precision the candidates are named by backend, else by backend
    and precision ("torch bf16").

    Only `BackendUnavailable` leaves a candidate out: a stale or corrupt export is an error to fix, not
    a reason to run something else."""
    height, width = package.config.input_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    image = np.random.default_rng(0).integers(0, 256, (batch_size, height, width, 3), dtype=np.uint8)
    timings: dict[str, float] = {}
    refused: dict[str, str] = {}
    best: Backend | None = None
    best_name = ""
    picking = len(precisions) > 1  # precision "auto": what each backend offers, where the hardware has it
    for name, backend in BACKEND_TYPES.items():
        for precision in precisions:
            if picking and precision not in backend.precisions:
                continue
            label = f"{name} {precision}" if picking else name
            try:
                # asked for by name, a precision runs; picked for you, it must be native here
                emulated = picking and device_kind(device) == "cpu" and cpu.missing_cpu_units(precision)
                if emulated:
                    raise BackendUnavailable(emulated)
                candidate = open_backend(backend, package, device, precision, compile, shares_cores)
            except BackendUnavailable as error:  # not here (no GPU, library, provider or export): say why, go on
                refused[label] = str(error)
                continue
            for _ in range(2):  # warm-up: first-run allocations, kernel selection, lazy initialisation
                candidate.run(image)
            times = []
            for _ in range(AUTO_TIMED_RUNS):
                start = time.perf_counter()
                candidate.run(image)
                times.append(time.perf_counter() - start)
            timings[label] = sorted(times)[len(times) // 2]
            if best is None or timings[label] < timings[best_name]:
                best, best_name = candidate, label
    if best is None:
        raise BackendUnavailable(
            f"no backend can run {package.path} at {' or '.join(precisions)} on {device}: "
            + "; ".join(f"{k}: {v}" for k, v in refused.items())
        )
    predictor = Predictor(package, best)
    measured = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in sorted(timings.items(), key=lambda kv: kv[1]))
    predictor.backend_choice = f"{best_name} (auto: batch-{batch_size} median on {device}: {measured})"
    predictor.unavailable = refused
    log.info("onepass: backend %s", predictor.backend_choice)
    for name, reason in refused.items():
        log.info("onepass: backend %s not available: %s", name, reason)
    return predictor
