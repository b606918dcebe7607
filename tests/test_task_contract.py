"""The task registry is the one extension point (DESIGN.md): three task types that no onepass module
knows, one of each kind (tests/toy_tasks.py), registered here and only here, go through training,
export with parity, onepass predict, /predict and the KServe v2 endpoints; and no stage after the
models names a task type."""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import onepass
from onepass.data.codecs import DepthPngCodec
from onepass.data.folder import DatasetDescription, DatasetWriter
from onepass.data.people_json import PEOPLE_FILE, people_document, person_annotation, write_people_json
from onepass.models.tasks.base import TASK_TYPES, register_task
from tests.tiny import TINY_ENCODER
from tests.toy_tasks import TINTS, TOY_TASKS

REPOSITORY = Path(__file__).resolve().parents[1]
LATER_STAGES = ("export", "runtime", "serve", "predict", "bench")  # and models/ outside models/tasks/


@pytest.fixture
def toy_tasks():
    for cls in TOY_TASKS:
        register_task(cls)
    yield [cls.name for cls in TOY_TASKS]
    for cls in TOY_TASKS:
        del TASK_TYPES[cls.name]


def toy_scene(rng: np.random.Generator, height: int = 64, width: int = 96) -> tuple[np.ndarray, str, list]:
    """A dark picture tinted in one channel with 0-3 bright squares; its brightness is the label."""
    tint = int(rng.integers(3))
    image = np.full((height, width, 3), 30, np.uint8)
    image[..., tint] = 90
    boxes = []
    for _ in range(int(rng.integers(0, 4))):
        size = int(rng.integers(10, 20))
        x, y = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
        image[y : y + size, x : x + size] = 240
        boxes.append([x, y, size, size])
    return image, TINTS[tint], boxes


def write_toy_dataset(root: Path, n: int = 8) -> Path:
    rng = np.random.default_rng(0)
    writer = DatasetWriter(root, DatasetDescription((), {"toy_tint": TINTS}), {"toy_brightness": DepthPngCodec()})
    images, annotations = [], []
    for i in range(n):
        image, tint, boxes = toy_scene(rng)
        writer.write(f"{i:02d}", image, {"toy_brightness": image.mean(axis=2) / 255.0}, {"toy_tint": tint})
        images.append({"id": i, "file_name": f"{i:02d}.png", "width": image.shape[1], "height": image.shape[0]})
        annotations += [person_annotation(len(annotations) + k + 1, i, box, {}) for k, box in enumerate(boxes)]
    writer.close()
    write_people_json(root / PEOPLE_FILE, people_document(images, annotations), {})
    return root


@pytest.mark.slow
def test_a_task_of_each_kind_goes_through_every_stage_by_its_hooks(tmp_path, toy_tasks):
    from starlette.testclient import TestClient

    from onepass.export.onnx import export_onnx
    from onepass.export.parity import onnx_parity
    from onepass.predict.job import PredictJob, run_job
    from onepass.serve.http_api import build_app
    from onepass.serve.kserve import parse_response
    from onepass.serve.settings import ServeSettings
    from onepass.serve.state import Runtime
    from onepass.train.config import TrainConfig
    from onepass.train.loop import train

    data = write_toy_dataset(tmp_path / "data")
    config = TrainConfig.from_mapping(dict(
        data=str(data), val_data=str(data), out=str(tmp_path / "model"), tasks=tuple(toy_tasks), encoder=TINY_ENCODER,
        decoder_channels=16, input_size=(64, 96), steps=2, batch_size=4, num_workers=0, device="cpu",
    ))  # fmt: skip
    package = train(config, progress=False)
    assert set(package.metrics["metrics"]) == set(toy_tasks)  # evaluated on the held-out folder
    assert set(package.metrics["metrics"]["toy_blobs"]) >= {"ap50", "count_acc"}

    checks = onnx_parity(package, export_onnx(package))
    assert {c.output.split("_")[1] for c in checks} >= {"brightness", "tint", "blobs"}
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]

    out = tmp_path / "predicted"
    summary = run_job(
        PredictJob(inputs=(str(data / "images"),), out=out, model=str(package.path), backend="onnxruntime",
                   device="cpu", workers=1, progress=False)
    )  # fmt: skip
    assert (summary.done, summary.failed) == (8, 0)
    assert len(list((out / "toy_brightness").glob("*.png"))) == 8  # a map task's file per image
    with (out / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["toy_tint"] for r in rows} <= set(TINTS) and all(r["toy_blobs_count"].isdigit() for r in rows)
    records = [json.loads(line) for line in (out / "toy_blobs.jsonl").read_text().splitlines()]
    assert sorted(r["image"] for r in records) == sorted(r["image"] for r in rows)

    predictor = onepass.load(package.path, backend="onnxruntime", device="cpu")
    client = TestClient(build_app(1 << 20, Runtime(predictor, ServeSettings(), {})))
    buffer = io.BytesIO()
    Image.fromarray(toy_scene(np.random.default_rng(7))[0]).save(buffer, format="PNG")
    body = client.post("/predict", files={"image": ("toy.png", buffer.getvalue(), "image/png")}).json()
    assert set(body["maps"]) == {"toy_brightness"} and body["toy_tint"] in TINTS
    assert isinstance(body["toy_blobs"], list) and body["audience"]["count"] == len(body["toy_blobs"])
    metadata = client.get(f"/v2/models/{package.name}").json()
    names = [o["name"] for o in metadata["outputs"]]
    assert names == [s.name for t in package.config.tasks for s in t.output_specs()]
    image = np.zeros((1, 64, 96, 3), np.uint8)
    request = {
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": list(image.shape), "data": image.ravel().tolist()}]
    }
    response = client.post(f"/v2/models/{package.name}/infer", json=request)
    assert response.status_code == 200, response.text
    arrays = parse_response(response.content, None)
    assert arrays["toy_blobs_boxes"].shape == (1, 4, 4) and arrays["toy_blobs_count"].dtype == np.int64
    expected = predictor.backend.run(image)
    for name in names:
        np.testing.assert_allclose(arrays[name], expected[name], rtol=1e-6)


def string_constants(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module's code (docstrings left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_stage_after_the_models_names_a_task_type():
    names = set(TASK_TYPES)
    files = [p for stage in LATER_STAGES for p in (REPOSITORY / stage).rglob("*.py")]
    files += [p for p in (REPOSITORY / "models").rglob("*.py") if "tasks" not in p.relative_to(REPOSITORY).parts]
    assert len(files) > 40
    named = [
        f"{p.relative_to(REPOSITORY)}:{line} {value!r}"
        for p in files
        for line, value in string_constants(p)
        if value in names
    ]
    assert not named, named
    dense = [f"{p.relative_to(REPOSITORY)}" for p in files if re.search(r"\.dense\b", p.read_text())]
    assert not dense, dense  # the kind is the task's business: stages call its hooks


def test_the_registry_check_catches_a_name(tmp_path):
    (tmp_path / "m.py").write_text('"""semseg in a docstring is fine."""\nx = {"semseg": 1}\n')
    assert string_constants(tmp_path / "m.py") == [(2, "semseg")]
