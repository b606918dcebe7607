"""The audience over time: each frame's detections linked into tracks, and per track what a display's
owner measures — how long the person stayed (dwell time), how long they looked (attention time), and
who they were (each attribute by majority over the track).

Tracking is ByteTrack (Zhang et al. 2022) from Roboflow's `trackers` package, on supervision's
`Detections` (the `video` extra): Kalman-predicted boxes matched by (buffered) IoU, confident detections
first, then the weak ones to the tracks left over. We only feed it the counted boxes and read back track
ids; then the fragments of one person's track that it ended and began again are joined
(track_stitching.py), and each track is extended, frame by frame before its first sighting and after
its last, with the candidates the count left out (`extend_tracks`: a person walking in or out, partly
in view, scores below the count for a few frames). The detections come from the task hooks
(`Task.tracks_objects`, `Task.detections`, `Task.candidates`), so nothing here knows which task found
them. Both `onepass predict` (video inputs) and the server (a video upload) report
through `audience_report`, from frames already predicted; so a resumed run tracks again from its records.

Times: a frame lasts until the next one (`frame_durations`). A track is seen from its first frame's
start to its last frame's end (the dwell time), and attends for the summed durations of its frames
whose detection attends (attention time); a frame the track coasts through undetected counts for
dwell only. The ground truth of a synthetic sequence is timed the same way, so the two compare.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from onepass.errors import ConfigError
from onepass.models.tasks.base import Detection, Task
from onepass.models.tasks.people import box_iou_matrix
from onepass.runtime.track_stitching import StitchConfig, fragments, majority, stitch
from onepass.runtime.video import frame_durations

# a track's first (last) box is at the image's left or right side when its outer edge is within one box
# width of it (and at least this many pixels): the person was cut by that side a few frames earlier, in
# frames the detector missed them (partly visible, or in view and missed: on 87 held-out people a box
# that had to touch the side gave 65.5 % of dwell times within 10 %, one within its width 73.6 %;
# chosen on the development sequences, docs/video.md)
SIDE_MARGIN_PX = 2.0
SPEED_SIGHTINGS = 4  # a track's speed across the image: its box edge over its first (last) sightings
MIN_SIDE_SPEED = 3.0  # pixels a second; slower, a box at the side is someone standing there, not crossing

# the lowest score of the candidates a video frame's record holds (`Task.candidates`), and so the lowest
# `TrackerConfig.extend_score`: records stay small (about 2 candidates a frame on the synthetic sequences)
CANDIDATE_SCORE = 0.3

AUDIENCE_FORMAT = "onepass-audience"
AUDIENCE_VERSION = 1


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack's settings, and which tracks count. The defaults suit a display camera at 5-30 fps."""

    high_score: float = 0.5  # detections at or above this are matched first, and may start a track
    # a detection continues a track when its box overlaps the track's predicted one at least this much;
    # low, because a person who stops or is partly hidden leaves the Kalman prediction
    min_iou: float = 0.03
    # and the overlap is BIoU's (Yang et al. 2023, in `trackers`): both boxes widened by this share of their
    # size on every side first, so that a narrow walker at a low frame rate, whose box moves more than its
    # width between frames, still overlaps its prediction (chosen on two synthetic development sets, true
    # boxes, without stitching: 21 and 30 tracks for 19 and 22 people at 0, 19 and 25 at 0.3; docs/video.md)
    box_buffer: float = 0.3
    lost_seconds: float = 1.5  # a track unseen this long ends (someone hidden behind another, briefly)
    min_frames: int = 3  # a track seen in fewer frames is dropped as a false detection
    # a track whose first (last) box is at the image's left or right side (SIDE_MARGIN_PX) and moves
    # across it entered (left) the view before (after) it was found: its box's crossing time, from its
    # speed, counts for dwell, up to this many seconds at each end (0: off). Needs the frame's width
    # (`audience_report`'s `width`). On version 4's detections, dwell within 10 % went 56.3 -> 73.6 % of
    # 87 held-out people.
    side_seconds: float = 1.0
    stitch: StitchConfig = StitchConfig()  # after ByteTrack: which of its tracks are one person's (track_stitching.py)
    # then each track goes on, before its first sighting and after its last, through the candidates the
    # count left out (`Detection.counted` False) scoring at least `extend_score` (None: off; the records
    # hold them down to `CANDIDATE_SCORE`), one frame at a time: the candidate whose box overlaps the
    # track's box moved on at its speed (over `SPEED_SIGHTINGS` sightings) by IoU `extend_iou` or more,
    # up to `extend_gap` frames without one. Chosen on three development sets (docs/video.md,
    # "Extending tracks"): dwell within 10 % 71.2 -> 76.7 % of seed 4000's 73 people; 73.6 -> 78.2 % of
    # 87 held-out ones.
    extend_score: float | None = CANDIDATE_SCORE
    extend_iou: float = 0.2
    extend_gap: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.high_score <= 1.0 or not 0.0 < self.min_iou < 1.0:
            raise ConfigError(f"tracker: high_score must be in (0, 1] and min_iou in (0, 1), got {self}")
        if self.box_buffer < 0:
            raise ConfigError(f"tracker: box_buffer must be >= 0, got {self}")
        if self.lost_seconds < 0 or self.min_frames < 1:
            raise ConfigError(f"tracker: lost_seconds must be >= 0 and min_frames >= 1, got {self}")
        if self.side_seconds < 0:
            raise ConfigError(f"tracker: side_seconds must be >= 0, got {self}")
        if self.extend_score is not None and not CANDIDATE_SCORE <= self.extend_score < self.high_score:
            raise ConfigError(
                f"tracker: extend_score must be None or in [{CANDIDATE_SCORE}, high_score), got {self.extend_score}"
            )
        if not 0.0 < self.extend_iou < 1.0 or self.extend_gap < 0:
            raise ConfigError(f"tracker: extend_iou must be in (0, 1) and extend_gap >= 0, got {self}")


