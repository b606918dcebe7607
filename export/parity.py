"""Parity of an exported graph against the PyTorch model, per head, on fixed synthetic scenes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from onepass.data.synth import render_scene
from onepass.models.inference_graph import InferenceGraph
from onepass.models.package import ModelPackage

PARITY_SEED = 20261123  # fixed scenes, so every export is checked on the same images


@dataclass(frozen=True)
class ParityCheck:
    output: str
    measure: str
    value: float
    limit: float
    higher_is_better: bool

    @property
    def passed(self) -> bool:
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit


def parity_images(package: ModelPackage, count: int = 8) -> np.ndarray:
    height, width = package.config.input_size
    return np.stack([render_scene(np.random.default_rng([PARITY_SEED, i]), height, width).image for i in range(count)])


def compare(name: str, dtype: str, expected: np.ndarray, actual: np.ndarray) -> ParityCheck:
    """The fp32 thresholds of the export issue, chosen by what the output is."""
    if dtype == "uint8":  # class ids
        return ParityCheck(name, "pixel agreement %", 100.0 * float((expected == actual).mean()), 99.9, True)
    if expected.ndim == 4 and expected.shape[-1] == 3:  # unit vectors
        cosine = np.clip((expected * actual).sum(-1), -1.0, 1.0)
        return ParityCheck(name, "max angle error °", float(np.degrees(np.arccos(cosine)).max()), 0.1, False)
    if expected.ndim == 3:  # a positive dense map (depth)
        relative = np.abs(actual - expected) / np.maximum(np.abs(expected), 1e-6)
        return ParityCheck(name, "max relative error", float(relative.max()), 1e-3, False)
    return ParityCheck(name, "max abs difference", float(np.abs(actual - expected).max()), 1e-4, False)


def onnx_parity(
    package: ModelPackage, onnx_path: str | os.PathLike, images: np.ndarray | None = None
) -> list[ParityCheck]:
    import onnxruntime

    images = parity_images(package) if images is None else images
    with torch.no_grad():
        expected = {
            k: v.numpy() for k, v in InferenceGraph(package.load_model()).eval()(torch.from_numpy(images)).items()
        }
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    actual = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": images}), strict=True))
    specs = [spec for task in package.config.tasks for spec in task.output_specs()]
    return [compare(spec.name, spec.dtype, expected[spec.name], actual[spec.name]) for spec in specs]
