"""Upload decoding: every common mode becomes the right RGB picture; every bad file a clear BadImage."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from onepass.serve.images import BadImage, ImageTooLarge, decode_image
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
