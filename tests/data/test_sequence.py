"""Synthetic sequences (data/synth/_sequence.py) and the sequence dataset format (data/sequence.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onepass.cli import main
from onepass.data.sequence import SequenceError, read_sequence, read_sequence_dataset
from onepass.data.synth import plan_sequence, render_sequence_frame
from onepass.data.synth._sequence import frame_layout
from onepass.data.synth_sequences import write_synthetic_sequences

SIZE = (48, 64)


def test_a_frame_renders_alone_at_any_size_to_the_same_scene():
    plan = plan_sequence(np.random.default_rng([3, 0]), 8.0, 4.0)
    again = plan_sequence(np.random.default_rng([3, 0]), 8.0, 4.0)
    frame = render_sequence_frame(plan, 13, np.random.default_rng(1), *SIZE)
    assert np.array_equal(
        frame.scene.image, render_sequence_frame(again, 13, np.random.default_rng(1), *SIZE).scene.image
    )
    bigger = render_sequence_frame(plan, 13, np.random.default_rng(1), 96, 128)
    assert frame.tracks == bigger.tracks and frame.time == 13 / 4.0


def test_people_keep_who_they_are_and_move_smoothly():
    plan = None
    for seed in range(20):  # a sequence with someone who stops and turns the head
        plan = plan_sequence(np.random.default_rng([seed, 0]), 12.0, 8.0)
        if any(w.stay > 2 and len(w.head_keys) > 1 for w in plan.walkers):
            break
    walker = next(w for w in plan.walkers if w.stay > 2 and len(w.head_keys) > 1)
    arrive, leave, end = walker.timetable(plan.tan_h)
    positions, yaws = [], []
    for k in range(plan.frames):
        layout, tracks = frame_layout(plan, k / plan.fps)
        assert len(set(tracks)) == len(tracks)
        for person, track in zip(layout.people, tracks, strict=True):
            other = plan.walkers[track - 1]
            assert (person.height, person.gender, person.is_child) == (other.height, other.gender, other.is_child)
            if track == walker.track:
                positions.append((k / plan.fps, person.x, person.z))
                yaws.append(person.yaw)
    steps = [np.hypot(b[1] - a[1], b[2] - a[2]) for a, b in zip(positions, positions[1:], strict=False)]
    assert max(steps) <= walker.speed / plan.fps + 1e-6  # walking speed, never a jump
    standing = [x for t, x, _ in positions if arrive < t < leave]
    assert standing and np.ptp(standing) < 1e-9  # stands still at the stop
    assert len({round(y) for y in yaws}) > 2  # the head turns


def test_written_sequences_read_back_with_exact_tracks(tmp_path):
    frames, _ = write_synthetic_sequences(
        tmp_path / "seq", 2, seconds=2.0, fps=4.0, size=SIZE, seed=5, workers=1, progress=False
    )
    assert frames == 16
    sequences = read_sequence_dataset(tmp_path / "seq")
    assert [s.name for s in sequences] == ["000", "001"] and all(len(s.frames) == 8 for s in sequences)
    plan = plan_sequence(np.random.default_rng([5, 1]), 2.0, 4.0)
    second = sequences[1]
    assert second.tracks == {
        w.track: {"age_group": "child" if w.is_child else "adult", "gender": w.gender} for w in plan.walkers
    }
    rendered = render_sequence_frame(plan, 5, np.random.default_rng([5, 1, 6]), *SIZE)
    labelled = second.frames[5]
    assert [p.track for p in labelled.people] == list(rendered.tracks)
    for person, truth in zip(labelled.people, rendered.scene.people, strict=True):
        x, y, w, h = truth.box
        assert person.box == (x, y, x + w, y + h) and person.looking == truth.looking
    with pytest.raises(FileExistsError):
        write_synthetic_sequences(tmp_path / "seq", 1, seconds=1.0, fps=2.0, size=SIZE, workers=1, progress=False)


def test_the_cli_renders_sequences(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["data", "sequences", "--out", str(out), "--n", "1", "--seconds", "1", "--fps", "3", "--size", "32x48"]
    assert main([*args, "--workers", "1"]) == 0
    assert "wrote 1 sequences (3 frames)" in capsys.readouterr().out
    assert read_sequence(out / "000").size == (32, 48)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    write_synthetic_sequences(root, 1, seconds=3.0, fps=4.0, size=SIZE, seed=1, workers=1, progress=False)
    return root


BROKEN = [
    (lambda d: d.update(version=2), "unsupported version 2"),
    (lambda d: d.update(fps=0), "'fps' must be a positive number"),
    (lambda d: d["frames"][2].update(time=0.0), "frame 2: time 0.0 s does not come after"),
    (lambda d: d["frames"][3].update(file="frames/missing.png"), "frame 3: its image"),
    (lambda d: d["frames"][1].update(file="../escape.png"), "frame 1: 'file' must be a path inside"),
    (lambda d: d["frames"][0]["people"].append({"track": 99, "bbox": [1, 1, 2, 2]}), "names no track"),
    (lambda d: d["frames"][0]["people"].extend([{"track": 1, "bbox": [1, 1, 2, 2]}] * 2), "track 1 appears twice"),
    (lambda d: d["frames"][0]["people"].append({"track": 1, "bbox": [60, 1, 10, 2]}), "does not lie inside the 64x48"),
    (
        lambda d: d["frames"][0]["people"].append({"track": 1, "bbox": [1, 1, 2, 2], "yaw": 400}),
        "'yaw' must be degrees",
    ),
    (lambda d: d["tracks"][0]["attributes"].update(gender="robot"), "track 1: 'robot' is not a class of 'gender'"),
    (lambda d: d["tracks"].append(dict(d["tracks"][0])), "track 1 is listed twice"),
]


@pytest.mark.parametrize(("breaking", "message"), BROKEN)
def test_a_malformed_tracks_json_names_the_file_frame_and_track(dataset, breaking, message):
    path = dataset / "000" / "tracks.json"
    original = path.read_text()
    document = json.loads(original)
    assert document["tracks"][0]["id"] == 1  # walkers are numbered from 1
    document["frames"][0]["people"] = [p for p in document["frames"][0]["people"] if p["track"] != 1]
    breaking(document)
    try:
        path.write_text(json.dumps(document))
        with pytest.raises(SequenceError, match=message) as failure:
            read_sequence_dataset(dataset)
        assert str(path) in str(failure.value)
    finally:
        path.write_text(original)
    assert read_sequence_dataset(dataset)


def test_a_manifest_that_lists_nothing_is_refused(tmp_path):
    (tmp_path / "sequences.json").write_text(json.dumps({"format": "onepass-sequences", "version": 1, "sequences": []}))
    with pytest.raises(SequenceError, match="non-empty list"):
        read_sequence_dataset(tmp_path)
