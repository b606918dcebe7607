"""Uploaded bytes -> an RGB image, with limits, and an error a person can act on for bad uploads.

We decode ourselves rather than use BentoML's PIL input type, which answers a bad upload with a 500
(DESIGN.md, "Known pitfalls").
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class BadImage(ValueError):
    """An upload that is not a usable image; the message says what is wrong with it."""

    status = 400


class ImageTooLarge(BadImage):
    status = 413


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Bytes of any format Pillow reads -> an upright RGB image (EXIF orientation applied).

    Checks the size in the header before decoding any pixels, so a small file that claims enormous
    dimensions (a decompression bomb) is refused without allocating them.
    """
    if not data:
        raise BadImage("the uploaded file is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadImage(f"the upload ({len(data)} bytes) is not an image in a format Pillow can read") from None
    except Image.DecompressionBombError as error:  # over twice Pillow's own limit
        raise ImageTooLarge(f"the image is too large to decode ({error})") from None
    except Exception as error:  # Pillow's plugins raise many types on a broken header
        raise BadImage(f"the upload is not a readable image ({type(error).__name__}: {error})") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise BadImage(f"the image is {width}x{height} pixels; it needs at least one pixel")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels, over this server's limit of {max_pixels} "
            "(max_image_pixels); downscale it before uploading"
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except BadImage:
        raise
    except Exception as error:  # truncated or corrupt data surfaces from the decoder here
        raise BadImage(f"the {image.format} image could not be decoded ({type(error).__name__}: {error})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Deep greyscale is scaled down (Pillow's own convert clips it)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255):
            values = values / 257.0  # 16-bit range onto 8 bits
        elif image.mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0  # float images in [0, 1]
        grey = np.clip(np.round(values), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    # Alpha is dropped and transparent pixels keep their colour values, as the in-process Predictor
    # does (`image.convert("RGB")`): a camera frame has no meaningful transparency.
    if image.mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise BadImage(f"images in Pillow mode {image.mode!r} are not supported ({error})") from None
