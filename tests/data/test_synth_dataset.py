"""`onepass data synth`: the dataset writer and its CLI (the renderer itself: test_synth.py)."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from onepass.cli import main
from onepass.data.folder import DatasetDescription, FolderDataset
from onepass.data.people_json import load_people_json, parse_person_attributes, people_by_file_name
from onepass.data.synth import PERSON_ATTRIBUTES, render_scene
from onepass.data.synth_dataset import SYNTH_CODECS, SYNTHETIC_DESCRIPTION, scene_sample, write_synthetic_dataset
from onepass.models.tasks import TASK_TYPES


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
    saliency = [dataset[k].maps["saliency"] for k in range(6)]
    assert any(density.any() for density in saliency)
    for k, density in enumerate(saliency):
        truth = scene(k, (48, 64), seed=5).saliency
        assert density.any() == truth.any()  # an all-zero map ("not labelled") reads back as one
        np.testing.assert_allclose(density, truth, atol=float(truth.max()) / 65535 * 2)  # 16-bit steps of the peak


def test_every_per_pixel_label_of_a_scene_is_written_and_read_as_its_task_does():
    """The one list of a scene's per-pixel labels is Scene.maps: the dataset writes each with its task's
    codec, and fresh scenes are scored through the same labels (scene_sample, Task.label)."""
    rendered = scene(4, (48, 64), seed=2)
    assert set(SYNTH_CODECS) == set(rendered.maps)
    sample = scene_sample(rendered)
    for name, codec in SYNTH_CODECS.items():
        task = TASK_TYPES[name].from_dataset(SYNTHETIC_DESCRIPTION)
        assert type(task.codec) is type(codec)
        assert task.reads_labels_of(SYNTHETIC_DESCRIPTION)
        np.testing.assert_array_equal(task.label(sample), getattr(rendered, name))


def test_people_json_holds_every_rendered_person(tmp_path):
    out = tmp_path / "d"
    write_synthetic_dataset(out, 8, (48, 64), seed=3, workers=1, progress=False)
    dataset_json = json.loads((out / "dataset.json").read_text())
    classes = parse_person_attributes(dataset_json["person_attributes"], str(out / "dataset.json"))
    assert classes == PERSON_ATTRIBUTES
    assert DatasetDescription.load(out).attribute_groups  # today's reader accepts the extra key
    files = {p.relative_to(out / "images").as_posix() for p in (out / "images").rglob("*.png")}
    coco = load_people_json(out / "people.json", classes, image_files=files)
    by_file = people_by_file_name(coco)
    assert sorted(by_file) == sorted(files)
    ids = []
    for index in range(8):
        expected = scene(index, (48, 64), seed=3).people
        annotations = by_file[f"{index:06d}.png"]
        assert len(annotations) == len(expected)
        for annotation, person in zip(annotations, expected, strict=True):
            assert annotation["bbox"] == list(person.box)
            assert annotation["area"] == person.visible_pixels
            assert annotation["truncated"] == person.truncated
            assert annotation["attributes"] == {
                "age_group": person.age_group,
                "gender": person.gender,
                "looking": person.looking,
                "yaw": person.yaw,
            }
            ids.append(annotation["id"])
    assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 8


def test_cli_synth_and_refusal_to_overwrite(tmp_path, capsys):
    out = tmp_path / "d"
    assert (
        main(["data", "synth", "--out", str(out), "--n", "3", "--size", "32x48", "--seed", "1", "--workers", "1"]) == 0
    )
    assert "wrote 3 images" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(out), "--n", "3"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
