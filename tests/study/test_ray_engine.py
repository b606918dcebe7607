"""`onepass study --engine ray` on a local Ray on loopback: one Ray task per run, the same runs as the
local engine; a failed run comes back as its one-line error after the others finished, and a rerun
trains only what is missing."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from onepass.models.package import METRICS_FILE
from onepass.study.config import parse_study
from onepass.study.errors import StudyError
from onepass.study.pipeline import Engine, run_study
from onepass.train.loop import train
from tests.optional import require
from tests.study.conftest import study_values

# Keeps a single-machine Ray on 127.0.0.1 (see tests/predict/test_ray_engine.py); read when Ray is imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = require("ray", "pip install 'onepass[ray]'")

LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def ray_cluster():
    context = ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, _node_ip_address=LOOPBACK)
    assert context.address_info["node_ip_address"] == LOOPBACK
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {LOOPBACK}
    yield context.address_info["gcs_address"]
    ray.shutdown()


def test_a_tiny_study_on_ray_trains_every_run_as_a_task(ray_cluster, tiny_data, tmp_path):
    study = parse_study(study_values(tiny_data, tmp_path / "study"))
    runs = study.runs()
    broken = next(r for r in runs if r.configuration == "shared-fpn" and r.seed == 1)
    # A checkpoint of another learning rate: the run's resume refuses it inside its Ray task.
    other = parse_study(study_values(tiny_data, tmp_path / "study", base={**study.base, "lr": 0.5}))
    train(next(r for r in other.runs() if r.out == broken.out).config, progress=False, stop_after=1)

    lines: list[str] = []
    engine = Engine("ray", ray_cluster, 1.0)
    with pytest.raises(StudyError) as caught:
        run_study(study, engine, log=lines.append)
    message = str(caught.value)
    assert message.startswith("shared-fpn seed 1: ") and "cannot resume with a different lr" in message
    assert "(1 of 9 runs failed)" in message and "Traceback" not in message and "\n" not in message
    assert "submitted 9 runs to Ray (1 CPU each)" in lines
    assert [r for r in runs if not (r.out / METRICS_FILE).is_file()] == [broken]  # the others all finished

    shutil.rmtree(broken.out)
    lines.clear()
    report = run_study(study, engine, log=lines.append)
    assert "submitted 1 runs to Ray (1 CPU each)" in lines
    document = json.loads(report.with_suffix(".json").read_text())
    assert (document["runs_trained"], document["runs_skipped"]) == (1, 8)
    assert document["engine"].startswith("ray (one task per run")
    shared = next(e for e in document["configurations"] if e["name"] == "shared-fpn")
    assert shared["seeds"] == [0, 1, 2] and shared["steps"] == [2] and shared["delta_mtl"]["n"] == 3
