"""Joining track fragments after tracking: one person's track that the tracker ended and began again.

ByteTrack ends a track when the person is unseen for longer than its lost-track buffer, and it starts a
new one when the box jumps off the Kalman prediction (a walker who stops behind someone, turns, or is
partly hidden). Each fragment then carries only part of the person's dwell time. This step runs after
ByteTrack, over its tracks (it is no tracker: it never moves a detection from one track to another, it
only gives a later fragment the id of an earlier one), and joins fragment A to fragment B when:

- B begins after A's last frame, within `seconds` of it;
- B's first box is near A's path: its centre is at most `distance` box heights (A's) from the segment
  between where A was last seen and where A would be at B's start had it gone on at its last velocity
  (constant velocity, as the tracker predicts; the near end of the segment allows for a walker who
  stopped while unseen);
- their box heights agree, within a factor `size_ratio` (the median of each one's frames at the join);
- their attributes do not contradict: for every attribute both voted on, the same majority label.

Candidates are joined nearest first, each fragment to at most one before and one after it, so chains
A -> B -> C form. Only tracks that would be reported (`min_frames` sightings or more) take part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from onepass.errors import ConfigError

JOIN_FRAMES = 3  # sightings at each fragment's join that give its velocity and its size


@dataclass(frozen=True)
class StitchConfig:
    """Which fragments are one person's (the defaults: chosen on synthetic development sequences,
    docs/video.md)."""

    seconds: float = 2.0  # the longest gap joined; 0 turns stitching off
    distance: float = 0.5  # in box heights: how far the second fragment may begin from the first's path
    size_ratio: float = 1.5  # the most their box heights may differ, as a factor

    def __post_init__(self) -> None:
        if self.seconds < 0 or self.distance < 0 or self.size_ratio < 1:
            raise ConfigError(f"tracker stitching: seconds and distance must be >= 0 and size_ratio >= 1, got {self}")


@dataclass(frozen=True)
class Fragment:
    """One track as the tracker left it: its sightings in time order."""

    track: int
    times: np.ndarray  # (N,) seconds
    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1
    votes: Mapping[str, Counter]  # attribute -> label counts over the sightings

    def majority(self, attribute: str) -> str:
        return majority(self.votes[attribute])[0]


def majority(votes: Counter) -> tuple[str, int]:
    """The label with the most votes and its count; ties go to the later label name, stably (the audience
    report's majority and stitching's agree on it)."""
    return max(votes.items(), key=lambda kv: (kv[1], kv[0]))


def fragments(
    times: Sequence[float],
    boxes: Sequence[Sequence[Sequence[float]]],
    attributes: Sequence[Sequence[Mapping[str, str]]],
    ids: Sequence[Sequence[int]],
    min_frames: int,
) -> list[Fragment]:
    """The tracks (ids >= 0) seen in at least `min_frames` frames, from per frame: its time, and per
    detection its box, its attributes and its track id."""
    seen: dict[int, list[tuple[float, Sequence[float], Mapping[str, str]]]] = {}
    for time, frame_boxes, frame_attributes, frame_ids in zip(times, boxes, attributes, ids, strict=True):
        for box, labels, track in zip(frame_boxes, frame_attributes, frame_ids, strict=True):
            if track >= 0:
                seen.setdefault(track, []).append((time, box, labels))
    result = []
    for track, sightings in seen.items():
        if len(sightings) < min_frames:
            continue
        votes: dict[str, Counter] = {}
        for _, _, labels in sightings:
            for name, label in labels.items():
                votes.setdefault(name, Counter())[label] += 1
        result.append(
            Fragment(
                track,
                np.array([t for t, _, _ in sightings], np.float64),
                np.array([b for _, b, _ in sightings], np.float64).reshape(-1, 4),
                votes,
            )
        )
    return result


def stitch(parts: Sequence[Fragment], config: StitchConfig) -> dict[int, int]:
    """Track id -> the id of the earliest fragment of its chain, for every fragment joined to an earlier one."""
    if config.seconds <= 0:
        return {}
    candidates = []
    for a in parts:
        for b in parts:
            gap = b.times[0] - a.times[-1]
            if 0 < gap <= config.seconds and _sizes_agree(a, b, config.size_ratio) and _attributes_agree(a, b):
                distance = _distance_from_path(a, b, gap)
                if distance <= config.distance:
                    candidates.append((distance, gap, a.track, b.track))
    successor: dict[int, int] = {}
    predecessor: dict[int, int] = {}
    for _, _, a, b in sorted(candidates):
        if a not in successor and b not in predecessor:
            successor[a], predecessor[b] = b, a
    joined = {}
    for b in predecessor:
        first = b
        while first in predecessor:
            first = predecessor[first]
        joined[b] = first
    return joined


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2)


def _heights(boxes: np.ndarray) -> np.ndarray:
    return boxes[:, 3] - boxes[:, 1]


def _distance_from_path(a: Fragment, b: Fragment, gap: float) -> float:
    """How far B's first centre is from A's path over the gap, in A's box heights at its end."""
    tail = slice(-JOIN_FRAMES, None)
    centres, times = _centres(a.boxes[tail]), a.times[tail]
    velocity = (centres[-1] - centres[0]) / (times[-1] - times[0]) if len(times) > 1 else np.zeros(2)
    start, end = centres[-1], centres[-1] + velocity * gap
    point = _centres(b.boxes[:1])[0]
    step = end - start
    along = float(np.clip(np.dot(point - start, step) / np.dot(step, step), 0.0, 1.0)) if step.any() else 0.0
    height = float(np.median(_heights(a.boxes[tail])))
    return float(np.linalg.norm(point - (start + along * step))) / max(height, 1e-6)


def _sizes_agree(a: Fragment, b: Fragment, ratio: float) -> bool:
    ha = float(np.median(_heights(a.boxes[-JOIN_FRAMES:])))
    hb = float(np.median(_heights(b.boxes[:JOIN_FRAMES])))
    return min(ha, hb) > 0 and max(ha, hb) / min(ha, hb) <= ratio


def _attributes_agree(a: Fragment, b: Fragment) -> bool:
    return all(a.majority(name) == b.majority(name) for name in a.votes.keys() & b.votes.keys())
