"""Training targets and label-consistent augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from onepass.data.folder import DatasetError, FolderDataset
from onepass.train.dataset import Augmentation, TaskDataset, augment
from tests.tiny import CODECS, all_tasks, write_random_dataset


def dataset(root, augmentation=None, size=(48, 64)):
    tasks = all_tasks()
    return TaskDataset(FolderDataset(root, CODECS), tasks, size, augmentation, seed=3)


def test_items_have_every_target(random_dataset):
    item = dataset(random_dataset)[0]
    assert item["image"].shape == (3, 48, 64)
    assert item["semseg"].shape == (48, 64) and item["depth"].shape == (48, 64)
    assert item["normals"].shape == (48, 64, 3) and item["attributes"].shape == (2,)


def test_missing_labels_become_ignored_targets(tmp_path):
    root = write_random_dataset(
        tmp_path / "d", n=2, drop={"semseg": [0], "depth": [0], "normals": [0], "attributes": [0]}
    )
    item = dataset(root)[0]
    assert (item["semseg"] == 255).all() and (item["depth"] == 0).all() and (item["normals"] == 0).all()
    assert (item["attributes"] == -1).all()


def test_unknown_class_id_in_a_label_names_the_sample(tmp_path):
    root = write_random_dataset(tmp_path / "d", n=1)
    from onepass.data.codecs import IndexedPngCodec

    (root / "semseg" / "0000.png").write_bytes(IndexedPngCodec().encode(np.full((48, 64), 9, np.uint8)))
    with pytest.raises(DatasetError, match="sample '0000': class ids \\[9\\]"):
        dataset(root)[0]


def test_flip_keeps_labels_consistent():
    tasks = all_tasks()
    rng_image = np.random.default_rng(0)
    image = rng_image.integers(0, 255, (4, 6, 3)).astype(np.uint8)
    normals = np.zeros((4, 6, 3), np.float32)
    normals[:, :3] = (0.6, 0.0, 0.8)  # left half faces right
    targets = {"semseg": np.tile(np.arange(6, dtype=np.uint8), (4, 1)) % 3, "depth": np.tile(np.arange(1, 7, dtype=np.float32), (4, 1)),
               "normals": normals, "attributes": np.array([1, 0])}  # fmt: skip
    config = Augmentation(min_zoom=1.0, colour=0.0)
    for seed in range(20):  # find a draw that flips
        out_image, out = augment(image, dict(targets), tasks, config, np.random.default_rng(seed))
        if not np.array_equal(out_image, image):
            break
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    np.testing.assert_array_equal(out["depth"], targets["depth"][:, ::-1])
    np.testing.assert_allclose(out["normals"][:, 3:], np.broadcast_to((-0.6, 0.0, 0.8), (4, 3, 3)))  # now faces left
    np.testing.assert_array_equal(out["attributes"], targets["attributes"])


def test_zoom_out_scales_depth_and_pads_with_ignore():
    tasks = all_tasks()
    image = np.full((40, 40, 3), 100, np.uint8)
    targets = {"semseg": np.zeros((40, 40), np.uint8), "depth": np.full((40, 40), 2.0, np.float32),
               "normals": np.tile(np.array([0, 0, 1], np.float32), (40, 40, 1)), "attributes": np.array([1, 1])}  # fmt: skip
    config = Augmentation(min_zoom=0.5, flip=False, colour=0.0)
    _, out = augment(image, targets, tasks, config, np.random.default_rng(4))
    labelled = out["depth"] > 0
    zoom = np.sqrt(labelled.mean())  # the labelled area is zoom^2 of the image
    assert 0.5 <= zoom < 0.99
    np.testing.assert_allclose(out["depth"][labelled], 2.0 / zoom, rtol=0.06)  # a smaller image looks farther away
    assert ((out["semseg"] == 255) == ~labelled).all()
    assert (out["normals"][~labelled] == 0).all()


def test_augmentation_is_a_function_of_seed_epoch_and_index(random_dataset):
    a = dataset(random_dataset, Augmentation())
    b = dataset(random_dataset, Augmentation())
    for name in ("image", "depth", "normals"):
        np.testing.assert_array_equal(a[2][name].numpy(), b[2][name].numpy())
    b.epoch = 1
    assert not np.array_equal(a[2]["image"].numpy(), b[2]["image"].numpy())
