"""The study's data: the folders it is given, or synthetic scenes it renders once into OUT/data/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from onepass.data.folder import DatasetDescription
from onepass.data.synth_dataset import write_synthetic_dataset
from onepass.study.config import FolderData, StudyConfig
from onepass.study.errors import StudyError
from onepass.study.runs import Log, log_line

SYNTH_RECORD = "synth.json"  # written last by write_synthetic_dataset: a folder with it is complete


def prepare_data(study: StudyConfig, log: Log = log_line, progress: bool = True) -> tuple[str, str]:
    """(train, val) folders, ready: given ones checked, synthetic ones rendered unless already there."""
    train, val = study.data_folders()
    if isinstance(study.data, FolderData):
        for folder in (train, val):
            DatasetDescription.load(Path(folder))  # names the folder and what is wrong with it
        return train, val
    synth = study.data
    for folder, count, seed in ((train, synth.train, synth.seed), (val, synth.val, synth.held_out_seed)):
        folder = Path(folder)
        wanted = {"n": count, "size": list(synth.size), "seed": seed}
        record = folder / SYNTH_RECORD
        if record.is_file():
            found = json.loads(record.read_text())
            if {k: found.get(k) for k in wanted} != wanted:
                raise StudyError(
                    f"{folder}: holds synthetic scenes {found}, the study config asks for {wanted}; "
                    "delete the folder to render it again, or give the study another --out"
                )
            continue
        if folder.exists():
            shutil.rmtree(folder)  # an interrupted render: the scenes are cheap to draw again
        log(f"rendering {count} synthetic scenes of {synth.size[0]}x{synth.size[1]} (seed {seed}) into {folder}")
        write_synthetic_dataset(folder, count, synth.size, seed, workers=synth.workers, progress=progress)
    return train, val
