"""An input folder with every kind of file a real one has, and checks of a finished output folder
against the Predictor itself."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import onepass
from onepass.data.synth import render_scene
from onepass.models.panel import panel_width, tile_size
from onepass.runtime.predictor import python_resizing
from tests.optional import has
from tests.people import assert_same_people, expected_audience, people_arrays

HAVE_PYARROW = has("pyarrow", "it comes with the ray extra: pip install 'onepass[ray]'", "predictions.parquet")
MAX_PIXELS = 10_000  # passed as --max-pixels: big.png (120x120) is "too large", everything else fits
GOOD = ("a/b/deep.png", "a/frame0.png", "a/frame1.png", "frame2.png", "gray.png", "rgba.png", "rotated.jpg")
BAD = ("big.png", "corrupt.png", "notimage.jpg")


def write_input_folder(root: Path, extra: int = 0) -> Path:
    """Nested RGB PNGs (a/frame1.png a synthetic scene with people in it, the shipped model's domain),
    a grayscale and an RGBA image, a JPEG turned by EXIF, a truncated PNG, a text file named .jpg, an
    image over MAX_PIXELS and a non-image that a folder walk ignores; `extra` more frames under many/
    (for runs that must take a while)."""
    rng = np.random.default_rng(0)

    def rgb(h: int, w: int) -> np.ndarray:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    (root / "a" / "b").mkdir(parents=True)
    Image.fromarray(rgb(60, 80)).save(root / "a" / "b" / "deep.png")
    Image.fromarray(rgb(48, 64)).save(root / "a" / "frame0.png")
    Image.fromarray(render_scene(np.random.default_rng(0), 90, 100).image).save(root / "a" / "frame1.png")
    Image.fromarray(rgb(64, 40)).save(root / "frame2.png")
    Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8), mode="L").save(root / "gray.png")
    Image.fromarray(rng.integers(0, 256, (40, 60, 4), dtype=np.uint8), mode="RGBA").save(root / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view -> 30x50 becomes 50x30 (WxH)
    Image.fromarray(rgb(50, 30)).save(root / "rotated.jpg", exif=exif)
    Image.fromarray(rgb(120, 120)).save(root / "big.png")
    whole = (root / "a" / "frame1.png").read_bytes()
    (root / "corrupt.png").write_bytes(whole[: len(whole) // 2])
    (root / "notimage.jpg").write_text("this is not a picture\n")
    (root / "notes.md").write_text("a folder walk skips files without an image extension\n")
    if extra:
        (root / "many").mkdir()
        for i in range(extra):
            Image.fromarray(rgb(48, 64)).save(root / "many" / f"{i:04d}.png")
    return root


@pytest.fixture
def input_folder(tmp_path) -> Path:
    return write_input_folder(tmp_path / "frames")


@pytest.fixture(scope="session")
def predictor():
    """The reference: the shipped model on torch, resizing in Python as `onepass predict`'s workers do."""
    return python_resizing(onepass.load(backend="torch", device="cpu"))


def read_table(out: Path) -> list[dict[str, str]]:
    with open(out / "predictions.csv", newline="") as file:
        return list(csv.DictReader(file))


def read_errors(out: Path) -> dict[str, str]:
    lines = (out / "errors.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len({r["image"] for r in records}) == len(records)
    return {r["image"]: r["error"] for r in records}


def visible_files(out: Path) -> set[str]:
    """Every file under DIR (a finished run leaves no lock or temporary file)."""
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def reference_pixels(path: Path) -> np.ndarray:
    """The RGB pixels of a fixture file, decoded without onepass's reader: Pillow's decoder, then by
    hand what the reader must add (grey to RGB, alpha dropped, EXIF orientation 6 turned clockwise)."""
    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
        pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    pixels = pixels[..., :3]
    if orientation == 6:  # the top row becomes the right column
        pixels = pixels[::-1].transpose(1, 0, 2)
    else:
        assert orientation == 1, f"{path}: EXIF orientation {orientation} is not one the fixtures use"
    return np.ascontiguousarray(pixels)


def wait_for_rows(out: Path, rows: int, process: subprocess.Popen, timeout: float = 300.0) -> int:
    """Wait until DIR's table has at least `rows` rows (a run started by tests/predict/paused_predict.py
    stops there, however fast the machine); the number of rows."""
    deadline = time.monotonic() + timeout
    found = 0
    while found < rows and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
        table = out / "predictions.csv"
        found = table.read_bytes().count(b"\n") - 1 if table.exists() else 0
    assert process.poll() is None, process.stderr.read().decode()[-3000:] if process.stderr else process.returncode
    assert found >= rows, f"{found} rows after {timeout} s"
    return found


def read_people(out: Path) -> dict[str, list]:
    """people.jsonl: image key -> its persons (one line per image)."""
    records = [json.loads(line) for line in (out / "people.jsonl").read_text().splitlines()]
    assert len({r["image"] for r in records}) == len(records)  # one line per image, however often resumed
    return {r["image"]: r["people"] for r in records}


def check_outputs(
    out: Path,
    folder: Path,
    predictor,
    keys,
    tasks=("semseg", "depth", "normals", "people"),
    fmt="png",
    panels=False,
    sources: dict[str, Path] | None = None,
) -> None:
    """DIR holds exactly one complete, correct set of outputs per key, as the Predictor computes them.

    `sources`: key -> input file, where that is not `folder / key`."""
    keys = sorted(keys)
    sources = {k: (sources or {}).get(k, folder / k) for k in keys}
    rows = read_table(out)
    assert sorted(r["image"] for r in rows) == keys  # every image exactly once
    by_key = {r["image"]: r for r in rows}
    stems = [k.rsplit(".", 1)[0] for k in keys]
    expected_files = {"predict.json", "predictions.csv", "errors.jsonl"} | (
        {"predictions.parquet"} if HAVE_PYARROW else set()
    )
    dense = [t for t in tasks if t != "people"]  # a file per image each; the people are records in people.jsonl
    expected_files |= (
        {f"npz/{s}.npz" for s in stems} if fmt == "npz" else {f"{t}/{s}.png" for t in dense for s in stems}
    )
    expected_files |= {"people.jsonl", "people.coco.json"} if "people" in tasks else set()
    expected_files |= {f"visualize/{s}.png" for s in stems} if panels else set()
    assert visible_files(out) == expected_files  # nothing missing, no temporary or stray file
    pictures = [reference_pixels(sources[k]) for k in keys]
    expected = predictor.predict(pictures, tasks=list(tasks))
    codecs = {t.name: t.codec for t in predictor.package.config.tasks}
    people_task = predictor.package.config.task("people")
    if "people" in tasks:
        records = read_people(out)
        assert sorted(records) == keys
        assert any(want["people"] for want in expected)  # a scene among the inputs: persons are compared
    for key, stem, picture, want in zip(keys, stems, pictures, expected, strict=True):
        row = by_key[key]
        assert (int(row["height"]), int(row["width"])) == picture.shape[:2]
        assert os.path.samefile(row["source"], sources[key])
        if fmt == "npz":
            with np.load(out / "npz" / f"{stem}.npz") as arrays:
                got = {name: arrays[name] for name in arrays.files}
        else:
            got = {t: codecs[t].decode((out / t / f"{stem}.png").read_bytes(), t) for t in dense}
        if "semseg" in dense:
            assert got["semseg"].shape == want["semseg"].shape
            assert (got["semseg"] == want["semseg"]).mean() >= 0.999
        if "depth" in dense:  # png: millimetres; npz: float32 metres
            tolerance = 1e-4 if fmt == "npz" else 6e-4
            np.testing.assert_allclose(got["depth"], want["depth"], atol=tolerance)
        if "normals" in dense:  # png: 8 bits per component
            tolerance = 1e-4 if fmt == "npz" else 1.5 / 127.5
            np.testing.assert_allclose(got["normals"], want["normals"], atol=tolerance)
        if "people" in tasks:
            assert_same_people(records[key], want["people"])
            audience = expected_audience(want["people"], people_task.attributes)
            assert int(row["people_count"]) == audience["count"]
            assert int(row["people_looking"]) == audience["looking"]
            for name in ("age_group", "gender"):
                assert {c: int(row[f"people_{name}_{c}"]) for c in audience[name]} == audience[name], name
            if fmt == "npz":
                arrays = people_arrays(want["people"], people_task.attributes, people_task.yaw)
                assert {k for k in got if k.startswith("people_")} == set(arrays)
                for name, array in arrays.items():  # boxes in pixels, to 0.1; the rest to 4 decimals
                    np.testing.assert_allclose(got[name], array, atol=0.15 if name == "people_boxes" else 2e-4)
        if panels:
            panel = Image.open(out / "visualize" / f"{stem}.png")
            panel.load()
            # the input, then a picture per task (the maps, the people's boxes over the input); the
            # audience in words in a text column
            text = "people" in tasks
            assert panel.width == panel_width(tile_size(*picture.shape[:2])[1], 1 + len(tasks), text)
    if HAVE_PYARROW:
        import pyarrow.parquet as pq

        table = pq.read_table(out / "predictions.parquet").to_pylist()
        assert sorted(r["image"] for r in table) == keys
        assert table == [{**r, "height": int(r["height"]), "width": int(r["width"])} | _counts(r) for r in rows]


def _counts(row: dict[str, str]) -> dict[str, int]:
    """The people's columns (int32 in the Parquet copy)."""
    return {k: int(v) for k, v in row.items() if k.startswith("people_")}
