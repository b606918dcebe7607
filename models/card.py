"""The model card: what a package was trained on, what its answers are (not) good for, and how to
train one on your own data.

Built from the package's own provenance (onepass.json's `training`, metrics.json's `data`), so it
stays true for every package: the shipped default model, or one a user trained on their frames.
The web page, /predict, /info and `onepass info` all show this one dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from onepass.models.package import ModelPackage

# What each known scene generator draws, in words (the generator is recorded in the data's synth.json).
GENERATORS = {"onepass.data.synth": "rendered rooms with boxes, spheres, cylinders and people-like figures"}

TRAIN_YOUR_OWN = (
    "To get answers for your own camera, train on your own frames: write them in the folder dataset format "
    "(README, 'The folder dataset format'; any label may be missing), then run "
    "`onepass train --data DIR --val-data HELD_OUT --out my-model` and serve it with `onepass serve my-model`."
)

CAVEATS = {
    "synthetic": (
        "This model was trained only on synthetic scenes and has seen no photographs: its answers on real "
        "camera frames (the people it finds, their attributes, and the maps) are not meaningful."
    ),
    "dataset": (
        "This model's answers are as good as its training images are like your frames: score it on labelled "
        "frames from your camera with `onepass eval` before relying on them."
    ),
    "unrecorded": (
        "Nothing records what this model was trained on: score it on labelled frames like yours with "
        "`onepass eval` before relying on its answers."
    ),
}


def model_card(package: ModelPackage) -> dict[str, Any]:
    """{name, version, data, trained_on, training, evaluated_on, caveat, train_your_own}; `data` is
    "synthetic", "dataset" or "unrecorded" (a package without training provenance)."""
    training = package.training or {}
    synth = (training.get("train_data") or {}).get("synth")
    if not training:
        data, trained_on = "unrecorded", "not recorded (this package's onepass.json has no training provenance)"
    elif synth:
        data, trained_on = "synthetic", f"{_count(training.get('train_images'))} synthetic scenes {_synthetic(synth)}"
        frames = (training.get("train_data") or {}).get("sequence_frames") or []
        if frames:  # `onepass data convert sequence-frames` added video frames to the scenes
            trained_on += f", {_count(sum(f.get('frames', 0) for f in frames))} of them frames of synthetic sequences"
    else:
        path = (training.get("config") or {}).get("data", "?")
        data, trained_on = "dataset", f"{_count(training.get('train_images'))} images of the folder dataset {path}"
    metrics = package.metrics
    return {
        "name": package.name,
        "version": package.version,
        "data": data,
        "trained_on": trained_on,
        "training": _training(training, package.config.encoder, package.config.pretrained) if training else None,
        "evaluated_on": _evaluated(metrics["data"]) if metrics else None,
        "caveat": CAVEATS[data],
        "train_your_own": TRAIN_YOUR_OWN,
    }


def card_footnote(card: Mapping[str, Any]) -> str:
    """One line for the foot of a picture: the model and the caveat."""
    return f"{card['name']} {card['version']}: {card['caveat']}"


def _synthetic(synth: Mapping[str, Any]) -> str:
    generator = synth.get("generator", "an unnamed generator")
    size = "x".join(str(v) for v in synth.get("size", ()))
    what = GENERATORS.get(generator, f"from {generator}")
    return f"({what}; {generator}, {size}, seed {synth.get('seed')})"


def _training(training: Mapping[str, Any], encoder: str, pretrained: bool) -> str:
    weights = "from pretrained weights" if pretrained else "from random initialisation (no pretrained weights)"
    return f"{_count(training.get('steps'))} steps ({training.get('epochs')} epochs); encoder {encoder} {weights}"


def _evaluated(data: Mapping[str, Any]) -> str:
    synth = data.get("synth")
    if synth:
        return f"{_count(data.get('images'))} held-out synthetic scenes (seed {synth.get('seed')})"
    return f"{_count(data.get('images'))} held-out images of {data.get('path')}"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"
