"""`onepass data synth`: the dataset writer and its CLI (the renderer itself: test_synth.py)."""

from __future__ import annotations

import hashlib

import numpy as np

from onepass.cli import main
from onepass.data.folder import FolderDataset
from onepass.data.synth import render_scene
from onepass.data.synth_dataset import SYNTH_CODECS, write_synthetic_dataset


def scene(index: int, size: tuple[int, int], seed: int = 0):
    return render_scene(np.random.default_rng([seed, index]), *size)


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
    np.testing.assert_array_equal(sample.maps["semseg"], expected.semseg)
    np.testing.assert_allclose(sample.maps["depth"], expected.depth, atol=5e-4)
    assert sample.attributes == expected.attributes


def test_cli_synth_and_refusal_to_overwrite(tmp_path, capsys):
    out = tmp_path / "d"
    assert (
        main(["data", "synth", "--out", str(out), "--n", "3", "--size", "32x48", "--seed", "1", "--workers", "1"]) == 0
    )
    assert "wrote 3 images" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(out), "--n", "3"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
