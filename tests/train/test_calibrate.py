"""Calibration (train/calibrate.py): the people count's score threshold, chosen after training or by
`onepass calibrate`, is the one that counts the most images right (checked by trying every threshold),
lands in the package, and the reloaded package's graphs, PyTorch and the exported ONNX alike, count
with it; bad data is one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from onepass.cli import main
from onepass.data.folder import DatasetError
from onepass.data.synth_dataset import write_synthetic_dataset
from onepass.models import MultiTaskModel, open_package, save_package
from onepass.models.inference_graph import InferenceGraph
from onepass.models.model import ModelConfig
from onepass.models.package import CONFIG_FILE, save_metrics
from onepass.models.tasks import PeopleTask
from onepass.train.config import TrainConfig
from onepass.train.dataset import TaskDataset
from onepass.train.evaluate import data_description, evaluate_dataset
from onepass.train.loop import Trainer, train
from tests.models.test_people_task import brute_force_best_count_accuracy
from tests.tiny import PERSON_ATTRIBUTES, TINY_ENCODER, tiny_config, write_random_dataset

SIZE = (64, 96)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Synthetic scenes with people: a training folder and a held-out one."""
    root = tmp_path_factory.mktemp("scenes")
    write_synthetic_dataset(root / "train", 16, SIZE, seed=3, workers=1, progress=False)
    write_synthetic_dataset(root / "held-out", 8, SIZE, seed=4, workers=1, progress=False)
    return root


def people_config() -> ModelConfig:
    return tiny_config(tasks=(PeopleTask(PERSON_ATTRIBUTES, max_people=8),))


@pytest.fixture
def package(tmp_path, scenes):
    """An untrained tiny people model (its scores are what they are: any scores will do), with a
    metrics.json scored on the held-out scenes."""
    torch.manual_seed(0)
    model = MultiTaskModel(people_config()).eval()
    path = tmp_path / "pkg"
    save_package(path, model, "tiny")
    held_out = scenes / "held-out"
    metrics = evaluate_dataset(model, TaskDataset.from_folder(held_out, model.config.tasks, SIZE), progress=False)
    save_metrics(path, metrics, data_description(held_out, 8), {"trivial": {"people": {"count_acc": 12.5}}})
    return path


