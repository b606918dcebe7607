"""The Ray Data engine: the same run as the local engine, spread over a Ray cluster.

    from_items(key, source)
      -> map_batches(read)        tasks: decode + resize (ImageReader), errors carried as a column
      -> map_batches(Inference)   a pool of actors, each holding one Predictor (GPUs per actor set)
      -> map_batches(write)       tasks: to_result + encode + atomic writes (ResultWriter)
      -> the driver               appends table rows and errors as blocks arrive (the single writer)

Inputs and DIR must be on a filesystem every node sees (the workers write DIR's files; the driver
writes the table). Resume, skipping and error records are the local engine's: the driver plans
the same pending list and owns the same OutputFolder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from onepass.errors import ConfigError
from onepass.models.package import ModelPackage
from onepass.predict.inputs import InputImage
from onepass.predict.stages import ImageReader, ResultWriter

if TYPE_CHECKING:
    from onepass.predict.job import PredictJob
    from onepass.predict.local_engine import RunSink


def run_ray(
    images: Sequence[InputImage],
    job: PredictJob,
    package: ModelPackage,
    reader: ImageReader,
    writer: ResultWriter,
    sink: RunSink,
    batch_size: int,
) -> None:
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError("--engine ray needs Ray Data: pip install 'onepass[ray]'") from None
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=job.ray_address, include_dashboard=False, logging_level=logging.WARNING)
        except ConnectionError as error:
            raise ConfigError(f"--ray-address {job.ray_address}: cannot join the Ray cluster ({error})") from None
        started = True
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # our own bar counts finished images
        items = [{"key": image.key, "source": image.source} for image in images]
        dataset = ray.data.from_items(items)
        dataset = dataset.map_batches(
            _read_batch,
            fn_kwargs={"reader": reader},
            batch_size=batch_size,
            batch_format="numpy",
            # Half a core: decoding a chunk is light. Asking for other resources than the actors also
            # keeps Ray Data from fusing reads into them, where decoding would hold up inference.
            num_cpus=0.5 if job.ray_cpus_per_actor != 0.5 else 0.25,
        )
        dataset = dataset.map_batches(
            _Inference,
            fn_constructor_kwargs={
                "model": str(package.path),
                "backend": job.backend,
                "device": job.device,
                "precision": job.precision,
                "compile": job.compile,
                "batch_size": batch_size,
                "names": writer.output_names(),
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=job.ray_actors),
            num_gpus=job.ray_gpus_per_actor or None,
            num_cpus=job.ray_cpus_per_actor,
        )
        dataset = dataset.map_batches(
            _write_batch, fn_kwargs={"writer": writer}, batch_size=batch_size, batch_format="numpy"
        )
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                sink.errors([json.loads(e) for e in batch["error"] if e])
                sink.rows([json.loads(r) for r in batch["row"] if r])
        except Exception as error:
            cause = onepass_cause(error)
            if cause is None:
                raise
            raise cause from None  # one line (a failed write names its file), not Ray's remote traceback
    finally:
        if started:
            ray.shutdown()


def onepass_cause(error: BaseException) -> BaseException | None:
    """The onepass error a Ray task raised (a failed write, a backend refusing its options) inside
    Ray's wrappers, or None. Ray re-raises a task's exception as a RayTaskError that keeps the
    original as `.cause` (and may itself be wrapped, e.g. by Ray Data's UserCodeException)."""
    from onepass.models.package import PackageError
    from onepass.predict.outputs import OutputError

    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        is_wrapper = type(current).__module__.split(".")[0] == "ray"  # RayTaskError(WriteError) and kin
        if isinstance(current, (OutputError, ConfigError, PackageError)) and not is_wrapper:
            return current
        pending += [current.__context__, current.__cause__, getattr(current, "cause", None)]
    return None


def _read_batch(batch: dict[str, np.ndarray], reader: ImageReader) -> dict[str, np.ndarray]:
    """Decode a block's images; a bad one keeps its row (zeros image) with the reason in `error`."""
    images = [InputImage(str(k), str(s)) for k, s in zip(batch["key"], batch["source"], strict=True)]
    decoded = reader(images)
    height, width = reader.package.config.input_size
    pixels = np.zeros((len(images), height, width, 3), np.uint8)
    sizes = np.zeros((len(images), 2), np.int64)
    errors = {e["image"]: json.dumps(e, ensure_ascii=False) for e in decoded.errors}
    where = {image.key: i for i, image in enumerate(images)}
    for j, (image, size) in enumerate(zip(decoded.images, decoded.sizes, strict=True)):
        pixels[where[image.key]] = decoded.batch[j]
        sizes[where[image.key]] = size
    return {
        "key": np.array([i.key for i in images], dtype=object),
        "source": np.array([i.source for i in images], dtype=object),
        "image": pixels,
        "size": sizes,
        "error": np.array([errors.get(i.key, "") for i in images], dtype=object),
    }


class _Inference:
    """A Ray actor holding one Predictor; runs the backend on a block (bad rows included, as zeros,
    so every block has the same columns; their outputs are dropped by the writer)."""

    def __init__(
        self,
        model: str,
        backend: str,
        device: str,
        precision: str,
        compile: bool,
        batch_size: int,
        names: list[str],
    ):
        from onepass.runtime.predictor import load

        self.predictor = load(
            model, backend=backend, device=device, precision=precision, compile=compile, batch_size=batch_size
        )
        self.names = names

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        outputs = self.predictor.backend.run(np.ascontiguousarray(batch["image"]))
        result = {k: batch[k] for k in ("key", "source", "size", "error")}
        result.update({f"out.{name}": outputs[name] for name in self.names})
        return result


def _write_batch(batch: dict[str, np.ndarray], writer: ResultWriter) -> dict[str, np.ndarray]:
    """Files for the good rows; per input row a table row (JSON) or an error record (JSON)."""
    good = [i for i, e in enumerate(batch["error"]) if not e]
    images = [InputImage(str(batch["key"][i]), str(batch["source"][i])) for i in good]
    sizes = [(int(batch["size"][i][0]), int(batch["size"][i][1])) for i in good]
    outputs = {name[len("out.") :]: value[good] for name, value in batch.items() if name.startswith("out.")}
    rows, errors = writer(images, sizes, outputs) if good else ([], [])
    by_key_row = {r["image"]: json.dumps(r, ensure_ascii=False) for r in rows}
    by_key_error = {e["image"]: json.dumps(e, ensure_ascii=False) for e in errors}
    keys = [str(k) for k in batch["key"]]
    return {
        "row": np.array([by_key_row.get(k, "") for k in keys], dtype=object),
        "error": np.array(
            [by_key_error.get(k) or (e or "") for k, e in zip(keys, batch["error"], strict=True)], dtype=object
        ),
    }
