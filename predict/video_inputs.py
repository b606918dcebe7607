"""Video files as `onepass predict` inputs: each becomes its sampled frames (one InputImage each, keyed
`<video key>/<frame index>`), and a reader decodes a chunk of them into a model-input batch.

The frames of a video are listed from its container before the run (`probe_video`: no decoding), so
resume works per frame: a frame with its row in the table is done, and a resumed run predicts only
the others (decoding the video from its start again, but converting and predicting only what is left).

A file that cannot be opened becomes one frame, 0, whose decoding fails and is recorded in
errors.jsonl; a file whose container ends before its header said (cut off, or corrupt) lists the
frames it has plus the next one, where decoding then fails: the frames before it are kept.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onepass.data.image import MAX_IMAGE_PIXELS
from onepass.models.package import ModelPackage
from onepass.predict.inputs import FrameOptions, InputImage
from onepass.predict.stages import DecodedChunk, error_record
from onepass.runtime.predictor import preprocess
from onepass.runtime.video import BadVideo, FrameSampler, decode_frames, frame_rgb, probe_video

FRAME_DIGITS = 6  # frame 12 -> "000012": keys sort in frame order up to a million frames


def frame_key(video: str, index: int) -> str:
    return f"{video}/{index:0{FRAME_DIGITS}d}"


def video_frames(key: str, source: str, frames: FrameOptions) -> list[InputImage]:
    """The frames of `source` to predict, as `frames` samples them."""
    try:
        plan = probe_video(source)
    except BadVideo:  # unreadable: frame 0 stands for it, and records why when it fails to decode
        return [InputImage(frame_key(key, 0), source, key, 0, 0.0, True)]
    times = list(plan.times)
    kept = [
        InputImage(frame_key(key, i), source, key, i, times[i], True)
        for i in FrameSampler(frames.every, frames.fps).keep(times)
    ]
    if plan.failure is not None:  # decoding will fail where the container ended: record it there
        kept.append(InputImage(frame_key(key, len(times)), source, key, len(times), plan.duration, True))
    return kept


def video_chunks(images: Sequence[InputImage], batch_size: int) -> Iterator[list[InputImage]]:
    """`images` in chunks of at most `batch_size`, a video file's frames never sharing a chunk with
    anything else (they are decoded in order, on their own)."""

    def group(image: InputImage) -> str:
        return image.source if image.in_video_file else ""

    chunk: list[InputImage] = []
    for image in images:
        if chunk and (len(chunk) == batch_size or group(image) != group(chunk[0])):
            yield chunk
            chunk = []
        chunk.append(image)
    if chunk:
        yield chunk


@dataclass
class VideoReader:
    """Chunks of video frames -> model-input batches, decoding each file front to back once.

    Called with the chunks of a video in frame order (the local engine's single video thread does),
    it carries on from where the previous chunk stopped; a chunk that goes backwards reopens the file.
    After a decoding failure the rest of that video's frames are dropped without another record."""

    package: ModelPackage
    max_pixels: int = MAX_IMAGE_PIXELS
    _source: str | None = field(default=None, init=False)
    _frames: Iterator[tuple[int, Any]] | None = field(default=None, init=False)
    _position: int = field(default=-1, init=False)  # the last frame index read from _frames
    _failed: set[str] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __call__(self, images: Sequence[InputImage]) -> DecodedChunk:
        with self._lock:
            return self._read(images)

    def _read(self, images: Sequence[InputImage]) -> DecodedChunk:
        height, width = self.package.config.input_size
        readable, pictures, errors = [], [], []
        source = images[0].source
        if source not in self._failed:
            if source != self._source or self._position >= images[0].frame:
                self._open(source)
            try:
                for image in images:
                    picture = self._frame(image)
                    if picture.shape[0] * picture.shape[1] > self.max_pixels:
                        errors.append(
                            error_record(
                                image,
                                f"too large: a {picture.shape[1]}x{picture.shape[0]} frame is more "
                                f"than --max-pixels {self.max_pixels}",
                            )
                        )
                        continue
                    pictures.append(picture)
                    readable.append(image)
            except BadVideo as error:
                self._failed.add(source)
                self._close()
                failed = next((i for i in images if i.frame >= error.frame), images[-1])
                errors.append({**error_record(failed, str(error)), "frame": error.frame})
        if not pictures:
            return DecodedChunk([], np.empty((0, height, width, 3), np.uint8), [], errors)
        batch, sizes = preprocess(pictures, self.package.config.input_size)
        return DecodedChunk(readable, batch, sizes, errors)

    def _open(self, source: str) -> None:
        self._close()
        self._source, self._frames, self._position = source, decode_frames(source), -1

    def _close(self) -> None:
        if self._frames is not None:
            self._frames.close()  # closes the container
        self._source, self._frames, self._position = None, None, -1

    def _frame(self, image: InputImage):
        """Decode up to `image.frame` and return its pixels; BadVideo when the file ends first."""
        assert self._frames is not None
        for index, frame in self._frames:
            self._position = index
            if index == image.frame:
                return frame_rgb(frame)
        raise BadVideo(
            f"video decoding failed at frame {self._position + 1}: the file ends there (truncated or corrupt)",
            self._position + 1,
        )


def lower_thread_priority() -> None:
    """Run the calling thread at nice 10, as the local engine's worker processes: decoding fills the
    gaps inference leaves (Linux nices threads one by one; elsewhere this does nothing)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass
