"""Label codecs' decode: a file of the wrong format or kind is a LabelFileError naming it, never a label."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from onepass.data.codecs import DepthPngCodec, IndexedPngCodec, LabelFileError, NormalsPngCodec


def encode(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


IDS = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
# From fuzzing (fuzz/dataset.py, docs/robustness.md): a JPEG in normals/ was read as a normal map.
# Each of these has a mode the codec accepts, in a format it must not: the pixels would be wrong.
NOT_PNG = {
    "semseg JPEG": (IndexedPngCodec(), encode(Image.fromarray(IDS), "JPEG")),  # lossy: ids change
    "semseg GIF": (IndexedPngCodec(), encode(Image.fromarray(IDS).convert("P"), "GIF")),
    "depth TIFF": (DepthPngCodec(), encode(Image.fromarray(np.array([[-5, 2**30]], np.int32)), "TIFF")),
    "normals JPEG": (NormalsPngCodec(), encode(Image.new("RGB", (3, 2), (128, 128, 255)), "JPEG")),
    "normals WebP": (NormalsPngCodec(), encode(Image.new("RGB", (3, 2), (128, 128, 255)), "WEBP")),
}


@pytest.mark.parametrize("case", list(NOT_PNG))
def test_a_label_that_is_not_a_png_is_refused(case):
    codec, data = NOT_PNG[case]
    assert Image.open(io.BytesIO(data)).mode in ("L", "P", "I", "RGB")  # a mode the codec reads from a PNG
    with pytest.raises(LabelFileError, match=r"^labels/0007.png: not a readable PNG"):
        codec.decode(data, "labels/0007.png")


@pytest.mark.parametrize("codec", [IndexedPngCodec(), DepthPngCodec(), NormalsPngCodec()], ids=type)
@pytest.mark.parametrize(
    "data",
    [b"", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, b"GIF89a"],
    ids=["empty", "signature only", "zero chunk", "GIF header"],
)
def test_broken_files_are_refused(codec, data):
    with pytest.raises(LabelFileError, match=r"^x.png: not a readable PNG"):
        codec.decode(data, "x.png")


def test_a_truncated_label_is_refused():
    ids = np.random.default_rng(0).integers(0, 20, (40, 50)).astype(np.uint8)  # noise: pixel data is most of the file
    data = IndexedPngCodec().encode(ids)
    with pytest.raises(LabelFileError, match=r"^x.png: not a readable PNG"):
        IndexedPngCodec().decode(data[: len(data) // 2], "x.png")


def with_height(png: bytes, height: int) -> bytes:
    """The PNG with its IHDR height changed (and the chunk's CRC fixed): its data now ends early."""
    ihdr = bytearray(png[12:29])  # b"IHDR" + width, height, depth, colour type, ...
    ihdr[8:12] = struct.pack(">I", height)
    return png[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def test_pillow_zero_fills_a_png_whose_data_ends_on_a_row_boundary():
    """Why the header check below matters: Pillow reads such a file without an error (libpng refuses
    it). If this starts failing, Pillow refuses them now: update docs/robustness.md."""
    label = IndexedPngCodec().encode(IDS)
    decoded = IndexedPngCodec().decode(with_height(label, 5), "x.png")
    np.testing.assert_array_equal(decoded, np.concatenate([IDS, np.zeros((3, 3), np.uint8)]))


def test_a_label_claiming_a_hundred_million_pixels_is_refused_from_its_header():
    """From fuzzing (fuzz/dataset.py): a 7x5 label whose header says 7x16777216, a few hundred bytes
    that Pillow decoded to 117 M zero-filled pixels (with its image: 2.5 GB and 7.4 s of CPU)."""
    labels = {
        IndexedPngCodec(): np.zeros((5, 7), np.uint8),
        DepthPngCodec(): np.ones((5, 7), np.float32),
        NormalsPngCodec(): np.full((5, 7, 3), 0.5**0.5, np.float32) * [1, 0, 1],
    }
    for codec, array in labels.items():
        data = with_height(codec.encode(array), 16_777_216)
        assert len(data) < 1000
        with (
            pytest.warns(Image.DecompressionBombWarning),  # all Pillow does below twice its limit
            pytest.raises(LabelFileError, match=r"^x.png: 7x16777216 = 117440512 pixels, over the 89478485"),
        ):
            codec.decode(data, "x.png")
