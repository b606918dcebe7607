"""Test images: synthetic scenes (the shipped model's domain) and broken or unusual files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from onepass.data.synth import render_scene


def scene(seed: int, height: int = 150, width: int = 200) -> Image.Image:
    return Image.fromarray(render_scene(np.random.default_rng(seed), height, width).image)


def encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (its data is far too short)."""
    data = bytearray(encode(Image.new("L", (1, 1))))
    ihdr = 8  # after the signature: length (4), b"IHDR" (4), width, height, ...
    assert data[ihdr + 4 : ihdr + 8] == b"IHDR"
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 8 + 13]))
    data[ihdr + 8 + 13 : ihdr + 8 + 17] = struct.pack(">I", crc)
    return bytes(data)


def exif_rotated_jpeg(image: Image.Image, orientation: int = 6) -> bytes:
    """A JPEG stored sideways with an EXIF orientation tag (6: display rotated 90° clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def mode_variants(image: Image.Image) -> dict[str, bytes]:
    """The same picture in the common modes and formats an upload arrives in."""
    rgb = image.convert("RGB")
    grey16 = Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257).astype(np.uint16))
    return {
        "RGB PNG": encode(rgb),
        "RGBA PNG": encode(rgb.convert("RGBA")),
        "L PNG": encode(rgb.convert("L")),
        "P PNG": encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE)),
        "I;16 PNG": encode(grey16),
        "CMYK JPEG": encode(rgb.convert("CMYK"), "JPEG", quality=95),
        "RGB JPEG": encode(rgb, "JPEG", quality=95),
        "WEBP": encode(rgb, "WEBP", lossless=True),
        "BMP": encode(rgb, "BMP"),
    }
