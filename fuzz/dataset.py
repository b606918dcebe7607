"""Fuzz target: the folder dataset reader, data/folder.py `FolderDataset`, as training reads it.

One input is one dataset folder (see seeds.pack): dataset.json, attributes.csv, one image and its
semseg/depth/normals label PNGs, any of them absent. It is written to a scratch folder in
/dev/shm, read with the label codecs of data/codecs.py, and every sample goes through training's
TaskDataset (targets, resizing, augmentation). Contract: a DatasetError or LabelFileError whose
message names a file or folder of the dataset (or a ConfigError from the tasks dataset.json
describes), else samples of the documented shapes, types and ranges. Anything else, or a hang, is
a finding. See docs/robustness.md.

    nice -n 10 timeout 660 .venv/bin/python fuzz/dataset.py fuzz/corpus/dataset \
        -max_total_time=600 -timeout=30 -rss_limit_mb=3072 -max_len=262144 -print_final_stats=1
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["PIL", "onepass"]):
    import numpy as np
    from PIL import Image

    Image.init()  # imports every format plugin now, while imports are instrumented
    from onepass.data.codecs import DEPTH_SCALE, DepthPngCodec, IndexedPngCodec, LabelFileError, NormalsPngCodec
    from onepass.data.folder import DatasetError, FolderDataset
    from onepass.data.image import IMAGE_EXTENSIONS
    from onepass.errors import ConfigError
    from onepass.train.dataset import Augmentation, TaskDataset
    from onepass.train.loop import tasks_for_dataset

from campaign import ContractBroken, main
from mutations import PNG_SIGNATURE, mutate_csv_text, mutate_image_bytes, mutate_json_text
from seeds import SECTIONS, SEPARATOR, dataset_seeds, pack, unpack

CODECS = {"semseg": IndexedPngCodec(), "depth": DepthPngCodec(), "normals": NormalsPngCodec()}
SCRATCH = Path("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()) / f"onepass-fuzz-{os.getpid()}"
MAX_DEPTH = 65535 / DEPTH_SCALE  # the most a 16-bit PNG in millimetres holds
MODEL_INPUT = (16, 24)


def write_dataset(data: bytes) -> Path:
    suffix, files = unpack(data)
    root = SCRATCH / "dataset"
    shutil.rmtree(root, ignore_errors=True)
    (root / "images").mkdir(parents=True)
    places = {
        "dataset.json": root / "dataset.json",
        "attributes.csv": root / "attributes.csv",
        "image": root / "images" / f"0000{suffix}",
        **{name: root / name / "0000.png" for name in CODECS},
    }
    for name, content in files.items():
        if content is not None:
            places[name].parent.mkdir(exist_ok=True)
            places[name].write_bytes(content)
    return root


def check(data: bytes) -> None:
    root = write_dataset(data)
    try:
        folder = FolderDataset(root, CODECS)
        samples = [folder[i] for i in range(len(folder))]
    except (DatasetError, LabelFileError) as error:
        if str(root) not in str(error):
            raise ContractBroken(f"{type(error).__name__} names no file of the dataset: {error}") from None
        return
    groups = folder.description.attribute_groups
    for sample in samples:
        check_sample(sample, groups)
    _, files = unpack(data)
    for name in CODECS:
        if samples[0].maps[name] is not None and not files[name].startswith(PNG_SIGNATURE):
            raise ContractBroken(f"a {name} label that is not a PNG was read ({files[name][:8]!r}...)")
    names = ("semseg", "depth", "normals", "attributes") if groups else ("semseg", "depth", "normals")
    try:
        tasks = tasks_for_dataset(names, folder.description)
    except ConfigError:
        return  # dataset.json describes tasks that cannot be trained: training says so in one line
    training = TaskDataset(folder, tasks, MODEL_INPUT, Augmentation(), seed=len(data))
    try:
        items = [training[i] for i in range(len(training))]
    except DatasetError as error:
        if str(root) not in str(error):
            raise ContractBroken(f"DatasetError names no file of the dataset: {error}") from None
        return
    for item in items:
        if tuple(item["image"].shape) != (3, *MODEL_INPUT):
            raise ContractBroken(f"training image tensor is {tuple(item['image'].shape)}")


def check_sample(sample, groups: dict[str, tuple[str, ...]]) -> None:
    image = sample.image
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ContractBroken(f"image is {getattr(image, 'shape', None)} {getattr(image, 'dtype', None)}")
    size = image.shape[:2]
    expected = {"semseg": (size, np.uint8), "depth": (size, np.float32), "normals": ((*size, 3), np.float32)}
    for name, label in sample.maps.items():
        if label is None:
            continue
        shape, dtype = expected[name]
        if label.shape != shape or label.dtype != dtype:
            raise ContractBroken(f"{name} label is {label.shape} {label.dtype}, expected {shape} {dtype}")
        if name == "depth" and not (np.isfinite(label).all() and label.min() >= 0 and label.max() <= MAX_DEPTH):
            raise ContractBroken(f"depth outside 0..{MAX_DEPTH} m: {label.min()}..{label.max()}")
        if name == "normals":
            norms = np.linalg.norm(label, axis=2)
            if not np.all((norms == 0) | (np.abs(norms - 1) < 1e-3)):
                raise ContractBroken("normals that are neither unit vectors nor zero (missing)")
    if set(sample.attributes) != set(groups):
        raise ContractBroken(f"attribute groups {sorted(sample.attributes)}, dataset.json has {sorted(groups)}")
    for group, value in sample.attributes.items():
        if value is not None and value not in groups[group]:
            raise ContractBroken(f"attribute {group}={value!r} is not one of {groups[group]}")


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """Mostly one file of the dataset, with that file's own mutations; sometimes the raw input."""
    rng = random.Random(seed)
    if rng.random() < 0.05:
        return atheris.Mutate(data, max_size)
    suffix, files = unpack(data)
    if rng.random() < 0.05:
        suffix = rng.choice(IMAGE_EXTENSIONS)
    name = rng.choice(SECTIONS)
    content = files[name]
    room = max(1, max_size - len(data) + len(content or b"") - len(SEPARATOR))
    if content is None or rng.random() < 0.05:  # a file appears, is removed, or is another file's copy
        others = [c for c in files.values() if c]
        files[name] = rng.choice(others) if others and (content is None or rng.random() < 0.5) else None
    elif name == "dataset.json":
        files[name] = mutate_json_text(content, room, rng)
    elif name == "attributes.csv":
        files[name] = mutate_csv_text(content, room, rng)
    else:
        files[name] = mutate_image_bytes(content, room, rng)
    return pack(suffix, files)[:max_size]


if __name__ == "__main__":
    main("dataset", check, dataset_seeds, mutate)
