"""Video files in, RGB frames out: PyAV (FFmpeg) decoding, frame sampling, and the error a broken file
ends in, naming the frame where decoding failed.

A frame is known by its *index*, its position in presentation order (0 for the first frame shown),
and its *time* in seconds from the first frame (its presentation timestamp, so variable-rate video
keeps its true times). Both `onepass predict` (video files among its inputs) and the server (a video
uploaded to /predict) decode here; what they do with the frames is theirs.

`probe_video` lists a file's frames from its container alone (demuxing, no decoding: fast), so that a
run knows every frame's index and time before it decodes any; `decode_frames` then decodes front to
back. PyAV needs the `video` extra (`pip install "onepass[video]"`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from onepass.errors import ConfigError

FALLBACK_RATE = 25.0  # frames per second of a stream that declares none (FFmpeg's own guess for raw streams)


class BadVideo(ValueError):
    """A video that cannot be decoded (further): `frame` is the index of the first frame not decoded."""

    def __init__(self, message: str, frame: int):
        super().__init__(message)
        self.frame = frame


def import_av():
    """PyAV, or an error that says how to install it."""
    try:
        import av
    except ImportError:
        raise ConfigError('reading video needs PyAV: pip install "onepass[video]" (or pip install av)') from None
    return av


@dataclass(frozen=True)
class FrameSampler:
    """Which frames to keep: every `every`-th one, or with `fps`, the first frame of each 1/fps
    seconds (so a 30 fps video at `fps` 5 keeps frames 0, 6, 12...; a video slower than `fps` keeps
    every frame). The same rule for a file's plan and for a stream decoded on the fly."""

    every: int = 1
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"keep every N-th frame: N must be at least 1, got {self.every}")
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise ConfigError(f"frames per second to keep must be a positive number, got {self.fps}")

    def keep(self, times: list[float]) -> list[int]:
        """Indices of the frames to keep, from every frame's time in presentation order."""
        if self.fps is None:
            return list(range(0, len(times), self.every))
        kept, last_slot = [], -1
        for index, time in enumerate(times):
            slot = math.floor(time * self.fps + 1e-6)  # the 1/fps-second interval this frame starts in
            if slot > last_slot:
                kept.append(index)
                last_slot = slot
        return kept


@dataclass(frozen=True)
class VideoPlan:
    """A video's frames as its container lists them, before decoding.

    `times` holds every frame's time (seconds from the first), in presentation order. `failure` is
    set when the container could not be read to its end: `times` then lists the frames before it, and
    decoding is expected to fail at frame `len(times)`."""

    width: int
    height: int
    rate: float  # frames per second, the container's average (for frames it has no timestamps for)
    times: tuple[float, ...]
    failure: str | None = None

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last one's end."""
        if not self.times:
            return 0.0
        return self.times[-1] + frame_durations(list(self.times), self.rate)[-1]


def frame_durations(times: list[float], rate: float) -> list[float]:
    """How long each frame is shown: until the next one; the last as long as the median before it
    (or 1 / rate for a single frame)."""
    if not times:
        return []
    steps = [b - a for a, b in zip(times, times[1:], strict=False)]
    last = float(np.median(steps)) if steps else 1.0 / rate
    return [*steps, last]


def video_width(source: str | IO[bytes]) -> int:
    """The frames' width in pixels, from the container's header alone (`probe_video` reads every packet).
    Raises BadVideo (frame 0) as `probe_video` does."""
    with _video_stream(import_av(), source) as (_, stream):
        return stream.codec_context.width


def probe_video(source: str | IO[bytes]) -> VideoPlan:
    """Every frame's time from the container's packets (no decoding). Raises BadVideo (frame 0) when
    the file cannot be opened or has no video stream."""
    av = import_av()
    with _video_stream(av, source) as (container, stream):
        rate = float(stream.average_rate or stream.guessed_rate or FALLBACK_RATE)
        stamps: list[int | None] = []
        failure = None
        try:
            for packet in container.demux(stream):
                if packet.size and not packet.is_discard:  # size 0: the demuxer's end-of-stream packet
                    stamps.append(packet.pts)
        except av.error.FFmpegError as error:
            failure = _reason(error)
        width, height = stream.codec_context.width, stream.codec_context.height
        base = float(stream.time_base) if stream.time_base else 1.0 / rate
        declared = _declared_frames(stream, container, rate)
    if failure is None and declared is not None and len(stamps) < declared - 1:  # one frame of rounding
        # Demuxers stop quietly where a file was cut off or lost sync: its header said more.
        failure = f"the file holds {len(stamps)} frames of the {declared} its header declares (truncated or corrupt)"
    if stamps and all(s is not None for s in stamps):
        ordered = sorted(stamps)  # packets come in decoding order; frames are shown in pts order
        times = tuple((s - ordered[0]) * base for s in ordered)
    else:  # a stream without timestamps: a constant rate
        times = tuple(i / rate for i in range(len(stamps)))
    return VideoPlan(width, height, rate, times, failure)


def _declared_frames(stream, container, rate: float) -> int | None:
    """The frame count a container's header declares: its own count (mp4), or its duration (mkv, webm)."""
    if stream.frames:
        return int(stream.frames)
    if container.duration:  # microseconds (FFmpeg's AV_TIME_BASE)
        return round(container.duration / 1e6 * rate)
    return None


def decode_frames(source: str | IO[bytes]) -> Iterator[tuple[int, Any]]:
    """(index, PyAV VideoFrame) for each frame, front to back, decoded with FFmpeg's threads; a frame
    becomes pixels only when asked (`frame_rgb`), so skipped frames cost decoding alone. Raises
    BadVideo naming the first frame that could not be decoded; the frames before it were yielded."""
    av = import_av()
    index = 0
    with _video_stream(av, source) as (container, stream):
        stream.thread_type = "AUTO"  # frame and slice threads: FFmpeg's own, outside the GIL
        try:
            for frame in container.decode(stream):
                yield index, frame
                index += 1
        except av.error.FFmpegError as error:
            raise BadVideo(f"video decoding failed at frame {index} ({_reason(error)})", index) from None


@contextlib.contextmanager
def _video_stream(av: Any, source: str | IO[bytes]) -> Iterator[tuple[Any, Any]]:
    """The open container and its first video stream; BadVideo (frame 0) when there is neither."""
    try:
        container = av.open(source, mode="r")
    except av.error.FFmpegError as error:
        raise BadVideo(f"not a readable video ({_reason(error)})", 0) from None
    with container:
        if not container.streams.video:
            raise BadVideo("the file has no video stream", 0)
        yield container, container.streams.video[0]


def frame_rgb(frame: Any) -> np.ndarray:
    """A decoded frame's pixels: (H, W, 3) uint8 RGB."""
    return frame.to_ndarray(format="rgb24")


def _reason(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