@dataclass(frozen=True)
class Frame:
    """One analysed frame of a video: where it is, and the objects found in it."""

    index: int  # in the video, presentation order
    time: float  # seconds from the video's first frame
    detections: Sequence[Detection]


def tracked_task(tasks: Sequence[Task]) -> Task | None:
    """The first of `tasks` whose objects are tracked (the people), or None."""
    return next((t for t in tasks if t.tracks_objects), None)


def import_trackers():
    try:
        import supervision
        import trackers
    except ImportError:
        raise ConfigError('tracking needs supervision and trackers: pip install "onepass[video]"') from None
    return supervision, trackers


def link_tracks(frames: Sequence[Frame], rate: float, config: TrackerConfig = TrackerConfig()) -> list[list[int]]:
    """Per frame, the track id of each of its detections (-1: none): ByteTrack over the counted ones in
    order, then its fragments of one person joined (`config.stitch`) and each track extended with the
    candidates (`extend_tracks`)."""
    counted = [[i for i, d in enumerate(f.detections) if d.counted] for f in frames]
    tracked = _bytetrack(
        [Frame(f.index, f.time, [f.detections[i] for i in c]) for f, c in zip(frames, counted, strict=True)],
        rate,
        config,
    )
    ids = [[-1] * len(f.detections) for f in frames]
    for frame_ids, indices, found in zip(ids, counted, tracked, strict=True):
        for i, track in zip(indices, found, strict=True):
            frame_ids[i] = track
    if config.extend_score is not None:
        extend_tracks(frames, ids, config)
    return ids


