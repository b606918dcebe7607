"""`onepass data convert sequence-frames`: a sequence dataset's frames join a folder dataset as images
with their people (boxes, track attributes, looking, yaw), and nothing else of the folder changes."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from onepass.cli import main
from onepass.data.convert import ConvertError, convert
from onepass.data.folder import FolderDataset
from onepass.data.sequence import read_sequence_dataset
from onepass.data.synth_dataset import write_synthetic_dataset
from onepass.data.synth_sequences import write_synthetic_sequences

SIZE = (48, 64)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sequence-frames")
    write_synthetic_dataset(root / "stills", 3, SIZE, seed=0, workers=1, progress=False)
    write_synthetic_sequences(root / "seq", 2, seconds=2.0, fps=4.0, size=SIZE, seed=5, workers=1, progress=False)
    return root / "stills", root / "seq"


def test_every_second_frame_joins_with_its_people_and_the_stills_keep_theirs(sources, tmp_path):
    stills, seq = sources
    mixed = tmp_path / "mixed"
    shutil.copytree(stills, mixed, copy_function=os.link)  # hard links: the stills' files are shared
    before = (stills / "people.json").read_bytes()
    assert main(["data", "convert", "sequence-frames", str(seq), str(mixed), "--every", "2"]) == 0
    assert (stills / "people.json").read_bytes() == before  # a new file was written, not the shared one
    dataset = FolderDataset(mixed, {})
    sequences = read_sequence_dataset(seq)
    frame_ids = [i for i in dataset.ids if i.startswith("sequences/")]
    assert frame_ids == [f"sequences/{s.name}/{k:06d}" for s in sequences for k in range(0, 8, 2)]
    assert len(dataset) == 3 + len(frame_ids)
    by_id = dict(zip(dataset.ids, range(len(dataset)), strict=True))
    people = 0
    for sequence in sequences:
        for k in range(0, 8, 2):
            sample = dataset[by_id[f"sequences/{sequence.name}/{k:06d}"]]
            truth = sequence.frames[k].people
            assert all(m is None for m in sample.maps.values())
            assert len(sample.instances) == len(truth)  # listed, so a frame with nobody says "nobody"
            for annotation, person in zip(sample.instances, truth, strict=True):
                x0, y0, x1, y1 = person.box
                assert annotation["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])
                assert annotation["attributes"] == {
                    **sequence.tracks[person.track],
                    "looking": person.looking,
                    "yaw": pytest.approx(person.yaw),
                }
                assert annotation["truncated"] == person.truncated
            people += len(truth)
    assert people > 0
    from onepass.train.evaluate import dataset_provenance

    provenance = dataset_provenance(mixed)
    assert provenance["synth"]["n"] == 3  # the stills' own record, kept
    [added] = provenance["sequence_frames"]
    assert (added["every"], added["frames"], added["people"]) == (2, len(frame_ids), people)
    assert added["source"] == str(seq) and added["generator"]["seed"] == 5
    stills_people = json.loads(before)["annotations"]
    assert len(json.loads((mixed / "people.json").read_bytes())["annotations"]) == len(stills_people) + people


def test_frames_added_twice_or_of_other_attributes_are_refused(sources, tmp_path):
    stills, seq = sources
    mixed = tmp_path / "mixed"
    shutil.copytree(stills, mixed)
    convert("sequence-frames", seq, mixed, every=4)
    with pytest.raises(ConvertError, match="already there"):
        convert("sequence-frames", seq, mixed, every=4)
    with pytest.raises(ConvertError, match="--every must be a whole number >= 1"):
        convert("sequence-frames", seq, mixed, every=0)
    other = tmp_path / "other"
    shutil.copytree(stills, other)
    description = json.loads((other / "dataset.json").read_bytes())
    description["person_attributes"] = {"gender": ["female", "male"]}
    (other / "dataset.json").write_text(json.dumps(description))
    with pytest.raises(ConvertError, match="person attributes .* are not those of"):
        convert("sequence-frames", seq, other)
