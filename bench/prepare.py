"""The packages a bench measures, laid out in its work directory, and what is counted once per model
(parameters, FLOPs per image and per module, file sizes).

The bench never writes into the user's package (the shipped default model lives inside the
installed onepass): it mirrors the package into the work directory (config copied, weights and
existing exports linked) and exports there whatever a format needs and the package lacks.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import torch
from torch import nn

from onepass.bench.plan import FORMATS, BenchError, Variant
from onepass.bench.records import ModelCounts, ModuleCount
from onepass.data.files import file_sha256
from onepass.errors import unknown_name_error
from onepass.models.model import MultiTaskModel
from onepass.models.package import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ModelPackage,
    PackageError,
    open_package,
    save_package,
    write_json_atomic,
)

WEIGHTS_STAMP = ".bench-weights.sha256"
SINGLE_TASK_SEED = 0  # built single-task models have random weights: timing does not depend on them


def size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copy2(source, target)


def mirror_package(package: ModelPackage, size: tuple[int, int], root: Path, prefix: str = "") -> ModelPackage:
    """The package at input size `size`, as a directory under `root` that the bench may write into.

    A convolutional model runs at any multiple of 32; a size other than the package's own changes only
    the config's input_size (same weights), so its timings are those of the model at that size."""
    target = root / f"{prefix}{package.name}-{size_text(size)}"
    target.mkdir(parents=True, exist_ok=True)
    _forget_exports_of_other_weights(package, target)
    config = dataclasses.replace(package.config, input_size=tuple(size))
    mirrored = ModelPackage(target, package.name, package.version, config, package.training)
    write_json_atomic(target / CONFIG_FILE, mirrored.to_json())
    _link_or_copy(package.path / WEIGHTS_FILE, target / WEIGHTS_FILE)
    if tuple(size) == tuple(package.config.input_size):
        _reuse_exports(package, mirrored)
    return open_package(target)


def _forget_exports_of_other_weights(package: ModelPackage, target: Path) -> None:
    """A kept --workdir may hold exports of an earlier version of the model: they are removed when the
    weights changed (an export's metadata records the config, not the weights)."""
    digest = file_sha256(package.path / WEIGHTS_FILE)
    stamp = target / WEIGHTS_STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return
    for path in target.iterdir():
        if path.suffix in (".onnx", ".plan", ".json", ".cache") and path.name != CONFIG_FILE:
            path.unlink()
    shutil.rmtree(target / "trt-cache", ignore_errors=True)  # the TensorRT EP's engines
    stamp.write_text(digest + "\n")


def _reuse_exports(package: ModelPackage, mirrored: ModelPackage) -> None:
    """Link the package's own ONNX files when they were exported from this exact config."""
    from onepass.export.onnx import read_metadata
    from onepass.models.package_exports import FRAME_ONNX_FILE, ONNX_FILES

    for name in (*ONNX_FILES.values(), FRAME_ONNX_FILE):
        source = package.path / name
        if not source.is_file() or (mirrored.path / name).exists():
            continue
        try:
            if read_metadata(source).get("model") != package.config.to_json():
                continue  # stale: exported from another config; the bench exports afresh
        except (PackageError, OSError, ValueError):
            continue
        _link_or_copy(source, mirrored.path / name)


def single_task_packages(
    package: ModelPackage, size: tuple[int, int], root: Path, given: tuple[str, ...] = ()
) -> list[ModelPackage]:
    """One single-task package per task of `package`, same encoder, architecture and input size:
    the given ones (checked), or built with random weights (timing does not depend on weights)."""
    config = package.config
    names = [t.name for t in config.tasks]
    if given:
        packages = [open_package(path) for path in given]
        found = {}
        for single in packages:
            if len(single.config.tasks) != 1:
                raise BenchError(
                    f"--single-task {single.path}: has {len(single.config.tasks)} tasks; give one-task models"
                )
            if single.config.encoder != config.encoder:
                raise BenchError(
                    f"--single-task {single.path}: encoder {single.config.encoder!r} differs from the model's "
                    f"{config.encoder!r}; the comparison needs the same encoder"
                )
            found[single.config.tasks[0].name] = single
        if sorted(found) != sorted(names):
            raise BenchError(f"--single-task: need exactly one model per task {names}, got {sorted(found)}")
        return [mirror_package(found[name], size, root, prefix="single-") for name in names]
    built = []
    for task in config.tasks:
        path = root / f"single-{task.name}-{size_text(size)}"
        single_config = dataclasses.replace(config, tasks=(task,), input_size=tuple(size))
        if (path / CONFIG_FILE).is_file() and open_package(path).config != single_config:
            shutil.rmtree(path)  # built for another model in a kept --workdir
        if not (path / CONFIG_FILE).is_file():
            torch.manual_seed(SINGLE_TASK_SEED)
            save_package(
                path,
                MultiTaskModel(single_config).eval(),
                f"{package.name}-{task.name}-only",
                training={"note": "random weights, built by onepass bench for timing only"},
            )
        built.append(open_package(path))
    return built


def check_head_cost(package: ModelPackage, tasks: tuple[str, ...]) -> None:
    """--head-cost names tasks of the model, each of which can be left out (not its only task)."""
    names = [t.name for t in package.config.tasks]
    for task in tasks:
        if task not in names:
            raise unknown_name_error("--head-cost task", task, names)
        if len(names) == 1:
            raise BenchError(f"--head-cost {task}: it is the model's only task; nothing would be left to time")


