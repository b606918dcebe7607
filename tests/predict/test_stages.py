"""The batch reader's decoding, against pixel values written out by hand (not against onepass itself)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from onepass.data.image import BadImage
from onepass.predict.stages import read_image
from tests.predict.conftest import reference_pixels

# A 2x3 RGB image, one distinct colour per pixel.
PIXELS = np.array(
    [
        [[10, 11, 12], [20, 21, 22], [30, 31, 32]],
        [[40, 41, 42], [50, 51, 52], [60, 61, 62]],
    ],
    np.uint8,
)
# The same image as a viewer shows it under EXIF orientation 6 (turned 90 degrees clockwise): 3x2,
# the bottom-left pixel at the top left, the top row down the right side.
TURNED = np.array(
    [
        [[40, 41, 42], [10, 11, 12]],
        [[50, 51, 52], [20, 21, 22]],
        [[60, 61, 62], [30, 31, 32]],
    ],
    np.uint8,
)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "turned.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(PIXELS).save(path, exif=exif)  # PNG: lossless, so the values can be compared exactly
    np.testing.assert_array_equal(np.asarray(read_image(str(path), 100)), TURNED)
    np.testing.assert_array_equal(reference_pixels(path), TURNED)  # the fixtures' reference agrees with the hand


@pytest.mark.parametrize(
    ("mode", "stored", "expected"),
    [
        ("L", [[0, 128, 255]], [[[0, 0, 0], [128, 128, 128], [255, 255, 255]]]),
        ("RGBA", [[[10, 20, 30, 0], [40, 50, 60, 255]]], [[[10, 20, 30], [40, 50, 60]]]),  # alpha dropped
        ("I;16", [[0, 257 * 100, 65535]], [[[0, 0, 0], [100, 100, 100], [255, 255, 255]]]),  # scaled, not clipped
    ],
)
def test_modes_become_rgb(tmp_path, mode, stored, expected):
    path = tmp_path / f"{mode.replace(';', '')}.png"
    picture = Image.fromarray(np.array(stored, np.uint16 if mode == "I;16" else np.uint8))
    assert picture.mode == mode
    picture.save(path)
    np.testing.assert_array_equal(np.asarray(read_image(str(path), 100)), np.array(expected, np.uint8))


def test_bad_files_are_refused_with_the_reason(tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((11, 10, 3), np.uint8)).save(big)
    with pytest.raises(BadImage, match="too large: 10x11 is 110 pixels, more than --max-pixels 100"):
        read_image(str(big), 100)
    with pytest.raises(BadImage, match="file not found"):
        read_image(str(tmp_path / "missing.png"), 100)
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(BadImage, match="not a readable image"):
        read_image(str(tmp_path / "text.png"), 100)
