"""`init_from`: a new run starts from a package's weights (fresh optimiser and schedule), records the
package's path and weights' SHA-256, refuses weights that do not fit, and a resumed run continues
from its checkpoint without reading the package again. Also the task options of the training config
(`task_options`, or a task written as a mapping in `tasks`), which such a run may change."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch
from safetensors.torch import load_file

from onepass.cli import build_parser
from onepass.data.files import file_sha256
from onepass.errors import ConfigError
from onepass.models import MultiTaskModel, save_package
from onepass.models.package import WEIGHTS_FILE, open_package
from onepass.train.config import TrainConfig
from onepass.train.initial_weights import load_initial_weights
from onepass.train.loop import Trainer, train
from tests.tiny import TINY_ENCODER, all_tasks, tiny_config


def run_config(data, out, **changes) -> TrainConfig:
    values = dict(
        data=str(data), out=str(out), encoder=TINY_ENCODER, decoder_channels=16, input_size=(64, 96),
        tasks=["semseg", "depth", "normals", "attributes"], steps=2, batch_size=4, num_workers=0, device="cpu",
        warmup_steps=1, calibrate=False,
    )  # fmt: skip
    return TrainConfig.from_mapping({**values, **changes})


def test_a_run_starts_from_the_packages_weights_and_records_them(random_dataset, tmp_path, monkeypatch):
    first = train(run_config(random_dataset, tmp_path / "first"), progress=False)
    weights = load_file(first.path / WEIGHTS_FILE)
    seen = {}

    def no_update(self, batch):  # the weights the first step would train from, left as they are
        seen.setdefault("state", {k: v.clone() for k, v in self.model.state_dict().items()})
        seen.setdefault("step", self.state.step)
        return {}

    monkeypatch.setattr(Trainer, "train_step", no_update)
    config = run_config(random_dataset, tmp_path / "second", init_from=str(first.path), seed=1)
    second = train(config, progress=False)
    assert seen["step"] == 0 and set(seen["state"]) == set(weights)
    for name, tensor in weights.items():
        assert torch.equal(seen["state"][name], tensor), name
    assert second.training["init_from"] == {
        "path": str(first.path.resolve()), "sha256": file_sha256(first.path / WEIGHTS_FILE), "tensors": len(weights),
    }  # fmt: skip
    assert "init_from" not in second.config.to_json()  # the package's model config never names it
    shutil.rmtree(first.path)  # the new package holds the weights: it loads without the old one
    for name, tensor in open_package(second.path).load_model().state_dict().items():
        assert torch.equal(tensor, weights[name]), name


def test_a_resumed_run_continues_from_its_checkpoint_not_the_package(random_dataset, tmp_path):
    first = train(run_config(random_dataset, tmp_path / "first"), progress=False)
    sha = file_sha256(first.path / WEIGHTS_FILE)
    config = run_config(random_dataset, tmp_path / "second", init_from=str(first.path), steps=3, checkpoint_every=1)
    assert train(config, progress=False, stop_after=2) is None
    step_two = torch.load(tmp_path / "second" / "train" / "checkpoint.pt", weights_only=True)["model"]
    shutil.rmtree(first.path)  # not read again
    trainer = Trainer(config, progress=False)
    trainer.load_checkpoint()
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, step_two[name]), name
    package = train(config, resume=True, progress=False)
    assert package.training["steps"] == 3 and package.training["init_from"]["sha256"] == sha


def test_weights_that_do_not_fit_are_refused_naming_the_tensors(tmp_path):
    save_package(tmp_path / "depth-only", MultiTaskModel(tiny_config(tasks=all_tasks()[1:2])), "depth")
    model = MultiTaskModel(tiny_config())  # all four tasks
    with pytest.raises(ConfigError, match=r"init_from .*depth-only: its weights do not fit .*\(\d+ missing: heads\."):
        load_initial_weights(model, tmp_path / "depth-only")
    save_package(tmp_path / "all", model, "all")
    with pytest.raises(ConfigError, match=r"\(26 unexpected: heads\.dense_heads\.normals\."):
        load_initial_weights(MultiTaskModel(tiny_config(tasks=all_tasks()[1:2])), tmp_path / "all")
    save_package(tmp_path / "wider", MultiTaskModel(tiny_config(tasks=all_tasks()[1:2])), "wider")
    narrow = MultiTaskModel(dataclasses.replace(tiny_config(tasks=all_tasks()[1:2]), decoder_channels=8))
    with pytest.raises(ConfigError, match=r"of another shape: .*\(model: \[8"):
        load_initial_weights(narrow, tmp_path / "wider")
    with pytest.raises(ConfigError, match="not a model package"):
        load_initial_weights(model, tmp_path / "nowhere")


def test_init_from_and_pretrained_weights_exclude_each_other():
    with pytest.raises(ConfigError, match="choose one"):
        TrainConfig.from_mapping({"data": "d", "out": "o", "init_from": "pkg", "pretrained_file": "w.safetensors"})


def test_the_train_command_takes_init_from():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--init-from", "pkg"])
    assert args.init_from == "pkg"


# ---- task options ---------------------------------------------------------------------------------


def test_a_task_written_as_a_mapping_gives_its_options(random_dataset, tmp_path):
    tasks = ["semseg", {"type": "people", "head_attributes": ["looking", "yaw"]}]
    config = TrainConfig.from_mapping({"data": "d", "out": "o", "tasks": tasks})
    assert config.model.tasks == ("semseg", "people")
    assert config.model.task_options == {"people": {"head_attributes": ["looking", "yaw"]}}
    assert TrainConfig.from_mapping(config.to_json()) == config  # the package's record reads back
    same = TrainConfig.from_mapping(
        {
            "data": "d",
            "out": "o",
            "tasks": "semseg,people",
            "task_options": {"people": {"head_attributes": ["looking", "yaw"]}},
        }
    )
    assert same == config


def test_task_options_are_checked():
    base = {"data": "d", "out": "o", "tasks": ["semseg", "people"]}
    with pytest.raises(ConfigError, match="not among the tasks"):
        TrainConfig.from_mapping({**base, "task_options": {"depth": {}}})
    with pytest.raises(
        ConfigError, match=r"unknown option of task 'people' 'head_atributes'; did you mean 'head_attributes'"
    ):
        TrainConfig.from_mapping({**base, "task_options": {"people": {"head_atributes": ["yaw"]}}})
    with pytest.raises(ConfigError, match="needs its type"):
        TrainConfig.from_mapping({**base, "tasks": [{"head_attributes": ["yaw"]}]})
    with pytest.raises(ConfigError, match="set in tasks and in task_options"):
        TrainConfig.from_mapping(
            {**base, "tasks": [{"type": "people", "yaw": False}], "task_options": {"people": {"yaw": True}}}
        )


def test_the_trainer_builds_the_task_with_its_options(tmp_path):
    from onepass.data.synth_dataset import write_synthetic_dataset

    data = tmp_path / "people"
    write_synthetic_dataset(data, 4, (64, 96), seed=3, workers=1, progress=False)  # scenes with people
    config = run_config(
        data, tmp_path / "out", tasks=[{"type": "people", "head_attributes": ["looking"], "max_people": 4}]
    )
    (people,) = Trainer(config, progress=False).tasks
    assert people.head_attributes == ("looking",) and people.max_people == 4
    bad = run_config(data, tmp_path / "bad", tasks=[{"type": "people", "head_attributes": ["age"]}])
    with pytest.raises(ConfigError, match="head_attributes names 'age'"):
        Trainer(bad, progress=False)
