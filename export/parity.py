"""Parity of an exported graph against the PyTorch model, per head, on fixed synthetic scenes."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import numpy as np
import torch

from onepass.data.synth import render_scene
from onepass.models.inference_graph import FrameGraph, InferenceGraph, frame_to_input
from onepass.models.package import ModelPackage
from onepass.models.tasks.base import OutputAgreement

PARITY_SEED = 20261123  # fixed scenes, so every export is checked on the same images

GraphRunner = Callable[[np.ndarray], Mapping[str, np.ndarray]]  # (N, H, W, 3) uint8 -> named outputs


def parity_images(package: ModelPackage, count: int = 8, size: tuple[int, int] | None = None) -> np.ndarray:
    """Fixed synthetic scenes at `size` (default: the model's input size)."""
    height, width = size or package.config.input_size
    return np.stack([render_scene(np.random.default_rng([PARITY_SEED, i]), height, width).image for i in range(count)])


def frame_parity_size(package: ModelPackage) -> tuple[int, int]:
    """The frames a frame-size graph is checked on: larger than the model's input, and of odd sides, so
    that both resizes do something and no size divides another."""
    height, width = package.config.input_size
    return height * 2 + 3, width * 2 + 7


def torch_runner(package: ModelPackage, graph_type: type[torch.nn.Module] = InferenceGraph) -> GraphRunner:
    """The reference: the package's InferenceGraph (or `graph_type`, e.g. FrameGraph) in PyTorch fp32."""
    graph = graph_type(package.load_model()).eval()

    @torch.no_grad()
    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in graph(torch.from_numpy(images)).items()}

    return run


def onnx_runner(path: str | os.PathLike | bytes) -> GraphRunner:
    """An exported graph (a file, or a serialised model) on onnxruntime's CPU provider."""
    import onnxruntime

    source = path if isinstance(path, bytes) else str(path)
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda images: dict(zip(names, session.run(None, {"image": images}), strict=True))


def parity(
    package: ModelPackage,
    run: GraphRunner,
    images: np.ndarray | None = None,
    graph_type: type[torch.nn.Module] = InferenceGraph,
) -> list[OutputAgreement]:
    """Each task's own agreement measures (`Task.agreement`), a runner against PyTorch's `graph_type`."""
    images = parity_images(package) if images is None else images
    expected, actual = torch_runner(package, graph_type)(images), run(images)
    return agreement(package, expected, actual)


def agreement(
    package: ModelPackage, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]
) -> list[OutputAgreement]:
    """Every task's agreement measures of two runs' outputs (reference first)."""
    return [check for task in package.config.tasks for check in task.agreement(expected, actual)]


def frame_parity(
    package: ModelPackage, run: GraphRunner, graph_path: str | os.PathLike | None = None
) -> list[OutputAgreement]:
    """A frame-size graph's runner against PyTorch's FrameGraph, on frames of `frame_parity_size`.

    With the ONNX file (`graph_path`), its own input resize is run alone (`onnx_resized_frames`) and
    checked first: at most 1 grey level from PyTorch's. PyTorch's graph then continues from that resized
    input, so the outputs are held to the fp32 limits for what follows the resize. Rounding the resize to
    whole grey levels flips a value that lies within float error of a half between the two (8 of 491,520
    values on one AVX-512 CPU), and the network carries one grey level on to a few outputs (up to 0.27
    degrees of normals there, against the 0.1 limit)."""
    images = parity_images(package, size=frame_parity_size(package))
    resized = onnx_resized_frames(graph_path, images) if graph_path is not None else None
    if resized is None:
        return parity(package, run, images, FrameGraph)
    graph = FrameGraph(package.load_model()).eval()
    with torch.no_grad():
        own = frame_to_input(torch.from_numpy(images), package.config.input_size).numpy()
        reference = graph.from_input(torch.from_numpy(resized), images.shape[1:3])
    difference = float(np.abs(own - resized).max())
    resize_check = OutputAgreement("image", "input resize: max grey-level difference", difference, 1.0, False)
    return [resize_check, *agreement(package, {k: v.numpy() for k, v in reference.items()}, run(images))]


def onnx_resized_frames(path: str | os.PathLike, images: np.ndarray) -> np.ndarray | None:
    """A frame-size ONNX graph's own input resize, run alone on onnxruntime: its subgraph from the image to
    the resize's rounded, clamped result (the one Round and the Clip after it). None if the graph has no
    such pair (then parity compares the whole graphs)."""
    import onnx
    import onnx.utils

    model = onnx.load(str(path), load_external_data=False)
    rounds = [n for n in model.graph.node if n.op_type == "Round"]
    clips = [n for n in model.graph.node if n.op_type == "Clip" and rounds and n.input[0] == rounds[0].output[0]]
    if len(rounds) != 1 or len(clips) != 1:
        return None
    output = clips[0].output[0]
    part = onnx.utils.Extractor(model).extract_model(["image"], [output])  # the loaded graph, cut in memory
    return np.asarray(onnx_runner(part.SerializeToString())(images)[output])


def onnx_parity(
    package: ModelPackage, onnx_path: str | os.PathLike, images: np.ndarray | None = None
) -> list[OutputAgreement]:
    return parity(package, onnx_runner(onnx_path), images)
