"""`onepass predict` on videos and numbered image sequences: frames sampled and batched like images,
resumed frame by frame, broken files recorded at the frame where decoding failed, and the audience
report built from the records."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from onepass.cli import main
from onepass.predict.audience_files import read_records
from onepass.predict.inputs import FrameOptions, InputError, collect_inputs
from onepass.runtime.audience import Frame, audience_report
from tests.optional import require
from tests.predict.conftest import read_errors, read_table
from tests.videos import people_package, sequence_frames, write_video

require("av", "pip install 'onepass[video]'")
require("trackers", "pip install 'onepass[video]'")

FAST = ["--backend", "torch", "--device", "cpu", "--no-progress", "--workers", "1", "--batch-size", "4"]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return people_package(tmp_path_factory.mktemp("model") / "tiny-people")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return write_video(root / "door.mp4", sequence_frames(2, 18), rate=8)


def test_frames_are_keyed_by_video_and_index_and_sampled(clip, tmp_path):
    frames = collect_inputs([str(clip)], frames=FrameOptions(every=4))
    assert [i.key for i in frames] == [f"door.mp4/{k:06d}" for k in (0, 4, 8, 12, 16)]  # an absolute path: its name
    assert [i.frame for i in frames] == [0, 4, 8, 12, 16] and {i.video for i in frames} == {frames[0].video}
    assert [i.time for i in frames] == [0.0, 0.5, 1.0, 1.5, 2.0] and all(i.in_video_file for i in frames)
    by_time = collect_inputs([str(clip)], frames=FrameOptions(fps=3))  # 8 fps: the first of each third of a second
    assert [i.frame for i in by_time] == [0, 3, 6, 8, 11, 14, 16]
    for folder in ("seq", "other"):
        (tmp_path / folder).mkdir()
    for number in (7, 8, 10):  # 9 is missing: a gap in time
        Image.new("RGB", (8, 8)).save(tmp_path / "seq" / f"cam_{number:04d}.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "seq" / "cam_12.png")  # fewer digits than %04d
    sequence = collect_inputs([str(tmp_path / "seq" / "cam_%04d.png")], frames=FrameOptions(sequence_fps=10))
    assert [(i.frame, i.time, i.in_video_file) for i in sequence] == [(0, 0.0, False), (1, 0.1, False), (3, 0.3, False)]
    assert {i.video for i in sequence} == {"cam_%04d.png"} and [i.key for i in sequence][0] == "cam_0007.png"
    with pytest.raises(InputError, match="matches no file"):
        collect_inputs([str(tmp_path / "other" / "%d.png")])
    with pytest.raises(InputError, match="--every"):
        FrameOptions(every=0)


def test_a_video_predicts_like_its_frames_and_reports_its_audience(package, clip, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(clip), "--model", str(package), "--out", str(out), "--every", "2", *FAST]) == 0
    printed = capsys.readouterr().out
    assert "done 9, skipped 0" in printed and "audience.json" in printed
    rows = {r["image"]: r for r in read_table(out)}
    assert len(rows) == 9 and all(
        r["source"] == str(clip) and (r["height"], r["width"]) == ("64", "80") for r in rows.values()
    )
    assert sorted(p.name for p in (out / "depth" / next(iter(rows)).rsplit("/", 1)[0]).iterdir()) == [
        f"{k:06d}.png" for k in range(0, 18, 2)
    ]
    # the Predictor on the same decoded frames gives the same people
    import onepass
    from onepass.runtime.video import decode_frames, frame_rgb

    predictor = onepass.load(package, backend="torch", device="cpu")
    pictures = [frame_rgb(f) for i, f in decode_frames(str(clip)) if i % 2 == 0]
    records = read_records(out / "people.jsonl", "people")
    keys = sorted(rows)
    for key, result in zip(keys, predictor.predict(pictures, ["people"]), strict=True):
        assert records[key] == json.loads(json.dumps(result["people"]))
    document = json.loads((out / "audience.json").read_text())
    assert document["format"] == "onepass-audience" and document["version"] == 1
    (video,) = document["videos"]
    task = predictor.tasks["people"]
    frames = [Frame(int(k[-6:]), int(k[-6:]) / 8, task.detections(records[k])) for k in keys]
    # the frame width from the container's header: the tracks' side crossings need it
    expected = audience_report(frames, 4.0, source=str(clip), planned_frames=9, missing_frames=0, width=80)
    assert document["videos"][video] == json.loads(json.dumps(expected))
    with open(out / "audience.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == len(expected["tracks"])
    assert (out / "audience" / "door.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_redoes_only_the_missing_frames_and_reports_the_same(package, clip, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", str(clip), "--model", str(package), "--out", str(out), *FAST]
    assert main(args) == 0
    report = (out / "audience.json").read_text()
    table = (out / "predictions.csv").read_text().splitlines(keepends=True)
    (out / "predictions.csv").write_text("".join(table[:-5]))  # a run killed 5 frames before the end
    capsys.readouterr()
    assert main(args) == 0
    assert "done 5, skipped 13" in capsys.readouterr().out
    assert (out / "audience.json").read_text() == report
    assert len(read_table(out)) == 18


def test_a_cut_off_video_keeps_its_frames_and_records_where_it_failed(package, tmp_path, capsys):
    whole = write_video(tmp_path / "whole.mkv", sequence_frames(4, 24), rate=8)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    out = tmp_path / "out"
    assert main(["predict", str(cut), "--model", str(package), "--out", str(out), *FAST]) == 1
    rows = read_table(out)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    (error,) = errors
    assert 0 < len(rows) == error["frame"] < 24 and "failed at frame" in error["error"]
    assert error["image"].endswith(f"/{error['frame']:06d}")
    assert sorted(int(r["image"][-6:]) for r in rows) == list(range(error["frame"]))
    capsys.readouterr()


def test_a_file_that_is_not_a_video_fails_at_frame_0(package, tmp_path):
    junk = tmp_path / "junk.webm"
    junk.write_bytes(b"\x1a\x45\xdf\xa3 not really" * 20)
    out = tmp_path / "out"
    assert main(["predict", str(junk), "--model", str(package), "--out", str(out), *FAST]) == 1
    errors = read_errors(out)
    assert list(errors) == ["junk.webm/000000"]
    (record,) = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert record["frame"] == 0 and "not a readable video" in record["error"]


def test_video_files_refuse_ray_and_visualize(package, clip, tmp_path, capsys):
    base = ["predict", str(clip), "--model", str(package), "--out", str(tmp_path / "o"), *FAST]
    assert main([*base, "--engine", "ray"]) == 2
    assert "use --engine local" in capsys.readouterr().err
    assert main([*base, "--visualize"]) == 2
    assert "--visualize" in capsys.readouterr().err


def test_a_numbered_sequence_reports_its_audience(package, tmp_path):
    frames = sequence_frames(2, 10)
    (tmp_path / "seq").mkdir()
    for k, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "seq" / f"{k:05d}.png")
    out = tmp_path / "out"
    pattern = str(tmp_path / "seq" / "%05d.png")
    assert main(["predict", pattern, "--model", str(package), "--out", str(out), "--sequence-fps", "5", *FAST]) == 0
    document = json.loads((out / "audience.json").read_text())
    (report,) = document["videos"].values()
    assert report["video"]["planned_frames"] == 10 and report["video"]["missing_frames"] == 0
    assert np.all([t["dwell_s"] <= 2.0 for t in report["tracks"]])  # 10 frames at 5 fps


def test_the_audience_knows_each_videos_frame_width_from_headers(clip, tmp_path):
    """frame_width: a video's from its container, a numbered sequence's from its first file; None when
    neither can be read (the report then has no side crossings)."""
    from onepass.predict.audience_files import frame_width
    from onepass.predict.inputs import InputImage

    assert frame_width(collect_inputs([str(clip)])[0]) == 80
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(tmp_path / "f000001.png")
    assert frame_width(InputImage("seq/f000001.png", str(tmp_path / "f000001.png"), "seq", 1, 0.0)) == 50
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    assert (
        frame_width(InputImage("broken.mp4/000000", str(tmp_path / "broken.mp4"), "broken.mp4", 0, 0.0, True)) is None
    )
    assert frame_width(InputImage("gone/f1.png", str(tmp_path / "gone.png"), "gone", 1, 0.0)) is None


def test_a_video_frames_record_holds_the_candidates_its_tracker_may_extend_with(clip, tmp_path):
    """Every peak of a model sure of nobody (each about 0.5, the count at 0.9) is a candidate: in the
    frames' records, marked not counted, as the Predictor gives them; never counted, nor a track."""
    import torch

    import onepass
    from onepass.models import MultiTaskModel, save_package
    from onepass.models.tasks import PeopleTask
    from onepass.runtime.audience import CANDIDATE_SCORE
    from onepass.runtime.video import decode_frames, frame_rgb
    from tests.tiny import PERSON_ATTRIBUTES, tiny_config

    torch.manual_seed(0)
    model = MultiTaskModel(tiny_config(tasks=(PeopleTask(PERSON_ATTRIBUTES, max_people=8, score_threshold=0.9),)))
    with torch.no_grad():
        model.heads.dense_heads.people.project.bias[0] = 0.0  # centre probability about 0.5 everywhere
    save_package(tmp_path / "unsure", model.eval(), "unsure")
    out = tmp_path / "out"
    assert main(["predict", str(clip), "--model", str(tmp_path / "unsure"), "--out", str(out), *FAST]) == 0
    records = read_records(out / "people.jsonl", "people")
    predictor = onepass.load(tmp_path / "unsure", backend="torch", device="cpu")
    pictures = [frame_rgb(f) for _, f in decode_frames(str(clip))]
    for key, result in zip(sorted(records), predictor.predict(pictures, candidates=CANDIDATE_SCORE), strict=True):
        assert records[key] and all(p["counted"] is False for p in records[key])
        assert [p["score"] for p in records[key]] == pytest.approx([p["score"] for p in result["people"]], abs=2e-3)
    assert {r["people_count"] for r in read_table(out)} == {"0"}
    assert json.loads((out / "audience.json").read_text())["videos"]["door.mp4"]["tracks"] == []
