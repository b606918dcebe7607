"""runtime/track_stitching.py: a track ByteTrack ended and began again is joined when the second part
starts near where the first was going, at the same size and with the same attributes; two people are not."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from onepass.errors import ConfigError
from onepass.models.tasks.base import Detection
from onepass.runtime.audience import Frame, TrackerConfig, audience_report
from onepass.runtime.track_stitching import Fragment, StitchConfig, stitch
from tests.optional import require

require("trackers", "pip install 'onepass[video]'")

FPS = 8.0
UNSTITCHED = TrackerConfig(stitch=StitchConfig(seconds=0.0))


def person(frames, x0: float, step: float, height: float = 70.0, gender: str = "female", stop_at: int | None = None):
    """A walker's detections: a 30-px wide box moving `step` px a frame (standing still from `stop_at` on)."""
    detections = {}
    for i in frames:
        x = x0 + step * (min(i, stop_at) if stop_at is not None else i)
        detections[i] = Detection((x, 20.0, x + 30.0, 20.0 + height), 0.9, None, {"gender": gender})
    return detections


def frames_of(*people, count: int) -> list[Frame]:
    return [Frame(i, i / FPS, [p[i] for p in people if i in p]) for i in range(count)]


def spans(report) -> list[tuple[float, float]]:
    return [(t["first_seen_s"], t["dwell_s"]) for t in report["tracks"]]


def test_a_walker_unseen_longer_than_the_tracker_waits_is_one_track_again():
    # unseen for 14 frames (1.75 s): past lost_seconds (1.5 s), within the stitching window (2 s)
    walker = {i: d for i, d in person(range(40), 10, 2).items() if not 10 <= i < 24}
    frames = frames_of(walker, count=40)
    assert spans(audience_report(frames, FPS, UNSTITCHED)) == [(0.0, 1.25), (3.0, 2.0)]  # ByteTrack alone: two
    (track,) = audience_report(frames, FPS)["tracks"]
    assert (track["first_seen_s"], track["dwell_s"], track["frames"]) == (0.0, 5.0, 26)  # the whole stay


def test_a_walker_who_stopped_while_hidden_is_joined_too():
    # walks right 4 px a frame, stops behind something at frame 12, reappears standing there 14 frames later
    walker = {i: d for i, d in person(range(40), 10, 4, stop_at=12).items() if not 10 <= i < 24}
    frames = frames_of(walker, count=40)
    assert len(audience_report(frames, FPS, UNSTITCHED)["tracks"]) == 2
    assert spans(audience_report(frames, FPS)) == [(0.0, 5.0)]


@pytest.mark.parametrize(
    "second",
    [
        person(range(24, 40), 150, 2),  # far from where the first was going
        person(range(24, 40), 10, 2, gender="male"),  # just where it was going, but a man
        person(range(24, 40), 10, 2, height=35),  # there, but half the size: a child
    ],
    ids=["far", "other-gender", "other-size"],
)
def test_two_people_one_after_the_other_stay_two(second):
    # the walker of the first test, unseen for 1.75 s, but the second part differs in one thing each
    first = person(range(10), 10, 2)
    frames = frames_of(first, second, count=40)
    assert spans(audience_report(frames, FPS)) == [(0.0, 1.25), (3.0, 2.0)]


def test_a_narrow_walker_faster_than_its_width_keeps_its_track():
    # 6 px wide, 8 px a frame: its boxes never overlap from one frame to the next; BIoU's buffer lets
    # them overlap the prediction
    walker = {i: Detection((8.0 * i, 20.0, 8.0 * i + 6, 60.0), 0.9) for i in range(20)}
    frames = frames_of(walker, count=20)
    assert spans(audience_report(frames, FPS)) == [(0.0, 2.5)]
    plain = audience_report(frames, FPS, TrackerConfig(box_buffer=0.0, stitch=StitchConfig(seconds=0.0)))
    assert sum(t["frames"] for t in plain["tracks"]) < 20


def test_chains_join_to_their_first_fragment_each_at_most_once():
    def fragment(track: int, start: int, x: float, gender: str = "female") -> Fragment:
        times = np.arange(start, start + 4) / FPS
        boxes = np.array([[x + 2 * k, 20, x + 2 * k + 30, 90] for k in range(4)], np.float64)
        return Fragment(track, times, boxes, {"gender": Counter({gender: 4})})

    # 1 -> 2 -> 3 is one walker, each part starting just where the one before was going (2 px a frame);
    # 4, beside 2 at the same time, 4 px off that path, could follow 1 and lead to 3 as well: 2 is nearer;
    # 5 is far from every path
    parts = [fragment(1, 0, 10), fragment(2, 6, 22), fragment(3, 12, 34), fragment(4, 6, 26), fragment(5, 6, 120)]
    assert stitch(parts, StitchConfig()) == {2: 1, 3: 1}
    assert stitch([parts[0], parts[3]], StitchConfig()) == {4: 1}
    assert stitch(parts, StitchConfig(seconds=0.0)) == {}
    assert stitch([fragment(1, 0, 10), fragment(2, 6, 22, "male")], StitchConfig()) == {}


def test_the_settings_are_recorded_in_the_report():
    frames = frames_of(person(range(10), 10, 2), count=10)
    assert audience_report(frames, FPS)["tracker"] == {
        "name": "bytetrack (trackers)",
        "high_score": 0.5,
        "min_iou": 0.03,
        "box_buffer": 0.3,
        "lost_seconds": 1.5,
        "min_frames": 3,
        "side_seconds": 1.0,
        "stitch": {"seconds": 2.0, "distance": 0.5, "size_ratio": 1.5},
        "extend_score": 0.3,
        "extend_iou": 0.2,
        "extend_gap": 2,
    }
    custom = TrackerConfig(box_buffer=0.1, stitch=StitchConfig(seconds=1.0, distance=0.25, size_ratio=1.2))
    recorded = audience_report(frames, FPS, custom)["tracker"]
    assert recorded["box_buffer"] == 0.1 and recorded["stitch"] == {"seconds": 1.0, "distance": 0.25, "size_ratio": 1.2}
    for bad in ({"seconds": -1.0}, {"distance": -0.1}, {"size_ratio": 0.9}):
        with pytest.raises(ConfigError, match="stitching"):
            StitchConfig(**bad)
    with pytest.raises(ConfigError, match="box_buffer"):
        TrackerConfig(box_buffer=-0.1)
