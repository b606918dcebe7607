"""The shipped default model: it loads from the checkout's package, predicts, and — re-measured here
on held-out scenes rendered in the test — beats the trivial baselines by the margins the project
promises, with values close to those its metrics.json records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import onepass
from onepass.data.folder import FolderDataset
from onepass.data.synth import CLASS_NAMES, PERSON_ATTRIBUTES, render_scene
from onepass.data.synth_dataset import write_synthetic_dataset
from onepass.models import open_package
from onepass.train.dataset import TaskDataset
from onepass.train.evaluate import evaluate, fit_constant_predictor

HELD_OUT_SEED = 2  # neither the training scenes' seed nor metrics.json's (the last test checks)
HELD_OUT_SCENES = 64
TRIVIAL_FIT_SCENES = 32  # the trivial constants are fit on training scenes, as training fits them


@pytest.fixture(scope="module")
def package():
    return open_package("default")


@pytest.fixture(scope="module")
def remeasured(package, tmp_path_factory):
    """(model metrics, trivial-baseline metrics) on freshly rendered held-out scenes."""
    config = package.config
    codecs = {task.name: task.codec for task in config.tasks if task.codec is not None}

    def scenes(seed: int, n: int) -> torch.utils.data.DataLoader:
        root = tmp_path_factory.mktemp(f"synth-seed{seed}")
        write_synthetic_dataset(root, n, config.input_size, seed=seed, workers=1, progress=False)
        return torch.utils.data.DataLoader(
            TaskDataset(FolderDataset(root, codecs), config.tasks, config.input_size), 16
        )

    training_seed = package.training["train_data"]["synth"]["seed"]
    trivial = fit_constant_predictor(scenes(training_seed, TRIVIAL_FIT_SCENES), config.tasks)
    held_out = scenes(HELD_OUT_SEED, HELD_OUT_SCENES)
    model = package.load_model()
    return tuple(evaluate(m, held_out, config.tasks, config.mean, config.std, "cpu", False) for m in (model, trivial))


def test_loads_and_describes_the_synthetic_scenes(package):
    assert package.config.task("semseg").classes == CLASS_NAMES
    assert set(package.config.task("people").attributes) == {*PERSON_ATTRIBUTES, "looking"}
    assert package.files()["weights.safetensors"] < 10e6  # small enough to ship in the wheel


def test_predicts_a_fresh_scene(package):
    scene = render_scene(np.random.default_rng([777, 0]), 128, 160)
    (result,) = onepass.load().predict(scene.image)
    assert (result["semseg"] == scene.semseg).mean() > 0.85
    assert np.median(np.abs(result["depth"] - scene.depth) / scene.depth) < 0.25


def test_beats_the_trivial_baselines_by_the_promised_margins(remeasured):
    model, trivial = remeasured
    assert model["semseg"]["miou"] >= 2 * trivial["semseg"]["miou"], (model["semseg"], trivial["semseg"])
    assert model["depth"]["rmse"] <= 0.5 * trivial["depth"]["rmse"], (model["depth"], trivial["depth"])
    assert model["normals"]["mean_angle"] <= 0.6 * trivial["normals"]["mean_angle"], (
        model["normals"],
        trivial["normals"],
    )
    assert model["people"]["ap50"] >= trivial["people"]["ap50"] + 0.5, (model["people"], trivial["people"])


# What the shipped model promises for the audience (README, "The default model"), on the 500 scenes
# metrics.json records and, less the sampling noise of 64 scenes, re-measured here. The audience
# issue's targets are AP50 0.80, count accuracy 90 % and 85 % for each attribute: this model (version 4)
# reaches AP50 (0.977), count (90.8 %) and age group (97.3 %), and falls short on gender (83.8 %) and
# looking (71.4 %). Where it falls short, the promise is a floor a few points under what it measured, so
# that a retrained model that gets worse fails here; raise each to its target as the model reaches it.
PEOPLE_TARGETS = {"ap50": 0.80, "count_acc": 90.0, "acc_age_group": 85.0, "acc_gender": 85.0, "acc_looking": 85.0}
PEOPLE_PROMISED = {**PEOPLE_TARGETS, "acc_gender": 80.0, "acc_looking": 68.0}


def _noise(metric: str, value: float, n: int) -> float:
    """Three binomial standard deviations of a rate measured on n items (AP50 treated as a rate)."""
    rate = value if metric == "ap50" else value / 100
    spread = 3 * math.sqrt(max(rate * (1 - rate), 0.01) / n)
    return spread if metric == "ap50" else 100 * spread


def test_the_recorded_people_figures_keep_the_promise(package):
    recorded = package.metrics["metrics"]["people"]
    missed = {m: (recorded[m], promised) for m, promised in PEOPLE_PROMISED.items() if recorded[m] < promised}
    assert not missed, missed


def test_remeasured_people_figures_keep_the_promise_within_the_sampling_noise(remeasured):
    model, _ = remeasured
    people = model["people"]
    # count accuracy is per image; the others per person (about 3 a scene), so 64 scenes are ~190 items
    items = {"count_acc": HELD_OUT_SCENES}
    for metric, promised in PEOPLE_PROMISED.items():
        n = items.get(metric, 3 * HELD_OUT_SCENES)
        assert people[metric] >= promised - _noise(metric, promised, n), (metric, people)


# How far 64 scenes may stray from metrics.json's 500. Dense metrics: 15 % of the recorded value; on six
# disjoint 64-scene sets (seeds 2-7) the farthest were mIoU 2.4 %, RMSE 5.3 %, mean angle 8.2 %.
# People figures: three binomial standard deviations of 64 scenes (count) or their ~190 persons.
DENSE_TOLERANCE = 0.15
DENSE_METRICS = {"semseg": "miou", "depth": "rmse", "normals": "mean_angle"}


def test_remeasured_metrics_are_close_to_the_recorded_ones(package, remeasured):
    recorded = package.metrics["metrics"]
    model, _ = remeasured
    for task, metric in DENSE_METRICS.items():
        assert model[task][metric] == pytest.approx(recorded[task][metric], rel=DENSE_TOLERANCE), (task, metric)
    for metric in PEOPLE_TARGETS:
        value = recorded["people"][metric]
        n = HELD_OUT_SCENES if metric == "count_acc" else 3 * HELD_OUT_SCENES
        assert model["people"][metric] == pytest.approx(value, abs=_noise(metric, value, n)), metric


def test_recorded_metrics_come_from_enough_scenes_none_seen_in_training_or_here(package):
    data = package.metrics["data"]
    assert data["images"] >= 500
    seeds = {"training": package.training["train_data"]["synth"]["seed"], "recorded": data["synth"]["seed"]}
    assert len({*seeds.values(), HELD_OUT_SEED}) == 3, seeds
