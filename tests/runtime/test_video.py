"""runtime/video.py: every frame listed and decoded in order, sampling by count or by time, and broken
files that name the frame where decoding fails."""

from __future__ import annotations

import io

import numpy as np
import pytest

from onepass.errors import ConfigError
from onepass.runtime.video import BadVideo, FrameSampler, decode_frames, frame_durations, frame_rgb, probe_video
from tests.optional import require
from tests.videos import bars, write_video

require("av", "pip install 'onepass[video]'")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_every_frame_is_listed_then_decoded_in_order(tmp_path, suffix):
    frames = bars(20)
    path = write_video(tmp_path / f"clip{suffix}", frames, rate=10)
    plan = probe_video(str(path))
    assert (plan.width, plan.height, plan.rate, plan.failure) == (64, 48, 10.0, None)
    assert np.allclose(plan.times, np.arange(20) / 10) and plan.duration == pytest.approx(2.0)
    decoded = [(index, frame_rgb(frame)) for index, frame in decode_frames(str(path))]
    assert [i for i, _ in decoded] == list(range(20))
    for (_, picture), original in zip(decoded, frames, strict=True):  # lossy, but each frame is its own
        column = int(np.argmax(picture[..., 0].astype(int).mean(axis=0)))
        assert column == int(np.argmax(original[..., 0].mean(axis=0)))
    assert probe_video(io.BytesIO(path.read_bytes())).times == plan.times  # uploads: from memory


def test_sampling_keeps_every_nth_or_the_first_of_each_interval():
    times = [i / 30 for i in range(61)]  # 2 s at 30 fps
    assert FrameSampler(every=7).keep(times) == list(range(0, 61, 7))
    assert FrameSampler(fps=5).keep(times) == list(range(0, 61, 6))
    assert FrameSampler(fps=60).keep(times) == list(range(61))  # slower than asked: every frame
    assert FrameSampler(fps=1).keep([0.0, 0.4, 0.9, 1.05, 1.5, 2.2]) == [0, 3, 5]  # variable rate: by time
    for bad in ({"every": 0}, {"fps": 0.0}, {"fps": float("nan")}):
        with pytest.raises(ConfigError):
            FrameSampler(**bad)


def test_frame_durations_run_to_the_next_frame():
    assert frame_durations([0.0, 0.5, 1.5, 2.0], 2.0) == [0.5, 1.0, 0.5, 0.5]  # the last: the median
    assert frame_durations([3.0], 4.0) == [0.25] and frame_durations([], 4.0) == []


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_a_cut_off_video_lists_the_frames_it_holds_and_says_so(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", bars(30), rate=10)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    plan = probe_video(str(cut))
    assert 0 < len(plan.times) < 30
    assert (
        plan.failure == f"the file holds {len(plan.times)} frames of the 30 its header declares (truncated or corrupt)"
    )


def test_files_that_are_no_video_fail_at_frame_0(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 50)
    for call in (lambda: probe_video(str(junk)), lambda: next(decode_frames(str(junk)))):
        with pytest.raises(BadVideo, match="not a readable video") as failure:
            call()
        assert failure.value.frame == 0
    mp4 = write_video(tmp_path / "clip.mp4", bars(10))
    cut = tmp_path / "cut.mp4"  # an mp4 cut before its index (written last): nothing to read
    cut.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(BadVideo) as failure:
        probe_video(str(cut))
    assert failure.value.frame == 0
