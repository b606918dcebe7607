"""INT8 ONNX (`model.int8.onnx`) for CPUs: static QDQ quantisation with onnxruntime.quantization.

Weights are quantised per output channel (int8), activations per tensor (uint8), with ranges
calibrated on images like the ones the model will see. The network body is quantised (convolutions,
matrix products, and the additions, resizes and concatenations between them, so activations stay
int8 from one convolution to the next); normalisation and each task's post-processing (argmax,
softplus, L2 norm, softmax, the people's box decoding) stay fp32, where int8 would cost accuracy (a
uint8 softmax has a probability resolution of 1/256, a uint8 box corner 1/256 of the frame) and save
nothing. Those nodes are told apart by where the exporter traced them: in the inference graph
itself, not inside its network (`pkg.torch.onnx.class_hierarchy` on each node of model.onnx). On CPUs with AVX-512 VNNI or AMX,
onnxruntime runs the QDQ convolutions as integer kernels.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from onepass.data.image import IMAGE_EXTENSIONS, decode_image, resize_to_input
from onepass.export.formats import ExportError
from onepass.export.onnx import export_target, fp32_onnx, save_checked
from onepass.export.parity import parity_images
from onepass.models.package import ModelPackage

CALIBRATION_IMAGES = 128  # at most; more images move the ranges little and cost time
CALIBRATION_BATCH = 8
QUANTISED_OPS = ["Conv", "MatMul", "Gemm", "Add", "Resize", "Concat"]
CLASS_HIERARCHY = "pkg.torch.onnx.class_hierarchy"  # torch.onnx's record of the modules a node was traced in
NETWORK_MODULE = "onepass.models.model.MultiTaskModel"


def calibration_images(
    package: ModelPackage, calib: str | os.PathLike | None, limit: int = CALIBRATION_IMAGES
) -> np.ndarray:
    """(N, H, W, 3) uint8 at the model's input size: images found under `calib` (recursively, in
    name order), decoded and resized as training and serving do, or, with None, fixed synthetic
    scenes (right only for models trained on them)."""
    if calib is None:
        return parity_images(package, count=min(limit, 64))
    root = Path(calib)
    if not root.is_dir():
        raise ExportError(f"--calib {root}: not a directory of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())[:limit]
    if not files:
        raise ExportError(f"--calib {root}: no images ({', '.join(IMAGE_EXTENSIONS)}) found under it")
    return np.stack([resize_to_input(decode_image(f), package.config.input_size) for f in files])


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over an image array."""

    def __init__(self, images: np.ndarray):
        self._batches: Iterator[np.ndarray] = (
            images[i : i + CALIBRATION_BATCH] for i in range(0, len(images), CALIBRATION_BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"image": batch}


def export_int8(
    package: ModelPackage, calib: str | os.PathLike | None = None, out: str | os.PathLike | None = None
) -> Path:
    """Quantise the package's model.onnx (exported first if missing); written atomically."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = export_target(package, out, "int8")
    source = fp32_onnx(package)
    outside = nodes_outside_network(onnx.load(str(source), load_external_data=False), source)
    images = calibration_images(package, calib)
    with tempfile.TemporaryDirectory(prefix="onepass-int8-") as work:
        prepared, quantised = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared), str(quantised), _Batches(images),
                quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTISED_OPS, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=outside,
            )  # fmt: skip
        except Exception as error:  # onnxruntime.quantization raises bare exceptions
            raise ExportError(f"{source}: int8 quantisation failed ({error})") from error
        model = onnx.load(str(quantised))
    _keep_metadata(onnx.load(str(source), load_external_data=False), model)
    return save_checked(model, target)


def nodes_outside_network(model: onnx.ModelProto, source: Path) -> list[str]:
    """The names of the nodes traced outside the network (normalisation, every task's post-processing),
    which stay fp32. Raises ExportError for a graph that does not record where its nodes come from."""
    traced = {n.name: p.value for n in model.graph.node for p in n.metadata_props if p.key == CLASS_HIERARCHY}
    if not any(NETWORK_MODULE in hierarchy for hierarchy in traced.values()):
        raise ExportError(
            f"{source}: its nodes do not record the modules they were traced in, so the post-processing "
            "cannot be kept fp32; export model.onnx again with this version: onepass export MODEL"
        )
    return [name for name, hierarchy in traced.items() if NETWORK_MODULE not in hierarchy]


def _keep_metadata(source: onnx.ModelProto, model: onnx.ModelProto) -> None:
    """quantize_static drops metadata_props; the package JSON must travel with every export."""
    present = {p.key for p in model.metadata_props}
    for prop in source.metadata_props:
        if prop.key not in present:
            model.metadata_props.add(key=prop.key, value=prop.value)
