"""`onepass eval` on a sequence dataset: tracking scores from py-motmetrics, dwell and attention errors,
and the tracker alone on the true boxes."""

from __future__ import annotations

import json

import pytest

from onepass.cli import main
from onepass.data.sequence import read_sequence_dataset
from onepass.data.synth_sequences import write_synthetic_sequences
from onepass.models.package import open_package
from onepass.predict.sequence_eval import score_tracking, true_frames, true_track_times
from onepass.runtime.audience import Frame, TrackerConfig
from onepass.runtime.video import frame_durations
from tests.optional import require
from tests.videos import people_package

require("motmetrics", "pip install 'onepass[video]'")
require("trackers", "pip install 'onepass[video]'")


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    root = tmp_path_factory.mktemp("sequences")
    write_synthetic_sequences(root, 2, seconds=6.0, fps=6.0, size=(64, 80), seed=3, workers=1, progress=False)
    return root


def test_perfect_detections_score_perfectly_and_missing_ones_do_not(sequences):
    labelled = read_sequence_dataset(sequences)
    truth = [true_frames(s) for s in labelled]
    perfect = score_tracking(labelled, truth, TrackerConfig(min_frames=1))
    assert perfect["precision"] == 1.0 and perfect["motp"] == 0.0
    assert perfect["tracks_true"] == sum(len({p.track for f in s.frames for p in f.people}) for s in labelled)
    assert perfect["idf1"] >= 0.8 and perfect["mota"] >= 0.8
    # every other frame dropped: half the recall, and attention seen half the time
    halved = [[Frame(f.index, f.time, f.detections if f.index % 2 == 0 else []) for f in frames] for frames in truth]
    worse = score_tracking(labelled, halved, TrackerConfig(min_frames=1))
    assert worse["recall"] < perfect["recall"] - 0.3 and worse["mota"] < perfect["mota"] - 0.3


def test_true_times_count_each_frame_until_the_next(tmp_path):
    write_synthetic_sequences(tmp_path, 1, seconds=4.0, fps=4.0, size=(48, 64), seed=8, workers=1, progress=False)
    (sequence,) = read_sequence_dataset(tmp_path)
    durations = frame_durations([f.time for f in sequence.frames], sequence.fps)
    times = true_track_times(sequence, durations)
    for track, (dwell, attention) in times.items():
        seen = [k for k, f in enumerate(sequence.frames) if any(p.track == track for p in f.people)]
        looked = [k for k in seen if next(p for p in sequence.frames[k].people if p.track == track).looking]
        assert dwell == pytest.approx((seen[-1] - seen[0] + 1) / sequence.fps)
        assert attention == pytest.approx(len(looked) / sequence.fps)


def test_eval_reads_a_sequence_dataset_and_writes_both_scores(sequences, tmp_path, capsys):
    package = people_package(tmp_path / "tiny-people")
    report = tmp_path / "eval.json"
    assert main(["eval", str(package), "--data", str(sequences), "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "tracking on 2 sequences" in printed and "idf1" in printed and "true boxes" in printed
    written = json.loads(report.read_text())
    assert set(written["metrics"]) == {"people"} and written["data"]["sequences"] == 2
    alone = written["baselines"]["tracker_only"]["people"]
    assert set(written["metrics"]["people"]) == set(alone)
    assert alone["precision"] == 1.0  # the true boxes: nothing false
    assert open_package(package).name == "tiny-people"
    assert main(["eval", str(package), "--data", str(sequences), "--visualize", "2"]) == 2
    assert "--visualize applies to image datasets" in capsys.readouterr().err


def test_a_model_without_a_tracked_task_is_refused(sequences, tmp_path, capsys):
    from onepass.models import MultiTaskModel, save_package
    from tests.tiny import tiny_config

    save_package(tmp_path / "plain", MultiTaskModel(tiny_config()).eval(), "plain")
    assert main(["eval", str(tmp_path / "plain"), "--data", str(sequences)]) == 2
    assert "no task that tracks objects" in capsys.readouterr().err
