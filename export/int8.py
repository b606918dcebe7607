"""INT8 ONNX (`model.int8.onnx`) for CPUs: static quantisation with onnxruntime.quantization.

Weights are quantised per output channel, activations per tensor (uint8), with ranges calibrated on
images like the ones the model will see; the --int8-* options (export/int8_options.py) choose the
format (QDQ or QOperator), the calibration, the weights' range and which layers stay fp32. The network
body is quantised (convolutions, matrix products, and the additions, resizes, concatenations and
activations between them, so activations stay int8 from one convolution to the next); normalisation
and each task's post-processing (argmax, softplus, L2 norm, softmax, the people's box decoding) stay
fp32, where int8 would cost accuracy (a uint8 softmax has a probability resolution of 1/256, a uint8
box corner 1/256 of the frame) and save nothing. Those nodes are told apart by where the exporter
traced them: in the inference graph itself, not inside its network (`pkg.torch.onnx.class_hierarchy`
on each node of model.onnx). On CPUs with AVX-512 VNNI or AMX, onnxruntime runs the convolutions as
integer kernels that accumulate exactly; on CPUs without VNNI its u8s8 kernels add pairs of products
in int16, which saturates with full-range int8 weights: the default 7-bit weights (`--int8-weights
int7`, onnxruntime's reduce_range) cannot saturate there.
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
from onepass.export.int8_options import Int8Options
from onepass.export.onnx import export_target, fp32_onnx, save_checked
from onepass.export.parity import parity_images
from onepass.models.package import ModelPackage

CALIBRATION_IMAGES = 128  # at most; more images move the ranges little and cost time
CALIBRATION_BATCH = 8
QUANTISED_OPS = ["Conv", "MatMul", "Gemm", "Add", "Resize", "Concat"]
# quantised too unless --int8-keep-fp32 names "activations": the quantiser then folds each into the range
# of the convolution before it (no Quantize/Dequantize pair around it, and no uint8 levels spent on the
# negative values it drops)
ACTIVATION_OPS = ["Relu", "Clip"]
WEIGHTED_OPS = ("Conv", "MatMul", "Gemm")  # the layers --int8-keep-fp32 and --int8-fp32-below speak of
SHAPE_OPS = ("Shape", "Size")  # read a tensor's shape only: not a path its values take
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
    package: ModelPackage,
    calib: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    options: Int8Options | None = None,
) -> Path:
    """Quantise the package's model.onnx (exported first if missing) as `options` say (None: the
    defaults); written atomically."""
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = export_target(package, out, "int8")
    source = fp32_onnx(package)
    outside = nodes_outside_network(onnx.load(str(source), load_external_data=False), source)
    images = calibration_images(package, calib)
    with tempfile.TemporaryDirectory(prefix="onepass-int8-") as work:
        prepared, quantised = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            arguments = quantize_static_arguments(options or Int8Options(), onnx.load(str(prepared)), outside)
            quantize_static(str(prepared), str(quantised), _Batches(images), **arguments)
        except Exception as error:  # onnxruntime.quantization raises bare exceptions
            raise ExportError(f"{source}: int8 quantisation failed ({error})") from error
        model = onnx.load(str(quantised))
    _keep_metadata(onnx.load(str(source), load_external_data=False), model)
    return save_checked(model, target)


def quantize_static_arguments(options: Int8Options, model: onnx.ModelProto, outside: list[str]) -> dict:
    """onnxruntime.quantization.quantize_static's keyword arguments for `options`, on the graph it will
    quantise (`model`, pre-processed), with the nodes outside the network (`outside`) left fp32."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    weight_type, reduce_range = {
        "int8": (QuantType.QInt8, False),
        "int7": (QuantType.QInt8, True),  # onnxruntime's reduce_range: 7-bit weights, no int16 saturation
        "uint8": (QuantType.QUInt8, False),
    }[options.weights]
    kept = options.kept()
    return {
        "quant_format": {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[options.format],
        "op_types_to_quantize": QUANTISED_OPS + ([] if "activations" in kept else ACTIVATION_OPS),
        "per_channel": True,
        "reduce_range": reduce_range,
        "activation_type": QuantType.QUInt8,
        "weight_type": weight_type,
        "calibrate_method": {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[options.calibration],
        "nodes_to_exclude": [*outside, *fp32_layers(model, set(outside), options)],
        "extra_options": {"ActivationSymmetric": options.symmetric_activations},
    }


def fp32_layers(model: onnx.ModelProto, outside: set[str], options: Int8Options) -> list[str]:
    """The network's weighted layers (convolutions, matrix products) that `options` keep fp32: the first
    (fed by the input through no other such layer), the last (each head's: feeding the post-processing
    through no other), and those with fewer weights than `options.fp32_below`."""
    weighted = [n for n in model.graph.node if n.op_type in WEIGHTED_OPS and n.name not in outside]
    kept: set[str] = set()
    if "first" in options.kept():
        kept |= _nearest_weighted(model, {i.name for i in model.graph.input}, outside, downstream=True)
    if "last" in options.kept():
        ends = {t for n in model.graph.node if n.name in outside for t in n.input} | {
            o.name for o in model.graph.output
        }
        kept |= _nearest_weighted(model, ends, outside, downstream=False)
    if options.fp32_below:
        sizes = {i.name: int(np.prod(i.dims)) for i in model.graph.initializer}
        kept |= {n.name for n in weighted if len(n.input) > 1 and sizes.get(n.input[1], 0) < options.fp32_below}
    return [n.name for n in weighted if n.name in kept]


def _nearest_weighted(model: onnx.ModelProto, tensors: set[str], outside: set[str], downstream: bool) -> set[str]:
    """The network's weighted layers first met walking from `tensors` along the data (downstream) or
    against it, through any other node but shape reads; the walk stops at each one."""
    producer = {t: n for n in model.graph.node for t in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for t in node.input:
            consumers.setdefault(t, []).append(node)
    found, seen, stack = set(), set(), list(tensors)
    while stack:
        tensor = stack.pop()
        nodes = consumers.get(tensor, []) if downstream else [producer[tensor]] if tensor in producer else []
        for node in nodes:
            if node.name in seen or node.op_type in SHAPE_OPS:
                continue
            seen.add(node.name)
            if node.op_type in WEIGHTED_OPS and node.name not in outside:
                found.add(node.name)
            else:
                stack.extend(node.output if downstream else node.input)
    return found


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
