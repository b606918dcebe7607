"""Labels from common tools into a folder dataset: COCO instances for people (coco-people), a mask folder
with the tool's class list (semseg-masks), depth as 16-bit PNGs or float .npy files (depth)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onepass.cli import main
from onepass.data.codecs import DepthPngCodec
from onepass.data.convert import ConvertError, convert
from onepass.data.folder import DatasetDescription, DatasetWriter, FolderDataset
from onepass.errors import UserError
from tests.tiny import CODECS

SIZE = (40, 56)  # (H, W)
CLASSES = ("floor", "wall", "person")
PERSON_ATTRIBUTES = {"age_band": ("0-17", "18-29", "30-44", "45-64", "65+"), "gender": ("female", "male")}


def frames(root: Path, n: int = 3) -> Path:
    """A folder dataset with images only (cam/0000.png ...) and dataset.json, before any label."""
    writer = DatasetWriter(root, DatasetDescription(CLASSES, {}, PERSON_ATTRIBUTES), {})
    rng = np.random.default_rng(0)
    for i in range(n):
        writer.write(f"cam/{i:04d}", rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8), {}, {})
    writer.close()
    return root


def save_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


# ---- semseg-masks ------------------------------------------------------------------------------


def tool_masks(root: Path) -> tuple[Path, np.ndarray]:
    """Id masks in the tool's own order (background, person, wall, floor), 255 = unlabelled."""
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 4, SIZE).astype(np.uint8)
    ids[:5] = 255
    save_png(root / "masks" / "cam" / "0000.png", ids)  # mode L
    (root / "classes.txt").write_text("# exported by the tool\nbackground\nperson\nwall\n\nfloor\n")
    return root / "masks", ids


def test_masks_are_renumbered_to_the_datasets_classes_by_name(tmp_path):
    data = frames(tmp_path / "data")
    masks, ids = tool_masks(tmp_path)
    report = convert("semseg-masks", masks, data, classes=str(tmp_path / "classes.txt"), unlabelled=["background"])
    assert "wrote 1 masks" in report and "2 images have none" in report
    folder = FolderDataset(data, CODECS)
    semseg = folder[folder.ids.index("cam/0000")].maps["semseg"]
    expected = np.array([255, 2, 1, 0] + [255] * 252, np.uint8)[ids]  # background and 255 -> no label
    assert (semseg == expected).all()
    assert folder[folder.ids.index("cam/0001")].maps["semseg"] is None  # partial labels stay partial


def test_colour_masks_with_a_cvat_labelmap(tmp_path):
    data = frames(tmp_path / "data")
    colours = {"background": (0, 0, 0), "floor": (250, 50, 83), "wall": (61, 245, 61), "person": (255, 204, 51)}
    (tmp_path / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\n" + "".join(f"{n}:{r},{g},{b}::\n" for n, (r, g, b) in colours.items())
    )
    ids = np.random.default_rng(2).integers(0, 4, SIZE)
    rgb = np.array(list(colours.values()), np.uint8)[ids]
    save_png(tmp_path / "masks" / "cam" / "0002.png", rgb)
    convert("semseg-masks", tmp_path / "masks", data, classes=str(tmp_path / "labelmap.txt"), unlabelled=["background"])
    folder = FolderDataset(data, CODECS)
    semseg = folder[folder.ids.index("cam/0002")].maps["semseg"]
    assert (semseg == np.array([255, 0, 1, 2], np.uint8)[ids]).all()


