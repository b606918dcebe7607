"""docs/custom-data.md, end to end, on a small generated dataset laid out exactly as the doc says: a
folder of camera frames, labels from the tools (a mask folder and its class list, depth as float .npy
and 16-bit PNG, a CVAT COCO export of the people with the user's own person attributes), partial
labels everywhere, the user's own image-level groups; then the doc's commands: convert, train with
configs/advertising.yaml, export (parity checked), and /predict answering with the user's names."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import onepass
from onepass.cli import main
from onepass.data.folder import FolderDataset
from onepass.models.package import open_package
from onepass.train.config import TrainConfig, read_config_file
from tests.tiny import TINY_ENCODER

REPOSITORY = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 64, 96
FRAMES = 12
# dataset.json, as the doc writes it
DATASET = {
    "format": "onepass-dataset",
    "version": 1,
    "classes": ["floor", "wall", "shelf", "person"],
    "attribute_groups": {"crowd": ["empty", "one", "group"], "lights": ["off", "on"]},
    "person_attributes": {
        "age_band": ["0-17", "18-29", "30-44", "45-64", "65+"],
        "gender": ["female", "male"],
    },
}
TOOL_CLASSES = ["background", "person", "shelf", "wall", "floor"]  # the labelling tool's own order


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """A frame, its class map in the tool's ids, and 0-2 person boxes [x, y, w, h]."""
    tool_ids = np.full((HEIGHT, WIDTH), 4, np.uint8)  # floor
    tool_ids[: HEIGHT // 2] = 3  # wall
    tool_ids[10:30, 60:90] = 2  # shelf
    boxes = []
    for _ in range(int(rng.integers(0, 3))):
        x, y = int(rng.integers(0, WIDTH - 16)), int(rng.integers(0, HEIGHT - 30))
        tool_ids[y : y + 30, x : x + 16] = 1
        boxes.append([x, y, 16, 30])
    colours = np.array([[0, 0, 0], [230, 180, 150], [120, 80, 40], [200, 200, 210], [90, 90, 90]], np.uint8)
    image = np.clip(colours[tool_ids] + rng.integers(-20, 20, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    return image, tool_ids, boxes


def lay_out(root: Path) -> tuple[Path, Path]:
    """my-frames/ (images, dataset.json, attributes.csv) and labels/ (what the tools exported)."""
    frames, labels = root / "my-frames", root / "labels"
    (frames / "images" / "cam1").mkdir(parents=True)
    for folder in ("masks/cam1", "depth/cam1"):
        (labels / folder).mkdir(parents=True)
    (frames / "dataset.json").write_text(json.dumps(DATASET, indent=2))
    (labels / "classes.txt").write_text("\n".join(TOOL_CLASSES) + "\n")
    rng = np.random.default_rng(0)
    coco_images, annotations, rows = [], [], ["image,crowd,lights"]
    for i in range(FRAMES):
        image, tool_ids, boxes = scene(rng)
        name = f"cam1/{i:04d}.jpg"
        Image.fromarray(image).save(frames / "images" / name, quality=95)
        if i < 4:  # masks for a few frames
            Image.fromarray(tool_ids).save(labels / "masks" / "cam1" / f"{i:04d}.png")
        if 3 <= i < 5:  # depth from the camera's SDK as float metres
            np.save(
                labels / "depth" / "cam1" / f"{i:04d}.npy",
                np.linspace(1.0, 6.0, HEIGHT * WIDTH, dtype=np.float32).reshape(HEIGHT, WIDTH),
            )
        if i == 5:  # ... or as a 16-bit PNG in millimetres
            Image.fromarray(np.full((HEIGHT, WIDTH), 2500, np.uint16)).save(labels / "depth" / "cam1" / f"{i:04d}.png")
        if i >= 4:  # people boxes and attributes, from CVAT
            coco_images.append({"id": i + 1, "file_name": name, "width": WIDTH, "height": HEIGHT})
            for box in boxes:
                attributes = {
                    "age_band": str(rng.choice(DATASET["person_attributes"]["age_band"])),
                    "gender": str(rng.choice(DATASET["person_attributes"]["gender"])),
                    "looking": bool(rng.random() < 0.5),
                    "occluded": False,  # CVAT's own, left out with --drop-attribute
                }
                annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "bbox": box,
                                    "area": box[2] * box[3], "iscrowd": 0, "attributes": attributes})  # fmt: skip
        if i % 3:  # image-level attributes for some frames
            rows.append(f"{name},{['empty', 'one', 'group'][min(len(boxes), 2)]},{'on' if i % 2 else ''}")
    (frames / "attributes.csv").write_text("\n".join(rows) + "\n")
    coco = {"images": coco_images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    (labels / "instances.json").write_text(json.dumps(coco))
    return frames, labels


def test_the_advertising_preset_is_camera_sized_with_every_task():
    config = TrainConfig.from_mapping(
        {**read_config_file(REPOSITORY / "configs" / "advertising.yaml"), "data": "d", "out": "o"}
    )
    assert min(config.model.input_size) >= 256 and config.model.input_size[1] >= 320
    assert set(config.model.tasks) == {"semseg", "depth", "normals", "attributes", "people"}


@pytest.mark.slow
def test_a_users_own_dataset_trains_exports_and_serves_with_its_names(tmp_path, capsys):
    from starlette.testclient import TestClient

    from onepass.serve.http_api import build_app
    from onepass.serve.settings import ServeSettings
    from onepass.serve.state import Runtime

    frames, labels = lay_out(tmp_path)
    # the doc's commands, as a user types them
    commands = [
        ["data", "convert", "semseg-masks", str(labels / "masks"), str(frames), "--classes", str(labels / "classes.txt"),
         "--unlabelled", "background"],
        ["data", "convert", "depth", str(labels / "depth"), str(frames)],
        ["data", "convert", "coco-people", str(labels / "instances.json"), str(frames), "--drop-attribute", "occluded"],
        ["train", "--config", str(REPOSITORY / "configs" / "advertising.yaml"), "--data", str(frames),
         "--val-data", str(frames), "--out", str(tmp_path / "my-model"),
         "--tasks", "semseg,depth,attributes,people",  # no normals labelled: the doc's "leave out what you lack"
         # small for the test: the doc's command has none of these
         "--encoder", TINY_ENCODER, "--input-size", f"{HEIGHT}x{WIDTH}", "--steps", "2", "--batch-size", "4",
         "--num-workers", "0", "--device", "cpu", "--set", "decoder_channels=16", "warmup_steps=1"],
        ["export", str(tmp_path / "my-model")],
    ]  # fmt: skip
    for argv in commands:
        assert main(argv) == 0, (argv, capsys.readouterr().err)

    folder = FolderDataset(frames, {})
    labelled = {
        name: sum((frames / name / "cam1" / f"{i:04d}.png").is_file() for i in range(FRAMES))
        for name in ("semseg", "depth")
    }
    assert labelled == {"semseg": 4, "depth": 3}
    assert sum(folder[i].instances is not None for i in range(FRAMES)) == 8  # frames 4-11 have people labels

    package = open_package(tmp_path / "my-model")
    people = package.config.task("people")
    assert people.attributes == {
        **{k: tuple(v) for k, v in DATASET["person_attributes"].items()},
        "looking": ("no", "yes"),
    }
    assert package.config.task("attributes").groups == {k: tuple(v) for k, v in DATASET["attribute_groups"].items()}
    assert package.training["train_images"] == FRAMES
    assert set(package.metrics["metrics"]) == {"semseg", "depth", "attributes", "people"}
    exports = json.loads((package.path / "exports.json").read_text())
    assert all(check["passed"] for check in exports["files"]["model.onnx"]["parity"])  # export with parity

    predictor = onepass.load(package.path, backend="onnxruntime", device="cpu")
    client = TestClient(build_app(1 << 20, Runtime(predictor, ServeSettings(), {})))
    buffer = io.BytesIO()
    Image.fromarray(scene(np.random.default_rng(9))[0]).save(buffer, format="JPEG")
    response = client.post("/predict", files={"image": ("frame.jpg", buffer.getvalue(), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["attributes"]) == {"crowd", "lights"}
    assert set(body["attributes"]["crowd"]["probabilities"]) == {"empty", "one", "group"}
    assert set(body["audience"]["age_band"]) == set(DATASET["person_attributes"]["age_band"])
    assert set(body["audience"]["gender"]) == {"female", "male"}
    assert set(body["maps"]) == {"semseg", "depth"}
    for person in body["people"]:
        assert {"box", "score", "age_band", "gender", "looking", "yaw"} <= set(person)
    outputs = [o["name"] for o in client.get(f"/v2/models/{package.name}").json()["outputs"]]
    assert {"people_age_band", "people_gender", "attr_crowd", "attr_lights"} <= set(outputs)
