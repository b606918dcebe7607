"""The people task's COCO results file from `onepass predict`: numbered with a labelled folder's own
ids, so that pycocotools scores it against that folder's people.json as it is."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import onepass
from onepass.cli import main
from onepass.data.synth_dataset import write_synthetic_dataset
from onepass.predict.run_files import image_ids

FAST = ["--backend", "torch", "--device", "cpu", "--no-progress", "--tasks", "people"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("labelled")
    write_synthetic_dataset(root, 6, (128, 160), seed=11, workers=1, progress=False)
    # ids that are not the images' positions, so that only the folder's own ids can match them
    document = json.loads((root / "people.json").read_text())
    for entry in (*document["images"], *document["annotations"]):
        entry["image_id" if "image_id" in entry else "id"] += 100
    (root / "people.json").write_text(json.dumps(document))
    return root


def _ap50(ground_truth: COCO, results: list) -> float:
    evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
    evaluation.evaluate(), evaluation.accumulate(), evaluation.summarize()
    return float(evaluation.stats[1])


def test_results_score_against_the_labelled_folder_as_the_predictor_does(dataset, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", str(dataset / "images"), "--out", str(out), *FAST]) == 0
    results = json.loads((out / "people.coco.json").read_text())
    ground_truth = COCO(str(dataset / "people.json"))
    ids = {image["file_name"]: image_id for image_id, image in ground_truth.imgs.items()}
    # the same persons as the Predictor finds on each image, in COCO's [x, y, w, h] with the folder's ids
    predictor = onepass.load(backend="torch", device="cpu")
    expected = []
    for name, image_id in sorted(ids.items()):
        (result,) = predictor.predict(np.asarray(Image.open(dataset / "images" / name).convert("RGB")))
        for person in result["people"]:
            x0, y0, x1, y1 = person["box"]
            expected.append((image_id, person["score"], (x0, y0, x1 - x0, y1 - y0)))
    got = [(r["image_id"], r["score"], tuple(r["bbox"])) for r in results]
    assert len(got) == len(expected) and len(got) > 0
    for (gid, gscore, gbox), (eid, escore, ebox) in zip(sorted(got), sorted(expected), strict=True):
        assert gid == eid and gscore == pytest.approx(escore, abs=1e-4)
        np.testing.assert_allclose(gbox, ebox, atol=0.11)  # boxes are written to 0.1 px
    assert {r["file_name"] for r in results} <= set(ids)
    assert all(set(r["attributes"]) == {"age_group", "gender", "looking", "yaw"} for r in results)
    assert _ap50(ground_truth, results) > 0.5  # the shipped model finds these people (AP50 0.97 on 500 scenes)


def test_without_a_labelled_folder_images_are_numbered_in_key_order(tmp_path):
    assert image_ids(["b.png", "a.png", "c/d.png"], [str(tmp_path)]) == {"a.png": 1, "b.png": 2, "c/d.png": 3}
