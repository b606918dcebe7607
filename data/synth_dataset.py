"""`onepass data synth`: render synthetic scenes into the folder dataset format, with the people
in people.json (COCO, see data/people_json.py) and their attribute classes in dataset.json's
`person_attributes`."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onepass.data.codecs import DensityPngCodec, DepthPngCodec, IndexedPngCodec, NormalsPngCodec
from onepass.data.folder import DatasetDescription, DatasetWriter, Sample
from onepass.data.people_json import PEOPLE_FILE, people_document, person_annotation, write_people_json
from onepass.data.progress import progress_bar
from onepass.data.synth import ATTRIBUTE_GROUPS, CLASS_NAMES, PERSON_ATTRIBUTES, Scene, render_scene

# How each of a scene's per-pixel labels (`Scene.maps`, by task name) is written: its folder's codec.
SYNTH_CODECS = {
    "semseg": IndexedPngCodec(),
    "depth": DepthPngCodec(),
    "normals": NormalsPngCodec(),
    "saliency": DensityPngCodec(),  # an all-zero map (no gaze in view) is written as is: "not labelled"
}


def people_annotations(scene: Scene, image_id: int, first_id: int) -> list[dict]:
    """The scene's visible people as COCO annotations with ids first_id, first_id + 1, ..."""
    return [
        person_annotation(
            first_id + k,
            image_id,
            person.box,
            {"age_group": person.age_group, "gender": person.gender, "looking": person.looking, "yaw": person.yaw},
            area=person.visible_pixels,
            truncated=person.truncated,
        )
        for k, person in enumerate(scene.people)
    ]


SYNTHETIC_DESCRIPTION = DatasetDescription(CLASS_NAMES, ATTRIBUTE_GROUPS, PERSON_ATTRIBUTES)  # their dataset.json


def scene_sample(scene: Scene, sample_id: str = "scene") -> Sample:
    """A rendered scene as the folder reader would read it back (every label present), so code that
    scores a model on fresh scenes asks each task for its label the way training does (`Task.label`)."""
    return Sample(sample_id, scene.image, scene.maps, dict(scene.attributes), people_annotations(scene, 0, 1))


@dataclass(frozen=True)
class SynthReport:
    images: int
    seconds: float
    render_seconds: float  # summed over workers: rendering alone, without PNG encoding

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    @property
    def render_images_per_second_per_core(self) -> float:
        return self.images / self.render_seconds


def _render(job: tuple[int, int, int, int]) -> tuple[int, Scene, float]:
    seed, index, height, width = job
    started = time.perf_counter()
    scene = render_scene(np.random.default_rng([seed, index]), height, width)
    return index, scene, time.perf_counter() - started


def checked_render_request(n: int, size: tuple[int, int], out: str | os.PathLike, manifest: str, what: str) -> Path:
    """`out` as a Path, once the request is sound: at least one item, at least 16x16, and no `manifest`
    (`what` it marks) already in `out`."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    height, width = size
    if height < 16 or width < 16:
        raise ValueError(f"--size must be at least 16x16, got {height}x{width}")
    out = Path(out)
    if (out / manifest).exists():
        raise FileExistsError(f"{out}: already holds {what}; choose another --out or delete it")
    return out


def write_synthetic_dataset(
    out: str | os.PathLike,
    n: int,
    size: tuple[int, int] = (128, 160),
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> SynthReport:
    """Render `n` scenes; image i depends only on (seed, i), so any worker count gives the same files."""
    out = checked_render_request(n, size, out, "dataset.json", "a dataset")
    height, width = size
    description = SYNTHETIC_DESCRIPTION
    writer = DatasetWriter(out, description, SYNTH_CODECS)
    images: list[dict] = []
    annotations: list[dict] = []
    digits = max(6, len(str(n - 1)))
    workers = workers or os.cpu_count() or 1
    jobs = [(seed, i, height, width) for i in range(n)]
    started = time.perf_counter()
    render_seconds = 0.0
    with progress_bar(total=n, desc="synth", unit="img", enabled=progress) as bar:
        if workers == 1:
            results = map(_render, jobs)
            pool = None
        else:
            pool = ProcessPoolExecutor(workers)
            results = pool.map(_render, jobs, chunksize=8)
        try:
            for index, scene, seconds in results:
                render_seconds += seconds
                writer.write(f"{index:0{digits}d}", scene.image, scene.maps, scene.attributes)
                images.append({"id": index, "file_name": f"{index:0{digits}d}.png", "width": width, "height": height})
                annotations.extend(people_annotations(scene, index, len(annotations) + 1))
                bar.update(1)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    document = people_document(images, annotations, description="onepass.data.synth")
    write_people_json(out / PEOPLE_FILE, document, PERSON_ATTRIBUTES)
    writer.close()  # dataset.json last: a folder with it is complete
    (out / "synth.json").write_text(
        json.dumps({"generator": "onepass.data.synth", "n": n, "size": [height, width], "seed": seed}, indent=2) + "\n"
    )
    return SynthReport(n, time.perf_counter() - started, render_seconds)
