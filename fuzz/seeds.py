"""Seed corpora: small real files in every mode and format the readers meet, made with Pillow.

Made, not stored, so the corpus follows the installed Pillow's writers; a format this Pillow cannot
write is left out (`formats_written` says which were).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import numpy as np
from mutations import exif_orientation_block  # fuzz/ is on sys.path when a target runs
from PIL import Image

from onepass.data.codecs import DepthPngCodec, IndexedPngCodec, NormalsPngCodec
from onepass.data.folder import DATASET_FORMAT, DATASET_VERSION
from onepass.data.image import IMAGE_EXTENSIONS


def picture(width: int = 7, height: int = 5) -> Image.Image:
    """A small gradient with distinct pixels, so a decoder has something to get wrong."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) * 20 % 256], axis=2)
    return Image.fromarray(rgb.astype(np.uint8))


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _image_recipes() -> dict[str, Callable[[], bytes]]:
    rgb = picture()
    grey16 = Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257).astype(np.uint16))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    frames = [rgb, rgb.rotate(90, expand=False), rgb.convert("L").convert("RGB")]
    exif = Image.Exif()
    exif[0x0112] = 6
    recipes: dict[str, Callable[[], bytes]] = {
        "rgb.png": lambda: encode(rgb, "PNG"),
        "rgba.png": lambda: encode(rgb.convert("RGBA"), "PNG"),
        "la.png": lambda: encode(rgb.convert("LA"), "PNG"),
        "l.png": lambda: encode(rgb.convert("L"), "PNG"),
        "1.png": lambda: encode(rgb.convert("1"), "PNG"),
        "p.png": lambda: encode(palette, "PNG"),
        "p-transparency.png": lambda: encode(palette, "PNG", transparency=0),
        "i16.png": lambda: encode(grey16, "PNG"),
        "exif.png": lambda: encode(rgb, "PNG", exif=exif.tobytes()),
        "animated.png": lambda: encode(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "rgb.jpg": lambda: encode(rgb, "JPEG", quality=90),
        "l.jpg": lambda: encode(rgb.convert("L"), "JPEG"),
        "cmyk.jpg": lambda: encode(rgb.convert("CMYK"), "JPEG"),
        "progressive.jpg": lambda: encode(rgb, "JPEG", progressive=True),
        "exif6.jpg": lambda: encode(rgb, "JPEG", exif=exif.tobytes()),
        "exif-raw.jpg": lambda: encode(rgb, "JPEG", exif=b"Exif\x00\x00" + exif_orientation_block(8)),
        "p.gif": lambda: encode(palette, "GIF"),
        "animated.gif": lambda: encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10),
        "rgb.tif": lambda: encode(rgb, "TIFF"),
        "lzw.tif": lambda: encode(rgb, "TIFF", compression="tiff_lzw"),
        "deflate.tif": lambda: encode(rgb, "TIFF", compression="tiff_adobe_deflate"),
        "cmyk.tif": lambda: encode(rgb.convert("CMYK"), "TIFF"),
        "i16.tif": lambda: encode(grey16, "TIFF"),
        "f.tif": lambda: encode(Image.fromarray(np.asarray(grey16, np.float32) / 65535), "TIFF"),
        "multipage.tif": lambda: encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "lossless.webp": lambda: encode(rgb, "WEBP", lossless=True),
        "lossy.webp": lambda: encode(rgb, "WEBP", quality=50),
        "rgba.webp": lambda: encode(rgb.convert("RGBA"), "WEBP"),
        "animated.webp": lambda: encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        "rgb.bmp": lambda: encode(rgb, "BMP"),
        "p.bmp": lambda: encode(palette, "BMP"),
        "rgb.ico": lambda: encode(rgb, "ICO", sizes=[(7, 5)]),
        "rgb.ppm": lambda: encode(rgb, "PPM"),
        "l.pgm": lambda: encode(rgb.convert("L"), "PPM"),
        "rgb.tga": lambda: encode(rgb, "TGA", compression="tga_rle"),
        "rgb.pcx": lambda: encode(rgb, "PCX"),
        "rgb.qoi": lambda: encode(rgb, "QOI"),
        "rgb.jp2": lambda: encode(rgb, "JPEG2000"),
        "rgb.avif": lambda: encode(rgb, "AVIF"),
        "rgb.dds": lambda: encode(rgb.convert("RGBA"), "DDS"),
        "rgb.sgi": lambda: encode(rgb, "SGI"),
        "l.xbm": lambda: encode(rgb.convert("1"), "XBM"),
        "rgb.icns": lambda: encode(rgb.resize((16, 16)), "ICNS"),
    }
    return recipes


