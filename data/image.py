"""The one image decoder: bytes or a file -> an upright 8-bit RGB image, and how an image meets the model.

Training and evaluation (the folder dataset), int8 calibration, `onepass predict`, the server, the
Predictor and the benchmarks all decode here, so a model trains, calibrates and serves on the same
pixels:

- only IMAGE_FORMATS are opened, whatever a file's name says (the list was found by fuzzing the
  upload decoder: docs/robustness.md);
- the size in the header is checked before any pixel is decoded (a small file can claim a hundred
  million pixels, and Pillow allocates them);
- EXIF orientation is applied;
- every Pillow mode becomes 8-bit RGB: 16- and 32-bit greyscale and [0, 1] float are scaled
  (Pillow's own `convert("RGB")` clips them), alpha is dropped.

The result is a PIL image in mode "RGB" rather than an array: the Predictor resizes it as it is
(`resize_to_input`), so serving and predicting copy no full-size array before resizing; the dataset
reader takes `np.asarray` of it. Every failure is a BadImage (HTTP 400; ImageTooLarge, 413) whose
message starts with the input's name.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from onepass.errors import UserError

MAX_IMAGE_PIXELS = 89_478_485  # ~9459x9459: Pillow's own decompression-bomb warning threshold
# The formats cameras, phones and browsers send. Pillow reads more, and not all of them safely: ICO
# decodes its embedded PNG inside Image.open, before the size check, and EPS runs Ghostscript
# (docs/robustness.md). Pillow's JPEG opener also reads MPO, the multi-picture JPEG of phones.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "GIF", "BMP", "TIFF")
# The file names those formats have (Pillow's registered extensions for them, MPO's included); the
# folder readers (dataset, calibration, `onepass predict`) list these files.
IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".jpe", ".jfif", ".mpo", ".apng", ".avif", ".avifs", ".gif",
)  # fmt: skip
# The message for an image over `max_pixels`; each reader names its own limit, so the message says the fix.
TOO_LARGE = "{source} is {width}x{height} = {pixels} pixels, over the limit of {max_pixels}; downscale it"
_DEEP_GREY_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
_ORIENTATION = 0x0112  # the EXIF tag


class BadImage(UserError, ValueError):
    """An image that cannot be used; the message names it and says what is wrong. `status` is the
    HTTP status the server answers with."""

    status = 400


class ImageTooLarge(BadImage):
    status = 413


def decode_image(
    data_or_path: bytes | str | os.PathLike,
    max_pixels: int = MAX_IMAGE_PIXELS,
    source: str | None = None,
    *,
    reader: str = "onepass",
    too_large: str = TOO_LARGE,
) -> Image.Image:
    """An image file's bytes, or its path -> an upright RGB image of 1 to `max_pixels` pixels.

    `source` names the input in errors (default: the path, or "the image"); `reader` says who refuses
    a format ("this server"); `too_large` is the message for an image over `max_pixels`, formatted with
    source, width, height, pixels and max_pixels.
    """
    if isinstance(data_or_path, bytes | bytearray | memoryview):
        source = source or "the image"
        if not len(data_or_path):
            raise BadImage(f"{source} is empty")
        return _decode(io.BytesIO(data_or_path), max_pixels, source, reader, too_large, f" ({len(data_or_path)} bytes)")
    path = os.fspath(data_or_path)
    source = source or str(path)
    try:
        file = open(path, "rb")  # closed below: Pillow does not close a file it is given
    except FileNotFoundError:
        raise BadImage(f"{source}: file not found") from None
    except OSError as error:  # a folder, no permission...
        raise BadImage(f"{source}: cannot be read ({error.strerror or error})") from None
    with file:
        if os.fstat(file.fileno()).st_size == 0:
            raise BadImage(f"{source} is empty")
        # decoded before the file closes: the image holds its pixels, not the file
        return _decode(file, max_pixels, source, reader, too_large, "")


def rgb_image(image: Image.Image, source: str = "the image") -> Image.Image:
    """A PIL image a caller already holds (any mode, maybe with an EXIF orientation) -> upright 8-bit RGB,
    converted exactly as `decode_image` converts a file. Returns `image` itself when nothing changes."""
    try:
        image.load()  # an image from Image.open decodes here; nothing to do for one in memory
    except Exception as error:  # Pillow raises many types for broken data
        raise BadImage(f"{source} could not be decoded ({type(error).__name__}: {error})") from None
    return _to_rgb(_upright(image), source)


def resize_to_input(image: np.ndarray | Image.Image, size: tuple[int, int]) -> np.ndarray:
    """An RGB image (PIL, or (h, w, 3) uint8) -> (H, W, 3) uint8 at `size` by bilinear resizing: how
    images are fed to the model in training, evaluation, calibration and every backend.

    Pillow's BILINEAR (antialiased when shrinking), computed by torch's uint8 kernel for it
    (`interpolate(..., antialias=True)` on a channels-last uint8 tensor, vectorised), which gives
    Pillow's values to within 1 grey level on a few values in 100,000 (tests/data/test_image.py),
    4x faster than Pillow on a 480x640 frame (2.7 -> 0.6 ms here)."""
    if isinstance(image, Image.Image):
        if image.size == (size[1], size[0]):
            return np.asarray(image)
        image = np.array(image)  # a writable copy: torch does not take read-only memory
    elif image.shape[:2] == size:
        return image
    elif not image.flags.writeable:
        image = image.copy()
    import torch  # here, not at the top: decoding alone (the server's upload check) needs no torch
    import torch.nn.functional as F

    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]  # (1, 3, h, w), channels last
    resized = F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)
    return resized[0].permute(1, 2, 0).numpy()


def _decode(file: BinaryIO, max_pixels: int, source: str, reader: str, too_large: str, size_note: str) -> Image.Image:
    try:
        image = Image.open(file, formats=IMAGE_FORMATS)
    except UnidentifiedImageError:
        raise BadImage(
            f"{source}{size_note} is not a readable image: not an image in a format {reader} accepts "
            f"({', '.join(IMAGE_FORMATS)})"
        ) from None
    except Image.DecompressionBombError as error:  # over twice Pillow's own limit
        raise ImageTooLarge(f"{source} is too large to decode ({error})") from None
    except Exception as error:  # Pillow's plugins raise many types on a broken header
        raise BadImage(f"{source} is not a readable image ({type(error).__name__}: {error})") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise BadImage(f"{source} is {width}x{height} pixels; it needs at least one pixel")
    if width * height > max_pixels:
        raise ImageTooLarge(
            too_large.format(source=source, width=width, height=height, pixels=width * height, max_pixels=max_pixels)
        )
    try:
        image.load()
        return _to_rgb(_upright(image), source)
    except BadImage:
        raise
    except Exception as error:  # truncated or corrupt data surfaces from the decoder here
        raise BadImage(
            f"{source} is a {image.format} image that could not be decoded ({type(error).__name__}: {error})"
        ) from None


def _upright(image: Image.Image) -> Image.Image:
    """EXIF orientation applied (ImageOps.exif_transpose copies even an upright image: only when needed)."""
    if image.getexif().get(_ORIENTATION, 1) in range(2, 9):
        return ImageOps.exif_transpose(image)
    return image


def _to_rgb(image: Image.Image, source: str) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Deep greyscale is scaled down (Pillow's own convert clips it).

    Alpha is dropped and transparent pixels keep their colour values: a camera frame has no
    meaningful transparency."""
    if image.mode in _DEEP_GREY_MODES:
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255):
            values = values / 257.0  # 16-bit range onto 8 bits
        elif image.mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0  # float images in [0, 1]
        grey = np.clip(np.round(values), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        # the same colours as P -> RGB, without Pillow's warning about a palette's transparency table
        image = image.convert("RGBA")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise BadImage(f"{source}: images in Pillow mode {image.mode!r} are not supported ({error})") from None