def _bytetrack(frames: Sequence[Frame], rate: float, config: TrackerConfig) -> list[list[int]]:
    """ByteTrack over `frames` (their counted detections), its fragments of one person joined."""
    sv, trackers = import_trackers()
    overlap = trackers.BIoU(buffer_ratio=config.box_buffer)
    tracker = trackers.ByteTrackTracker(
        lost_track_buffer=round(config.lost_seconds * 30),  # its unit: frames at 30 fps
        frame_rate=rate,
        track_activation_threshold=config.high_score,
        minimum_consecutive_frames=1,  # every frame of a track counts; short tracks are dropped after
        minimum_iou_threshold=config.min_iou,
        high_conf_det_threshold=config.high_score,
        iou=overlap,
    )
    ids: list[list[int]] = []
    known: set[int] = set()
    for position, frame in enumerate(frames):
        boxes = np.array([d.box for d in frame.detections], np.float32).reshape(-1, 4)
        detections = sv.Detections(
            xyxy=boxes,
            confidence=np.array([d.score for d in frame.detections], np.float32),
            data={"order": np.arange(len(boxes))},  # which input each returned detection is
        )
        tracked = tracker.update(detections, timestamp=frame.time)
        frame_ids = [-1] * len(boxes)
        if len(tracked):
            for order, track in zip(tracked.data["order"], tracked.tracker_id, strict=True):
                frame_ids[int(order)] = int(track)
        if position:  # ByteTrack names a track on its second frame: give the first one back its id
            for order, track in enumerate(frame_ids):
                if track >= 0 and track not in known:
                    _claim_spawn(frames[position - 1], ids[-1], boxes[order], track, config.high_score, overlap)
        known.update(t for t in frame_ids if t >= 0)
        ids.append(frame_ids)
    parts = fragments(
        [f.time for f in frames],
        [[d.box for d in f.detections] for f in frames],
        [[d.attributes for d in f.detections] for f in frames],
        ids,
        config.min_frames,
    )
    joined = stitch(parts, config.stitch)
    return [[joined.get(t, t) for t in frame_ids] for frame_ids in ids]


def _claim_spawn(
    previous: Frame, previous_ids: list[int], box: np.ndarray, track: int, high_score: float, overlap
) -> None:
    """Give `track`, new in this frame at `box`, the previous frame's untracked confident detection it
    overlaps most, by the tracker's own `overlap` (its IoU measure): the one ByteTrack spawned it from (it
    returns a new track's first box unnamed)."""
    candidates = [
        order
        for order, (detection, named) in enumerate(zip(previous.detections, previous_ids, strict=True))
        if named < 0 and detection.score >= high_score
    ]
    if candidates:
        boxes = np.array([previous.detections[order].box for order in candidates], np.float32)
        overlaps = overlap.compute(boxes, box[None])[:, 0]  # (candidates,)
        if overlaps.max() > 0:
            previous_ids[candidates[int(overlaps.argmax())]] = track


def extend_tracks(frames: Sequence[Frame], ids: list[list[int]], config: TrackerConfig) -> None:
    """Give each track (seen in `config.min_frames` frames or more) the candidates (detections not
    `counted`, scoring at least `config.extend_score`) that continue it, in place in `ids`: going back
    from its first sighting, frame by frame, the box moves at the track's speed over its first
    `SPEED_SIGHTINGS` sightings (x0, y0, x1, y1 each, pixels a second), and the free candidate that
    overlaps it most, at IoU `config.extend_iou` or more, is the track's and the box moves from there;
    up to `config.extend_gap` frames in a row may have none. The same forward from its last sighting.
    A candidate never starts a track nor joins two."""
    sightings: dict[int, list[tuple[int, int]]] = {}
    for position, frame_ids in enumerate(ids):
        for order, track in enumerate(frame_ids):
            if track >= 0:
                sightings.setdefault(track, []).append((position, order))
    for track, seen in sightings.items():
        if len(seen) < config.min_frames:
            continue
        for step, part in ((-1, seen[:SPEED_SIGHTINGS]), (1, seen[-SPEED_SIGHTINGS:])):
            (a, i), (b, j) = part[0], part[-1]
            seconds = frames[b].time - frames[a].time
            first, last = np.array(frames[a].detections[i].box), np.array(frames[b].detections[j].box)
            velocity = (last - first) / seconds if seconds > 0 else np.zeros(4)
            position, order = seen[0] if step < 0 else seen[-1]
            box, time, missed = np.array(frames[position].detections[order].box), frames[position].time, 0
            while 0 <= position + step < len(frames) and missed <= config.extend_gap:
                position += step
                frame = frames[position]
                expected = box + velocity * (frame.time - time)
                free = [
                    k
                    for k, d in enumerate(frame.detections)
                    if ids[position][k] < 0 and not d.counted and d.score >= config.extend_score
                ]
                boxes = np.array([frame.detections[k].box for k in free], np.float64).reshape(-1, 4)
                overlaps = box_iou_matrix(expected[None], boxes)[0]
                if not free or overlaps.max() < config.extend_iou:
                    missed += 1
                    continue
                chosen = free[int(overlaps.argmax())]
                ids[position][chosen] = track
                box, time, missed = np.array(frame.detections[chosen].box), frame.time, 0


