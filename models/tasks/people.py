"""People in front of the display: a variable-length set of persons per image (kind `instances`).

Each person has a box, a score, one class per person attribute (age group, gender, looking, or
whatever a dataset defines) and, optionally, a head yaw in degrees (0 = facing the camera,
positive = turned to the person's left, the camera's right).

The head is centre-based, as in CenterNet (Zhou, Wang, Krähenbühl 2019, "Objects as Points"): on
the decoder's stride-r feature map it predicts, per cell,

| channels      | meaning                                                   | trained with                  |
|---------------|-----------------------------------------------------------|-------------------------------|
| 1             | centre heatmap logit                                      | penalty-reduced focal loss    |
| 2             | box width and height, log(size in cells)                  | L1 at the true centres        |
| 2             | sub-cell offset of the centre                              | L1 at the true centres        |
| Σ C_a         | logits of each person attribute, concatenated              | cross-entropy at the centres¹ |
| 2 (if yaw)    | (sin, cos) of the head yaw                                 | L1 at the true centres¹       |

¹ or at the true head cells, for those named in `head_attributes` (below).

Decoding (in the exported graph, and the same function scores training): peaks are the cells equal
to their 3x3 max-pool, the K best by score are kept (top-K, K = `max_people`), and, when `nms_iou`
is set (new models: `NEW_MODEL_NMS_IOU`), a peak whose box overlaps a better one's at IoU above it is
suppressed (score 0, sorted last: Fast NMS, `suppress_overlaps`); each peak's box, attributes and yaw
are read at its cell. The attributes named in `head_attributes` (and the yaw, when
it is named) are read at the person's HEAD cell instead: x at the box's centre, y at
`HEAD_POINT_FRACTION` of the box's height below its top (the true box's in the loss, the decoded box's
in the graph). A centre cell sits on the torso, while the evidence for where a head faces (a face or
hair) is at the head. Outputs are fixed-size, batch-first and padded, sorted by
score; `people_count` counts the scores at or above `score_threshold`:

    people_boxes (N, K, 4)       x0, y0, x1, y1 as fractions of the image's width and height
    people_scores (N, K)         centre confidence in [0, 1]
    people_<attribute> (N, K, C) probabilities per class
    people_yaw (N, K)            degrees in (-180, 180]
    people_count (N,)            int64

Boxes are fractions of the image so that the fixed-size graph need not know the frame's size;
`to_result` turns them into the frame's pixels. The frame-size graph knows it, and returns them in
the frame's pixels already (`postprocess_at`; `frame_result` then only reads them).

A training target is a dict of fixed-size arrays (default collation stacks them):
`labelled` () — the image has person labels at all (else the whole loss is masked for it),
`valid` (K,), `boxes` (K, 4) fractions, one (K,) int64 per attribute (-1 = not labelled for that
person) and `yaw` (K,) degrees (NaN = not labelled).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onepass.errors import ConfigError
from onepass.models.tasks.base import (
    Calibration,
    Detection,
    InstancesTask,
    OutputAgreement,
    OutputSpec,
    conv_bn_relu,
    register_task,
)
from onepass.models.tasks.legends import Swatches

MISSING = -1
HEATMAP_PRIOR = 0.1  # initial centre probability everywhere (CenterNet's bias init, -2.19)
FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0  # CenterNet's penalty-reduced focal loss
SIZE_WEIGHT = 1.0  # log-size L1 (scale free, so it needs no 0.1 weight as CenterNet's pixel L1 does)
# The head's centre, as a fraction of the box's height from its top: the median over the synthetic
# renderer's untruncated persons (data/synth/_scene.py's head_centre: 0.078, quartiles 0.070-0.092 over
# 200 scenes; tests/models/test_people_head_attributes.py checks it); a standing person is about 7.5
# heads tall, so real ones agree.
HEAD_POINT_FRACTION = 0.08
# New models suppress a peak whose box overlaps a better one's at IoU > 0.3. Chosen on the default model's
# weights with data that scores nothing reported (README, "The default model"): count accuracy 83.4 ->
# 90.2 % on 500 training scenes and 79.4 -> 88.2 % on 500 development scenes (seed 5), the best of
# 0.2-0.6 there with 0.25 (0.2: 88.0); tracking IDF1 0.681 -> 0.796 and 0.610 -> 0.679 on the
# development sequences (seeds 2000, 3000). The duplicates it removes are a second peak on one person
# (often a box of its upper half), which a 3x3 max-pool leaves when the heatmap has two local maxima.
NEW_MODEL_NMS_IOU = 0.3
MATCH_IOU = 0.5  # a prediction and a true person match at IoU >= 0.5 (attribute accuracy, yaw error)
DEFAULT_ATTRIBUTES = {"age_group": ("child", "adult"), "gender": ("female", "male"), "looking": ("no", "yes")}
LOOKING_COLOUR, AWAY_COLOUR = (80, 230, 90), (255, 170, 40)  # a box's colour in `visualize`


@register_task
@dataclass(frozen=True)
class PeopleTask(InstancesTask):
    attributes: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_ATTRIBUTES))
    yaw: bool = True  # predict the head yaw (degrees) as well
    max_people: int = 32  # K: the padded size of every output
    score_threshold: float = 0.3  # a peak at or above this counts as a person
    # person attributes (and/or "yaw") read at the head cell rather than the box's centre cell
    head_attributes: tuple[str, ...] = ()
    # a peak whose box overlaps a better-scoring peak's at IoU above this is suppressed (score 0), in the
    # graph (`suppress_overlaps`); None: every max-pool peak is kept (packages from before the option)
    nms_iou: float | None = None
    # the loss's weight of a person attribute's cross-entropy (or of "yaw"'s L1) against the detector's
    # terms; unnamed ones weigh 1
    attribute_weights: dict[str, float] = field(default_factory=dict)

    name: ClassVar[str] = "people"
    tracks_objects: ClassVar[bool] = True  # a video's persons become tracks (dwell and attention time)

    def __post_init__(self) -> None:
        for attribute, classes in self.attributes.items():
            if not attribute.isidentifier():
                raise ConfigError(f"person attribute name {attribute!r} must be an identifier (it names an output)")
            if len(classes) < 2 or len(set(classes)) != len(classes):
                raise ConfigError(f"person attribute {attribute!r} needs at least two distinct classes, got {classes}")
            if attribute in ("boxes", "scores", "count", "yaw"):
                raise ConfigError(f"person attribute name {attribute!r} is taken by an output of the people task")
        if not 1 <= self.max_people <= 1024:
            raise ConfigError(f"people: max_people must be in 1..1024, got {self.max_people}")
        if not 0.0 < self.score_threshold < 1.0:
            raise ConfigError(f"people: score_threshold must be in (0, 1), got {self.score_threshold}")
        if not isinstance(self.head_attributes, tuple) or not all(isinstance(n, str) for n in self.head_attributes):
            raise ConfigError(f"people: head_attributes must be a list of names, got {self.head_attributes!r}")
        readable = self._read_parts()
        for name in self.head_attributes:
            if name not in readable:
                raise ConfigError(
                    f"people: head_attributes names {name!r}, which is not a person attribute of this task "
                    f"(choose from: {', '.join(readable)})"
                )
        if self.nms_iou is not None and not 0.0 < self.nms_iou < 1.0:
            raise ConfigError(f"people: nms_iou must be in (0, 1) or null (no suppression), got {self.nms_iou}")
        for name, weight in self.attribute_weights.items():
            if name not in readable:
                raise ConfigError(
                    f"people: attribute_weights names {name!r}, which is not a person attribute of this task "
                    f"(choose from: {', '.join(readable)})"
                )
            if not isinstance(weight, int | float) or isinstance(weight, bool) or not weight >= 0:
                raise ConfigError(f"people: attribute_weights[{name!r}] must be a number >= 0, got {weight!r}")
        if len(set(self.head_attributes)) != len(self.head_attributes):
            raise ConfigError(f"people: head_attributes names an attribute twice: {list(self.head_attributes)}")

    @classmethod
    def from_dataset(cls, description) -> PeopleTask:
        """A new model's task: the dataset's categorical person attributes, then `looking` (a boolean:
        no/yes), with overlapping peaks suppressed at `NEW_MODEL_NMS_IOU` (a config's `nms_iou`
        overrides it, null for none)."""
        attributes = {**{a: tuple(c) for a, c in description.person_attributes.items()}, "looking": ("no", "yes")}
        return cls(attributes, nms_iou=NEW_MODEL_NMS_IOU)

    def reads_labels_of(self, description) -> bool:
        known = {**description.person_attributes, "looking": ("no", "yes")}
        return all(tuple(known.get(a, ())) == c for a, c in self.attributes.items())

    def __hash__(self) -> int:  # dict field: hash by content
        return hash(
            (
                tuple(self.attributes.items()),
                self.yaw,
                self.max_people,
                self.score_threshold,
                self.head_attributes,
                self.nms_iou,
                tuple(sorted(self.attribute_weights.items())),
            )
        )

    # ---- layout of the raw head output ----------------------------------------------------
    @property
    def out_channels(self) -> int:
        return 5 + sum(len(c) for c in self.attributes.values()) + (2 if self.yaw else 0)

    def _split(self, raw: Tensor) -> dict[str, Tensor]:
        """(B, out_channels, h, w) -> named channel groups."""
        sizes = [1, 2, 2, *(len(c) for c in self.attributes.values())] + ([2] if self.yaw else [])
        names = ["heatmap", "size", "offset", *self.attributes] + (["yaw"] if self.yaw else [])
        return dict(zip(names, torch.split(raw, sizes, dim=1), strict=True))

    def _read_parts(self) -> list[str]:
        """The channel groups read at a person's cell besides the box: each attribute, then the yaw."""
        return [*self.attributes, *(["yaw"] if self.yaw else [])]

    def output_name(self, part: str) -> str:
        return f"{self.name}_{part}"

    def build_head(self, in_channels: int) -> nn.Module:
        return CentreHead(in_channels, self.out_channels)

    # ---- train ----------------------------------------------------------------------------
    def target(self, label: Sequence[Mapping[str, Any]] | None, size: tuple[int, int], source: str) -> dict:
        """`label`: the image's persons, each {"bbox": [x, y, w, h] in pixels, "attributes": {...}},
        or None when the image has no person labels. `size`: the image's (H, W)."""
        k = self.max_people
        target = {
            "labelled": np.array(label is not None),
            "valid": np.zeros(k, bool),
            "boxes": np.zeros((k, 4), np.float32),
            **{a: np.full(k, MISSING, np.int64) for a in self.attributes},
            "yaw": np.full(k, np.nan, np.float32),
        }
        height, width = size
        for i, person in enumerate((label or [])[:k]):
            x, y, w, h = (float(v) for v in person["bbox"])
            target["valid"][i] = True
            target["boxes"][i] = (x / width, y / height, (x + w) / width, (y + h) / height)
            values = person.get("attributes") or {}
            for attribute, classes in self.attributes.items():
                value = values.get(attribute)
                if isinstance(value, bool):  # a boolean attribute ("looking") names its classes no/yes
                    value = classes[int(value)] if len(classes) == 2 else value
                if value is None:
                    continue
                if value not in classes:
                    raise ValueError(
                        f"{source}: person {i}: {value!r} is not a class of attribute {attribute!r} ({', '.join(classes)})"
                    )
                target[attribute][i] = classes.index(value)
            if self.yaw and values.get("yaw") is not None:
                target["yaw"][i] = float(values["yaw"])
        return target

    def flip_target(self, target: dict) -> dict:
        flipped = dict(target)
        boxes = target["boxes"].copy()
        boxes[:, [0, 2]] = 1.0 - target["boxes"][:, [2, 0]]
        flipped["boxes"] = np.where(target["valid"][:, None], boxes, 0.0).astype(np.float32)
        flipped["yaw"] = -target["yaw"]  # a mirrored head turns the other way
        return flipped

    def loss(self, raw: Tensor, target: Mapping[str, Tensor]) -> Tensor | None:
        labelled = target["labelled"].bool()  # (B,)
        if not bool(labelled.any()):
            return None
        parts = self._split(raw.float())
        batch, _, h, w = raw.shape
        centres = centre_cells(target["boxes"], h, w)  # (B, K, 2) float cell coordinates
        valid = target["valid"].bool() & labelled[:, None]  # (B, K)
        heat_target = gaussian_heatmap(centres, target["boxes"], valid, h, w)  # (B, h, w)
        focal = focal_loss(parts["heatmap"][:, 0], heat_target, labelled)
        total = focal
        if bool(valid.any()):
            cells = centres.floor().clamp_min(0)
            cells = torch.stack([cells[..., 0].clamp_max(w - 1), cells[..., 1].clamp_max(h - 1)], dim=-1)
            index = (cells[..., 1] * w + cells[..., 0]).long()  # (B, K)
            head_index = head_cell_index(target["boxes"], h, w) if self.head_attributes else index
            where = {name: head_index if name in self.head_attributes else index for name in self._read_parts()}
            size = read_at(parts["size"], index)  # (B, K, 2)
            box_cells = box_size_cells(target["boxes"], h, w).clamp_min(1e-3)
            total = total + SIZE_WEIGHT * (size - box_cells.log()).abs()[valid].mean()
            offset = read_at(parts["offset"], index)
            total = total + (offset - (centres - cells)).abs()[valid].mean()
            for attribute in self.attributes:
                labels = target[attribute].long()
                known = valid & (labels != MISSING)
                if bool(known.any()):
                    weight = self.attribute_weights.get(attribute, 1.0)
                    logits = read_at(parts[attribute], where[attribute])[known]
                    total = total + weight * F.cross_entropy(logits, labels[known])
            if self.yaw:
                yaw = target["yaw"].float()
                known = valid & ~yaw.isnan()
                if bool(known.any()):
                    radians = torch.deg2rad(yaw[known])
                    true = torch.stack([radians.sin(), radians.cos()], dim=-1)
                    error = (read_at(parts["yaw"], where["yaw"])[known] - true).abs().mean()
                    total = total + self.attribute_weights.get("yaw", 1.0) * error
        return total

    def new_metric(self) -> PeopleMetrics:
        return PeopleMetrics(self)

    def new_calibrator(self) -> CountThresholdCalibrator:
        """Chooses `score_threshold`: the one that counts the most images right (`best_count_threshold`)."""
        return CountThresholdCalibrator(self)

    def constant_output(self, targets: Mapping[str, Tensor]) -> Tensor:
        """The trivial baseline: nobody, anywhere (a heatmap far below any threshold)."""
        constant = torch.zeros(self.out_channels)
        constant[0] = -20.0
        return constant

    def metric_directions(self) -> dict[str, bool]:
        return {
            "ap": True,
            "ap50": True,
            "count_acc": True,
            "count_mae": False,
            **{f"acc_{a}": True for a in self.attributes},
            **({"yaw_mae": False} if self.yaw else {}),
        }

    # ---- export / runtime -----------------------------------------------------------------
    def postprocess(self, raw: Tensor) -> dict[str, Tensor]:
        parts = self._split(raw.float())
        batch, _, h, w = raw.shape
        heat = parts["heatmap"][:, 0].sigmoid()  # (B, h, w)
        peaks = heat * (F.max_pool2d(heat[:, None], 3, stride=1, padding=1)[:, 0] == heat).float()
        scores, index = peaks.flatten(1).topk(min(self.max_people, h * w), dim=1)  # (B, K) each, best first
        xs = (index % w).float()
        ys = torch.div(index, w, rounding_mode="floor").float()
        offset = read_at(parts["offset"], index)  # (B, K, 2)
        size = read_at(parts["size"], index).clamp(max=math.log(4.0 * max(h, w))).exp()  # (B, K, 2) cells
        cx, cy = (xs + offset[..., 0]) / w, (ys + offset[..., 1]) / h
        half_w, half_h = size[..., 0] / (2 * w), size[..., 1] / (2 * h)
        boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)
        if self.nms_iou is not None:
            scores, order = suppress_overlaps(boxes, scores, self.nms_iou).sort(dim=1, descending=True)
            index = index.gather(1, order)
            boxes = boxes.gather(1, order[..., None].expand(-1, -1, 4))
        # the head cell of the decoded box (before clamping to the image, as the loss's true box is not)
        head_index = head_cell_index(boxes, h, w) if self.head_attributes else index
        where = {name: head_index if name in self.head_attributes else index for name in self._read_parts()}
        outputs = {
            self.output_name("boxes"): boxes.clamp(0.0, 1.0),
            self.output_name("scores"): scores,
            **{self.output_name(a): read_at(parts[a], where[a]).softmax(dim=-1) for a in self.attributes},
        }
        if self.yaw:
            sin_cos = read_at(parts["yaw"], where["yaw"])
            outputs[self.output_name("yaw")] = torch.rad2deg(torch.atan2(sin_cos[..., 0], sin_cos[..., 1]))
        outputs[self.output_name("count")] = (scores >= self.score_threshold).sum(dim=1).to(torch.int64)
        return outputs

    def postprocess_at(self, raw: Tensor, size: tuple[Any, Any]) -> dict[str, Tensor]:
        """`postprocess`, its boxes in the pixels of an image of `size` (H, W) instead of fractions."""
        outputs = self.postprocess(raw)
        height, width = size
        boxes = outputs[self.output_name("boxes")]  # (B, K, 4) fractions
        x0, y0, x1, y1 = boxes.unbind(dim=-1)
        outputs[self.output_name("boxes")] = torch.stack([x0 * width, y0 * height, x1 * width, y1 * height], dim=-1)
        return outputs

    def output_specs(self) -> tuple[OutputSpec, ...]:
        k = self.max_people
        specs = [
            OutputSpec(self.output_name("boxes"), "float32", ("N", k, 4)),
            OutputSpec(self.output_name("scores"), "float32", ("N", k)),
            *(OutputSpec(self.output_name(a), "float32", ("N", k, len(c))) for a, c in self.attributes.items()),
        ]
        if self.yaw:
            specs.append(OutputSpec(self.output_name("yaw"), "float32", ("N", k)))
        specs.append(OutputSpec(self.output_name("count"), "int64", ("N",)))
        return tuple(specs)

    def agreement(self, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> list[OutputAgreement]:
        """Per output, over the persons the reference counts: boxes by IoU (the lowest), attributes by
        arg-max agreement, yaw by the largest angle difference, counts exactly."""
        count = self.output_name("count")
        keep = np.arange(self.max_people)[None, :] < expected[count][:, None]  # (N, K) the reference's persons
        checks = []
        boxes = self.output_name("boxes")
        iou = box_iou_pairs(expected[boxes][keep], actual[boxes][keep])
        checks.append(OutputAgreement(boxes, "lowest box IoU", float(iou.min()) if iou.size else 1.0, 0.99, True))
        scores = self.output_name("scores")
        difference = np.abs(expected[scores][keep] - actual[scores][keep])
        checks.append(OutputAgreement(scores, "max abs difference", float(difference.max(initial=0.0)), 1e-3, False))
        for attribute in self.attributes:
            name = self.output_name(attribute)
            same = expected[name][keep].argmax(-1) == actual[name][keep].argmax(-1)
            checks.append(
                OutputAgreement(name, "agreement %", 100.0 * float(same.mean()) if same.size else 100.0, 99.9, True)
            )
        if self.yaw:
            name = self.output_name("yaw")
            error = angle_difference(expected[name][keep], actual[name][keep])
            checks.append(OutputAgreement(name, "max angle error °", float(error.max(initial=0.0)), 0.5, False))
        same_count = 100.0 * float((expected[count] == actual[count]).mean())
        checks.append(OutputAgreement(count, "count agreement %", same_count, 99.9, True))
        return checks

    def to_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> list[dict[str, Any]]:
        """One image's outputs -> its persons (score >= threshold), boxes in the image's pixels."""
        return self._people(outputs, range(int(outputs[self.output_name("count")])), _pixels(size))

    def frame_result(self, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> list[dict[str, Any]]:
        """The frame-size graph's outputs: its boxes are in the image's pixels already."""
        return self._people(outputs, range(int(outputs[self.output_name("count")])), None)

    def candidates(
        self, outputs: Mapping[str, np.ndarray], size: tuple[int, int], floor: float, in_pixels: bool = False
    ) -> list[dict[str, Any]]:
        """The peaks the count leaves out that score at least `floor`, as `to_result`'s persons (or
        `frame_result`'s, `in_pixels`), each marked `"counted": False`: for the tracker, which extends
        a track through the frames where its person scored below the count (runtime/audience.py); never
        counted, drawn or reported as people."""
        scores = outputs[self.output_name("scores")]
        left_out = range(int(outputs[self.output_name("count")]), len(scores))
        people = self._people(
            outputs, [i for i in left_out if scores[i] >= floor], None if in_pixels else _pixels(size)
        )
        return [{**person, "counted": False} for person in people]

    def _people(
        self, outputs: Mapping[str, np.ndarray], peaks: Sequence[int], scale: np.ndarray | None
    ) -> list[dict[str, Any]]:
        """The persons at `peaks` (indices into the K outputs), each with its box in pixels (the boxes
        times `scale`, or as they are when None), score and attributes."""
        people = []
        for i in peaks:
            box = outputs[self.output_name("boxes")][i]
            person: dict[str, Any] = {
                "box": [round(float(v), 1) for v in (box if scale is None else box * scale)],
                "score": round(float(outputs[self.output_name("scores")][i]), 4),
            }
            for attribute, classes in self.attributes.items():
                probabilities = outputs[self.output_name(attribute)][i]
                person[attribute] = {
                    "label": classes[int(np.argmax(probabilities))],
                    "probabilities": {c: round(float(p), 4) for c, p in zip(classes, probabilities, strict=True)},
                }
            if self.yaw:
                person["yaw"] = round(float(outputs[self.output_name("yaw")][i]), 1)
            people.append(person)
        return people

    def summary(self, people: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The audience in one object: how many, how many looking, and a histogram per attribute."""
        summary: dict[str, Any] = {"count": len(people)}
        if "looking" in self.attributes:
            yes = self.attributes["looking"][-1]
            summary["looking"] = sum(1 for p in people if p["looking"]["label"] == yes)
        for attribute, classes in self.attributes.items():
            if attribute != "looking":
                summary[attribute] = {c: sum(1 for p in people if p[attribute]["label"] == c) for c in classes}
        return summary

    # ---- predict / serve ------------------------------------------------------------------
    def short_label(self, person: Mapping[str, Any]) -> str:
        """'adult · female · looking': each attribute's label; a no/yes attribute by its name when yes."""
        words = []
        for attribute, classes in self.attributes.items():
            label = person[attribute]["label"]
            if classes == ("no", "yes"):
                words.append(attribute if label == "yes" else "")
            else:
                words.append(label)
        return " · ".join(w for w in words if w)

    def visualize(self, result: Sequence[Mapping[str, Any]], image: np.ndarray | None = None) -> np.ndarray | None:
        """Each person's box over the image, labelled with its attributes; green when looking."""
        if image is None:
            return None
        from PIL import Image, ImageDraw

        canvas = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
        draw = ImageDraw.Draw(canvas)
        for person in result:
            colour = LOOKING_COLOUR if self._looking(person) else AWAY_COLOUR
            x0, y0, x1, y1 = person["box"]
            draw.rectangle((x0, y0, x1, y1), outline=colour, width=max(1, round(canvas.width / 320)))
            text = self.short_label(person)
            top = max(0.0, y0 - 11)
            _, _, width, height = draw.textbbox((0, 0), text)  # measured in the font that draws it
            left = max(0.0, min(x0, canvas.width - 1 - width - 4))  # moved in rather than cut off at the right edge
            draw.rectangle((left, top, left + width + 4, top + max(height, 11)), fill=(0, 0, 0))
            draw.text((left + 2, top), text, fill=colour)
        return np.asarray(canvas)

    def _looking(self, person: Mapping[str, Any]) -> bool:
        looking = self.attributes.get("looking")
        return looking is not None and person["looking"]["label"] == looking[-1]

    def legend(self, result: Sequence[Mapping[str, Any]]) -> Swatches:
        """What a box's colour says, with how many of this picture's people each colour marks, and how
        to read a box's label."""
        note = f"label: {' · '.join(self.attributes)} (a no/yes attribute by its name, when yes)"
        if "looking" not in self.attributes:
            return Swatches("people", ((f"person ({len(result)})", AWAY_COLOUR),), note)
        looking = sum(self._looking(p) for p in result)
        items = ((f"looking ({looking})", LOOKING_COLOUR), (f"not looking ({len(result) - looking})", AWAY_COLOUR))
        return Swatches("people", items, note)

    def describe(self, result: Sequence[Mapping[str, Any]]) -> list[str]:
        """The audience summary, then a line per person."""
        summary = self.summary(result)
        lines = [f"{summary['count']} people" + (f", {summary['looking']} looking" if "looking" in summary else "")]
        for attribute in self.attributes:
            if attribute != "looking" and summary["count"]:
                lines.append(", ".join(f"{c} {n}" for c, n in summary[attribute].items() if n))
        lines += [f"{i + 1}: {self.short_label(p)} ({p['score']:.2f})" for i, p in enumerate(result)]
        return lines

    def describe_target(self, target: Mapping[str, Any]) -> list[str]:
        valid = np.asarray(target["valid"])
        if not bool(np.asarray(target["labelled"])):
            return ["not labelled"]
        lines = [f"{int(valid.sum())} people"]
        for i in np.nonzero(valid)[0]:
            words = []
            for attribute, classes in self.attributes.items():
                index = int(np.asarray(target[attribute])[i])
                words.append(classes[index] if index != MISSING else "?")
            lines.append(f"{len(lines)}: " + " · ".join(words))
        return lines

    def response(self, result: list[dict[str, Any]], maps: bool) -> dict[str, Any]:
        return {self.name: result, "audience": self.summary(result)}

    def table_columns(self) -> dict[str, str]:
        """Per image: how many people, how many looking, and a count per class of each other attribute."""
        columns = [f"{self.name}_count"] + ([f"{self.name}_looking"] if "looking" in self.attributes else [])
        for attribute, classes in self.attributes.items():
            if attribute != "looking":
                columns += [f"{self.name}_{attribute}_{c}" for c in classes]
        return dict.fromkeys(columns, "int32")

    def table_values(self, result: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        summary = self.summary(result)
        values = {f"{self.name}_count": summary["count"]}
        if "looking" in summary:
            values[f"{self.name}_looking"] = summary["looking"]
        for attribute in self.attributes:
            if attribute != "looking":
                values.update({f"{self.name}_{attribute}_{c}": n for c, n in summary[attribute].items()})
        return values

    def record(self, result: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return result

    def run_files(self, records: Mapping[str, Any], image_ids: Mapping[str, int]) -> dict[str, Any]:
        """`<task>.coco.json`: every person found, in COCO's results format (what pycocotools'
        `COCO.loadRes` reads and `COCOeval` scores against a labelled folder's people.json): image_id,
        category_id 1, bbox [x, y, w, h] in pixels, score; plus the image's key and the attributes."""
        results = []
        for key, people in records.items():
            for person in (p for p in people if p.get("counted", True)):  # a video frame's also has candidates
                x0, y0, x1, y1 = person["box"]
                result = {
                    "image_id": image_ids[key],
                    "category_id": 1,
                    "bbox": [x0, y0, round(x1 - x0, 1), round(y1 - y0, 1)],
                    "score": person["score"],
                    "file_name": key,
                    "attributes": {a: person[a]["label"] for a in self.attributes},
                }
                if self.yaw:
                    result["attributes"]["yaw"] = person["yaw"]
                results.append(result)
        return {f"{self.name}.coco.json": results}

    def arrays(self, result: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        arrays = {
            f"{self.name}_boxes": np.array([p["box"] for p in result], np.float32).reshape(-1, 4),
            f"{self.name}_scores": np.array([p["score"] for p in result], np.float32),
        }
        for attribute, classes in self.attributes.items():
            probabilities = [list(p[attribute]["probabilities"].values()) for p in result]
            arrays[f"{self.name}_{attribute}"] = np.array(probabilities, np.float32).reshape(-1, len(classes))
        if self.yaw:
            arrays[f"{self.name}_yaw"] = np.array([p["yaw"] for p in result], np.float32)
        return arrays

    def detections(self, record: Sequence[Mapping[str, Any]]) -> list[Detection]:
        """Each person of a frame's record: `looking` is the attention, the other attributes are voted
        over the person's track (age group and gender); a `candidates` person is not `counted`."""
        looking = self.attributes.get("looking")
        return [
            Detection(
                tuple(float(v) for v in person["box"]),
                float(person["score"]),
                None if looking is None else person["looking"]["label"] == looking[-1],
                {a: person[a]["label"] for a in self.attributes if a != "looking"},
                person.get("counted", True),
            )
            for person in record
        ]

    def label_summary(self) -> str:
        parts = [f"{a}: {'/'.join(c)}" for a, c in self.attributes.items()]
        counted = f"; counted at score >= {self.score_threshold:g}"
        at_head = f"; {', '.join(self.head_attributes)} read at the head" if self.head_attributes else ""
        return "per person: box, score; " + "; ".join(parts) + ("; yaw (°)" if self.yaw else "") + at_head + counted


class CentreHead(nn.Module):
    """(B, C, h, w) decoder features -> (B, out, h, w): one 3x3 block, then a 1x1 projection whose
    heatmap channel starts at the prior probability, so early training is not swamped by negatives."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.block = conv_bn_relu(in_channels, in_channels)
        self.project = nn.Conv2d(in_channels, out_channels, 1)
        with torch.no_grad():
            self.project.bias.zero_()
            self.project.bias[0] = math.log(HEATMAP_PRIOR / (1 - HEATMAP_PRIOR))

    def forward(self, features: Tensor) -> Tensor:
        return self.project(self.block(features))


# ---- geometry helpers (torch, shared by the loss, the graph and the metric) ---------------------


def _pixels(size: tuple[int, int]) -> np.ndarray:
    """Multiplies boxes in fractions of an image of `size` (height, width) into its pixels."""
    height, width = size
    return np.array([width, height, width, height], np.float32)


def read_at(part: Tensor, index: Tensor) -> Tensor:
    """(B, C, h, w) at flat cell indices (B, K) -> (B, K, C)."""
    flat = part.flatten(2)  # (B, C, h*w)
    return flat.gather(2, index[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)


def suppress_overlaps(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Fast NMS (Bolya et al. 2019, YOLACT): `scores` (B, K), sorted best first, with 0 for each box of
    (B, K, 4) that overlaps any better-scoring one at IoU above `iou_threshold`. Unlike greedy NMS a box
    suppressed itself still suppresses, which removes a little more; in exchange it is a few tensor ops
    of static shape (K x K IoU, a triangular mask) that export to ONNX as they are."""
    x0, y0, x1, y1 = boxes.unbind(dim=-1)  # (B, K) each
    width = (torch.minimum(x1[:, :, None], x1[:, None, :]) - torch.maximum(x0[:, :, None], x0[:, None, :])).clamp(min=0)
    height = (torch.minimum(y1[:, :, None], y1[:, None, :]) - torch.maximum(y0[:, :, None], y0[:, None, :])).clamp(
        min=0
    )
    inter = width * height  # (B, K, K)
    area = (x1 - x0) * (y1 - y0)  # (B, K)
    iou = inter / (area[:, :, None] + area[:, None, :] - inter).clamp(min=1e-12)
    k = scores.shape[1]
    better = torch.ones(k, k, dtype=torch.bool, device=boxes.device).triu(diagonal=1)  # [i, j]: i before j
    suppressed = ((iou > iou_threshold) & better).any(dim=1)  # (B, K): some better box overlaps j
    return scores * (~suppressed).to(scores.dtype)


def head_cell_index(boxes: Tensor, h: int, w: int) -> Tensor:
    """(B, K, 4) fraction boxes -> (B, K) flat index of each box's head cell: x at the box's centre, y
    `HEAD_POINT_FRACTION` of its height below its top, clamped into the (h, w) map."""
    x = ((boxes[..., 0] + boxes[..., 2]) * (w / 2)).floor().clamp(0, w - 1)
    y = ((boxes[..., 1] + HEAD_POINT_FRACTION * (boxes[..., 3] - boxes[..., 1])) * h).floor().clamp(0, h - 1)
    return (y * w + x).long()


def centre_cells(boxes: Tensor, h: int, w: int) -> Tensor:
    """(B, K, 4) fraction boxes -> (B, K, 2) centre (x, y) in cell units."""
    return torch.stack([(boxes[..., 0] + boxes[..., 2]) * (w / 2), (boxes[..., 1] + boxes[..., 3]) * (h / 2)], dim=-1)


def box_size_cells(boxes: Tensor, h: int, w: int) -> Tensor:
    return torch.stack([(boxes[..., 2] - boxes[..., 0]) * w, (boxes[..., 3] - boxes[..., 1]) * h], dim=-1)


def gaussian_heatmap(centres: Tensor, boxes: Tensor, valid: Tensor, h: int, w: int) -> Tensor:
    """The training target: a Gaussian peak of 1 at each person's centre cell, its spread a third of
    the box's half size (close to CenterNet's IoU-derived radius for boxes of people's aspect), the
    maximum where persons overlap."""
    size = box_size_cells(boxes, h, w).clamp_min(1.0)  # (B, K, 2)
    sigma = (size / 6.0).clamp_min(0.5)
    ys = torch.arange(h, device=boxes.device, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, device=boxes.device, dtype=torch.float32).view(1, 1, 1, w)
    cells = centres.floor()
    dx = (xs - cells[..., 0, None, None]) / sigma[..., 0, None, None]
    dy = (ys - cells[..., 1, None, None]) / sigma[..., 1, None, None]
    peaks = torch.exp(-0.5 * (dx * dx + dy * dy)) * valid[..., None, None]  # (B, K, h, w)
    return peaks.amax(dim=1) if peaks.shape[1] else torch.zeros(boxes.shape[0], h, w, device=boxes.device)


def focal_loss(logits: Tensor, target: Tensor, labelled: Tensor) -> Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss over the labelled images, normalised by the
    number of persons (at least one, so an empty scene still teaches "nobody here")."""
    logits, target = logits[labelled], target[labelled]  # (L, h, w)
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    positive = target >= 1.0 - 1e-4
    positive_loss = -((1 - p) ** FOCAL_ALPHA) * torch.log(p) * positive
    negative_loss = -((1 - target) ** FOCAL_BETA) * (p**FOCAL_ALPHA) * torch.log(1 - p) * ~positive
    return (positive_loss.sum() + negative_loss.sum()) / positive.sum().clamp_min(1)


def box_iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a[i] with b[i], (P, 4) xyxy each -> (P,)."""
    if not len(a):
        return np.zeros(0, np.float32)
    x0, y0 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x1, y1 = np.minimum(a[:, 2], b[:, 2]), np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda box: (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])  # noqa: E731
    union = area(a) + area(b) - inter
    # two identical empty boxes (clipped at the border) agree perfectly
    return np.where(union > 1e-12, inter / np.maximum(union, 1e-12), np.all(a == b, axis=1).astype(np.float64))


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, 4) x (T, 4) xyxy -> (P, T) IoU."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def angle_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute difference of angles in degrees, the short way round: in [0, 180]."""
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


def match_people(predicted: np.ndarray, true: np.ndarray, iou: float = MATCH_IOU) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, predictions in score order (as given), each to the unmatched true
    box it overlaps most, at IoU >= `iou` (the COCO evaluation's rule) -> [(prediction, truth)]."""
    if not len(predicted) or not len(true):
        return []
    overlaps = box_iou_matrix(predicted, true)
    taken = np.zeros(len(true), bool)
    pairs = []
    for p in range(len(predicted)):
        candidates = np.where(~taken, overlaps[p], -1.0)
        t = int(candidates.argmax())
        if candidates[t] >= iou:
            taken[t] = True
            pairs.append((p, t))
    return pairs


# ---- the count's score threshold, chosen on labelled data -----------------------------------------


@dataclass(frozen=True)
class CountThreshold:
    threshold: float
    accuracy: float  # % of the images whose count is right at `threshold`


def count_accuracy(scores: np.ndarray, counts: np.ndarray, threshold: float) -> float:
    """% of images whose count (scores at or above `threshold`) is their true count; scores (N, K),
    best first or not, counts (N,)."""
    return 100.0 * float(((scores >= threshold).sum(axis=1) == counts).mean())


def best_count_threshold(scores: np.ndarray, counts: np.ndarray, current: float) -> CountThreshold:
    """The score threshold in (0, 1) that counts the most images right, found exactly (no grid).

    Image n with true count c is counted right by every threshold in (its (c+1)-th best score, its
    c-th best score]; a sweep over these intervals finds where the most of them overlap. `current`
    stays when it is among the best; otherwise the threshold is the middle of the widest best stretch
    (the furthest from flipping any image's count; ties to the stretch nearest `current`), rounded to
    the fewest decimals that keep it inside."""
    scores, counts = np.asarray(scores, np.float64), np.asarray(counts, np.int64)
    if not len(counts):
        raise ValueError("no labelled image to choose the people count's score threshold on")
    ranked = -np.sort(-scores, axis=1)  # (N, K) best first
    width = ranked.shape[1]
    padded = np.concatenate([np.full((len(ranked), 1), np.inf), ranked, np.full((len(ranked), 1), -np.inf)], axis=1)
    possible = counts <= width  # K peaks cannot count more than K people
    rows = np.nonzero(possible)[0]
    high = np.minimum(padded[rows, counts[rows]], 1.0)  # the c-th best score (inf for c = 0)
    low = np.maximum(padded[rows, counts[rows] + 1], 0.0)  # the (c+1)-th (-inf for c = K)
    keep = low < high
    low, high = np.sort(low[keep]), np.sort(high[keep])
    edges = np.unique(np.concatenate([[0.0, 1.0], low, high]))
    # right on (edges[j], edges[j + 1]]: the intervals that start at or before edges[j] and end after it
    right = np.searchsorted(low, edges[:-1], side="right") - np.searchsorted(high, edges[:-1], side="right")
    if count_accuracy(scores, counts, current) * len(counts) >= 100.0 * right.max() - 1e-9:
        return CountThreshold(current, count_accuracy(scores, counts, current))
    best = right == right.max()
    starts = np.nonzero(best & ~np.concatenate([[False], best[:-1]]))[0]
    ends = np.nonzero(best & ~np.concatenate([best[1:], [False]]))[0] + 1  # stretch: edges[start] .. edges[end]
    stretches = sorted(
        zip(starts, ends, strict=True),
        key=lambda se: (-(edges[se[1]] - edges[se[0]]), abs((edges[se[0]] + edges[se[1]]) / 2 - current)),
    )
    start, end = stretches[0]
    threshold = _rounded_within(float(edges[start]), float(edges[end]))
    return CountThreshold(threshold, count_accuracy(scores, counts, threshold))


def _rounded_within(low: float, high: float) -> float:
    """The middle of (low, high], with as few decimals as keep it inside (and inside (0, 1))."""
    middle = (low + high) / 2
    for digits in range(2, 8):
        rounded = round(middle, digits)
        if low < rounded <= high and 0.0 < rounded < 1.0:
            return rounded
    return middle


class CountThresholdCalibrator:
    """Collects each labelled image's scores and true count, then chooses the task's `score_threshold`
    (`best_count_threshold`); the record gives the threshold and the count accuracy on this data, at the
    old threshold and the new."""

    def __init__(self, task: PeopleTask):
        self.task = task
        self._scores: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []

    def update(self, outputs: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> None:
        labelled = target["labelled"].bool().cpu().numpy()
        self._scores.append(outputs[self.task.output_name("scores")].detach().float().cpu().numpy()[labelled])
        self._counts.append(target["valid"].bool().sum(dim=1).cpu().numpy()[labelled])

    @property
    def scores(self) -> np.ndarray:
        """(N, K): every labelled image's peak scores, best first."""
        return np.concatenate(self._scores) if self._scores else np.zeros((0, self.task.max_people), np.float32)

    @property
    def counts(self) -> np.ndarray:
        """(N,): every labelled image's true number of people."""
        return np.concatenate(self._counts) if self._counts else np.zeros(0, np.int64)

    def compute(self) -> Calibration:
        scores, counts = self.scores, self.counts
        if not len(counts):
            raise ValueError(f"no image has {self.task.name} labels, so the count's score threshold cannot be chosen")
        old = self.task.score_threshold
        chosen = best_count_threshold(scores, counts, old)
        record = {
            "images": len(counts),
            "score_threshold": {"before": old, "after": chosen.threshold},
            "count_acc": {"before": count_accuracy(scores, counts, old), "after": chosen.accuracy},
        }
        return Calibration(dataclasses.replace(self.task, score_threshold=chosen.threshold), record)


# ---- metrics ------------------------------------------------------------------------------------

COCO_SCALE = 1000.0  # boxes are fractions; COCOeval wants pixels (IoU does not depend on the scale)


class PeopleMetrics:
    """Pooled over the set: detection AP (IoU .50:.95) and AP50 by pycocotools' COCOeval, count
    accuracy and mean absolute count error (persons at or above the score threshold), accuracy of
    each attribute over matched persons (IoU >= 0.5), and the yaw's mean absolute error there."""

    def __init__(self, task: PeopleTask):
        self.task = task
        self.images: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []  # (outputs, target) per image

    def update(self, outputs: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> None:
        outputs = {k: v.detach().cpu().numpy() for k, v in outputs.items() if k.startswith(self.task.name + "_")}
        target = {k: v.detach().cpu().numpy() for k, v in target.items()}
        for i in np.nonzero(target["labelled"])[0]:
            self.images.append(({k: v[i] for k, v in outputs.items()}, {k: v[i] for k, v in target.items()}))

    def compute(self) -> dict[str, float]:
        task = self.task
        result = dict.fromkeys(task.metric_directions(), math.nan)
        if not self.images:
            return result
        name = task.output_name
        counts, true_counts = [], []
        correct = dict.fromkeys(task.attributes, 0)
        labelled = dict.fromkeys(task.attributes, 0)
        yaw_errors: list[float] = []
        for outputs, target in self.images:
            valid = target["valid"]
            true_boxes = target["boxes"][valid]
            count = int(outputs[name("count")])
            counts.append(count)
            true_counts.append(len(true_boxes))
            for p, t in match_people(outputs[name("boxes")][:count], true_boxes):
                for attribute in task.attributes:
                    label = int(target[attribute][valid][t])
                    if label != MISSING:
                        labelled[attribute] += 1
                        correct[attribute] += int(outputs[name(attribute)][p].argmax() == label)
                if task.yaw and not math.isnan(float(target["yaw"][valid][t])):
                    yaw_errors.append(float(angle_difference(outputs[name("yaw")][p], target["yaw"][valid][t])))
        counts_array, true_array = np.array(counts), np.array(true_counts)
        result["count_acc"] = 100.0 * float((counts_array == true_array).mean())
        result["count_mae"] = float(np.abs(counts_array - true_array).mean())
        for attribute in task.attributes:
            if labelled[attribute]:
                result[f"acc_{attribute}"] = 100.0 * correct[attribute] / labelled[attribute]
        if task.yaw and yaw_errors:
            result["yaw_mae"] = float(np.mean(yaw_errors))
        result["ap"], result["ap50"] = self._coco_ap()
        return result

    def _coco_ap(self) -> tuple[float, float]:
        """AP and AP50 over every kept peak (all K, so the precision-recall curve is complete)."""
        import contextlib
        import io

        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        name = self.task.output_name
        images, annotations, detections = [], [], []
        for image_id, (outputs, target) in enumerate(self.images, start=1):
            images.append({"id": image_id, "width": COCO_SCALE, "height": COCO_SCALE})
            for box in target["boxes"][target["valid"]]:
                x0, y0, x1, y1 = (float(v) * COCO_SCALE for v in box)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": 1,
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": (x1 - x0) * (y1 - y0),
                        "iscrowd": 0,
                    }
                )
            for box, score in zip(outputs[name("boxes")], outputs[name("scores")], strict=True):
                x0, y0, x1, y1 = (float(v) * COCO_SCALE for v in box)
                if x1 > x0 and y1 > y0:
                    detections.append(
                        {
                            "image_id": image_id,
                            "category_id": 1,
                            "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "score": float(score),
                        }
                    )
        if not annotations:
            return math.nan, math.nan  # AP is undefined without a single true person
        if not detections:
            return 0.0, 0.0
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            truth = COCO()
            truth.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
            truth.createIndex()
            evaluation = COCOeval(truth, truth.loadRes(detections), iouType="bbox")
            evaluation.params.maxDets = [1, 10, max(100, self.task.max_people)]
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return float(evaluation.stats[0]), float(evaluation.stats[1])
