"""The files that `onepass export` adds to a model package, and how a later stage finds and checks them
(DESIGN.md, "The model package"): the one home of their names, metadata keys and formats, so that the
export stage that writes them and the runtime that reads them cannot drift apart.

```
my-model/
  model.onnx, model.fp16.onnx, model.int8.onnx    ONNX_FILES; the package JSON and the weights' SHA-256
                                                  in each graph's metadata (METADATA_KEY, WEIGHTS_KEY)
  model.frame.onnx                                FRAME_ONNX_FILE: the frame-size graph (fp32; frames
                                                  of any size in, maps at their size out)
  model.<gpu>.trt<version>.<precision>.plan       a TensorRT engine, exactly as TensorRT wrote it
  model.<gpu>.trt<version>.<precision>.plan.json  its sidecar (EngineInfo): GPU, version, source ONNX
  trt-timing.cache                                TensorRT's timing cache, reused by later builds
  trt-cache/                                      engines of onnxruntime's TensorRT provider
  exports.json                                    parity and metric cost of every export
```

exports.json (REPORT_FORMAT, REPORT_VERSION): `files` maps each export file to its `parity` (fp32) or
`metrics` (reduced precisions); model.int8.onnx also records its `calibration` images and, under
QUANTISATION_KEY, the --int8-* options it was quantised with (export/int8_options.py's fields; a key
added within version 1, so reports written before it lack it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onepass.data.files import file_sha256
from onepass.models.package import WEIGHTS_FILE, ModelPackage, PackageError, write_json_atomic

ONNX_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}  # precision -> file
FRAME_ONNX_FILE = "model.frame.onnx"  # models/inference_graph.py's FrameGraph, exported (fp32)
FRAME_SIDES = (8, 16384)  # the frame heights and widths it takes; the Predictor resizes smaller ones itself
METADATA_KEY = "onepass.json"  # the package's onepass.json, in every exported graph's metadata_props
WEIGHTS_KEY = "onepass.weights_sha256"  # which weights the graph holds: a retrained package makes it stale

ENGINE_FORMAT = "onepass-tensorrt-engine"
ENGINE_VERSION = 1
TIMING_CACHE_FILE = "trt-timing.cache"  # reused by every later build on this package (seconds, not minutes)
TRT_CACHE_DIR = "trt-cache"  # onnxruntime's TensorRT provider keeps its engines here, beside the model

REPORT_FILE = "exports.json"
REPORT_FORMAT = "onepass-exports"
REPORT_VERSION = 1
QUANTISATION_KEY = "quantisation"  # an int8 file's entry: the Int8Options it was made with, as a dict


def check_exported_from(package: ModelPackage, path: Path, metadata: Mapping[str, str]) -> None:
    """An exported graph of another model, or of this one before it was retrained, is refused.

    `metadata` is the graph's metadata_props (any reader's: onnx, onnxruntime)."""
    if METADATA_KEY not in metadata:
        raise PackageError(f"{path}: no {METADATA_KEY} in its metadata; not exported by onepass")
    if not package.config.same_network_as(json.loads(metadata[METADATA_KEY]).get("model")):
        stale = "a different model configuration than"
    elif metadata.get(WEIGHTS_KEY) != file_sha256(package.path / WEIGHTS_FILE):
        stale = "other weights than"
    else:
        return
    raise PackageError(
        f"{path} was exported from {stale} {package.path}; export it again with `onepass export {package.path}`"
    )


class EngineMissing(PackageError):
    """The package has no engine for this GPU, TensorRT version and precision (yet)."""


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3': safe in a file name, still readable."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def engine_file(gpu_name: str, tensorrt_version: str, precision: str) -> str:
    """An engine only runs on the GPU model and TensorRT version that built it: both are in its name."""
    return f"model.{gpu_slug(gpu_name)}.trt{tensorrt_version}.{precision}.plan"


@dataclass(frozen=True)
class EngineInfo:
    """The sidecar JSON (`<plan>.json`): what the plan was built from, on what, for what shapes."""

    format: str
    version: int
    gpu: str
    tensorrt: str
    precision: str
    onnx_file: str
    onnx_sha256: str
    input_size: tuple[int, int]
    max_batch: int
    outputs: tuple[str, ...]
    model: dict

    @classmethod
    def read(cls, path: Path) -> EngineInfo:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise PackageError(f"{path}: not a readable engine description ({error})") from None
        if data.get("format") != ENGINE_FORMAT or data.get("version") != ENGINE_VERSION:
            raise PackageError(f"{path}: not an onepass engine description of version {ENGINE_VERSION}")
        try:
            return cls(**{**data, "input_size": tuple(data["input_size"]), "outputs": tuple(data["outputs"])})
        except TypeError as error:
            raise PackageError(f"{path}: engine description has missing or unknown fields ({error})") from None


def sidecar_path(plan: Path) -> Path:
    return plan.with_name(plan.name + ".json")


def find_engine(package: ModelPackage, gpu_name: str, tensorrt_version: str, precision: str) -> tuple[Path, EngineInfo]:
    """The package's engine for this GPU, TensorRT version and precision, checked against the package."""
    plan = package.path / engine_file(gpu_name, tensorrt_version, precision)
    flag = " --half" if precision == "fp16" else ""
    if not plan.is_file():
        built = sorted(p.name for p in package.path.glob("model.*.plan"))
        raise EngineMissing(
            f"no TensorRT engine in {package.path} for {gpu_name} with TensorRT {tensorrt_version} at {precision} "
            f"(found: {', '.join(built) or 'none'}); build it with `onepass export {package.path} --format tensorrt{flag}`"
        )
    info = EngineInfo.read(sidecar_path(plan))
    onnx_path = package.path / info.onnx_file
    if not package.config.same_network_as(info.model) or (
        onnx_path.is_file() and file_sha256(onnx_path) != info.onnx_sha256
    ):
        raise PackageError(
            f"{plan} was built from another version of this model; rebuild it with "
            f"`onepass export {package.path} --format tensorrt{flag}`"
        )
    return plan, info


def read_exports_report(path: Path) -> dict[str, Any]:
    """PACKAGE/exports.json: what each export file is and how it measured (a new one when missing)."""
    file = path / REPORT_FILE
    if not file.is_file():
        return {"format": REPORT_FORMAT, "version": REPORT_VERSION, "files": {}}
    try:
        report = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise PackageError(f"{file}: not valid JSON ({error}); delete it and export again") from None
    if report.get("format") != REPORT_FORMAT or report.get("version") != REPORT_VERSION:
        raise PackageError(f"{file}: not an onepass exports report of version {REPORT_VERSION}")
    return report


def write_exports_report(path: Path, report: dict[str, Any]) -> None:
    """Rewrite exports.json, keeping only the entries of files that are still in the package."""
    existing = {p.name for p in path.iterdir()}
    report["files"] = {name: entry for name, entry in report["files"].items() if name in existing}
    write_json_atomic(path / REPORT_FILE, report)
