"""PNG writer: every supported kind decodes with Pillow to the same array and mode; bad input is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from onepass.data import png
from onepass.data.codecs import palette
from onepass.data.png import encode_png

# kind -> (dtype, trailing shape, with a palette, the mode Pillow decodes it as)
KINDS = {
    "grey8": (np.uint8, (), False, "L"),
    "indexed": (np.uint8, (), True, "P"),
    "grey16": (np.uint16, (), False, "I;16"),
    "rgb": (np.uint8, (3,), False, "RGB"),
}
SHAPES = [(1, 1), (1, 9), (9, 1), (5, 7), (33, 17), (48, 64)]


def decode(data: bytes) -> Image.Image:
    Image.open(io.BytesIO(data)).verify()  # chunk CRCs and structure
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def check_round_trip(array: np.ndarray, kind: str) -> None:
    _, _, with_palette, mode = KINDS[kind]
    colours = palette(256) if with_palette else None
    image = decode(encode_png(array, colours))
    assert image.mode == mode and image.size == (array.shape[1], array.shape[0])
    np.testing.assert_array_equal(np.asarray(image), array)
    if with_palette:
        np.testing.assert_array_equal(np.asarray(image.getpalette(), np.uint8).reshape(-1, 3), colours)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("fill", ["random", "zeros", "max"])
def test_round_trip(kind, shape, fill):
    dtype, trailing, _, _ = KINDS[kind]
    top = np.iinfo(dtype).max
    if fill == "random":
        array = np.random.default_rng(0).integers(0, top, shape + trailing, dtype=dtype, endpoint=True)
    else:
        array = np.full(shape + trailing, 0 if fill == "zeros" else top, dtype)
    check_round_trip(array, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_non_contiguous_input(kind):
    dtype, trailing, _, _ = KINDS[kind]
    array = np.random.default_rng(1).integers(0, 200, (20, 31) + trailing, dtype=dtype)
    check_round_trip(array[::2, 1::3], kind)  # strided view
    check_round_trip(np.asfortranarray(array), kind)


def test_large_values_wrap_in_the_up_filter():
    # Rows that alternate between 0 and the maximum make every Up difference wrap around.
    array = np.zeros((6, 5), np.uint16)
    array[::2] = 65535
    array[:, ::2] ^= 0x00FF  # and the low and high bytes differ
    check_round_trip(array, "grey16")


def test_image_split_over_several_idat_chunks(monkeypatch):
    monkeypatch.setattr(png, "_MAX_CHUNK", 7)
    array = np.random.default_rng(2).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    assert encode_png(array).count(b"IDAT") > 1
    check_round_trip(array, "rgb")


@pytest.mark.parametrize(
    ("array", "colours", "match"),
    [
        (np.zeros((4, 4), np.float32), None, r"must be \(H, W\) uint8, .* got \(4, 4\) float32"),
        (np.zeros((4, 4), np.int16), None, "got .* int16"),
        (np.zeros((4, 4, 3), np.uint16), None, r"got \(4, 4, 3\) uint16"),
        (np.zeros((4, 4, 4), np.uint8), None, r"got \(4, 4, 4\) uint8"),
        (np.zeros((4, 4, 1), np.uint8), None, r"got \(4, 4, 1\) uint8"),
        (np.zeros(4, np.uint8), None, r"got \(4,\) uint8"),
        (np.zeros((0, 4), np.uint8), None, "height and width must be 1 to"),
        (np.zeros((4, 0, 3), np.uint8), None, "height and width must be 1 to"),
        (np.broadcast_to(np.uint8(0), (1, 2**31)), None, "height and width must be 1 to 2147483647"),
        (np.zeros((4, 4), np.uint16), palette(256), r"palette needs an \(H, W\) uint8 index array"),
        (np.zeros((4, 4, 3), np.uint8), palette(256), r"palette needs an \(H, W\) uint8 index array"),
        (np.zeros((4, 4), np.uint8), palette(256)[:255], r"palette must be \(256, 3\) uint8, got \(255, 3\)"),
        (np.zeros((4, 4), np.uint8), palette(256).astype(np.int64), "palette must be .* int64"),
    ],
)
def test_bad_input_is_refused(array, colours, match):
    with pytest.raises(ValueError, match=match):
        encode_png(array, colours)
