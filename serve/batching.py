"""Adaptive batching inside the serving process: concurrent requests' images share forward passes.

One forward pass runs at a time. A request that finds the model idle and nobody queued runs its
own pass at once, in its own thread: there is no batching window to wait out, nor a hand-off. The
others queue; whenever the model is free again, a model thread takes every image queued meanwhile
(up to `max_batch_size`) and runs them as one batch, so under load the batch grows with the queue.

Camera frames for the frame-size graph (`run_frames`, where the backend has it) queue the same way and
share a pass only with frames of the same size.

Request threads call `run` and block until their slice of the batch is back, so the Predictor
(and everything else written against a backend) works unchanged over this one. A request that
has waited longer than `max_latency_ms` when its turn comes is refused with ServiceUnavailable
(the server answers 503), rather than run late. A batch that fails (in the forward pass, or in
handing the outputs back) fails its own callers only; the model thread goes on with the next.

Why not BentoML's batchable API: it batches only requests that reach it over HTTP, so the model
had to live in a second service. Measured on 2 cores (docs/serving.md, "Performance"), that hop
cost 13 ms a request at concurrency 1 and a share of both cores under load; BentoML still serves
the HTTP, health, metrics and workers.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from onepass.runtime.backend import runs_frames

logger = logging.getLogger("onepass.serve")

BATCH_SIZE_METRIC = "onepass_adaptive_batch_size"  # the server's /metrics histogram of images per forward pass


class ServiceUnavailable(Exception):
    """The model cannot take the request now (overloaded, shutting down): 503, the client may retry."""


@dataclass(eq=False)
class _Job:
    images: np.ndarray
    queued: float  # when it was handed in, on the batcher's clock
    frames: bool = False  # camera frames for the frame-size graph (`run_frames`), not model inputs
    result: Future = field(default_factory=Future)

    def joins(self, other: _Job) -> bool:
        """Whether the two can share a forward pass: the same graph, and for frames the same frame size."""
        return self.frames == other.frames and (not self.frames or self.images.shape[1:] == other.images.shape[1:])


class BatchingBackend:
    """A runtime backend that batches the calls of concurrent threads into one call of `backend`."""

    def __init__(
        self,
        backend,
        max_batch_size: int,
        max_latency_ms: float,
        on_batch: Callable[[int], None] | None = None,
        queued_backend=None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.backend = backend  # runs a lone request's pass
        self.queued_backend = queued_backend or backend  # runs the batches taken from the queue (under load)
        self.name = backend.name
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1e3
        self.on_batch = on_batch  # called with each batch's size (the server's metrics histogram)
        self.clock = clock  # seconds, for max_latency_ms (a parameter so that tests can control time)
        self._jobs: collections.deque[_Job] = collections.deque()
        self._changed = threading.Condition()
        self._closed = False
        self._busy = False  # a forward pass is running (in the model thread or a caller's)
        self._thread = threading.Thread(target=self._serve, name="onepass-model", daemon=True)
        self._thread.start()

    @property
    def runs_frames(self) -> bool:
        """The wrapped backends' frame-size graph, batched the same way (frames of one size together)."""
        return runs_frames(self.backend) and runs_frames(self.queued_backend)

    def run_frames(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 frames of any one size -> the frame-size graph's outputs for these N frames."""
        return self.run(frames, frames=True)

    def run(self, images: np.ndarray, frames: bool = False) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 -> the backend's named outputs for these N images."""
        job = _Job(images, self.clock(), frames)
        with self._changed:
            if self._closed:
                raise ServiceUnavailable("the server is shutting down; try again")
            alone = not self._busy and not self._jobs
            if alone:
                self._busy = True
            else:
                self._jobs.append(job)
        if alone:
            self._run_and_release([job], self.backend)
        return job.result.result()

    @property
    def closed(self) -> bool:
        """True once close() was called: new calls are refused."""
        with self._changed:
            return self._closed

    @property
    def queued(self) -> int:
        """Calls waiting for the model now (not counting the pass that runs)."""
        with self._changed:
            return len(self._jobs)

    def close(self) -> None:
        """Refuse new calls, run the ones already queued, then stop the model thread."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()

    def _next_batch(self) -> list[_Job] | None:
        """Every queued job that fits in one batch (at least one); None once closed and drained."""
        with self._changed:
            while self._busy or not self._jobs:
                if self._closed and not self._jobs:
                    return None
                self._changed.wait()
            self._busy = True
            batch = [self._jobs.popleft()]
            size = len(batch[0].images)  # a request larger than the limit runs alone, whole
            while (
                self._jobs and batch[0].joins(self._jobs[0]) and size + len(self._jobs[0].images) <= self.max_batch_size
            ):
                size += len(self._jobs[0].images)
                batch.append(self._jobs.popleft())
            return batch

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            now = self.clock()
            fresh: list[_Job] = []
            late: list[_Job] = []
            for job in batch:
                (late if now - job.queued > self.max_latency else fresh).append(job)
            for job in late:
                job.result.set_exception(
                    ServiceUnavailable(
                        f"the server is overloaded: the request waited {now - job.queued:.1f} s for the model, "
                        f"over max_latency_ms={self.max_latency * 1e3:g}; try again"
                    )
                )
            self._run_and_release(fresh, self.queued_backend)

    def _run_and_release(self, batch: list[_Job], backend) -> None:
        """One forward pass over `batch` (if any), then the model is free for the queue."""
        try:
            if batch:
                self._run(batch, backend)
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify()

    def _run(self, batch: list[_Job], backend) -> None:
        """Every job in `batch` ends with its result or with the batch's error, whatever fails."""
        size = sum(len(job.images) for job in batch)
        try:
            images = batch[0].images if len(batch) == 1 else np.concatenate([job.images for job in batch])
            outputs = backend.run_frames(images) if batch[0].frames else backend.run(images)
            results = _split(outputs, [len(job.images) for job in batch])
        except Exception as error:  # the batch's requests all get the error (a server fault); the next batch runs
            logger.exception("forward pass of a batch of %d image(s) failed", size)
            for job in batch:
                job.result.set_exception(error)
            return
        for job, result in zip(batch, results, strict=True):
            job.result.set_result(result)
        if self.on_batch is not None:
            try:
                self.on_batch(size)
            except Exception:  # a metrics hook must not take the model down; the answers are already out
                logger.exception("the batch-size hook failed for a batch of %d image(s)", size)


def _split(outputs: dict[str, np.ndarray], sizes: list[int]) -> list[dict[str, np.ndarray]]:
    """A batch's named outputs -> one dict per job, each with its own rows."""
    total = sum(sizes)
    for name, value in outputs.items():
        shape = getattr(value, "shape", ())
        if shape[:1] != (total,):  # a short output would hand some caller another caller's rows, or none
            raise RuntimeError(
                f"the backend returned output {name!r} with shape {shape} for a batch of {total} image(s)"
            )
    results, start = [], 0
    for size in sizes:
        results.append({name: value[start : start + size] for name, value in outputs.items()})
        start += size
    return results
