"""`onepass eval MODEL --data SEQUENCES`: tracking scored on a sequence dataset (data/sequence.py).

Every frame goes through the model; its tracked task's detections (the people) are linked into tracks
as `onepass predict` links them (runtime/audience.py), and the tracks are scored against the true ones:

- py-motmetrics' CLEAR MOT and identity scores, frame by frame: MOTA, IDF1, ID switches, MOTP (mean
  1 - IoU of the matches), precision and recall; a prediction matches a true box at IoU >= 0.5.
- Per true track, dwell and attention time against the prediction it was matched to most often:
  `dwell_within_10pct`, the share of true tracks whose dwell time is off by at most 10 %;
  `attention_error`, |predicted - true| / true for the summed attention time of the whole set, and
  `attention_within_15pct`, the share of true tracks that looked at all whose attention time is off
  by at most 15 %. A true track never matched counts with zero time.

A score the data leaves undefined (attention when nobody looked, precision when nobody was found, MOTA
and recall when nobody was there) is left out of the scores, not NaN, so the metrics document is JSON.

The same scores are computed with the true boxes as detections (each with its true `looking` and
attributes, score 1): the tracker alone, apart from the detector ("tracker_only").
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onepass.data.sequence import LabelledSequence, read_sequence_dataset
from onepass.errors import ConfigError
from onepass.models.package import ModelPackage
from onepass.models.tasks.base import Detection, Task
from onepass.runtime.audience import CANDIDATE_SCORE, Frame, TrackerConfig, link_tracks, track_reports, tracked_task
from onepass.runtime.video import frame_durations

MATCH_IOU = 0.5  # as the MOT benchmarks match boxes
DWELL_TOLERANCE, ATTENTION_TOLERANCE = 0.10, 0.15  # the targets' relative errors (docs/video.md)


def evaluate_sequences(
    package: ModelPackage, path: str | Path, device: str = "cpu", batch_size: int = 16
) -> dict[str, Any]:
    """Tracking scores of `package` on the sequence dataset at `path`, and of the tracker alone on the
    true boxes: {"model": {...}, "tracker_only": {...}, "data": {...}}."""
    from onepass.runtime.backend import BACKEND_TYPES
    from onepass.runtime.predictor import Predictor, open_backend

    task = tracked_task(package.config.tasks)
    if task is None:
        raise ConfigError(
            f"{package.path}: the model has no task that tracks objects (a people task); it cannot be scored "
            "on a sequence dataset"
        )
    sequences = read_sequence_dataset(path)
    predictor = Predictor(package, open_backend(BACKEND_TYPES["torch"], package, device, "fp32"))
    started = time.perf_counter()
    predicted, truth = [], []
    for sequence in sequences:
        predicted.append(_model_frames(predictor, task, sequence, batch_size))
        truth.append(true_frames(sequence))
    seconds = time.perf_counter() - started
    config = TrackerConfig()
    return {
        "model": score_tracking(sequences, predicted, config),
        "tracker_only": score_tracking(sequences, truth, config),
        "data": {
            "path": str(path),
            "sequences": len(sequences),
            "images": sum(len(s.frames) for s in sequences),  # the metrics document's count of what was scored
            "frames": sum(len(s.frames) for s in sequences),
            "tracks": sum(len({p.track for f in s.frames for p in f.people}) for s in sequences),
            "seconds": round(seconds, 1),
        },
    }


def _model_frames(predictor, task: Task, sequence: LabelledSequence, batch_size: int) -> list[Frame]:
    from PIL import Image

    frames = []
    for start in range(0, len(sequence.frames), batch_size):
        chunk = sequence.frames[start : start + batch_size]
        pictures = [np.asarray(Image.open(f.path).convert("RGB")) for f in chunk]
        for offset, (labelled, result) in enumerate(
            zip(chunk, predictor.predict(pictures, [task.name], candidates=CANDIDATE_SCORE), strict=True)
        ):
            detections = task.detections(task.record(result[task.name]))
            frames.append(Frame(start + offset, labelled.time, detections))
    return frames


def true_frames(sequence: LabelledSequence) -> list[Frame]:
    """The true boxes as detections: score 1, the frame's `looking`, the track's attributes."""
    return [
        Frame(
            index,
            frame.time,
            [Detection(p.box, 1.0, p.looking, sequence.tracks[p.track]) for p in frame.people],
        )
        for index, frame in enumerate(sequence.frames)
    ]


def score_tracking(
    sequences: Sequence[LabelledSequence], detected: Sequence[Sequence[Frame]], config: TrackerConfig
) -> dict[str, float]:
    """CLEAR MOT and identity scores over every sequence together, and the dwell and attention errors."""
    import motmetrics as mm

    accumulators = []
    dwell_errors, attention_errors = [], []
    attention_true = attention_predicted = 0.0
    true_tracks = predicted_tracks = 0
    for sequence, frames in zip(sequences, detected, strict=True):
        durations = frame_durations([f.time for f in sequence.frames], sequence.fps)
        ids = link_tracks(frames, sequence.fps, config)
        reports = track_reports(frames, ids, durations, config.min_frames, sequence.size[1], config.side_seconds)
        kept = _kept_ids(frames, ids, config.min_frames)  # tracker id -> its report
        accumulator = mm.MOTAccumulator(auto_id=True)
        for frame, labelled, frame_ids in zip(frames, sequence.frames, ids, strict=True):
            hypotheses = [(kept[t], d.box) for d, t in zip(frame.detections, frame_ids, strict=True) if t in kept]
            accumulator.update(
                [p.track for p in labelled.people],
                [h for h, _ in hypotheses],
                match_distances([p.box for p in labelled.people], [b for _, b in hypotheses]),
            )
        accumulators.append(accumulator)
        truth = true_track_times(sequence, durations)
        true_tracks += len(truth)
        predicted_tracks += len(reports)
        matched = _dominant_hypotheses(accumulator)
        by_number = {r["track"]: r for r in reports}
        for track, (dwell, attention) in truth.items():
            report = by_number.get(matched.get(track, -1), {})
            dwell_errors.append(abs(report.get("dwell_s", 0.0) - dwell) / dwell)
            attention_true += attention
            attention_predicted += report.get("attention_s", 0.0)
            if attention > 0:
                attention_errors.append(abs(report.get("attention_s", 0.0) - attention) / attention)
    host = mm.metrics.create()
    summary = host.compute_many(
        accumulators,
        metrics=["mota", "idf1", "num_switches", "motp", "precision", "recall"],
        generate_overall=True,
    ).loc["OVERALL"]
    scores = {
        "mota": float(summary["mota"]),
        "idf1": float(summary["idf1"]),
        "id_switches": int(summary["num_switches"]),
        "motp": float(summary["motp"]),
        "precision": float(summary["precision"]),
        "recall": float(summary["recall"]),
        "tracks_true": true_tracks,
        "tracks_predicted": predicted_tracks,
        "dwell_within_10pct": _share([e <= DWELL_TOLERANCE for e in dwell_errors]),
        "dwell_error_median": float(np.median(dwell_errors)) if dwell_errors else math.nan,
        "attention_error": abs(attention_predicted - attention_true) / attention_true
        if attention_true > 0
        else math.nan,
        "attention_within_15pct": _share([e <= ATTENTION_TOLERANCE for e in attention_errors]),
    }
    # a score the data leaves undefined (nobody looked: attention; nobody there: MOTA, recall, dwell...) is
    # left out, as a metrics document leaves out what it does not know: NaN is not JSON
    return {k: v if isinstance(v, int) else round(v, 4) for k, v in scores.items() if math.isfinite(v)}


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan


def true_track_times(sequence: LabelledSequence, durations: Sequence[float]) -> dict[int, tuple[float, float]]:
    """Per true track: (dwell, attention) seconds, timed as runtime/audience.py times predicted tracks."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    attention: Counter = Counter()
    for position, frame in enumerate(sequence.frames):
        for person in frame.people:
            first.setdefault(person.track, position)
            last[person.track] = position
            if person.looking:
                attention[person.track] += durations[position]
    frames = sequence.frames
    return {t: (frames[last[t]].time + durations[last[t]] - frames[first[t]].time, attention[t]) for t in first}


