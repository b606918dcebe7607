"""The shipped default model: it loads from the installed package, predicts, and its recorded
held-out metrics beat the trivial baselines by the margins the project promises."""

from __future__ import annotations

import numpy as np
import pytest

import onepass
from onepass.data.synth import ATTRIBUTE_GROUPS, CLASS_NAMES, render_scene
from onepass.models import open_package


@pytest.fixture(scope="module")
def package():
    return open_package("default")


def test_loads_and_describes_the_synthetic_scenes(package):
    assert package.config.task("semseg").classes == CLASS_NAMES
    assert package.config.task("attributes").groups == ATTRIBUTE_GROUPS
    assert package.files()["weights.safetensors"] < 10e6  # small enough to ship in the wheel


def test_predicts_a_fresh_scene(package):
    scene = render_scene(np.random.default_rng([777, 0]), 128, 160)
    (result,) = onepass.load().predict(scene.image)
    assert (result["semseg"] == scene.semseg).mean() > 0.85
    assert np.median(np.abs(result["depth"] - scene.depth) / scene.depth) < 0.25


def test_recorded_metrics_beat_trivial_baselines(package):
    metrics = package.metrics
    model, trivial = metrics["metrics"], metrics["baselines"]["trivial"]
    assert metrics["data"]["images"] >= 500
    assert model["semseg"]["miou"] >= 2 * trivial["semseg"]["miou"]
    assert model["depth"]["rmse"] <= 0.5 * trivial["depth"]["rmse"]
    assert model["normals"]["mean_angle"] <= 0.6 * trivial["normals"]["mean_angle"]
    for group in ATTRIBUTE_GROUPS:
        assert model["attributes"][f"acc_{group}"] >= trivial["attributes"][f"acc_{group}"] + 20, group
