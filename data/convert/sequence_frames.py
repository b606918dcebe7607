"""A sequence dataset's frames (data/sequence.py) -> more images of a folder dataset, people labels only.

The detector of a model trained on still scenes misses the people a video has most of: walkers cut
by the image's side as they come in and go out, and people passing behind one another. Adding video
frames to the still scenes teaches it those. Every `every`-th frame of each sequence is copied to
DST/images/sequences/<sequence>/<frame>.png, and its people are appended to DST/people.json: each
box, with its track's attributes, its `looking`, yaw and `truncated`. The frames have no map labels,
so their map losses are masked.

DST is a folder dataset (dataset.json and images/), often the still scenes themselves or a hard-linked
copy: people.json is written as a new file (`replace_text`), images are added, nothing is removed.
The sequences' person attributes must be the dataset's, and a frame already there is refused.

What was added is recorded in DST/sequence_frames.json (`SEQUENCE_FRAMES_FILE`, versioned; one entry
per run: the source, its generator when synthetic, `every`, the frames and people added), which a
trained package's provenance carries next to synth.json (train/evaluate.py `dataset_provenance`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from onepass.data.convert import ConvertError
from onepass.data.convert._dataset import target_dataset
from onepass.data.files import replace_text
from onepass.data.people_json import (
    PEOPLE_FILE,
    people_document,
    person_annotation,
    validate_people_json,
    write_people_json,
)
from onepass.data.sequence import read_sequence_dataset

FRAMES_FOLDER = "sequences"  # under DST/images/
SEQUENCE_FRAMES_FILE = "sequence_frames.json"
SEQUENCE_FRAMES_FORMAT, SEQUENCE_FRAMES_VERSION = "onepass-sequence-frames", 1


def convert(src: Path, dst: Path, progress: bool = False, every: float = 1) -> str:
    if every != int(every) or every < 1:
        raise ConvertError(f"--every must be a whole number >= 1 (every how many frames one is kept), got {every:g}")
    dataset = target_dataset(dst)
    sequences = read_sequence_dataset(src)  # validated: boxes, tracks and attributes
    expected = {k: tuple(v) for k, v in dataset.description.person_attributes.items()}
    for sequence in sequences:
        found = {k: tuple(v) for k, v in sequence.person_attributes.items()}
        if found != expected:
            raise ConvertError(
                f"{src}/{sequence.name}: person attributes {found} are not those of {dst / 'dataset.json'} "
                f"({expected}); the frames' people would not read"
            )
    document = _existing(dst / PEOPLE_FILE, dataset.description.person_attributes)
    image_id = max((image["id"] for image in document["images"]), default=0) + 1
    annotation_id = max((a["id"] for a in document["annotations"]), default=0) + 1
    files = dataset.file_names()
    frames = people = 0
    for sequence in sequences:
        height, width = sequence.size
        for position in range(0, len(sequence.frames), int(every)):
            frame = sequence.frames[position]
            name = f"{FRAMES_FOLDER}/{sequence.name}/{frame.path.stem}.png"
            if name in files:
                raise ConvertError(f"{dst / 'images' / name}: already there (were these frames added before?)")
            target = dst / "images" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(frame.path, target)
            document["images"].append({"id": image_id, "file_name": name, "width": width, "height": height})
            for person in frame.people:
                x0, y0, x1, y1 = person.box
                attributes: dict[str, object] = dict(sequence.tracks[person.track])
                if person.looking is not None:
                    attributes["looking"] = person.looking
                if person.yaw is not None:
                    attributes["yaw"] = person.yaw
                box = (x0, y0, x1 - x0, y1 - y0)
                document["annotations"].append(
                    person_annotation(annotation_id, image_id, box, attributes, truncated=person.truncated)
                )
                annotation_id += 1
                people += 1
            image_id += 1
            frames += 1
    write_people_json(dst / PEOPLE_FILE, document, dataset.description.person_attributes)  # a new file
    _record(dst, src, int(every), frames, people)
    return (
        f"added {frames} frames of {len(sequences)} sequences (every {int(every)}) with {people} people to {dst}: "
        f"images/{FRAMES_FOLDER}/ and {PEOPLE_FILE}"
    )


def _existing(path: Path, person_attributes) -> dict:
    """DST/people.json as it is, validated as the reader validates it, or an empty document."""
    if not path.is_file():
        return people_document([], [], description="frames of synthetic sequences")
    document = _read_json(path)
    validate_people_json(document, str(path), person_attributes)
    return document


def _record(dst: Path, src: Path, every: int, frames: int, people: int) -> None:
    """Append this run to DST/sequence_frames.json (a new file each time, as people.json)."""
    path = dst / SEQUENCE_FRAMES_FILE
    record = {"format": SEQUENCE_FRAMES_FORMAT, "version": SEQUENCE_FRAMES_VERSION, "added": []}
    if path.is_file():
        record = read_sequence_frames_record(path)
    generator = json.loads((src / "sequences.json").read_bytes()).get("generator")
    entry = {"source": os.path.abspath(src), "every": every, "frames": frames, "people": people}
    if generator is not None:
        entry["generator"] = generator
    record["added"].append(entry)
    replace_text(path, json.dumps(record, indent=2) + "\n")


def read_sequence_frames_record(path: Path) -> dict:
    """DST/sequence_frames.json, validated: its format, version and list of additions."""
    record = _read_json(path)
    if not isinstance(record, dict) or (record.get("format"), record.get("version")) != (
        SEQUENCE_FRAMES_FORMAT,
        SEQUENCE_FRAMES_VERSION,
    ):
        raise ConvertError(f"{path}: not a {SEQUENCE_FRAMES_FORMAT} file of version {SEQUENCE_FRAMES_VERSION}")
    if not isinstance(record.get("added"), list):
        raise ConvertError(f"{path}: 'added' must be a list")
    return record


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError) as error:
        raise ConvertError(f"{path}: not valid JSON ({error})") from None