def test_a_colour_outside_the_labelmap_is_named(tmp_path):
    data = frames(tmp_path / "data")
    (tmp_path / "labelmap.txt").write_text("floor:1,2,3::\nwall:4,5,6::\nperson:7,8,9::\n")
    rgb = np.zeros((*SIZE, 3), np.uint8)
    rgb[:] = (4, 5, 6)  # wall
    rgb[0, 0] = (9, 9, 9)
    path = save_png(tmp_path / "masks" / "cam" / "0000.png", rgb)
    with pytest.raises(ConvertError, match=r"colours \[\(9, 9, 9\)\] are not in the labelmap") as caught:
        convert("semseg-masks", tmp_path / "masks", data, classes=str(tmp_path / "labelmap.txt"))
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("unknown class", r"classes \['background'\] are not in .*dataset.json.*--unlabelled"),
        ("value past the list", r"values \[7\] are not ids of the 4 classes"),
        ("wrong size", r"label is 56x39 \(WxH\) but its image .* is 56x40"),
        ("no image", r"1 label files have no image .*cam/9999.png"),
        ("RGB without labelmap", "a RGB PNG; masks here are 8-bit grey or palette PNGs of ids"),
    ],
)
def test_masks_that_do_not_fit_are_refused(tmp_path, change, message):
    data = frames(tmp_path / "data")
    masks, ids = tool_masks(tmp_path)
    mask = masks / "cam" / "0000.png"
    options = {"classes": str(tmp_path / "classes.txt"), "unlabelled": ["background"]}
    if change == "unknown class":
        options["unlabelled"] = []
    elif change == "value past the list":
        ids[3, 3] = 7
        save_png(mask, ids)
    elif change == "wrong size":
        save_png(mask, ids[1:])
    elif change == "no image":
        save_png(masks / "cam" / "9999.png", ids)
    else:
        save_png(mask, np.stack([ids] * 3, axis=2))
    with pytest.raises(ConvertError, match=message):
        convert("semseg-masks", masks, data, **options)


# ---- depth ---------------------------------------------------------------------------------------


def test_depth_from_npy_metres_and_png_units(tmp_path):
    data = frames(tmp_path / "data")
    rng = np.random.default_rng(3)
    metres = rng.uniform(0.5, 8.0, SIZE).astype(np.float32)
    metres[0, :4] = (np.nan, np.inf, -np.inf, 0.0)  # float depth maps' marks of "no measurement"
    (tmp_path / "depth" / "cam").mkdir(parents=True)
    np.save(tmp_path / "depth" / "cam" / "0000.npy", metres[..., None])  # (H, W, 1)
    tum = np.rint(rng.uniform(0.5, 8.0, SIZE) * 5000).astype(np.uint16)  # TUM RGB-D: 5000 per metre
    save_png(tmp_path / "depth" / "cam" / "0001.png", tum)
    report = convert("depth", tmp_path / "depth", data, png_scale=5000)
    assert "wrote 2 depth maps" in report
    folder = FolderDataset(data, CODECS)
    first = folder[folder.ids.index("cam/0000")].maps["depth"]
    assert (first[0, :4] == 0).all()
    np.testing.assert_allclose(first[1:], metres[1:], atol=0.5e-3 + 1e-6)
    np.testing.assert_allclose(folder[folder.ids.index("cam/0001")].maps["depth"], tum / 5000, atol=0.5e-3 + 1e-6)


def test_millimetre_pngs_go_through_unchanged(tmp_path):
    data = frames(tmp_path / "data")
    millimetres = np.random.default_rng(4).integers(0, 9000, SIZE).astype(np.uint16)
    source = save_png(tmp_path / "depth" / "cam" / "0002.png", millimetres)
    convert("depth", tmp_path / "depth", data)
    written = DepthPngCodec().decode((data / "depth" / "cam" / "0002.png").read_bytes(), "written")
    assert (np.rint(written * 1000).astype(np.uint16) == millimetres).all()
    assert source.is_file()  # the source is read, never moved


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("0000.npy", -np.ones(SIZE, np.float32), "depth from -1 to -1 m"),
        ("0000.npy", np.full(SIZE, 70.0, np.float32), "is the scale right"),
        ("0000.npy", np.ones(SIZE, np.int32), "depth is a float \\(H, W\\) array"),
        ("0000.png", np.ones(SIZE, np.uint8), "8 bits cannot hold depth"),
    ],
)
def test_depth_that_cannot_be_stored_is_refused(tmp_path, name, array, message):
    data = frames(tmp_path / "data")
    path = tmp_path / "depth" / "cam" / name
    if name.endswith(".npy"):
        path.parent.mkdir(parents=True)
        np.save(path, array)
    else:
        save_png(path, array)
    with pytest.raises(ConvertError, match=message) as caught:
        convert("depth", tmp_path / "depth", data)
    assert str(path) in str(caught.value)


def test_two_depth_files_for_one_image_are_refused(tmp_path):
    data = frames(tmp_path / "data")
    save_png(tmp_path / "depth" / "cam" / "0000.png", np.ones(SIZE, np.uint16))
    np.save(tmp_path / "depth" / "cam" / "0000.npy", np.ones(SIZE, np.float32))
    with pytest.raises(ConvertError, match="labels the same image; keep one"):
        convert("depth", tmp_path / "depth", data)


