"""people.json: the people in a folder dataset's images, in COCO format; written, validated, and
read with pycocotools.

```
{"info": {"format": "onepass-people", "format_version": 1, ...},
 "images": [{"id": 1, "file_name": "000000.png", "width": 160, "height": 128}, ...],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [x, y, w, h], "area": 812,
                  "iscrowd": 0, "truncated": false,
                  "attributes": {"age_group": "adult", "gender": "female", "looking": true, "yaw": -12.5}},
                 ...],
 "categories": [{"id": 1, "name": "person"}]}
```

- `file_name` is the image's path relative to `images/` (as in attributes.csv); every image with
  people labelled is listed, and an image listed without annotations has no one in it.
- `bbox` is COCO's [x, y, width, height] in pixels, the visible extent of the person; pixel (row
  i, column j) covers [j, j + 1) x [i, i + 1), so a box may reach x + width == the image width.
  `area` (optional) is the visible pixel count, `truncated` (optional) whether the body reaches
  the image border, `iscrowd` (optional) must be 0: every person has a box of their own.
- `attributes`: any of the four may be absent (that label is then missing, its loss masked).
  `age_group` and `gender` take a class of the dataset's person attribute classes (dataset.json's
  `person_attributes`, e.g. {"age_group": ["child", "adult"], "gender": ["female", "male"]});
  `looking` is a boolean; `yaw` is the head yaw in degrees, -180 to 180, 0 facing the camera,
  positive turned to the person's left.
- `info` is optional (files from labelling tools have their own); when it names a `format` it must
  be "onepass-people" with a `format_version` this onepass reads.

Validation happens before pycocotools sees the file, so each error names the file, the image or
annotation id, and what is wrong.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from pycocotools.coco import COCO

from onepass.data.files import replace_text
from onepass.data.folder import DatasetError

PEOPLE_FILE = "people.json"
PEOPLE_FORMAT = "onepass-people"
PEOPLE_FORMAT_VERSION = 1
PERSON_CATEGORY = {"id": 1, "name": "person"}
BUILT_IN_ATTRIBUTES = ("looking", "yaw")  # a boolean and degrees; every other attribute is categorical,
# with its classes in dataset.json's `person_attributes` (age_group and gender in the synthetic scenes)
BOX_TOLERANCE = 1e-3  # pixels a box may reach past the image border (rounding in other tools)


class PeopleJsonError(DatasetError):
    """people.json is malformed; the message names the file, the image or annotation, and the fault."""


def person_annotation(
    annotation_id: int,
    image_id: int,
    box: Sequence[float],
    attributes: Mapping[str, object],
    area: float | None = None,
    truncated: bool | None = None,
) -> dict:
    """One COCO annotation of a person; `attributes` holds any of the dataset's person attributes."""
    annotation = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": PERSON_CATEGORY["id"],
        "bbox": list(box),
        "area": float(box[2] * box[3]) if area is None else area,
        "iscrowd": 0,
        "attributes": dict(attributes),
    }
    if truncated is not None:
        annotation["truncated"] = truncated
    return annotation


def people_document(images: Sequence[Mapping], annotations: Sequence[Mapping], description: str = "") -> dict:
    """The whole people.json content: images [{id, file_name, width, height}] and annotations."""
    info = {"format": PEOPLE_FORMAT, "format_version": PEOPLE_FORMAT_VERSION}
    if description:
        info["description"] = description
    return {
        "info": info,
        "images": [dict(image) for image in images],
        "annotations": [dict(annotation) for annotation in annotations],
        "categories": [dict(PERSON_CATEGORY)],
    }


def write_people_json(
    path: str | os.PathLike, document: Mapping, person_attributes: Mapping[str, Sequence[str]]
) -> None:
    """Validate `document` (refusing to write a file the reader would refuse) and write it, as a new
    file (`replace_text`)."""
    validate_people_json(document, str(path), person_attributes)
    replace_text(Path(path), json.dumps(document, separators=(",", ":")) + "\n")


def load_people_json(
    path: str | os.PathLike,
    person_attributes: Mapping[str, Sequence[str]],
    image_files: Collection[str] | None = None,
) -> COCO:
    """Read, validate and index people.json with pycocotools.

    `person_attributes` are the classes of the categorical attributes (dataset.json); with
    `image_files` (paths relative to images/), every file_name must be one of them.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise PeopleJsonError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PeopleJsonError(f"{path}: not valid JSON ({error})") from None
    validate_people_json(document, str(path), person_attributes, image_files)
    coco = COCO()
    coco.dataset = document
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints its progress
        coco.createIndex()
    return coco


def people_by_file_name(coco: COCO) -> dict[str, list[dict]]:
    """Each listed image's annotations, by file_name (an image listed without people: [])."""
    return {image["file_name"]: coco.imgToAnns.get(image_id, []) for image_id, image in coco.imgs.items()}