def _kept_ids(frames: Sequence[Frame], ids: Sequence[Sequence[int]], min_frames: int) -> dict[int, int]:
    """Tracker id -> the report's track number (1, 2... by first sighting), for the tracks reported."""
    counts: Counter = Counter(t for frame_ids in ids for t in frame_ids if t >= 0)
    order = list(dict.fromkeys(t for frame_ids in ids for t in frame_ids if t >= 0 and counts[t] >= min_frames))
    return {t: number for number, t in enumerate(order, start=1)}


def _dominant_hypotheses(accumulator) -> dict[int, int]:
    """True track -> the predicted track it was matched to most often."""
    events = accumulator.mot_events
    matches = events[events["Type"].isin(["MATCH", "SWITCH", "TRANSFER", "ASCEND", "MIGRATE"])]
    votes: dict[int, Counter] = {}
    for true, hypothesis in zip(matches["OId"], matches["HId"], strict=True):
        votes.setdefault(int(true), Counter())[int(hypothesis)] += 1
    return {t: c.most_common(1)[0][0] for t, c in votes.items()}


def match_distances(true: Sequence[Sequence[float]], predicted: Sequence[Sequence[float]]) -> np.ndarray:
    """(T, P) 1 - IoU of xyxy boxes, NaN (never paired) below MATCH_IOU: motmetrics' distance, written
    here because its own `iou_matrix` calls a function NumPy 2 removed."""
    a = np.array(true, np.float64).reshape(-1, 4)[:, None, :]
    b = np.array(predicted, np.float64).reshape(-1, 4)[None, :, :]
    inter = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None) * np.clip(
        np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None
    )
    union = (
        (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    )
    distance = 1.0 - inter / np.maximum(union, 1e-12)
    return np.where(distance > 1.0 - MATCH_IOU, np.nan, distance)


def format_tracking(metrics: dict[str, Any]) -> str:
    """The two columns side by side, one metric a line ("-": undefined on this data)."""
    model, alone = metrics["model"], metrics["tracker_only"]
    lines = [f"{'metric':<24} {'model':>10} {'true boxes':>12}"]
    for name in dict.fromkeys([*model, *alone]):
        lines.append(f"{name:<24} {model.get(name, '-'):>10} {alone.get(name, '-'):>12}")
    return "\n".join(lines)


def eval_sequences_command(
    package: ModelPackage, path: Path, json_path: str | None, device: str, batch_size: int = 16
) -> int:
    """What `onepass eval` does for a sequence dataset: score, print, write the metrics document (the
    tracker-only scores as its "tracker_only" baseline: the same data, the true boxes as detections)."""
    from onepass.models.package import write_metrics

    metrics = evaluate_sequences(package, path, device, batch_size)
    data = metrics["data"]
    print(f"tracking on {data['sequences']} sequences ({data['frames']} frames, {data['tracks']} people):")
    print(format_tracking(metrics))
    task = tracked_task(package.config.tasks).name
    out = Path(json_path or f"eval-{package.name}.json")
    write_metrics(
        out, {task: metrics["model"]}, data, {"tracker_only": {task: metrics["tracker_only"]}}, model=str(package.path)
    )
    print(f"wrote {out}")
    return 0