# ---- coco-people -------------------------------------------------------------------------------


def coco_export(path: Path, crowd: bool = False, width: int = SIZE[1]) -> Path:
    """A COCO instances file as CVAT exports it: file names under frames/, a second category, and the
    annotations' attributes (with CVAT's own 'occluded')."""
    images = [
        {"id": 10 + i, "file_name": f"frames/cam/{i:04d}.png", "width": width, "height": SIZE[0]} for i in range(2)
    ]
    person = {"age_band": "30-44", "gender": "female", "looking": True, "yaw": -12.5, "occluded": False}
    annotations = [
        {"id": 1, "image_id": 10, "category_id": 1, "bbox": [4, 5, 10, 20], "area": 200, "iscrowd": 0,
         "segmentation": [], "attributes": person},
        {"id": 2, "image_id": 10, "category_id": 1, "bbox": [30, 2, 12, 30], "area": 360, "iscrowd": 0,
         "attributes": {"age_band": "65+", "occluded": True}},
        {"id": 3, "image_id": 10, "category_id": 2, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0},
        {"id": 4, "image_id": 11, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 400, "iscrowd": int(crowd)},
    ]  # fmt: skip
    categories = [{"id": 1, "name": "person"}, {"id": 2, "name": "chair"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_a_cvat_coco_export_becomes_people_json(tmp_path, capsys):
    data = frames(tmp_path / "data")
    export = coco_export(tmp_path / "instances.json")
    argv = ["data", "convert", "coco-people", str(export), str(data), "--strip-prefix", "frames/",
            "--drop-attribute", "occluded"]  # fmt: skip
    assert main(argv) == 0
    assert "3 people in 2 images" in capsys.readouterr().out
    folder = FolderDataset(data, CODECS)
    first = folder[folder.ids.index("cam/0000")].instances
    assert [p["bbox"] for p in first] == [[4, 5, 10, 20], [30, 2, 12, 30]]  # the chair is left out
    assert first[0]["attributes"] == {"age_band": "30-44", "gender": "female", "looking": True, "yaw": -12.5}
    assert first[1]["attributes"] == {"age_band": "65+"}
    assert len(folder[folder.ids.index("cam/0001")].instances) == 1
    assert folder[folder.ids.index("cam/0002")].instances is None  # not listed: no people labels


@pytest.mark.parametrize(
    ("options", "crowd", "width", "message"),
    [
        ({}, False, SIZE[1], r"file_name 'frames/cam/0000.png' is not in images/; did you mean 'cam/0000.png'"),
        ({"strip_prefix": "frames/"}, False, SIZE[1], r"attributes \['occluded'\] are not person attributes"),
        ({"strip_prefix": "frames/", "drop_attribute": ["occluded"]}, True, SIZE[1], "--drop-crowd"),
        ({"strip_prefix": "frames/", "drop_attribute": ["occluded"]}, False, 99, "is 99x40 in the JSON but 56x40"),
        ({"strip_prefix": "frames/", "category": "human"}, False, SIZE[1], "no category named 'human'"),
    ],
)
def test_coco_files_that_do_not_fit_are_refused(tmp_path, options, crowd, width, message):
    data = frames(tmp_path / "data")
    export = coco_export(tmp_path / "instances.json", crowd, width)
    with pytest.raises(ConvertError, match=message):
        convert("coco-people", export, data, **options)
    assert not (data / "people.json").exists()


def test_crowds_can_be_left_out_and_say_so(tmp_path):
    data = frames(tmp_path / "data")
    export = coco_export(tmp_path / "instances.json", crowd=True)
    report = convert("coco-people", export, data, strip_prefix="frames/", drop_attribute=["occluded"], drop_crowd=True)
    assert "2 people in 2 images; left out 1 crowd regions" in report
    folder = FolderDataset(data, CODECS)
    assert folder[folder.ids.index("cam/0001")].instances == []  # listed, nobody left in it


def test_unknown_formats_and_options_are_named():
    with pytest.raises(UserError, match="unknown convert format 'coco'"):
        convert("coco", "a", "b")
    with pytest.raises(ConvertError, match=r"depth: unknown option\(s\) \['classes'\]"):
        convert("depth", "a", "b", classes="x")
    with pytest.raises(ConvertError, match="semseg-masks needs --classes"):
        convert("semseg-masks", "a", "b")
