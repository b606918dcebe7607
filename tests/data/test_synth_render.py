"""The synthetic renderer: determinism, exact and consistent ground truth, and the dataset writer."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from onepass.cli import main
from onepass.data import synth
from onepass.data.folder import FolderDataset
from onepass.data.synth import ATTRIBUTE_GROUPS, CLASS_NAMES, FLOOR, PERSON, render_scene
from onepass.data.synth_dataset import SYNTH_CODECS, write_synthetic_dataset

SIZE = (96, 128)


def scene(index: int, size=SIZE, seed: int = 0):
    return render_scene(np.random.default_rng([seed, index]), *size)


@pytest.fixture(scope="module")
def scenes():
    return [scene(i) for i in range(40)]


def test_same_seed_same_arrays_different_seed_different():
    a, b, c = scene(3), scene(3), scene(4)
    for name in ("image", "semseg", "depth", "normals"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.attributes == b.attributes
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("size", [(64, 80), (128, 160)])
def test_shapes_and_dtypes(size):
    s = scene(0, size)
    assert s.image.shape == (*size, 3) and s.image.dtype == np.uint8
    assert s.semseg.shape == size and s.semseg.dtype == np.uint8
    assert s.depth.shape == size and s.depth.dtype == np.float32
    assert s.normals.shape == (*size, 3) and s.normals.dtype == np.float32
    assert set(s.attributes) == set(ATTRIBUTE_GROUPS)


def test_geometry_is_valid(scenes):
    for s in scenes:
        assert np.isfinite(s.depth).all() and (s.depth > 0).all() and s.depth.max() < 30
        np.testing.assert_allclose(np.linalg.norm(s.normals, axis=-1), 1.0, atol=1e-4)
        assert s.semseg.max() < len(CLASS_NAMES)
        assert s.image.std() > 10  # not a flat picture


def test_floor_is_one_plane_with_analytic_depth():
    for index in range(5):
        s = scene(index)
        camera = synth._sample_camera(np.random.default_rng([0, index]), *SIZE)  # the first draws of render_scene
        floor = s.semseg == FLOOR
        assert floor.any()
        up_in_camera = camera.rotation.T @ np.array([0.0, 1.0, 0.0], np.float32)
        np.testing.assert_allclose(s.normals[floor], np.broadcast_to(up_in_camera, s.normals[floor].shape), atol=1e-5)
        rows, cols = np.nonzero(floor)
        local = np.stack(
            [
                (cols + 0.5 - SIZE[1] / 2) / camera.focal,
                -(rows + 0.5 - SIZE[0] / 2) / camera.focal,
                -np.ones(len(rows)),
            ],
            1,
        )
        world = local @ camera.rotation.T
        expected = -camera.height / world[:, 1]  # where the ray meets y = 0; t is z-depth by construction
        np.testing.assert_allclose(s.depth[floor], expected, rtol=1e-4)


def test_surfaces_face_the_camera():
    """n . (camera-space ray direction) < 0 for every pixel."""
    for index in range(10):
        s = scene(index)
        camera = synth._sample_camera(np.random.default_rng([0, index]), *SIZE)
        rows, cols = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
        rays = np.stack(
            [(cols + 0.5 - SIZE[1] / 2) / camera.focal, -(rows + 0.5 - SIZE[0] / 2) / camera.focal, -np.ones(SIZE)], -1
        )
        assert (np.einsum("hwc,hwc->hw", s.normals, rays) < 1e-4).all()


def test_attributes_follow_the_geometry(scenes):
    for s in scenes:
        people_pixels = (s.semseg == PERSON).sum()
        if s.attributes["people"] == "0":
            assert people_pixels == 0
            assert s.attributes["facing"] == "no" and s.attributes["age_group"] == "none"
        else:
            assert people_pixels > 0 and s.attributes["age_group"] in ("child", "adult")
    seen = {name: {s.attributes[name] for s in scenes} for name in ATTRIBUTE_GROUPS}
    assert seen["people"] == set(ATTRIBUTE_GROUPS["people"])
    assert seen["facing"] == {"no", "yes"} and seen["age_group"] == {"none", "child", "adult"}


def test_same_scene_at_another_resolution():
    small, large = scene(7, (48, 64)), scene(7, (96, 128))
    assert small.attributes == large.attributes
    assert abs(np.median(small.depth) - np.median(large.depth)) < 0.1 * np.median(large.depth)


def _digest(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_dataset_writer_is_deterministic_and_readable(tmp_path):
    report = write_synthetic_dataset(tmp_path / "a", 6, (48, 64), seed=5, workers=1, progress=False)
    write_synthetic_dataset(tmp_path / "b", 6, (48, 64), seed=5, workers=2, progress=False)
    assert report.images == 6 and report.images_per_second > 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    dataset = FolderDataset(tmp_path / "a", SYNTH_CODECS)
    sample = dataset[2]
    expected = scene(2, (48, 64), seed=5)
    np.testing.assert_array_equal(sample.image, expected.image)
    np.testing.assert_array_equal(sample.dense["semseg"], expected.semseg)
    np.testing.assert_allclose(sample.dense["depth"], expected.depth, atol=5e-4)
    assert sample.attributes == expected.attributes


def test_cli_synth_and_refusal_to_overwrite(tmp_path, capsys):
    out = tmp_path / "d"
    assert (
        main(["data", "synth", "--out", str(out), "--n", "3", "--size", "32x48", "--seed", "1", "--workers", "1"]) == 0
    )
    assert "wrote 3 images" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(out), "--n", "3"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
