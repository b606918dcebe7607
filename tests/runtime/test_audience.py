"""runtime/audience.py: ByteTrack links detections into tracks; the report times them exactly as the
frames say, and votes each attribute over the track."""

from __future__ import annotations

import pytest

from onepass.errors import ConfigError
from onepass.models.tasks import PeopleTask
from onepass.models.tasks.base import Detection
from onepass.runtime.audience import Frame, TrackerConfig, audience_report, link_tracks, tracked_task
from tests.optional import require
from tests.tiny import PERSON_ATTRIBUTES, all_tasks

require("trackers", "pip install 'onepass[video]'")

FPS = 8.0


def walk(frames: range, start: float, step: float, top: float = 20.0, looking=lambda i: False, gender="female"):
    """A person's detections: a 30x70 box moving `step` px a frame."""
    return {
        i: Detection((start + step * i, top, start + step * i + 30, top + 70), 0.9, looking(i), {"gender": gender})
        for i in frames
    }


def frames_of(*people, count: int) -> list[Frame]:
    return [Frame(i, i / FPS, [p[i] for p in people if i in p]) for i in range(count)]


def test_two_people_crossing_keep_their_tracks_and_times():
    left = walk(range(0, 30), 10, 3, looking=lambda i: 8 <= i < 16)  # 8 frames looking: 1 s
    right = walk(range(10, 40), 200, -3, top=30, gender="male")
    report = audience_report(frames_of(left, right, count=40), FPS)
    first, second = report["tracks"]
    assert (first["first_seen_s"], first["last_seen_s"], first["dwell_s"], first["frames"]) == (0.0, 3.625, 3.75, 30)
    assert (first["attention_s"], first["attraction"], first["looking"]) == (1.0, 0.2667, [[1.0, 2.0]])
    assert (second["first_seen_s"], second["dwell_s"], second["attention_s"]) == (1.25, 3.75, 0.0)
    assert first["votes"] == {"gender": {"label": "female", "share": 1.0}}
    assert second["votes"] == {"gender": {"label": "male", "share": 1.0}}
    summary = report["summary"]
    assert (summary["ots"], summary["looked"], summary["attention_s_total"], summary["dwell_s_total"]) == (
        2,
        1,
        1.0,
        7.5,
    )
    assert summary["labels"] == {"gender": {"female": 1, "male": 1}}


def test_a_short_gap_keeps_the_track_a_long_one_starts_another():
    person = walk(range(0, 40), 10, 2)
    short = {i: d for i, d in person.items() if not 10 <= i < 14}  # 0.5 s unseen
    long = {i: d for i, d in person.items() if not 10 <= i < 30}  # 2.5 s: over lost_seconds and stitch.seconds
    assert len(audience_report(frames_of(short, count=40), FPS)["tracks"]) == 1
    tracks = audience_report(frames_of(long, count=40), FPS)["tracks"]
    assert [(t["first_seen_s"], t["frames"]) for t in tracks] == [(0.0, 10), (3.75, 10)]
    # the 0.5 s gap counts for dwell (seen from start to end), not for attention
    assert audience_report(frames_of(short, count=40), FPS)["tracks"][0]["dwell_s"] == 5.0


def test_majority_vote_and_short_tracks():
    votes = walk(range(10), 10, 2)
    votes.update({i: Detection(votes[i].box, 0.9, None, {"gender": "male"}) for i in (1, 4, 7)})
    blip = walk(range(20, 22), 100, 0)  # two frames: a false detection
    report = audience_report(frames_of(votes, blip, count=25), FPS)
    (track,) = report["tracks"]
    assert track["votes"]["gender"] == {"label": "female", "share": 0.7}
    assert len(audience_report(frames_of(votes, blip, count=25), FPS, TrackerConfig(min_frames=1))["tracks"]) == 2


def test_ids_follow_the_detections_not_their_order():
    person = walk(range(12), 10, 2)
    other = walk(range(12), 150, 0, top=40)
    frames = [
        Frame(f.index, f.time, list(reversed(f.detections)) if f.index % 2 else f.detections)
        for f in frames_of(person, other, count=12)
    ]
    ids = link_tracks(frames, FPS)
    by_box = {}
    for frame, frame_ids in zip(frames, ids, strict=True):
        for detection, track in zip(frame.detections, frame_ids, strict=True):
            by_box.setdefault(detection.box[1], set()).add(track)  # the top edge tells the two apart
    assert {k: len(v) for k, v in by_box.items()} == {20.0: 1, 40.0: 1}
    assert by_box[20.0] != by_box[40.0]


def test_the_tracked_task_is_found_by_its_hook():
    people = PeopleTask(PERSON_ATTRIBUTES)
    assert tracked_task(all_tasks()) is None and tracked_task((*all_tasks(), people)) is people
    record = [
        {
            "box": [1, 2, 3, 4],
            "score": 0.8,
            "age_group": {"label": "adult"},
            "gender": {"label": "male"},
            "looking": {"label": "yes"},
        }
    ]
    assert people.detections(record) == [
        Detection((1.0, 2.0, 3.0, 4.0), 0.8, True, {"age_group": "adult", "gender": "male"})
    ]
    with pytest.raises(NotImplementedError):
        all_tasks()[0].detections([])
    with pytest.raises(ConfigError):
        TrackerConfig(min_iou=0.0)
