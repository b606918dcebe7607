"""The files a task writes once per `onepass predict` run, from every finished image's record
(`Task.run_files`; the people task's COCO results file, `people.coco.json`).

Built at the end of every run from DIR/<task>.jsonl, so a resumed run writes them for all its
images. Images are numbered with the labelled folder's own ids when the run reads a dataset's
`images/` folder (DATASET/images, beside DATASET/people.json): the results then score against that
people.json with pycocotools as they are. Otherwise they are numbered 1, 2, ... in key order, and
each result carries its image's key (`file_name`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from onepass.models.tasks.base import Task
from onepass.predict.audience_files import read_records
from onepass.predict.inputs import InputImage
from onepass.predict.outputs import OutputLayout, write_atomic


def write_run_files(
    layout: OutputLayout, images: Sequence[InputImage], tasks: Sequence[Task], inputs: Sequence[str]
) -> list[Path]:
    """Write each task's run files; the paths written."""
    written = []
    ids = None
    for task in (t for t in tasks if t.writes_records):
        records = read_records(layout.record_file(task.name), task.name)
        if ids is None:
            ids = image_ids([i.key for i in images], inputs)
        for name, content in task.run_files(records, ids).items():
            path = layout.root / name
            write_atomic(path, (json.dumps(content) + "\n").encode(), layout.temp_dir)
            written.append(path)
    return written


def image_ids(keys: Sequence[str], inputs: Sequence[str]) -> dict[str, int]:
    """{key: image id}: a dataset's own ids when the one input is DATASET/images, else 1.. in key order."""
    dataset_ids = _dataset_ids(inputs)
    if dataset_ids is not None and all(k in dataset_ids for k in keys):
        return {k: dataset_ids[k] for k in keys}
    return {k: i for i, k in enumerate(sorted(keys), start=1)}


def _dataset_ids(inputs: Sequence[str]) -> dict[str, int] | None:
    if len(inputs) != 1 or Path(inputs[0]).name != "images" or not Path(inputs[0]).is_dir():
        return None
    from onepass.data.folder import DatasetDescription
    from onepass.data.people_json import PEOPLE_FILE, load_people_json

    root = Path(inputs[0]).parent
    if not (root / PEOPLE_FILE).is_file():
        return None
    coco = load_people_json(root / PEOPLE_FILE, DatasetDescription.load(root).person_attributes)
    return {image["file_name"]: image_id for image_id, image in coco.imgs.items()}