def without_task_package(package: ModelPackage, task: str, size: tuple[int, int], root: Path) -> ModelPackage:
    """The package without one task: the same weights, less that task's head (and whatever only it
    used), at input size `size` -- what the model costs without that head.

    Rebuilt only when the package's weights or the config changed (a kept --workdir keeps its exports)."""
    check_head_cost(package, (task,))
    config = package.config
    stripped = dataclasses.replace(config, tasks=tuple(t for t in config.tasks if t.name != task), input_size=size)
    path = root / f"{package.name}-without-{task}-{size_text(size)}"
    digest = file_sha256(package.path / WEIGHTS_FILE)
    stamp = path / WEIGHTS_STAMP
    if (path / CONFIG_FILE).is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        if open_package(path).config == stripped:
            return open_package(path)
    shutil.rmtree(path, ignore_errors=True)
    state = package.load_model().state_dict()
    model = MultiTaskModel(stripped)
    wanted = model.state_dict()
    foreign = sorted(k for k in wanted if k not in state or state[k].shape != wanted[k].shape)
    if foreign:  # removing a head changed a shared part: then the comparison would not be the same network
        raise BenchError(f"--head-cost {task}: without it, the {config.architecture} network differs ({foreign[:3]})")
    model.load_state_dict({k: state[k] for k in wanted})
    save_package(
        path,
        model.eval(),
        f"{package.name}-without-{task}",
        training={"note": f"{package.name}'s weights less the {task} head, built by onepass bench for timing"},
    )
    stamp.write_text(digest + "\n")
    return open_package(path)


@dataclasses.dataclass(frozen=True)
class PreparedFile:
    path: Path
    bytes: int
    export_s: float | None  # None: it was there already (the package's own, or an earlier export)


def prepare_file(package: ModelPackage, variant: Variant, device: str, max_batch: int = 1) -> PreparedFile:
    """The file a variant runs from, exported into the (mirrored) package if missing."""
    spec = FORMATS[variant.format]
    if spec.file == "weights":
        path = package.path / WEIGHTS_FILE
        return PreparedFile(path, path.stat().st_size, None)
    if spec.file == "onnx":
        from onepass.models.package_exports import FRAME_ONNX_FILE, ONNX_FILES

        path = package.path / ONNX_FILES[variant.precision]
        export_s = None
        if not path.is_file():
            from onepass.export.onnx_format import export_precision

            start = time.perf_counter()
            path = export_precision(package, variant.precision)
            export_s = time.perf_counter() - start
        if variant.precision == "fp32" and not (package.path / FRAME_ONNX_FILE).is_file():
            # the frame-size graph too, which Predictor.predict runs from frames (and the bench times)
            from onepass.export.onnx import export_frame_onnx

            export_frame_onnx(package)
        return PreparedFile(path, path.stat().st_size, export_s)
    return _prepare_tensorrt(package, variant, device, max_batch)


def _prepare_tensorrt(package: ModelPackage, variant: Variant, device: str, max_batch: int) -> PreparedFile:
    """The package's TensorRT engine for this GPU and precision, built (from the ONNX file of the same
    precision, exported first if missing) when the package has none."""
    from onepass.export.tensorrt import DEFAULT_MAX_BATCH, build_engine, import_tensorrt
    from onepass.models.package_exports import find_engine

    trt = import_tensorrt()
    index = torch.device(device).index or 0
    try:
        plan, _ = find_engine(package, torch.cuda.get_device_name(index), trt.__version__, variant.precision)
        return PreparedFile(plan, plan.stat().st_size, None)
    except PackageError:
        pass
    start = time.perf_counter()
    prepare_file(package, Variant("onnxruntime", variant.precision), device)  # the engine's source graph
    plan = build_engine(package, variant.precision, max(DEFAULT_MAX_BATCH, max_batch), device=index)
    return PreparedFile(plan, plan.stat().st_size, time.perf_counter() - start)


def count_model(package: ModelPackage) -> ModelCounts:
    """Parameters (`ModelPackage.parameter_count`, the count `onepass info` and the README give) and
    FLOPs per image (multiply-adds x 2, counted by torch's FlopCounterMode on the inference graph at
    the package's input size, batch 1), in total and per module (`model_parts`)."""
    from torch.utils.flop_counter import FlopCounterMode

    from onepass.models.inference_graph import InferenceGraph

    model = package.load_model()
    graph = InferenceGraph(model).eval()
    height, width = package.config.input_size
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        graph(torch.zeros(1, height, width, 3, dtype=torch.uint8))
    total = int(counter.get_total_flops())
    by_module = {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}
    prefix = f"{type(graph).__name__}.model."  # FlopCounterMode names modules by their path from the root
    modules = [
        ModuleCount(name, sum(p.numel() for p in part.parameters()), int(by_module.get(prefix + name, 0)))
        for name, part in model_parts(model)
    ]
    rest = total - sum(m.flops_per_image for m in modules)
    if rest:  # outside the network: the graph's own post-processing
        modules.append(ModuleCount(GRAPH_REST, 0, rest))
    return ModelCounts(
        parameters=package.parameter_count(),
        flops_per_image=total,
        weights_bytes=(package.path / WEIGHTS_FILE).stat().st_size,
        modules=tuple(modules),
    )


GRAPH_REST = "in-graph post-processing"


def model_parts(model: MultiTaskModel) -> list[tuple[str, nn.Module]]:
    """The network's parts by their path in the model (its state dict's prefixes): the encoder, then
    each module of the architecture (the decoder), and one entry per task in its module dicts (the
    heads: `heads.dense_heads.depth`, `heads.image_heads.attributes`; hps's per-task decoders)."""
    parts: list[tuple[str, nn.Module]] = [("encoder", model.encoder)]
    for name, child in model.heads.named_children():
        if isinstance(child, nn.ModuleDict):
            parts += [(f"heads.{name}.{key}", module) for key, module in child.items()]
        else:
            parts.append((f"heads.{name}", child))
    return parts
