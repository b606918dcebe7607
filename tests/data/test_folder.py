"""Folder dataset reader: labels round trip, missing labels, and clear errors for malformed data."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from onepass.data.codecs import DepthPngCodec, IndexedPngCodec, NormalsPngCodec
from onepass.data.folder import DatasetError, FolderDataset
from tests.data.test_codecs import with_height
from tests.tiny import CODECS, random_labels, write_random_dataset


def test_round_trip_of_every_label(tmp_path):
    root = write_random_dataset(tmp_path / "d", n=3)
    dataset = FolderDataset(root, CODECS)
    assert len(dataset) == 3 and dataset.ids == ["0000", "0001", "0002"]
    image, dense, attributes = random_labels(np.random.default_rng(0), 48, 64)
    sample = dataset[0]
    np.testing.assert_array_equal(sample.image, image)
    np.testing.assert_array_equal(sample.maps["semseg"], dense["semseg"])
    np.testing.assert_allclose(sample.maps["depth"], dense["depth"], atol=5e-4)  # millimetre rounding
    np.testing.assert_allclose(sample.maps["normals"], dense["normals"], atol=0.01)  # 8-bit rounding
    assert sample.attributes == attributes


def test_missing_labels_are_none(tmp_path):
    root = write_random_dataset(tmp_path / "d", n=3, drop={"depth": [1], "attributes": [2]})
    dataset = FolderDataset(root, CODECS)
    assert dataset[1].maps["depth"] is None and dataset[1].maps["semseg"] is not None
    assert dataset[2].attributes == {"people": None, "facing": None}


def test_missing_dataset_json(tmp_path):
    root = write_random_dataset(tmp_path / "d", n=1)
    (root / "dataset.json").unlink()
    with pytest.raises(DatasetError, match="dataset.json: missing"):
        FolderDataset(root, CODECS)


def test_wrong_version(tmp_path):
    root = write_random_dataset(tmp_path / "d", n=1)
    data = json.loads((root / "dataset.json").read_text())
    data["version"] = 5
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="unsupported dataset version 5"):
        FolderDataset(root, CODECS)


def test_label_of_the_wrong_size_names_the_file(tmp_path):
    root = write_random_dataset(tmp_path / "d", n=2)
    (root / "depth" / "0001.png").write_bytes(DepthPngCodec().encode(np.ones((10, 10), np.float32)))
    dataset = FolderDataset(root, CODECS)
    with pytest.raises(DatasetError, match=r"depth/0001.png: label is 10x10 \(WxH\) but its image is 64x48"):
        dataset[1]


def test_wrong_png_kind_names_the_file(tmp_path):
    root = write_random_dataset(tmp_path / "d", n=1)
    Image.new("RGB", (64, 48)).save(root / "depth" / "0000.png")
    with pytest.raises(DatasetError, match="depth/0000.png: depth must be a 16-bit PNG"):
        FolderDataset(root, CODECS)[0]
    (root / "semseg" / "0000.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="semseg/0000.png: not a readable PNG"):
        FolderDataset(root, {"semseg": IndexedPngCodec()})[0]


def test_no_images(tmp_path):
    root = write_random_dataset(tmp_path / "d", n=1)
    (root / "images" / "0000.png").unlink()
    with pytest.raises(DatasetError, match="images: no images"):
        FolderDataset(root, CODECS)


@pytest.mark.parametrize("codec", [IndexedPngCodec(), DepthPngCodec(), NormalsPngCodec()], ids=type)
def test_codecs_round_trip(codec):
    rng = np.random.default_rng(1)
    if isinstance(codec, IndexedPngCodec):
        array = rng.integers(0, 256, (5, 7)).astype(np.uint8)
        np.testing.assert_array_equal(codec.decode(codec.encode(array), "x"), array)
    elif isinstance(codec, DepthPngCodec):
        array = rng.uniform(0, 60, (5, 7)).astype(np.float32)
        np.testing.assert_allclose(codec.decode(codec.encode(array), "x"), array, atol=5e-4)
    else:
        array = rng.normal(size=(5, 7, 3)).astype(np.float32)
        array /= np.linalg.norm(array, axis=2, keepdims=True)
        array[0, 0] = 0  # missing
        array[0, 1] = -0.0  # missing too: -0.0 == 0
        decoded = codec.decode(codec.encode(array), "x")
        np.testing.assert_allclose(decoded, array, atol=0.01)
        assert not decoded[0, :2].any()


# Regression tests from fuzzing (fuzz/dataset.py, docs/robustness.md): each input made the reader raise
# something other than a DatasetError naming the file.


@pytest.mark.parametrize(
    "content",
    [b"9" * 4301, b"[" * 100_000, b"\xff\xfe{}", b'{"format": "onepass-dataset", "version": 1e999999}'],
    ids=["int over 4300 digits", "nested too deep", "not utf-8", "huge float"],
)
def test_unreadable_dataset_json_names_the_file(tmp_path, content):
    root = write_random_dataset(tmp_path / "d", n=1)
    (root / "dataset.json").write_bytes(content)
    with pytest.raises(DatasetError, match=r"dataset.json: (not valid JSON|unsupported dataset version)"):
        FolderDataset(root, CODECS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n", r"attributes.csv: not UTF-8 text"),
        (b"image,people\n" + b"x" * 131_073 + b"\n", r"attributes.csv, line 2: not a readable CSV file \(field larger"),
        (b'"' + b"x" * 131_073, r"attributes.csv, line 1: not a readable CSV file \(field larger"),
        (b"image,people\n,1\n", r"attributes.csv, line 2: the 'image' cell is '', not an image file name"),
        (b"image,people\n/,1\n", r"attributes.csv, line 2: the 'image' cell is '/', not an image file name"),
        (b"people,image\n1\n", r"attributes.csv, line 2: the 'image' cell is '', not an image file name"),
        (b"image,people\n0000.png,1,2\n", r"attributes.csv, line 2: 3 cells but the header has 2 columns"),
        (
            b"image,people,facing\n0000.png,1,yes\n0001.png,9,no\n",
            r"attributes.csv, line 3: '9' is not a class of group 'people'",
        ),
        (b"image,people,mood\n0000.png,1,happy\n", r"columns \['mood'\] are not attribute groups"),
        (b"image,people\nmissing.png,1\n", "image 'missing.png' is not in images/"),
    ],
    ids=[
        "not utf-8",
        "huge cell",
        "huge header",
        "empty image",
        "image '/'",
        "short row",
        "extra cell",
        "unknown class",
        "unknown group",
        "unknown image",
    ],  # fmt: skip
)
def test_bad_attributes_csv_names_file_and_line(tmp_path, content, message):
    root = write_random_dataset(tmp_path / "d", n=2)
    (root / "attributes.csv").write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        FolderDataset(root, CODECS)


def test_byte_order_marks_are_accepted(tmp_path):
    """Windows editors and spreadsheet programs start UTF-8 files with one."""
    root = write_random_dataset(tmp_path / "d", n=1)
    for name in ("dataset.json", "attributes.csv"):
        (root / name).write_bytes(b"\xef\xbb\xbf" + (root / name).read_bytes())
    dataset = FolderDataset(root, CODECS)
    assert dataset.description.classes and dataset[0].attributes["people"] is not None


def test_an_image_claiming_a_hundred_million_pixels_is_refused_from_its_header(tmp_path):
    """From fuzzing: Pillow zero-fills what a tiny PNG's header claims when its data ends on a row
    boundary; this 7x5 image read as 7x16777216 took 1.6 GB."""
    root = write_random_dataset(tmp_path / "d", n=1)
    image = Image.new("RGB", (7, 5), "red")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    (root / "images" / "0000.png").write_bytes(with_height(buffer.getvalue(), 16_777_216))
    with (
        pytest.warns(Image.DecompressionBombWarning),  # all Pillow does below twice its limit
        pytest.raises(DatasetError, match=r"images/0000.png: 7x16777216 = 117440512 pixels, over the 89478485"),
    ):
        FolderDataset(root, {})[0]


@dataclass(frozen=True)
class UndecodableNormals(NormalsPngCodec):
    def decode(self, data: bytes, source: str) -> np.ndarray:
        raise AssertionError(f"{source} was decoded")


def test_a_label_of_the_wrong_size_is_refused_from_its_header(tmp_path):
    """From fuzzing: a normals label whose header says 7x4128773 (its data ends early; Pillow zero-fills
    the rest) was decoded, 2.1 GB and 6.8 s of CPU, before its size was compared with its image's."""
    root = write_random_dataset(tmp_path / "d", n=1)
    label = root / "normals" / "0000.png"
    label.write_bytes(with_height(label.read_bytes(), 4_128_773))
    with pytest.raises(DatasetError, match=r"normals/0000.png: label is 64x4128773 \(WxH\) but its image is 64x48"):
        FolderDataset(root, {"normals": UndecodableNormals()})[0]
