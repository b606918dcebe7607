"""A COCO instances JSON, as labelling tools export it (CVAT, Label Studio, ...) -> the dataset's
people.json (onepass.data.people_json), with the dataset's own person attributes.

- The person category is found by name (`category`, default "person"); other categories are left out.
- `file_name` must name an image of DST/images/ (after `strip_prefix` is removed), and the image's
  width and height must be the file's own: a box is in the pixels of the image it was drawn on.
- An image listed without a person annotation has no one in it; an image not listed has no
  people labels (its loss is masked).
- Each annotation's "attributes" (CVAT writes them there) are kept: dataset.json's
  `person_attributes` (categorical, e.g. age_band, gender) and the built-in `looking` (boolean) and
  `yaw` (degrees). Any other attribute is refused, unless named in `drop_attribute`.
- Crowd regions (iscrowd = 1) are refused, unless `drop_crowd`: the people task needs a box per
  person, and a crowd left out trains its people as background.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onepass.data.convert import ConvertError
from onepass.data.convert._dataset import image_size, target_dataset
from onepass.data.people_json import (
    BUILT_IN_ATTRIBUTES,
    PEOPLE_FILE,
    people_document,
    person_annotation,
    write_people_json,
)


def convert(
    src: Path,
    dst: Path,
    progress: bool = False,
    category: str = "person",
    strip_prefix: str | None = None,
    drop_crowd: bool = False,
    drop_attribute: Sequence[str] = (),
) -> str:
    dataset = target_dataset(dst)
    coco = _read(src)
    person_ids = {c.get("id") for c in coco["categories"] if isinstance(c, dict) and c.get("name") == category}
    if not person_ids:
        names = sorted({str(c.get("name")) for c in coco["categories"] if isinstance(c, dict)})
        raise ConvertError(f"{src}: no category named {category!r} (categories: {', '.join(names)}); pass --category")
    files = dataset.file_names()
    images = [_image(image, src, files, strip_prefix) for image in coco["images"]]
    listed = {image["id"] for image in images}
    known = set(dataset.description.person_attributes) | set(BUILT_IN_ATTRIBUTES)
    annotations, crowds = [], 0
    for annotation in coco["annotations"]:
        if not isinstance(annotation, dict) or annotation.get("category_id") not in person_ids:
            continue
        where = f"{src}: annotation {annotation.get('id')!r}"
        if annotation.get("iscrowd", 0) not in (0, False):
            crowds += 1
            if drop_crowd:
                continue
            raise ConvertError(
                f"{where}: a crowd region (iscrowd = 1); the people task needs a box per person: label them one "
                "by one, or pass --drop-crowd to leave crowds out"
            )
        if annotation.get("image_id") not in listed:
            raise ConvertError(f"{where}: image_id {annotation.get('image_id')!r} is not in 'images'")
        attributes = {k: v for k, v in (annotation.get("attributes") or {}).items() if k not in drop_attribute}
        unknown = sorted(set(attributes) - known)
        if unknown:
            raise ConvertError(
                f"{where}: attributes {unknown} are not person attributes of {dst / 'dataset.json'} "
                f"({', '.join(sorted(known))}); describe them in its 'person_attributes', or leave them out "
                "with --drop-attribute NAME"
            )
        area = annotation.get("area")
        annotations.append(
            person_annotation(
                annotation.get("id"), annotation["image_id"], annotation.get("bbox"), attributes,
                area=area if isinstance(area, int | float) and not isinstance(area, bool) else None,
            )
        )  # fmt: skip
    document = people_document(images, annotations, description=f"converted from {src.name} (COCO)")
    write_people_json(dst / PEOPLE_FILE, document, dataset.description.person_attributes)  # validates first
    dropped = f"; left out {crowds} crowd regions" if crowds and drop_crowd else ""
    return f"wrote {dst / PEOPLE_FILE}: {len(annotations)} people in {len(images)} images{dropped}"


def _read(src: Path) -> dict[str, Any]:
    if not src.is_file():
        raise ConvertError(f"{src}: COCO JSON file not found")
    try:
        coco = json.loads(src.read_bytes())
    except (ValueError, RecursionError) as error:
        raise ConvertError(f"{src}: not valid JSON ({error})") from None
    if not isinstance(coco, dict) or not all(
        isinstance(coco.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise ConvertError(f"{src}: not a COCO instances file (lists 'images', 'annotations' and 'categories')")
    return coco


def _image(image: Any, src: Path, files: dict[str, Path], strip_prefix: str | None) -> dict[str, Any]:
    if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
        raise ConvertError(f"{src}: every entry of 'images' needs an 'id' and a 'file_name'; got {image!r:.80}")
    name = image["file_name"]
    if strip_prefix and name.startswith(strip_prefix):
        name = name[len(strip_prefix) :]
    if name not in files:
        same_name = [f for f in files if Path(f).name == Path(name).name]
        hint = f"; did you mean {same_name[0]!r} (--strip-prefix)?" if same_name else ""
        raise ConvertError(f"{src}: image {image.get('id')!r}: file_name {name!r} is not in images/{hint}")
    height, width = image_size(files[name])
    if (image.get("width"), image.get("height")) != (width, height):
        raise ConvertError(
            f"{src}: image {image.get('id')!r} ({name}) is {image.get('width')}x{image.get('height')} in the JSON but "
            f"{width}x{height} on disk; its boxes were drawn on another size of it"
        )
    return {"id": image.get("id"), "file_name": name, "width": width, "height": height}