def scores_and_counts(package_path, folder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every image's peak scores and the graph's count, from the package's own inference graph on
    uint8 frames, and the true counts from the folder's labels."""
    package = open_package(package_path)
    dataset = TaskDataset.from_folder(folder, package.config.tasks, SIZE)
    images = np.stack([dataset[i]["image"].permute(1, 2, 0).numpy() for i in range(len(dataset))])
    with torch.no_grad():
        outputs = InferenceGraph(package.load_model()).eval()(torch.from_numpy(images))
    true = np.array([int(dataset[i]["people"]["valid"].sum()) for i in range(len(dataset))])
    return outputs["people_scores"].numpy(), outputs["people_count"].numpy(), true


@pytest.mark.slow
def test_calibrate_chooses_the_best_threshold_and_the_exported_graph_counts_with_it(package, scenes, capsys):
    import onnxruntime

    from onepass.export.onnx import export_onnx

    train_folder, held_out = scenes / "train", scenes / "held-out"
    scores, old_counts, true = scores_and_counts(package, train_folder)
    best = brute_force_best_count_accuracy(scores, true)
    old_accuracy = 100.0 * float((old_counts == true).mean())
    assert best > old_accuracy  # the untrained model's scores leave 0.3 far from the best: a real change

    (package / "model.onnx").write_bytes(b"an export of the old settings")  # only its name matters here
    assert main(["calibrate", str(package), "--data", str(train_folder)]) == 0
    out = capsys.readouterr().out
    assert "people: score_threshold 0.3 -> " in out
    assert "model.onnx: exported with the old settings, so refused from now on" in out
    assert f"export the package again with `onepass export {package}`" in out

    calibrated = open_package(package)
    threshold = calibrated.config.task("people").score_threshold
    record = calibrated.training["calibration"]
    assert record["data"]["path"] == str(train_folder) and record["data"]["images"] == 16
    assert record["data"]["synth"]["seed"] == 3  # the folder's own provenance
    choice = record["tasks"]["people"]
    assert choice["score_threshold"] == {"before": 0.3, "after": threshold}
    assert choice["count_acc"]["before"] == pytest.approx(old_accuracy)
    assert choice["count_acc"]["after"] == pytest.approx(best)

    # the reloaded package's graph counts at the new threshold, and so do its metrics.json and ONNX
    new_scores, new_counts, new_true = scores_and_counts(package, train_folder)
    np.testing.assert_array_equal(new_scores, scores)  # same weights
    np.testing.assert_array_equal(new_counts, (scores >= threshold).sum(axis=1))
    assert 100.0 * float((new_counts == new_true).mean()) == pytest.approx(best)
    metrics = calibrated.metrics
    assert metrics["data"]["path"] == str(held_out)
    assert metrics["baselines"] == {"trivial": {"people": {"count_acc": 12.5}}}
    held_out_set = TaskDataset.from_folder(held_out, calibrated.config.tasks, SIZE)
    rescored = evaluate_dataset(calibrated.load_model(), held_out_set, progress=False)
    assert metrics["metrics"]["people"]["count_acc"] == pytest.approx(rescored["people"]["count_acc"])

    onnx_path = export_onnx(calibrated)
    dataset = TaskDataset.from_folder(train_folder, calibrated.config.tasks, SIZE)
    images = np.stack([dataset[i]["image"].permute(1, 2, 0).numpy() for i in range(len(dataset))])
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (onnx_counts,) = session.run(["people_count"], {"image": images})
    np.testing.assert_array_equal(onnx_counts, new_counts)
    assert (onnx_counts != old_counts).any()  # so the graph cannot be counting at the old threshold


@pytest.mark.slow
def test_training_calibrates_on_the_training_images_after_the_last_epoch(tmp_path, scenes):
    def config(out: str, **overrides) -> TrainConfig:
        return TrainConfig.from_mapping(dict(
            data=str(scenes / "train"), val_data=str(scenes / "held-out"), out=str(tmp_path / out), tasks=("people",),
            encoder=TINY_ENCODER, decoder_channels=16, input_size=SIZE, steps=2, batch_size=8, num_workers=0,
            warmup_steps=1, device="cpu", **overrides,
        ))  # fmt: skip

    package = train(config("calibrated", calibration_images=12), progress=False)
    record = package.training["calibration"]
    assert record["data"]["path"] == str(scenes / "train") and record["data"]["images"] == 12
    threshold = package.config.task("people").score_threshold
    assert record["tasks"]["people"]["score_threshold"]["after"] == threshold
    assert open_package(package.path).config == package.config
    # metrics.json is scored after the calibration, at the threshold the package holds
    model = open_package(package.path).load_model()
    held_out = TaskDataset.from_folder(scenes / "held-out", model.config.tasks, SIZE)
    expected = evaluate_dataset(model, held_out, progress=False)["people"]["count_acc"]
    assert package.metrics["metrics"]["people"]["count_acc"] == pytest.approx(expected)

    uncalibrated = train(config("plain", calibrate=False), progress=False)
    assert "calibration" not in uncalibrated.training
    assert uncalibrated.config.task("people").score_threshold == 0.3


def test_a_wrong_calibration_folder_fails_before_training(tmp_path, scenes):
    config = TrainConfig.from_mapping(dict(
        data=str(scenes / "train"), out=str(tmp_path / "pkg"), tasks=("people",), encoder=TINY_ENCODER,
        decoder_channels=16, input_size=SIZE, steps=1, batch_size=8, num_workers=0, device="cpu",
        calibration_data=str(tmp_path / "nowhere"),
    ))  # fmt: skip
    with pytest.raises(DatasetError, match="nowhere"):
        Trainer(config, progress=False)


def test_calibration_data_without_labels_fails_after_training_and_the_run_can_still_finish(tmp_path, scenes):
    unlabelled = write_random_dataset(tmp_path / "unlabelled", n=4, size=SIZE)  # no people.json
    values = dict(
        data=str(scenes / "train"), out=str(tmp_path / "pkg"), tasks=("people",), encoder=TINY_ENCODER,
        decoder_channels=16, input_size=SIZE, steps=1, batch_size=8, num_workers=0, device="cpu",
        calibration_data=str(unlabelled),
    )  # fmt: skip
    with pytest.raises(DatasetError, match="no image has people labels.*finish the run with --resume"):
        train(TrainConfig.from_mapping(values), progress=False)
    package = train(TrainConfig.from_mapping({**values, "calibrate": False}), resume=True, progress=False)
    assert package.training["steps"] == 1 and "calibration" not in package.training


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--data", "{tmp}/nowhere"], "--data {tmp}/nowhere: no such folder"),
        (["--data", "{tmp}/unlabelled"], "{tmp}/unlabelled: no image has people labels"),
        (["--data", "{scenes}/held-out"], "is the held-out folder {pkg}/metrics.json is scored on"),
        (["--data", "{scenes}/train", "--images", "0"], "--images must be positive"),
    ],
)
def test_bad_calibration_data_is_one_clear_line_and_changes_nothing(package, scenes, tmp_path, capsys, arguments,
                                                                    message):  # fmt: skip
    write_random_dataset(tmp_path / "unlabelled", n=4, size=SIZE)  # images without a people.json
    before = (package / CONFIG_FILE).read_text()
    fill = {"tmp": tmp_path, "scenes": scenes, "pkg": package}
    assert main(["calibrate", str(package), *(a.format(**fill) for a in arguments)]) == 2
    error = capsys.readouterr().err.splitlines()[-1]  # after the progress lines of a pass over the data
    assert error.startswith("onepass calibrate: error: ") and message.format(**fill) in error, error
    assert (package / CONFIG_FILE).read_text() == before


def test_a_model_without_settings_to_calibrate_is_refused(tmp_path, scenes, capsys):
    save_package(tmp_path / "dense", MultiTaskModel(tiny_config()), "dense")
    assert main(["calibrate", str(tmp_path / "dense"), "--data", str(scenes / "train")]) == 2
    error = capsys.readouterr().err
    assert "no task of this model has settings to calibrate (semseg, depth, normals, attributes)" in error


def test_a_malformed_calibration_record_is_refused_by_the_loader(package):
    document = json.loads((package / CONFIG_FILE).read_text())
    document["training"]["calibration"] = {"data": "somewhere"}
    (package / CONFIG_FILE).write_text(json.dumps(document))
    with pytest.raises(ValueError, match="'training.calibration' must be an object with 'data' and 'tasks'"):
        open_package(package)
