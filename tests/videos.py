"""Small videos for the tests: frames of a synthetic sequence, or plain moving bars, encoded with PyAV;
and a tiny model package with a people task (random weights: its detections are noise, but real)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tests.optional import require

CODECS = {".mp4": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}


def bars(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """`count` frames, each different: a bright column moving right, a green level rising."""
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 40, np.uint8)
        frame[:, (3 * i) % width] = 255
        frame[..., 1] = (7 * i) % 256
        frames.append(frame)
    return frames


def write_video(path: Path, frames: Sequence[np.ndarray], rate: float = 8) -> Path:
    av = require("av", "pip install 'onepass[video]'")
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[path.suffix], rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def sequence_frames(seed: int, count: int, height: int = 64, width: int = 80, fps: float = 8.0) -> list[np.ndarray]:
    """The first `count` frames of synthetic sequence `seed` (people walking through a room)."""
    from onepass.data.synth import plan_sequence, render_sequence_frame

    plan = plan_sequence(np.random.default_rng([seed, 0]), count / fps, fps)
    return [render_sequence_frame(plan, k, np.random.default_rng(k), height, width).scene.image for k in range(count)]


def people_package(path: Path) -> Path:
    from onepass.models import MultiTaskModel, save_package
    from onepass.models.tasks import DepthTask, PeopleTask
    from tests.tiny import PERSON_ATTRIBUTES, tiny_config

    tasks = (DepthTask(), PeopleTask(PERSON_ATTRIBUTES, max_people=8))
    save_package(path, MultiTaskModel(tiny_config(tasks=tasks)).eval(), "tiny-people")
    return path
