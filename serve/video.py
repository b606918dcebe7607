"""POST /predict with a short video (mp4, mkv, webm): the audience over time, the report `onepass predict`
writes to audience.json for one video (runtime/audience.py).

The upload arrives as an image does (the multipart field `image`, or the raw body with a video/*
content type) and is told apart by its first bytes. Within the upload limit (`max_upload_mb`, 413
from serve/body_limit.py) it must also last at most `max_video_seconds` by its container's header
(else 413, before any frame is decoded); it is analysed at `video_fps` frames per second (the
first frame of each 1/fps s), in batches that go through the worker's batched backend like images.
"""

from __future__ import annotations

import io
import time
from typing import Any

from onepass.errors import ConfigError
from onepass.runtime import audience, video
from onepass.runtime.audience import CANDIDATE_SCORE, Frame, audience_report, tracked_task
from onepass.runtime.video import BadVideo, FrameSampler, decode_frames, frame_rgb, probe_video
from onepass.serve.http_errors import ClientError
from onepass.serve.state import Runtime
from onepass.serve.uploads import PredictOptions

VIDEO_BATCH = 16  # frames per forward pass: as onepass predict's CPU default


def is_video(data: bytes) -> bool:
    """An ISO media file (mp4, mov: an `ftyp` box first) or a Matroska/WebM one (the EBML magic)."""
    return data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3"


def require_video_support() -> None:
    """A 501 that names what to install, when this server lacks the `video` extra (PyAV decodes, the
    trackers package tracks): a server installed without it still answers images."""
    try:
        video.import_av()
        audience.import_trackers()
    except ConfigError as error:
        raise ClientError(f"this server cannot analyse a video upload: {error}", 501) from None


def video_body(runtime: Runtime, data: bytes, options: PredictOptions) -> dict[str, Any]:
    """Decode the sampled frames, run them in batches, track: the /predict JSON body for a video."""
    predictor = runtime.predictor
    settings = runtime.settings
    task = tracked_task(predictor.config.tasks)
    if task is None:
        raise ClientError(
            "this model has no task that tracks objects (a people task), so it reports no audience for a "
            "video; upload a single frame as an image instead"
        )
    require_video_support()
    start = time.perf_counter()
    try:
        plan = probe_video(io.BytesIO(data))
    except BadVideo as error:
        raise ClientError(f"bad video upload: {error}") from None
    if plan.duration > settings.max_video_seconds:
        raise ClientError(
            f"the video lasts {plan.duration:.1f} s, over this server's limit of {settings.max_video_seconds:g} s "
            "(max_video_seconds); upload a shorter clip",
            413,
        )
    if plan.width * plan.height > settings.max_image_pixels:
        raise ClientError(
            f"the video's frames are {plan.width}x{plan.height} pixels, over this server's limit of "
            f"{settings.max_image_pixels} (max_image_pixels)",
            413,
        )
    wanted = FrameSampler(fps=settings.video_fps).keep(list(plan.times))
    keep = set(wanted)
    frames: list[Frame] = []
    pending: list[tuple[int, Any]] = []
    inference = 0.0

    def run(batch: list[tuple[int, Any]]) -> None:
        nonlocal inference
        began = time.perf_counter()
        results = predictor.predict([picture for _, picture in batch], tasks=[task.name], candidates=CANDIDATE_SCORE)
        inference += time.perf_counter() - began
        for (index, _), result in zip(batch, results, strict=True):
            frames.append(Frame(index, plan.times[index], task.detections(task.record(result[task.name]))))

    failure = None
    try:
        for index, frame in decode_frames(io.BytesIO(data)):
            if index >= len(plan.times):
                break
            if index in keep:
                pending.append((index, frame_rgb(frame)))
            if len(pending) == VIDEO_BATCH:
                run(pending)
                pending = []
    except BadVideo as error:
        failure = {"frame": error.frame, "error": str(error)}
    if pending:
        run(pending)
    if not frames:
        raise ClientError(f"bad video upload: {failure['error'] if failure else 'no frame could be decoded'}")
    report = audience_report(
        frames,
        settings.video_fps,
        planned_frames=len(plan.times),
        duration_s=round(plan.duration, 3),
        width=plan.width,
        height=plan.height,
        sampled_fps=settings.video_fps,
    )
    if failure or plan.failure:
        report["video"]["decoding_failed"] = failure or {"frame": len(plan.times), "error": plan.failure}
    total = time.perf_counter() - start
    return {
        "model": runtime.card,
        "tasks": [task.name],
        "audience": report,
        "timings_ms": {"inference": round(inference * 1e3, 3), "decode_and_track": round((total - inference) * 1e3, 3)},
    }
