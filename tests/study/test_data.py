"""The study's synthetic data: rendered once into OUT/data/, reused after, refused when the config changed."""

from __future__ import annotations

import json

import pytest

from onepass.data.folder import DatasetDescription
from onepass.study.config import parse_study
from onepass.study.data import prepare_data
from onepass.study.errors import StudyError
from tests.study.conftest import study_values


def test_synthetic_data_is_rendered_once_and_checked_after(tiny_data, tmp_path):
    synth = {"train": 4, "val": 2, "size": [32, 32], "seed": 5, "workers": 1}
    study = parse_study(study_values(tiny_data, tmp_path / "study", data={"synth": synth}))
    train, val = prepare_data(study, log=lambda line: None, progress=False)
    assert (train, val) == (str(tmp_path / "study" / "data" / "train"), str(tmp_path / "study" / "data" / "val"))
    assert json.loads((tmp_path / "study" / "data" / "val" / "synth.json").read_text())["seed"] == 6  # seed + 1
    assert len(list((tmp_path / "study" / "data" / "train" / "images").iterdir())) == 4
    DatasetDescription.load(tmp_path / "study" / "data" / "train")
    assert all(study.train_config(c, 0).data.path == train for c in study.all_configurations())

    stamp = (tmp_path / "study" / "data" / "train" / "synth.json").stat().st_mtime_ns
    prepare_data(study, log=lambda line: pytest.fail(f"rendered again: {line}"), progress=False)
    assert (tmp_path / "study" / "data" / "train" / "synth.json").stat().st_mtime_ns == stamp

    (tmp_path / "study" / "data" / "val" / "synth.json").unlink()  # an interrupted render is drawn again
    prepare_data(study, log=lambda line: None, progress=False)
    assert (tmp_path / "study" / "data" / "val" / "synth.json").is_file()

    bigger = parse_study(study_values(tiny_data, tmp_path / "study", data={"synth": {**synth, "train": 8}}))
    with pytest.raises(StudyError, match=r"data/train: holds synthetic scenes .* asks for \{'n': 8"):
        prepare_data(bigger, log=lambda line: None, progress=False)