def track_reports(
    frames: Sequence[Frame],
    ids: Sequence[Sequence[int]],
    durations: Sequence[float],
    min_frames: int = 1,
    width: float | None = None,
    side_seconds: float = 0.0,
) -> list[dict[str, Any]]:
    """Per track (ids >= 0, seen in at least `min_frames` frames), numbered 1, 2... by first sighting:

    first_seen_s, last_seen_s (the start of its first and last frame), dwell_s, frames, attention_s,
    attraction (attention / dwell), looking (the [start, end] spans of attention), and votes: per attribute
    the majority label with its vote share. With the frame's `width` and `side_seconds`, a track that
    enters or leaves across the image's left or right side also gets `crossing_s`: [before, after], the
    seconds it was partly in view before its first sighting and after its last (`side_crossing`),
    counted in dwell_s."""
    seen: dict[int, list[tuple[int, Detection]]] = {}
    for position, (frame, frame_ids) in enumerate(zip(frames, ids, strict=True)):
        for detection, track in zip(frame.detections, frame_ids, strict=True):
            if track >= 0:
                seen.setdefault(track, []).append((position, detection))
    reports = []
    for sightings in sorted(seen.values(), key=lambda s: s[0][0]):
        if len(sightings) < min_frames:
            continue
        first, last = sightings[0][0], sightings[-1][0]
        start, end = frames[first].time, frames[last].time + durations[last]
        attention = 0.0
        spans: list[list[float]] = []
        for position, detection in sightings:
            if detection.attention:
                attention += durations[position]
                span_start, span_end = frames[position].time, frames[position].time + durations[position]
                if spans and abs(spans[-1][1] - span_start) < 1e-6:
                    spans[-1][1] = span_end
                else:
                    spans.append([span_start, span_end])
        crossing = side_crossing(frames, sightings, durations, width, side_seconds) if width else (0.0, 0.0)
        dwell = end - start + sum(crossing)
        report: dict[str, Any] = {
            "track": len(reports) + 1,
            "first_seen_s": round(start, 3),
            "last_seen_s": round(frames[last].time, 3),
            "dwell_s": round(dwell, 3),
            "frames": len(sightings),
        }
        if any(crossing):
            report["crossing_s"] = [round(crossing[0], 3), round(crossing[1], 3)]
        if any(d.attention is not None for _, d in sightings):
            report["attention_s"] = round(attention, 3)
            report["attraction"] = round(attention / dwell, 4) if dwell > 0 else 0.0
            report["looking"] = [[round(a, 3), round(b, 3)] for a, b in spans]
        attributes = {}
        for name in dict.fromkeys(a for _, d in sightings for a in d.attributes):
            votes = Counter(d.attributes[name] for _, d in sightings if name in d.attributes)
            label, count = majority(votes)
            attributes[name] = {"label": label, "share": round(count / sum(votes.values()), 4)}
        report["votes"] = attributes
        reports.append(report)
    return reports


