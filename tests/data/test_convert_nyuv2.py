"""`onepass data convert nyuv2-mtan` on a generated tree in exactly mtan's layout: the files have the
shapes mtan's loader (lorenmt/mtan, im2im_pred/create_dataset.py) reads, with invalid pixels of every
kind; the folder dataset that comes out holds the same labels, and a missing or wrong file is one
clear error naming its path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onepass.cli import main
from onepass.data.convert import ConvertError, convert
from onepass.data.convert.nyuv2_mtan import NYUV2_CLASSES
from onepass.data.folder import FolderDataset
from onepass.train.config import TrainConfig, read_config_file
from tests.tiny import CODECS

HEIGHT, WIDTH = 288, 384
REPOSITORY = Path(__file__).resolve().parents[2]


def write_mtan_tree(root: Path, counts: dict[str, int], dtype=np.float32, seed: int = 0) -> Path:
    """{train,val}/{image,label,depth,normal}/{i}.npy as mtan's preprocessed NYUv2 has them."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        for folder in ("image", "label", "depth", "normal"):
            (root / split / folder).mkdir(parents=True)
        for i in range(count):
            image = rng.random((HEIGHT, WIDTH, 3)).astype(dtype)  # RGB in [0, 1]
            label = rng.integers(-1, len(NYUV2_CLASSES), (HEIGHT, WIDTH)).astype(dtype)  # -1 = no label
            depth = rng.uniform(0.5, 10.0, (HEIGHT, WIDTH, 1)).astype(dtype)
            depth[:20] = 0.0  # invalid rows, as the Kinect's top rows often are
            normal = rng.normal(size=(HEIGHT, WIDTH, 3))
            normal = (normal / np.linalg.norm(normal, axis=2, keepdims=True)).astype(dtype)
            normal[:, :30] = 0.0  # no normal
            for folder, array in (("image", image), ("label", label), ("depth", depth), ("normal", normal)):
                np.save(root / split / folder / f"{i}.npy", array)
    return root


def mtan_loader(root: Path, split: str, index: int) -> tuple[np.ndarray, ...]:
    """What mtan's NYUv2 dataset returns for (split, index), in numpy: (3, H, W), (H, W), (1, H, W), (3, H, W)."""
    path = root / split
    image = np.moveaxis(np.load(path / "image" / f"{index}.npy"), -1, 0)
    semantic = np.load(path / "label" / f"{index}.npy")
    depth = np.moveaxis(np.load(path / "depth" / f"{index}.npy"), -1, 0)
    normal = np.moveaxis(np.load(path / "normal" / f"{index}.npy"), -1, 0)
    return image.astype(np.float32), semantic.astype(np.float32), depth.astype(np.float32), normal.astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_folder_dataset_holds_what_mtans_loader_reads(tmp_path, dtype):
    src = write_mtan_tree(tmp_path / "nyuv2", {"train": 3, "val": 2}, dtype)
    report = convert("nyuv2-mtan", src, tmp_path / "out")
    assert "3 images" in report and "2 images" in report
    for split, count in (("train", 3), ("val", 2)):
        folder = FolderDataset(tmp_path / "out" / split, CODECS)
        assert folder.description.classes == NYUV2_CLASSES
        assert len(folder) == count
        for index in range(count):
            image, semantic, depth, normal = mtan_loader(src, split, index)
            assert image.shape == (3, HEIGHT, WIDTH) and semantic.shape == (HEIGHT, WIDTH)
            assert depth.shape == (1, HEIGHT, WIDTH) and normal.shape == (3, HEIGHT, WIDTH)
            sample = folder[folder.ids.index(f"{index:04d}")]
            np.testing.assert_allclose(sample.image / 255.0, np.moveaxis(image, 0, -1), atol=0.5 / 255 + 1e-6)
            ignored = semantic == -1
            assert ignored.any()
            assert (sample.maps["semseg"][ignored] == 255).all()
            assert (sample.maps["semseg"][~ignored] == semantic[~ignored]).all()
            invalid = depth[0] == 0
            assert (sample.maps["depth"][invalid] == 0).all() and (sample.maps["depth"][~invalid] > 0).all()
            np.testing.assert_allclose(sample.maps["depth"], depth[0], atol=0.5e-3 + 1e-6)  # millimetre rounding
            truth = np.moveaxis(normal, 0, -1)
            labelled = np.any(truth != 0, axis=2)
            assert (sample.maps["normals"][~labelled] == 0).all()
            cosine = np.clip((sample.maps["normals"][labelled] * truth[labelled]).sum(axis=1), -1, 1)
            assert np.degrees(np.arccos(cosine)).max() < 0.6  # 8 bits a component


def test_a_missing_file_is_one_error_naming_its_path(tmp_path, capsys):
    src = write_mtan_tree(tmp_path / "nyuv2", {"train": 2, "val": 2})
    missing = src / "val" / "depth" / "1.npy"
    missing.unlink()
    with pytest.raises(ConvertError, match="missing") as caught:
        convert("nyuv2-mtan", src, tmp_path / "out")
    assert str(missing) in str(caught.value)
    assert main(["data", "convert", "nyuv2-mtan", str(src), str(tmp_path / "out2")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("onepass data convert nyuv2-mtan: error: ") and error.count("\n") == 1  # before any work
    assert str(missing) in error


@pytest.mark.parametrize(
    ("folder", "bad", "message"),
    [
        ("label", lambda a: np.where(a == 3, 13, a), "not class ids 0..12 or -1"),
        ("depth", lambda a: a - 20.0, "expected finite metres"),
        ("normal", lambda a: a * 3.0, "not unit vectors"),
        ("image", lambda a: a * 255.0, "floats in \\[0, 1\\]"),
        ("depth", lambda a: a[:, :-1], "needs \\(288, 384, 1\\)"),
    ],
)
def test_values_mtan_never_writes_are_refused_by_file(tmp_path, folder, bad, message):
    src = write_mtan_tree(tmp_path / "nyuv2", {"train": 1, "val": 1})
    path = src / "train" / folder / "0.npy"
    np.save(path, bad(np.load(path)))
    with pytest.raises(ConvertError, match=message) as caught:
        convert("nyuv2-mtan", src, tmp_path / "out")
    assert str(path) in str(caught.value)


def test_a_pickle_is_never_loaded(tmp_path):
    src = write_mtan_tree(tmp_path / "nyuv2", {"train": 1, "val": 1})
    path = src / "val" / "normal" / "0.npy"
    np.save(path, np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    with pytest.raises(ConvertError, match="not a readable .npy array") as caught:
        convert("nyuv2-mtan", src, tmp_path / "out")
    assert str(path) in str(caught.value)


def test_an_existing_dataset_is_not_overwritten(tmp_path):
    src = write_mtan_tree(tmp_path / "nyuv2", {"train": 1, "val": 1})
    convert("nyuv2-mtan", src, tmp_path / "out")
    with pytest.raises(ConvertError, match="already a dataset"):
        convert("nyuv2-mtan", src, tmp_path / "out")


def test_the_nyuv2_preset_follows_the_protocol(tmp_path):
    values = read_config_file(REPOSITORY / "configs" / "nyuv2.yaml")
    config = TrainConfig.from_mapping(values)
    assert config.model.input_size == (288, 384) and config.model.encoder == "resnet50" and config.model.pretrained_file
    assert set(config.model.tasks) == {"semseg", "depth", "normals"}
    assert (config.run.epochs, config.optimizer.batch_size, config.optimizer.lr) == (200, 8, 1e-4)
    assert config.balancer.name == "fixed" and not config.data.augment
