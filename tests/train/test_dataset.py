"""Training targets and label-consistent augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from onepass.data.folder import DatasetError, FolderDataset
from onepass.train.dataset import Augmentation, TaskDataset, augment, flat_arrays, jitter_colour, mean_colour
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


def test_cached_samples_give_the_same_items_and_stay_unchanged(random_dataset):
    plain = dataset(random_dataset, Augmentation())
    cached = dataset(random_dataset, Augmentation())
    cached.cache_bytes = 1 << 30
    for epoch in (0, 1, 2):  # a read from the files, then from memory; flips, zooms and jitter every epoch
        for index in range(3):
            expected, actual = plain[(epoch, index)], cached[(epoch, index)]
            for name in ("image", "semseg", "depth", "normals", "attributes"):
                np.testing.assert_array_equal(actual[name].numpy(), expected[name].numpy(), err_msg=name)
    assert sorted(cached._cache) == [0, 1, 2] and cached._cached_bytes > 0
    image, targets = cached.prepared(0)
    assert not image.flags.writeable and not targets["normals"].flags.writeable
    fresh_image, fresh_targets = plain.prepared(0)
    np.testing.assert_array_equal(image, fresh_image)  # augmenting never wrote into the cache
    np.testing.assert_array_equal(targets["normals"], fresh_targets["normals"])


def test_the_cache_stops_at_its_budget(random_dataset):
    data = dataset(random_dataset)
    one_sample = sum(a.nbytes for a in [data.prepared(0)[0], *flat_arrays(data.prepared(0)[1])])
    data.cache_bytes = 2 * one_sample
    for index in range(4):
        data[index]
    assert sorted(data._cache) == [0, 1] and data._cached_bytes == 2 * one_sample


def test_an_epoch_key_augments_as_that_epoch(random_dataset):
    keyed, by_attribute = dataset(random_dataset, Augmentation()), dataset(random_dataset, Augmentation())
    by_attribute.epoch = 3
    np.testing.assert_array_equal(keyed[(3, 1)]["image"].numpy(), by_attribute[1]["image"].numpy())


def test_colour_jitter_is_saturation_then_contrast_then_brightness():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (16, 24, 3)).astype(np.uint8)
    for seed in range(10):
        brightness, contrast, saturation = 1.0 + np.random.default_rng(seed).uniform(-0.3, 0.3, size=3)
        x = image.astype(np.float64)
        gray = x.mean(axis=2, keepdims=True)
        x = gray + (x - gray) * saturation
        x = (x - x.mean()) * contrast + x.mean() * brightness
        expected = np.clip(x, 0, 255).astype(np.uint8)
        actual = jitter_colour(image, 0.3, np.random.default_rng(seed))
        assert np.abs(actual.astype(int) - expected).max() <= 1  # float32 rounding at a grey level's edge
        assert (actual != expected).mean() < 0.01
    np.testing.assert_allclose(mean_colour(image), image.reshape(-1, 3).mean(axis=0), rtol=1e-5)
