"""POST /predict with a video upload: the audience report, within the size and duration limits."""

from __future__ import annotations

import io

import pytest
from starlette.testclient import TestClient

import onepass
from onepass.serve.http_api import build_app
from onepass.serve.settings import ServeSettings
from onepass.serve.state import Runtime
from tests.optional import require
from tests.videos import people_package, sequence_frames, write_video

require("av", "pip install 'onepass[video]'")
require("trackers", "pip install 'onepass[video]'")


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return onepass.load(people_package(tmp_path_factory.mktemp("m") / "tiny-people"), backend="torch", device="cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "clip.webm", sequence_frames(1, 16), rate=8).read_bytes()


def client(predictor, **settings) -> TestClient:
    values = ServeSettings(**settings)
    return TestClient(build_app(values.max_upload_bytes, Runtime(predictor, values, {})))


def test_a_video_gets_the_audience_report_of_its_sampled_frames(predictor, clip):
    from onepass.runtime.audience import CANDIDATE_SCORE, Frame, audience_report
    from onepass.runtime.video import decode_frames, frame_rgb

    response = client(predictor, video_fps=4.0).post("/predict", files={"image": ("clip.webm", clip, "video/webm")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tasks"] == ["people"] and body["model"]["name"] == "tiny-people"
    video = body["audience"]["video"]
    assert (video["planned_frames"], video["analysed_frames"], video["width"], video["height"]) == (16, 8, 80, 64)
    task = predictor.tasks["people"]
    pictures = [frame_rgb(f) for i, f in decode_frames(io.BytesIO(clip)) if i % 2 == 0]
    results = predictor.predict(pictures, ["people"], candidates=CANDIDATE_SCORE)  # as the server tracks them
    frames = [Frame(2 * k, 2 * k / 8, task.detections(task.record(r["people"]))) for k, r in enumerate(results)]
    expected = audience_report(frames, 4.0, planned_frames=16, duration_s=2.0, width=80, height=64, sampled_fps=4.0)
    assert body["audience"]["tracks"] == expected["tracks"] and body["audience"]["summary"] == expected["summary"]
    raw = client(predictor, video_fps=4.0).post("/predict", content=clip, headers={"content-type": "video/webm"})
    assert raw.status_code == 200 and raw.json()["audience"]["tracks"] == expected["tracks"]


def test_over_the_limits_is_413_and_a_broken_video_is_400(predictor, clip):
    long = client(predictor, max_video_seconds=1.0).post("/predict", files={"image": ("c.webm", clip, "video/webm")})
    assert long.status_code == 413 and "lasts 2.0 s" in long.json()["error"]
    big = client(predictor, max_upload_mb=len(clip) / 2 / 2**20).post("/predict", files={"image": ("c.webm", clip)})
    assert big.status_code == 413
    broken = client(predictor).post("/predict", content=clip[:40], headers={"content-type": "video/webm"})
    assert broken.status_code == 400 and "bad video upload" in broken.json()["error"]


def test_a_model_without_a_tracked_task_refuses_a_video(clip, tmp_path):
    from onepass.models import MultiTaskModel, save_package
    from tests.tiny import tiny_config

    save_package(tmp_path / "plain", MultiTaskModel(tiny_config()).eval(), "plain")  # no people task
    plain = onepass.load(tmp_path / "plain", backend="torch", device="cpu")
    response = client(plain).post("/predict", files={"image": ("c.webm", clip, "video/webm")})
    assert response.status_code == 400 and "no task that tracks objects" in response.json()["error"]


def test_a_server_without_the_video_extra_says_what_to_install(predictor, clip, monkeypatch):
    """scripts/run.sh installs the `video` extra; a server installed without it answers a video upload
    with a 501 that names it (not a 500), and still answers images."""
    from onepass.errors import ConfigError
    from onepass.runtime import video

    def missing():
        raise ConfigError('reading video needs PyAV: pip install "onepass[video]" (or pip install av)')

    monkeypatch.setattr(video, "import_av", missing)
    response = client(predictor).post("/predict", files={"image": ("clip.webm", clip, "video/webm")})
    assert response.status_code == 501 and 'pip install "onepass[video]"' in response.json()["error"]
    from PIL import Image

    image = io.BytesIO()
    Image.new("RGB", (80, 64), (90, 120, 150)).save(image, "PNG")
    still = client(predictor).post("/predict", files={"image": ("a.png", image.getvalue(), "image/png")})
    assert still.status_code == 200 and "people" in still.json()
