"""File encodings of dense labels and predictions (DESIGN.md, "Data").

One codec per kind of dense map; the same encoding is used for dataset labels, for the files
`onepass predict` writes and for the PNGs that travel over HTTP, so a prediction can be read back
as a label. Every decoder validates what it reads and names the source in its error.
"""

from __future__ import annotations

import functools
import io
import struct
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
from PIL import Image

from onepass.data.image import MAX_IMAGE_PIXELS
from onepass.data.png import encode_png
from onepass.errors import UserError

IGNORE_INDEX = 255  # semseg pixels without a label
DEPTH_SCALE = 1000.0  # depth PNGs hold millimetres; 0 means "no measurement"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_FILE_PIXELS = MAX_IMAGE_PIXELS  # a dataset image or label: as many as any image onepass decodes
# The message for a dataset file over MAX_FILE_PIXELS (an image's, through data/image.py, or a label's).
FILE_TOO_LARGE = (
    "{source}: {width}x{height} = {pixels} pixels, over the {max_pixels} a dataset file may have; downscale it "
    "(training resizes every image to the model's input anyway)"
)


class LabelFileError(UserError, ValueError):
    """A label or image file is malformed; the message names the file and what is wrong."""


class Codec(Protocol):
    extension: ClassVar[str]
    description: ClassVar[str]  # how to read the file, for people (the /predict response says it)

    def encode(self, array: np.ndarray) -> bytes: ...

    def decode(self, data: bytes, source: str) -> np.ndarray: ...


