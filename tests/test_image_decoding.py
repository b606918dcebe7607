"""One image decoder (data/image.py): training, int8 calibration, `onepass predict`, the server and the
Predictor read the same file to the same pixels, and feed the model the same input.

Each file is one that the stages used to read differently: 16-bit greyscale (training's
`convert("RGB")` clipped it to white, inference scaled it), a JPEG turned by EXIF, a palette PNG with
a transparency table. The expected pixels are written out without onepass's decoder."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import onepass
from onepass.data.folder import DatasetDescription, DatasetError, FolderDataset
from onepass.data.image import BadImage
from onepass.export.int8 import calibration_images
from onepass.models import MultiTaskModel, open_package, save_package
from onepass.predict.inputs import InputImage
from onepass.predict.stages import ImageReader, read_image
from onepass.serve.images import decode_upload
from onepass.serve.settings import ServeSettings
from onepass.train.dataset import TaskDataset
from tests.tiny import tiny_config

SIZE = (32, 64)  # (H, W) of every file as it is shown (the JPEG is stored 64x32, EXIF turns it); a model input size
MODEL_INPUT = (64, 32)  # the model input: every path resizes to it
SERVER_LIMIT = ServeSettings().max_image_pixels


def grey16(path: Path) -> np.ndarray:
    """Every 8-bit level times 257, so that scaling to 8 bits is exact: level k reads back as k."""
    levels = np.arange(SIZE[0] * SIZE[1]).reshape(SIZE) % 256
    Image.fromarray((levels * 257).astype(np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    return np.repeat(levels.astype(np.uint8)[..., None], 3, axis=2)


def exif_jpeg(path: Path) -> np.ndarray:
    stored = np.random.default_rng(1).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)  # sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to view
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    with Image.open(path) as image:  # Pillow's pixels as stored, turned by hand
        pixels = np.asarray(image.convert("RGB"))
    return np.rot90(pixels, k=-1)


def palette_with_alpha(path: Path) -> np.ndarray:
    colours = np.random.default_rng(2).integers(0, 256, (16, 3), dtype=np.uint8)
    indices = (np.arange(SIZE[0] * SIZE[1]).reshape(SIZE) * 7 % 16).astype(np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(colours.tobytes())
    image.save(path, transparency=bytes([0, 128, 255, 64] * 4))  # a tRNS table: alpha per palette entry
    assert Image.open(path).mode == "P" and isinstance(Image.open(path).info["transparency"], bytes)
    return colours[indices]  # alpha dropped, every pixel keeps its palette colour


FILES: dict[str, tuple[str, Callable[[Path], np.ndarray]]] = {
    "16-bit grey PNG": (".png", grey16),
    "EXIF-rotated JPEG": (".jpg", exif_jpeg),
    "palette PNG with alpha": (".png", palette_with_alpha),
}


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[tuple[int, int], Path]:
    """Tiny model packages by input size: one at the files' own size (resizing is then the identity,
    so a reader's output is its decoded pixels) and one at MODEL_INPUT."""
    found = {}
    for size in (SIZE, MODEL_INPUT):
        path = tmp_path_factory.mktemp(f"pkg{size[0]}x{size[1]}")
        torch.manual_seed(0)
        save_package(path, MultiTaskModel(dataclasses.replace(tiny_config(), input_size=size)).eval(), "tiny")
        found[size] = path
    return found


def dataset_with(tmp_path: Path, write: Callable[[Path], np.ndarray], suffix: str) -> tuple[Path, np.ndarray]:
    (tmp_path / "images").mkdir()
    (tmp_path / "dataset.json").write_text(json.dumps(DatasetDescription(()).to_json()))
    image = tmp_path / "images" / f"0000{suffix}"
    return image, write(image)


def every_reader(path: Path, packages: dict, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The (H, W, 3) uint8 model input each stage makes of the file, for a model of input `size`."""
    package = open_package(packages[size])
    predictor = onepass.load(packages[size], backend="torch", device="cpu")
    upload = decode_upload(path.read_bytes(), SERVER_LIMIT)
    inputs = {
        "training": TaskDataset(FolderDataset(path.parent.parent, {}), [], size)[0]["image"].numpy().transpose(1, 2, 0),
        "calibration": calibration_images(package, path.parent)[0],
        "predict": ImageReader(package)([InputImage("x", str(path))]).batch[0],
        "server": predictor.preprocess([upload])[0][0],  # what /predict gives the Predictor
        "Predictor": predictor.preprocess([Image.open(path)])[0][0],  # a file as a user opens it
    }
    if size == SIZE:  # the decoders' own results, before resizing
        inputs["dataset reader"] = FolderDataset(path.parent.parent, {})[0].image
        inputs["predict reader"] = np.asarray(read_image(str(path), 10**8))
        inputs["upload decoder"] = np.asarray(upload)
    return inputs


@pytest.mark.parametrize("kind", list(FILES))
def test_every_stage_decodes_a_file_to_the_same_pixels_and_model_input(tmp_path, packages, kind):
    suffix, write = FILES[kind]
    path, expected = dataset_with(tmp_path, write, suffix)
    decoded = every_reader(path, packages, SIZE)
    assert len(decoded) == 8
    for reader, pixels in decoded.items():
        assert pixels.shape == (*SIZE, 3) and pixels.dtype == np.uint8, reader
        np.testing.assert_array_equal(pixels, expected, err_msg=reader)
    model_inputs = every_reader(path, packages, MODEL_INPUT)
    reference = model_inputs.pop("training")
    assert reference.shape == (*MODEL_INPUT, 3)
    for reader, pixels in model_inputs.items():
        np.testing.assert_array_equal(pixels, reference, err_msg=reader)


def test_every_reader_refuses_a_format_outside_the_accepted_list(tmp_path, packages):
    """An icon named .png: Pillow reads it (and decodes its embedded PNG before any size check); no
    stage does, and each says so in its own error, naming the file."""
    path, _ = dataset_with(tmp_path, lambda p: Image.new("RGB", (16, 16)).save(p, format="ICO"), ".png")
    assert Image.open(path).format == "ICO"
    package = open_package(packages[MODEL_INPUT])
    message = r"0000.png is not a readable image: not an image in a format onepass accepts \(JPEG, PNG"
    with pytest.raises(DatasetError, match=message):
        FolderDataset(tmp_path, {})[0]
    with pytest.raises(BadImage, match=message):
        calibration_images(package, path.parent)
    with pytest.raises(BadImage, match=message):
        read_image(str(path), 10**8)
    (record,) = ImageReader(package)([InputImage("x", str(path))]).errors
    assert record["source"] == str(path) and "not an image in a format onepass accepts" in record["error"]
    with pytest.raises(BadImage, match=r"the upload \(\d+ bytes\) is not a readable image: .* this server accepts"):
        decode_upload(path.read_bytes(), SERVER_LIMIT)
