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


def candidate(detection: Detection, score: float = 0.35, shift: float = 0.0) -> Detection:
    """The same person as a candidate the count left out, its box moved `shift` px."""
    x0, y0, x1, y1 = detection.box
    return Detection((x0 + shift, y0, x1 + shift, y1), score, detection.attention, detection.attributes, False)


def test_candidates_extend_a_track_at_its_ends_and_never_start_one():
    person = walk(range(0, 30), 10, 3)
    counted = {i: d for i, d in person.items() if 6 <= i < 24}  # scored above the count from frame 6 to 23
    extension = {i: candidate(person[i]) for i in (3, 4, 24, 25)}  # frame 5 missed: within extend_gap
    extension[2] = candidate(person[2], score=0.2)  # under extend_score
    extension[26] = candidate(person[26], shift=40.0)  # not where the track goes (IoU < extend_iou)
    stranger = {i: candidate(walk(range(40), 150, 0, top=40)[i]) for i in range(40)}  # candidates only
    frames = frames_of(counted, extension, stranger, count=40)
    (track,) = audience_report(frames, FPS)["tracks"]
    assert (track["first_seen_s"], track["last_seen_s"], track["frames"]) == (3 / FPS, 25 / FPS, 18 + 4)
    ids = link_tracks(frames, FPS)
    assert ids[2] == [-1, -1] and ids[26] == [-1, -1] and all(frame_ids[-1] == -1 for frame_ids in ids)
    (without,) = audience_report(frames, FPS, TrackerConfig(extend_score=None))["tracks"]
    assert (without["first_seen_s"], without["frames"]) == (6 / FPS, 18)
    gapless = audience_report(frames, FPS, TrackerConfig(extend_gap=0))["tracks"][0]
    assert (gapless["first_seen_s"], gapless["last_seen_s"]) == (6 / FPS, 25 / FPS)  # frame 5 stops it
    with pytest.raises(ConfigError, match="extend_score"):
        TrackerConfig(extend_score=0.1)


SIDE_FPS = 4.0  # a frame lasts 0.25 s
WIDTH = 160


LEAD = 4  # empty frames before and after the track: 1 s, as long as side_seconds


def crossing_report(boxes, width=WIDTH, side_seconds=1.0, lead=LEAD):
    """track_reports of one track seen at `boxes` in consecutive frames (its ids given: no tracker), with
    `lead` empty frames before and after it in the video."""
    from onepass.runtime.audience import track_reports
    from onepass.runtime.video import frame_durations

    seen = [[]] * lead + [[Detection(box, 0.9)] for box in boxes] + [[]] * lead
    frames = [Frame(i, i / SIDE_FPS, detections) for i, detections in enumerate(seen)]
    durations = frame_durations([f.time for f in frames], SIDE_FPS)
    ids = [[1] * len(detections) for detections in seen]
    (report,) = track_reports(frames, ids, durations, 1, width, side_seconds)
    return report


def walker(first_left: float, speed: float, count: int, size: float = 12.0):
    """A person `size` px wide whose left edge is at `first_left` in frame 0 and moves `speed` px a second,
    its box cut by the image's sides."""
    boxes = []
    for i in range(count):
        left = first_left + speed * i / SIDE_FPS
        boxes.append((max(0.0, left), 10.0, min(float(WIDTH), left + size), 50.0))
    return boxes


def test_a_track_found_after_it_entered_across_the_left_side_counts_the_frames_it_showed_before():
    # found with 10 px of 12 in view, its front moving at 20 px/s: it showed for 0.5 s before (2 frames)
    report = crossing_report(walker(-2.0, 20.0, 8))
    assert report["crossing_s"] == [0.5, 0.0] and report["first_seen_s"] == LEAD / SIDE_FPS
    assert report["dwell_s"] == 8 * 0.25 + 0.5
    # found with 4 px in view: it entered within the frame before, which is not counted
    assert "crossing_s" not in crossing_report(walker(-8.0, 20.0, 8))
    # a track seen from the video's first frame: nothing before it was seen, as the truth is timed
    assert "crossing_s" not in crossing_report(walker(-2.0, 20.0, 8), lead=0)


def test_a_track_found_once_in_view_near_the_side_counts_the_frames_since_it_crossed_it():
    # missed while it came in and for a frame in full view: found 5 px in (within its 12 px width), its
    # front at 17 px moving 20 px/s crossed the side 0.85 s before: 3 whole frames
    report = crossing_report(walker(5.0, 20.0, 8))
    assert report["crossing_s"] == [0.75, 0.0]
    # found more than its width in: it may have come from anywhere (behind someone), nothing is added
    assert "crossing_s" not in crossing_report(walker(13.0, 20.0, 8))
    # leaving: last seen 3 px from the right side, its back 15 px from it at 20 px/s: 0.75 s after
    leaving = walker(WIDTH - 15.0 - 7 * 5.0, 20.0, 8)
    assert WIDTH - leaving[-1][2] == 3.0 and crossing_report(leaving)["crossing_s"] == [0.0, 0.75]


def test_a_track_leaving_across_the_right_side_counts_the_frames_it_still_showed_after():
    boxes = walker(WIDTH - 12.0 - 7 * 5.0 + 2.0, 20.0, 8)  # last box 10 px in view, at the right side
    assert boxes[-1][2] == WIDTH
    report = crossing_report(boxes)
    assert report["crossing_s"] == [0.0, 0.5] and report["dwell_s"] == 8 * 0.25 + 0.5


def test_no_crossing_away_from_the_sides_standing_at_one_or_without_the_width():
    assert "crossing_s" not in crossing_report(walker(60.0, 20.0, 8))  # inside the image all along
    assert "crossing_s" not in crossing_report([(0.0, 10.0, 10.0, 50.0)] * 8)  # at the side, not moving
    # at the left side from the first frame, but walking out across it: nothing before, 0.5 s after
    leaving = [(0.0, 10.0, 10.0 - 2.0 * i, 50.0) for i in range(4)]  # its right edge at 8 px/s, 4 px left
    assert crossing_report(leaving)["crossing_s"] == [0.0, 0.5]
    assert "crossing_s" not in crossing_report(walker(-2.0, 20.0, 8), width=None)
    assert "crossing_s" not in crossing_report(walker(-2.0, 20.0, 8), side_seconds=0.0)
    slow = crossing_report(walker(-2.0, 4.0, 8))  # 10 px at 4 px/s: 2.5 s, at most side_seconds
    assert slow["crossing_s"] == [1.0, 0.0]
    with pytest.raises(ConfigError, match="side_seconds"):
        TrackerConfig(side_seconds=-1.0)


def test_the_report_takes_the_width_from_what_the_caller_knows_of_the_video():
    seen = [[]] * LEAD + [[Detection(box, 0.9)] for box in walker(-2.0, 20.0, 12)]
    frames = [Frame(i, i / SIDE_FPS, detections) for i, detections in enumerate(seen)]
    with_width = audience_report(frames, SIDE_FPS, width=WIDTH)
    assert with_width["video"]["width"] == WIDTH and with_width["tracks"][0]["crossing_s"][0] == 0.5
    assert "crossing_s" not in audience_report(frames, SIDE_FPS)["tracks"][0]