def upload_seeds() -> dict[str, bytes]:
    """One small file per mode and format (those this Pillow can write)."""
    seeds = {}
    for name, make in _image_recipes().items():
        try:
            seeds[name] = make()
        except (OSError, KeyError, ValueError):  # this Pillow has no writer for the format
            continue
    return seeds


def formats_written() -> list[str]:
    return sorted(upload_seeds())


# --- the dataset target's container --------------------------------------------------------------

# dataset.json, attributes.csv, the image, semseg/depth/normals labels; ABSENT leaves a file out.
SECTIONS = ("dataset.json", "attributes.csv", "image", "semseg", "depth", "normals")
SEPARATOR = b"\n\x00--onepass-fuzz-section--\x00\n"
ABSENT = b"-"


def pack(suffix: str, files: dict[str, bytes | None]) -> bytes:
    """A dataset as one fuzz input: a byte choosing the image's suffix, then the sections."""
    sections = [ABSENT if files.get(name) is None else files[name] for name in SECTIONS]
    return bytes([IMAGE_EXTENSIONS.index(suffix)]) + SEPARATOR.join(sections)


def unpack(data: bytes) -> tuple[str, dict[str, bytes | None]]:
    if not data:
        return IMAGE_EXTENSIONS[0], dict.fromkeys(SECTIONS)
    suffix = IMAGE_EXTENSIONS[data[0] % len(IMAGE_EXTENSIONS)]
    parts = data[1:].split(SEPARATOR)
    files: dict[str, bytes | None] = dict.fromkeys(SECTIONS)
    for name, part in zip(SECTIONS, parts, strict=False):  # fewer parts: the rest are absent
        files[name] = None if part == ABSENT else part
    return suffix, files


def dataset_seeds() -> dict[str, bytes]:
    """Valid datasets of one 7x5 image, with and without each label, in several image formats."""
    width, height = 7, 5
    classes = ["floor", "wall", "person"]
    description = {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "classes": classes,
        "attribute_groups": {"people": ["0", "1", "2"], "facing": ["no", "yes"]},
    }
    ids = (np.arange(height * width).reshape(height, width) % 3).astype(np.uint8)
    ids[0, 0] = 255  # unlabelled
    depth = np.linspace(0, 12, height * width, dtype=np.float32).reshape(height, width)
    normals = np.zeros((height, width, 3), np.float32)
    normals[..., 2] = 1.0
    normals[0, 0] = 0.0  # missing
    full = {
        "dataset.json": json.dumps(description).encode(),
        "attributes.csv": b"image,people,facing\n0000.png,1,yes\n",
        "image": encode(picture(width, height), "PNG"),
        "semseg": IndexedPngCodec().encode(ids),
        "depth": DepthPngCodec().encode(depth),
        "normals": NormalsPngCodec().encode(normals),
    }
    rotated = picture(height, width)  # stored sideways, EXIF says turn it upright to 7x5
    exif = Image.Exif()
    exif[0x0112] = 6
    seeds = {
        "full-png": pack(".png", full),
        "labels-missing": pack(".png", {**full, "depth": None, "normals": None, "attributes.csv": None}),
        "attribute-cells-empty": pack(".png", {**full, "attributes.csv": b"image,people,facing\n0000.png,,\n"}),
        "jpg": pack(
            ".jpg",
            {**full, "image": encode(picture(width, height), "JPEG"), "attributes.csv": b"image,people\n0000.jpg,2\n"},
        ),
        "exif-jpg": pack(".jpg", {**full, "image": encode(rotated, "JPEG", exif=exif.tobytes())}),
        "webp": pack(".webp", {**full, "image": encode(picture(width, height), "WEBP", lossless=True)}),
        "tif-16-bit": pack(".tif", {**full, "image": upload_seeds()["i16.tif"]}),
        "no-groups": pack(".png", {**full, "dataset.json": b'{"format": "onepass-dataset", "version": 1}'}),
    }
    return seeds
