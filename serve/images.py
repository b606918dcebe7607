"""Uploaded bytes -> an RGB image, with limits, and an error a person can act on for bad uploads.

We decode ourselves rather than use BentoML's PIL input type, which answers a bad upload with a 500
(DESIGN.md, "Known pitfalls").
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from onepass.errors import ConfigError
from onepass.runtime.predictor import pil_to_rgb


class BadImage(ValueError):
    """An upload that is not a usable image; the message says what is wrong with it."""

    status = 400


class ImageTooLarge(BadImage):
    status = 413


# The formats cameras, phones and browsers send. Pillow reads more, and not all of them safely for a
# server: ICO decodes its embedded PNG inside Image.open, before our size check (up to Pillow's own
# bomb limit, 4.5x our default), and EPS runs Ghostscript. See docs/robustness.md. (Pillow's
# JPEG opener also reads MPO, the multi-picture JPEG of phones and stereo cameras.)
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "GIF", "BMP", "TIFF")


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Bytes of an UPLOAD_FORMATS image -> an upright RGB image (EXIF orientation applied).

    Checks the size in the header before decoding any pixels, so a small file that claims enormous
    dimensions (a decompression bomb) is refused without allocating them.
    """
    if not data:
        raise BadImage("the uploaded file is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
    except UnidentifiedImageError:
        raise BadImage(
            f"the upload ({len(data)} bytes) is not an image in a format this server accepts "
            f"({', '.join(UPLOAD_FORMATS)})"
        ) from None
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
    """Any Pillow mode -> 8-bit RGB, exactly as the in-process Predictor converts it."""
    try:
        return pil_to_rgb(image, "the image")
    except ConfigError as error:
        raise BadImage(str(error)) from None