def side_crossing(
    frames: Sequence[Frame],
    sightings: Sequence[tuple[int, Detection]],
    durations: Sequence[float],
    width: float,
    limit: float,
) -> tuple[float, float]:
    """(before, after): the seconds a track was partly in view before its first sighting and after its
    last, at most `limit` each. A person walking in across the image's left side is found only once
    enough of them shows: if the first box is at that side (its left edge within its width of it,
    `SIDE_MARGIN_PX`) and its right edge moves inward, that edge (the person's front) crossed the side
    (its distance from the side) / (its speed) earlier; the same for the right side, and for leaving.
    That time is counted in whole frames (the frames in which part of them already showed), so a track
    found in the very frame its person entered gets nothing, and never before the video's first frame
    or after its last (a person in view when the video starts is timed from its start, as the truth
    is). The speed is that edge's over the first (last) `SPEED_SIGHTINGS` sightings."""
    if limit <= 0 or len(sightings) < 2:
        return 0.0, 0.0

    def speed(part: Sequence[tuple[int, Detection]], edge: int) -> float:  # pixels a second, + to the right
        (a, first), (b, last) = part[0], part[-1]
        seconds = frames[b].time - frames[a].time
        return (last.box[edge] - first.box[edge]) / seconds if seconds > 0 else 0.0

    def crossing(
        part: Sequence[tuple[int, Detection]], box: tuple[float, float, float, float], entering: bool
    ) -> float:
        # the edge away from the side moves at the person's speed (the one at the side is cut by it)
        margin = max(SIDE_MARGIN_PX, box[2] - box[0])
        if box[0] <= margin:  # at the left side: in from the left (moving right) or out to it
            moving = speed(part, 2) * (1 if entering else -1)
            return min(box[2] / moving, limit) if moving >= MIN_SIDE_SPEED else 0.0
        if box[2] >= width - margin:  # at the right side
            moving = speed(part, 0) * (-1 if entering else 1)
            return min((width - box[0]) / moving, limit) if moving >= MIN_SIDE_SPEED else 0.0
        return 0.0

    def whole_frames(seconds: float, frame: float) -> float:
        return math.floor(seconds / frame) * frame if frame > 0 else 0.0

    first, last = sightings[0][0], sightings[-1][0]
    before = whole_frames(crossing(sightings[:SPEED_SIGHTINGS], sightings[0][1].box, True), durations[first])
    after = whole_frames(crossing(sightings[-SPEED_SIGHTINGS:], sightings[-1][1].box, False), durations[last])
    video_end = frames[-1].time + durations[-1]
    return min(before, frames[first].time - frames[0].time), min(after, video_end - frames[last].time - durations[last])


def summarise(tracks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The video in a few numbers: how many passed (OTS, opportunities to see), how many looked, the
    dwell and attention time summed and on average, and `labels`: the tracks per majority label."""
    summary: dict[str, Any] = {"ots": len(tracks)}
    summary["dwell_s_total"] = round(sum(t["dwell_s"] for t in tracks), 3)
    summary["dwell_s_mean"] = round(summary["dwell_s_total"] / len(tracks), 3) if tracks else 0.0
    if any("attention_s" in t for t in tracks):
        summary["looked"] = sum(1 for t in tracks if t.get("attention_s", 0) > 0)
        summary["attention_s_total"] = round(sum(t.get("attention_s", 0.0) for t in tracks), 3)
        total = summary["dwell_s_total"]
        summary["attraction"] = round(summary["attention_s_total"] / total, 4) if total > 0 else 0.0
    labels: dict[str, Counter] = {}
    for track in tracks:
        for name, vote in track["votes"].items():
            labels.setdefault(name, Counter())[vote["label"]] += 1
    summary["labels"] = {name: dict(sorted(counts.items())) for name, counts in labels.items()}
    return summary


def audience_report(
    frames: Sequence[Frame], rate: float, config: TrackerConfig = TrackerConfig(), **video: Any
) -> dict[str, Any]:
    """One video's audience: `video` (what the caller knows of it: frames, duration, `width` in pixels,
    which tracks crossing the image's side need...), the tracker's settings, the summary and the
    tracks. Deterministic: the same frames give the same report."""
    durations = frame_durations([f.time for f in frames], rate)
    ids = link_tracks(frames, rate, config)
    tracks = track_reports(frames, ids, durations, config.min_frames, video.get("width"), config.side_seconds)
    return {
        "video": {"analysed_frames": len(frames), **video},
        "tracker": {"name": "bytetrack (trackers)", **asdict(config)},
        "summary": summarise(tracks),
        "tracks": tracks,
    }
