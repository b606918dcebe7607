"""The local engine: a process pool reads and writes while this process runs inference.

    chunk k+2, k+3 ... being read        (workers: decode, EXIF, RGB, resize to the model input)
    chunk k+1          waiting, decoded
    chunk k            in the backend    (this process: the only one touching the model)
    chunk k-1, k-2 ... being written     (workers: to_result, encode, atomic writes)

The driver appends a chunk's table rows only when a worker reports its files written, so the
table stays the commit record (see outputs.py). Workers exit within 0.2 s of the driver's death,
however it died, so a killed run leaves no writer behind.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from typing import Any, Protocol

from onepass.predict.inputs import InputImage
from onepass.predict.stages import DecodedChunk, ImageReader, ResultWriter
from onepass.predict.video_inputs import lower_thread_priority, video_chunks
from onepass.runtime.predictor import Predictor


class RunSink(Protocol):
    """Where results go: the output folder's table and error log, and the progress bar."""

    def rows(self, rows: Sequence[dict[str, Any]]) -> None: ...

    def errors(self, errors: Sequence[dict[str, str]]) -> None: ...


def run_local(
    images: Sequence[InputImage],
    load_predictor: Callable[[], Predictor],
    reader: ImageReader,
    writer: ResultWriter,
    sink: RunSink,
    batch_size: int,
    workers: int,
    video_reader: Callable[[Sequence[InputImage]], DecodedChunk] | None = None,
) -> None:
    """`video_reader` decodes the chunks of video files (predict/video_inputs.py), in order, in one
    thread of this process: FFmpeg decodes outside the GIL, and a video is decoded front to back once."""
    chunks = deque(video_chunks(images, batch_size))
    prefetch = workers + 2  # chunks decoded ahead of inference: enough to hide a slow file
    max_writing = workers + 2  # chunks of outputs queued for writing before inference waits
    # forkserver: workers fork from a small single-threaded server (never from this process, which
    # holds torch's threads) that imported the worker code once, so each starts in milliseconds.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["onepass.predict.stages"])
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),))
    decoder = ThreadPoolExecutor(1, "onepass-video", initializer=lower_thread_priority)
    try:
        reading: deque[Future[DecodedChunk]] = deque()
        writing: set[Future] = set()
        failures: list[Exception] = []

        def read_ahead() -> None:
            while chunks and len(reading) < prefetch and not failures:
                chunk = chunks.popleft()
                if chunk[0].in_video_file:
                    assert video_reader is not None, "video frames need a video reader"
                    reading.append(decoder.submit(video_reader, chunk))
                else:
                    reading.append(pool.submit(reader, chunk))

        def collect(block: bool) -> None:
            done, _ = wait(writing, return_when=FIRST_COMPLETED) if block else (_finished(writing), None)
            for future in done:
                writing.discard(future)
                try:
                    rows, errors = future.result()
                except Exception as error:  # a failed write (disk full...): commit the other chunks, then stop
                    failures.append(error)
                    continue
                sink.errors(errors)
                sink.rows(rows)

        read_ahead()  # workers start and decode while the model loads
        # the workers decode and encode on the cores inference uses: its threads must not spin between ops
        # (a backend loaded with shares_cores=True already does not: then this is the same backend)
        backend = load_predictor().backend.sharing_cores()
        names = writer.output_names()
        while reading and not failures:
            decoded = reading.popleft().result()
            read_ahead()
            sink.errors(decoded.errors)
            if decoded.images:
                outputs = backend.run(decoded.batch)
                outputs = {name: outputs[name] for name in names}
                writing.add(pool.submit(writer, decoded.images, decoded.sizes, outputs))
            collect(block=False)
            while len(writing) > max_writing:
                collect(block=True)
        while writing:  # after a failure too: what the other workers wrote gets its rows
            collect(block=True)
        if failures:
            raise failures[0]
    except BaseException:  # Ctrl-C or a failed write: drop queued chunks instead of finishing them
        decoder.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    decoder.shutdown()
    pool.shutdown()


def _finished(futures: set[Future]) -> list[Future]:
    return [f for f in futures if f.done()]


def _init_worker(driver: int) -> None:
    """Worker initializer: lower priority, and exit as soon as the driver is gone (even by SIGKILL).

    A pool worker would otherwise live on: it holds both ends of its own task pipe (so never sees
    EOF) and, under forkserver, keeps the fork server alive. A daemon thread polls the driver's pid.
    """

    def watch() -> None:
        while True:
            time.sleep(0.2)
            try:
                os.kill(driver, 0)
            except ProcessLookupError:
                os._exit(1)  # a half-written temporary file stays in DIR/.tmp; the next run removes it

    threading.Thread(target=watch, name="onepass-watch-driver", daemon=True).start()
    # Inference first, file work in the gaps: on a CPU the backend's threads use every core, and a
    # worker preempting one of them stalls the whole parallel op (measured: 0.45x -> 0.74x of the
    # Predictor's rate on 2 cores). On a GPU machine the workers get the idle cores regardless.
    os.nice(10)


def default_workers() -> int:
    """Reader/writer processes: one per core (the backend's own threads share them), at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
