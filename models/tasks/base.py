"""The task registry: one class per task type declares everything about its head.

| declares                                   | used by                          |
|--------------------------------------------|----------------------------------|
| `kind`, `head_input`, `build_head`, `resize_raw` | models                     |
| `label`, `target`, `resize/flip/zoom_target`, `loss` (missing labels masked) | train |
| `new_metric`, `metric_directions`          | train, eval, Δ_MTL               |
| `new_calibrator` (decision settings chosen on labelled data after training) | train (calibration) |
| `postprocess`, `postprocess_at` (in-graph) | export, runtime                  |
| `output_specs` (names, dtypes, shapes)     | export, serve, KServe v2         |
| `codec`, `to_result`, `frame_result`, `model_result` (files and HTTP) | predict, serve |
| `visualize` (picture), `legend` (its key)  | panels, serve web page, predict  |
| `describe` (a result in words)             | panels                           |
| `tracks_objects`, `detections` (from a record), `candidates` | video: tracks over frames (runtime/audience.py) |

The task's registry name is its key everywhere: `forward()`'s dict, loss and metric names,
ONNX outputs, HTTP fields and output file names. Adding a task type means adding one module
with a `@register_task` class; no other stage changes.
"""

from __future__ import annotations

import base64
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onepass.data.codecs import Codec
from onepass.errors import ConfigError, unknown_name_error
from onepass.models.tasks.legends import Legend

TASK_TYPES: dict[str, type[Task]] = {}


@dataclass(frozen=True)
class OutputSpec:
    """One named output of the exported graph. Shapes use "N" (batch), "H", "W" for dynamic sizes."""

    name: str
    dtype: str  # numpy dtype name: uint8, float32
    shape: tuple[str | int, ...]


@dataclass(frozen=True)
class OutputAgreement:
    """How closely one output of an exported graph matches the reference model (the export issue's
    fp32 thresholds live with each task, since each output type needs its own measure)."""

    output: str
    measure: str
    value: float
    limit: float
    higher_is_better: bool

    @property
    def passed(self) -> bool:
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit


