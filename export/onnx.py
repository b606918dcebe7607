"""ONNX export: the package's InferenceGraph (uint8 NHWC in, post-processed named outputs out)
through `torch.onnx.export(dynamo=True)`, checked, with the package JSON in the metadata.

Usable with onnxruntime and numpy alone: normalisation and every task's post-processing are in the
graph, and `onepass.json` travels in `metadata_props["onepass.json"]` (the file names and metadata
keys: models/package_exports.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import torch

from onepass.data.files import file_sha256
from onepass.export.formats import ExportError
from onepass.models.inference_graph import FrameGraph, InferenceGraph
from onepass.models.package import WEIGHTS_FILE, ModelPackage, PackageError, atomic_path
from onepass.models.package_exports import FRAME_ONNX_FILE, FRAME_SIDES, METADATA_KEY, ONNX_FILES, WEIGHTS_KEY

OPSET = 18  # the first with Resize's `antialias`, which the frame-size graph needs


def output_names(package: ModelPackage) -> list[str]:
    """The graph's outputs in order: each task's output specs, in the config's task order."""
    return [spec.name for task in package.config.tasks for spec in task.output_specs()]


def export_target(package: ModelPackage, out: str | os.PathLike | None, precision: str) -> Path:
    """Where an export goes (`out`, or the package's file for the precision), checked writable
    before any slow work starts."""
    target = Path(out) if out is not None else package.path / ONNX_FILES[precision]
    if not target.parent.is_dir() or not os.access(target.parent, os.W_OK):
        raise ExportError(f"{target.parent}: not a writable directory for {target.name}")
    return target


def export_onnx(package: ModelPackage, out: str | os.PathLike | None = None, dynamic_size: bool = False) -> Path:
    """Write `model.onnx` (or `out`) atomically: a failed export leaves no file behind."""
    target = export_target(package, out, "fp32")
    height, width = package.config.input_size
    example = torch.zeros(2, height, width, 3, dtype=torch.uint8)
    dims = {1: torch.export.Dim("height", min=32, max=4096), 2: torch.export.Dim("width", min=32, max=4096)}
    return _export(package, InferenceGraph(package.load_model()).eval(), example, dims if dynamic_size else {}, target)


def export_frame_onnx(package: ModelPackage, out: str | os.PathLike | None = None) -> Path:
    """Write `model.frame.onnx` (or `out`): the frame-size graph (FrameGraph), H and W dynamic."""
    target = Path(out) if out is not None else package.path / FRAME_ONNX_FILE
    if not target.parent.is_dir() or not os.access(target.parent, os.W_OK):
        raise ExportError(f"{target.parent}: not a writable directory for {target.name}")
    height, width = package.config.input_size
    # an example frame of another size than the model's, so that no resize is traced away
    example = torch.zeros(2, height * 3 // 2 + 2, width * 3 // 2 + 6, 3, dtype=torch.uint8)
    dims = {
        1: torch.export.Dim("frame_height", min=FRAME_SIDES[0], max=FRAME_SIDES[1]),
        2: torch.export.Dim("frame_width", min=FRAME_SIDES[0], max=FRAME_SIDES[1]),
    }
    return _export(package, FrameGraph(package.load_model()).eval(), example, dims, target)


def _export(package: ModelPackage, graph: torch.nn.Module, example: torch.Tensor, dims: dict, target: Path) -> Path:
    """torch.onnx.export (dynamo) with a dynamic batch and `dims`, the package's metadata added, checked."""
    dims = {0: torch.export.Dim("batch", min=1, max=4096), **dims}
    names = output_names(package)
    with torch.no_grad():
        program = torch.onnx.export(
            graph, (example,), dynamo=True, input_names=["image"], output_names=names,
            dynamic_shapes={"image": dims}, opset_version=OPSET, optimize=True, verbose=False,
        )  # fmt: skip
    model = program.model_proto
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(package.to_json()))
    model.metadata_props.add(key=WEIGHTS_KEY, value=file_sha256(package.path / WEIGHTS_FILE))
    return save_checked(model, target)


def fp32_onnx(package: ModelPackage) -> Path:
    """The package's model.onnx, exported first if it is missing: the source of every other export."""
    path = package.path / ONNX_FILES["fp32"]
    return path if path.is_file() else export_onnx(package)


def save_checked(model: onnx.ModelProto, target: Path) -> Path:
    """Save, run the full checker, then rename into place: a failed export leaves no file behind."""
    try:
        with atomic_path(target) as temporary:
            onnx.save(model, temporary)
            onnx.checker.check_model(temporary, full_check=True)
    except (onnx.checker.ValidationError, ValueError, OSError) as error:
        raise ExportError(f"{target}: the exported graph failed its checks ({error})") from error
    return target


def read_metadata(path: str | os.PathLike) -> dict:
    """The package JSON embedded in an exported graph."""
    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise PackageError(f"{path}: no {METADATA_KEY} in the ONNX metadata; not exported by onepass")
