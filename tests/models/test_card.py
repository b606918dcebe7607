"""The model card says what a package was trained on, read from its own provenance, so that it stays
true for the shipped model and for packages users train."""

from __future__ import annotations

import json

import torch

from onepass.models import MultiTaskModel, open_package, save_package
from onepass.models.card import CAVEATS, card_footnote, model_card
from onepass.models.package import save_metrics
from tests.tiny import tiny_config

SYNTH = {"generator": "onepass.data.synth", "n": 40, "size": [64, 96], "seed": 3}


def package_with(tmp_path, training: dict | None, metrics_data: dict | None = None):
    torch.manual_seed(0)
    path = tmp_path / "pkg"
    save_package(path, MultiTaskModel(tiny_config()).eval(), "tiny", version="2", training=training)
    if metrics_data is not None:
        save_metrics(path, {"semseg": {"miou": 0.5}}, metrics_data)
    return open_package(path)


def training(data: str, synth: dict | None) -> dict:
    return {
        "config": {"data": data, "epochs": 2},
        "steps": 1234,
        "epochs": 2,
        "train_images": 40,
        "train_data": {"synth": synth} if synth else {},
    }


def test_synthetic_training_data_is_named_with_its_caveat(tmp_path):
    metrics = {"path": "val", "images": 12, "synth": {**SYNTH, "seed": 4}}
    card = model_card(package_with(tmp_path, training("runs/synth", SYNTH), metrics))
    assert card["name"] == "tiny" and card["version"] == "2" and card["data"] == "synthetic"
    assert card["trained_on"].startswith("40 synthetic scenes (rendered rooms")
    assert "onepass.data.synth, 64x96, seed 3" in card["trained_on"]
    assert card["training"] == (
        "1,234 steps (2 epochs); encoder test_efficientnet from random initialisation (no pretrained weights)"
    )
    assert card["evaluated_on"] == "12 held-out synthetic scenes (seed 4)"
    assert "not meaningful" in card["caveat"] and "real camera frames" in card["caveat"]
    assert "onepass train --data" in card["train_your_own"]
    assert json.loads(json.dumps(card)) == card  # goes out as JSON as it is
    assert card_footnote(card) == f"tiny 2: {CAVEATS['synthetic']}"


def test_video_frames_added_to_the_scenes_are_counted_among_them(tmp_path):
    recorded = training("runs/synth", SYNTH)
    recorded["train_data"]["sequence_frames"] = [{"source": "seq", "every": 2, "frames": 12, "people": 20}]
    card = model_card(package_with(tmp_path, recorded))
    assert card["data"] == "synthetic" and card["trained_on"].endswith(", 12 of them frames of synthetic sequences")


def test_a_users_own_dataset_is_named_without_the_synthetic_caveat(tmp_path):
    card = model_card(package_with(tmp_path, training("/data/shop-frames", None), {"path": "/data/held", "images": 9}))
    assert card["data"] == "dataset"
    assert card["trained_on"] == "40 images of the folder dataset /data/shop-frames"
    assert card["evaluated_on"] == "9 held-out images of /data/held"
    assert "synthetic" not in card["caveat"] and "onepass eval" in card["caveat"]


def test_a_package_without_provenance_says_so(tmp_path):
    card = model_card(package_with(tmp_path, None))
    assert card["data"] == "unrecorded" and "not recorded" in card["trained_on"]
    assert card["training"] is None and card["evaluated_on"] is None


def test_the_shipped_model_is_honest_about_its_synthetic_training():
    card = model_card(open_package("default"))
    # version 4: the 3,000 still scenes and 1,440 frames of synthetic sequences
    assert card["data"] == "synthetic" and card["trained_on"].startswith("4,440 synthetic scenes")
    assert card["trained_on"].endswith("1,440 of them frames of synthetic sequences")
    assert card["evaluated_on"] == "500 held-out synthetic scenes (seed 1)"
    assert "random initialisation" in card["training"]
