"""Parity of an exported graph against the PyTorch model, per head, on fixed synthetic scenes."""

from __future__ import annotations

import os

import numpy as np
import torch

from onepass.data.synth import render_scene
from onepass.models.inference_graph import InferenceGraph
from onepass.models.package import ModelPackage
from onepass.models.tasks.base import OutputAgreement

PARITY_SEED = 20261123  # fixed scenes, so every export is checked on the same images


def parity_images(package: ModelPackage, count: int = 8) -> np.ndarray:
    height, width = package.config.input_size
    return np.stack([render_scene(np.random.default_rng([PARITY_SEED, i]), height, width).image for i in range(count)])


def onnx_parity(
    package: ModelPackage, onnx_path: str | os.PathLike, images: np.ndarray | None = None
) -> list[OutputAgreement]:
    """Each task's own agreement measures (`Task.agreement`), onnxruntime against PyTorch."""
    import onnxruntime

    images = parity_images(package) if images is None else images
    with torch.no_grad():
        expected = {
            k: v.numpy() for k, v in InferenceGraph(package.load_model()).eval()(torch.from_numpy(images)).items()
        }
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    actual = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": images}), strict=True))
    return [check for task in package.config.tasks for check in task.agreement(expected, actual)]
