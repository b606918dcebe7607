"""`onepass eval` on a sequence dataset: tracking scores from py-motmetrics, dwell and attention errors,
and the tracker alone on the true boxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onepass.cli import main
from onepass.data.sequence import LabelledFrame, LabelledSequence, TrackedPerson, read_sequence_dataset
from onepass.data.synth_sequences import write_synthetic_sequences
from onepass.models.package import open_package
from onepass.models.tasks.base import Detection
from onepass.predict.sequence_eval import format_tracking, score_tracking, true_frames, true_track_times
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
    written = json.loads(report.read_text(), parse_constant=_refuse)  # strict JSON: no NaN
    assert set(written["metrics"]) == {"people"} and written["data"]["sequences"] == 2
    alone = written["baselines"]["tracker_only"]["people"]
    assert set(written["metrics"]["people"]) <= set(alone)  # what the model leaves undefined is left out
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


def _refuse(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _sequence(people_per_frame: list[tuple[TrackedPerson, ...]], tracks: dict[int, dict[str, str]]) -> LabelledSequence:
    frames = tuple(LabelledFrame(Path(f"{i:06d}.png"), i / 6.0, people) for i, people in enumerate(people_per_frame))
    return LabelledSequence("000", 6.0, (64, 80), {}, tracks, frames)


def test_scores_the_data_leaves_undefined_are_left_out_not_nan():
    # a person who never looks at the display: no attention score, every other one
    walker = _sequence([(TrackedPerson(1, (10.0 + i, 10.0, 20.0 + i, 40.0), 0.0, False),) for i in range(12)], {1: {}})
    scores = score_tracking([walker], [true_frames(walker)], TrackerConfig())
    assert "attention_error" not in scores and "attention_within_15pct" not in scores
    assert scores["idf1"] == 1.0 and scores["dwell_within_10pct"] == 1.0 and scores["tracks_true"] == 1
    # an empty video, where nothing is found: only the counts are defined
    empty = _sequence([()] * 12, {})
    assert score_tracking([empty], [true_frames(empty)], TrackerConfig()) == {
        "id_switches": 0,
        "tracks_true": 0,
        "tracks_predicted": 0,
    }
    # nobody there, but a false person found: precision 0, MOTA (-inf: errors over no true box) left out
    ghost = [Frame(i, i / 6.0, [Detection((10.0, 10.0, 20.0, 40.0), 0.9, True)]) for i in range(12)]
    false = score_tracking([empty], [ghost], TrackerConfig())
    assert false["precision"] == 0.0 and false["tracks_predicted"] == 1 and "mota" not in false
    for document in (scores, false):
        json.dumps(document, allow_nan=False)
    printed = format_tracking({"model": false, "tracker_only": scores})
    assert "attention_error" not in printed
    assert [line.split()[1:] for line in printed.splitlines() if line.startswith("mota ")] == [["-", "1.0"]]