def png_header_size(data: bytes) -> tuple[int, int] | None:
    """(H, W) from a PNG's header without decoding anything; None for data that is not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def check_pixels(image: Image.Image, source: str) -> None:
    """Refuses, from the header and before any pixel is decoded, an image larger than a dataset file
    needs: a PNG of a few hundred bytes can claim a hundred million pixels, and Pillow allocates them."""
    width, height = image.size
    if width * height > MAX_FILE_PIXELS:
        raise LabelFileError(
            FILE_TOO_LARGE.format(
                source=source, width=width, height=height, pixels=width * height, max_pixels=MAX_FILE_PIXELS
            )
        )


def _open_png(data: bytes, source: str) -> Image.Image:
    try:
        # PNG only: a JPEG class map would decode to wrong ids, a 32-bit TIFF to negative depth
        image = Image.open(io.BytesIO(data), formats=("PNG",))
    except Exception as error:  # PIL raises many types for bad files
        raise LabelFileError(f"{source}: not a readable PNG ({error})") from None
    check_pixels(image, source)
    try:
        image.load()
    except Exception as error:
        raise LabelFileError(f"{source}: not a readable PNG ({error})") from None
    return image


@functools.lru_cache(maxsize=8)
def palette(n: int) -> np.ndarray:
    """A fixed, well separated colour per class id (Pascal VOC's bit-interleaving scheme).

    Cached (every semseg PNG and picture needs it) and therefore read-only."""
    colours = np.zeros((max(n, 256), 3), np.uint8)
    for index in range(len(colours)):
        r = g = b = 0
        c = index + 1  # start at 1 so class 0 is not black
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours[index] = (r, g, b)
    colours[IGNORE_INDEX] = (0, 0, 0)
    colours.flags.writeable = False
    return colours


@dataclass(frozen=True)
class IndexedPngCodec:
    """Class ids as an 8-bit palette PNG (viewers show colours, readers get ids)."""

    extension: ClassVar[str] = ".png"
    description: ClassVar[str] = "indexed PNG: pixel value = class id (palette colours for viewing)"

    def encode(self, array: np.ndarray) -> bytes:
        if array.ndim != 2 or array.dtype != np.uint8:
            raise ValueError(f"class map must be (H, W) uint8, got {array.shape} {array.dtype}")
        return encode_png(array, palette(256))

    def decode(self, data: bytes, source: str) -> np.ndarray:
        image = _open_png(data, source)
        if image.mode not in ("P", "L"):
            raise LabelFileError(f"{source}: class map must be an indexed or 8-bit gray PNG, got mode {image.mode}")
        return np.asarray(image, dtype=np.uint8)


@dataclass(frozen=True)
class DepthPngCodec:
    """Metric depth as a 16-bit PNG in millimetres; 0 = no measurement (decoded as 0.0)."""

    extension: ClassVar[str] = ".png"
    description: ClassVar[str] = "16-bit greyscale PNG: millimetres (0 = no depth)"

    def encode(self, array: np.ndarray) -> bytes:
        if array.ndim != 2:
            raise ValueError(f"depth map must be (H, W), got {array.shape}")
        scaled = np.multiply(array, DEPTH_SCALE, dtype=np.float32)  # in place from here: 5x faster than chained
        np.rint(scaled, out=scaled)
        np.clip(scaled, 0, 65535, out=scaled)
        scaled[np.isnan(scaled)] = 0
        millimetres = scaled.astype(np.uint16)
        return encode_png(millimetres)

    def decode(self, data: bytes, source: str) -> np.ndarray:
        image = _open_png(data, source)
        if image.mode not in ("I;16", "I;16B", "I"):
            raise LabelFileError(f"{source}: depth must be a 16-bit PNG in millimetres, got mode {image.mode}")
        return np.asarray(image).astype(np.float32) / DEPTH_SCALE


@dataclass(frozen=True)
class NormalsPngCodec:
    """Unit normals as RGB = round((n + 1) * 127.5); (0, 0, 0) = no normal (decoded as zeros).

    No unit vector encodes to black ((-1,-1,-1)/sqrt(3) is (54, 54, 54)), so black is free to
    mean "missing".
    """

    extension: ClassVar[str] = ".png"
    description: ClassVar[str] = "RGB PNG: normal = rgb / 127.5 - 1 (camera space: x right, y up, z towards the camera)"

    def encode(self, array: np.ndarray) -> bytes:
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"normal map must be (H, W, 3), got {array.shape}")
        # (H, W); three strided compares: several times faster than any(axis=2) over 3 channels
        missing = (array[..., 0] == 0) & (array[..., 1] == 0) & (array[..., 2] == 0)
        rgb = np.clip(np.round((array + 1.0) * 127.5), 0, 255).astype(np.uint8)
        rgb[missing] = 0
        return encode_png(rgb)

    def decode(self, data: bytes, source: str) -> np.ndarray:
        image = _open_png(data, source)
        if image.mode != "RGB":
            raise LabelFileError(f"{source}: normals must be an RGB PNG, got mode {image.mode}")
        rgb = np.asarray(image)
        normals = rgb.astype(np.float32) / 127.5 - 1.0  # (H, W, 3)
        norm = np.linalg.norm(normals, axis=2, keepdims=True)
        normals = np.where(norm > 0.5, normals / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
        normals[~np.any(rgb != 0, axis=2)] = 0.0
        return normals


@dataclass(frozen=True)
class DensityPngCodec:
    """A non-negative density (a saliency map) as a 16-bit grey PNG scaled to its maximum; an all-zero
    image means "no label". Only the shape of a density matters, so the reader returns it scaled
    to sum to 1 (or all zeros)."""

    extension: ClassVar[str] = ".png"
    description: ClassVar[str] = "16-bit greyscale PNG: density relative to its maximum (divide by the sum)"

    def encode(self, array: np.ndarray) -> bytes:
        if array.ndim != 2:
            raise ValueError(f"density map must be (H, W), got {array.shape}")
        values = np.nan_to_num(np.asarray(array, np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(0.0, None)
        peak = values.max(initial=0.0)
        scaled = np.rint(values / peak * 65535.0) if peak > 0 else values
        return encode_png(scaled.astype(np.uint16))

    def decode(self, data: bytes, source: str) -> np.ndarray:
        image = _open_png(data, source)
        if image.mode not in ("I;16", "I;16B", "I", "L"):
            raise LabelFileError(
                f"{source}: a density map must be a greyscale PNG (16- or 8-bit), got mode {image.mode}"
            )
        values = np.asarray(image).astype(np.float64)
        if (values < 0).any():
            raise LabelFileError(f"{source}: a density map cannot be negative")
        total = values.sum()
        return (values / total if total > 0 else values).astype(np.float32)
