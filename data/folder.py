"""The folder dataset format users bring (DESIGN.md, "Data"), read and written.

```
DIR/
  dataset.json        {"format": "onepass-dataset", "version": 1, "classes": [...],
                       "attribute_groups": {"people": ["0", "1", ...], ...}}
  images/<id>.<png|jpg|...>
  <task>/<id>.png     one folder per dense task (semseg/, depth/, normals/), any file may be missing
  attributes.csv      image,<group>,<group>...   one row per labelled image, empty cell = missing
```

`<id>` is the image path relative to `images/` without its extension (sub-folders allowed).
Any label may be missing for any image: the reader returns None for it and the training loss of
that task is masked for that image.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from onepass.data.codecs import FILE_TOO_LARGE, MAX_FILE_PIXELS, Codec, LabelFileError, png_header_size
from onepass.data.image import IMAGE_EXTENSIONS, BadImage, decode_image
from onepass.errors import UserError

DATASET_FORMAT = "onepass-dataset"
DATASET_VERSION = 1
ATTRIBUTES_FILE = "attributes.csv"


class DatasetError(UserError, ValueError):
    """The dataset folder is malformed; the message names the file and what is wrong."""


@dataclass(frozen=True)
class DatasetDescription:
    """The contents of dataset.json: what the labels mean."""

    classes: tuple[str, ...]
    attribute_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    person_attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # people.json's categorical ones

    def to_json(self) -> dict:
        document = {
            "format": DATASET_FORMAT,
            "version": DATASET_VERSION,
            "classes": list(self.classes),
            "attribute_groups": {g: list(c) for g, c in self.attribute_groups.items()},
        }
        if self.person_attributes:
            document["person_attributes"] = {a: list(c) for a, c in self.person_attributes.items()}
        return document

    @classmethod
    def load(cls, root: Path) -> DatasetDescription:
        path = Path(root) / "dataset.json"
        if not path.is_file():
            raise DatasetError(
                f"{path}: missing; every dataset folder needs a dataset.json (classes, attribute groups)"
            )
        try:
            # from bytes: json detects UTF-8/16/32 and skips a byte order mark, as the JSON spec allows
            data = json.loads(path.read_bytes())
        except (ValueError, RecursionError) as error:  # also numbers over 4300 digits, nesting too deep
            raise DatasetError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format") != DATASET_FORMAT:
            raise DatasetError(f"{path}: 'format' must be {DATASET_FORMAT!r}")
        if data.get("version") != DATASET_VERSION:
            raise DatasetError(
                f"{path}: unsupported dataset version {data.get('version')!r}; this onepass reads version {DATASET_VERSION}"
            )
        classes = data.get("classes", [])
        groups = data.get("attribute_groups", {})
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise DatasetError(f"{path}: 'classes' must be a list of class names")
        if len(classes) > 255:
            raise DatasetError(f"{path}: at most 255 classes fit an 8-bit class map (id 255 means unlabelled)")
        if not isinstance(groups, dict) or not all(
            isinstance(v, list) and len(v) >= 2 and all(isinstance(c, str) for c in v) for v in groups.values()
        ):
            raise DatasetError(f"{path}: 'attribute_groups' must map each group to a list of at least two class names")
        from onepass.data.people_json import parse_person_attributes  # it builds on this module's DatasetError

        person_attributes = parse_person_attributes(data.get("person_attributes", {}), str(path))
        return cls(tuple(classes), {g: tuple(v) for g, v in groups.items()}, person_attributes)


@dataclass(frozen=True)
class Sample:
    """One image and whatever labels it has (None = missing)."""

    id: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    maps: dict[str, np.ndarray | None]  # per-pixel labels by task name, each from its folder
    attributes: dict[str, str | None]  # attributes.csv's row
    instances: list[dict] | None = None  # the image's people.json annotations (None: the image is not listed)


def read_rgb(path: Path) -> np.ndarray:
    """A dataset image -> (H, W, 3) uint8 RGB, decoded as every stage decodes (data/image.py); a
    DatasetError names the file."""
    try:
        return np.asarray(decode_image(path, MAX_FILE_PIXELS, str(path), too_large=FILE_TOO_LARGE))
    except BadImage as error:
        raise DatasetError(str(error)) from None


class FolderDataset(Sequence[Sample]):
    """Reads a dataset folder; `dense_codecs` says which per-pixel label folders to read and how.
    people.json, when the folder has one, is read and validated once, here."""

    def __init__(self, root: str | os.PathLike, dense_codecs: Mapping[str, Codec], read_attributes: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset folder does not exist")
        self.description = DatasetDescription.load(self.root)
        images_dir = self.root / "images"
        if not images_dir.is_dir():
            raise DatasetError(f"{images_dir}: missing; the images go in an images/ folder")
        self._images = sorted(p for p in images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self._images:
            raise DatasetError(f"{images_dir}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.ids = [p.relative_to(images_dir).with_suffix("").as_posix() for p in self._images]
        self.dense_codecs = dict(dense_codecs)
        self._attributes = self._read_attributes() if read_attributes else {}
        self._people = self._read_people()

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        image = read_rgb(self._images[index])
        sample_id = self.ids[index]
        maps = {
            name: self._read_dense(name, codec, sample_id, image.shape[:2]) for name, codec in self.dense_codecs.items()
        }
        attributes = self._attributes.get(sample_id, dict.fromkeys(self.description.attribute_groups))
        instances = self._people.get(self._images[index].relative_to(self.root / "images").as_posix())
        return Sample(sample_id, image, maps, attributes, instances)

    def _read_dense(self, name: str, codec: Codec, sample_id: str, size: tuple[int, int]) -> np.ndarray | None:
        path = self.root / name / f"{sample_id}{codec.extension}"
        if not path.is_file():
            return None
        data = path.read_bytes()
        # from the header first: a label of the wrong size is refused before its pixels are decoded
        claimed = png_header_size(data)
        if claimed is not None and claimed != size:
            raise _wrong_size(path, claimed, size)
        try:
            label = codec.decode(data, str(path))
        except LabelFileError as error:
            raise DatasetError(str(error)) from None
        if label.shape[:2] != size:
            raise _wrong_size(path, label.shape[:2], size)
        return label

    def _read_people(self) -> dict[str, list[dict]]:
        """Each listed image's annotations, by its path relative to images/."""
        from onepass.data.people_json import PEOPLE_FILE, load_people_json, people_by_file_name

        path = self.root / PEOPLE_FILE
        if not path.is_file():
            return {}
        files = [p.relative_to(self.root / "images").as_posix() for p in self._images]
        return people_by_file_name(load_people_json(path, self.description.person_attributes, files))

    def _read_attributes(self) -> dict[str, dict[str, str | None]]:
        path = self.root / ATTRIBUTES_FILE
        if not path.is_file():
            return {}
        # utf-8-sig: spreadsheet programs start a UTF-8 CSV with a byte order mark
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            try:
                return self._attribute_rows(path, reader)
            except csv.Error as error:  # e.g. a cell over csv's field size limit; line_num = lines read before it
                raise DatasetError(f"{path}, line {reader.line_num + 1}: not a readable CSV file ({error})") from None
            except UnicodeDecodeError as error:
                raise DatasetError(f"{path}: not UTF-8 text ({error}); save it as UTF-8 CSV") from None

    def _attribute_rows(self, path: Path, reader: csv.DictReader) -> dict[str, dict[str, str | None]]:
        groups = self.description.attribute_groups
        if reader.fieldnames is None or "image" not in reader.fieldnames:
            raise DatasetError(f"{path}: the first row must be a header with an 'image' column")
        unknown_columns = set(reader.fieldnames) - {"image"} - set(groups)
        if unknown_columns:
            raise DatasetError(
                f"{path}: columns {sorted(unknown_columns)} are not attribute groups of dataset.json ({sorted(groups)})"
            )
        rows: dict[str, dict[str, str | None]] = {}
        known = set(self.ids)
        for row in reader:
            line = reader.line_num
            if None in row:  # DictReader's key for cells past the header's columns
                raise DatasetError(
                    f"{path}, line {line}: {len(reader.fieldnames) + len(row[None])} cells but the header has "
                    f"{len(reader.fieldnames)} columns; quote a value that contains a comma"
                )
            sample_id = _sample_id(row["image"])
            if sample_id is None:
                raise DatasetError(
                    f"{path}, line {line}: the 'image' cell is {row['image'] or ''!r}, not an image file name"
                )
            if sample_id not in known:
                raise DatasetError(f"{path}, line {line}: image {row['image']!r} is not in images/")
            values: dict[str, str | None] = {}
            for group, classes in groups.items():
                value = (row.get(group) or "").strip()
                if value and value not in classes:
                    raise DatasetError(
                        f"{path}, line {line}: {value!r} is not a class of group {group!r} ({', '.join(classes)})"
                    )
                values[group] = value or None
            rows[sample_id] = values
        return rows


