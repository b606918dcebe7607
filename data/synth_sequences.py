"""`onepass data sequences`: render synthetic sequences into the sequence dataset format
(data/sequence.py): people walking in, stopping, turning their heads and walking out, with exact
per-frame boxes, track ids, yaw and attributes (data/synth/_sequence.py)."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from onepass.data.png import encode_png
from onepass.data.progress import progress_bar
from onepass.data.sequence import FRAMES_DIR, TRACKS_FILE, tracks_document, write_sequences_manifest
from onepass.data.synth import PERSON_ATTRIBUTES, SequenceFrame, plan_sequence, render_sequence_frame
from onepass.data.synth_dataset import checked_render_request


@dataclass(frozen=True)
class SequenceJob:
    seed: int
    sequence: int
    frame: int
    seconds: float
    fps: float
    height: int
    width: int


def render_frame(job: SequenceJob) -> tuple[SequenceJob, SequenceFrame]:
    """One frame: sequence i's plan comes from (seed, i), frame k's noise from (seed, i, k + 1), so any
    worker renders any frame alone."""
    plan = plan_sequence(np.random.default_rng([job.seed, job.sequence]), job.seconds, job.fps)
    noise = np.random.default_rng([job.seed, job.sequence, job.frame + 1])
    return job, render_sequence_frame(plan, job.frame, noise, job.height, job.width)


def frame_entry(file: str, frame: SequenceFrame) -> dict:
    """A frame of tracks.json: its file, time and visible people."""
    people = [
        {
            "track": track,
            "bbox": list(person.box),
            "yaw": round(person.yaw, 3),
            "looking": person.looking,
            "truncated": person.truncated,
        }
        for person, track in zip(frame.scene.people, frame.tracks, strict=True)
    ]
    return {"file": file, "time": round(frame.time, 6), "people": people}


def write_synthetic_sequences(
    out: str | os.PathLike,
    n: int,
    seconds: float = 12.0,
    fps: float = 8.0,
    size: tuple[int, int] = (128, 160),
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[int, float]:
    """Render `n` sequences of `seconds` at `fps` -> (frames written, seconds taken)."""
    out = checked_render_request(n, size, out, "sequences.json", "a sequence dataset")
    if not (seconds > 0 and fps > 0):
        raise ValueError(f"--seconds and --fps must be positive, got {seconds} and {fps}")
    height, width = size
    started = time.perf_counter()
    names = [f"{i:03d}" for i in range(n)]
    frames = max(1, round(seconds * fps))
    jobs = [SequenceJob(seed, i, k, seconds, fps, height, width) for i in range(n) for k in range(frames)]
    entries: dict[int, dict[int, dict]] = {i: {} for i in range(n)}
    tracks: dict[int, dict[int, dict[str, str]]] = {i: {} for i in range(n)}
    for i in range(n):
        plan = plan_sequence(np.random.default_rng([seed, i]), seconds, fps)
        for walker in plan.walkers:
            tracks[i][walker.track] = {"age_group": "child" if walker.is_child else "adult", "gender": walker.gender}
        (out / names[i] / FRAMES_DIR).mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    with progress_bar(total=len(jobs), desc="sequences", unit="frame", enabled=progress) as bar:
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        results = pool.map(render_frame, jobs, chunksize=4) if pool else map(render_frame, jobs)
        try:
            for job, frame in results:
                file = f"{FRAMES_DIR}/{job.frame:06d}.png"
                (out / names[job.sequence] / file).write_bytes(encode_png(frame.scene.image))
                entries[job.sequence][job.frame] = frame_entry(file, frame)
                bar.update(1)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    for i, name in enumerate(names):
        document = tracks_document(fps, size, PERSON_ATTRIBUTES, tracks[i], [entries[i][k] for k in range(frames)])
        (out / name / TRACKS_FILE).write_text(json.dumps(document) + "\n")
    generator = {
        "generator": "onepass.data.synth sequences",
        "n": n,
        "seconds": seconds,
        "fps": fps,
        "size": [height, width],
        "seed": seed,
    }
    write_sequences_manifest(out, names, generator)
    return len(jobs), time.perf_counter() - started
