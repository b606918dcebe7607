"""One `onepass predict` run: plan (inputs minus what is done), run an engine, summarise.

`PredictJob` holds the options (the CLI is a thin layer over it); `run_job` is the whole run, for
either engine, so both share the inputs, the output folder, resume and error handling.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onepass.data.image import MAX_IMAGE_PIXELS
from onepass.predict.inputs import FrameOptions, InputError, collect_inputs
from onepass.predict.outputs import FORMATS, OutputFolder, OutputLayout, WriteError, table_columns
from onepass.predict.stages import ImageReader, ResultWriter

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class PredictJob:
    inputs: tuple[str, ...]
    out: Path
    model: str | None = None  # package directory; None / "default": the shipped model
    tasks: tuple[str, ...] | None = None  # None: every task of the model
    format: str = "png"
    visualize: bool = False
    maps_at: str = "frame"  # the maps at each image's size, or "model": at the model's input size
    backend: str = "auto"
    device: str = "auto"  # onepass.load's: the first CUDA GPU when there is one, else the CPU
    precision: str = "fp32"
    compile: bool = False  # torch backend: torch.compile the graph (with backend auto: a candidate to time)
    batch_size: int | None = None  # None: chosen for the backend (see `default_batch_size`)
    workers: int | None = None  # local engine's reader/writer processes; None: one per core, at most 8
    max_pixels: int = MAX_IMAGE_PIXELS
    engine: str = "local"
    ray_address: str | None = None
    ray_actors: int = 1
    ray_gpus_per_actor: float = 0.0
    ray_cpus_per_actor: float = 1.0
    progress: bool | None = None  # False: none; else a bar on a terminal, a line per 10 % elsewhere
    every: int = 1  # videos and numbered sequences: predict every N-th frame...
    fps: float | None = None  # ... or the first frame of each 1/fps seconds
    sequence_fps: float = 25.0  # the frame rate of numbered image sequences


@dataclass(frozen=True)
class Summary:
    total: int  # images found
    skipped: int  # already complete before this run
    done: int  # completed by this run
    failed: int  # recorded in errors.jsonl
    seconds: float  # this run's processing time, model loading included
    audience: bool = False  # the audience report of the videos was written (predict/audience_files.py)

    @property
    def images_per_second(self) -> float:
        return (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        counts = f"done {self.done}, skipped {self.skipped} (already complete), failed {self.failed}"
        if not self.done + self.failed:  # no rate for a run that processed nothing
            return f"{counts}: nothing to do"
        return f"{counts}, in {self.seconds:.1f} s ({self.images_per_second:.1f} images/s)"


def default_batch_size(backend: str, device: str) -> int:
    """Images per inference call: big enough to fill a GPU, small enough to keep a CPU pipeline
    flowing (on a CPU, throughput levels off by 16; a GPU wants more)."""
    return 64 if device.startswith("cuda") or backend == "tensorrt" else 16


def run_job(job: PredictJob) -> Summary:
    from onepass.errors import ConfigError
    from onepass.models.package import open_package
    from onepass.runtime.predictor import BACKENDS, MAPS_AT, check_compile, resolve_device, select_tasks

    if job.engine not in ENGINES:
        raise ConfigError(f"unknown engine {job.engine!r} (valid: {', '.join(ENGINES)})")
    if job.format not in FORMATS:
        raise ConfigError(f"unknown format {job.format!r} (valid: {', '.join(FORMATS)})")
    if job.backend not in BACKENDS:
        from onepass.errors import unknown_name_error

        raise unknown_name_error("backend", job.backend, list(BACKENDS))
    check_compile(job.backend, job.compile, "--compile")  # here, not after the inputs are collected
    for name, value in (("--batch-size", job.batch_size), ("--workers", job.workers), ("--ray-actors", job.ray_actors)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if job.maps_at not in MAPS_AT:
        raise ConfigError(f"unknown maps_at {job.maps_at!r} (valid: {', '.join(MAPS_AT)})")
    if job.visualize and job.maps_at != "frame":
        raise ConfigError("--visualize draws the maps over each image: it needs the maps at its size (--maps-at frame)")
    package = open_package(job.model)
    tasks = tuple(select_tasks(package.config.tasks, job.tasks))
    by_name = {t.name: t for t in package.config.tasks}
    images = collect_inputs(job.inputs, exclude=job.out, frames=FrameOptions(job.every, job.fps, job.sequence_fps))
    if not images:
        raise InputError(f"no images found in {', '.join(job.inputs)}")
    video_file = next((i.source for i in images if i.in_video_file), None)
    if video_file is not None and job.engine != "local":
        raise ConfigError(
            f"{video_file}: video files are decoded front to back on one machine; use --engine local, or "
            "give Ray the frames as a numbered image sequence (frames/%06d.png)"
        )
    if video_file is not None and job.visualize:
        raise ConfigError(f"{video_file}: --visualize draws panels from image files, not video frames; drop it")
    chosen = [by_name[name] for name in tasks]
    layout = OutputLayout.for_tasks(job.out, chosen, job.format, job.visualize)
    columns = {name: kind for t in chosen for name, kind in t.table_columns().items()}
    settings = {
        "model": {"name": package.name, "version": package.version},
        "tasks": list(tasks),
        "output_format": job.format,
        "maps_at": job.maps_at,
    }
    reader = ImageReader(package, job.max_pixels)
    writer = ResultWriter(package, tasks, layout, job.max_pixels, job.maps_at)
    device = resolve_device(job.device) if job.engine == "local" else job.device  # Ray: the actors' own
    batch_size = job.batch_size or default_batch_size(job.backend, device)

    audience = None
    with OutputFolder(layout, settings, table_columns(columns)) as folder:
        todo = folder.pending(images)
        start = time.perf_counter()
        sink = _Sink(folder, len(todo), job.progress is not False)
        try:
            if todo and job.engine == "local":
                from onepass.predict.local_engine import default_workers, run_local

                def load():
                    from onepass.runtime.predictor import load

                    # run_local decodes and encodes on the cores inference uses: its threads must not spin
                    predictor = load(
                        package.path,
                        backend=job.backend,
                        device=device,
                        precision=job.precision,
                        compile=job.compile,
                        shares_cores=True,
                        batch_size=batch_size,  # "auto" times the candidates at the batch they will run
                    )
                    print(f"onepass predict: backend {predictor.backend_choice}", file=sys.stderr, flush=True)
                    return predictor

                from onepass.predict.video_inputs import VideoReader

                videos = VideoReader(package, job.max_pixels) if any(i.in_video_file for i in todo) else None
                run_local(todo, load, reader, writer, sink, batch_size, job.workers or default_workers(), videos)
            elif todo:
                from onepass.predict.ray_engine import run_ray

                run_ray(todo, job, package, reader, writer, sink, batch_size)
            if any(i.video for i in images):  # the audience over time, from every finished frame's record
                from onepass.predict.audience_files import write_audience

                audience = write_audience(layout, images, chosen, settings["model"])
            from onepass.predict.run_files import write_run_files

            write_run_files(layout, images, chosen, job.inputs)
            seconds = time.perf_counter() - start
            folder.write_parquet()
        except WriteError as error:
            complete = len(images) - len(todo) + sink.done
            raise WriteError(
                f"{error}; the {complete} images complete so far are kept: fix this and run the same command "
                "again to resume"
            ) from None
        finally:
            sink.close()
    return Summary(len(images), len(images) - len(todo), sink.done, sink.failed, seconds, audience is not None)


class _Sink:
    """Results into the output folder, counts into the progress bar."""

    def __init__(self, folder: OutputFolder, total: int, progress: bool):
        from onepass.data.progress import progress_bar

        self.folder = folder
        self.done = 0
        self.failed = 0
        self.bar = progress_bar(total=total, desc="predict", unit="img", enabled=progress, smoothing=0.1)

    def rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.folder.add_rows(rows)
        self.done += len(rows)
        self.bar.update(len(rows))

    def errors(self, errors: Sequence[dict[str, str]]) -> None:
        self.folder.add_errors(errors)
        self.failed += len(errors)
        self.bar.update(len(errors))
        if errors:
            self.bar.set_postfix(failed=self.failed)

    def close(self) -> None:
        self.bar.close()