def _wrong_size(path: Path, label: tuple[int, ...], image: tuple[int, int]) -> DatasetError:
    return DatasetError(f"{path}: label is {label[1]}x{label[0]} (WxH) but its image is {image[1]}x{image[0]}")


def _sample_id(image_name: str | None) -> str | None:
    """'a/0001.png' -> 'a/0001', the id of images/a/0001.png; None for a name no image can have."""
    try:
        return Path(image_name).with_suffix("").as_posix() if image_name else None
    except ValueError:  # '/' and the like: no file name
        return None


class DatasetWriter:
    """Writes a dataset folder: dataset.json, images, dense labels and attributes.csv."""

    def __init__(self, root: str | os.PathLike, description: DatasetDescription, dense_codecs: Mapping[str, Codec]):
        self.root = Path(root)
        self.description = description
        self.dense_codecs = dict(dense_codecs)
        self.root.mkdir(parents=True, exist_ok=True)
        self._attribute_rows: list[dict[str, str]] = []

    def write(
        self, sample_id: str, image: np.ndarray, dense: Mapping[str, np.ndarray], attributes: Mapping[str, str]
    ) -> None:
        image_path = self.root / "images" / f"{sample_id}.png"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_path, compress_level=1)
        for name, array in dense.items():
            codec = self.dense_codecs[name]
            path = self.root / name / f"{sample_id}{codec.extension}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(codec.encode(array))
        if attributes:
            self._attribute_rows.append({"image": f"{sample_id}.png", **attributes})

    def close(self) -> None:
        """Writes dataset.json and attributes.csv last, so a folder with them is complete."""
        groups = list(self.description.attribute_groups)
        if self._attribute_rows:
            with (self.root / ATTRIBUTES_FILE).open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=["image", *groups])
                writer.writeheader()
                writer.writerows(self._attribute_rows)
        (self.root / "dataset.json").write_text(json.dumps(self.description.to_json(), indent=2) + "\n")
