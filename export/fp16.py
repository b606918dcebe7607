"""fp16 ONNX (`model.fp16.onnx`): the fp32 export with weights and activations in half precision.

The graph's inputs and outputs keep their types (uint8 image in; fp32 depth, normals and
probabilities out), so a consumer's code is the same for both files. Half precision pays on GPUs
(TensorRT, CUDA); on a CPU without fp16 arithmetic it is slower than fp32 — use int8 there.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from onepass.export.formats import ExportError
from onepass.export.onnx import export_target, fp32_onnx, save_checked
from onepass.models.package import ModelPackage


def export_fp16(package: ModelPackage, out: str | os.PathLike | None = None) -> Path:
    """Convert the package's model.onnx (exported first if missing) to fp16; written atomically."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    target = export_target(package, out, "fp16")
    source = fp32_onnx(package)
    try:
        half = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    except Exception as error:  # the converter raises bare exceptions for graphs it cannot handle
        raise ExportError(f"{source}: fp16 conversion failed ({error})") from error
    _sort_topologically(half.graph)
    return save_checked(half, target)


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Put every node after the nodes whose outputs it reads. The converter appends the casts it
    inserts around the ops that stay fp32 (TopK, the people head's peak picking) to the end of the
    node list, after their readers, which ONNX forbids."""
    available = {value.name for value in graph.input} | {init.name for init in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        waiting = []
        for node in pending:  # one pass places every node whose inputs exist, in their listed order
            if all(name in available for name in node.input):
                available.update(node.output)
                ordered.append(node)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            names = ", ".join(node.name for node in waiting[:3])
            raise ExportError(f"fp16 graph: nodes read values that no node produces ({names}, ...)")
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)