def parse_person_attributes(section: object, path: str) -> dict[str, tuple[str, ...]]:
    """Check dataset.json's `person_attributes`: each categorical attribute (any name but the built-in
    `looking` and `yaw`) -> its classes."""
    if not isinstance(section, dict):
        raise DatasetError(f"{path}: 'person_attributes' must map attribute names to lists of classes")
    for name, classes in section.items():
        if name in BUILT_IN_ATTRIBUTES or not isinstance(name, str) or not name.isidentifier():
            raise DatasetError(
                f"{path}: 'person_attributes' has {name!r}; a categorical person attribute needs a name that is an "
                f"identifier and not one of {', '.join(BUILT_IN_ATTRIBUTES)} (looking is a boolean, yaw degrees)"
            )
        if (
            not isinstance(classes, list | tuple)
            or len(classes) < 2
            or not all(isinstance(c, str) and c for c in classes)
            or len(set(classes)) != len(classes)
        ):
            raise DatasetError(f"{path}: 'person_attributes' {name!r} must list at least two distinct class names")
    return {name: tuple(classes) for name, classes in section.items()}


# --------------------------------------------------------------------------------------------
# Validation: the first fault found raises, naming where it is.


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_people_json(
    document: object,
    path: str,
    person_attributes: Mapping[str, Sequence[str]],
    image_files: Collection[str] | None = None,
) -> None:
    """Raise PeopleJsonError at the first fault of a people.json document (see the module docstring)."""
    if not isinstance(document, dict):
        raise PeopleJsonError(f"{path}: must be a JSON object with 'images', 'annotations' and 'categories'")
    _check_info(document.get("info"), path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(document.get(key), list):
            raise PeopleJsonError(f"{path}: '{key}' must be a list" if key in document else f"{path}: no '{key}'")
    images = _check_images(document["images"], path, image_files)
    person_ids = _check_categories(document["categories"], path)
    seen: set[int] = set()
    for position, annotation in enumerate(document["annotations"]):
        annotation_id, where = _entry_id(annotation, path, "annotation", position, seen)
        seen.add(annotation_id)
        _check_annotation(annotation, where, images, person_ids, person_attributes)


def _entry_id(entry: object, path: str, kind: str, position: int, seen: Collection[int]) -> tuple[int, str]:
    """A list entry's id (an object with an integer id not seen before) and how errors name it."""
    if not isinstance(entry, dict):
        raise PeopleJsonError(f"{path}: {kind}s[{position}] must be an object")
    entry_id = entry.get("id")
    if not _is_int(entry_id):
        raise PeopleJsonError(f"{path}: {kind}s[{position}]: 'id' must be an integer, got {entry_id!r}")
    where = f"{path}: {kind} {entry_id}"
    if entry_id in seen:
        raise PeopleJsonError(f"{where}: duplicate id")
    return entry_id, where


def _check_info(info: object, path: str) -> None:
    if info is None:
        return
    if not isinstance(info, dict):
        raise PeopleJsonError(f"{path}: 'info' must be an object")
    if "format" not in info:
        return
    if info["format"] != PEOPLE_FORMAT:
        raise PeopleJsonError(f"{path}: info 'format' is {info['format']!r}; this reader reads {PEOPLE_FORMAT!r}")
    if info.get("format_version") != PEOPLE_FORMAT_VERSION:
        raise PeopleJsonError(
            f"{path}: unsupported format_version {info.get('format_version')!r}; "
            f"this onepass reads version {PEOPLE_FORMAT_VERSION}"
        )


def _check_images(images: list, path: str, image_files: Collection[str] | None) -> dict[int, tuple[int, int]]:
    """-> image id: (width, height)."""
    sizes: dict[int, tuple[int, int]] = {}
    names: dict[str, int] = {}
    for position, image in enumerate(images):
        image_id, where = _entry_id(image, path, "image", position, sizes)
        name = image.get("file_name")
        if name is None:
            raise PeopleJsonError(f"{where}: no 'file_name' (the image's path relative to images/)")
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in Path(name).parts:
            raise PeopleJsonError(f"{where}: 'file_name' must be a path relative to images/, got {name!r}")
        if name in names:
            raise PeopleJsonError(f"{where}: file_name {name!r} is already image {names[name]}")
        if image_files is not None and name not in image_files:
            raise PeopleJsonError(f"{where}: file_name {name!r} is not in images/")
        names[name] = image_id
        for key in ("width", "height"):
            if not _is_int(image.get(key)) or image[key] <= 0:
                raise PeopleJsonError(f"{where}: '{key}' must be a positive integer (pixels), got {image.get(key)!r}")
        sizes[image_id] = (image["width"], image["height"])
    return sizes


def _check_categories(categories: list, path: str) -> set[int]:
    """-> the ids of the person category."""
    seen: set[int] = set()
    person: set[int] = set()
    for position, category in enumerate(categories):
        if (
            not isinstance(category, dict)
            or not _is_int(category.get("id"))
            or not isinstance(category.get("name"), str)
        ):
            raise PeopleJsonError(f"{path}: categories[{position}] must be an object with an integer 'id' and a 'name'")
        if category["id"] in seen:
            raise PeopleJsonError(f"{path}: category {category['id']}: duplicate id")
        seen.add(category["id"])
        if category["name"] == PERSON_CATEGORY["name"]:
            person.add(category["id"])
    if not person:
        raise PeopleJsonError(f"{path}: no category named 'person' in 'categories'")
    return person


def _check_annotation(
    annotation: dict,
    where: str,
    images: Mapping[int, tuple[int, int]],
    person_ids: set[int],
    person_attributes: Mapping[str, Sequence[str]],
) -> None:
    image_id = annotation.get("image_id")
    if not _is_int(image_id) or image_id not in images:
        raise PeopleJsonError(f"{where}: image_id {image_id!r} is not in 'images'")
    category = annotation.get("category_id")
    if not _is_int(category) or category not in person_ids:
        raise PeopleJsonError(f"{where}: category_id {category!r} is not the 'person' category {sorted(person_ids)}")
    box = annotation.get("bbox")
    if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
        raise PeopleJsonError(f"{where}: 'bbox' must be [x, y, width, height] (4 finite numbers), got {box!r}")
    x, y, w, h = box
    if w < 0 or h < 0:
        raise PeopleJsonError(f"{where}: bbox {box} has a negative size")
    if w == 0 or h == 0:
        raise PeopleJsonError(f"{where}: bbox {box} is empty (zero width or height)")
    width, height = images[image_id]
    tolerance = BOX_TOLERANCE
    if x < -tolerance or y < -tolerance or x + w > width + tolerance or y + h > height + tolerance:
        raise PeopleJsonError(f"{where}: bbox {box} reaches outside its {width}x{height} (WxH) image {image_id}")
    if "area" in annotation and (not _is_number(annotation["area"]) or annotation["area"] < 0):
        raise PeopleJsonError(f"{where}: 'area' must be a number >= 0, got {annotation['area']!r}")
    if annotation.get("iscrowd", 0) != 0 or isinstance(annotation.get("iscrowd"), bool):
        raise PeopleJsonError(
            f"{where}: 'iscrowd' must be 0, got {annotation['iscrowd']!r}; crowd regions are not supported, "
            "give each person a box"
        )
    if "truncated" in annotation and not isinstance(annotation["truncated"], bool):
        raise PeopleJsonError(f"{where}: 'truncated' must be true or false, got {annotation['truncated']!r}")
    attributes = annotation.get("attributes", {})
    if not isinstance(attributes, dict):
        raise PeopleJsonError(f"{where}: 'attributes' must be an object, got {attributes!r}")
    for name, value in attributes.items():
        _check_attribute(name, value, where, person_attributes)


def _check_attribute(name: str, value: object, where: str, person_attributes: Mapping[str, Sequence[str]]) -> None:
    if name in person_attributes:
        classes = person_attributes[name]
        if not isinstance(value, str) or value not in classes:
            raise PeopleJsonError(f"{where}: {value!r} is not a class of {name!r} ({', '.join(classes)})")
    elif name == "looking":
        if not isinstance(value, bool):
            raise PeopleJsonError(f"{where}: 'looking' must be true or false, got {value!r}")
    elif name == "yaw":
        if not _is_number(value) or not -180 <= value <= 180:
            raise PeopleJsonError(f"{where}: 'yaw' must be degrees from -180 to 180, got {value!r}")
    else:
        known = [*person_attributes, *BUILT_IN_ATTRIBUTES]
        raise PeopleJsonError(
            f"{where}: unknown attribute {name!r}; person attributes are {', '.join(known)} "
            "(a categorical one needs its classes in dataset.json 'person_attributes')"
        )