@dataclass(frozen=True)
class Detection:
    """One object in one frame, as a tracker follows it across a video (`Task.detections`)."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the frame's pixels
    score: float  # confidence in [0, 1]
    attention: bool | None = None  # the object attends to the display (a person looking); None: not told
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)  # labels voted over a track
    # False: a candidate the count left out (`Task.candidates`): it may extend a track, never start one
    counted: bool = True


class Metric(Protocol):
    """Accumulates over a whole evaluation set (pooled, never averaged per batch), from the task's
    post-processed outputs (`postprocess`, or any backend's) and its targets."""

    def update(self, outputs: Mapping[str, Tensor], target: Any) -> None: ...

    def compute(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class Calibration:
    """What a `Calibrator` chose: the task with its new settings, and a JSON record of the choice
    (each setting and the metric it maximised, before and after, on the calibration data)."""

    task: Task
    record: dict[str, Any]


class Calibrator(Protocol):
    """Accumulates a task's post-processed outputs and targets over labelled data, as a `Metric` does,
    then chooses the task's decision settings (a score threshold) on them.

    `compute` raises a ValueError saying what the data lacks when it cannot choose (no labels)."""

    def update(self, outputs: Mapping[str, Tensor], target: Any) -> None: ...

    def compute(self) -> Calibration: ...


@dataclass(frozen=True)
class Task(ABC):
    """A task type. Subclasses are frozen dataclasses whose fields are the task's saved config.

    A task type derives from one of the three kind classes below (`MapTask`, `ImageTask`,
    `InstancesTask`), which give each hook its default for that kind; stages outside models/tasks/
    call the hooks and never ask for the kind or the name.
    """

    name: ClassVar[str]
    kind: ClassVar[str]  # "map" (per pixel), "image" (one vector per image), "instances" (a set per image)
    head_input: ClassVar[str]  # "decoder": the decoder's finest map; "deepest": the encoder's last stage
    codec: ClassVar[Codec | None] = None  # file/HTTP encoding of a per-pixel prediction or label
    writes_records: ClassVar[bool] = False  # `onepass predict` writes a line per image of `record` to <task>.jsonl
    tracks_objects: ClassVar[bool] = False  # its records hold objects a tracker follows over video frames
    # Whether its head may run at half the decoder's resolution (ModelConfig.head_stride 2): true where
    # `resize_raw` brings the raw output to the input's size whatever size the head gave it.
    head_may_stride: ClassVar[bool] = False

    @classmethod
    def from_dataset(cls, description: Any) -> Task:
        """The task as a dataset describes it (`onepass.data.folder.DatasetDescription`: dataset.json's
        class names, attribute groups and person attributes)."""
        return cls()

    def reads_labels_of(self, description: Any) -> bool:
        """Whether a dataset so described labels this task the way it was trained (its classes, groups...)."""
        return True

    # ---- models ---------------------------------------------------------------------------
    @property
    @abstractmethod
    def out_channels(self) -> int: ...

    @abstractmethod
    def build_head(self, in_channels: int) -> nn.Module:
        """Head on `head_input` features (B, in, h, w) -> the raw output (see `resize_raw`)."""

    def resize_raw(self, raw: Tensor, size: tuple[int, int]) -> Tensor:
        """The head's raw output -> what the loss and `postprocess` take, for an input of `size`."""
        return raw

    # ---- train ----------------------------------------------------------------------------
    def label(self, sample: Any) -> Any:
        """This task's label in a folder dataset's sample (`onepass.data.folder.Sample`), None if missing."""
        raise NotImplementedError

    @abstractmethod
    def target(self, label: Any, size: tuple[int, int], source: str) -> Any:
        """Turn a dataset label (None = missing) of an image of `size` into the training target: an
        array, or a dict of fixed-size arrays, "unlabelled" where there is no label.

        Raises a ValueError naming `source` for a label that does not fit.
        """

    def resize_target(self, target: Any, size: tuple[int, int]) -> Any:
        """The target of the image resized to `size` (the model's input)."""
        return target

    def flip_target(self, target: Any) -> Any:
        """Target of the horizontally flipped image."""
        return target

    def zoom_target(self, target: Any, inner: tuple[int, int], offset: tuple[int, int], size: tuple[int, int]) -> Any:
        """Target after the image (of `size`) is shrunk to `inner` and pasted at `offset` (top, left)
        of a canvas of `size`, the rest of which is unlabelled."""
        return target

    @abstractmethod
    def loss(self, raw: Tensor, target: Any) -> Tensor | None:
        """Mean loss over labelled elements; None when nothing in the batch is labelled."""

    @abstractmethod
    def new_metric(self) -> Metric: ...

    def new_calibrator(self) -> Calibrator | None:
        """A calibrator of the settings that turn this task's outputs into answers (the people count's
        score threshold), chosen on labelled data after training; None for a task without such settings."""
        return None

    @abstractmethod
    def constant_output(self, targets: Any) -> Tensor:
        """The trivial baseline (majority class, mean, most common value, nobody) as a raw output vector
        of `out_channels`, estimated from a batch of training targets."""

    def constant_raw(self, constant: Tensor, batch: int, size: tuple[int, int]) -> Tensor:
        """`constant_output`'s vector as the raw output of a batch of images of `size`."""
        raise NotImplementedError

    @abstractmethod
    def metric_directions(self) -> dict[str, bool]:
        """Metric name -> True when higher is better."""

    # ---- export / runtime -----------------------------------------------------------------
    @abstractmethod
    def postprocess(self, raw: Tensor) -> dict[str, Tensor]:
        """In-graph post-processing: raw head output -> named outputs (see `output_specs`). Metrics
        score these outputs, so what is measured is what every backend returns."""

    def postprocess_at(self, raw: Tensor, size: tuple[Any, Any]) -> dict[str, Tensor]:
        """In-graph post-processing at an output `size` (H, W): the frame-size graph's outputs (same names,
        dtypes and shapes as `postprocess`'s, with the maps at `size` and coordinates in its pixels).

        `size` may be symbolic (the exported graph's dynamic frame height and width). The default, for
        outputs that have no size (image kind): `postprocess` itself."""
        return self.postprocess(raw)

    @abstractmethod
    def output_specs(self) -> tuple[OutputSpec, ...]: ...

    @abstractmethod
    def agreement(self, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> list[OutputAgreement]:
        """Compare this task's outputs from two runs of the graph (reference first)."""

    @abstractmethod
    def to_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> Any:
        """One image's post-processed outputs -> the user-facing result at the image's (H, W)."""

    def frame_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> Any:
        """One image's outputs of the frame-size graph (`postprocess_at` at the image's (H, W) `size`)
        -> the same result as `to_result`, with nothing left to resize: slicing. Default: `to_result`."""
        return self.to_result(outputs, size)

    def model_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> Any:
        """One image's outputs at the model's resolution (`postprocess`) -> the result with its maps left
        at that resolution (the cheapest answer) and anything else as `to_result` gives it for an image
        of `size`. Default: `to_result`."""
        return self.to_result(outputs, size)

    # ---- predict / serve ------------------------------------------------------------------
    def visualize(self, result: Any, image: np.ndarray | None = None) -> np.ndarray | None:
        """(H, W, 3) uint8 picture of a result (drawn over `image` where that reads better), or None
        when words say it better (`describe`)."""
        return None

    def legend(self, result: Any) -> Legend | None:
        """The key to `visualize(result)`'s colours (only what this result shows, where that reads
        better); None when the picture needs none."""
        return None

    def describe(self, result: Any) -> list[str]:
        """A result in words, one line per item, for the text beside pictures; [] when the picture says it."""
        return []

    def describe_target(self, target: np.ndarray) -> list[str]:
        """One image's training target in words, like `describe`; [] when a picture shows it."""
        return []

    def label_summary(self) -> str:
        """What the labels mean, in one line (class names, groups), for `onepass info`."""
        return "-"

    def response(self, result: Any, maps: bool) -> dict[str, Any]:
        """This task's part of a /predict body. The server merges the tasks' parts one level deep, so
        every map task's "maps" entry lands in one "maps" object; `maps` False asks for no maps."""
        return {}

    def table_columns(self) -> dict[str, str]:
        """Columns this task adds to `onepass predict`'s table (predictions.csv), each with its type
        in the Parquet copy ("string", "float64", "int32")."""
        return {}

    def table_values(self, result: Any) -> dict[str, Any]:
        """One image's values for `table_columns`."""
        return {}

    def record(self, result: Any) -> Any | None:
        """One image's line of `onepass predict`'s `<task>.jsonl` (JSON-serialisable), or None for none."""
        return None

    def run_files(self, records: Mapping[str, Any], image_ids: Mapping[str, int]) -> dict[str, Any]:
        """Files `onepass predict` writes at the end of a run from every finished image's `record`
        ({image key: record}): {file name: JSON-serialisable content}. `image_ids` numbers the images
        (a labelled folder's own ids where the run read one). None by default."""
        return {}

    def arrays(self, result: Any) -> dict[str, np.ndarray]:
        """One image's result as named arrays (`onepass predict --format npz`)."""
        return {}

    def candidates(
        self, outputs: Mapping[str, np.ndarray], size: tuple[int, int], floor: float, in_pixels: bool = False
    ) -> list[Any]:
        """The objects of one image's outputs that its result leaves out for scoring below its threshold
        but at least `floor` (tasks with `tracks_objects` only), as items of `to_result`'s list (of
        `frame_result`'s, `in_pixels`) marked `"counted": False`: a video frame's record holds them too,
        and the tracker extends a track with them (runtime/audience.py). None by default (an empty list)."""
        return []

    def detections(self, record: Any) -> list[Detection]:
        """The objects in one frame's `record`, for a tracker (tasks with `tracks_objects` only): from
        the record rather than the result, so that a resumed video run re-tracks from <task>.jsonl."""
        raise NotImplementedError(f"task {self.name!r} has no objects to track")

    # ---- config ---------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"type": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
            config[f.name] = value
        return config


@dataclass(frozen=True)
class MapTask(Task):
    """Per pixel: the head reads the decoder's finest map and its raw output is upsampled to the input
    size; targets are (H, W[, C]) arrays, `fill_value` where unlabelled; labels are one file per image
    in the task's folder, written with `codec`."""

    kind: ClassVar[str] = "map"
    head_input: ClassVar[str] = "decoder"
    head_may_stride: ClassVar[bool] = True  # resize_raw upsamples its output to the input, from any size
    fill_value: ClassVar[float] = 0.0  # target value of pixels without a label (padding)

    def build_head(self, in_channels: int) -> nn.Module:
        """`dense_head`: a light convolutional head with `out_channels` outputs per pixel."""
        return dense_head(in_channels, self.out_channels)

    def resize_raw(self, raw: Tensor, size: tuple[int, int]) -> Tensor:
        return F.interpolate(raw, size=size, mode="bilinear", align_corners=False)

    def postprocess_at(self, raw: Tensor, size: tuple[Any, Any]) -> dict[str, Tensor]:
        """The raw output (logits, pre-activation values) resized to `size` first, then `postprocess`:
        argmax after upsampling, softplus, renormalisation and softmax at the frame's pixels."""
        return self.postprocess(resize_map(raw, size))

    def frame_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
        return outputs[self.name]  # the graph did the resizing and the post-processing at `size`

    def model_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
        return outputs[self.name]  # `postprocess` is the answer at the model's resolution

    def label(self, sample: Any) -> np.ndarray | None:
        return sample.maps.get(self.name)

    def resize_target(self, target: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Nearest neighbour, so labels never blend across object boundaries."""
        if target.shape[:2] == size:
            return target
        rows = (np.arange(size[0]) + 0.5) * target.shape[0] / size[0]
        cols = (np.arange(size[1]) + 0.5) * target.shape[1] / size[1]
        return target.take(rows.astype(int), axis=0).take(cols.astype(int), axis=1)  # 3x faster than one 2-D index

    def flip_target(self, target: np.ndarray) -> np.ndarray:
        return target[:, ::-1]

    def rescale_target_values(self, target: np.ndarray, zoom: float) -> np.ndarray:
        """Target values after the image is scaled by `zoom` (depth changes; classes do not)."""
        return target

    def zoom_target(
        self, target: np.ndarray, inner: tuple[int, int], offset: tuple[int, int], size: tuple[int, int]
    ) -> np.ndarray:
        zoom = inner[0] / size[0]
        shrunk = self.rescale_target_values(self.resize_target(target, inner), zoom)
        padded = np.full((*size, *shrunk.shape[2:]), self.fill_value, shrunk.dtype)
        padded[offset[0] : offset[0] + inner[0], offset[1] : offset[1] + inner[1]] = shrunk
        return padded

    def constant_raw(self, constant: Tensor, batch: int, size: tuple[int, int]) -> Tensor:
        return constant.view(1, -1, 1, 1).expand(batch, -1, *size)

    def response(self, result: np.ndarray, maps: bool) -> dict[str, Any]:
        if not maps:
            return {}
        png = base64.b64encode(self.codec.encode(result)).decode("ascii")
        return {"maps": {self.name: {"png": png, "encoding": self.codec.description}}}

    def arrays(self, result: np.ndarray) -> dict[str, np.ndarray]:
        return {self.name: result}


class NonNegativeMapTask(MapTask):
    """One value per pixel, finite and >= 0 (depth in metres, a saliency density); zero where
    unlabelled. `target_rule` ends the error for a label that breaks it."""

    target_rule: ClassVar[str]

    @property
    def out_channels(self) -> int:
        return 1

    def target(self, label: np.ndarray | None, size: tuple[int, int], source: str) -> np.ndarray:
        if label is None:
            return np.zeros(size, np.float32)
        if label.ndim != 2 or not np.all(np.isfinite(label)) or (label < 0).any():
            raise ValueError(f"{source}: {self.target_rule}")
        return label.astype(np.float32, copy=False)


@dataclass(frozen=True)
class ImageTask(Task):
    """One vector per image: the head reads the encoder's deepest stage (the whole image's context);
    labels are a row of attributes.csv; the result is words, shown as a caption."""

    kind: ClassVar[str] = "image"
    head_input: ClassVar[str] = "deepest"

    def label(self, sample: Any) -> Any:
        return sample.attributes

    def response(self, result: Any, maps: bool) -> dict[str, Any]:
        return {self.name: result}

    def constant_raw(self, constant: Tensor, batch: int, size: tuple[int, int]) -> Tensor:
        return constant.view(1, -1).expand(batch, -1)


@dataclass(frozen=True)
class InstancesTask(Task):
    """A variable-length set per image (the people in front of the display): the head reads the
    decoder's finest map at its own stride, the graph decodes it into fixed-size padded tensors plus a
    count; labels come from the folder's COCO file; boxes are fractions of the image, so resizing an
    image leaves them be and a zoom-out scales and shifts them."""

    kind: ClassVar[str] = "instances"
    head_input: ClassVar[str] = "decoder"
    writes_records: ClassVar[bool] = True
    stride: ClassVar[int] = 4  # the baseline's raw map: one cell per 4x4 pixels, as the decoder's

    def label(self, sample: Any) -> Any:
        return sample.instances

    def zoom_target(self, target: dict, inner: tuple[int, int], offset: tuple[int, int], size: tuple[int, int]) -> dict:
        scale = np.array([inner[1] / size[1], inner[0] / size[0]] * 2, np.float32)
        shift = np.array([offset[1] / size[1], offset[0] / size[0]] * 2, np.float32)
        zoomed = dict(target)
        zoomed["boxes"] = np.where(target["valid"][:, None], target["boxes"] * scale + shift, 0.0).astype(np.float32)
        return zoomed

    def constant_raw(self, constant: Tensor, batch: int, size: tuple[int, int]) -> Tensor:
        cells = (max(size[0] // self.stride, 1), max(size[1] // self.stride, 1))
        return constant.view(1, -1, 1, 1).expand(batch, -1, *cells)


def register_task(cls: type[Task]) -> type[Task]:
    if cls.name in TASK_TYPES:
        raise ValueError(f"task type {cls.name!r} registered twice")
    TASK_TYPES[cls.name] = cls
    return cls


def build_task(config: Mapping[str, Any]) -> Task:
    """Task from its saved config: {"type": "semseg", "classes": [...]}."""
    config = dict(config)
    type_name = config.pop("type", None)
    if type_name not in TASK_TYPES:
        raise unknown_name_error("task type", str(type_name), list(TASK_TYPES))
    cls = TASK_TYPES[type_name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(config) - set(fields)
    if unknown:
        raise ConfigError(f"task {type_name!r}: unknown option(s) {sorted(unknown)} (valid: {sorted(fields)})")
    converted = {k: _freeze(v) for k, v in config.items()}
    try:
        return cls(**converted)
    except TypeError as error:
        raise ConfigError(f"task {type_name!r}: {error}") from None


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def resize_map(x: Tensor, size: tuple[Any, Any]) -> Tensor:
    """(B, C, h, w) -> (B, C, H, W) in fp32, bilinear as Pillow resizes (data/image.py's `resize_to_input`):
    half-pixel centres, and antialiased when shrinking (ONNX Resize's `antialias`, opset 18)."""
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)


def masked_mean(values: Tensor, valid: Tensor) -> Tensor | None:
    """The mean of `values` where `valid` (same shape), None where nothing is: a masked sum, not
    boolean indexing, so training pays no nonzero() and no index_put in the backward pass."""
    count = valid.sum()
    if not bool(count):
        return None
    return torch.where(valid, values, 0.0).sum() / count


def one_hot_logits(index: int, size: int) -> Tensor:
    """Raw logits that make a classifier predict `index` with near certainty."""
    logits = torch.full((size,), -10.0)
    logits[index] = 10.0
    return logits


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def dense_head(in_channels: int, out_channels: int, hidden: int | None = None) -> nn.Sequential:
    """The thin per-task head: one 3x3 conv block, then a 1x1 projection."""
    hidden = hidden or in_channels
    return nn.Sequential(conv_bn_relu(in_channels, hidden), nn.Conv2d(hidden, out_channels, 1))
