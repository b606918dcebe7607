"""What the label converters share: the target folder dataset's images, and the source label files
matched to them by id (the path relative to the folder, without its extension, as in images/)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from onepass.data.codecs import check_pixels
from onepass.data.convert import ConvertError
from onepass.data.folder import DatasetDescription
from onepass.data.image import IMAGE_EXTENSIONS, BadImage, decode_image


@dataclass(frozen=True)
class TargetDataset:
    root: Path
    description: DatasetDescription
    images: dict[str, Path]  # id -> image file, as FolderDataset lists them

    def file_names(self) -> dict[str, Path]:
        """Each image's path relative to images/ (people.json's file_name) -> the file."""
        return {p.relative_to(self.root / "images").as_posix(): p for p in self.images.values()}


def target_dataset(root: Path) -> TargetDataset:
    """The folder dataset a converter writes labels into: dataset.json (validated) and images/."""
    if not root.is_dir():
        raise ConvertError(
            f"{root}: not a folder; put the frames in {root}/images/ and write {root}/dataset.json first"
        )
    description = DatasetDescription.load(root)
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise ConvertError(f"{images_dir}: missing; the images go in an images/ folder")
    files = sorted(p for p in images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ConvertError(f"{images_dir}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return TargetDataset(root, description, {p.relative_to(images_dir).with_suffix("").as_posix(): p for p in files})


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image as the folder reader decodes it (the one decoder: EXIF orientation applied)."""
    try:
        width, height = decode_image(path).size
    except BadImage as error:
        raise ConvertError(str(error)) from None
    return height, width


def label_files(src: Path, suffixes: Sequence[str], dataset: TargetDataset) -> dict[str, Path]:
    """id -> label file under `src`, each matched to an image of `dataset`; a file with no image, or
    two files for one image, is an error."""
    if not src.is_dir():
        raise ConvertError(f"{src}: not a folder of label files")
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise ConvertError(f"{src}: no label files ({', '.join(suffixes)})")
    found: dict[str, Path] = {}
    for path in files:
        sample_id = path.relative_to(src).with_suffix("").as_posix()
        if sample_id in found:
            raise ConvertError(f"{path}: {found[sample_id]} labels the same image; keep one")
        found[sample_id] = path
    orphans = sorted(set(found) - set(dataset.images))
    if orphans:
        shown = ", ".join(str(found[o].relative_to(src)) for o in orphans[:5])
        raise ConvertError(
            f"{src}: {len(orphans)} label files have no image in {dataset.root / 'images'} ({shown}); "
            "a label file is named like its image (same sub-folders, any extension)"
        )
    return found


def check_size(path: Path, shape: tuple[int, ...], image: Path) -> None:
    size = image_size(image)
    if tuple(shape[:2]) != size:
        raise ConvertError(f"{path}: label is {shape[1]}x{shape[0]} (WxH) but its image {image} is {size[1]}x{size[0]}")


def read_png(path: Path, what: str = "PNG") -> Image.Image:
    """A label PNG, fully loaded, within the pixel limits; a ConvertError naming `path` otherwise."""
    try:
        image = Image.open(io.BytesIO(path.read_bytes()), formats=("PNG",))
        check_pixels(image, str(path))
        image.load()
    except Exception as error:  # PIL raises many types for bad files (check_pixels: a LabelFileError)
        raise ConvertError(f"{path}: not a readable {what} ({error})") from None
    return image
