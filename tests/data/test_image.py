"""The image decoder's own facts: its file names, its errors, its conversions of in-memory images,
`resize_to_input`. (Every mode and bad upload: tests/serve/test_images.py; every stage reading the
same pixels: tests/test_image_decoding.py.)"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from onepass.data.image import (
    IMAGE_EXTENSIONS,
    IMAGE_FORMATS,
    BadImage,
    ImageTooLarge,
    decode_image,
    resize_to_input,
    rgb_image,
)


def png(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def test_the_extensions_are_the_accepted_formats_file_names():
    """What the folder readers list is what the decoder opens: Pillow's extensions for IMAGE_FORMATS
    (and MPO, which Pillow's JPEG opener reads), each once."""
    Image.init()
    expected = {ext for ext, fmt in Image.registered_extensions().items() if fmt in (*IMAGE_FORMATS, "MPO")}
    assert sorted(IMAGE_EXTENSIONS) == sorted(expected)
    assert len(set(IMAGE_EXTENSIONS)) == len(IMAGE_EXTENSIONS)


def test_a_file_and_its_bytes_decode_alike(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(png(pixels))
    for source in (tmp_path / "a.png", str(tmp_path / "a.png"), (tmp_path / "a.png").read_bytes()):
        image = decode_image(source)
        assert image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_errors_name_the_input(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not a picture")
    (tmp_path / "folder.png").mkdir()
    cases = {
        tmp_path / "missing.png": r"missing.png: file not found$",
        tmp_path / "empty.png": r"empty.png is empty$",
        tmp_path / "folder.png": r"folder.png: cannot be read \(",
        tmp_path / "notes.jpg": r"notes.jpg is not a readable image: not an image in a format onepass accepts \(JPEG, "
        r"PNG, WEBP, AVIF, GIF, BMP, TIFF\)$",
    }
    for path, message in cases.items():
        with pytest.raises(BadImage, match=message) as error:
            decode_image(path)
        assert str(error.value).startswith(str(path)) and error.value.status == 400
    with pytest.raises(BadImage, match=r"^frame 3 \(4 bytes\) is not a readable image: .* format this camera accepts"):
        decode_image(b"\x00\x01\x02\x03", source="frame 3", reader="this camera")


def test_each_reader_names_its_own_pixel_limit():
    data = png(np.zeros((11, 10, 3), np.uint8))
    assert decode_image(data, max_pixels=110).size == (10, 11)
    with pytest.raises(ImageTooLarge, match=r"^the image is 10x11 = 110 pixels, over the limit of 109; downscale it$"):
        decode_image(data, max_pixels=109)
    with pytest.raises(ImageTooLarge, match=r"^f.png: 110 > 109 \(10 wide, 11 high\)$") as error:
        decode_image(data, 109, "f.png", too_large="{source}: {pixels} > {max_pixels} ({width} wide, {height} high)")
    assert error.value.status == 413 and isinstance(error.value, BadImage)


def test_a_palette_with_a_transparency_table_becomes_its_colours_without_a_warning():
    """P -> RGB warns about a tRNS table (Pillow: "should be converted to RGBA"); the colours are the
    palette's, with alpha dropped."""
    colours = np.array([[200, 10, 20], [0, 250, 5], [30, 40, 255]], np.uint8)
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    picture = Image.fromarray(indices, mode="P")
    picture.putpalette(colours.tobytes())
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", transparency=bytes([0, 128, 255]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decoded = decode_image(buffer.getvalue())
    np.testing.assert_array_equal(np.asarray(decoded), colours[indices])


def test_an_image_in_memory_is_turned_upright_and_an_rgb_one_is_not_copied():
    pixels = np.random.default_rng(1).integers(0, 256, (2, 3, 3), dtype=np.uint8)
    upright = Image.fromarray(pixels)
    assert rgb_image(upright) is upright
    exif = Image.Exif()
    exif[0x0112] = 6
    opened = Image.open(io.BytesIO(png(pixels, exif=exif.tobytes())))  # as a caller opens a file
    np.testing.assert_array_equal(np.asarray(rgb_image(opened)), np.rot90(pixels, k=-1))
    grey = Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16))
    np.testing.assert_array_equal(np.asarray(rgb_image(grey))[0, :, 0], [0, 100, 255])  # scaled, not clipped


def test_resize_to_input_is_the_same_for_an_array_and_its_image():
    pixels = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert resize_to_input(pixels, (30, 40)) is pixels  # already the size: no copy
    small = resize_to_input(pixels, (16, 24))
    assert small.shape == (16, 24, 3) and small.dtype == np.uint8
    np.testing.assert_array_equal(small, resize_to_input(Image.fromarray(pixels), (16, 24)))
    read_only = pixels.copy()
    read_only.flags.writeable = False
    np.testing.assert_array_equal(resize_to_input(read_only, (16, 24)), small)


@pytest.mark.parametrize(
    "source, size",
    [
        ((480, 640), (128, 160)),
        ((1080, 1920), (128, 160)),
        ((37, 53), (128, 160)),
        ((100, 300), (128, 160)),
        ((7, 5), (16, 24)),
    ],
)
def test_resize_to_input_gives_pillows_bilinear(source, size):
    """torch's uint8 kernel stands in for Pillow's BILINEAR (antialiased when shrinking, as training always
    resized): at most 1 grey level apart, on under 1 % of the values, when shrinking, enlarging, or both."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (*source, 3), dtype=np.uint8)
    pixels[: source[0] // 2] = np.linspace(0, 255, source[1]).astype(np.uint8)[None, :, None]  # a smooth half
    expected = np.asarray(Image.fromarray(pixels).resize(size[::-1], Image.Resampling.BILINEAR)).astype(int)
    difference = np.abs(resize_to_input(pixels, size).astype(int) - expected)
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.01
