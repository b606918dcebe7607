"""Upload decoding: every common mode becomes the right RGB picture; every bad file a clear BadImage."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from onepass.data.image import BadImage, ImageTooLarge
from onepass.serve.images import decode_upload as decode_image
from tests.serve.samples import bomb_png, encode, exif_rotated_jpeg, mode_variants, scene

LIMIT = 40_000_000


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return scene(3, 60, 80)


@pytest.mark.parametrize("variant", list(mode_variants(Image.new("RGB", (8, 8)))))
def test_every_common_mode_decodes_to_the_same_picture(picture, variant):
    data = mode_variants(picture)[variant]
    decoded = decode_image(data, LIMIT)
    assert decoded.mode == "RGB" and decoded.size == picture.size
    expected = np.asarray(picture.convert("L") if variant in ("L PNG", "I;16 PNG") else picture, np.float32)
    actual = np.asarray(decoded.convert("L") if variant in ("L PNG", "I;16 PNG") else decoded, np.float32)
    lossy = {"CMYK JPEG": 12.0, "RGB JPEG": 10.0, "P PNG": 12.0}  # mean abs error of the encoding itself
    assert np.abs(actual - expected).mean() <= lossy.get(variant, 0.5)


def test_16_bit_greyscale_is_scaled_not_clipped():
    ramp = (np.arange(256, dtype=np.uint16)[None, :].repeat(4, axis=0) * 257).astype(np.uint16)
    decoded = np.asarray(decode_image(encode(Image.fromarray(ramp)), LIMIT))
    assert decoded[..., 0].tolist() == [list(range(256))] * 4  # Pillow's convert("RGB") would clip to 255


def test_exif_orientation_is_applied(picture):
    decoded = decode_image(exif_rotated_jpeg(picture, orientation=6), LIMIT)
    assert decoded.size == (picture.height, picture.width)  # rotated 90° to stand upright
    # the same JPEG pixels without the tag, turned by hand: identical once rotated
    stored = Image.open(io.BytesIO(encode(picture, "JPEG", quality=95)))
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(stored.transpose(Image.Transpose.ROTATE_270)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
        (encode(Image.new("RGB", (64, 64), "red"))[:60], "could not be decoded"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not"),
    ],
    ids=["empty", "text", "truncated", "corrupt header"],
)
def test_bad_files_raise_bad_image(data, message):
    with pytest.raises(BadImage, match=message):
        decode_image(data, LIMIT)


@pytest.mark.parametrize("size", [(8000, 8000), (100_000, 100_000)], ids=["over our limit", "over Pillow's"])
def test_decompression_bombs_are_refused_from_the_header(size):
    with pytest.raises(ImageTooLarge) as error:
        decode_image(bomb_png(*size), LIMIT)
    assert error.value.status == 413
    assert "too large" in str(error.value) or "over this server's limit" in str(error.value)


# From fuzzing and reviewing its results (fuzz/upload.py, docs/robustness.md).


def ico_with_png(claimed: int, actual: tuple[int, int]) -> bytes:
    """An ICO whose directory says claimed x claimed but whose embedded PNG is `actual` (W, H)."""
    png = encode(Image.new("L", actual))
    directory = struct.pack("<BBBBHHII", claimed, claimed, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + directory + png


def test_an_ico_is_refused_before_pillow_decodes_its_embedded_png():
    """Pillow's ICO plugin decodes the embedded PNG inside Image.open, so a 16x16 icon holding a
    picture over the server's limit (up to Pillow's own, 4.5x the default) was decoded, memory and
    all, before the size check could refuse it."""
    data = ico_with_png(claimed=16, actual=(300, 200))
    with pytest.warns(UserWarning, match="not the expected size"):  # Image.open alone decodes the PNG
        assert Image.open(io.BytesIO(data)).size == (300, 200)
    with pytest.raises(BadImage, match="not an image in a format this server accepts") as error:
        decode_image(data, max_pixels=1000)
    assert type(error.value) is BadImage and error.value.status == 400


@pytest.mark.parametrize(
    ("format", "options"),
    [
        ("GIF", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
        ("AVIF", {"quality": 100}),
        ("MPO", {"quality": 95, "save_all": True, "append_images": [Image.new("RGB", (80, 60))]}),
    ],
)
def test_other_accepted_formats_decode(picture, format, options):
    data = encode(picture, format, **options)
    assert Image.open(io.BytesIO(data)).format == format
    decoded = decode_image(data, LIMIT)
    assert decoded.mode == "RGB" and decoded.size == picture.size
    lossy = {"GIF": 25.0, "AVIF": 12.0, "MPO": 10.0}  # mean abs error of the encoding itself (GIF: 256 colours)
    error = np.abs(np.asarray(decoded, np.float32) - np.asarray(picture, np.float32)).mean()
    assert error <= lossy.get(format, 0.5)


@pytest.mark.parametrize("format", ["ICO", "PPM", "TGA", "PCX", "SGI", "DDS"])
def test_formats_outside_the_accepted_list_are_refused(picture, format):
    data = encode(picture.convert("RGBA") if format == "DDS" else picture, format)
    assert Image.open(io.BytesIO(data)).format == format  # Pillow reads it; the server does not
    with pytest.raises(BadImage, match=r"not an image in a format this server accepts \(JPEG, PNG"):
        decode_image(data, LIMIT)


def test_eps_never_reaches_ghostscript():
    """EPS is read by running Ghostscript, a program with a long record of exploitable bugs."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n%%EOF\n"
    assert Image.open(io.BytesIO(eps)).format == "EPS"
    with pytest.raises(BadImage, match="not an image in a format this server accepts"):
        decode_image(eps, LIMIT)
